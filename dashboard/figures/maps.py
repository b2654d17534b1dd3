"""Flat figures (plotly): equirectangular density and residual maps with coastlines, and training curves.

No plotly geo or tile map: a map is a ``Heatmap`` on plain axes, longitude on x and latitude on y, one
degree to one degree, with the coastlines of :func:`~dashboard.figures.land.land_lines` over it.

>>> round(UNIFORM_NLL, 3)
2.531
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnfm_core.geo import LOG_AREA
from dashboard.figures.colours import COLORSCALE, DIVERGING_COLORSCALE, SAMPLE_COLOR, css_color, symmetric_limit
from dashboard.figures.geometry import as_latlon, subsample
from dashboard.figures.land import land_lines
from dashboard.units import UNITS, colour_scale, colour_values, times_uniform

__all__ = ["LIVE_RANGE", "UNIFORM_NLL", "curves", "density_map", "live_density_map", "residual_map"]

#: Negative log-likelihood of the uniform density on the unit sphere, log(4 pi) nats.
UNIFORM_NLL: float = LOG_AREA
_MAX_MAP_POINTS: int = 20_000
#: The live preview's fixed colour range (log density, nats): from 4 nats below the uniform density to 5 above,
#: so the colours mean the same thing in every redraw while the blobs form (uniform sits at 44 %).
LIVE_RANGE: tuple[float, float] = (-UNIFORM_NLL - 4.0, -UNIFORM_NLL + 5.0)
#: Up to this many points a curve also draws markers (so that one point shows, and a few are visible).
_MARKERS_UP_TO: int = 40


def _degree_labels(values: Sequence[float], positive: str, negative: str) -> list[str]:
    """``[-60, 0, 60] -> ["60°W", "0°", "60°E"]`` for ``positive="E", negative="W"``."""
    return [f"{abs(v):g}°{positive if v > 0 else negative if v < 0 else ''}" for v in values]


def _degree_axis(limit: float, ticks: list[int], positive: str, negative: str) -> dict[str, Any]:
    """A map axis over ``[-limit, limit]`` degrees, its ticks labelled in degrees east/west or north/south."""
    return {
        "range": [-limit, limit],
        "tickvals": ticks,
        "ticktext": _degree_labels(ticks, positive, negative),
        "showgrid": False,
        "zeroline": False,
        "constrain": "domain",
    }


def density_map(
    lat: np.ndarray,
    lon: np.ndarray,
    log_prob: np.ndarray,
    *,
    land: dict[str, Any],
    title: str = "",
    log_scale: bool = True,
    points: tuple[np.ndarray, np.ndarray] | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    unit: str | None = None,
) -> go.Figure:
    """Equirectangular heat map of a density on a lat/lon grid, with coastlines.

    ``lat`` (n_lat,) and ``lon`` (n_lon,) are cell centres in degrees and ``log_prob`` is
    ``(n_lat, n_lon)`` with ``log_prob[i, j]`` at ``(lat[i], lon[j])`` (as in
    :class:`cnfm_core.integrate.DensityGrid`), in nats per steradian. The colour shows
    ``log_prob`` when ``log_scale`` else ``exp(log_prob)``; cells where that is not finite (NaN, or
    -inf on the log scale) are left blank. ``points`` is an optional ``(lat, lon)`` overlay in
    :data:`SAMPLE_COLOR` (at most 20,000 drawn, a seeded subsample). ``zmin``/``zmax`` fix the ends
    of the colour scale (in the units shown), so that several maps share one scale (see
    :func:`shared_log_range`); by default plotly spans the values.
    Axes are fixed to [-180, 180] x [-90, 90] at one degree to one degree.

    ``unit`` (a key of :data:`dashboard.units.UNITS`, the session's ``state.density_unit()``) draws the log
    densities in the user's unit instead, and then ``zmin``/``zmax`` are log densities in nats whatever the
    unit: ``"times"`` colours ``log10(p / p_u)``, ``p_u = 1 / 4π``, with colour-bar ticks ×0.1, ×1, ×10, ...
    and hover "N × uniform"; ``"log"`` is the log-scale map. Without a unit (the default), ``log_scale``
    decides, as before.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    log_prob = np.asarray(log_prob, dtype=np.float64)
    if log_prob.shape != (lat.size, lon.size):
        raise ValueError(f"log_prob must have shape ({lat.size}, {lon.size}), got {log_prob.shape}")
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unknown density unit {unit!r}; choose one of {', '.join(UNITS)}")
    if unit == "times":
        heat = _times_uniform_heatmap(lat, lon, log_prob, zmin, zmax)
    else:
        z = log_prob if log_scale or unit == "log" else np.exp(log_prob)
        z = np.where(np.isfinite(z), z, np.nan)
        label = "log density (nats)" if log_scale or unit == "log" else "density"
        heat = go.Heatmap(
            x=lon,
            y=lat,
            z=z,
            name=label,
            colorscale=COLORSCALE,
            colorbar={"title": {"text": label, "side": "right"}},
            hovertemplate="lat %{y:.1f}°, lon %{x:.1f}°<br>" + label + " %{z:.3g}<extra></extra>",
            zmin=zmin,
            zmax=zmax,
        )
    fig = go.Figure()
    fig.add_trace(heat)
    coast = land_lines(land)
    fig.add_trace(
        go.Scatter(
            x=coast.lon,
            y=coast.lat,
            mode="lines",
            name="coastline",
            line={"color": "white", "width": 0.7},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    if points is not None:
        plat, plon = as_latlon(*points)
        idx = subsample(plat.size, _MAX_MAP_POINTS, seed=0)
        fig.add_trace(
            go.Scattergl(
                x=plon[idx],
                y=plat[idx],
                mode="markers",
                name="points",
                marker={"size": 3, "color": css_color(SAMPLE_COLOR), "line": {"width": 0}},
                hovertemplate="lat %{y:.2f}°, lon %{x:.2f}°<extra></extra>",
                showlegend=False,
            )
        )
    lon_ticks = list(range(-180, 181, 60))
    lat_ticks = list(range(-90, 91, 30))
    fig.update_layout(
        title={"text": title} if title else None,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        plot_bgcolor="white",
        xaxis=_degree_axis(180, lon_ticks, "E", "W"),
        yaxis={**_degree_axis(90, lat_ticks, "N", "S"), "scaleanchor": "x", "scaleratio": 1},
    )
    return fig


def _times_uniform_heatmap(
    lat: np.ndarray, lon: np.ndarray, log_prob: np.ndarray, zmin: float | None, zmax: float | None
) -> go.Heatmap:
    """The heat map of :func:`density_map` in times uniform: colour ``log10(p / p_u)``, ticks at powers of ten
    over the range drawn (``zmin``/``zmax`` in nats, else the finite values'), hover ``p / p_u`` itself."""
    finite = log_prob[np.isfinite(log_prob)]
    lo = zmin if zmin is not None else float(finite.min()) if finite.size else None
    hi = zmax if zmax is not None else float(finite.max()) if finite.size else None
    scale = colour_scale("times", lo, hi)
    z = colour_values(log_prob, "times")
    return go.Heatmap(
        x=lon,
        y=lat,
        z=np.where(np.isfinite(z), z, np.nan),
        customdata=np.where(np.isfinite(log_prob), times_uniform(log_prob), np.nan),
        name=scale.title,
        colorscale=COLORSCALE,
        colorbar=scale.colorbar(),
        hovertemplate="lat %{y:.1f}°, lon %{x:.1f}°<br>density %{customdata:,.2r} × uniform<extra></extra>",
        zmin=scale.zmin if zmin is not None else None,
        zmax=scale.zmax if zmax is not None else None,
    )


def live_density_map(
    lat: np.ndarray,
    lon: np.ndarray,
    log_prob: np.ndarray,
    samples: np.ndarray | None,
    *,
    land: dict[str, Any],
    title: str = "",
    unit: str = "log",
) -> go.Figure:
    """The live preview of a run in training (``live.npz``): a coarse density map in ``unit`` (see
    :func:`density_map`), smoothed between cell centres, in the fixed :data:`LIVE_RANGE` of log densities, with
    model ``samples`` ``(S, 2)`` (lat, lon) over it."""
    points = None
    if samples is not None and len(samples):
        samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
        points = (samples[:, 0], samples[:, 1])
    fig = density_map(
        lat, lon, log_prob, land=land, title=title, points=points, zmin=LIVE_RANGE[0], zmax=LIVE_RANGE[1], unit=unit
    )
    fig.update_traces(selector={"type": "heatmap"}, zsmooth="best", colorbar={"thickness": 12, "len": 0.9})
    fig.update_layout(height=340)
    return fig


def residual_map(
    lat: np.ndarray,
    lon: np.ndarray,
    values: np.ndarray,
    *,
    land: dict[str, Any],
    title: str = "",
    label: str = "p_t · r",
    limit: float | None = None,
) -> go.Figure:
    """Equirectangular map of a signed quantity on a lat/lon grid (as :func:`density_map`), in
    :data:`DIVERGING_COLORSCALE` centred at zero: red above, blue below, white at zero.

    The colour range is ``[-limit, limit]``, by default from :func:`symmetric_limit`; values beyond
    it get the end colours. Non-finite cells are left blank.
    """
    values = np.asarray(values, dtype=np.float64)
    m = float(limit) if limit is not None else symmetric_limit(values)
    fig = density_map(lat, lon, values, land=land, title=title, zmin=-m, zmax=m)
    fig.update_traces(
        selector={"type": "heatmap"},
        name=label,
        colorscale=DIVERGING_COLORSCALE,
        zmid=0.0,
        colorbar={"title": {"text": label, "side": "right"}},
        hovertemplate="lat %{y:.1f}°, lon %{x:.1f}°<br>" + label + " %{z:.3g}<extra></extra>",
    )
    fig.update_traces(selector={"name": "coastline"}, line={"color": "rgb(90, 90, 90)", "width": 0.7})
    return fig


def _series(metrics: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of the records holding a finite number under ``key`` and a ``step``."""
    steps: list[float] = []
    values: list[float] = []
    for rec in metrics:
        value, step = rec.get(key), rec.get("step")
        if isinstance(value, int | float) and isinstance(step, int | float) and math.isfinite(value):
            steps.append(float(step))
            values.append(float(value))
    return steps, values


def curves(metrics: Sequence[dict[str, Any]]) -> go.Figure:
    """Training loss (top) and validation NLL (bottom) against step, from metrics records.

    Records are dicts as in a run's ``metrics.jsonl``: those with ``step`` and ``loss`` feed the
    top panel, those with ``step`` and ``val_nll`` the bottom one; others (events) are ignored.
    The NLL panel has a dashed line at the uniform density's NLL, log(4 pi) = 2.531 nats. A series of
    up to 40 points also has markers, so a single point is drawn. With no usable record the figure is empty
    and says "no data yet".
    """
    loss = _series(metrics, "loss")
    nll = _series(metrics, "val_nll")
    if not loss[0] and not nll[0]:
        fig = go.Figure()
        fig.add_annotation(
            text="no data yet",
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
            showarrow=False,
            font={"size": 16, "color": "gray"},
        )
        fig.update_layout(
            xaxis={"visible": False}, yaxis={"visible": False}, height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}
        )
        return fig
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("training loss", "validation NLL (nats)"),
    )

    def mode(series: tuple[list[float], list[float]]) -> str:
        return "lines+markers" if len(series[0]) <= _MARKERS_UP_TO else "lines"

    fig.add_trace(
        go.Scatter(x=loss[0], y=loss[1], mode=mode(loss), name="loss", line={"color": "#4c72b0"}, marker={"size": 6}),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=nll[0],
            y=nll[1],
            mode="lines+markers",
            name="val NLL",
            line={"color": css_color(SAMPLE_COLOR)},
            marker={"size": 6},
        ),
        row=2,
        col=1,
    )
    fig.add_hline(
        y=UNIFORM_NLL,
        line_dash="dash",
        line_color="gray",
        row=2,
        col=1,
        annotation_text=f"uniform, log 4π = {UNIFORM_NLL:.3f}",
        annotation_position="top right",
    )
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(showlegend=False, height=450, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig
