"""The Path page's reads and renders of a run's ``frames.npz``, cached by the file and its modification time.

:func:`frames` reads the file once; the rest turn it into what the page shows and exports: the one colour
range of every frame of both paths (:func:`scale`), the slider's times, the animation figure, the samples map
at one time, and the PNG and GIF downloads (drawn only when their button is clicked). Pure reads and renders:
no widgets, no session state.
"""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from cnfm_core.pathframes import Frames, read_frames
from cnfm_core.runs import RunDir, RunError
from dashboard import export, figures, units
from dashboard.figures import raster

__all__ = ["MODEL_COLOR", "RFM_NOTE", "TARGET_COLOR", "animation_figure", "export_scale", "frames", "frames_of",
           "map_png", "path_gif", "path_grid", "samples_map_png", "samples_png", "scale", "target", "times"]

TARGET_COLOR, MODEL_COLOR = figures.DATA_COLOR, figures.SAMPLE_COLOR


@st.cache_data(max_entries=8, show_spinner=False)
def frames(path: str, mtime: float) -> Frames:
    return read_frames(RunDir(path))


def target(path: str) -> tuple[float, str, str]:
    """The uniform floor and the kernel of the run's target path, and its objective (0, "fixed" and "ppd" for
    runs made before those existed, or with an unreadable config)."""
    try:
        config = RunDir(path).read_json(RunDir(path).config).get("config", {})
        return float(config.get("floor", 0.0)), str(config.get("kernel", "fixed")), str(config.get("objective", "ppd"))
    except (RunError, OSError, ValueError, TypeError, AttributeError):
        return 0.0, "fixed", "ppd"


#: What an RFM run's page says about the kernel path and the residual: PPD's, not what the run trained on.
RFM_NOTE = (
    "This run was trained with **RFM**, which does not use this kernel path: RFM moves uniform noise "
    "along geodesics to the data, so its own path q_t differs from p_t at intermediate times by design "
    "(it is often nearly uniform at t = 0.5 where p_t is already concentrated). The target path here is "
    "**PPD's**, shown for comparison; only at t = 1 should both end at the data."
)


def scale(f: Frames) -> tuple[float, float]:
    """The one colour range of the animation, its exports and its caption: every frame of both paths."""
    return figures.shared_log_range(f.target_fine_log_prob, f.model_log_prob)


def times(f: Frames) -> list[float]:
    """The frames' times as the slider and the URL's ``?t=`` know them."""
    return [round(float(t), 4) for t in f.times]


def frames_of(run: RunDir) -> tuple[str, float]:
    return str(run.path), run.frames.stat().st_mtime


def export_scale(f: Frames, unit: str) -> tuple[float, float, str]:
    """The colour range of the exported maps and GIFs in ``unit`` and their colour bar's label."""
    lo, hi = scale(f)
    if unit == "times":
        return (
            float(units.colour_values(np.array(lo), unit)),
            float(units.colour_values(np.array(hi), unit)),
            "density, log10 of × uniform (0: ×1, 1: ×10)",
        )
    return lo, hi, "log density (nats)"


@st.cache_data(max_entries=64, show_spinner=False)
def map_png(path: str, mtime: float, k: int, which: str, unit: str = "log") -> bytes:
    """PNG of the target map, the model map (one colour range for both, in ``unit``) or the weighted residual at
    frame k."""
    f = frames(path, mtime)
    land = figures.load_land()
    t = f"t = {f.times[k]:.2f}"
    if which == "residual":
        w = figures.weighted_residual(f.lat, f.lon, f.target_log_prob[k], f.residual[k])
        return export.density_png(
            f.lat,
            f.lon,
            w.values,
            land=land,
            diverging=True,
            label="p_t · r",
            title=f"PPD residual weighted by the target, p_t · r   ({t})",
        )
    lo, hi, label = export_scale(f, unit)
    lat, lon, values, name = path_grid(f, which)
    return export.density_png(
        lat,
        lon,
        units.colour_values(values[k], unit),
        land=land,
        vmin=lo,
        vmax=hi,
        label=label,
        title=f"{name}   ({t})",
    )


def path_grid(f: Frames, which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The target path (on its finer grid) or the model path: grid, values over frames, name."""
    if which == "target":
        return f.fine_lat, f.fine_lon, f.target_fine_log_prob, "Target path p_t"
    return f.lat, f.lon, f.model_log_prob, "Model path q_t"


@st.cache_data(max_entries=32, show_spinner=False)
def samples_png(path: str, mtime: float, k: int) -> bytes:
    f = frames(path, mtime)
    centre = figures.view_centre(f.target_samples[-1, :, 0], f.target_samples[-1, :, 1])
    points = [
        export.GlobePoints(f.target_samples[k, :, 0], f.target_samples[k, :, 1], TARGET_COLOR, "target samples (p_t)"),
        export.GlobePoints(f.model_samples[k, :, 0], f.model_samples[k, :, 1], MODEL_COLOR, "model samples (q_t)"),
    ]
    return export.globe_png(
        points,
        land=figures.load_land(),
        center_lat=centre[0],
        center_lon=centre[1],
        title=f"Samples at t = {f.times[k]:.2f}",
    )


@st.cache_data(max_entries=8, show_spinner=False)
def path_gif(path: str, mtime: float, which: str, unit: str = "log") -> bytes:
    """Animated GIF of the target or the model path over all frames, both on one colour range, in ``unit``."""
    f = frames(path, mtime)
    lo, hi, label = export_scale(f, unit)
    lat, lon, values, name = path_grid(f, which)
    return export.frames_gif(
        units.colour_values(values, unit),
        lat,
        lon,
        f.times,
        land=figures.load_land(),
        title=name,
        vmin=lo,
        vmax=hi,
        label=label,
    )


@st.cache_resource(max_entries=8, show_spinner=False)
def animation_figure(path: str, mtime: float, start: int, objective: str, unit: str) -> go.Figure:
    """The animation of a frames file (built once per file, start frame, objective and unit; never changed)."""
    f = frames(path, mtime)
    titles = ("PPD's target path p_t (for comparison)", "Model path q_t (RFM)") if objective == "rfm" else None
    return figures.path_animation(
        f.times,
        (f.fine_lat, f.fine_lon, f.target_fine_log_prob),
        (f.lat, f.lon, f.model_log_prob),
        land=figures.load_land(),
        start=start,
        titles=titles,
        unit=unit,
    )


@st.cache_data(max_entries=64, show_spinner=False)
def samples_map_png(path: str, mtime: float, k: int, width: int = 900) -> bytes:
    """Target and model samples at frame ``k`` on a flat world map, as a PNG (no chart library to load)."""
    f = frames(path, mtime)
    sets = [(f.target_samples[k, :, 0], f.target_samples[k, :, 1], TARGET_COLOR),
            (f.model_samples[k, :, 0], f.model_samples[k, :, 1], MODEL_COLOR)]
    return raster.points_image(sets, coast=figures.land_lines(figures.load_land()), width=width)
