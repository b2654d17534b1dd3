"""The Runs page's rows: what a run's files say, as table columns and short texts (no widgets).

Every reader here survives a run whose files are missing or broken: it returns None (shown as "–"), never raises.
"""

import math
from datetime import datetime
from typing import Any

import numpy as np

from cnfm_core.config import LEGACY_DEFAULTS
from cnfm_core.jobs import ACTIVE, RunInfo, RunStore
from cnfm_core.runs import RunError

BROKEN = (RunError, OSError, ValueError, TypeError, AttributeError, KeyError)
KEY_CONFIG = {
    "hidden": "Hidden",
    "kappa_max": "κ_max",
    "space_frequencies": "Fourier features",
    "kernel": "Kernel",
    "lr": "lr",
    "batch_size": "Batch",
    "split": "Split",
    "seed": "Seed",
}
TEXT_CONFIG = ("split", "kernel")


def filled(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config with the fields added since it was made at the values it was trained with."""
    return {**LEGACY_DEFAULTS, **config} if config else {}


def read_report(store: RunStore, run_id: str) -> dict[str, Any]:
    """The run's report.json, or ``{}`` when it is missing or unreadable."""
    run = store.run_dir(run_id)
    try:
        report = run.read_json(run.report) if run.report.exists() else {}
    except BROKEN:
        return {}
    return report if isinstance(report, dict) else {}


def report_number(d: dict[str, Any], key: str) -> float | None:
    value = d.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def objective(config: dict[str, Any]) -> str | None:
    """``PPD ℓ=1``, ``PPD ℓ=2``, ``RFM`` (or the raw name) from a config dict."""
    name = str(config.get("objective") or "")
    if name == "ppd":
        return f"PPD ℓ={config.get('ell', 1)}"
    return name.upper() or None


def manifold(config: dict[str, Any]) -> str | None:
    """``sphere``, or ``torus (T³)`` with the torus dimension, from a config dict (None when it has none)."""
    if not config:
        return None
    full = filled(config)
    name, dim = str(full.get("manifold") or "sphere"), full.get("manifold_dim")
    if name == "torus" and isinstance(dim, int):
        return f"torus (T{str(dim).translate(str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹'))})"
    return name


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def status_text(info: RunInfo) -> str:
    """``done``, or for a run that trains towards a number of steps ``running · step 120 of 400``."""
    if info.state == "unreadable":
        return "unreadable"
    if info.state in ACTIVE and isinstance(info.steps, int) and info.steps > 0:
        return f"{info.state} · step {info.step:,} of {info.steps:,}"
    return info.state


def rate(info: RunInfo) -> float | None:
    """Steps per second over the run's training time (evaluations included), None before it has both."""
    return info.step / info.elapsed if info.step > 0 and info.elapsed > 0 else None


def rate_text(rate: float | None) -> str:
    """``5.906 -> "5.91"``, ``0.04213 -> "0.0421"``, ``1234.5 -> "1,234"``; "–" for None."""
    if rate is None:
        return "–"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


#: Compare shows the two runs side by side while each gets at least this width (px), else one above the other.
COMPARE_MIN_WIDTH_PX = 400
#: The table's columns: the key ones first (what a reader compares), then the settings and where a run comes from.
KEY_COLUMNS = ("Run", "Data set", "Objective", "Status", "Steps", "Test NLL", "Training time")


def table_columns(runs: list[RunInfo], reports: dict[str, dict[str, Any]],
                  origins: dict[str, str]) -> dict[str, list[Any]]:
    """The runs table as columns, :data:`KEY_COLUMNS` first (None where a value is missing; the table shows "–")."""
    cols: dict[str, list[Any]] = {
        "Run": [r.run_id for r in runs],
        "Data set": [r.data_name or None for r in runs],
        "Objective": [objective(r.config) for r in runs],
        "Status": [status_text(r) for r in runs],
        "Steps": [r.step if r.state != "unreadable" else None for r in runs],
        "Test NLL": [report_number(reports[r.run_id], "test_nll") for r in runs],
        "Training time": [duration(r.elapsed) if r.elapsed else None for r in runs],
        "Steps/s": [rate(r) for r in runs],
        "KDE NLL": [report_number(reports[r.run_id], "kde_nll") for r in runs],
        "Manifold": [manifold(r.config) for r in runs],
        "Source": [origins[r.run_id] for r in runs],
    }
    for key, label in KEY_CONFIG.items():
        kind = str if key in TEXT_CONFIG else int | float
        values = [filled(r.config).get(key) for r in runs]
        cols[label] = [v if isinstance(v, kind) else None for v in values]
    cols["Created"] = [when(r.created) for r in runs]
    return cols


def when(timestamp: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(timestamp)
    except (OverflowError, OSError, ValueError):
        return None


def value_text(value: object) -> str:
    """A config value as a reader writes it: ``2.2426314711333286 -> "2.243"``, ``17782.79 -> "17,783"``,
    ``3000.0 -> "3,000"``, ``None -> "–"``; text as it is."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and value == round(value) and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Config keys whose values differ between two runs, sorted (fields a run predates count at the value
    it was trained with)."""
    a, b = filled(a), filled(b)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def read_density(store: RunStore, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    run = store.run_dir(run_id)
    try:
        z = run.read_npz(run.density)
        return tuple(np.asarray(z[k], dtype=np.float64) for k in ("lat", "lon", "log_prob"))
    except BROKEN:
        return None
