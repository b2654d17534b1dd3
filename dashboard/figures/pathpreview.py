"""The target path before training as one map that plays in the browser (plotly frames; no server round trip).

:func:`target_path_figure` draws ``log p_t`` at several times on **one colour scale for every frame**, so that
a colour means the same density from noise (t = 0) to the data (t = 1), with samples of ``p_t`` over it.
Each frame may have its own grid (a smooth ``p_t`` needs few cells; the browser interpolates between cell
centres, ``zsmooth``), and a frame's title says its time and how wide its kernels are. Play, Pause and a
slider over t are plotly's own controls: moving through t never asks the server.

The figure is sent small, because every change of κ_max sends it again: each map as one byte a cell, its
position on the colour scale (256 steps; over the 10 nats of :func:`~dashboard.figures.colours.shared_log_range`
a step is 0.04 nats, below what a colour shows), with the colour bar's ticks placed on the same steps; and the
figure is built from plain dicts, which plotly checks about six times faster than its trace objects.

>>> lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
>>> grids = [(lat, lon, np.full((2, 2), -2.53)), (lat, lon, np.array([[-5.0, -1.0], [0.0, 2.0]]))]
>>> fig = target_path_figure(np.array([0.0, 1.0]), np.array([0.0, 50.0]), grids, None, land=None)
>>> len(fig.frames), fig.layout.sliders[0].steps[1].label, fig.frames[1].data[0].z.tolist()
(2, '1.00', [[0, 146], [182, 255]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard import units
from dashboard.figures.animation import play_controls
from dashboard.figures.colours import COLORSCALE, SAMPLE_COLOR, css_color, shared_log_range
from dashboard.figures.land import land_lines
from dashboard.figures.maps import _degree_axis

__all__ = ["LEVELS", "PLAY_MS", "frame_title", "target_path_figure"]

#: Milliseconds a frame is shown while playing.
PLAY_MS = 150
#: Steps of the colour scale a map is sent in (one byte a cell).
LEVELS = 256

Grid = tuple[np.ndarray, np.ndarray, np.ndarray]  # lat (n_lat,), lon (n_lon,), log density (n_lat, n_lon)
Points = tuple[np.ndarray, np.ndarray]  # lat (S,), lon (S,) in degrees


def frame_title(t: float, kappa: float) -> str:
    """What a frame shows, in words: its time, its concentration and the width of its kernels in degrees
    (``1 / sqrt(kappa)`` radians, about the distance at which a kernel has fallen to 60 % of its peak).

    >>> frame_title(0.0, 0.0), frame_title(0.5, 100.0)
    ('t = 0.00: uniform noise (κ = 0)', 't = 0.50: κ = 100, kernels about 5.7° wide')
    """
    if kappa <= 0.0:
        return f"t = {t:.2f}: uniform noise (κ = 0)"
    width = math.degrees(1.0 / math.sqrt(kappa))
    shown = f"{kappa:,.0f}" if kappa >= 10.0 else f"{kappa:.2g}"
    return f"t = {t:.2f}: κ = {shown}, kernels about {width:.2g}° wide"


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks of a log-density colour bar from ``lo`` to ``hi`` nats: whole numbers, every one, two or five."""
    every = next(e for e in (1, 2, 5, 10, 20, 50) if (hi - lo) / e <= 8)
    ticks = [float(v) for v in range(math.ceil(lo / every) * every, math.floor(hi) + 1, every)]
    return ticks, [f"{v:g}".replace("-", "−") for v in ticks]


def _levels(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``values`` as steps 0..255 of the colour range ``[lo, hi]`` (clipped), one byte each."""
    scaled = (np.asarray(values, dtype=np.float64) - lo) * ((LEVELS - 1) / (hi - lo))
    return np.clip(np.rint(np.nan_to_num(scaled, nan=0.0)), 0, LEVELS - 1).astype(np.uint8)


def target_path_figure(
    times: np.ndarray,
    kappas: np.ndarray,
    grids: Sequence[Grid],
    samples: Sequence[Points] | None,
    *,
    land: dict[str, Any] | None,
    unit: str = "log",
    start: int = 0,
    play_ms: int = PLAY_MS,
    height: int = 470,
) -> go.Figure:
    """``log p_t`` at ``times`` (with concentrations ``kappas``) as one animated map (module doc), coloured in
    ``unit`` (:data:`dashboard.units.UNITS`).

    ``grids`` holds one ``(lat, lon, log density)`` per time, each on its own grid; ``samples`` one
    ``(lat, lon)`` per time, drawn over the map (None: no samples). ``start`` is the frame shown first.
    The colour range is :func:`~dashboard.figures.colours.shared_log_range` over every frame."""
    times = np.asarray(times, dtype=np.float64)
    kappas = np.asarray(kappas, dtype=np.float64)
    if len(grids) != times.size or kappas.size != times.size or (samples is not None and len(samples) != times.size):
        raise ValueError(f"need one map (and one set of samples) per time: {times.size} times, {len(grids)} maps")
    scale = units.colour_scale(unit, *shared_log_range(*(g[2] for g in grids)))
    lo, hi = float(scale.zmin), float(scale.zmax)
    ticks, labels = (list(scale.tickvals), list(scale.ticktext or ())) if scale.tickvals else _log_ticks(lo, hi)
    start = int(np.clip(start, 0, times.size - 1))

    def heatmap(k: int) -> dict[str, Any]:
        lat, lon, values = grids[k]
        return {
            "type": "heatmap",
            "x": np.asarray(lon, np.float32),
            "y": np.asarray(lat, np.float32),
            "z": _levels(units.colour_values(values, unit), lo, hi),
            "zsmooth": "fast",
            "coloraxis": "coloraxis",
            "hovertemplate": "lat %{y:.0f}°, lon %{x:.0f}°<extra></extra>",
            "name": "density",
        }

    def dots(k: int) -> dict[str, Any]:
        lat, lon = samples[k] if samples is not None else (np.empty(0), np.empty(0))
        return {
            "type": "scatter",
            "x": np.asarray(lon, np.float32),
            "y": np.asarray(lat, np.float32),
            "mode": "markers",
            "name": "samples",
            "hoverinfo": "skip",
            "showlegend": False,
            "visible": samples is not None,
            "marker": {"size": 4, "color": css_color(SAMPLE_COLOR), "line": {"width": 0.5, "color": "black"}},
        }

    data = [heatmap(start), dots(start)]
    if land is not None:
        coast = land_lines(land)
        data.append(
            {
                "type": "scatter",
                "x": coast.lon.astype(np.float32),
                "y": coast.lat.astype(np.float32),
                "mode": "lines",
                "line": {"color": "white", "width": 0.6},
                "hoverinfo": "skip",
                "showlegend": False,
                "name": "coastline",
            }
        )
    title = {"x": 0.01, "xanchor": "left", "font": {"size": 15}}
    frames = [
        {
            "name": str(k),
            "traces": [0, 1],
            "data": [heatmap(k), dots(k)],
            "layout": {"title": {**title, "text": frame_title(times[k], kappas[k])}},
        }
        for k in range(times.size)
    ]
    to_level = (LEVELS - 1) / (hi - lo)
    layout = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 36, "b": 70},
        "plot_bgcolor": "white",
        "title": {**title, "text": frame_title(times[start], kappas[start])},
        "coloraxis": {
            "colorscale": COLORSCALE,
            "cmin": 0,
            "cmax": LEVELS - 1,
            "colorbar": {
                **scale.colorbar(thickness=12),
                "tickmode": "array",
                "tickvals": [(v - lo) * to_level for v in ticks],
                "ticktext": labels,
            },
        },
        **play_controls(times, start, play_ms, buttons_y=-0.08, slider_x=0.25, slider_len=0.75, slider_y=-0.03,
                        slider_pad_t=0),
        "xaxis": _degree_axis(180, [-120, -60, 0, 60, 120], "E", "W"),
        "yaxis": {**_degree_axis(90, list(range(-90, 91, 45)), "N", "S"), "scaleanchor": "x", "scaleratio": 1},
    }
    return go.Figure(data=data, layout=layout, frames=frames)
