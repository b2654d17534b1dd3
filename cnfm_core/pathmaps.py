"""Maps of the target path ``p_t`` (:class:`cnfm_core.pathpreview.PreviewPath`) on lat/lon grids, fast enough to
redraw every frame of a path when κ_max changes (numpy only).

A map cell holds ``log`` of the mean of ``p_t`` over the cell (its probability over its area, nats per
steradian), so a kernel narrower than a cell fills its cell instead of being hit or missed by the cell's centre
(a speckled map). Each frame gets its own grid, from the width of its kernels ``sigma = 1 / sqrt(kappa)``: cells
of the largest of :data:`CELL_DEGREES` that is at most ``sigma / per_sigma``, between ``finest`` and ``coarsest``
degrees. Each centre ``y_i`` adds only within ``theta_cut`` of it, where
``kappa (1 - cos theta_cut) = log((1 - w) c(kappa) 4 pi / (w tol))``: what is left out at any point is at most
``(1 - w) c(kappa) exp(-kappa (1 - cos theta_cut)) = tol w / 4 pi``, a share ``tol`` of the floor, so a map's log
density is low by at most ``tol`` nats. The kernel part is filled in one of three ways:

* **cells at least** ``per_sigma`` **times narrower than the kernels** (:func:`_tiled_mass`): ``p_t`` at each
  cell's centre, which is the cell's mean to a share of about ``(cell / sigma)^2 / 12``. The centres are
  grouped into square tiles of cells; each tile's block of cells within reach is evaluated at once (the
  point-centre dot products as one matrix product, ``exp`` in float32, the weighted sum as a second product),
  so the work is a few hundred kernels a centre and no scattered writes;
* **kernels narrower than that** (:func:`_box_mass`): each kernel's probability in each cell, from the normal
  distribution's CDF at the cell's edges: in latitude, ``exp(-kappa versin(dlat))`` is the normal density of
  width ``sigma`` to a share ``kappa dlat^4 / 24``; along a cell row at latitude ``lat``,
  ``exp(-kappa cos(lat) cos(lat_i) versin(dlon))`` is the normal density of width
  ``sigma / sqrt(cos(lat) cos(lat_i))``, with ``lat`` taken where the row is nearest the centre. A kernel then costs
  a few CDF values per cell it reaches;
* **kernels near a pole** (boxes wrap too far around it): the midpoint rule on ``sub x sub`` points of each cell
  (:func:`_exact_mass`).

>>> from cnfm_core.pathpreview import PreviewPath
>>> path = PreviewPath(np.array([[0.0, 0.0, 1.0]]), np.zeros(1), kappa_max=1e4)
>>> m = path_map(path, 1.0)
>>> m.cell, m.log_density.shape, round(float((np.exp(m.log_density) * cell_areas(m.cell)).sum()), 2)
(1.0, (180, 360), 1.0)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .geo import LOG_AREA
from .pathpreview import PreviewPath, vmf_log_normalizer

__all__ = ["CELL_DEGREES", "PathMap", "cell_areas", "path_map"]

#: Cell sizes in degrees that divide both 180 and 360: the grids a map may be drawn on.
CELL_DEGREES: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 9.0, 10.0, 12.0, 15.0, 18.0)
#: Kernel values held at once while drawing a map (bounds its memory: a few bytes each).
_CHUNK_ENTRIES = 1 << 21
#: A kernel is drawn in boxes only where its longitude reach stays below this (radians) at every row it reaches.
_BOX_REACH = 0.5 * math.pi
#: Logs of float32 values are clamped here before ``exp`` (e^-80 = 1.8e-35, above float32's smallest normal
#: number): denormal numbers are many times slower to compute with.
_LOG_CLAMP = np.float32(-80.0)


@dataclass(frozen=True)
class PathMap:
    """``log`` of the mean of ``p_t`` over each cell of a lat/lon grid (nats per steradian): ``log_density``
    ``(n_lat, n_lon)`` at cell centres ``lat`` ``(n_lat,)`` and ``lon`` ``(n_lon,)`` in degrees, for time ``t``
    (concentration ``kappa``), on cells of ``cell`` degrees."""

    t: float
    kappa: float
    lat: np.ndarray
    lon: np.ndarray
    log_density: np.ndarray
    cell: float


def cell_areas(cell: float) -> np.ndarray:
    """``(n_lat, 1)`` solid angle (steradians) of a cell in each row of the grid of ``cell``-degree cells."""
    n_lat = round(180.0 / cell)
    return np.diff(np.sin(np.deg2rad(np.arange(n_lat + 1) * cell - 90.0)))[:, None] * math.radians(cell)


def _grid_for(kappa: float, finest: float, coarsest: float, per_sigma: float) -> float:
    """The cell size in degrees for kernels of width ``1 / sqrt(kappa)`` (module doc)."""
    step = math.degrees(1.0 / math.sqrt(kappa)) / per_sigma if kappa > 0 else math.inf
    fitting = [c for c in CELL_DEGREES if finest <= c <= coarsest and c <= step]
    return max(fitting) if fitting else finest


def path_map(
    path: PreviewPath,
    t: float,
    *,
    finest: float = 1.0,
    coarsest: float = 18.0,
    per_sigma: float = 1.0,
    tol: float = 1e-2,
) -> PathMap:
    """The map of ``p_t`` (module doc): cells from ``finest`` to ``coarsest`` degrees (both in :data:`CELL_DEGREES`),
    at most ``sigma / per_sigma`` where that is above ``finest``, each kernel cut where it falls below ``tol``
    times the floor (which must be positive)."""
    if not path.floor > 0.0:
        raise ValueError("a map cuts each kernel off relative to the floor, so the floor must be positive")
    if finest not in CELL_DEGREES or coarsest not in CELL_DEGREES or finest > coarsest:
        raise ValueError(
            f"finest and coarsest must be cell sizes of CELL_DEGREES, finest <= coarsest; got {finest} and {coarsest}"
        )
    kappa = float(path.kappa(t))
    cell = _grid_for(kappa, finest, coarsest, per_sigma)
    n_lat, n_lon = round(180.0 / cell), round(360.0 / cell)
    lat = (np.arange(n_lat) + 0.5) * cell - 90.0
    lon = (np.arange(n_lon) + 0.5) * cell - 180.0
    if kappa == 0.0:  # uniform: the kernels and the floor alike
        return PathMap(float(t), 0.0, lat, lon, np.full((n_lat, n_lon), -LOG_AREA), cell)
    log_c = float(vmf_log_normalizer(kappa))
    reach = math.log((1.0 - path.floor) * 4.0 * math.pi / (path.floor * tol)) + log_c  # kappa (1 - cos theta_cut)
    theta_cut = 2.0 * math.asin(math.sqrt(reach / (2.0 * kappa))) if reach < 2.0 * kappa else math.pi
    lat_c = np.arcsin(np.clip(path.centres[:, 2], -1.0, 1.0))
    lon_c = np.arctan2(path.centres[:, 1], path.centres[:, 0])
    weight = np.exp(path.log_weights)
    step = math.radians(cell)
    if 1.0 / math.sqrt(kappa) >= per_sigma * step * (1.0 - 1e-9):  # wide kernels: values at the cells' centres
        mass = _tiled_mass(n_lat, n_lon, path.centres, lat_c, weight * math.exp(log_c), kappa, theta_cut)
    else:
        far = np.abs(lat_c) + theta_cut  # the latitude a kernel reaches nearest a pole
        boxed = (far < 0.5 * math.pi) & (theta_cut < _BOX_REACH * np.cos(np.minimum(far, 0.5 * math.pi)))
        mass = np.zeros(n_lat * n_lon)
        if boxed.any():
            mass += _box_mass(n_lat, n_lon, lat_c[boxed], lon_c[boxed], weight[boxed], kappa, theta_cut)
        if not boxed.all():
            sub = max(1, math.ceil(4.0 * step * math.sqrt(kappa)))  # points sigma / 4 apart
            rest = ~boxed
            mass += _exact_mass(
                n_lat, n_lon, sub, lat_c[rest], lon_c[rest], weight[rest] * math.exp(log_c), kappa, theta_cut
            )
    with np.errstate(divide="ignore"):
        kernel = np.log(mass.reshape(n_lat, n_lon) / cell_areas(cell))
    log_density = np.logaddexp(kernel + math.log1p(-path.floor), math.log(path.floor) - LOG_AREA)
    return PathMap(float(t), kappa, lat, lon, log_density, cell)


# ----------------------------------------------------------------------------- wide kernels: tiles
def _tiled_mass(
    n_lat: int, n_lon: int, centres: np.ndarray, lat_c: np.ndarray, weight: np.ndarray, kappa: float, theta_cut: float
) -> np.ndarray:
    """``(n_lat * n_lon,)`` kernel values ``sum_i weight_i exp(-kappa (1 - <x, y_i>))`` at the cells' centres ``x``,
    times the cells' areas (``weight_i = pi_i c(kappa)``), by tiles of centres (module doc)."""
    step = math.pi / n_lat
    cell_lat = (np.arange(n_lat) + 0.5) * step - 0.5 * math.pi
    cell_lon = (np.arange(n_lon) + 0.5) * step - math.pi
    cos_lat, sin_lat = np.cos(cell_lat), np.sin(cell_lat)
    lon_c = np.arctan2(centres[:, 1], centres[:, 0])
    log_weight = np.log(weight)
    margin = math.ceil(theta_cut / step)  # rows within reach of a tile's own rows
    side = max(1, margin)  # a tile's side in cells (measured: half or twice that is slower)
    rows = np.clip(((lat_c + 0.5 * math.pi) / step).astype(np.int64), 0, n_lat - 1) // side
    cols = np.clip(((lon_c + math.pi) / step).astype(np.int64), 0, n_lon - 1) // side
    key = rows * n_lon + cols
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    half_versine = math.sin(0.5 * theta_cut) ** 2
    total = np.zeros((n_lat, n_lon))
    for take in np.split(order, bounds):
        tile_row, tile_col = int(key[take[0]] // n_lon) * side, int(key[take[0]] % n_lon) * side
        r0, r1 = max(0, tile_row - margin), min(n_lat, tile_row + side + margin)
        # Longitudes within theta_cut: hav(dlon) cos(lat) cos(lat_i) <= hav(theta_cut) on every row of the block.
        lowest = float(np.cos(max(abs(cell_lat[r0]), abs(cell_lat[r1 - 1])) + 0.5 * step))
        ratio = half_versine / max(lowest * float(np.cos(lat_c[take]).min()), 1e-300)
        if ratio >= 1.0 or theta_cut >= 0.5 * math.pi:
            block_cols = np.arange(n_lon)
        else:
            reach = math.ceil(2.0 * math.asin(math.sqrt(ratio)) / step) + 1
            width = min(n_lon, side + 2 * reach)
            block_cols = (tile_col - reach + np.arange(width)) % n_lon
        # log(weight_i) - kappa (1 - <x, y_i>) = a[row, i] + b[row, i] cos(lon - lon_i), in float32 (off by about
        # kappa * 3e-7 at most: under 5e-4 nats with cells of a degree), without a matrix product: numpy's BLAS may
        # spread one over every core, and on a busy server that costs more than it saves (twice the time,
        # measured). Below -80 (e^-80 = 2e-35 of the largest kernel value) it is clamped, so exp never makes
        # denormal numbers, which are many times slower.
        values = np.zeros((r1 - r0, block_cols.size), np.float32)
        per = max(1, _CHUNK_ENTRIES // values.size)
        for i in range(0, take.size, per):
            part = take[i : i + per]
            a = (kappa * (sin_lat[r0:r1, None] * np.sin(lat_c[part]) - 1.0) + log_weight[part]).astype(np.float32)
            b = (kappa * cos_lat[r0:r1, None] * np.cos(lat_c[part])).astype(np.float32)
            c = np.cos(cell_lon[block_cols, None] - lon_c[part]).astype(np.float32)  # (C, n)
            logs = b[:, None, :] * c[None, :, :]
            logs += a[:, None, :]
            if float(a.min()) - float(np.abs(b).max()) < _LOG_CLAMP:  # else no log in the block is that low
                np.maximum(logs, _LOG_CLAMP, out=logs)
            values += np.exp(logs, out=logs).sum(axis=2)
        total[r0:r1, block_cols] += values
    return (total * _row_areas(n_lat)).ravel()


def _row_areas(n_lat: int) -> np.ndarray:
    """``(n_lat, 1)`` solid angle of one cell in each row of a grid with ``n_lat`` rows and square cells."""
    step = math.pi / n_lat
    return np.diff(np.sin(np.arange(n_lat + 1) * step - 0.5 * math.pi))[:, None] * step


# ----------------------------------------------------------------------------- narrow kernels: boxes
#: The table of the normal distribution's log tail (:func:`_log_tail_table`): its range and steps per unit.
_TABLE_RANGE, _TABLE_STEPS = 13, 2048


@functools.lru_cache(maxsize=1)
def _log_tail_table() -> np.ndarray:
    """``log Phi(-x)`` of the standard normal distribution at ``x = k / 2048`` for ``k = 0..13 * 2048`` (float32),
    from ``math.erfc``; beyond 13 the tail is below e^-87, which adds nothing a map can show. The nearest entry is
    within ``(|x| + 1) / 4096`` nats of ``log Phi(-x)`` (``|d/dx log Phi(-x)| <= x + 1``): a relative error under
    0.4 %, at most 0.004 nats in a cell."""
    steps = np.arange(_TABLE_RANGE * _TABLE_STEPS + 1)
    table = np.array([math.log(0.5 * math.erfc(k / _TABLE_STEPS / math.sqrt(2.0))) for k in steps.tolist()])
    return np.maximum(table, _LOG_CLAMP).astype(np.float32)


def _normal_masses(edges: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``Phi(s e_{k+1}) - Phi(s e_k)`` between consecutive increasing ``edges`` ``(n, K + 1)`` for each positive
    scale ``s`` in ``scale`` ``(n, P)``: ``(n, P, K)`` in float32, without cancellation in either tail. With the
    tail ``T = Phi(-|z|)`` (:func:`_log_tail_table`, so a far tail keeps its relative accuracy), ``G = T`` below 0
    and ``G = -T`` from 0 up, an interval holds ``G(b) - G(a)``, plus 1 where it reaches across 0 (``G + 1`` is
    ``Phi`` above 0: adding the 1 apart keeps the digits of ``T``). The signs come from ``edges`` alone."""
    magnitude = np.abs(edges).astype(np.float32)
    index = (scale * _TABLE_STEPS).astype(np.float32)[:, :, None] * magnitude[:, None, :]
    index += np.float32(0.5)
    np.minimum(index, np.float32(_TABLE_RANGE * _TABLE_STEPS), out=index)
    tail = np.exp(_log_tail_table()[index.astype(np.int32)])
    below = np.signbit(edges)  # +0.0 counts as above, -0.0 as below, as copysign would
    tail *= np.where(below, np.float32(1.0), np.float32(-1.0))[:, None, :]
    masses = np.diff(tail, axis=-1)
    masses += (below[:, :-1] & ~below[:, 1:]).astype(np.float32)[:, None, :]
    return masses


def _chunks(widths: np.ndarray, per_width: int) -> list[np.ndarray]:
    """Indices into ``widths`` in chunks of about equal width, each padded to its widest holding at most
    :data:`_CHUNK_ENTRIES` entries at ``per_width`` entries a unit of width."""
    order = np.argsort(widths, kind="stable")
    sorted_widths = widths[order]
    out, start = [], 0
    while start < order.size:
        fits = np.arange(1, order.size - start + 1) * sorted_widths[start:] * per_width <= _CHUNK_ENTRIES
        count = max(1, fits.size if fits.all() else int(np.argmin(fits)))
        out.append(order[start : start + count])
        start += count
    return out


def _box_mass(
    n_lat: int, n_lon: int, lat_c: np.ndarray, lon_c: np.ndarray, weight: np.ndarray, kappa: float, theta_cut: float
) -> np.ndarray:
    """``(n_lat * n_lon,)`` probability of each cell under the kernels ``weight_i vMF(y_i, kappa)`` narrower than a
    cell, from normal CDFs at the cells' edges (module doc); each kernel's cells are scaled to add up to its
    weight."""
    step = math.pi / n_lat
    sqrt_k = math.sqrt(kappa)
    first_row = np.clip(np.floor((lat_c - theta_cut + 0.5 * math.pi) / step).astype(np.int64), 0, n_lat - 1)
    last_row = np.clip(np.floor((lat_c + theta_cut + 0.5 * math.pi) / step).astype(np.int64), 0, n_lat - 1)
    n_rows = int((last_row - first_row).max()) + 1
    # the longitude a kernel reaches: theta_cut / (cos of its latitude nearest the pole)
    reach_lon = theta_cut / np.cos(np.abs(lat_c) + theta_cut)
    first_col = np.floor((lon_c - reach_lon + math.pi) / step).astype(np.int64)
    n_cols = np.floor((lon_c + reach_lon + math.pi) / step).astype(np.int64) - first_col + 1
    total = np.zeros(n_lat * n_lon)
    for take in _chunks(n_cols, n_rows):
        width = int(n_cols[take].max())
        rows = np.minimum(first_row[take, None] + np.arange(n_rows), n_lat - 1)  # (n, P); repeats carry no mass
        inside = first_row[take, None] + np.arange(n_rows) <= last_row[take, None]
        lo = rows * step - 0.5 * math.pi
        c_lat = lat_c[take, None]
        lat_edges = (first_row[take, None] + np.arange(n_rows + 1)) * step - (0.5 * math.pi + c_lat)
        lat_mass = _normal_masses(lat_edges, np.full((take.size, 1), sqrt_k))[:, 0, :] * inside
        nearest = np.clip(c_lat, lo, lo + step)  # the row's latitude nearest the centre
        lat_mass *= np.sqrt(np.cos(nearest) / np.cos(c_lat))  # area cos(lat) times the row's width 1/sqrt(cos cos)
        scale = sqrt_k * np.sqrt(np.cos(nearest) * np.cos(c_lat))  # (n, P): 1 / width along the row
        cols = first_col[take, None] + np.arange(width)  # (n, Q), unwrapped
        edges = (first_col[take, None] + np.arange(width + 1)) * step - math.pi - lon_c[take, None]  # (n, Q + 1)
        lon_mass = _normal_masses(edges, scale)  # (n, P, Q)
        values = lat_mass[:, :, None] * lon_mass
        values *= (weight[take] / values.sum(axis=(1, 2)))[:, None, None]
        index = rows[:, :, None] * n_lon + (cols % n_lon)[:, None, :]
        total += np.bincount(index.ravel(), weights=values.ravel(), minlength=total.size)
    return total


# ----------------------------------------------------------------------------- near a pole: the midpoint rule
def _exact_mass(
    n_lat: int,
    n_lon: int,
    sub: int,
    lat_c: np.ndarray,
    lon_c: np.ndarray,
    weight: np.ndarray,
    kappa: float,
    theta_cut: float,
) -> np.ndarray:
    """``(n_lat * n_lon,)`` mass of each cell under ``weight_i exp(-kappa (1 - <x, y_i>))``, by the midpoint rule on
    ``sub x sub`` points a cell, each centre over the points within ``theta_cut`` of it (a window of rows, and of
    columns around it: all of them near a pole). ``1 - <x, y> = versin(dlat) + cos(lat) cos(lat_i) versin(dlon)``."""
    rows, cols = n_lat * sub, n_lon * sub
    h = math.pi / rows
    point_lat = (np.arange(rows) + 0.5) * h - 0.5 * math.pi
    point_lon = (np.arange(cols) + 0.5) * h - math.pi
    area = np.diff(np.sin(np.arange(rows + 1) * h - 0.5 * math.pi)) * h
    rows_n = min(rows, math.ceil(2.0 * theta_cut / h) + 2)
    first_row = np.clip(np.floor((lat_c + 0.5 * math.pi - theta_cut) / h).astype(np.int64), 0, rows - rows_n)
    half_versine = math.sin(0.5 * theta_cut) ** 2
    cos_lowest = np.cos(np.minimum(np.abs(lat_c) + theta_cut, 0.5 * math.pi))
    ratio = half_versine / np.maximum(cos_lowest * np.cos(lat_c), 1e-300)
    dlon = np.where(ratio < 1.0, 2.0 * np.arcsin(np.sqrt(np.minimum(ratio, 1.0))), math.pi)
    cols_n = np.minimum(cols, np.ceil(2.0 * dlon / h).astype(np.int64) + 2)
    first_col = np.where(cols_n < cols, np.floor((lon_c + math.pi - dlon) / h).astype(np.int64), 0)
    total = np.zeros(n_lat * n_lon)
    for take in _chunks(cols_n, rows_n):
        width = int(cols_n[take].max())
        row = first_row[take, None] + np.arange(rows_n)  # (n, A), inside the grid
        col = (first_col[take, None] + np.arange(width)) % cols  # (n, B), around the antimeridian
        lat = point_lat[row]
        c_lat = lat_c[take, None]
        exponent = 2.0 * kappa * np.sin(0.5 * (lat - c_lat)) ** 2 - np.log(weight[take, None] * area[row])
        cos_cos = 2.0 * kappa * np.cos(lat) * np.cos(c_lat)
        hav_lon = np.sin(0.5 * (point_lon[col] - lon_c[take, None])) ** 2
        values = exponent.astype(np.float32)[:, :, None] + (
            cos_cos.astype(np.float32)[:, :, None] * hav_lon.astype(np.float32)[:, None, :]
        )
        np.exp(np.maximum(np.negative(values, out=values), _LOG_CLAMP, out=values), out=values)
        index = (row // sub)[:, :, None] * n_lon + (col // sub)[:, None, :]
        total += np.bincount(index.ravel(), weights=values.ravel(), minlength=total.size)
    return total
