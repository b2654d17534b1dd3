"""The cache of finished learned runs of the Earth table (``bench/earth_table.py``): the settings every learned run
shares, their fingerprint, and whether a run folder's ``result.json`` may stand for a job now.

A finished run's ``result.json`` records :meth:`Settings.fingerprint` (budget, model, product defaults, the row's
options) and the data file's SHA-256. :func:`cache_conflict` says why such a result cannot be reused: other
settings, changed data, or other settings than the data's rule (:mod:`cnfm_core.auto`) picks now. The fingerprint
is what cached run folders are matched against: a change to it invalidates every table made so far.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from bench.earth_spec import METHODS, Job
from cnfm_core.config import LEGACY_DEFAULTS, TrainConfig
from cnfm_core.runs import RunDir, RunError

__all__ = ["ADAPTIVE_ONLY", "AUTO_SETTINGS", "PRODUCT_DEFAULTS", "RESULT_FILE", "Settings", "cache_conflict",
           "read_cached"]

#: A finished run's test NLL and what it was made under, in its run folder.
RESULT_FILE = "result.json"
#: The product defaults that shape every learned row; a cached result made under others is not reused.
#: Fields added later are left out while they keep the value older runs had, so older caches stay valid; the kernel
#: and the field base, which the data's rule chooses, are checked against its choice instead (:data:`AUTO_SETTINGS`).
PRODUCT_DEFAULTS: dict[str, Any] = {
    k: v for k, v in vars(TrainConfig()).items()
    if k not in ("data", "objective", "ell", "steps", "minutes", "seed", "split", "device", "threads", "extra",
                 "eval_every", "log_every", "checkpoint_every", "kernel", "field_base")
    and not (k in LEGACY_DEFAULTS and v == LEGACY_DEFAULTS[k])
}
#: Product defaults that only the adaptive kernel reads (its sharpest per-point concentration).
ADAPTIVE_ONLY: tuple[str, ...] = ("kernel_cap",)


@dataclass(frozen=True)
class Settings:
    """Everything the table's learned runs share."""

    steps: int | None
    minutes: float | None
    hidden: int | None
    threads: int
    device: str

    def budget(self) -> str:
        return f"{self.steps} steps" if self.steps is not None else f"{self.minutes:g} min"

    def fingerprint(self, job: Job | None = None) -> dict[str, Any]:
        """What a cached result must match to be reused: budget, model, product defaults, the row's options.
        A default that only the adaptive kernel reads (:data:`ADAPTIVE_ONLY`) counts for an adaptive row only, so
        a change to it leaves the other rows' caches valid."""
        options = list(METHODS[job.method].args) if job is not None else []
        adaptive = "adaptive" in options
        defaults = {k: v for k, v in PRODUCT_DEFAULTS.items() if adaptive or k not in ADAPTIVE_ONLY}
        return {"steps": self.steps, "minutes": self.minutes, "hidden": self.hidden, "defaults": defaults,
                "options": options}


def read_cached(job: Job) -> dict[str, Any] | None:
    path = job.run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


#: Settings the data's rule (:mod:`cnfm_core.auto`) fills in, with the key ``baselines`` keeps its choice under.
#: The budget fingerprint cannot see them (the product default is "auto"), so a cached run is checked
#: against what the rule picks now: a change to the rule must not leave older runs standing in the table.
AUTO_SETTINGS: dict[str, str] = {"kappa_max": "auto_kappa_max", "space_frequencies": "auto_space_frequencies",
                                 "kernel": "auto_kernel", "field_base": "auto_field_base"}


def cache_conflict(job: Job, cached: dict[str, Any], settings: Settings, base: dict[str, Any]) -> str | None:
    """Why a cached result cannot stand for this job (other budget, model or data, or other settings than
    the data's rule picks now on the split and seed whose ``baselines`` are ``base``), or None."""
    want = settings.fingerprint(job)
    have = cached.get("settings")
    if have != want:
        if not isinstance(have, dict):
            return f"it was made with unknown settings ({have!r})"
        diff = [f"{k}: {have.get(k)!r} there, {want[k]!r} here" for k in want if have.get(k) != want[k]]
        return "it was made with other settings (" + "; ".join(diff) + ")"
    if cached.get("data_sha256") != job.data.sha256:
        return f"{job.data.path.name} has changed since"
    run = RunDir(job.run_dir)
    try:
        trained = run.read_json(run.config).get("config", {})
    except RunError as e:
        return str(e)
    args = METHODS[job.method].args
    diff = []
    for field, key in AUTO_SETTINGS.items():
        if f"--{field.replace('_', '-')}" in args or key not in base:
            continue  # set by the row itself, or no training points to choose from
        have, want = trained.get(field, LEGACY_DEFAULTS.get(field)), base[key]
        if field in ("kernel", "field_base") and "--kernel" in args:
            continue  # the row's own kernel: the rule's choice of kernel and base was for another
        if isinstance(want, str):
            if have != want:
                diff.append(f"{field}: {have!r} there, the data's rule picks {want!r} now")
        elif not isinstance(have, int | float) or not math.isclose(have, want, rel_tol=1e-9):
            diff.append(f"{field}: {have!r} there, the data's rule picks {want!r} now")
    return "it was trained with other data-chosen settings (" + "; ".join(diff) + ")" if diff else None
