"""Land: the bundled land polygons and their coastlines, as plain arrays for any renderer.

Every figure works offline: coastlines come from the bundled ``assets/land.geojson`` (see
:func:`load_land`), never from a CDN. GeoJSON positions are ``[lon, lat]`` in degrees.

>>> ring = [[0, 0], [1, 0], [1, 1], [0, 0]]
>>> list(rings({"type": "MultiPolygon", "coordinates": [[ring], [ring]]})) == [ring, ring]
True
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["LAND_PATH", "LandLines", "coast_paths", "land_lines", "load_land", "rings"]

#: The bundled land outlines (Natural Earth 1:110m, public domain; see assets/README.md).
LAND_PATH: Path = Path(__file__).resolve().parents[2] / "assets" / "land.geojson"
#: Coordinates this close to +-180 deg lon or +-90 deg lat are on the frame of the map.
_FRAME_EPS_DEG: float = 1e-6


@functools.lru_cache(maxsize=4)
def load_land(path: Path | None = None) -> dict[str, Any]:
    """Read a GeoJSON FeatureCollection of land polygons (default: :data:`LAND_PATH`).

    The result is cached per path and shared between callers: treat it as read-only.
    """
    with (path or LAND_PATH).open(encoding="utf-8") as f:
        land = json.load(f)
    if not isinstance(land, dict) or land.get("type") != "FeatureCollection":
        raise ValueError(f"{path or LAND_PATH} is not a GeoJSON FeatureCollection")
    return land


def rings(land: dict[str, Any]) -> Iterator[list[list[float]]]:
    """Every ring (exterior and holes) of the Polygon / MultiPolygon geometries in ``land``."""
    kind = land.get("type")
    if kind == "FeatureCollection":
        for feature in land.get("features", []):
            yield from rings(feature)
    elif kind == "Feature":
        if land.get("geometry"):
            yield from rings(land["geometry"])
    elif kind == "Polygon":
        yield from land["coordinates"]
    elif kind == "MultiPolygon":
        for polygon in land["coordinates"]:
            yield from polygon


def coast_paths(land: dict[str, Any]) -> list[np.ndarray]:
    """The coastlines of ``land``: its rings as ``(k, 2)`` ``[lon, lat]`` paths, cut where they run
    along the frame of the map (the antimeridian, or a pole), which are polygon edges but no coast."""
    paths: list[np.ndarray] = []
    for ring in rings(land):
        xy = np.asarray(ring, dtype=np.float64).reshape(-1, 2) if len(ring) else np.empty((0, 2))
        if len(xy) < 2:
            continue
        frame = np.abs(xy) >= np.array([180.0, 90.0]) - _FRAME_EPS_DEG
        cut = (frame[:-1, 0] & frame[1:, 0]) | (frame[:-1, 1] & frame[1:, 1])
        n = len(xy) - 1
        if cut.any() and np.array_equal(xy[0], xy[-1]):
            # Start a closed ring just after its first cut, so that no coast runs across its ends.
            first = int(np.argmax(cut))
            xy = xy[(np.arange(n + 1) + first + 1) % n]
            cut = cut[(np.arange(n) + first + 1) % n]
        start = 0
        for k in np.flatnonzero(cut).tolist() + [n]:
            if k - start >= 1:
                paths.append(xy[start : k + 1])
            start = k + 1
    return paths


class LandLines(NamedTuple):
    """Coastline vertices in degrees, one line after another with a NaN between lines."""

    lon: np.ndarray
    lat: np.ndarray


def land_lines(land: dict[str, Any]) -> LandLines:
    """The coastlines of ``land`` as two flat arrays, ``(lon, lat)``, lines separated by NaN.

    The lines are the polygon rings, without the edges that run along the antimeridian or a pole
    (where Natural Earth cuts Russia, Fiji and Antarctica). Drawn as one plotly ``Scatter`` trace
    (``x=lon, y=lat, mode="lines"``), NaN breaks the line.

    >>> square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    >>> land_lines({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": square}]}).lon
    array([ 0.,  1.,  1.,  0., nan])
    >>> cut = {"type": "Polygon", "coordinates": [[[170, 0], [180, 0], [180, 10], [170, 0]]]}
    >>> land_lines(cut).lat  # the edge along lon 180 is left out
    array([10.,  0.,  0., nan])
    """
    parts = coast_paths(land)
    if not parts:
        return LandLines(np.empty(0), np.empty(0))
    gap = np.full((1, 2), np.nan)
    xy = np.concatenate([block for path in parts for block in (path, gap)])
    return LandLines(xy[:, 0].copy(), xy[:, 1].copy())
