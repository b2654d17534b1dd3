"""The one module that owns ``st.session_state`` and ``st.query_params`` for the dashboard.

Pages call these functions and never touch session state or the URL themselves. What a user
chose that matters for sharing (the data set and the run) lives in the URL as ``?data=...&run=...``,
so a reload or a second tab shows the same thing; so do the Train page's settings, the Path page's
time ``?t=`` and the two runs compared on the Runs page ``?a=...&b=...``. Nothing here (nor in any page)
imports torch: pages read files through the torch-free parts of ``cnfm_core``.

Settings come from environment variables:

    CNFM_DATA_DIR        folder whose CSV files are offered as data sets (default ../shared/data/earth)
    CNFM_RUNS            the run store (default ./runs)
    CNFM_MAX_UPLOAD_MB   largest accepted upload (default 50)
    CNFM_MAX_CONCURRENT  runs that train at the same time; more wait in a queue (default 1)
    CNFM_DEMO_RUNS       folder of the bundled, read-only demo runs (default assets/demo; empty: none)
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from cnfm_core import devices
from cnfm_core.data import DataError, PointSet, parse_points, read_points
from cnfm_core.jobs import DEFAULT_DEMO_ROOT, JobRunner, RunStore, valid_run_id
from cnfm_core.runs import RunDir, RunError, atomic_write

__all__ = [
    "BUNDLED",
    "Dataset",
    "Settings",
    "auto_description",
    "compared_runs",
    "current_dataset",
    "current_frame",
    "current_run_id",
    "datasets",
    "demo_fallback",
    "device_label",
    "load_points",
    "open_run",
    "path_playing",
    "run_device",
    "path_slider_key",
    "pick_compared",
    "runner",
    "save_upload",
    "select_dataset",
    "select_dataset_from",
    "set_compared_runs",
    "set_frame",
    "set_path_playing",
    "set_run_id",
    "set_train_settings",
    "settings",
    "slider_moved",
    "store",
    "sync_widget",
    "train_settings",
]

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    runs_root: Path
    max_upload_mb: int
    max_concurrent: int
    demo_root: Path | None = None

    @property
    def uploads(self) -> Path:
        return self.runs_root / "uploads"


@dataclass(frozen=True)
class Dataset:
    """A data set the user can pick: a key for URLs, a label, and the CSV behind it."""

    key: str
    label: str
    path: Path
    kind: str  # "bundled", "folder" or "upload"


#: Bundled data sets: (key, label, file under assets/).
BUNDLED: tuple[tuple[str, str, str], ...] = (
    ("synthetic", "Synthetic mixture (known density)", "synthetic_mixture.csv"),
    ("cities", "World cities (GeoNames)", "cities.csv"),
)


def settings() -> Settings:
    env = os.environ
    default_data = REPO.parent / "shared" / "data" / "earth"
    return Settings(
        data_dir=Path(env.get("CNFM_DATA_DIR", str(default_data))),
        runs_root=Path(env.get("CNFM_RUNS", str(REPO / "runs"))),
        max_upload_mb=int(env.get("CNFM_MAX_UPLOAD_MB", "50")),
        max_concurrent=int(env.get("CNFM_MAX_CONCURRENT", "1")),
        demo_root=Path(env["CNFM_DEMO_RUNS"]) if env.get("CNFM_DEMO_RUNS") else
        None if "CNFM_DEMO_RUNS" in env else DEFAULT_DEMO_ROOT,
    )


@st.cache_resource
def _store(root: str, demo_root: str | None) -> RunStore:
    return RunStore(root, demo_root=demo_root)


@st.cache_resource
def _runner(root: str, demo_root: str | None, max_concurrent: int) -> JobRunner:
    """The server's runner. It polls once when made, so after a restart queued jobs start and jobs whose
    process is gone are ended, before any page asks."""
    runner = JobRunner(_store(root, demo_root), max_concurrent=max_concurrent)
    runner.poll()
    return runner


def _demo_key(s: Settings) -> str | None:
    return str(s.demo_root) if s.demo_root is not None else None


def store() -> RunStore:
    s = settings()
    return _store(str(s.runs_root), _demo_key(s))


def runner() -> JobRunner:
    s = settings()
    return _runner(str(s.runs_root), _demo_key(s), s.max_concurrent)


def datasets() -> dict[str, Dataset]:
    """Bundled sets, every CSV in the data folder, then this machine's saved uploads."""
    s = settings()
    out: dict[str, Dataset] = {}
    for key, label, name in BUNDLED:
        if (REPO / "assets" / name).is_file():
            out[key] = Dataset(key, label, REPO / "assets" / name, "bundled")
    if s.data_dir.is_dir():
        for p in sorted(s.data_dir.glob("*.csv")):
            out[f"dir:{p.stem}"] = Dataset(f"dir:{p.stem}", f"{p.stem} ({s.data_dir.name} folder)", p, "folder")
    if s.uploads.is_dir():
        for p in sorted(s.uploads.glob("*.csv")):
            out[f"upload:{p.stem}"] = Dataset(f"upload:{p.stem}", f"{p.stem} (uploaded)", p, "upload")
    return out


def current_dataset() -> Dataset:
    """The data set in the URL (``?data=``), else the session's choice, else the default (synthetic)."""
    sets = datasets()
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


@st.cache_resource
def device_label() -> str:
    """The device a run started here trains on (:func:`cnfm_core.devices.detect`, read once per server)."""
    return devices.detect().label


def sync_widget(key: str, value: object) -> None:
    """Show ``value`` in the widget ``key`` (call before the widget is drawn): the URL wins over stale widget state."""
    if st.session_state.get(key) != value:
        st.session_state[key] = value


#: Train-page settings kept in the URL (key: default), so a shared link opens the same settings.
TRAIN_DEFAULTS: dict[str, str] = {"obj": "ppd1", "size": "large", "kappa": "auto", "minutes": "0.75", "seed": "0",
                                  "split": "standard"}


def train_settings(valid: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Train-page settings from the URL, each falling back to its default when missing or not in ``valid``."""
    out = {}
    for key, default in TRAIN_DEFAULTS.items():
        value = st.query_params.get(key, default)
        if valid and key in valid and value not in valid[key]:
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
    run_id = st.query_params.get("run") or st.session_state.get("run_id")
    if run_id and valid_run_id(run_id) and store().exists(run_id):
        st.session_state["run_id"] = run_id
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id
        return run_id
    return demo_fallback() if demo else None


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
        try:
            t = float(raw)
        except ValueError:
            return 0
        return min(range(len(times)), key=lambda i: abs(times[i] - t))
    return 0


def set_frame(k: int, times: list[float]) -> None:
    st.session_state["path_frame"] = k
    if 0 <= k < len(times):
        st.query_params["t"] = f"{times[k]:.2f}"


def path_playing() -> bool:
    """Whether the Path page is playing its frames."""
    return bool(st.session_state.get("path_playing"))


def set_path_playing(on: bool, times: list[float] | None = None) -> None:
    """Play or pause the Path page; playing from the last frame starts again at t = 0 (``times`` given)."""
    if on and times and current_frame(times) >= len(times) - 1:
        set_frame(0, times)
    if path_playing() != on:
        st.session_state["path_generation"] = st.session_state.get("path_generation", 0) + 1
    st.session_state["path_playing"] = on


def path_slider_key() -> str:
    """The Path page's time slider key, new each time playing starts or stops.

    A timer tick sends the browser's widget values as they were when it fired, which can be a frame
    behind; under a fresh key no stale value of an earlier slider can move the frame back.
    """
    return f"path_t_{st.session_state.get('path_generation', 0)}"


def slider_moved(key: str, options: list[float]) -> None:
    """Callback of the time slider ``key``: its value becomes the frame (ignored while playing)."""
    if not path_playing() and st.session_state.get(key) in options:
        set_frame(options.index(st.session_state[key]), options)


def compared_runs(ids: list[str], default: dict[str, str]) -> dict[str, str]:
    """The Runs page's two compared runs ``{"a": id, "b": id}``: the URL's ``?a=``/``?b=`` where they name
    one of ``ids``, else ``default``."""
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


def open_run(run_id: str, page: str) -> None:
    """Go to ``page`` (a file under ``views/``) showing run ``run_id``."""
    set_run_id(run_id)
    st.switch_page(page, query_params={"run": run_id})


@st.cache_data(max_entries=16, show_spinner=False)
def _read(path: str, mtime: float) -> PointSet:
    return read_points(path)


def load_points(ds: Dataset) -> PointSet:
    """Read a data set's points (cached while the file is unchanged); raises DataError."""
    return _read(str(ds.path), ds.path.stat().st_mtime)


def save_upload(name: str, data: bytes, lat_col: str | None, lon_col: str | None) -> tuple[Dataset, PointSet]:
    """Validate an upload and keep it (as a clean ``lat,lon`` CSV) under the run store's uploads folder.

    Raises DataError for a bad file; nothing is written then, and the current choice stays.
    """
    s = settings()
    limit = s.max_upload_mb * 1024 * 1024
    if len(data) > limit:
        raise DataError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {s.max_upload_mb} MB", source=name)
    points = parse_points(data, source=name, lat_col=lat_col, lon_col=lon_col, max_bytes=limit)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:40] or "upload"
    digest = hashlib.sha256(data).hexdigest()[:8]
    s.uploads.mkdir(parents=True, exist_ok=True)
    out = s.uploads / f"{stem}-{digest}.csv"
    if not out.exists():
        lines = ["lat,lon"] + [f"{a:.6f},{b:.6f}" for a, b in zip(points.lat, points.lon, strict=True)]
        atomic_write(out, ("\n".join(lines) + "\n").encode())
    ds = Dataset(f"upload:{out.stem}", f"{out.stem} (uploaded)", out, "upload")
    select_dataset(ds.key)
    return ds, points


def auto_description(run: RunDir) -> str | None:
    """The sentence saying what a run's settings read off its data (None before it starts, or if none did)."""
    try:
        auto = run.read_json(run.config).get("auto") if run.config.exists() else None
    except (RunError, OSError, ValueError, AttributeError):
        return None
    return auto.get("description") if isinstance(auto, dict) else None


def run_device(run: RunDir) -> str | None:
    """The device a run trains on, as its worker recorded it in ``config.json`` (None before it starts)."""
    try:
        meta = run.read_json(run.config) if run.config.exists() else {}
    except (RunError, OSError, ValueError):
        return None
    device = meta.get("device")
    return devices.device_label(str(device), str(meta.get("device_name") or "")) if device else None
