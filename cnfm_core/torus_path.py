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

**The adaptive kernel** (``scales=s``, shape ``(N,)`` or ``(N, d)``): centre ``i`` has concentration
``κ_ij = s_ij κ(t)`` in coordinate ``j`` (a per-point and per-coordinate bandwidth,
:func:`cnfm_core.torus_kde.torus_adaptive_kappas`; an ``(N,)`` scale is the same in every coordinate). With
``L`` distinct scale values ``σ_l`` and ``Q_il`` the number of coordinates of centre ``i`` whose scale is
``σ_l``, the logits are still one matrix product,

    ℓ_i(x) = κ sum_j s_ij (cos(x_j - y_ij) - 1) + sum_l Q_il g_l(κ) + log π_i,   g_l(κ) = log C(κ σ_l),
           = [κ cos x, κ sin x, g(κ) - κ σ, 1] · [s ⊙ cos y, s ⊙ sin y, Q, log π],

(so the rows of ``Q`` add ``-κ S_i``, ``S_i = sum_j s_ij``), and with ``M^c = sum_i w_i s_i ⊙ cos y_i``,
``M^s = sum_i w_i s_i ⊙ sin y_i`` and ``h_l(κ) = σ_l (1 - A(κ σ_l))``:

    d/dt log p_t(x) = κ'(t) [ cos x · M^c + sin x · M^s - sum_i w_i S_i + sum_l (sum_i w_i Q_il) h_l(κ) ]
    grad log p_t(x) = κ (cos x ⊙ M^s - sin x ⊙ M^c),

since ``d/dκ [κ s (cos δ - 1) + log C(κ s)] = s (cos δ - 1) + s (1 - A(κ s))``. It is exact for any scales;
the cost grows with ``L``, which rounding the concentrations to levels keeps to about a hundred. At ``t = 0``
every ``κ_ij`` is 0 and the path is uniform. Samples draw coordinate ``j`` of centre ``i`` from
``vM(y_ij, s_ij κ(t))``.
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
    ``scales`` (None, or positive factors ``(N,)`` or ``(N, d)``: the adaptive kernel, module doc) multiply
    ``κ(t)`` per centre and coordinate. It is the :class:`~cnfm_core.paths.TargetPath` of the torus.

    >>> import math, torch
    >>> from cnfm_core.schedules import ExponentialSchedule
    >>> path = VonMisesMixturePath(torch.tensor([[0.0, 1.0]]), ExponentialSchedule(100.0))
    >>> lp = float(path.log_prob(torch.tensor([[2.0, -3.0]]), 0.0))  # uniform at t = 0: -2 log 2π
    >>> round(lp + 2 * math.log(2 * math.pi), 6)
    0.0
    """

    def __init__(self, centers: Tensor, schedule: Schedule, *, floor: float = 0.0, scales: Tensor | None = None,
                 chunk_entries: int = 1 << 22) -> None:
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
        self.scales: Tensor | None = None
        self.n_data = int(centers.shape[0])
        if scales is not None:
            self._init_scaled(centers, _scale_table(scales, centers))
            return
        unique, inverse, counts = torch.unique(wrap_angle(centers), dim=0, return_inverse=True, return_counts=True)
        self.centers = unique
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
        if self.scales is not None:
            self.scales = self.scales.to(device)
            self._levels = self._levels.to(device)
        return self

    def _init_scaled(self, centers: Tensor, scales: Tensor) -> None:
        """The adaptive kernel's tables (module doc): repeated (centre, scales) rows merged into one centre."""
        d = self.dim
        rows = torch.cat([wrap_angle(centers), scales], dim=1)
        unique, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
        self.centers, self.scales = unique[:, :d].contiguous(), unique[:, d:].contiguous()
        self._point_to_center = inverse
        self._levels, level_of = torch.unique(self.scales, return_inverse=True)  # σ_l, and l for each (i, j)
        q = torch.zeros(len(unique), len(self._levels), dtype=centers.dtype, device=centers.device)
        q.scatter_add_(1, level_of, torch.ones_like(self.scales))
        log_w = torch.log(counts.to(centers.dtype) / centers.shape[0])
        cos, sin = self.scales * torch.cos(self.centers), self.scales * torch.sin(self.centers)
        total = self.scales.sum(dim=1, keepdim=True)
        ones = torch.ones_like(log_w)[:, None]
        self._aug_t = torch.cat([cos, sin, q, log_w[:, None]], dim=1).T.contiguous()
        self._moments_t = torch.cat([cos, sin, total, q, ones], dim=1).T.contiguous()

    def _fused_scaled(self, x: Tensor, t: Tensor, derivatives: bool) -> PathQuantities:
        """:meth:`_fused` for the adaptive kernel (module doc)."""
        d, levels = self.dim, self._levels
        k = self.schedule.kappa(t).to(x.dtype)
        k_levels = k[:, None] * levels[None]  # (B, L)
        g = log_normalizer(k_levels) - k_levels
        cx, sx = torch.cos(x), torch.sin(x)
        a = torch.cat([cx * k[:, None], sx * k[:, None], g, torch.ones_like(k)[:, None]], dim=1)
        logits = a @ self._aug_t  # (B, N)
        mx = logits.amax(dim=1, keepdim=True)
        e = logits.sub_(mx).clamp_(min=_LOGIT_CLAMP).exp_()
        if not derivatives:
            log_prob = mx[:, 0] + torch.log(e.sum(dim=1))
            return PathQuantities(self._floored(log_prob)[0], torch.empty(0), torch.empty(0))
        moments = self._moments_t @ e.T  # (2d + 1 + L + 1, B)
        s = moments[-1]
        log_prob = mx[:, 0] + torch.log(s)
        mc, ms = moments[:d].T / s[:, None], moments[d : 2 * d].T / s[:, None]
        total = moments[2 * d] / s
        q = moments[2 * d + 1 : -1].T / s[:, None]  # (B, L): sum_i w_i Q_il
        h = levels[None] * one_minus_mean_resultant(k_levels)
        dot = (cx * mc + sx * ms).sum(dim=1)
        dk = self.schedule.dkappa(t).to(x.dtype)
        dlog = dk * (dot - total + (q * h).sum(dim=1))
        grad = k[:, None] * (cx * ms - sx * mc)
        if self.floor > 0.0:
            log_prob, rho = self._floored(log_prob)
            dlog, grad = rho * dlog, rho[:, None] * grad
        return PathQuantities(log_prob, dlog, grad)

    def _fused(self, x: Tensor, t: Tensor, derivatives: bool) -> PathQuantities:
        if self.scales is not None:
            return self._fused_scaled(x, t, derivatives)
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
        if self.scales is not None:
            kappa = kappa * self.scales[self._point_to_center[idx]]
        x = sample_von_mises(mu, kappa, generator=generator)
        if self.floor > 0.0:  # with probability w the point comes from the uniform component
            from_floor = torch.rand(n, generator=generator, dtype=mu.dtype, device=mu.device) < self.floor
            uniform = self.manifold.random_uniform(n, generator=generator, dtype=mu.dtype, device=mu.device)
            x = torch.where(from_floor[:, None], uniform, x)
        return x


def _scale_table(scales: Tensor, centers: Tensor) -> Tensor:
    """Per-centre scales as an ``(N, d)`` table in the centres' dtype; ``ValueError`` unless positive and finite."""
    n, d = centers.shape
    s = scales.to(device=centers.device, dtype=centers.dtype)
    if s.shape == (n,):
        s = s[:, None].expand(n, d)
    if s.shape != (n, d):
        raise ValueError(f"scales must have shape ({n},) or ({n}, {d}), got {tuple(scales.shape)}")
    if not bool((torch.isfinite(s) & (s > 0)).all()):
        raise ValueError("scales must be positive and finite")
    return s.contiguous()
