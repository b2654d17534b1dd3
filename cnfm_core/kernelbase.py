"""The target's own contraction field: an exact tangent field on S² that carries each kernel of the path to its
centre, for a flow whose target is sharper than a network can draw (kilometre-scale clusters, docs/clustered.md).

For the vMF mixture path of :mod:`cnfm_core.paths` (centres ``y_i``, weights ``pi_i``, concentrations
``k_i(t) = s_i k(t)``, a floor ``w``), with ``q_i(x, t)`` the posterior of kernel ``i`` in the whole path (the
floor and the adaptive kernel's uniform remainders take the rest) and ``c_i = <x, y_i>``,

    v_b(t, x) = sum_i q_i a_i P_x y_i = P_x M,   M = sum_i q_i a_i y_i,   a_i(t) = k_i'(t) / (2 (1 + k_i(t))),

where ``P_x y = y - <x, y> x``. Each term is the field that moves one vMF kernel along its own path: at large
``k_i`` it is the Gaussian limit ``a_i (y_i - x)`` (a kernel of width ``k^(-1/2)`` shrinks at the rate
``k'/2k``), at small ``k_i`` the first-order field ``(k_i'/2) P_x y_i`` of ``1 + k_i <x, y_i>``. Weighting the
kernels' fields by their posteriors is exact for a mixture of exact fields; so the PPD residual of ``v_b`` is
small where one kernel dominates (near a sharp cluster, late in the path), and a network only learns the
correction where kernels overlap, at the scale where it can. For the exponential schedule ``a`` is
``log(1 + k_max) / 2`` at every ``t`` (fixed kernel).

Its divergence is exact, from the same ``B x N`` table (``grad log q_i = k_i P_x y_i - G``, ``div P_x y = -2 <x, y>``
on S²):

    div v_b = sum_i q_i a_i k_i (1 - c_i)(1 + c_i) - <G, M> - 2 <x, M>,   G = sum_i q_i k_i P_x y_i = grad log p_t.

Everything is formed in float64 (``1 - c_i``, half the squared chord, resolves to about 1e-16, 1e-8 nats at
``k = 1e8``, a kernel 0.6 km wide on the Earth) and returned in the caller's dtype. :meth:`KernelBase.velocity`
skips the divergence (sampling needs none).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .schedules import make_schedule

__all__ = ["KernelBase"]

_LOG_4PI = math.log(4.0 * math.pi)


class KernelBase(nn.Module):
    """``v_b(t, x)`` and its divergence (module doc) for the vMF mixture over ``centers`` (``(N, 3)``, distinct unit
    vectors) with log weights ``log_weights`` (``(N,)``, summing to 1 in probability), per-centre ``scales``
    (None: the fixed kernel), the schedule ``schedule``/``kappa_max`` and the floor ``floor``.

    The centres, weights and scales are buffers in float64, saved in the field's state dict, so a checkpoint
    alone rebuilds the field (:meth:`from_state`). ``chunk_entries`` bounds the ``B x N`` table held at once.

    >>> import torch
    >>> base = KernelBase(torch.tensor([[0.0, 0.0, 1.0]]), torch.zeros(1), None, "exponential", 100.0, 0.0)
    >>> v, div = base(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0.5]))
    >>> v.shape, div.shape
    (torch.Size([1, 3]), torch.Size([1]))
    """

    def __init__(self, centers: Tensor, log_weights: Tensor, scales: Tensor | None, schedule: str, kappa_max: float,
                 floor: float, *, chunk_entries: int = 1 << 21) -> None:
        super().__init__()
        if centers.ndim != 2 or centers.shape[1] != 3 or centers.shape[0] < 1:
            raise ValueError(f"centers must have shape (N, 3) with N >= 1, got {tuple(centers.shape)}")
        if log_weights.shape != centers.shape[:1] or (scales is not None and scales.shape != centers.shape[:1]):
            raise ValueError("log_weights and scales need one entry per centre")
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        c = centers.detach().double()
        self.register_buffer("centers", c / c.norm(dim=1, keepdim=True))
        self.register_buffer("log_weights", log_weights.detach().double().clone())
        self.register_buffer("scales", (torch.ones(len(c), dtype=torch.float64) if scales is None
                                        else scales.detach().double().clone()))
        self.fixed = scales is None
        self.schedule = make_schedule(schedule, kappa_max)
        self.floor = float(floor)
        self.chunk_entries = int(chunk_entries)

    @classmethod
    def from_path(cls, path, schedule: str) -> KernelBase:  # noqa: ANN001 - a VMFMixturePath
        """The base field of a :class:`~cnfm_core.paths.VMFMixturePath` (its distinct centres and their weights)."""
        counts = torch.bincount(path._point_to_center, minlength=path.centers.shape[0]).double()
        return cls(path.centers, torch.log(counts / counts.sum()), path.scales, schedule,
                   path.schedule.kappa_max, path.floor)

    @classmethod
    def from_state(cls, state: dict[str, Tensor], prefix: str, *, fixed: bool, schedule: str, kappa_max: float,
                   floor: float) -> KernelBase:
        """Rebuild from a state dict's ``{prefix}centers``, ``log_weights`` and ``scales``."""
        return cls(state[prefix + "centers"], state[prefix + "log_weights"],
                   None if fixed else state[prefix + "scales"], schedule, kappa_max, floor)

    def gate(self, t: Tensor) -> Tensor:
        """``(1 + k(t))^(-1/2)`` (``t`` clamped to [0, 1]): the scale of the exact field's correction at concentration
        ``k`` (a kernel's width), by which the network's output is multiplied, so that an error in it costs the PPD
        residual about the same at every ``t`` (the residual weighs a field error by ``|grad log p| ~ sqrt(k)``)."""
        return torch.rsqrt(1.0 + self.schedule.kappa(t.double().clamp(0.0, 1.0))).to(t.dtype)

    def forward(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``v_b(t, x)`` (``(B, 3)``, tangent) and its divergence (``(B,)``), in ``x``'s dtype."""
        v, div = self._chunked(x, t, divergence=True)
        assert div is not None
        return v, div

    def velocity(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``v_b(t, x)`` alone (``(B, 3)``), in ``x``'s dtype."""
        return self._chunked(x, t, divergence=False)[0]

    def _chunked(self, x: Tensor, t: Tensor | float, *, divergence: bool) -> tuple[Tensor, Tensor | None]:
        # An adaptive solver may probe times outside [0, 1] (its first step); the path is defined on [0, 1] only.
        t = torch.as_tensor(t, dtype=torch.float64, device=x.device).clamp(0.0, 1.0).expand(x.shape[0])
        step = max(1, self.chunk_entries // self.centers.shape[0])
        parts = [self._chunk(x[i:i + step], t[i:i + step], divergence) for i in range(0, x.shape[0], step)]
        v = torch.cat([p[0] for p in parts]).to(x.dtype)
        return v, (torch.cat([p[1] for p in parts]).to(x.dtype) if divergence else None)

    def _chunk(self, x: Tensor, t: Tensor, divergence: bool) -> tuple[Tensor, Tensor | None]:
        x = x.double()
        x = x / x.norm(dim=1, keepdim=True)
        k = self.schedule.kappa(t).clamp(min=1e-300)  # (B,)
        dk = self.schedule.dkappa(t)
        y, s = self.centers, self.scales
        # 1 - c_i = |x - y_i|^2 / 2, which float64 resolves to about 1e-16 (1e-8 nats at k = 1e8)
        half_chord = (1.0 - x @ y.T).clamp_(min=0.0)  # (B, N)
        # each kernel's weighted log-density, less a row term: fixed, the vMF; adaptive, its vMF part
        # (log k_i = log k + log s_i, the rest of the normaliser is a row term); the uniform parts are log_u
        if self.fixed:
            row = torch.log(k) - math.log(2.0 * math.pi) - torch.log(-torch.expm1(-2.0 * k))
            logit = (half_chord * -k[:, None]).add_(self.log_weights)
            log_u = torch.full_like(k, -math.inf)
        else:
            row = torch.log(k) - math.log(2.0 * math.pi)
            logit = (half_chord * s).mul_(-k[:, None]).add_(self.log_weights + torch.log(s))
            log_u = torch.logsumexp(self.log_weights[None, :] - 2.0 * k[:, None] * s[None, :], dim=1) - _LOG_4PI
        log_u = log_u + math.log1p(-self.floor)
        if self.floor > 0.0:
            log_u = torch.logaddexp(log_u, torch.full_like(log_u, math.log(self.floor) - _LOG_4PI))
        mx = logit.amax(dim=1)
        e = logit.sub_(mx[:, None]).exp_()  # q_i = e_i * w, with w the row's normaliser
        lead = row + mx + math.log1p(-self.floor)
        log_z = torch.logaddexp(lead + torch.log(e.sum(dim=1)), log_u)
        w = torch.exp(lead - log_z)  # (B,)
        if self.fixed:  # a_i and k_i are the same for every kernel
            a = 0.5 * dk / (1.0 + k)
            moment = (e @ y) * w[:, None]  # sum_i q_i y_i
            m = a[:, None] * moment
        else:
            ea = e * (s / (1.0 + k[:, None] * s))  # q_i a_i / (w dk / 2)
            m = (ea @ y) * (0.5 * dk * w)[:, None]
        xm = (x * m).sum(1)
        v = m - xm[:, None] * x
        if not divergence:
            return v, None
        bend = half_chord.mul_(2.0 - half_chord)  # 1 - c_i^2
        if self.fixed:
            g = k[:, None] * moment
            curv = a * k * w * (e * bend).sum(dim=1)
        else:
            g = ((e * s) @ y) * (k * w)[:, None]
            curv = (ea * s).mul_(bend).sum(dim=1) * (0.5 * dk * k * w)
        grad = g - (x * g).sum(1)[:, None] * x  # G = P_x g
        div = curv - (grad * m).sum(1) - 2.0 * xm
        return v, div
