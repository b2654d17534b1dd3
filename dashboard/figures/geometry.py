"""Pure numpy on lat/lon point sets, paths and grids, for any renderer: checked coordinates, seeded
subsamples, the mean direction of points, great-circle paths cut at the antimeridian, and the PPD
residual weighted by a density on a grid.

Arguments are ``lat, lon`` in degrees; path pieces are ``[lon, lat]`` lists, as GeoJSON and deck.gl
take them. Unit vectors come from :func:`cnfm_core.geo.latlon_to_xyz` (numpy, no torch).

>>> as_latlon([10.0], [20.0])
(array([10.]), array([20.]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnfm_core.geo import latlon_to_xyz
from cnfm_core.grid import cell_areas

__all__ = [
    "WeightedResidual",
    "as_latlon",
    "cell_areas",
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
        paths += [[[round(x, 3), round(y, 3)] for x, y in piece] for piece in split_antimeridian(lat, lon)
                  if len(piece) > 1]
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


def weighted_residual(
    lat: np.ndarray, lon: np.ndarray, log_prob: np.ndarray, residual: np.ndarray
) -> WeightedResidual:
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
