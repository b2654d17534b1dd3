"""The probability paths as an animation that plays in the browser (plotly frames; no server round trip).

:func:`path_animation` puts the target path ``p_t`` and the model's path ``q_t`` side by side, one frame per
time of the run's path frames, on **one colour scale for every frame and both maps** (a shared colour axis),
so that brightness means the same density all the way from noise (t = 0) to the data (t = 1). Play, Pause
and a slider over t are plotly's own controls: the browser swaps the frames, about ``1000 / frame_ms`` a
second, and dragging the slider shows a frame at once.

>>> lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
>>> target = np.log(np.full((3, 2, 2), 1 / (4 * np.pi)))
>>> fig = path_animation(np.array([0.0, 0.5, 1.0]), (lat, lon, target), (lat, lon, target), land=None)
>>> len(fig.frames), fig.layout.sliders[0].steps[1].label, fig.layout.coloraxis.cmin < fig.layout.coloraxis.cmax
(3, '0.50', True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures.colours import COLORSCALE, shared_log_range
from dashboard.figures.land import land_lines
from dashboard.figures.maps import _degree_axis
from dashboard.units import colour_scale, colour_values

__all__ = ["FRAME_MS", "path_animation", "play_controls"]

#: Milliseconds a frame is shown while playing (10 frames a second).
FRAME_MS = 100
#: Decimals kept of each value sent to the browser (a hundredth of a nat, or of a power of ten).
_DECIMALS = 2

Grid = tuple[np.ndarray, np.ndarray, np.ndarray]  # lat (n_lat,), lon (n_lon,), values (K, n_lat, n_lon)


def _z(values: np.ndarray) -> np.ndarray:
    """Values as the browser gets them: float32 (plotly sends numpy arrays as typed arrays, so this halves the
    page), rounded to :data:`_DECIMALS` decimals, NaN where not finite (drawn blank)."""
    v = np.round(np.asarray(values, dtype=np.float64), _DECIMALS)
    return np.where(np.isfinite(v), v, np.nan).astype(np.float32)


def path_animation(
    times: np.ndarray,
    target: Grid,
    model: Grid,
    *,
    land: dict[str, Any] | None,
    start: int = 0,
    frame_ms: int = FRAME_MS,
    height: int = 470,
    titles: tuple[str, str] | None = None,
    unit: str = "log",
) -> go.Figure:
    """Target and model log densities over t as one animated figure (see the module doc).

    ``target`` and ``model`` are ``(lat, lon, values)`` with ``values`` of shape ``(K, n_lat, n_lon)``, one map
    per entry of ``times`` (each may have its own grid), of log densities in nats. ``start`` is the frame shown
    first; ``titles`` name the two maps; ``unit`` is how densities are drawn (``dashboard.units``: ``"log"``,
    log density, or ``"times"``, ``log10`` of times uniform with ticks ×0.1, ×1, ×10, ...). The colour range
    is :func:`~dashboard.figures.colours.shared_log_range` over every frame of both, in that unit."""
    times = np.asarray(times, dtype=np.float64)
    (t_lat, t_lon, t_val), (m_lat, m_lon, m_val) = target, model
    if t_val.shape[0] != times.size or m_val.shape[0] != times.size:
        raise ValueError(
            f"need one map per time: {times.size} times, {t_val.shape[0]} target and {m_val.shape[0]} model maps"
        )
    scale = colour_scale(unit, *shared_log_range(t_val, m_val))
    t_val, m_val = colour_values(t_val, unit), colour_values(m_val, unit)
    start = int(np.clip(start, 0, times.size - 1))
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=titles or ("Target path p_t", "Model path q_t"), horizontal_spacing=0.03
    )
    hover = "lat %{y:.1f}°, lon %{x:.1f}°<br>" + scale.hover + "<extra></extra>"
    for col, (lat, lon, values) in enumerate(((t_lat, t_lon, t_val), (m_lat, m_lon, m_val)), start=1):
        fig.add_trace(
            go.Heatmap(x=lon, y=lat, z=_z(values[start]), coloraxis="coloraxis", hovertemplate=hover), row=1, col=col
        )
    if land is not None:
        coast = land_lines(land)
        for col in (1, 2):
            fig.add_trace(
                go.Scatter(
                    x=coast.lon.astype(np.float32),
                    y=coast.lat.astype(np.float32),
                    mode="lines",
                    line={"color": "white", "width": 0.6},
                    hoverinfo="skip",
                    showlegend=False,
                ),
                row=1,
                col=col,
            )
    fig.frames = [
        go.Frame(name=str(k), traces=[0, 1], data=[go.Heatmap(z=_z(t_val[k])), go.Heatmap(z=_z(m_val[k]))])
        for k in range(times.size)
    ]
    # Play and Pause sit above the slider's left end and the slider spans the width, so neither squeezes the other
    # however narrow the window (beside it, the buttons covered the slider's start at 800 px).
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 120},
        plot_bgcolor="white",
        coloraxis={
            "colorscale": COLORSCALE,
            "cmin": scale.zmin,
            "cmax": scale.zmax,
            "colorbar": scale.colorbar(thickness=12),
        },
        **play_controls(times, start, frame_ms, buttons_y=-0.1, slider_x=0.0, slider_len=1.0, slider_y=-0.1,
                        slider_pad_t=16),
    )
    ticks_lon, ticks_lat = [-120, -60, 0, 60, 120], list(range(-90, 91, 45))  # no label at the shared edge
    for col in (1, 2):
        fig.update_xaxes(_degree_axis(180, ticks_lon, "E", "W"), row=1, col=col)
        fig.update_yaxes(
            {
                **_degree_axis(90, ticks_lat, "N", "S"),
                "scaleanchor": f"x{'' if col == 1 else col}",
                "scaleratio": 1,
                "showticklabels": col == 1,
            },
            row=1,
            col=col,
        )
    return fig


def play_controls(times: np.ndarray, start: int, frame_ms: int, *, buttons_y: float, slider_x: float,
                  slider_len: float, slider_y: float, slider_pad_t: int) -> dict[str, list[dict[str, Any]]]:
    """The ▶ Play and ❚❚ Pause buttons and the t slider of an animated figure whose frames are named ``"0"``,
    ``"1"``, ... (one per entry of ``times``), as plotly layout keys ``updatemenus`` and ``sliders``. Play shows a
    frame every ``frame_ms`` ms from the current one; the slider jumps at once; ``start`` is the frame shown first.
    The buttons sit at the left at height ``buttons_y``; the slider spans ``slider_len`` of the width from
    ``slider_x`` at height ``slider_y`` (both in paper coordinates, below the plot when negative)."""
    play = {"frame": {"duration": frame_ms, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    jump = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    return {
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": buttons_y,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"r": 8, "t": 0},
                "showactive": False,
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [None, play]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], jump]},
                ],
            }
        ],
        "sliders": [
            {
                "active": start,
                "x": slider_x,
                "len": slider_len,
                "y": slider_y,
                "yanchor": "top",
                "currentvalue": {"prefix": "t = ", "visible": True, "xanchor": "right"},
                "pad": {"t": slider_pad_t},
                "steps": [
                    {"label": f"{t:.2f}", "method": "animate", "args": [[str(k)], jump]} for k, t in enumerate(times)
                ],
            }
        ],
    }
