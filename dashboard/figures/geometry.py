"""Pure numpy on lat/lon point sets, paths and grids, for any renderer: checked coordinates, seeded
subsamples, the mean direction of points, great-circle paths cut at the antimeridian, the PPD
residual weighted by a density on a grid, and the kernel-density baseline of a run on a grid.

Arguments are ``lat, lon`` in degrees; path pieces are ``[lon, lat]`` lists, as GeoJSON and deck.gl
take them. Unit vectors come from :func:`cnfm_core.geo.latlon_to_xyz` (numpy, no torch).

>>> as_latlon([10.0], [20.0])
(array([10.]), array([20.]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnfm_core.geo import LOG_AREA, latlon_to_xyz
from cnfm_core.grid import cell_areas

__all__ = [
    "WeightedResidual",
    "as_latlon",
    "cell_areas",
    "kde_cell_means",
    "kde_log_prob",
    "split_antimeridian",
    "subsample",
    "trajectory_paths",
    "view_centre",
    "weighted_residual",
]


def as_latlon(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 copies of ``lat`` and ``lon``, checked to have the same length."""
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    if lat.shape != lon.shape:
        raise ValueError(f"lat and lon must have the same length, got {lat.size} and {lon.size}")
    return lat, lon


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded uniform subsample without replacement of ``range(n)``.

    >>> subsample(3, 5, seed=0).tolist()
    [0, 1, 2]
    """
    if max_points < 0:
        raise ValueError(f"max_points must be >= 0, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def view_centre(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """``(lat, lon)`` in degrees of the mean direction of points, to centre a globe on them
    (``(20, 0)`` when there are none or they cancel out).

    >>> view_centre(np.array([10.0, -10.0]), np.array([170.0, -170.0]))
    (0.0, 180.0)
    """
    lat, lon = as_latlon(lat, lon)
    xyz = latlon_to_xyz(lat, lon).sum(axis=0)
    norm = float(np.linalg.norm(xyz))
    if not lat.size or norm < 1e-9 * lat.size:
        return 20.0, 0.0
    x, y, z = (xyz / norm).tolist()
    return round(math.degrees(math.asin(max(-1.0, min(1.0, z)))), 6), round(math.degrees(math.atan2(y, x)), 6)


def _slerp_path(lat: np.ndarray, lon: np.ndarray, max_step_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Points along the great-circle arcs between consecutive ``(lat, lon)``, at most ``max_step_deg`` apart."""
    xyz = latlon_to_xyz(lat, lon)
    pieces = [xyz[:1]]
    for a, b in zip(xyz[:-1], xyz[1:], strict=True):
        angle = math.atan2(float(np.linalg.norm(np.cross(a, b))), float(a @ b))
        n = max(1, math.ceil(math.degrees(angle) / max_step_deg))
        if n == 1 or angle < 1e-12:
            pieces.append(b[None])
            continue
        s = np.linspace(0.0, 1.0, n + 1)[1:, None]
        pieces.append((np.sin((1 - s) * angle) * a + np.sin(s * angle) * b) / math.sin(angle))
    p = np.concatenate(pieces)
    p = p / np.linalg.norm(p, axis=-1, keepdims=True)
    return np.rad2deg(np.arcsin(np.clip(p[:, 2], -1.0, 1.0))), np.rad2deg(np.arctan2(p[:, 1], p[:, 0]))


def split_antimeridian(lat: np.ndarray, lon: np.ndarray) -> list[list[list[float]]]:
    """A path of ``(lat, lon)`` points as ``[lon, lat]`` pieces that never jump across the antimeridian.

    Where consecutive points are more than 180 deg of longitude apart the path crosses lon = +-180;
    it is cut there, the first piece ending and the next starting at the crossing (its latitude
    interpolated), so a flat or a globe renderer draws no line across the whole map.

    >>> split_antimeridian(np.array([0.0, 10.0]), np.array([170.0, -170.0]))
    [[[170.0, 0.0], [180.0, 5.0]], [[-180.0, 5.0], [-170.0, 10.0]]]
    """
    lat, lon = as_latlon(lat, lon)
    pieces: list[list[list[float]]] = []
    current: list[list[float]] = []
    for i in range(lat.size):
        if current and abs(lon[i] - lon[i - 1]) > 180.0:
            edge = 180.0 if lon[i - 1] > 0 else -180.0
            unwrapped = lon[i] + 2 * edge
            frac = (edge - lon[i - 1]) / (unwrapped - lon[i - 1])
            lat_c = float(lat[i - 1] + frac * (lat[i] - lat[i - 1]))
            current.append([edge, lat_c])
            pieces.append(current)
            current = [[-edge, lat_c]]
        current.append([float(lon[i]), float(lat[i])])
    if current:
        pieces.append(current)
    return pieces


def trajectory_paths(trajectories: np.ndarray, upto: int, *, max_step_deg: float = 5.0) -> list[list[list[float]]]:
    """Every particle's path from frame 0 to frame ``upto`` as ``[lon, lat]`` pieces for a deck.gl
    ``PathLayer``: consecutive frames joined by great-circle arcs (at most ``max_step_deg`` between
    vertices, so that no chord cuts through the globe), split at the antimeridian
    (see :func:`split_antimeridian`). ``trajectories`` is ``(K, M, 2)`` as ``(lat, lon)``; pieces of a
    single point are left out, so ``upto=0`` gives no path.
    """
    traj = np.asarray(trajectories, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[-1] != 2:
        raise ValueError(f"trajectories must have shape (K, M, 2), got {traj.shape}")
    k = max(0, min(int(upto), traj.shape[0] - 1))
    paths: list[list[list[float]]] = []
    for m in range(traj.shape[1]):
        lat, lon = _slerp_path(traj[: k + 1, m, 0], traj[: k + 1, m, 1], max_step_deg)
        paths += [
            [[round(x, 3), round(y, 3)] for x, y in piece] for piece in split_antimeridian(lat, lon) if len(piece) > 1
        ]
    return paths


@dataclass(frozen=True)
class WeightedResidual:
    """The PPD residual weighted by the target density on a grid, and what it adds up to.

    ``values`` is ``p_t(x) * r(t, x)`` per cell (NaN where either is not finite); ``mass`` the
    integral of ``p_t`` over the grid (1 for an exact quadrature); ``mean_abs`` the mean of
    ``|r|`` under ``p_t``, ``sum(p_t |r| area) / mass``: the l = 1 PPD loss at ``t``.
    """

    values: np.ndarray
    mean_abs: float
    mass: float


def weighted_residual(lat: np.ndarray, lon: np.ndarray, log_prob: np.ndarray, residual: np.ndarray) -> WeightedResidual:
    """``p_t * r`` on a grid and the mean ``|r|`` under ``p_t`` (see :class:`WeightedResidual`).

    >>> lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
    >>> w = weighted_residual(lat, lon, np.full((2, 2), -np.log(4 * np.pi)), np.array([[1.0, -1.0], [3.0, -3.0]]))
    >>> round(w.mean_abs, 6), round(w.mass, 3)
    (2.0, 1.111)
    """
    log_prob = np.asarray(log_prob, dtype=np.float64)
    residual = np.asarray(residual, dtype=np.float64)
    if log_prob.shape != residual.shape:
        raise ValueError(f"log_prob and residual must have the same shape, got {log_prob.shape} and {residual.shape}")
    p = np.exp(log_prob)
    ok = np.isfinite(p) & np.isfinite(residual)
    values = np.where(ok, p * np.where(ok, residual, 0.0), np.nan)
    area = cell_areas(lat, lon)
    if area.shape != values.shape:
        raise ValueError(f"values must have shape {area.shape}, got {values.shape}")
    mass = float(np.sum(np.where(ok, p, 0.0) * area))
    total = float(np.sum(np.where(ok, np.abs(values), 0.0) * area))
    return WeightedResidual(values=values, mean_abs=total / mass if mass > 0 else math.nan, mass=mass)


#: Kernels whose exponent ``kappa (<x, y> - 1)`` lies below minus this many nats at every point of a grid row
#: are left out of that row (see :func:`kde_cell_means`).
KDE_CUT_NATS: float = 50.0
#: The most points a side :func:`kde_cell_means` puts in a cell; narrower kernels are counted in their cells.
KDE_MAX_SUB: int = 12
#: Width in degrees of longitude of the blocks of cells :func:`kde_cell_means` evaluates together.
_KDE_BLOCK_DEG: float = 16.0
#: Entries of the point-to-centre table held at once (16 MB in float64).
_KDE_TABLE_ENTRIES: int = 1 << 21


def _log_vmf_normaliser(kappa: float) -> float:
    """``log c(kappa)`` with ``c(kappa) = kappa / (2 pi (1 - exp(-2 kappa)))``, so that
    ``vMF(x; mu, kappa) = c(kappa) exp(kappa (<mu, x> - 1))`` (density w.r.t. area on the unit sphere).

    >>> round(_log_vmf_normaliser(1e-9), 6) == round(-math.log(4 * math.pi), 6)  # uniform as kappa -> 0
    True
    """
    if not kappa > 0 or not math.isfinite(kappa):
        raise ValueError(f"kappa must be a positive number, got {kappa}")
    if kappa < 1e-6:  # log c = kappa - log 2 + O(kappa^2) - log 2 pi
        return kappa - math.log(2.0) - math.log(2.0 * math.pi)
    return math.log(kappa) - math.log(2.0 * math.pi) - math.log(-math.expm1(-2.0 * kappa))


def _log_kernel_sum(points: np.ndarray, centers: np.ndarray, kappa: float) -> np.ndarray:
    """``log sum_i exp(kappa (<x, y_i> - 1))`` for every point ``x`` (rows of ``points``) over ``centers``,
    in float64 and in chunks of points; ``-inf`` where there is no centre."""
    out = np.full(len(points), -np.inf)
    if not len(centers):
        return out
    step = max(1, _KDE_TABLE_ENTRIES // len(centers))
    for s in range(0, len(points), step):
        e = points[s : s + step] @ centers.T
        e -= 1.0
        e *= kappa
        top = e.max(axis=1)
        e -= top[:, None]
        np.exp(e, out=e)
        out[s : s + step] = top + np.log(e.sum(axis=1))
    return out


def _floored(log_kernel: np.ndarray, n: int, kappa: float, weight: float) -> np.ndarray:
    """``log((1 - w) c(kappa) / n * exp(log_kernel) + w / 4 pi)``."""
    log_p = log_kernel + (math.log1p(-weight) + _log_vmf_normaliser(kappa) - math.log(n))
    return np.logaddexp(log_p, math.log(weight) - LOG_AREA) if weight > 0 else log_p


def _check_kde(centers: np.ndarray, weight: float) -> np.ndarray:
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    if not len(centers):
        raise ValueError("the kernel density needs at least one centre")
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"the floor weight must be in [0, 1), got {weight}")
    return centers


def kde_log_prob(xyz: np.ndarray, centers: np.ndarray, kappa: float, weight: float) -> np.ndarray:
    """Log-density at unit vectors ``xyz`` ``(B, 3)`` of the floored vMF kernel density over ``centers``
    ``(N, 3)`` (the baseline of a run's report, :mod:`cnfm_core.kde`), in nats per steradian:

        p(x) = (1 - w) (1/N) sum_i c(kappa) exp(kappa (<x, y_i> - 1)) + w / (4 pi),
        c(kappa) = kappa / (2 pi (1 - exp(-2 kappa))).

    At its centre a single kernel is ``c(kappa)``; half a floor adds half the uniform density:

    >>> pole = np.array([[0.0, 0.0, 1.0]])
    >>> c = 2.0 / (2 * math.pi * (1 - math.exp(-4.0)))
    >>> bool(np.isclose(kde_log_prob(pole, pole, 2.0, 0.5)[0], math.log(0.5 * c + 0.5 / (4 * math.pi))))
    True
    """
    centers = _check_kde(centers, weight)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    return _floored(_log_kernel_sum(xyz, centers, float(kappa)), len(centers), float(kappa), float(weight))


def _kde_histogram(lat: np.ndarray, lon: np.ndarray, centers: np.ndarray, weight: float) -> np.ndarray:
    """``log((1 - w) (count in cell / N) / area + w / 4 pi)`` on the full grid with centres ``lat``, ``lon``: the
    cell means of kernels far narrower than a cell (see :func:`kde_cell_means`)."""
    dlat, dlon = 180.0 / lat.size, 360.0 / lon.size
    centre_lat, centre_lon = (
        np.rad2deg(np.arcsin(np.clip(centers[:, 2], -1.0, 1.0))),
        np.rad2deg(np.arctan2(centers[:, 1], centers[:, 0])),
    )
    rows = np.clip(np.floor((centre_lat + 90.0) / dlat).astype(np.int64), 0, lat.size - 1)
    cols = np.clip(np.floor((centre_lon + 180.0) / dlon).astype(np.int64), 0, lon.size - 1)
    count = np.zeros((lat.size, lon.size))
    np.add.at(count, (rows, cols), 1.0)
    edges = np.deg2rad(np.append(lat - dlat / 2, lat[-1] + dlat / 2))
    area = np.deg2rad(dlon) * np.diff(np.sin(edges))
    mean = (1.0 - weight) * count / len(centers) / area[:, None] + weight / (4.0 * math.pi)
    with np.errstate(divide="ignore"):  # no centre and no floor: log 0, raised to the bound of kde_cell_means
        return np.maximum(np.log(mean), math.log1p(-weight) - LOG_AREA - KDE_CUT_NATS)


def kde_cell_means(
    lat: np.ndarray, lon: np.ndarray, centers: np.ndarray, kappa: float, weight: float, *, sub: int | None = None
) -> np.ndarray:
    """``(n_lat, n_lon)`` log of the mean of the kernel density :func:`kde_log_prob` over each cell of the
    full grid with centres ``lat``, ``lon`` (degrees; :func:`cnfm_core.grid.cell_centres`): ``sub`` x ``sub``
    points evenly inside each cell, weighted by ``cos(lat)`` (their share of the cell's area),

        log mean_cell p = log( sum_s cos(lat_s) p(x_s) / sum_s cos(lat_s) ).

    Where the kernels are wide against a cell this is ``log p`` at the centre; where they are narrower (a sharp
    kernel on clustered data) it is what the cell holds, not whether its centre hits a kernel. By default ``sub``
    is the number of kernel widths ``sigma = 1 / sqrt(kappa)`` (radians) in a cell's height, rounded up, so that
    the points are at most ``sigma`` apart: 1 for wide kernels, at most :data:`KDE_MAX_SUB`. Kernels narrower
    than that allows (repeated locations give ``kappa`` up to 1e8) are counted in the cell that holds their
    centre, each with its whole mass, over the cell's exact area ``dlon (sin b - sin a)``:

        mean_cell p = (1 - w) (count in cell / N) / area + w / (4 pi),

    which misplaces only the part of a kernel beyond a cell's edge (within a few ``sigma`` of its centre).

    For speed, a block of cells (one row, about 16 degrees of longitude) uses only the kernels that reach it:
    with ``1 - cos(angle) = (1 - cos dlat) + cos(lat_x) cos(lat_y) (1 - cos dlon)`` between points ``x`` and
    ``y``, a centre is left out where a lower bound of that over the block exceeds ``C / kappa``,
    ``C =`` :data:`KDE_CUT_NATS`: its kernel is below ``c(kappa) exp(-C)`` there, far under any colour a map
    shows. Values that low are raised to ``log((1 - w) c(kappa)) - C``.
    """
    centers = _check_kde(centers, weight)
    kappa, weight = float(kappa), float(weight)
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    dlat, dlon = 180.0 / lat.size, 360.0 / lon.size
    if sub is None:
        sub = max(1, math.ceil(math.radians(dlat) * math.sqrt(kappa) - 1e-9))
        if sub > KDE_MAX_SUB:
            return _kde_histogram(lat, lon, centers, weight)
    if sub < 1:
        raise ValueError(f"sub must be at least 1, got {sub}")
    block = max(1, round(_KDE_BLOCK_DEG / dlon))
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    sub_lon = (lon[:, None] + offsets[None, :] * dlon).ravel()  # cell by cell: (n_lon, sub) flattened
    centre_lat = np.rad2deg(np.arcsin(np.clip(centers[:, 2], -1.0, 1.0)))
    centre_lon = np.rad2deg(np.arctan2(centers[:, 1], centers[:, 0]))
    reach = KDE_CUT_NATS / kappa  # the largest 1 - cos(angle) at which a kernel is kept
    reach_deg = math.degrees(math.acos(max(-1.0, 1.0 - reach)))
    lowest = math.log1p(-weight) + _log_vmf_normaliser(kappa) - KDE_CUT_NATS
    out = np.empty((lat.size, lon.size))
    log_p = np.empty((sub, lon.size, sub))
    for i, row_lat in enumerate(lat.tolist()):
        sub_lat = row_lat + offsets * dlat
        near = np.abs(centre_lat - row_lat) <= dlat / 2 + reach_deg  # the angle is at least |dlat|
        row_centers, row_lon = centers[near], centre_lon[near]
        row_cos = float(np.cos(np.deg2rad(sub_lat)).min()) * np.cos(np.deg2rad(centre_lat[near]))
        for j in range(0, lon.size, block):
            k = min(lon.size, j + block)
            middle, half = (lon[j] + lon[k - 1]) / 2, (k - j) * dlon / 2
            gap = np.clip(np.abs((row_lon - middle + 180.0) % 360.0 - 180.0) - half, 0.0, 180.0)
            keep = row_cos * (1.0 - np.cos(np.deg2rad(gap))) <= reach
            points = latlon_to_xyz(np.repeat(sub_lat, (k - j) * sub), np.tile(sub_lon[j * sub : k * sub], sub))
            log_kernel = _log_kernel_sum(points, row_centers[keep], kappa)
            log_p[:, j:k, :] = _floored(log_kernel, len(centers), kappa, weight).reshape(sub, k - j, sub)
        log_w = np.log(np.cos(np.deg2rad(sub_lat)))
        weighted = log_p + log_w[:, None, None]
        top = weighted.max(axis=(0, 2))
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):  # a cell without any kernel or floor: log 0, raised to the bound below
            out[i] = top + np.log(np.exp(weighted - top[None, :, None]).sum(axis=(0, 2)))
        out[i] -= math.log(np.exp(log_w).sum() * sub)
    return np.maximum(out, lowest)
