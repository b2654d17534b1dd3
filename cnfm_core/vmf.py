"""One von Mises-Fisher (vMF) distribution on S^2 in closed form: its log normaliser and that normaliser's
derivative (stable from k = 0 to very large k), its log density, and exact samples.

With ``c(k) = k / (2 pi (1 - e^{-2k}))`` the density w.r.t. area is ``vMF(x; mu, k) = c(k) exp(k (<mu, x> - 1))``,
which tends to the uniform ``1 / 4 pi`` as ``k -> 0``. :mod:`cnfm_core.paths` builds the target path's mixture from
these.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .sphere import projx, tangent_frame

__all__ = ["LOG_2PI", "sample_vmf", "vmf_dlog_normalizer", "vmf_log_normalizer", "vmf_log_prob"]

LOG_2PI = math.log(2.0 * math.pi)


def vmf_log_normalizer(kappa: Tensor) -> Tensor:
    """``log c(k)`` with ``c(k) = k / (2 pi (1 - e^{-2k}))``, so ``vMF = c(k) exp(k(<mu,x> - 1))``.

    Uses the series ``log c = k - log 2 - k^2/6 + k^4/180 - log 2 pi`` below ``k = 0.05``
    (error < 1e-11), which makes ``k = 0`` give exactly ``-log 4 pi``.
    """
    small = kappa < 0.05
    ks = torch.where(small, torch.ones_like(kappa), kappa)
    direct = torch.log(ks) - torch.log(-torch.expm1(-2.0 * ks))
    k2 = kappa * kappa
    series = kappa - math.log(2.0) - k2 / 6.0 + k2 * k2 / 180.0
    return torch.where(small, series, direct) - LOG_2PI


def vmf_dlog_normalizer(kappa: Tensor) -> Tensor:
    """``d/dk log c(k) = 1/k - 2 / (e^{2k} - 1)``, with the series
    ``1 - k/3 + k^3/45 - 2k^5/945 + k^7/4725`` below 0.1 (error < 3e-14)."""
    small = kappa < 0.1
    ks = torch.where(small, torch.ones_like(kappa), kappa)
    direct = 1.0 / ks - 2.0 / torch.expm1(2.0 * ks)
    k2 = kappa * kappa
    series = 1.0 - kappa / 3.0 + kappa * k2 * (1.0 / 45.0 - k2 * (2.0 / 945.0 - k2 / 4725.0))
    return torch.where(small, series, direct)


def vmf_log_prob(x: Tensor, mu: Tensor, kappa: Tensor | float) -> Tensor:
    """Log-density (w.r.t. area) of ``vMF(mu, kappa)`` at ``x``; broadcasts over leading dims."""
    kappa = torch.as_tensor(kappa, dtype=x.dtype, device=x.device)
    return vmf_log_normalizer(kappa) + kappa * ((x * mu).sum(-1) - 1.0)


def sample_vmf(mu: Tensor, kappa: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Exact samples of ``vMF(mu_j, kappa_j)`` on S^2, one per row of ``mu`` (shape ``(n, 3)``).

    On S^2 the cosine ``w = <x, mu>`` has a closed-form inverse CDF,
    ``1 - w = -log(1 + (1 - u)(e^{-2k} - 1)) / k``, computed with ``log1p``/``expm1`` so that it
    is accurate from ``k = 0`` (uniform) to very large ``k`` (``1 - w`` is never formed by
    cancellation).
    """
    n = mu.shape[0]
    kw = dict(generator=generator, dtype=mu.dtype, device=mu.device)
    u = torch.rand(n, **kw)
    phi = torch.rand(n, **kw) * (2.0 * math.pi)
    tiny = torch.finfo(mu.dtype).tiny
    k = kappa.to(mu.dtype).clamp(min=1e3 * tiny)
    one_minus_w = (-torch.log1p((1.0 - u) * torch.expm1(-2.0 * k)) / k).clamp(0.0, 2.0)
    w = 1.0 - one_minus_w
    r = torch.sqrt(one_minus_w * (2.0 - one_minus_w))
    e1, e2 = tangent_frame(mu)
    x = w[:, None] * mu + r[:, None] * (torch.cos(phi)[:, None] * e1 + torch.sin(phi)[:, None] * e2)
    return projx(x)
