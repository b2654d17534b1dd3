"""A flat map of a point set (plotly): the points over the bundled coastlines, framed on the data.

The map is equirectangular, longitude on x and latitude on y, like :func:`~dashboard.figures.maps.density_map`,
but it shows only the part of the world that holds the points, and it puts its seam (where longitude wraps
around) in the widest empty band of longitudes. A set that straddles the antimeridian (Fiji, the Aleutians,
a Pacific ring of volcanoes) then lies in one piece in the middle of the map instead of at both edges: x runs
past 180 deg there (x = 190 is 170 deg W), and the axis labels say the longitude in degrees E/W.

>>> window = lon_window(np.array([179.0, -179.0]))
>>> round(window.west, 6), round(window.east, 6)
(179.0, 181.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.colours import DATA_COLOR, css_color
from dashboard.figures.geometry import as_latlon, subsample
from dashboard.figures.globes import PointLayer
from dashboard.figures.land import land_lines

__all__ = ["LonWindow", "layers_map", "lon_window", "points_map", "wrap_lon", "wrapped_lines"]

_MAX_MAP_POINTS: int = 20_000
#: Smallest part of the world a map shows, in degrees of longitude and latitude, so that a tight cluster
#: (or a single point) still shows the coast around it.
_MIN_SPAN_LON: float = 40.0
_MIN_SPAN_LAT: float = 25.0
#: Tick spacings to choose from, in degrees.
_TICK_STEPS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0)


@dataclass(frozen=True)
class LonWindow:
    """A band of longitudes ``[west, east]`` in degrees, ``west`` in [-180, 180) and ``east - west`` in (0, 360].

    Longitudes map into it by :func:`wrap_lon`; ``east`` may exceed 180 when the band crosses the antimeridian.
    """

    west: float
    east: float


def lon_window(lon: np.ndarray) -> LonWindow:
    """The narrowest band of longitudes that holds every point: the circle minus its widest empty gap.

    >>> lon_window(np.array([-10.0, 30.0]))
    LonWindow(west=-10.0, east=30.0)
    >>> lon_window(np.array([])), lon_window(np.array([5.0]))
    (LonWindow(west=-180.0, east=180.0), LonWindow(west=5.0, east=5.0))
    """
    lon = np.asarray(lon, dtype=np.float64).ravel()
    lon = lon[np.isfinite(lon)]
    if not lon.size:
        return LonWindow(-180.0, 180.0)
    s = np.unique((lon + 180.0) % 360.0 - 180.0)
    gaps = np.diff(np.append(s, s[0] + 360.0))  # gaps[i]: from s[i] east to the next point
    i = int(np.argmax(gaps))
    west = float(s[(i + 1) % s.size])
    return LonWindow(west, west + 360.0 - float(gaps[i]))


def wrap_lon(lon: np.ndarray, west: float) -> np.ndarray:
    """Longitudes moved by whole turns into ``[west, west + 360)``.

    >>> wrap_lon(np.array([-170.0, 10.0]), 100.0).tolist()
    [190.0, 370.0]
    """
    return (np.asarray(lon, dtype=np.float64) - west) % 360.0 + west


def wrapped_lines(lon: np.ndarray, lat: np.ndarray, west: float) -> tuple[np.ndarray, np.ndarray]:
    """NaN-separated lines (as :func:`~dashboard.figures.land.land_lines`) moved into ``[west, west + 360]``.

    Where a line crosses the map's seam (consecutive vertices more than 180 deg apart once wrapped) it
    is cut there: it ends on one edge and goes on from the other, at the interpolated latitude, so no
    line runs across the whole map. Returns ``(x, y)``.

    >>> x, y = wrapped_lines(np.array([170.0, -170.0]), np.array([0.0, 10.0]), -180.0)
    >>> x.tolist()[:2], x.tolist()[3:], y.tolist()[1]
    ([170.0, 180.0], [-180.0, -170.0], 5.0)
    """
    x = wrap_lon(lon, west)
    y = np.asarray(lat, dtype=np.float64)
    jumps = np.flatnonzero(np.abs(np.diff(x)) > 180.0)  # NaN differences compare False
    if not jumps.size:
        return x, y
    xs, ys, start = [], [], 0
    for j in jumps.tolist():
        a, b = x[j], x[j + 1]
        edge = west + 360.0 if a > b else west
        b_unwrapped = b + 360.0 if a > b else b - 360.0
        lat_c = y[j] + (edge - a) / (b_unwrapped - a) * (y[j + 1] - y[j])
        other = west if a > b else west + 360.0
        xs += [x[start : j + 1], [edge, np.nan, other]]
        ys += [y[start : j + 1], [lat_c, np.nan, lat_c]]
        start = j + 1
    xs.append(x[start:])
    ys.append(y[start:])
    return np.concatenate(xs), np.concatenate(ys)


def _pad(lo: float, hi: float, min_span: float, lo_limit: float, hi_limit: float) -> tuple[float, float]:
    """``[lo, hi]`` widened by a margin (10 % and 3 deg each side) to at least ``min_span``, kept in the limits."""
    margin = 0.1 * (hi - lo) + 3.0
    lo, hi = lo - margin, hi + margin
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    if hi - lo >= hi_limit - lo_limit:
        return lo_limit, hi_limit
    shift = max(0.0, lo_limit - lo) - max(0.0, hi - hi_limit)
    return lo + shift, hi + shift


def _ticks(lo: float, hi: float) -> list[float]:
    """Round tick values in ``[lo, hi]``, at most about six of them."""
    step = next((s for s in _TICK_STEPS if (hi - lo) / s <= 6.0), _TICK_STEPS[-1])
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def _lon_label(x: float) -> str:
    """An x value of a wrapped map as a longitude: ``190 -> "170°W"``, ``-180 -> "180°"``."""
    v = (x + 180.0) % 360.0 - 180.0
    return f"{abs(v):g}°" + ("E" if 0 < v < 180 else "W" if v < 0 and v != -180 else "")


def _lat_label(y: float) -> str:
    return f"{abs(y):g}°" + ("N" if y > 0 else "S" if y < 0 else "")


def _axis(lo: float, hi: float, label: Callable[[float], str], **extra: Any) -> dict[str, Any]:
    """A plotly axis of the map over ``[lo, hi]``: round ticks (:func:`_ticks`) named by ``label``, no grid; ``extra``
    adds to it (the y axis keeps the map's aspect ratio with ``scaleanchor`` and ``scaleratio``)."""
    ticks = _ticks(lo, hi)
    return {"range": [lo, hi], "tickvals": ticks, "ticktext": [label(v) for v in ticks], "showgrid": False,
            "zeroline": False, **extra, "constrain": "domain"}


def points_map(
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    land: dict[str, Any],
    color: list[int] | None = None,
    name: str = "points",
    height: int = 560,
    width_hint: int | None = None,
    max_points: int = _MAX_MAP_POINTS,
) -> go.Figure:
    """Equirectangular map of points over coastlines, framed on the points (see the module docstring).

    Traces: ``coastline`` (a ``Scatter`` of NaN-separated lines) and ``name`` (a ``Scattergl`` of at most
    ``max_points`` points, a seeded subsample, in ``color``, default :data:`DATA_COLOR`). x is longitude
    wrapped into the points' :func:`lon_window` (so it may run past 180), y latitude, in degrees; hovering
    a point shows its original lat/lon. The axes span the points with a margin, at least 40 x 25 degrees
    and half as tall as wide; a degree of longitude is drawn ``cos(mid latitude)`` as wide as a degree of
    latitude (true shapes near the middle of the map, capped at 1:3 near the poles). With no points the
    map shows the world. The figure is ``height`` pixels tall, or less when ``width_hint`` (the width it
    will likely get) is given and a wide map needs less: no empty band above and below a map of the world.
    """
    layer = PointLayer(name, lat, lon, color or DATA_COLOR, max_points=max_points)
    return layers_map([layer], land=land, height=height, width_hint=width_hint)


def layers_map(
    layers: Sequence[PointLayer], *, land: dict[str, Any], height: int = 560, width_hint: int | None = None
) -> go.Figure:
    """:func:`points_map` of several point sets (:class:`~dashboard.figures.globes.PointLayer`: name, lat, lon,
    colour, at most ``max_points`` drawn, an optional ``outline``), framed on all of them, one ``Scattergl``
    trace each named by its layer, in order (the last drawn on top). A set's dots are 7, 4 or 2.5 px across for
    up to 100, 3,000 or more points, one pixel more with an outline (a one-pixel rim in that colour).
    """
    sets = []
    for layer in layers:
        la, lo = as_latlon(layer.lat, layer.lon)
        ok = np.isfinite(la) & np.isfinite(lo)
        sets.append((layer, la[ok], lo[ok]))
    lat = np.concatenate([la for _, la, _ in sets]) if sets else np.empty(0)
    lon = np.concatenate([lo for _, _, lo in sets]) if sets else np.empty(0)
    window = lon_window(lon)
    x0, x1 = window.west, window.east
    x0, x1 = _pad(x0, x1, _MIN_SPAN_LON, x0 - (360.0 - (x1 - x0)) / 2, x1 + (360.0 - (x1 - x0)) / 2)
    if lat.size:
        # At least half as tall as wide (in true distances), so that two far-apart points get no thin strip.
        mid = math.radians((float(lat.min()) + float(lat.max())) / 2)
        min_span = max(_MIN_SPAN_LAT, 0.5 * (x1 - x0) * math.cos(mid))
        y0, y1 = _pad(float(lat.min()), float(lat.max()), min_span, -90.0, 90.0)
    else:
        y0, y1 = -90.0, 90.0
    seam = (x0 + x1) / 2 - 180.0  # the map's seam, opposite its middle
    coast = land_lines(land)
    cx, cy = wrapped_lines(coast.lon, coast.lat, seam)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=cx,
            y=cy,
            mode="lines",
            name="coastline",
            line={"color": "rgb(120, 120, 120)", "width": 0.8},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for layer, la, lo in sets:
        idx = subsample(la.size, layer.max_points, seed=0)
        size = 7 if la.size <= 100 else 4 if la.size <= 3000 else 2.5
        rim = {"width": 0} if layer.outline is None else {"width": 1, "color": css_color(layer.outline)}
        fig.add_trace(
            go.Scattergl(
                x=wrap_lon(lo[idx], seam),
                y=la[idx],
                mode="markers",
                name=layer.name,
                customdata=np.stack([la[idx], lo[idx]], axis=1),
                marker={"size": size + (layer.outline is not None), "color": css_color(layer.color), "line": rim},
                hovertemplate="lat %{customdata[0]:.2f}°, lon %{customdata[1]:.2f}°<extra></extra>",
                showlegend=False,
            )
        )
    ratio = 1.0 / max(math.cos(math.radians((y0 + y1) / 2)), 1.0 / 3.0)
    if width_hint is not None:
        # Plot area about width_hint - 60 px wide (tick labels), plus 45 px of margins and tick labels below.
        needed = (width_hint - 60) * (y1 - y0) * ratio / (x1 - x0) + 45
        height = int(min(height, max(200, math.ceil(needed))))
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        plot_bgcolor="rgb(214, 226, 238)",
        xaxis=_axis(x0, x1, _lon_label),
        yaxis=_axis(y0, y1, _lat_label, scaleanchor="x", scaleratio=ratio),
    )
    return fig
