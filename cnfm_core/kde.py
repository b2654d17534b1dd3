"""The baseline every table carries: a vMF kernel density estimate with a uniform floor,

    p(x) = (1 - w) (1/N) sum_i vMF(x; y_i, kappa) + w / (4 pi),

with ``kappa`` and ``w`` chosen on validation points. Computed in float64 (large ``kappa``
needs it: ``kappa (<x, y> - 1)`` loses ``kappa * 1e-7`` in float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .paths import LinearSchedule, VMFMixturePath
from .sphere import LOG_AREA

__all__ = ["KAPPA_GRID", "WEIGHT_GRID", "KDEFit", "fit_kde", "kde_log_prob"]

#: Concentrations tried by :func:`fit_kde` (log-spaced, 1 to 1e8: on data with repeated locations the best
#: kernel is as sharp as the grid allows).
KAPPA_GRID: tuple[float, ...] = tuple(float(k) for k in np.logspace(0, 8, 33))
#: Uniform-floor weights tried by :func:`fit_kde`.
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)


def kde_log_prob(x: np.ndarray, centers: np.ndarray, kappa: float, weight: float) -> np.ndarray:
    """Log-density of the floored vMF KDE at points ``x`` (``(B, 3)``), in float64."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    centers = torch.as_tensor(np.asarray(centers, dtype=np.float64))
    return VMFMixturePath(centers, LinearSchedule(kappa), floor=max(weight, 0.0)).log_prob(xt, 1.0).numpy()


@dataclass(frozen=True)
class KDEFit:
    """The chosen concentration and floor weight, and the validation NLL they gave."""

    kappa: float
    weight: float
    val_nll: float


def fit_kde(train: np.ndarray, val: np.ndarray, *, kappas: tuple[float, ...] = KAPPA_GRID,
            weights: tuple[float, ...] = WEIGHT_GRID) -> KDEFit:
    """Grid search of ``(kappa, w)`` minimising the mean validation NLL."""
    if len(val) == 0:
        raise ValueError("fit_kde needs at least one validation point")
    best = KDEFit(math.nan, math.nan, math.inf)
    for kappa in kappas:
        lp = kde_log_prob(val, train, kappa, 0.0)
        for w in weights:
            mixed = lp if w <= 0 else np.logaddexp(math.log1p(-w) + lp, math.log(w) - LOG_AREA)
            nll = float(-np.mean(mixed))
            if nll < best.val_nll:
                best = KDEFit(kappa, w, nll)
    return best
