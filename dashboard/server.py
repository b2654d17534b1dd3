"""What this dashboard server offers every page: its settings (from the environment), its one run store and job
runner, the device a run started here trains on, and the data sets it offers with their points (cached).

Pages reach these through :mod:`dashboard.state` (``state.store()``, ``state.datasets()``, ...), which also keeps
what a user chose in the URL and the session. Settings come from environment variables:

    CNFM_DATA_DIR        folder whose CSV files are offered as data sets (default ../shared/data/earth)
    CNFM_RUNS            the run store (default ./runs)
    CNFM_MAX_UPLOAD_MB   largest accepted upload (default 50)
    CNFM_MAX_CONCURRENT  runs that train at the same time; more wait in a queue (default 1)
    CNFM_DEMO_RUNS       folder of the bundled, read-only demo runs (default assets/demo; empty: none)
    CNFM_ADMIN_KEY       the teacher's admin key on a classroom server (unset: single-user mode; dashboard/access.py)
    CNFM_STANDBY         0: no warm worker waiting for the next job (default 1: jobs start without importing torch)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from cnfm_core import devices
from cnfm_core.data import PointSet, read_points
from cnfm_core.jobs import DEFAULT_DEMO_ROOT, JobRunner, RunStore

__all__ = ["BUNDLED", "REPO", "Dataset", "Settings", "datasets", "device_label", "load_points", "runner", "settings",
           "store"]

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
    standby = os.environ.get("CNFM_STANDBY", "1") != "0"  # a warm worker waits for the next job (cnfm_core/standby.py)
    runner = JobRunner(_store(root, demo_root), max_concurrent=max_concurrent, standby=standby)
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


@st.cache_resource
def device_label() -> str:
    """The device a run started here trains on (:func:`cnfm_core.devices.detect`, read once per server)."""
    return devices.detect().label


@st.cache_data(max_entries=16, show_spinner=False)
def _read(path: str, mtime: float) -> PointSet:
    return read_points(path)


def load_points(ds: Dataset) -> PointSet:
    """Read a data set's points (cached while the file is unchanged); raises DataError."""
    return _read(str(ds.path), ds.path.stat().st_mtime)
