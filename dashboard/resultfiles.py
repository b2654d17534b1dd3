"""The Results page's reads and renders of a run's result files (``density.npz``, ``report.json``, ``split.npz``,
``status.json``), cached by the file and its modification time where they cost time.

What the learned density is drawn beside (:func:`reference`: the truth, else the kernel-density baseline), the map
pictures (:func:`map_png`), the globe's colour bar, the PNG and CSV downloads (built only when their button is
clicked), the report's stages and what a redraw depends on. Pure reads and renders: no widgets, no session state.
"""

from __future__ import annotations

import io
from typing import Any, NamedTuple

import numpy as np
import streamlit as st

from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunDir, RunError
from dashboard import export, figures, units
from dashboard.figures import raster
from dashboard.figures.geometry import kde_cell_means

__all__ = ["KDE_MAP_MAX_POINTS", "Reference", "colour_bar", "density_csv", "density_png", "has_results", "map_png",
           "reference", "signature", "stages"]

#: The kernel-density map is drawn for training sets up to this size (its cost grows with it; about 1 s here
#: for 5,000 clustered points on the 90 x 180 grid).
KDE_MAP_MAX_POINTS = 20_000


class Reference(NamedTuple):
    """What the learned density is drawn beside: its title, the key of its map element, its log density on the
    density grid."""

    title: str
    key: str
    values: np.ndarray


def has_results(run: RunDir) -> bool:
    return run.report.exists() or run.density.exists()


def signature(run: RunDir, run_state: str) -> tuple[object, ...]:
    """What the page draws from: a change means a full redraw."""
    mtime = run.density.stat().st_mtime_ns if run.density.exists() else 0
    return run_state in ACTIVE, run.report.exists(), mtime


def stages(run: RunDir) -> list[dict]:
    """The report's stages in ``status.json`` (``[]`` where there are none, or the file cannot be read)."""
    try:
        found = run.read_json(run.status).get("stages") if run.status.exists() else None
    except RunError:
        return []
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


@st.cache_data(max_entries=8, show_spinner="Drawing the kernel density on the map ...")
def _kde_map(
    split_path: str, mtime: float, kappa: float, weight: float, lat: tuple[float, ...], lon: tuple[float, ...]
) -> np.ndarray:
    """The run's kernel-density baseline as cell means on the density grid (cached per split file)."""
    with np.load(split_path, allow_pickle=False) as z:
        train = np.asarray(z["train"], dtype=np.float64)
    return kde_cell_means(np.array(lat), np.array(lon), train, kappa, weight)


def reference(run: RunDir, report: dict[str, Any] | None, lat: np.ndarray, lon: np.ndarray, log_prob: np.ndarray,
              true_log_prob: np.ndarray | None, kde_grid: np.ndarray | None) -> Reference | None:
    """What the learned density ``log_prob`` is drawn beside: the truth when the data have a known density, else the
    kernel-density baseline (from density.npz when a report stage wrote it there, else drawn here when the report
    has its κ and floor and the training set is not too large), else None."""
    if true_log_prob is not None:
        return Reference("True density", "true_density_map", np.asarray(true_log_prob, dtype=np.float64))
    if kde_grid is not None and kde_grid.shape == log_prob.shape:
        return Reference("Kernel density (the baseline)", "kde_density_map", np.asarray(kde_grid, dtype=np.float64))
    kappa, weight = (report or {}).get("kde_kappa"), (report or {}).get("kde_weight")
    if not (isinstance(kappa, int | float) and isinstance(weight, int | float) and kappa > 0 and 0 <= weight < 1):
        return None
    n_train = (report or {}).get("n_train")
    if not isinstance(n_train, int) or not 0 < n_train <= KDE_MAP_MAX_POINTS or not run.split.exists():
        return None
    try:
        values = _kde_map(
            str(run.split),
            run.split.stat().st_mtime,
            float(kappa),
            float(weight),
            tuple(lat.tolist()),
            tuple(lon.tolist()),
        )
    except (OSError, ValueError, KeyError):
        return None
    return Reference("Kernel density (the baseline)", "kde_density_map", values)


@st.cache_data(max_entries=16, show_spinner=False)
def map_png(path: str, mtime: float, which: str, unit: str, zrange: tuple[float, float], width: int,
            _values: np.ndarray, _lat: np.ndarray, _lon: np.ndarray, _coast: figures.LandLines) -> bytes:
    """The PNG of one density map of a run on the grid ``_lat`` x ``_lon`` (cached per density file ``path``, map,
    unit, range and width)."""
    scale = units.colour_scale(unit, *zrange)
    ticks = list(zip(scale.tickvals, scale.ticktext, strict=True)) if scale.tickvals and scale.ticktext else None
    return raster.density_image(_lat, _lon, units.colour_values(_values, unit), coast=_coast,
                                vmin=scale.zmin, vmax=scale.zmax, label=scale.title, ticks=ticks, width=width).png


def colour_bar(name: str, zrange: tuple[float, float], unit: str) -> str:
    """The globe's colour bar: the maps' range ``zrange`` in ``unit``."""
    if unit == "times":
        scale = units.colour_scale(unit, *zrange)
        return figures.colorbar_html(
            scale.zmin,
            scale.zmax,
            f"{name}: density, times uniform (the colour scale of the maps)",
            ticks=(scale.tickvals or (), scale.ticktext or ()),
            ends=(units.ratio_label(scale.zmin), units.ratio_label(scale.zmax)),
        )
    return figures.colorbar_html(*zrange, f"{name}: log density in nats (the colour scale of the maps)")


def density_png(lat: np.ndarray, lon: np.ndarray, values: np.ndarray, title: str, *, land: dict[str, Any],
                zrange: tuple[float, float], unit: str) -> bytes:
    """A PNG of a density map on the maps' range ``zrange``, in ``unit``."""
    lo, hi = (float(units.colour_values(np.array(v), unit)) for v in zrange)
    label = "density, log10 of × uniform (0: ×1, 1: ×10)" if unit == "times" else "log density (nats)"
    return export.density_png(
        lat, lon, units.colour_values(values, unit), land=land, title=title, vmin=lo, vmax=hi, label=label
    )


def density_csv(lat: np.ndarray, lon: np.ndarray, log_prob: np.ndarray) -> str:
    """The density grid as CSV: ``lat,lon,log_density``, a row per cell."""
    buf = io.StringIO()
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    np.savetxt(
        buf,
        np.stack([la.ravel(), lo.ravel(), log_prob.ravel()], 1),
        fmt="%.4f",
        delimiter=",",
        header="lat,lon,log_density",
        comments="",
    )
    return buf.getvalue()
