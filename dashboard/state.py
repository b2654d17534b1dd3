"""The one module that owns ``st.session_state`` and ``st.query_params`` for the dashboard.

Pages call these functions and never touch session state or the URL themselves. What a user
chose that matters for sharing (the data set and the run) lives in the URL as ``?data=...&run=...``,
so a reload or a second tab shows the same thing; so do the Train page's settings, the Path page's
time ``?t=`` and the two runs compared on the Runs page ``?a=...&b=...``. Nothing here (nor in any page)
imports torch: pages read files through the torch-free parts of ``cnfm_core``.

What the server offers every page (its settings from the environment, the run store and job runner, the device, the
data sets and their points) lives in :mod:`dashboard.server`, and what a run's ``config.json`` says in words in
:mod:`dashboard.runfacts`; both are re-exported here, so a page needs only ``state``.
"""

from __future__ import annotations

import math

import streamlit as st

from cnfm_core.jobs import valid_run_id
from dashboard import access, units
from dashboard.runfacts import auto_description, run_device
from dashboard.server import (
    BUNDLED,
    Dataset,
    Settings,
    datasets,
    device_label,
    load_points,
    runner,
    settings,
    store,
)

__all__ = [
    "BUNDLED",
    "DATA_TAB",
    "PATH_SAMPLES_GLOBE",
    "PATH_SLIDER",
    "PATH_TAB",
    "PREVIEW_KAPPA",
    "UNIT_WIDGET",
    "Dataset",
    "Settings",
    "auto_description",
    "compared_runs",
    "current_dataset",
    "current_frame",
    "current_run_id",
    "density_unit",
    "datasets",
    "demo_fallback",
    "device_label",
    "forget_widgets",
    "load_points",
    "open_run",
    "run_device",
    "pick_compared",
    "preview_kappa",
    "preview_kappa_moved",
    "runner",
    "select_dataset",
    "select_dataset_from",
    "set_compared_runs",
    "set_density_unit",
    "set_frame",
    "set_run_id",
    "set_train_settings",
    "settings",
    "slider_moved",
    "store",
    "sync_widget",
    "train_settings",
    "unit_picked",
]


def current_dataset() -> Dataset:
    """The data set in the URL (``?data=``), else the session's choice, else the default (synthetic)."""
    sets = datasets()
    if st.query_params.get("data") is not None and st.query_params.get("data") not in sets:
        access.ignored("data", st.query_params.get("data"), "there is no such data set here")
    key = st.query_params.get("data") or st.session_state.get("dataset") or "synthetic"
    if key not in sets:
        key = next(iter(sets))
    st.session_state["dataset"] = key
    if st.query_params.get("data") != key:
        st.query_params["data"] = key
    return sets[key]


def select_dataset(key: str) -> None:
    st.session_state["dataset"] = key
    st.query_params["data"] = key


def select_dataset_from(widget: str) -> None:
    """Callback of a data set picker: the data set its widget ``widget`` now shows."""
    select_dataset(st.session_state[widget])


def sync_widget(key: str, value: object) -> None:
    """Show ``value`` in the widget ``key`` (call before the widget is drawn): the URL wins over stale widget state."""
    if st.session_state.get(key) != value:
        st.session_state[key] = value


#: Train-page settings kept in the URL (key: default), so a shared link opens the same settings.
TRAIN_DEFAULTS: dict[str, str] = {"obj": "ppd1", "size": "large", "kappa": "auto", "minutes": "0.75", "seed": "0",
                                  "split": "standard"}


#: Numeric Train-page settings: (type, smallest, largest), as the page's inputs accept them.
TRAIN_RANGES: dict[str, tuple[type, float, float]] = {"minutes": (float, 0.1, 600.0), "seed": (int, 0, 2**31 - 1)}


def _bad_number(value: str, kind: type, lo: float, hi: float) -> str | None:
    """Why ``value`` is not a ``kind`` in [lo, hi] (None: it is)."""
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return f"it is not {'a whole number' if kind is int else 'a number'}"
    if not math.isfinite(number) or not lo <= number <= hi:
        return f"it must lie between {lo:,g} and {hi:,g}" if kind is float else f"it must lie between {lo:,} and {hi:,}"
    return None


def train_settings(valid: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Train-page settings from the URL, each falling back to its default when missing, not in ``valid`` or out of
    range (:data:`TRAIN_RANGES`); a value that is ignored gets a one-line notice and leaves the URL."""
    out = {}
    for key, default in TRAIN_DEFAULTS.items():
        value = st.query_params.get(key, default)
        why = None
        if valid and key in valid and value not in valid[key]:
            why = "choose one of " + ", ".join(valid[key])
        elif key in TRAIN_RANGES:
            why = _bad_number(value, *TRAIN_RANGES[key])
        if why:
            access.ignored(key, value, why)
            value = default
        out[key] = value
    return out


def set_train_settings(values: dict[str, str]) -> None:
    for key in TRAIN_DEFAULTS:
        if key in values:
            st.query_params[key] = str(values[key])


def current_run_id(*, demo: bool = True) -> str | None:
    """The run in the URL (``?run=``), else the session's run, if it names a run of the store; else, while
    the store holds no run of the user's own and ``demo`` is true, the newest bundled demo run (so Results and
    Path have something to show on first open; the Train page asks without it, so its Step starts a run).

    The two are kept in step: page links in the sidebar drop the URL's parameters, so the session
    remembers the run, and the URL gets it back (a link copied from any page opens the same run). The demo
    fallback is not written to either, so it ends by itself once the user has a run.
    """
    url_run = st.query_params.get("run")
    if url_run is not None and not (valid_run_id(url_run) and store().exists(url_run)):
        access.ignored("run", url_run, "there is no such run here")
        url_run = None
    run_id = url_run or st.session_state.get("run_id")
    if run_id and valid_run_id(run_id) and store().exists(run_id):
        if url_run == run_id:
            access.take_url_key(store(), run_id)  # the control key of a link (?run=ID&key=...)
        st.session_state["run_id"] = run_id
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id
        _show_key(run_id)
        return run_id
    return demo_fallback() if demo else None


def _show_key(run_id: str | None) -> None:
    """The URL carries this session's control key of the run it shows (``?key=``), and no other key."""
    key = access.run_key(run_id) if run_id else None
    if key and st.query_params.get("key") != key:
        st.query_params["key"] = key
    elif not key and "key" in st.query_params:
        del st.query_params["key"]


def demo_fallback() -> str | None:
    """The newest demo run when the store has no run of the user's own (None otherwise, or without demos)."""
    runs = store().runs()
    if any(not r.demo for r in runs):
        return None
    return next((r.run_id for r in runs if r.demo), None)


def current_frame(times: list[float]) -> int:
    """Index of the Path page's frame: the session's once it has one, else the URL's time ``?t=`` (nearest
    frame; so a shared link picks the first frame shown), else 0."""
    k = st.session_state.get("path_frame")
    if isinstance(k, int):
        return min(max(k, 0), max(0, len(times) - 1))
    raw = st.query_params.get("t")
    if raw is not None and times:
        why = _bad_number(raw, float, 0.0, 1.0)
        if why:
            access.ignored("t", raw, why)
            return 0
        return min(range(len(times)), key=lambda i: abs(times[i] - float(raw)))
    return 0


def set_frame(k: int, times: list[float]) -> None:
    st.session_state["path_frame"] = k
    if 0 <= k < len(times):
        st.query_params["t"] = f"{times[k]:.2f}"


#: The Path page's time slider, its tabs at one t and the samples tab's "On the 3-D globe" switch.
PATH_SLIDER, PATH_TAB, PATH_SAMPLES_GLOBE = "path_t", "path_tab", "path_samples_on_globe"
#: The Data page's tabs: the flat map or the 3-D globe.
DATA_TAB = "data_view_tab"

#: The sidebar's choice of density unit (``dashboard/shell.py``).
UNIT_WIDGET = "density_unit_picker"


def density_unit() -> str:
    """The unit every density of this session is shown in, one of :data:`dashboard.units.UNITS` ("times": times
    uniform, "log": log density in nats): the session's choice, else :data:`dashboard.units.DEFAULT_UNIT`.
    Pass it to the figures: ``figures.density_map(..., unit=state.density_unit())``."""
    unit = st.session_state.get("density_unit")
    return unit if unit in units.UNITS else units.DEFAULT_UNIT


def set_density_unit(unit: str) -> None:
    """Show every density of this session in ``unit`` (one of :data:`dashboard.units.UNITS`; others are ignored)."""
    if unit in units.UNITS:
        st.session_state["density_unit"] = unit


def unit_picked() -> None:
    """Callback of the unit picker (widget :data:`UNIT_WIDGET`): its choice becomes the session's unit."""
    set_density_unit(st.session_state.get(UNIT_WIDGET, ""))


def slider_moved(key: str, options: list[float]) -> None:
    """Callback of the time slider ``key``: its value becomes the frame."""
    if st.session_state.get(key) in options:
        set_frame(options.index(st.session_state[key]), options)


#: The Target path page's κ_max slider; its value is also the URL's ``?kmax=`` and the session's choice.
PREVIEW_KAPPA = "target_kmax"


def preview_kappa(options: list[str], default: str) -> str:
    """The Target path page's κ_max, shown in its slider: the URL's ``?kmax=`` where it is one of ``options`` (a
    notice where it is not), else the session's last choice, else ``default``."""
    raw = st.query_params.get("kmax")
    if raw is not None and raw not in options:
        access.ignored("kmax", raw, "choose one of " + ", ".join(options))
        raw = None
    kept = st.session_state.get("preview_kmax")
    value = raw or (kept if kept in options else default)
    st.session_state["preview_kmax"] = value
    if st.query_params.get("kmax") != value:
        st.query_params["kmax"] = value
    sync_widget(PREVIEW_KAPPA, value)
    return value


def preview_kappa_moved(options: list[str]) -> None:
    """Callback of the κ_max slider: its value becomes the URL's and the session's."""
    value = st.session_state.get(PREVIEW_KAPPA)
    if value in options:
        st.session_state["preview_kmax"] = value
        st.query_params["kmax"] = value


def compared_runs(ids: list[str], default: dict[str, str]) -> dict[str, str]:
    """The Runs page's two compared runs ``{"a": id, "b": id}``: the URL's ``?a=``/``?b=`` where they name
    one of ``ids``, else ``default`` (with a notice for a value that names no run)."""
    for slot in default:
        if st.query_params.get(slot) is not None and st.query_params.get(slot) not in ids:
            access.ignored(slot, st.query_params.get(slot), "there is no such run here")
    return {slot: st.query_params[slot] if st.query_params.get(slot) in ids else run_id
            for slot, run_id in default.items()}


def set_compared_runs(pair: dict[str, str]) -> None:
    """Put the compared runs in the URL and in their pickers (widgets ``run_a``, ``run_b``)."""
    for slot, run_id in pair.items():
        if st.query_params.get(slot) != run_id:
            st.query_params[slot] = run_id
        sync_widget(f"run_{slot}", run_id)


def pick_compared(slot: str) -> None:
    """Callback of the picker of run ``slot`` ("a" or "b"): its choice goes to the URL."""
    st.query_params[slot] = st.session_state[f"run_{slot}"]


def set_run_id(run_id: str | None) -> None:
    st.session_state["run_id"] = run_id
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]
    _show_key(run_id)


def forget_widgets(*keys: str) -> None:
    """Drop the state of widgets ``keys`` (a table selection whose rows have changed), so they start afresh."""
    for key in keys:
        st.session_state.pop(key, None)


def open_run(run_id: str, page: str) -> None:
    """Go to ``page`` (a file under ``views/``) showing run ``run_id``."""
    set_run_id(run_id)
    key = access.run_key(run_id)
    st.switch_page(page, query_params={"run": run_id, **({"key": key} if key else {})})
