"""The baseline every table carries: a kernel density estimate with a uniform floor, on S² the vMF one,

    p(x) = (1 - w) (1/N) sum_i vMF(x; y_i, kappa) + w / (4 pi),

with ``kappa`` and ``w`` chosen on validation points. It is the PPD target path at ``t = 1`` with a linear
schedule ending at ``kappa``, so a manifold plugs in its kernel through
:data:`cnfm_core.targets.TARGET_PATHS` (``manifold=`` names it; the floor is ``w / vol(M)``). Computed in
float64 (large ``kappa`` needs it: ``kappa (<x, y> - 1)`` loses ``kappa * 1e-7`` in float32).

The adaptive variant gives each kernel its own concentration from the local spacing of the data,
``kappa_i = a / r_k(y_i)^2`` with ``r_k`` the chord distance from ``y_i`` to its k-th nearest other
(distinct) training location, clipped to :data:`ADAPTIVE_RANGE`; ``(k, a, w)`` are chosen on
validation points (:func:`fit_adaptive_kde`). The adaptive variant is the sphere's only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import KERNEL_CAP
from .paths import TargetPath
from .schedules import LinearSchedule
from .sphere import SPHERE
from .targets import make_target_path

__all__ = [
    "ADAPTIVE_RANGE",
    "KAPPA_GRID",
    "NEIGHBOUR_GRID",
    "SCALE_GRID",
    "WEIGHT_GRID",
    "AdaptiveKDEFit",
    "KDEFit",
    "adaptive_kappas",
    "fit_adaptive_kde",
    "fit_kde",
    "kde_log_prob",
]

#: Concentrations tried by :func:`fit_kde` (log-spaced, 1 to 1e8: on data with repeated locations the best
#: kernel is as sharp as the grid allows).
KAPPA_GRID: tuple[float, ...] = tuple(float(k) for k in np.logspace(0, 8, 33))
#: Uniform-floor weights tried by :func:`fit_kde`.
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
#: Neighbour ranks ``k`` and scales ``a`` tried by :func:`fit_adaptive_kde`.
NEIGHBOUR_GRID: tuple[int, ...] = (1, 3, 10, 30)
SCALE_GRID: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
#: Bounds of the per-point concentrations: below 10 a kernel is wider than a hemisphere; the upper bound
#: is the default of ``TrainConfig.kernel_cap`` (:data:`cnfm_core.config.KERNEL_CAP`, 1e8, a kernel 0.6 km
#: wide, which float32 paths resolve since their logits come from chord distances); runs made before it
#: clipped at 3e5. Every function below takes the upper bound as ``cap``.
ADAPTIVE_RANGE: tuple[float, float] = (10.0, KERNEL_CAP)
#: Per-point concentrations are rounded to this many levels per doubling (steps of 9 %), so that a path over
#: them has about a hundred distinct concentrations rather than one per point
#: (:class:`cnfm_core.paths.VMFMixturePath` sums its uniform remainders per distinct one).
LEVELS_PER_DOUBLING = 8
#: Entries of the distance table held at once by the neighbour search (32 MB in float64).
_TABLE_ENTRIES = 1 << 22


def kde_log_prob(x: np.ndarray, centers: np.ndarray, kappa: float | np.ndarray, weight: float, *,
                 manifold: str = "sphere") -> np.ndarray:
    """Log-density of the floored KDE at points ``x`` (``(B, D)``), in float64: the named manifold's target
    path over ``centers`` at ``t = 1`` (:data:`cnfm_core.targets.TARGET_PATHS`).

    ``kappa`` is one concentration, or one per centre (the adaptive kernel).
    """
    return _log_prob(_kde_path(centers, kappa, weight, manifold), x, manifold)


def _points(x: np.ndarray, manifold: str) -> torch.Tensor:
    """Points as float64; on the sphere normalised in float64 (module doc)."""
    x = np.asarray(x, dtype=np.float64)
    if manifold == "sphere":
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return torch.as_tensor(x)


def _kde_path(centers: np.ndarray, kappa: float | np.ndarray, weight: float, manifold: str) -> TargetPath:
    """The KDE as the manifold's target path at ``t = 1`` (float64)."""
    centers = _points(centers, manifold)
    if np.ndim(kappa) == 0:
        return make_target_path(manifold, centers, LinearSchedule(float(kappa)), floor=max(weight, 0.0))
    return make_target_path(manifold, centers, LinearSchedule(1.0), floor=max(weight, 0.0),
                            scales=torch.as_tensor(np.asarray(kappa, dtype=np.float64)))


def _log_prob(path: TargetPath, x: np.ndarray, manifold: str) -> np.ndarray:
    return path.log_prob(_points(x, manifold), 1.0).numpy()


def _floored(lp: np.ndarray, w: float, log_volume: float) -> np.ndarray:
    """``log((1 - w) p + w / vol)`` from ``log p``."""
    return lp if w <= 0 else np.logaddexp(math.log1p(-w) + lp, math.log(w) - log_volume)


def _knn_chord2(centers: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """Squared chord distance from each of the (distinct) ``centers`` to its k-th nearest other one, for each
    ``k`` in ``ks`` (each at most ``len(centers) - 1``): shape ``(len(ks), len(centers))``."""
    out = np.empty((len(ks), len(centers)))
    step = max(1, _TABLE_ENTRIES // len(centers))
    for s in range(0, len(centers), step):
        d2 = np.clip(2.0 - 2.0 * centers[s : s + step] @ centers.T, 0.0, 4.0)
        out[:, s : s + step] = np.partition(d2, ks, axis=1)[:, list(ks)].T  # column 0 is the centre itself
    return out


def _rounded_kappas(r2: np.ndarray, a: float, hi: float) -> np.ndarray:
    lo = ADAPTIVE_RANGE[0]
    levels = np.round(LEVELS_PER_DOUBLING * np.log2(np.clip(a / np.maximum(r2, 1e-300), lo, hi) / lo))
    return np.minimum(lo * np.exp2(levels / LEVELS_PER_DOUBLING), hi)


def _neighbour_distances(train: np.ndarray, ks: tuple[int, ...]) -> tuple[dict[int, np.ndarray] | None, np.ndarray]:
    """``{k: r_k^2 per distinct location}`` (None for a single location) and each point's location index."""
    train = np.asarray(train, dtype=np.float64).reshape(-1, 3)
    centers, inverse = np.unique(train, axis=0, return_inverse=True)
    if len(centers) < 2:
        return None, inverse.reshape(-1)
    capped = tuple(min(k, len(centers) - 1) for k in ks)
    ranks = tuple(sorted(set(capped)))
    r2 = _knn_chord2(centers, ranks)
    return {k: r2[ranks.index(c)] for k, c in zip(ks, capped, strict=True)}, inverse.reshape(-1)


def _kappas(r2: dict[int, np.ndarray] | None, inverse: np.ndarray, k: int, a: float, cap: float) -> np.ndarray:
    """Per-point concentrations from :func:`_neighbour_distances`' output (a single location: the sharpest)."""
    if r2 is None:
        return np.full(len(inverse), cap)
    return _rounded_kappas(r2[k], a, cap)[inverse]


def adaptive_kappas(train: np.ndarray, k: int, a: float, *, cap: float = ADAPTIVE_RANGE[1]) -> np.ndarray:
    """``kappa_i = a / r_k(y_i)^2`` for every training point (repeated points share theirs), clipped
    to ``[ADAPTIVE_RANGE[0], cap]`` and rounded to :data:`LEVELS_PER_DOUBLING` levels per doubling; ``k`` is
    capped at the number of distinct locations minus one."""
    return _kappas(*_neighbour_distances(train, (k,)), k, a, cap)


@dataclass(frozen=True)
class KDEFit:
    """The chosen concentration and floor weight, and the validation NLL they gave."""

    kappa: float
    weight: float
    val_nll: float


def fit_kde(train: np.ndarray, val: np.ndarray, *, kappas: tuple[float, ...] = KAPPA_GRID,
            weights: tuple[float, ...] = WEIGHT_GRID, manifold: str = "sphere") -> KDEFit:
    """Grid search of ``(kappa, w)`` minimising the mean validation NLL, on the named manifold."""
    if len(val) == 0:
        raise ValueError("fit_kde needs at least one validation point")
    best = KDEFit(math.nan, math.nan, math.inf)
    for kappa in kappas:
        path = _kde_path(train, kappa, 0.0, manifold)
        lp, log_volume = _log_prob(path, val, manifold), path.manifold.log_volume
        for w in weights:
            nll = float(-np.mean(_floored(lp, w, log_volume)))
            if nll < best.val_nll:
                best = KDEFit(kappa, w, nll)
    return best


@dataclass(frozen=True)
class AdaptiveKDEFit:
    """The chosen neighbour rank, scale and floor weight, and the validation NLL they gave."""

    neighbours: int
    scale: float
    weight: float
    val_nll: float


def fit_adaptive_kde(train: np.ndarray, val: np.ndarray, *, neighbours: tuple[int, ...] = NEIGHBOUR_GRID,
                     scales: tuple[float, ...] = SCALE_GRID,
                     weights: tuple[float, ...] = WEIGHT_GRID, cap: float = ADAPTIVE_RANGE[1]) -> AdaptiveKDEFit:
    """Grid search of ``(k, a, w)`` for the adaptive KDE (module doc, concentrations up to ``cap``), minimising
    the mean validation NLL."""
    if len(val) == 0:
        raise ValueError("fit_adaptive_kde needs at least one validation point")
    log_volume = SPHERE.log_volume
    best = AdaptiveKDEFit(0, math.nan, math.nan, math.inf)
    r2, inverse = _neighbour_distances(train, tuple(neighbours))
    for k in neighbours:
        for a in scales:
            lp = kde_log_prob(val, train, _kappas(r2, inverse, k, a, cap), 0.0)
            for w in weights:
                nll = float(-np.mean(_floored(lp, w, log_volume)))
                if nll < best.val_nll:
                    best = AdaptiveKDEFit(k, a, w, nll)
    return best
