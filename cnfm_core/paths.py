"""The target probability path PPD matches: the interface (:class:`TargetPath`) and, on the sphere,
a von Mises-Fisher (vMF) kernel mixture over the data.

A target path on a manifold ``M`` is anything with ``log_prob(x, t)``, ``quantities(x, t)`` (``log p_t``,
``d/dt log p_t`` and the Riemannian gradient of ``log p_t``: :class:`PathQuantities`), exact samples
``sample(t)``, its ``manifold``, ``floor`` and ``schedule``, and the ``device`` and ``dtype`` of its
tensors. Concentration schedules are shared by every manifold (:mod:`cnfm_core.schedules`).

For data points ``y_1..y_N`` on S^2 and a concentration schedule ``kappa(t)`` with
``kappa(0) = 0``, the path is

    p_t(x) = (1/N) sum_i vMF(x; y_i, kappa(t)),
    vMF(x; mu, k) = k / (4 pi sinh k) * exp(k <mu, x>)      (density w.r.t. area).

At ``t = 0`` it is exactly uniform (1 / 4 pi); at ``t = 1`` it is a kernel density estimate
with bandwidth ``1 / sqrt(kappa_max)``. The mixture is exact: every training point takes part
(a minibatch mixture would bias the target). Everything PPD needs comes from one fused pass
over the ``B x N`` table of point-to-centre dot products, with softmax weights ``w_i(x)``:

    log p_t(x)        = log c(k) + logsumexp_i [k (<x, y_i> - 1) + log pi_i]
    d/dt log p_t(x)   = k'(t) [ (log c)'(k) + <x, m> - 1 ],   m = sum_i w_i(x) y_i
    grad log p_t(x)   = k (m - <x, m> x)                       (Riemannian gradient)

with ``c(k) = k / (2 pi (1 - exp(-2k)))``, which tends to ``1 / 4 pi`` as ``k -> 0``.
Repeated data points are merged into one centre with weight ``pi_i = count_i / N`` (exact).

With per-centre scales ``s_i`` (``scales=``: the adaptive kernel, whose bandwidth follows the local
spacing of the data) centre ``i`` has concentration ``k_i = s_i k(t)``, and its kernel is its vMF with
weight ``1 - e^{-2 k_i}`` plus the uniform with weight ``e^{-2 k_i}``:

    kernel_i(x) = (k_i / 2 pi) exp(k_i (<x, y_i> - 1)) + e^{-2 k_i} / 4 pi.

That is exactly normalised, uniform at ``k_i = 0``, and within ``e^{-2 k_i}`` of the vMF (2e-9 at
``k_i = 10``, the smallest concentration the adaptive KDE uses at ``t = 1``). Unlike ``c(k_i)``, the factor
``k_i / 2 pi = s_i k / 2 pi`` splits into a row and a column term, so the table stays one product:
logits ``s_i k (<x, y_i> - 1) + log pi_i + log s_i``, and the remainders' total
``U = sum_i pi_i e^{-2 s_i k}`` is a sum over the distinct scales only. With ``m = sum_i w_i s_i y_i``,
``S = sum_i w_i s_i`` and ``rho`` the vMF part's responsibility,

    d/dt log p_t(x)   = rho k'(t) [ 1/k + <x, m> - S ] + (1 - rho) d/dt log U
    grad log p_t(x)   = rho k (m - <x, m> x).

With a uniform floor ``w`` (``floor=w``) the path is ``(1 - w) p_t + w / 4 pi``: still uniform at
``t = 0``, and at ``t = 1`` the floored kernel density estimate of :mod:`cnfm_core.kde`. With the
responsibility ``rho(x) = (1 - w) p_t(x) / ((1 - w) p_t(x) + w / 4 pi)`` of the kernel part, its
time derivative and gradient of ``log`` are those above times ``rho``. The floor keeps the target
(and so the flow) from giving near-zero density to regions without training points, where test
points far from every training point would otherwise cost many nats.

Precision. In float32 the logits ``k (<x, y_i> - 1)`` lose about ``k * 1e-7`` nats: at ``k = 3e7`` two points
1 km apart have ``<x, y> - 1 = -1.2e-8``, below float32's resolution near 1 (and a float32 unit vector is unit
only to 6e-8). A path whose sharpest concentration would lose more than 0.01 nats so (``precise``: float32
above ``k = 84,000``) forms its logits in float64 from chord distances,

    s_i k (<x, y_i> - 1) = -s_i k |x - y_i|^2 / 2 = k <x, s_i y_i> - (k |x|^2 / 2) s_i - (k / 2) s_i |y_i|^2,

still one product (``[k x, -k |x|^2 / 2, -k / 2, 1]`` against ``[s y, s, s |y|^2, c]``), then subtracts the
largest and exponentiates in float32; ``d/dt log p`` is then formed in float64 from the logits rather than from
the mean centre (:meth:`VMFMixturePath._mean_log_kernel`). ``log p`` and ``d/dt log p`` then keep about 1e-6 of
float64's values up to ``k = 1e8`` (tests/test_paths.py); the gradient ``k (m - <x, m> x)`` keeps the float32
mean centre ``m`` and loses about ``k * 2e-7`` (1e-3 of its typical size ``sqrt(k)`` at ``k = 1e8``). Paths
below that sharpness compute exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from .manifolds.base import Manifold
from .manifolds.sphere import Sphere
from .schedules import SCHEDULES, ExponentialSchedule, LinearSchedule, Schedule, make_schedule
from .sphere import LOG_AREA, sample_uniform
from .vmf import LOG_2PI, sample_vmf, vmf_dlog_normalizer, vmf_log_normalizer, vmf_log_prob

__all__ = [
    "SCHEDULES",
    "ExponentialSchedule",
    "KernelMixturePath",
    "LinearSchedule",
    "PathQuantities",
    "Schedule",
    "TargetPath",
    "VMFMixturePath",
    "make_schedule",
    "sample_vmf",
    "vmf_dlog_normalizer",
    "vmf_log_normalizer",
    "vmf_log_prob",
]

_LOGIT_CLAMP = -80.0
#: The adaptive path's smallest concentration (at t = 0): see :meth:`VMFMixturePath._fused_scaled`.
_TINY_KAPPA = 1e-20
#: A path is precise (logits in float64 from chord distances) when its sharpest concentration times its dtype's
#: eps exceeds this (float32: above about 84,000), i.e. when float32 logits would lose more than about 0.01 nats.
_PRECISE_ABOVE = 1e-2
#: Above this concentration a precise path forms d/dt log p from its logits (:meth:`VMFMixturePath._mean_log_kernel`).
_LOGITS_ABOVE = 100.0


# ----------------------------------------------------------------------------- the mixture path
@dataclass(frozen=True)
class PathQuantities:
    """What PPD needs of the target at points ``x`` and times ``t``: ``log p_t(x)`` and ``d/dt log p_t(x)``
    (shape ``(B,)``) and the Riemannian gradient of ``log p_t`` at ``x``, a tangent vector (``(B, D)``)."""

    log_prob: Tensor
    dlog_prob_dt: Tensor
    grad_log_prob: Tensor


@runtime_checkable
class TargetPath(Protocol):
    """A probability path ``p_t`` on ``manifold``, ``t`` in [0, 1], uniform at ``t = 0`` (module doc).

    ``floor`` is the weight of the uniform component mixed in at every ``t`` (RFM is checked against it);
    ``device`` and ``dtype`` are those of the samples it draws (PPD draws its times there).
    """

    manifold: Manifold
    floor: float
    schedule: Schedule

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def log_prob(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``log p_t(x)`` w.r.t. the volume of ``manifold`` for points ``(B, D)``; ``t`` a scalar or ``(B,)``."""
        ...

    def quantities(self, x: Tensor, t: Tensor | float) -> PathQuantities:
        """``log p_t``, ``d/dt log p_t`` and the Riemannian gradient of ``log p_t`` at ``x``."""
        ...

    def sample(self, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``x_j ~ p_{t_j}``, one per entry of ``t`` (shape ``(n,)``): ``(n, D)``."""
        ...

    def to(self, device: torch.device | str) -> TargetPath:
        """Move the path's tensors to ``device`` (returns the path)."""
        ...


class KernelMixturePath:
    """What the kernel mixture paths (this :class:`VMFMixturePath`, the torus's ``VonMisesMixturePath``) share:
    queries in chunks of ``chunk_entries`` table entries, and the floor ``w``: ``log((1 - w) p + w / V)`` with
    ``log V = manifold.log_volume`` and the kernel part's responsibility ``rho``. A subclass sets the attributes
    below, computes one chunk in ``_fused(x, t, derivatives)`` and may check points in ``_check_points``."""

    manifold: Manifold
    schedule: Schedule
    floor: float
    chunk_entries: int
    centers: Tensor

    @property
    def device(self) -> torch.device:
        return self.centers.device

    @property
    def dtype(self) -> torch.dtype:
        return self.centers.dtype

    def _fused(self, x: Tensor, t: Tensor, derivatives: bool) -> PathQuantities:
        raise NotImplementedError

    def _check_points(self, x: Tensor) -> None:
        """Raise ``ValueError`` for points ``x`` of the wrong shape (here: no check)."""

    def _floored(self, log_kernel: Tensor) -> tuple[Tensor, Tensor | None]:
        """``log((1 - w) p + w / V)`` from ``log p``, and the kernel part's responsibility ``rho``."""
        if self.floor <= 0.0:
            return log_kernel, None
        a = log_kernel + math.log1p(-self.floor)
        b = torch.full_like(a, math.log(self.floor) - self.manifold.log_volume)
        return torch.logaddexp(a, b), torch.sigmoid(a - b)

    def _chunked(self, x: Tensor, t: Tensor | float, derivatives: bool) -> PathQuantities:
        self._check_points(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        step = max(1, self.chunk_entries // self.centers.shape[0])
        parts = [self._fused(x[i : i + step], t[i : i + step], derivatives) for i in range(0, x.shape[0], step)]
        if len(parts) == 1:
            return parts[0]
        cat = [torch.cat([getattr(p, f) for p in parts]) for f in ("log_prob", "dlog_prob_dt", "grad_log_prob")]
        return PathQuantities(*cat)

    @torch.no_grad()
    def log_prob(self, x: Tensor, t: Tensor | float) -> Tensor:
        """``log p_t(x)`` w.r.t. the volume of ``manifold`` at points ``(B, D)``; ``t`` a scalar or ``(B,)``."""
        return self._chunked(x, t, derivatives=False).log_prob

    @torch.no_grad()
    def quantities(self, x: Tensor, t: Tensor | float) -> PathQuantities:
        """``log p_t``, ``d/dt log p_t`` and the Riemannian gradient of ``log p_t`` at ``x``."""
        return self._chunked(x, t, derivatives=True)


class VMFMixturePath(KernelMixturePath):
    """The vMF mixture path over ``centers`` (``(N, 3)`` unit vectors) with a concentration schedule: the
    :class:`TargetPath` on the sphere.

    ``floor`` is the weight ``w`` in ``[0, 1)`` of a uniform component mixed in at every ``t``.
    ``scales`` (``(N,)``, positive, one per row of ``centers``) gives centre ``i`` the concentration
    ``scales[i] * kappa(t)`` (an adaptive kernel; None: all 1). Repeated centres must share a scale.
    ``chunk_entries`` bounds the size of the ``B x N`` table held at once (queries are processed
    in chunks), so memory stays bounded for large data sets.

    >>> import torch
    >>> path = VMFMixturePath(torch.tensor([[0.0, 0.0, 1.0]]), ExponentialSchedule(100.0))
    >>> x = torch.tensor([[1.0, 0.0, 0.0]])
    >>> float(path.log_prob(x, torch.tensor([0.0])))  # uniform at t = 0: -log(4 pi)
    -2.5310242...
    """

    def __init__(self, centers: Tensor, schedule: Schedule, *, floor: float = 0.0,
                 scales: Tensor | None = None, chunk_entries: int = 1 << 22) -> None:
        if centers.ndim != 2 or centers.shape[1] != 3 or centers.shape[0] < 1:
            raise ValueError(f"centers must have shape (N, 3) with N >= 1, got {tuple(centers.shape)}")
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self.manifold: Manifold = Sphere()
        self.schedule = schedule
        self.floor = float(floor)
        self.chunk_entries = int(chunk_entries)
        unique, inverse, counts = torch.unique(centers, dim=0, return_inverse=True, return_counts=True)
        self.centers = unique
        self.n_data = centers.shape[0]
        self._point_to_center = inverse
        log_w = torch.log(counts.to(centers.dtype) / centers.shape[0])
        ones = torch.ones_like(log_w)
        self.scales: Tensor | None = None
        merged = ones
        if scales is not None:
            scales = torch.as_tensor(scales, dtype=centers.dtype, device=centers.device)
            if scales.shape != (centers.shape[0],) or not bool(torch.isfinite(scales).all() and (scales > 0).all()):
                raise ValueError(f"scales must be {centers.shape[0]} positive finite numbers, one per centre")
            merged = torch.zeros_like(log_w).scatter_reduce_(0, inverse, scales, "amax")
            if not torch.allclose(merged[inverse], scales, rtol=1e-6, atol=0.0):
                raise ValueError("repeated centres must have the same scale")
            self.scales = merged
            # the distinct scales and their total weights, for the remainders' total U
            self._group_scales, group = torch.unique(merged, return_inverse=True)
            self._group_log_w = torch.log(torch.zeros_like(self._group_scales).index_add_(0, group, log_w.exp()))
        # c_i = log pi_i (+ log s_i): the logits are s_i k (<x, y_i> - 1) + c_i
        col = log_w if scales is None else log_w + merged.log()
        sy, s = merged[:, None] * unique, merged[:, None]
        top = float(schedule.kappa_max) * float(merged.max())
        #: Whether the logits are formed in float64 from chord distances (module doc, "Precision").
        self.precise = centers.dtype != torch.float64 and top * torch.finfo(centers.dtype).eps > _PRECISE_ABOVE
        if self.precise:
            # [s y, s, s |y|^2, c] in float64: [k x, -k |x|^2 / 2, -k / 2, 1] . that = -s k |x - y|^2 / 2 + c.
            u64 = unique.double()
            s64 = merged.double()[:, None]
            self._aug_t = torch.cat([s64 * u64, s64, s64 * (u64 * u64).sum(1, keepdim=True), col.double()[:, None]],
                                    dim=1).T.contiguous()
        else:
            # [s y, s, c]: [k x, -k, 1] . that = s k(<x,y> - 1) + c.
            self._aug_t = torch.cat([sy, s, col[:, None]], dim=1).T.contiguous()
        # The weighted sums of (s_i) y_i, (of s_i,) of 1 (the normaliser) and, when precise, of c_i. It is
        # (R, N) @ (N, B) on purpose: for a thin right factor that order runs several times faster on CPU.
        rows = [sy, s, ones[:, None]] if scales is not None else [unique, ones[:, None]]
        if self.precise:
            rows.append(col[:, None])
        self._moments_t = torch.cat(rows, dim=1).T.contiguous()

    def to(self, device: torch.device | str) -> VMFMixturePath:
        """Move the centres to ``device`` (returns ``self``)."""
        self.centers = self.centers.to(device)
        self._point_to_center = self._point_to_center.to(device)
        self._aug_t = self._aug_t.to(device)
        self._moments_t = self._moments_t.to(device)
        if self.scales is not None:
            self.scales = self.scales.to(device)
            self._group_scales = self._group_scales.to(device)
            self._group_log_w = self._group_log_w.to(device)
        return self

    def _logits(self, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """The table ``l_i = logit_i - max_j logit_j`` (``(B, N)``, in the path's dtype, clamped at -80; the caller
        exponentiates it, in place unless precise, where :meth:`_mean_log_kernel` still reads it) and the largest
        logit (``(B,)``, float64 when precise)."""
        if self.precise:
            x64, k64 = x.double(), k.double()
            a = torch.cat([x64 * k64[:, None], (-0.5 * k64 * (x64 * x64).sum(1))[:, None], -0.5 * k64[:, None],
                           torch.ones_like(k64)[:, None]], dim=1)
        else:
            a = torch.cat([x * k[:, None], -k[:, None], torch.ones_like(k)[:, None]], dim=1)
        logits = a @ self._aug_t  # (B, N): s_i k(<x, y_i> - 1) + c_i
        mx = logits.amax(dim=1, keepdim=True)
        # Entries below -80 are clamped there: each adds at most e^-80 (about 2e-35) relative to the
        # largest term, so the relative error is at most N e^-80 (below 1e-30 for N < 1e4), and exp
        # never produces denormals, which are many times slower on CPUs.
        return logits.sub_(mx).to(x.dtype).clamp_(min=_LOGIT_CLAMP), mx[:, 0]

    def _mean_log_kernel(self, x: Tensor, k: Tensor, ell: Tensor, e: Tensor, mx: Tensor, moments: Tensor,
                         total: Tensor) -> Tensor:
        """``sum_i w_i s_i (<x, y_i> - 1)`` (``<x, m> - 1`` of the module doc, ``<x, m> - S`` with scales) for a
        precise path, in float64.

        Formed from the mean centre ``m`` it loses ``eps`` absolutely, which ``d/dt log p`` multiplies by
        ``dk/dt`` (about 18 k at ``k = 1e8``). Above ``k = 100`` it is formed from the logits instead,
        ``(max logit + sum_i w_i l_i - sum_i w_i c_i) / k``, which loses about ``1e-6 / k``."""
        m = moments[:3].T / total[:, None]
        direct = (x * m).sum(dim=1) - (1.0 if self.scales is None else moments[3] / total)
        total64 = total.double()
        mean_ell = (ell * e).sum(dim=1, dtype=torch.float64) / total64
        mean_c = moments[-1].double() / total64
        from_logits = (mx + mean_ell - mean_c) / k.double().clamp(min=1.0)
        return torch.where(k > _LOGITS_ABOVE, from_logits, direct.double())

    def _fused(self, x: Tensor, t: Tensor, derivatives: bool) -> PathQuantities:
        if self.scales is not None:
            return self._fused_scaled(x, t, derivatives)
        k = self.schedule.kappa(t).to(x.dtype)
        ell, mx = self._logits(x, k)
        e = ell.exp() if self.precise else ell.exp_()
        if not derivatives:
            log_prob = (vmf_log_normalizer(k).to(mx.dtype) + mx + torch.log(e.sum(dim=1)).to(mx.dtype)).to(x.dtype)
            return PathQuantities(self._floored(log_prob)[0], log_prob.new_empty(0), log_prob.new_empty(0))
        moments = self._moments_t @ e.T  # (4 or 5, B): sum_i e_i y_i, sum_i e_i (and sum_i e_i c_i)
        s = moments[3]
        log_prob = (vmf_log_normalizer(k).to(mx.dtype) + mx + torch.log(s).to(mx.dtype)).to(x.dtype)
        m = moments[:3].T / s[:, None]
        xm = (x * m).sum(dim=1)
        if self.precise:  # the bracket is a difference of two terms of size 1/k: formed in float64
            bracket = vmf_dlog_normalizer(k.double()) + self._mean_log_kernel(x, k, ell, e, mx, moments, s)
            dlog = self.schedule.dkappa(t).to(x.dtype) * bracket.to(x.dtype)
        else:
            dlog = self.schedule.dkappa(t).to(x.dtype) * (vmf_dlog_normalizer(k) + xm - 1.0)
        grad = k[:, None] * (m - xm[:, None] * x)
        if self.floor > 0.0:
            log_prob, rho = self._floored(log_prob)
            dlog, grad = rho * dlog, rho[:, None] * grad
        return PathQuantities(log_prob, dlog, grad)

    def _fused_scaled(self, x: Tensor, t: Tensor, derivatives: bool) -> PathQuantities:
        """:meth:`_fused` for the adaptive kernel (module doc): one product over the ``B x N`` table, plus
        a ``B x G`` table over the ``G`` distinct scales for the uniform remainders."""
        # k = 0 (t = 0) would give log k = -inf against a weight rho = 0; at 1e-20 every term is finite
        # and the path is uniform to about 1e-20.
        k = self.schedule.kappa(t).to(x.dtype).clamp(min=_TINY_KAPPA)
        ell, mx = self._logits(x, k)  # s_i k(<x, y_i> - 1) + log pi_i + log s_i, less its largest
        e = ell.exp() if self.precise else ell.exp_()
        # the uniform remainders: log U = log sum_g P_g exp(-2 k sigma_g) over the distinct scales sigma_g
        lu = self._group_log_w - 2.0 * k[:, None] * self._group_scales
        log_u = torch.logsumexp(lu, dim=1)
        log_k = torch.log(k) - LOG_2PI
        if not derivatives:
            log_vmf = (log_k.to(mx.dtype) + mx + torch.log(e.sum(dim=1)).to(mx.dtype)).to(x.dtype)
            return PathQuantities(self._with_remainder(log_vmf, log_u)[0], log_vmf.new_empty(0), log_vmf.new_empty(0))
        moments = self._moments_t @ e.T  # (5 or 6, B): sum_i e_i s_i y_i, sum_i e_i s_i, sum_i e_i (, e_i c_i)
        total = moments[4]
        log_vmf = (log_k.to(mx.dtype) + mx + torch.log(total).to(mx.dtype)).to(x.dtype)
        m = moments[:3].T / total[:, None]
        xm = (x * m).sum(dim=1)
        log_prob, rho, u_share = self._with_remainder(log_vmf, log_u)
        dk = self.schedule.dkappa(t).to(x.dtype)
        mean_sigma = (torch.softmax(lu, dim=1) * self._group_scales).sum(dim=1)
        if self.precise:
            bracket = (1.0 / k.double() + self._mean_log_kernel(x, k, ell, e, mx, moments, total)).to(x.dtype)
        else:
            bracket = 1.0 / k + xm - moments[3] / total
        dlog = rho * dk * bracket - (1.0 - rho) * u_share * 2.0 * dk * mean_sigma
        grad = (rho * k)[:, None] * (m - xm[:, None] * x)
        return PathQuantities(log_prob, dlog, grad)

    def _with_remainder(self, log_vmf: Tensor, log_u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``log p`` of the adaptive path from the log of its vMF part and of its remainders' total ``U``,
        with the floor: ``p = (1 - w)(vmf + U / 4 pi) + w / 4 pi``. Also the vMF part's responsibility
        ``rho`` and the remainders' share ``(1 - w) U / ((1 - w) U + w)`` of the uniform part."""
        a = log_vmf + math.log1p(-self.floor)
        if self.floor > 0.0:
            r = log_u + math.log1p(-self.floor)
            b = torch.logaddexp(r, torch.full_like(r, math.log(self.floor)))
            u_share = torch.sigmoid(r - math.log(self.floor))
        else:
            b, u_share = log_u, torch.ones_like(log_u)
        b = b - LOG_AREA
        return torch.logaddexp(a, b), torch.sigmoid(a - b), u_share

    @torch.no_grad()
    def sample(self, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``x_j ~ p_{t_j}``, one for each entry of ``t`` (shape ``(n,)``)."""
        idx = torch.randint(self.n_data, (t.shape[0],), generator=generator, device=self.centers.device)
        centre = self._point_to_center[idx]
        mu = self.centers[centre]
        kappa = self.schedule.kappa(t).to(mu.dtype)
        if self.scales is not None:
            kappa = kappa * self.scales[centre]
        x = sample_vmf(mu, kappa, generator=generator)
        if self.scales is not None:  # an adaptive kernel is uniform with probability e^{-2 kappa}
            u = torch.rand(t.shape[0], generator=generator, dtype=mu.dtype, device=mu.device)
            remainder = u < torch.exp(-2.0 * kappa)
            x = torch.where(remainder[:, None], sample_uniform(t.shape[0], generator=generator, dtype=mu.dtype,
                                                               device=mu.device), x)
        if self.floor > 0.0:  # with probability w the point comes from the uniform component
            n, kw = t.shape[0], dict(dtype=mu.dtype, device=mu.device)
            from_floor = torch.rand(n, generator=generator, **kw) < self.floor
            x = torch.where(from_floor[:, None], sample_uniform(n, generator=generator, **kw), x)
        return x
