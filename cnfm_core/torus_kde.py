"""The torus baseline: a von Mises product kernel density estimate with a uniform floor,

    p(x) = (1 - w) (1/N) sum_i prod_j vM(x_j; y_ij, κ) + w (2π)^-d,

with ``κ`` and ``w`` chosen on validation points by a grid search (as :func:`cnfm_core.kde.fit_kde`
does on the sphere). Computed in float64 by :class:`cnfm_core.torus_path.VonMisesMixturePath` at ``t = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .kde import WEIGHT_GRID
from .schedules import LinearSchedule
from .torus_path import VonMisesMixturePath

__all__ = ["TORUS_KAPPA_GRID", "TorusKDEFit", "fit_torus_kde", "torus_kde_log_prob"]

#: Concentrations tried by :func:`fit_torus_kde` (log-spaced, 0.1 to 1e6 per coordinate: a kernel width
#: ``1/sqrt(κ)`` from about 180 degrees down to 0.06 degrees).
TORUS_KAPPA_GRID: tuple[float, ...] = tuple(float(k) for k in np.logspace(-1, 6, 29))


def torus_kde_log_prob(x: np.ndarray, centers: np.ndarray, kappa: float, weight: float) -> np.ndarray:
    """Log-density (w.r.t. Lebesgue measure on ``[-π, π)ᵈ``) of the floored KDE at ``x`` ``(B, d)``, in float64."""
    path = VonMisesMixturePath(torch.as_tensor(np.asarray(centers, dtype=np.float64)), LinearSchedule(float(kappa)),
                               floor=max(weight, 0.0))
    return path.log_prob(torch.as_tensor(np.asarray(x, dtype=np.float64)), 1.0).numpy()


@dataclass(frozen=True)
class TorusKDEFit:
    """The chosen concentration and floor weight, and the mean validation NLL (nats) they gave."""

    kappa: float
    weight: float
    val_nll: float


def fit_torus_kde(train: np.ndarray, val: np.ndarray, *, kappas: tuple[float, ...] = TORUS_KAPPA_GRID,
                  weights: tuple[float, ...] = WEIGHT_GRID) -> TorusKDEFit:
    """Grid search of ``(κ, w)`` minimising the mean validation NLL of the floored KDE.

    >>> rng = np.random.default_rng(0)
    >>> pts = np.angle(np.exp(1j * rng.vonmises(0.0, 20.0, size=(400, 2))))
    >>> fit = fit_torus_kde(pts[:300], pts[300:])
    >>> 5.0 < fit.kappa < 200.0
    True
    """
    train = np.asarray(train, dtype=np.float64)
    val = np.asarray(val, dtype=np.float64)
    if len(val) == 0 or val.ndim != 2 or train.ndim != 2 or train.shape[1] != val.shape[1]:
        raise ValueError("fit_torus_kde needs (N, d) training and (M, d) validation angles with M >= 1")
    log_volume = train.shape[1] * math.log(2.0 * math.pi)
    best = TorusKDEFit(math.nan, math.nan, math.inf)
    for kappa in kappas:
        lp = torus_kde_log_prob(val, train, kappa, 0.0)
        for w in weights:
            mixed = lp if w <= 0 else np.logaddexp(math.log1p(-w) + lp, math.log(w) - log_volume)
            nll = float(-np.mean(mixed))
            if nll < best.val_nll:
                best = TorusKDEFit(kappa, w, nll)
    return best
