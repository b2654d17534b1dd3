"""The Target path page's computations, cached on the server: the maps and samples of the target path at one
κ_max (:func:`preview`), its animated figure (:func:`figure`), and the computation of the other κ_max values
while the class looks at one (:func:`prefetch`), so that dragging the slider finds them ready.

A key is ``(data file, its mtime, split, seed, κ_max)``. Pure reads and renders: no widgets, no session state.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx

from cnfm_core.data import DataError, PointSet
from cnfm_core.geo import xyz_to_latlon
from cnfm_core.pathmaps import path_map
from cnfm_core.pathpreview import preview_path, training_rows
from dashboard import figures
from dashboard.figures.pathpreview import target_path_figure

__all__ = ["N_SAMPLES", "PREFETCH_NICE", "TIMES", "Key", "Preview", "figure", "prefetch", "prefetch_order", "preview"]

Key = tuple[str, float, str, int, float]  # data file, its mtime, split, seed, κ_max
#: The times of the frames: t = 0, 0.05, ..., 1.
TIMES = np.linspace(0.0, 1.0, 21)
#: Samples of p_t drawn at each time (more cost the browser time at every frame: measured in bench_explore.py).
N_SAMPLES = 500
#: How much nicer than the server the thread is that computes the other κ_max values (Linux: a thread's own
#: priority). Where the
#: browser runs on the server's machine (a teacher's laptop), it then takes the cores only when the browser
#: leaves them idle: computing at full priority took a core from the browser while it drew the map just sent
#: (bench_explore.py: 0.98 s at p50 for a step instead of 0.68 s). Not 19: a class that asks for a value being
#: computed waits for this thread.
PREFETCH_NICE = 10


@dataclass(frozen=True, eq=False)
class Preview:
    """The path of one data set, split, seed and κ_max: its maps at :data:`TIMES` (``(lat, lon, log density)``,
    float32), their concentrations, samples (lat, lon) at each time, and what it was built from."""

    grids: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    kappas: np.ndarray
    samples: np.ndarray  # (K, S, 2) float32
    n_train: int
    n_centres: int


@st.cache_resource(max_entries=24, show_spinner=False)
def preview(key: Key, _points: PointSet) -> Preview:
    """Maps and samples of the target path (``key``: the data file, its mtime, split, seed, κ_max). Read-only.

    Raises :class:`~cnfm_core.data.DataError` when the split leaves no training point."""
    _, _, split, seed, kappa_max = key
    rows = training_rows(_points.xyz, split=split, seed=seed)
    if rows.size < 1:
        raise DataError(f"no training points after the {split} split")
    path = preview_path(_points.xyz[rows], kappa_max=kappa_max)
    maps = [path_map(path, float(t)) for t in TIMES]
    rng = np.random.default_rng(seed)
    samples = np.empty((TIMES.size, N_SAMPLES, 2), np.float32)
    for k, t in enumerate(TIMES):
        lat, lon = xyz_to_latlon(path.sample(float(t), N_SAMPLES, rng))
        samples[k, :, 0], samples[k, :, 1] = lat, lon
    grids = [(m.lat, m.lon, m.log_density.astype(np.float32)) for m in maps]
    return Preview(grids, np.array([m.kappa for m in maps]), samples, int(rows.size), int(path.centres.shape[0]))


@st.cache_resource(max_entries=24, show_spinner=False)
def figure(key: Key, with_samples: bool, unit: str, _data: Preview) -> go.Figure:
    """The animated map of a preview (built once per preview, sample toggle and unit; never changed)."""
    dots = [(_data.samples[k, :, 0], _data.samples[k, :, 1]) for k in range(TIMES.size)] if with_samples else None
    return target_path_figure(
        TIMES, _data.kappas, _data.grids, dots, land=figures.load_land(), unit=unit, start=TIMES.size - 1, height=480
    )


def prefetch_order(kappas: Sequence[str], shown: str) -> list[str]:
    """The κ_max values other than ``shown``, nearest first, the larger of two equally near ones first (a class
    usually moves towards sharper paths).

    >>> prefetch_order(["1", "2", "3", "4", "5"], "2")
    ['3', '1', '4', '5']
    """
    i = list(kappas).index(shown)
    by_distance = sorted((j for j in range(len(kappas)) if j != i), key=lambda j: (abs(j - i), j < i))
    return [kappas[j] for j in by_distance]


@st.cache_resource(show_spinner=False)
def _running() -> tuple[threading.Lock, dict[tuple[object, ...], threading.Thread]]:
    """The prefetch threads of this server, one per data set, split, seed, sample toggle and unit."""
    return threading.Lock(), {}


def prefetch(keys: Sequence[Key], points: PointSet, with_samples: bool, unit: str) -> None:
    """Compute the previews and figures of ``keys`` in order, in one background thread at a lower priority
    (:data:`PREFETCH_NICE`), unless one is already at work on this data set, split, seed, toggle and unit. Best
    effort: a failure shows when that value is chosen."""
    if not keys:
        return
    group = (*keys[0][:4], with_samples, unit)
    lock, running = _running()
    with lock:
        if group in running and running[group].is_alive():
            return
        for done in [g for g, thread in running.items() if not thread.is_alive()]:
            del running[done]  # one entry per group at work, not one per group ever seen
        worker = threading.Thread(target=_compute, args=(list(keys), points, with_samples, unit), daemon=True,
                                  name="target-path-prefetch")
        add_script_run_ctx(worker)  # the caches are the server's; the context keeps Streamlit's own checks quiet
        running[group] = worker
        worker.start()


def _compute(keys: list[Key], points: PointSet, with_samples: bool, unit: str) -> None:
    if sys.platform == "linux":  # elsewhere the call would set the whole process's priority
        try:
            me = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + PREFETCH_NICE))
        except OSError:
            pass
    for key in keys:
        try:
            figure(key, with_samples, unit, preview(key, points))
        except (DataError, OSError, ValueError):
            return
