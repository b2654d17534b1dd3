"""The torus baseline: a von Mises product kernel density estimate with a uniform floor,

    p(x) = (1 - w) (1/N) sum_i prod_j vM(x_j; y_ij, κ) + w (2π)^-d,

with ``κ`` and ``w`` chosen on validation points by a grid search (as :func:`cnfm_core.kde.fit_kde`
does on the sphere). Computed in float64 by :class:`cnfm_core.torus_path.VonMisesMixturePath` at ``t = 1``.

The adaptive variant gives each kernel its own concentration per coordinate from the spread of its
neighbours: with ``N_k(i)`` the ``k`` nearest other (distinct) training locations of ``y_i`` in the chord
distance ``r²(x, y) = sum_j 2 (1 - cos(x_j - y_j))`` (the one the kernel's exponent ``-κ r²/2`` uses),

    κ_ij = a / v_ij,        v_ij = (1/k) sum_{n in N_k(i)} 2 (1 - cos(y_nj - y_ij)),

clipped to :data:`TORUS_ADAPTIVE_RANGE` and rounded to :data:`cnfm_core.kde.LEVELS_PER_DOUBLING` levels per
doubling (the path's cost grows with the number of distinct concentrations). ``(k, a, w)`` are chosen on
validation points (:func:`fit_torus_adaptive_kde`). On the T⁷ mixture of bench/bench_torus.py this KDE is
0.24 nats above the truth on the validation points where the best single-κ one is 0.46 above (docs/torus.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .kde import LEVELS_PER_DOUBLING, WEIGHT_GRID
from .schedules import LinearSchedule
from .torus_path import VonMisesMixturePath

__all__ = ["TORUS_ADAPTIVE_RANGE", "TORUS_KAPPA_GRID", "TORUS_NEIGHBOUR_GRID", "TORUS_SCALE_GRID",
           "TorusAdaptiveFit", "TorusKDEFit", "fit_torus_adaptive_kde", "fit_torus_kde", "torus_adaptive_kappas",
           "torus_kde_log_prob"]

#: Concentrations tried by :func:`fit_torus_kde` (log-spaced, 0.1 to 1e6 per coordinate: a kernel width
#: ``1/sqrt(κ)`` from about 180 degrees down to 0.06 degrees).
TORUS_KAPPA_GRID: tuple[float, ...] = tuple(float(k) for k in np.logspace(-1, 6, 29))
#: Neighbour ranks ``k`` and scales ``a`` tried by :func:`fit_torus_adaptive_kde`.
TORUS_NEIGHBOUR_GRID: tuple[int, ...] = (10, 30, 100, 300)
TORUS_SCALE_GRID: tuple[float, ...] = tuple(float(a) for a in np.logspace(-0.5, 1.0, 7))
#: Bounds of the per-point concentrations (a kernel nearly uniform, and the torus rule's cap, whose float32
#: error :mod:`cnfm_core.torus_auto` bounds).
TORUS_ADAPTIVE_RANGE: tuple[float, float] = (0.01, 1e5)
#: Entries of the distance table held at once by the neighbour search (32 MB in float64).
_TABLE_ENTRIES = 1 << 22


def torus_kde_log_prob(x: np.ndarray, centers: np.ndarray, kappa: float | np.ndarray, weight: float) -> np.ndarray:
    """Log-density (w.r.t. Lebesgue measure on ``[-π, π)ᵈ``) of the floored KDE at ``x`` ``(B, d)``, in float64.

    ``kappa`` is one concentration, or one per centre ``(N,)`` or per centre and coordinate ``(N, d)``."""
    centers_t = torch.as_tensor(np.asarray(centers, dtype=np.float64))
    if np.ndim(kappa) == 0:
        path = VonMisesMixturePath(centers_t, LinearSchedule(float(kappa)), floor=max(weight, 0.0))
    else:
        path = VonMisesMixturePath(centers_t, LinearSchedule(1.0), floor=max(weight, 0.0),
                                   scales=torch.as_tensor(np.asarray(kappa, dtype=np.float64)))
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


def _neighbour_spreads(train: np.ndarray, ks: tuple[int, ...]) -> tuple[dict[int, np.ndarray] | None, np.ndarray]:
    """``{k: v (distinct locations, d)}`` (module doc; None for a single location) and each point's location."""
    train = np.asarray(train, dtype=np.float64)
    centers, inverse = np.unique(train, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n, d = centers.shape
    if n < 2:
        return None, inverse
    capped = tuple(min(k, n - 1) for k in ks)
    top = max(capped)
    cs = np.concatenate([np.cos(centers), np.sin(centers)], axis=1)
    nearest = np.empty((n, top), dtype=np.int64)
    step = max(1, _TABLE_ENTRIES // n)
    for s in range(0, n, step):
        r2 = 2.0 * d - 2.0 * cs[s : s + step] @ cs.T  # chord distance, squared
        r2[np.arange(len(r2)), np.arange(s, s + len(r2))] = np.inf
        part = np.argpartition(r2, top - 1, axis=1)[:, :top]
        order = np.argsort(np.take_along_axis(r2, part, axis=1), axis=1)
        nearest[s : s + step] = np.take_along_axis(part, order, axis=1)
    spread = np.zeros((n, d))
    out: dict[int, np.ndarray] = {}
    done = 0
    for k in sorted(set(capped)):
        for m in range(done, k):
            spread += 2.0 * (1.0 - np.cos(centers[nearest[:, m]] - centers))
        done = k
        out[k] = spread / k
    return {k: out[c] for k, c in zip(ks, capped, strict=True)}, inverse


def _rounded(v: np.ndarray, a: float, cap: float) -> np.ndarray:
    lo = TORUS_ADAPTIVE_RANGE[0]
    kappa = np.clip(a / np.maximum(v, 1e-300), lo, cap)
    return np.minimum(lo * np.exp2(np.round(LEVELS_PER_DOUBLING * np.log2(kappa / lo)) / LEVELS_PER_DOUBLING), cap)


def _kappas(v: dict[int, np.ndarray] | None, inverse: np.ndarray, d: int, k: int, a: float, cap: float) -> np.ndarray:
    if v is None:
        return np.full((len(inverse), d), cap)
    return _rounded(v[k], a, cap)[inverse]


def torus_adaptive_kappas(train: np.ndarray, k: int, a: float, *, cap: float = TORUS_ADAPTIVE_RANGE[1]) -> np.ndarray:
    """``κ_ij = a / v_ij`` (module doc) for every training point ``(N, d)`` (repeated points share theirs),
    clipped to ``[TORUS_ADAPTIVE_RANGE[0], cap]`` and rounded to levels; ``cap`` is held to
    ``TORUS_ADAPTIVE_RANGE[1]`` (above it float32 loses precision, :mod:`cnfm_core.torus_auto`), so a run's
    ``kernel_cap`` (the sphere's 1e8 by default) cannot pass it; ``k`` is capped at the number of distinct locations
    minus one (a single location gets ``cap``).

    >>> pts = np.array([[0.0, 0.0], [0.1, 1.0], [-0.1, -1.0]])
    >>> torus_adaptive_kappas(pts, 2, 1.0).shape
    (3, 2)
    """
    train = np.asarray(train, dtype=np.float64)
    return _kappas(*_neighbour_spreads(train, (k,)), train.shape[1], k, a, min(cap, TORUS_ADAPTIVE_RANGE[1]))


@dataclass(frozen=True)
class TorusAdaptiveFit:
    """The chosen neighbour rank, scale and floor weight, and the mean validation NLL (nats) they gave."""

    neighbours: int
    scale: float
    weight: float
    val_nll: float


def fit_torus_adaptive_kde(train: np.ndarray, val: np.ndarray, *, neighbours: tuple[int, ...] = TORUS_NEIGHBOUR_GRID,
                           scales: tuple[float, ...] = TORUS_SCALE_GRID, weights: tuple[float, ...] = WEIGHT_GRID,
                           cap: float = TORUS_ADAPTIVE_RANGE[1]) -> TorusAdaptiveFit:
    """Grid search of ``(k, a, w)`` for the adaptive KDE (module doc), minimising the mean validation NLL."""
    train = np.asarray(train, dtype=np.float64)
    val = np.asarray(val, dtype=np.float64)
    if len(val) == 0 or val.ndim != 2 or train.ndim != 2 or train.shape[1] != val.shape[1]:
        raise ValueError("fit_torus_adaptive_kde needs (N, d) training and (M, d) validation angles with M >= 1")
    d = train.shape[1]
    log_volume = d * math.log(2.0 * math.pi)
    v, inverse = _neighbour_spreads(train, tuple(neighbours))
    best = TorusAdaptiveFit(0, math.nan, math.nan, math.inf)
    for k in neighbours:
        for a in scales:
            lp = torus_kde_log_prob(val, train, _kappas(v, inverse, d, k, a, cap), 0.0)
            for w in weights:
                mixed = lp if w <= 0 else np.logaddexp(math.log1p(-w) + lp, math.log(w) - log_volume)
                nll = float(-np.mean(mixed))
                if nll < best.val_nll:
                    best = TorusAdaptiveFit(k, a, w, nll)
    return best
