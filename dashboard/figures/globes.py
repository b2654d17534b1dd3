"""Globes (pydeck): an interactive 3D globe of land, a density and point sets, and one of particle
trajectories, both on a deck.gl ``_GlobeView``. deck.gl draws no colour bar: a density on a globe is shown with
:func:`~dashboard.figures.colorbar.colorbar_html` (re-exported here).

Every globe works offline: no map tiles, no basemap style; it is an ocean polygon and the bundled land
(:func:`~dashboard.figures.land.load_land`) with ``map_provider=None``. Arguments are ``lat, lon`` in
degrees; deck.gl accessors are ``[lon, lat]``.

>>> payload = points_payload(np.array([10.12345, -5.0]), np.array([20.0, 179.98765]), decimals=2)
>>> payload
[{'lat': 10.12, 'lon': 20.0}, {'lat': -5.0, 'lon': 179.99}]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydeck as pdk
from pydeck.bindings.json_tools import default_serialize

from dashboard.figures.colorbar import colorbar_html, colorbar_ticks
from dashboard.figures.colours import (
    COAST_COLOR,
    LAND_COLOR,
    OCEAN_COLOR,
    SAMPLE_COLOR,
    TRAJECTORY_COLOR,
    value_colors,
)
from dashboard.figures.geometry import as_latlon, subsample, trajectory_paths
from dashboard.figures.land import coast_paths

__all__ = [
    "EARTH_RADIUS_M",
    "PointLayer",
    "colorbar_html",
    "colorbar_ticks",
    "globe",
    "globe_zoom",
    "points_payload",
    "trajectories_globe",
]

#: Mean Earth radius in metres, for sizing things on the globe.
EARTH_RADIUS_M: float = 6_371_008.8
#: Coastlines over a density: white, slightly transparent.
_COAST_ON_DENSITY: list[int] = [255, 255, 255, 200]
#: Optional pole caps: discs centred just off the poles, wide enough to cover a polar gap north of
#: 85 deg (where Web Mercator stops), small enough to stay clear of most land in the Arctic.
_POLE_CAP_LAT: float = 89.9
_POLE_CAP_RADIUS_M: float = 700_000.0
#: Spacing in degrees of the vertices along the edges of the ocean polygon.
_OCEAN_STEP_DEG: float = 10.0


@dataclass(frozen=True, eq=False)
class PointLayer:
    """A named set of points to draw on the globe.

    ``lat``/``lon`` in degrees; ``color`` RGB or RGBA, 0-255; ``radius_m`` the dot radius in metres
    (dots never shrink below ``min_pixels``, 1.5 px by default); at most ``max_points`` are drawn (see
    :func:`points_payload`); ``outline``, if given, rims each dot in that colour, one pixel wide (so that dots
    stay visible over others of a similar lightness).
    """

    name: str
    lat: np.ndarray
    lon: np.ndarray
    color: Sequence[int]
    radius_m: float = 40_000.0
    max_points: int = 20_000
    outline: Sequence[int] | None = None
    min_pixels: float = 1.5


def points_payload(
    lat: np.ndarray, lon: np.ndarray, *, max_points: int = 20_000, seed: int = 0, decimals: int = 3
) -> list[dict[str, float]]:
    """Points as ``[{"lat": .., "lon": ..}, ...]`` for a deck.gl layer, at most ``max_points`` of them.

    Larger sets are subsampled uniformly without replacement (seeded with ``seed``, original order
    kept); coordinates are rounded to ``decimals`` (3: about 100 m). This keeps the JSON that pydeck
    sends small: 100,000 unrounded points are about 7 MB.
    """
    lat, lon = as_latlon(lat, lon)
    idx = subsample(lat.size, max_points, seed)
    la = np.round(lat[idx], decimals).tolist()
    lo = np.round(lon[idx], decimals).tolist()
    return [{"lat": a, "lon": o} for a, o in zip(la, lo, strict=True)]


def _ocean_ring(step: float = _OCEAN_STEP_DEG) -> list[list[float]]:
    """A ring around the whole lon/lat rectangle with a vertex every ``step`` degrees along each edge."""
    lons = np.arange(-180.0, 180.0 + step / 2, step)
    lats = np.arange(-90.0, 90.0 + step / 2, step)
    ring = (
        [[x, -90.0] for x in lons]
        + [[180.0, y] for y in lats[1:]]
        + [[x, 90.0] for x in lons[::-1][1:]]
        + [[-180.0, y] for y in lats[::-1][1:]]
    )
    return [[float(x), float(y)] for x, y in ring]


def _density_rows(
    lat: np.ndarray, lon: np.ndarray, values: np.ndarray, value_range: tuple[float, float] | None = None
) -> list[dict[str, Any]]:
    """Discs covering a lat/lon grid, coloured by value: ``[{"lon", "lat", "r" (m), "c" (RGB)}, ...]``.

    Towards the poles, where cells narrow, a row of ``n_lon`` cells is cut into
    ``ceil(n_lon * cos(lat))`` runs of neighbouring cells, each drawn as one disc with the runs' mean
    finite value, so that discs stay about one cell high across and their number falls to about
    ``2 / pi`` of the cells. Colours span ``value_range`` (values outside get the end colours), by default the
    finite values of the whole grid; runs with no finite value are left out.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (lat.size, lon.size):
        raise ValueError(f"density values must have shape ({lat.size}, {lon.size}), got {values.shape}")
    finite = np.isfinite(values)
    if not finite.any():
        return []
    vmin, vmax = value_range if value_range is not None else (float(values[finite].min()), float(values[finite].max()))
    dlat = np.deg2rad(float(np.abs(np.diff(lat)).min()) if lat.size > 1 else 180.0)
    dlon = np.deg2rad(float(np.abs(np.diff(lon)).min()) if lon.size > 1 else 360.0)
    rows: list[dict[str, Any]] = []
    for la, row, ok in zip(lat.tolist(), values, finite, strict=True):
        cos = math.cos(math.radians(la))
        n_runs = min(lon.size, max(1, math.ceil(lon.size * cos - 1e-9)))
        starts = (np.arange(n_runs) * lon.size) // n_runs
        sizes = np.diff(np.append(starts, lon.size))
        count = np.add.reduceat(ok.astype(np.float64), starts)
        total = np.add.reduceat(np.where(ok, row, 0.0), starts)
        centre = np.add.reduceat(lon, starts) / sizes
        radius = 1.05 * EARTH_RADIUS_M * np.hypot(dlat / 2, sizes * dlon / 2 * cos)
        keep = count > 0
        colours = value_colors(total[keep] / count[keep], vmin=vmin, vmax=vmax)
        rows += [
            {"lon": x, "lat": round(la, 2), "r": r, "c": c}
            for x, r, c in zip(
                np.round(centre[keep], 2).tolist(),
                np.rint(radius[keep]).astype(np.int64).tolist(),
                colours.tolist(),
                strict=True,
            )
        ]
    return rows


class _CompactDeck(pdk.Deck):
    """A :class:`pydeck.Deck` whose JSON has no indentation.

    ``pydeck.Deck.to_json`` indents by two spaces, one value per line, which about triples the size
    of the spec that ``st.pydeck_chart`` sends; the content is the same.
    """

    def to_json(self) -> str:
        return json.dumps(self, sort_keys=True, default=default_serialize, separators=(",", ":"))


def _ocean_layer() -> pdk.Layer:
    """One polygon over the whole sphere, in :data:`OCEAN_COLOR`."""
    return pdk.Layer(
        "SolidPolygonLayer",
        id="ocean",
        data=[{"polygon": _ocean_ring()}],
        get_polygon="polygon",
        get_fill_color=OCEAN_COLOR,
        filled=True,
    )


def _pole_caps_layer() -> pdk.Layer:
    """Discs at the poles: ocean in the north, land in the south."""
    return pdk.Layer(
        "ScatterplotLayer",
        id="pole-caps",
        data=[
            {"lon": 0.0, "lat": _POLE_CAP_LAT, "c": OCEAN_COLOR},
            {"lon": 0.0, "lat": -_POLE_CAP_LAT, "c": LAND_COLOR},
        ],
        get_position="[lon, lat]",
        get_fill_color="c",
        get_radius=_POLE_CAP_RADIUS_M,
        stroked=False,
    )


def _density_layer(
    lat: np.ndarray, lon: np.ndarray, values: np.ndarray, value_range: tuple[float, float] | None
) -> pdk.Layer:
    """One disc per grid cell (see :func:`_density_rows`)."""
    return pdk.Layer(
        "ScatterplotLayer",
        id="density",
        data=_density_rows(lat, lon, values, value_range),
        get_position="[lon, lat]",
        get_radius="r",
        get_fill_color="c",
        stroked=False,
        # The discs are flat and overlap: drawn without writing depth, neither they nor their rims
        # hide each other or the coastlines drawn after them (the ocean below still hides the far side).
        parameters={"depthWriteEnabled": False},
    )


def _land_layer(land: dict[str, Any]) -> pdk.Layer:
    """Land polygons filled with :data:`LAND_COLOR`, without outlines (see :func:`_coast_layer`)."""
    return pdk.Layer("GeoJsonLayer", id="land", data=land, filled=True, stroked=False, get_fill_color=LAND_COLOR)


def _coast_layer(land: dict[str, Any], color: Sequence[int]) -> pdk.Layer:
    """Coastlines one pixel wide (see :func:`land_lines`: no seams along the antimeridian or at a pole)."""
    return pdk.Layer(
        "PathLayer",
        id="coast",
        data=[{"path": path.tolist()} for path in coast_paths(land)],
        get_path="path",
        get_color=list(color),
        get_width=1,
        width_units="'pixels'",  # quoted: pydeck turns bare strings into accessor expressions
        width_min_pixels=1,
    )


def _points_layer(i: int, points: PointLayer) -> pdk.Layer:
    """Pickable dots for one :class:`PointLayer`, at least ``min_pixels`` wide, rimmed if it has an outline."""
    rim = (
        {}
        if points.outline is None
        else {
            "get_line_color": [int(v) for v in points.outline],
            "line_width_units": "'pixels'",  # quoted: pydeck turns bare strings into accessor expressions
            "get_line_width": 1,
            "line_width_min_pixels": 1,
        }
    )
    return pdk.Layer(
        "ScatterplotLayer",
        id=f"points-{i}",
        data=points_payload(points.lat, points.lon, max_points=points.max_points),
        get_position="[lon, lat]",
        get_fill_color=[int(v) for v in points.color],
        get_radius=float(points.radius_m),
        radius_min_pixels=float(points.min_pixels),
        stroked=points.outline is not None,
        pickable=True,
        **rim,
    )


def globe(
    *,
    land: dict[str, Any],
    point_layers: Sequence[PointLayer] = (),
    density: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    density_range: tuple[float, float] | None = None,
    view_lat: float = 20.0,
    view_lon: float = 0.0,
    zoom: float = 1.1,
    height: int = 500,
    pole_caps: bool = False,
) -> pdk.Deck:
    """An interactive 3D globe (deck.gl ``_GlobeView``) of land, an optional density and point sets.

    Layers, bottom to top: ``ocean`` (one polygon over the whole sphere); ``pole-caps`` if
    ``pole_caps`` (700 km discs at the poles, ocean in the north and land in the south, for a renderer
    that leaves polar gaps in polygons; deck.gl 9.3 and 9.4 leave none on a globe, and the discs show a
    faint rim); then ``density`` if given, else ``land`` (filled polygons); ``coast`` (coastlines, white
    over a density); then one ``points-<i>`` layer per :class:`PointLayer`, in order, pickable with a
    lat/lon tooltip. ``density`` is ``(lat (n_lat,), lon (n_lon,), values (n_lat, n_lon))`` on cell
    centres, one disc per cell coloured by :data:`COLORSCALE` over ``density_range`` ``(vmin, vmax)`` (values
    outside get the end colours; by default from the lowest to the highest finite value): pass the range of the
    flat maps, and show it with :func:`colorbar_html`.

    No basemap: ``map_provider=None`` and ``map_style`` left at pydeck's placeholder, which
    ``st.pydeck_chart`` drops, so nothing is fetched from the network. ``zoom`` follows the Web
    Mercator convention at ``view_lat``, so the same zoom shows a larger globe at high latitudes.
    ``height`` applies to ``Deck.to_html``; ``st.pydeck_chart`` takes its own ``height``. The deck
    writes compact JSON (see :class:`_CompactDeck`).
    """
    layers = [_ocean_layer()]
    if pole_caps:
        layers.append(_pole_caps_layer())
    if density is None:
        layers += [_land_layer(land), _coast_layer(land, COAST_COLOR)]
    else:
        layers += [_density_layer(*density, density_range), _coast_layer(land, _COAST_ON_DENSITY)]
    layers += [_points_layer(i, points) for i, points in enumerate(point_layers)]
    return _CompactDeck(
        layers=layers,
        views=[pdk.View(type="_GlobeView", controller=True)],
        initial_view_state=pdk.ViewState(latitude=float(view_lat), longitude=float(view_lon), zoom=float(zoom)),
        map_provider=None,
        tooltip={"text": "lat {lat}°, lon {lon}°"} if point_layers else False,
        height=height,
    )


def trajectories_globe(
    land: dict[str, Any],
    trajectories: np.ndarray,
    upto: int,
    *,
    color: Sequence[int] = TRAJECTORY_COLOR,
    dot_color: Sequence[int] = SAMPLE_COLOR,
    view_lat: float = 20.0,
    view_lon: float = 0.0,
    zoom: float = 1.1,
    height: int = 500,
) -> pdk.Deck:
    """A globe (as :func:`globe`, land only) with particle trajectories from frame 0 to ``upto``.

    Layers: ``ocean``, ``land``, ``coast``, ``trajectories`` (a ``PathLayer`` of
    :func:`trajectory_paths` in ``color``), then ``points-0``: the particles at frame ``upto`` as
    dots in ``dot_color``. ``trajectories`` is ``(K, M, 2)`` as ``(lat, lon)`` in degrees.
    """
    traj = np.asarray(trajectories, dtype=np.float64)
    paths = trajectory_paths(traj, upto)
    k = max(0, min(int(upto), traj.shape[0] - 1))
    path_layer = pdk.Layer(
        "PathLayer",
        id="trajectories",
        data=[{"path": p} for p in paths],
        get_path="path",
        get_color=[int(v) for v in color],
        get_width=1.5,
        width_units="'pixels'",  # quoted: pydeck turns bare strings into accessor expressions
        width_min_pixels=1,
        parameters={"depthWriteEnabled": False},
    )
    dots = PointLayer("particles", traj[k, :, 0], traj[k, :, 1], dot_color, radius_m=60_000.0)
    return _CompactDeck(
        layers=[_ocean_layer(), _land_layer(land), _coast_layer(land, COAST_COLOR), path_layer, _points_layer(0, dots)],
        views=[pdk.View(type="_GlobeView", controller=True)],
        initial_view_state=pdk.ViewState(latitude=float(view_lat), longitude=float(view_lon), zoom=float(zoom)),
        map_provider=None,
        tooltip={"text": "lat {lat}°, lon {lon}°"},
        height=height,
    )


def globe_zoom(view_lat: float, zoom: float = 1.1) -> float:
    """The deck.gl zoom that shows the globe as large at ``view_lat`` as ``zoom`` does at the equator.

    deck.gl's globe zoom follows Web Mercator, whose scale grows as ``1 / cos(lat)``, so a globe viewed
    from high latitudes looks larger at the same zoom; this subtracts ``log2(1 / cos(lat))`` (capped
    at 85 deg).

    >>> globe_zoom(0.0), round(globe_zoom(60.0), 6)
    (1.1, 0.1)
    """
    lat = min(abs(float(view_lat)), 85.0)
    return float(zoom) + math.log2(math.cos(math.radians(lat)))
