"""The target probability path on the flat torus Tᵈ: a mixture of von Mises products over the data.

For data points ``y_1..y_N`` in ``[-π, π)ᵈ`` and a concentration schedule ``κ(t)`` with ``κ(0) = 0``
(:data:`cnfm_core.paths.SCHEDULES`), the path is

    p_t(x) = sum_i π_i prod_j vM(x_j; y_ij, κ(t)),     π_i = count_i / N,

with repeated points merged into one centre (exact). At ``t = 0`` it is exactly uniform, ``(2π)^-d``;
at ``t = 1`` it is the kernel density estimate with concentration ``κ_max`` per coordinate. Every
training point takes part (a minibatch mixture would bias the target). With the per-coordinate
normaliser ``log C(κ) = -log 2π - log I₀ₑ(κ)`` and mean resultant length ``A(κ) = I₁/I₀``
(:mod:`cnfm_core.von_mises`), everything PPD needs comes from one pass over the ``B x N`` table of
logits ``ℓ_i(x) = κ sum_j (cos(x_j - y_ij) - 1) + log π_i`` with softmax weights ``w_i(x)``:

    log p_t(x)      = d log C(κ) + logsumexp_i ℓ_i(x)
    d/dt log p_t(x) = κ'(t) [ sum_j (cos x_j m^c_j + sin x_j m^s_j) - d + d (1 - A(κ)) ]
    grad log p_t(x) = κ (cos x ⊙ m^s - sin x ⊙ m^c)          (the flat, coordinate gradient)

where ``m^c = sum_i w_i cos y_i`` and ``m^s = sum_i w_i sin y_i``, since
``d/dκ log vM = (cos δ - 1) + (1 - A(κ))`` and ``∂/∂x_j cos(x_j - y_ij) = cos x_j sin y_ij - sin x_j cos y_ij``.
The logits are one matrix product, ``[κ cos x, κ sin x, -κ d, 1] · [cos y, sin y, 1, log π]``; in float32
it loses about ``κ d`` times 6e-8 nats, as the sphere's path does.

With a uniform floor ``w`` (``floor=w``) the path is ``(1 - w) p_t + w (2π)^-d``: still uniform at ``t = 0``
and at ``t = 1`` the floored KDE of :mod:`cnfm_core.torus_kde`. With ``ρ(x)`` the kernel part's
responsibility, ``d/dt log`` and the gradient of the floored path are those above times ``ρ``.

Samples are exact: a centre drawn by its weight, then each coordinate from its von Mises
(:func:`cnfm_core.von_mises.sample_von_mises`), and with probability ``w`` a uniform point instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .manifolds.torus import Torus, wrap_angle
from .paths import KernelMixturePath, PathQuantities
from .schedules import Schedule
from .von_mises import log_normalizer, one_minus_mean_resultant, sample_von_mises

__all__ = ["VonMisesMixturePath"]

#: Logits this far below the largest are clamped there (each adds at most e^-80 relatively; no denormals).
_LOGIT_CLAMP = -80.0


class VonMisesMixturePath(KernelMixturePath):
    """The von Mises product mixture path over ``centers`` (``(N, d)`` angles in radians; module doc).

    ``floor`` is the weight ``w`` in ``[0, 1)`` of a uniform component mixed in at every ``t``;
    ``chunk_entries`` bounds the ``B x N`` table held at once (queries are processed in chunks).
    ``scales`` (a concentration per centre, the sphere's adaptive kernel) is not available on the torus:
    anything but None raises ``ValueError``. It is the :class:`~cnfm_core.paths.TargetPath` of the torus.

    >>> import math, torch
    >>> from cnfm_core.schedules import ExponentialSchedule
    >>> path = VonMisesMixturePath(torch.tensor([[0.0, 1.0]]), ExponentialSchedule(100.0))
    >>> lp = float(path.log_prob(torch.tensor([[2.0, -3.0]]), 0.0))  # uniform at t = 0: -2 log 2π
    >>> round(lp + 2 * math.log(2 * math.pi), 6)
    0.0
    """

    def __init__(self, centers: Tensor, schedule: Schedule, *, floor: float = 0.0, scales: Tensor | None = None,
                 chunk_entries: int = 1 << 22) -> None:
        if scales is not None:
            raise ValueError("the torus path has one concentration for every centre (no adaptive kernel)")
        if centers.ndim != 2 or centers.shape[0] < 1 or centers.shape[1] < 1:
            raise ValueError(f"centers must have shape (N, d) with N, d >= 1, got {tuple(centers.shape)}")
        if not bool(torch.isfinite(centers).all()):
            raise ValueError("centers must be finite angles")
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self.schedule = schedule
        self.floor = float(floor)
        self.chunk_entries = int(chunk_entries)
        self.dim = int(centers.shape[1])
        self.manifold = Torus(self.dim)
        unique, inverse, counts = torch.unique(wrap_angle(centers), dim=0, return_inverse=True, return_counts=True)
        self.centers = unique
        self.n_data = int(centers.shape[0])
        self._point_to_center = inverse
        log_w = torch.log(counts.to(centers.dtype) / centers.shape[0])
        ones = torch.ones_like(log_w)[:, None]
        cos, sin = torch.cos(unique), torch.sin(unique)
        # [cos y, sin y, 1, log π] as rows: [κ cos x, κ sin x, -κ d, 1] . that = ℓ_i(x) (module doc).
        self._aug_t = torch.cat([cos, sin, ones, log_w[:, None]], dim=1).T.contiguous()
        # [cos y, sin y, 1] as rows: one (2d + 1, N) @ (N, B) product gives m^c, m^s and the normaliser.
        self._moments_t = torch.cat([cos, sin, ones], dim=1).T.contiguous()

    def to(self, device: torch.device | str) -> VonMisesMixturePath:
        """Move the centres to ``device`` (returns ``self``)."""
        self.centers = self.centers.to(device)
        self._point_to_center = self._point_to_center.to(device)
        self._aug_t = self._aug_t.to(device)
        self._moments_t = self._moments_t.to(device)
        return self

    def _fused(self, x: Tensor, t: Tensor, derivatives: bool) -> PathQuantities:
        d = self.dim
        k = self.schedule.kappa(t).to(x.dtype)
        cx, sx = torch.cos(x), torch.sin(x)
        a = torch.cat([cx * k[:, None], sx * k[:, None], -d * k[:, None], torch.ones_like(k)[:, None]], dim=1)
        logits = a @ self._aug_t  # (B, N)
        mx = logits.amax(dim=1, keepdim=True)
        e = logits.sub_(mx).clamp_(min=_LOGIT_CLAMP).exp_()
        log_c = d * log_normalizer(k)
        if not derivatives:
            log_prob = log_c + mx[:, 0] + torch.log(e.sum(dim=1))
            return PathQuantities(self._floored(log_prob)[0], torch.empty(0), torch.empty(0))
        moments = self._moments_t @ e.T  # (2d + 1, B)
        s = moments[2 * d]
        log_prob = log_c + mx[:, 0] + torch.log(s)
        mc, ms = moments[:d].T / s[:, None], moments[d : 2 * d].T / s[:, None]
        dot = (cx * mc + sx * ms).sum(dim=1)
        dk = self.schedule.dkappa(t).to(x.dtype)
        dlog = dk * (dot - d + d * one_minus_mean_resultant(k))
        grad = k[:, None] * (cx * ms - sx * mc)
        if self.floor > 0.0:
            log_prob, rho = self._floored(log_prob)
            dlog, grad = rho * dlog, rho[:, None] * grad
        return PathQuantities(log_prob, dlog, grad)

    def _check_points(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"points must have shape (B, {self.dim}), got {tuple(x.shape)}")

    @torch.no_grad()
    def sample(self, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``x_j ~ p_{t_j}``, one for each entry of ``t`` (shape ``(n,)``): shape ``(n, d)``."""
        n = t.shape[0]
        idx = torch.randint(self.n_data, (n,), generator=generator, device=self.centers.device)
        mu = self.centers[self._point_to_center[idx]]
        kappa = self.schedule.kappa(t.to(mu.dtype))[:, None]
        x = sample_von_mises(mu, kappa, generator=generator)
        if self.floor > 0.0:  # with probability w the point comes from the uniform component
            from_floor = torch.rand(n, generator=generator, dtype=mu.dtype, device=mu.device) < self.floor
            uniform = self.manifold.random_uniform(n, generator=generator, dtype=mu.dtype, device=mu.device)
            x = torch.where(from_floor[:, None], uniform, x)
        return x
