"""The Earth table, reproducible with one command: test NLL of every learned method and baseline.

    python bench/earth_table.py [--data-dir ../shared/data/earth] [--profile quick|full|gpu-short]
        [--seeds 0 1 2 3 4] [--steps N | --minutes M] [--jobs 2] [--threads T] [--out out/earth]
        [--device auto|cpu|cuda] [--splits standard dedup] [--hidden H]
        [--methods ppd2 ppd1 rfm ppd1-fixed [ppd1-adaptive]] [--ray ADDRESS]

Every ``*.csv`` in the data folder (any ``lat,lon`` file) is a data set, named by its file stem.
For each data set, split (``standard`` = the RFM protocol; ``dedup`` = the same after exact
duplicates are removed), seed and method, the flow is trained by the CLI in a subprocess
(``python -m cnfm_core train``, product defaults, the same budget for every learned row) into
``OUT/<set>/<split>/<method>/seed<k>``; its exact test NLL on the run's own test split is then
computed with :func:`load_field` and :func:`log_likelihood` and saved as ``result.json`` there.
A run folder with a ``result.json`` is reused, so an interrupted table resumes when the same
command is run again; a run folder without one is deleted and redone. A finished run made under
another budget, other product defaults, or other settings than the data's rule picks now (κ_max,
Fourier features) is refused with a message, not reused.

With ``--ray ADDRESS`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001`` or ``http://HOST:8265``) each learned run is
a Ray job instead (``cnfm_core/rayjobs.py``, ``requirements-ray.txt``): ``python bench/earth_table.py --run-one
SPEC`` on a node with ``--threads`` CPUs (and one GPU for ``--device cuda``) free, which trains and evaluates the
run as above and writes its ``result.json`` into the same folder; ``--jobs`` runs are submitted at a time. The data
folder, ``--out`` and this repository with its venv must be at the same paths on every node (a shared filesystem,
docs/scaling.md); the cache and the tables are the same as without ``--ray``, and a table begun on one resumes on
the other.

Baselines on the same split and seed: the uniform density, log(4 pi), and a vMF KDE with a
uniform floor (``fit_kde`` on train/val, scored on test). Published numbers are shown for
reference only, under the standard split: the papers' splits differ from ours. A second table per
split gives each learned row minus the KDE on the same split and seed: the split moves every row
together, so this paired difference is much more precise than either row's spread over seeds.

The product defaults are one rule, the same for every data set (:mod:`cnfm_core.auto`): κ_max and
the field's Fourier features are read off the validation KDE of the run's own split and seed. Two
rows explain the learned ones. "PPD target p_1" scores the end point of PPD's target path under
those defaults, which is itself a kernel density estimate: a perfect fit of the default target
would score that. "PPD ℓ=1, fixed settings" trains with the settings the rule replaced (κ_max 3000
and no Fourier features for every set), to show what the rule adds.

Profiles set defaults that explicit flags override:

* ``quick``: seed 0, 2.5 minutes per learned run, 2 parallel jobs with 1 torch thread each
  (3 data sets x 2 splits x 3 methods take about 25 minutes on 2 cores);
* ``full``: seeds 0-4, 100,000 steps per learned run, 1 job using every core (a GPU or a long CPU run);
* ``gpu-short``: seed 0, 1.5 minutes per learned run, 8 runs sharing one GPU at a time with 2 CPU
  threads each (24 runs in about 6-7 minutes: sized for a borrowed GPU's 10-minute command limit).

Writes ``OUT/table.md`` (printed as well) and ``OUT/results.json``. Exit status: 0 when every
learned run finished, 1 when some failed (the table marks them), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from cnfm_core import rayjobs
from cnfm_core.auto import choose_settings
from cnfm_core.builders import load_field, resolve_device
from cnfm_core.config import LEGACY_DEFAULTS, TrainConfig
from cnfm_core.data import DataError, PointSet, read_points
from cnfm_core.integrate import evaluate_nll
from cnfm_core.kde import fit_kde, kde_log_prob
from cnfm_core.runs import RunDir, RunError, atomic_write
from cnfm_core.sphere import LOG_AREA
from cnfm_core.splits import make_split

__all__ = ["METHODS", "PROFILES", "PUBLISHED", "main"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared/data/earth"
RESULT_FILE = "result.json"
#: ``--eval-every`` passed to training: larger than any budget, so only the final validation runs.
NO_EVAL = 1_000_000_000


@dataclass(frozen=True)
class Method:
    """A learned row: its label in the table and the ``cnfm train`` options that define it."""

    label: str
    args: tuple[str, ...]


#: Learned rows, in table order.
METHODS: dict[str, Method] = {
    "ppd2": Method("PPD ℓ=2", ("--objective", "ppd", "--ell", "2")),
    "ppd1": Method("PPD ℓ=1", ("--objective", "ppd", "--ell", "1")),
    "rfm": Method("RFM", ("--objective", "rfm")),
    "ppd1-fixed": Method("PPD ℓ=1, fixed settings (κ_max 3000, no Fourier features)",
                         ("--objective", "ppd", "--ell", "1", "--kappa-max", "3000", "--space-frequencies", "0")),
    "ppd1-adaptive": Method("PPD ℓ=1, adaptive kernel (a bandwidth per point; not a default)",
                            ("--objective", "ppd", "--ell", "1", "--kernel", "adaptive")),
}
#: The rows run unless ``--methods`` says otherwise (the adaptive kernel only on request).
DEFAULT_METHODS: tuple[str, ...] = ("ppd2", "ppd1", "rfm", "ppd1-fixed")
#: The product defaults that shape every learned row; a cached result made under others is not reused.
#: Fields added later are left out while they keep the value older runs had, so older caches stay valid.
PRODUCT_DEFAULTS: dict[str, Any] = {
    k: v for k, v in vars(TrainConfig()).items()
    if k not in ("data", "objective", "ell", "steps", "minutes", "seed", "split", "device", "threads", "extra",
                 "eval_every", "log_every", "checkpoint_every")
    and not (k in LEGACY_DEFAULTS and v == LEGACY_DEFAULTS[k])
}
#: Product defaults that only the adaptive kernel reads (its sharpest per-point concentration).
ADAPTIVE_ONLY: tuple[str, ...] = ("kernel_cap",)


@dataclass(frozen=True)
class Profile:
    seeds: tuple[int, ...]
    steps: int | None
    minutes: float | None
    jobs: int
    threads: int | None  # None: the usable cores divided among the jobs


PROFILES: dict[str, Profile] = {
    "quick": Profile(seeds=(0,), steps=None, minutes=2.5, jobs=2, threads=1),
    "full": Profile(seeds=(0, 1, 2, 3, 4), steps=100_000, minutes=None, jobs=1, threads=None),
    # One GPU for about 10 minutes (a lent device's per-command limit): 8 runs share it at a time.
    "gpu-short": Profile(seeds=(0,), steps=None, minutes=1.5, jobs=8, threads=2),
}

#: Published test NLLs (nats), by data-set name; reference only, on the papers' own splits.
#: CNFM: as quoted in the project's developer guide; RFM: PROVENANCE.md of the shared data.
#: Anything not listed is printed as "–": no number is filled in from memory.
PUBLISHED: dict[str, dict[str, float]] = {
    "CNFM (published)": {"volcano": -2.38, "earthquake": -0.38, "flood": 0.25, "fire": -1.40},
    "RFM (published)": {"volcano": -7.93, "fire": -1.86},
}

SPLIT_NOTES: dict[str, str] = {
    "standard": "RFM protocol: N//10 validation, N//10 test, the rest train, torch.randperm seeded with the seed",
    "dedup": "exact duplicate (lat, lon) rows removed first, then the same protocol",
}

DASH = "–"
TARGET_LABEL = "PPD target p₁ (defaults)"


@dataclass(frozen=True)
class DataSet:
    name: str
    path: Path
    points: PointSet
    sha256: str


@dataclass(frozen=True)
class Job:
    """One learned run."""

    data: DataSet
    split: str
    method: str
    seed: int
    run_dir: Path

    @property
    def key(self) -> str:
        return f"{self.data.name}/{self.split}/{self.method}/seed{self.seed}"


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


# ---------------------------------------------------------------------------------------------
# Arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"earth_table: error: {message} (see --help)\n")


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s!r} must be at least 1")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{s!r} must be a positive number")
    return v


def _parser() -> argparse.ArgumentParser:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder of lat,lon CSV files")
    p.add_argument("--profile", choices=list(PROFILES), default="quick")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (profile default)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="step budget per learned run")
    budget.add_argument("--minutes", type=_positive_float, help="training-time budget per learned run")
    p.add_argument("--jobs", type=_positive_int, help="runs trained in parallel (profile default)")
    p.add_argument("--threads", type=_positive_int, help="torch threads per run (profile default)")
    p.add_argument("--out", type=Path, default=REPO / "out/earth", help="output folder (default out/earth)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--splits", nargs="+", choices=list(SPLIT_NOTES), default=list(SPLIT_NOTES))
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS))
    p.add_argument("--hidden", type=_positive_int, help="hidden width passed to training (tests only; "
                                                          "the table uses the product default)")
    p.add_argument("--ray", metavar="ADDRESS", help="train the learned runs as jobs on this Ray cluster "
                                                    "(docs/scaling.md); --jobs of them at a time")
    return p


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_settings(a: argparse.Namespace) -> tuple[Settings, tuple[int, ...], int]:
    """Settings, seeds and jobs: explicit flags over the profile's defaults."""
    prof = PROFILES[a.profile]
    seeds = tuple(dict.fromkeys(a.seeds)) if a.seeds else prof.seeds
    steps, minutes = prof.steps, prof.minutes
    if a.steps is not None or a.minutes is not None:
        steps, minutes = a.steps, a.minutes
    jobs = a.jobs or prof.jobs
    threads = a.threads or prof.threads or max(1, _cores() // jobs)
    return Settings(steps, minutes, a.hidden, threads, a.device), seeds, jobs


def _profile_label(a: argparse.Namespace, settings: Settings, seeds: tuple[int, ...]) -> str:
    """The profile's name, saying so when flags changed its budget or seeds (the table then is not that profile)."""
    prof = PROFILES[a.profile]
    changed = [what for what, differs in (("budget", (settings.steps, settings.minutes) != (prof.steps, prof.minutes)),
                                          ("seeds", seeds != prof.seeds)) if differs]
    return a.profile if not changed else f"{a.profile} with its {' and '.join(changed)} overridden"


# ---------------------------------------------------------------------------------------------
# Data and baselines


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_data_sets(data_dir: Path) -> tuple[list[DataSet], list[dict[str, str]]]:
    """Every readable ``*.csv`` in ``data_dir``, sorted by name, and the files skipped with why."""
    found, skipped = [], []
    for path in sorted(data_dir.glob("*.csv")):
        try:
            points = read_points(path)
            found.append(DataSet(path.stem, path.resolve(), points, _sha256(path)))
        except (DataError, OSError) as e:
            skipped.append({"file": path.name, "error": " ".join(str(e).split())})
    return found, skipped


def baselines(points: PointSet, split: str, seed: int) -> dict[str, Any]:
    """Uniform, vMF-KDE and PPD-target test NLLs on the split ``make_split`` (and so training) uses."""
    s = make_split(points, mode=split, seed=seed)
    train, val, test = points.xyz[s.train], points.xyz[s.val], points.xyz[s.test]
    out: dict[str, Any] = {"seed": seed, "n_train": len(train), "n_val": len(val), "n_test": len(test),
                           "uniform": LOG_AREA, "kde": None, "target": None}
    if len(train) > 0:
        choice = choose_settings(train, val, seed=seed)
        out.update(auto_kappa_max=choice.kappa_max, auto_space_frequencies=choice.space_frequencies)
        if len(test) > 0:
            out["target"] = float(-np.mean(kde_log_prob(test, train, choice.kappa_max, TrainConfig().floor)))
    if len(val) == 0 or len(test) == 0:
        out["kde_error"] = "no validation or test points"
        return out
    fit = fit_kde(train, val)
    out.update(kde=float(-np.mean(kde_log_prob(test, train, fit.kappa, fit.weight))),
               kde_kappa=fit.kappa, kde_weight=fit.weight, kde_val_nll=fit.val_nll)
    return out


# ---------------------------------------------------------------------------------------------
# Learned runs


def _train_command(job: Job, settings: Settings) -> list[str]:
    cmd = [sys.executable, "-m", "cnfm_core", "train", "--data", str(job.data.path), "--run-dir", str(job.run_dir),
           "--split", job.split, "--seed", str(job.seed), *METHODS[job.method].args,
           "--threads", str(settings.threads), "--device", settings.device, "--eval-every", str(NO_EVAL), "--quiet"]
    cmd += ["--steps", str(settings.steps)] if settings.steps is not None else ["--minutes", str(settings.minutes)]
    if settings.hidden is not None:
        cmd += ["--hidden", str(settings.hidden)]
    return cmd


def _training_speed(run: RunDir) -> tuple[int, float]:
    """(steps, training seconds) from the last loss record; no evaluation ran before it."""
    last = None
    for rec in run.read_metrics():
        if "loss" in rec:
            last = rec
    if last is None:
        return 0, 0.0
    return int(last["step"]), float(last["elapsed"])


def evaluate_run(job: Job, settings: Settings) -> dict[str, Any]:
    """Exact test NLL of a finished run on its own test split, with the facts the table needs."""
    run = RunDir(job.run_dir)
    device = resolve_device(settings.device)
    field, _ = load_field(run, device=device)
    test = run.read_split()["test"]
    if len(test) == 0:
        raise RunError(f"{run.path}: the run has no test points")
    est = evaluate_nll(field, test)
    steps, train_seconds = _training_speed(run)
    return {
        "data": job.data.name, "split": job.split, "method": job.method, "seed": job.seed,
        "test_nll": est.mean, "n_test": est.n, "nfe": est.nfe,
        "eval_seconds": round(est.seconds, 3), "steps": steps, "train_seconds": round(train_seconds, 3),
        "steps_per_s": steps / train_seconds if train_seconds > 0 else None,
        "data_sha256": job.data.sha256, "settings": settings.fingerprint(job), "device": str(device),
    }


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
AUTO_SETTINGS: dict[str, str] = {"kappa_max": "auto_kappa_max", "space_frequencies": "auto_space_frequencies"}


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
        have, want = trained.get(field), base[key]
        if not isinstance(have, int | float) or not math.isclose(have, want, rel_tol=1e-9):
            diff.append(f"{field}: {have!r} there, the data's rule picks {want!r} now")
    return "it was trained with other data-chosen settings (" + "; ".join(diff) + ")" if diff else None


def run_job(job: Job, settings: Settings) -> dict[str, Any]:
    """Train (unless cached) and evaluate one run; a failure is returned as ``{"error": ...}``."""
    cached = read_cached(job)
    if cached is not None:
        return {**cached, "cached": True}
    if job.run_dir.exists():
        shutil.rmtree(job.run_dir)  # an unfinished run: start again
    job.run_dir.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run(_train_command(job, settings), capture_output=True, text=True, cwd=REPO, env=env)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit status {p.returncode}"]
        return {"error": f"training failed: {lines[-1]}"}
    try:
        result = evaluate_run(job, settings)
    except (RunError, ValueError, RuntimeError, OSError) as e:
        return {"error": f"evaluation failed: {' '.join(str(e).split())}"}
    atomic_write(job.run_dir / RESULT_FILE, (json.dumps(result, indent=2, sort_keys=True) + "\n").encode())
    return {**result, "cached": False}


#: Seconds between two questions to Ray about a learned run's job, and how many questions a second all the runs
#: waited for may ask together (so that --jobs 120 does not flood the job server).
RAY_POLL_S, RAY_ASKS_PER_S = 1.0, 20.0
#: The Ray jobs this table is waiting for (submission id: address), stopped if the table is interrupted.
ON_RAY: dict[str, str] = {}


def run_job_on_ray(job: Job, settings: Settings, address: str, poll_s: float = RAY_POLL_S) -> dict[str, Any]:
    """:func:`run_job` as a Ray job on the cluster at ``address`` (``--run-one``), waited for here; its
    ``result.json`` is read back from the shared run folder. A failure is returned as ``{"error": ...}``."""
    cached = read_cached(job)
    if cached is not None:
        return {**cached, "cached": True}
    spec = {"data": str(job.data.path), "split": job.split, "method": job.method, "seed": job.seed,
            "run_dir": str(job.run_dir), "settings": dataclasses.asdict(settings)}
    line = shlex.join([sys.executable, str(Path(__file__).resolve()), "--run-one", json.dumps(spec)])
    try:
        ray_job = rayjobs.submit(address, f"cd {shlex.quote(str(REPO))} && {line}", cpus=settings.threads,
                                 gpus=1 if settings.device == "cuda" else 0, name=job.key)
        ON_RAY[ray_job] = address
        while (state := rayjobs.job_state(address, ray_job))[0] in rayjobs.LIVE:
            time.sleep(poll_s)
        ON_RAY.pop(ray_job, None)
    except rayjobs.RayUnavailable as e:
        return {"error": str(e)}
    result = read_cached(job)
    if state[0] == "SUCCEEDED" and result is not None:
        return {**result, "cached": False}
    last = (state[1].strip().splitlines() or [""])[-1]  # a failed job's message ends with its output: run_one's line
    with contextlib.suppress(ValueError, AttributeError):
        return {"error": str(json.loads(last)["error"])}
    return {"error": f"the Ray job {ray_job} ended {state[0]}: {' '.join(state[1].split())[:300]}"}


def run_one(spec: dict[str, Any]) -> int:
    """``--run-one SPEC``: one learned run of a ``--ray`` table, on a node of the cluster (see the module doc).
    Prints the result (or ``{"error": ...}``) as one JSON line; exit status 1 on failure."""
    path = Path(spec["data"])
    try:
        data = DataSet(path.stem, path, read_points(path), _sha256(path))
    except (DataError, OSError) as e:
        result: dict[str, Any] = {"error": f"reading {path} failed: {' '.join(str(e).split())}"}
    else:
        job = Job(data, spec["split"], spec["method"], int(spec["seed"]), Path(spec["run_dir"]))
        settings = Settings(**spec["settings"])
        torch.set_num_threads(settings.threads)
        result = run_job(job, settings)
    print(json.dumps(result, sort_keys=True), flush=True)
    return 1 if "error" in result else 0


# ---------------------------------------------------------------------------------------------
# The table


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (ddof=0, as ``np.std`` in the peers' code)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std())


def cell(values: Sequence[float], expected: int, *, empty: str = "failed") -> str:
    """``mean ± std`` with 3 decimals; a single value alone; a shortfall of seeds is marked."""
    if not values:
        return empty
    m, s = mean_std(values)
    text = f"{m:.3f}" if len(values) == 1 else f"{m:.3f} ± {s:.3f}"
    return text if len(values) == expected else f"{text} ({len(values)}/{expected} seeds)"


def _fmt_list(values: Sequence[float | None]) -> str:
    return "/".join(DASH if v is None else f"{v:.3g}" for v in values)


def _row(label: str, cells: Sequence[str]) -> str:
    return "| " + " | ".join([label, *cells]) + " |"


def _machine(device: torch.device | str, cluster: str | None = None) -> dict[str, Any]:
    """This machine and ``device``; with ``cluster``, ``device`` is what the learned runs asked for there."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if isinstance(device, torch.device) and device.type == "cuda" else None
    where = f"{device} on the nodes of the Ray cluster at {cluster}" if cluster else str(device)
    return {"cores": _cores(), "torch": torch.__version__, "device": where, "gpu": gpu, "cpu": cpu}


def _header(info: dict[str, Any]) -> str:
    m = info["machine"]
    dev = f"{m['device']} ({m['gpu']})" if m["gpu"] else m["device"]
    return (f"`{info['command']}` · profile {info['profile']} · budget {info['budget']} per learned run "
            f"(the same for every learned row), {info['jobs']} job(s) × {info['threads']} thread(s) · machine: "
            f"{m['cores']} cores, {m['cpu']}, torch {m['torch']}, device {dev} · wall time "
            f"{info['wall_seconds'] / 60:.1f} min ({info['cached_runs']} of {info['learned_runs']} learned runs "
            "reused from the cache)")


def summarise(names: list[str], splits: list[str], methods: list[str],
              base: dict[tuple[str, str], list[dict[str, Any]]],
              runs: dict[tuple[str, str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    """Per split and data set: each row's values over seeds, mean and std."""
    out: dict[str, Any] = {}
    for split in splits:
        out[split] = {}
        for name in names:
            b = base[(name, split)]
            kde = [r["kde"] for r in b if r["kde"] is not None]
            entry: dict[str, Any] = {
                "uniform": {"value": LOG_AREA},
                "target": {"seeds": [r["seed"] for r in b if r.get("target") is not None],
                           "values": [r["target"] for r in b if r.get("target") is not None]},
                "kde": {"seeds": [r["seed"] for r in b if r["kde"] is not None], "values": kde,
                        "kappa": [r.get("kde_kappa") for r in b], "weight": [r.get("kde_weight") for r in b]},
                "auto": {"kappa_max": [r.get("auto_kappa_max") for r in b],
                         "space_frequencies": [r.get("auto_space_frequencies") for r in b]},
            }
            kde_by_seed = {r["seed"]: r["kde"] for r in b if r["kde"] is not None}
            for method in methods:
                ok = [r for r in runs[(name, split, method)] if "test_nll" in r]
                rates = [r["steps_per_s"] for r in ok if r.get("steps_per_s")]
                entry[method] = {"seeds": [r["seed"] for r in ok], "values": [r["test_nll"] for r in ok],
                                 "steps": [r["steps"] for r in ok], "steps_per_s": rates,
                                 "minus_kde": [r["test_nll"] - kde_by_seed[r["seed"]] for r in ok
                                               if r["seed"] in kde_by_seed],
                                 "errors": [r["error"] for r in runs[(name, split, method)] if "error" in r]}
            for row in entry.values():
                if row.get("values"):
                    row["mean"], row["std"] = mean_std(row["values"])
            out[split][name] = entry
    return out


def render(info: dict[str, Any], names: list[str], summary: dict[str, Any], seeds: tuple[int, ...]) -> str:
    n = len(seeds)
    seed_text = ", ".join(str(s) for s in seeds)
    lines = ["# Earth table: test NLL (nats, lower is better)", ""]
    if info["skipped"]:
        for s in info["skipped"]:
            lines.append(f"Skipped {s['file']}: {s['error']}")
        lines.append("")
    for split, per_set in summary.items():
        lines += [f"## Split: {split} ({SPLIT_NOTES[split]})", "", _header(info), ""]
        lines.append(_row("test NLL (nats)", names))
        lines.append("|" + "---|" * (len(names) + 1))
        lines.append(_row("uniform", [f"{LOG_AREA:.3f}"] * len(names)))
        lines.append(_row("vMF KDE", [cell(per_set[d]["kde"]["values"], n, empty=DASH) for d in names]))
        lines.append(_row(TARGET_LABEL, [cell(per_set[d]["target"]["values"], n, empty=DASH) for d in names]))
        for method in info["methods"]:
            lines.append(_row(METHODS[method].label, [cell(per_set[d][method]["values"], n) for d in names]))
        if split == "standard":
            for label, numbers in PUBLISHED.items():
                nums = [numbers.get(d.lower()) for d in names]
                lines.append(_row(label, [DASH if v is None else f"{v:.2f}" for v in nums]))
        lines += ["", f"Cells: mean ± std over seeds {seed_text} (population std, ddof=0, as the peers' np.std); "
                  "one seed: the value alone. vMF KDE: κ and the uniform-floor weight chosen on validation. "
                  f"{TARGET_LABEL}: the end point of PPD's target path under the product defaults, scored on "
                  "test; a perfect fit of the default target would score this."]
        chosen = [f"{d} κ {_fmt_list(per_set[d]['kde']['kappa'])}, floor {_fmt_list(per_set[d]['kde']['weight'])}"
                  for d in names]
        lines.append("Validation KDE choices: " + "; ".join(chosen) + ".")
        auto = [f"{d} κ_max {_fmt_list(per_set[d]['auto']['kappa_max'])}, Fourier features "
                f"{_fmt_list(per_set[d]['auto']['space_frequencies'])}" for d in names]
        lines.append("Product defaults as the rule set them from the validation KDE (cnfm_core.auto): "
                     + "; ".join(auto) + ".")
        if split == "standard":
            lines.append("Published rows: reference only, on the papers' own splits, which differ from ours; "
                         f"{DASH} = no number in our sources (the developer guide, PROVENANCE.md).")
        failures = [f"{d}/{m}: {e}" for d in names for m in info["methods"] for e in per_set[d][m]["errors"]]
        lines += [f"Failed: {f}" for f in failures]
        if info["methods"]:
            # The split moves every row together (the KDE's std over seeds is about 0.05 nats on earthquake
            # and flood), so a learned row against the KDE on the same split is far more precise than either.
            lines += ["", _row("test NLL minus the vMF KDE's, same split and seed (negative: better)", names),
                      "|" + "---|" * (len(names) + 1)]
            for method in info["methods"]:
                lines.append(_row(METHODS[method].label, [cell(per_set[d][method]["minus_kde"], n) for d in names]))
            lines += ["", _row("training steps/s (mean over runs)", names), "|" + "---|" * (len(names) + 1)]
            for method in info["methods"]:
                rates = [per_set[d][method]["steps_per_s"] for d in names]
                lines.append(_row(METHODS[method].label, [f"{np.mean(r):.1f}" if r else DASH for r in rates]))
        lines.append("")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    atomic_write(path, text.encode())


# ---------------------------------------------------------------------------------------------
# Entry point


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_result(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    rate = f", {r['steps_per_s']:.1f} steps/s" if r.get("steps_per_s") else ""
    return f"test NLL {r['test_nll']:.3f} ({r['steps']} steps{rate}{', cached' if r.get('cached') else ''})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--run-one":  # one learned run of a --ray table, on a node of the cluster
        return run_one(json.loads(argv[1]))
    a = _parser().parse_args(argv)
    t_start = time.perf_counter()
    settings, seeds, jobs = resolve_settings(a)
    try:  # with --ray the learned runs choose their device on their nodes (a GPU node for cuda)
        device = resolve_device(settings.device) if a.ray is None else None
    except ValueError as e:
        _say(f"earth_table: error: {e}")
        return 2
    if not a.data_dir.is_dir():
        _say(f"earth_table: error: data folder {a.data_dir} not found")
        return 2
    try:  # a cluster that is not there is said once, before anything is computed
        if a.ray:
            rayjobs.client(a.ray)
    except rayjobs.RayUnavailable as e:
        _say(f"earth_table: error: {e}")
        return 2
    data_sets, skipped = find_data_sets(a.data_dir)
    for s in skipped:
        _say(f"earth_table: skipped {s['file']}: {s['error']}")
    if not data_sets:
        _say(f"earth_table: error: no readable *.csv in {a.data_dir}")
        return 2
    methods = [m for m in METHODS if m in a.methods]
    splits = [s for s in SPLIT_NOTES if s in a.splits]
    out = a.out.resolve()
    torch.set_num_threads(settings.threads)
    names = [d.name for d in data_sets]

    base: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in data_sets:
        for split in splits:
            base[(d.name, split)] = [baselines(d.points, split, seed) for seed in seeds]

    work = [Job(d, split, m, seed, out / d.name / split / m / f"seed{seed}")
            for d in data_sets for split in splits for m in methods for seed in seeds]
    for job in work:
        cached = read_cached(job)
        seed_base = base[(job.data.name, job.split)][seeds.index(job.seed)]
        why = cache_conflict(job, cached, settings, seed_base) if cached is not None else None
        if why:
            _say(f"earth_table: error: {job.run_dir} holds a finished run that does not match: {why}; "
                 "choose another --out or delete it")
            return 2
    _say(f"earth_table: {len(names)} data set(s) ({', '.join(names)}), splits {' '.join(splits)}, seeds "
         f"{' '.join(map(str, seeds))}, {len(work)} learned run(s) of {settings.budget()}, {jobs} job(s) × "
         f"{settings.threads} thread(s), device {device or settings.device}"
         + (f", on the Ray cluster at {a.ray}" if a.ray else ""))

    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {
        (d.name, s, m): [] for d in data_sets for s in splits for m in methods}
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        poll_s = max(RAY_POLL_S, jobs / RAY_ASKS_PER_S)
        run = functools.partial(run_job_on_ray, address=a.ray, poll_s=poll_s) if a.ray else run_job
        futures = {pool.submit(run, job, settings): job for job in work}
        for i, fut in enumerate(as_completed(futures), 1):
            job = futures[fut]
            r = {**fut.result(), "seed": job.seed}
            runs[(job.data.name, job.split, job.method)].append(r)
            _say(f"[{i}/{len(work)}] {job.key}: {_fmt_result(r)}")
    except KeyboardInterrupt:
        for ray_job, address in list(ON_RAY.items()):  # their waiting threads then return
            rayjobs.stop(address, ray_job)
        pool.shutdown(wait=True, cancel_futures=True)
        _say("earth_table: interrupted; run the same command again to resume (finished runs are kept)")
        return 130
    pool.shutdown()
    for rs in runs.values():
        rs.sort(key=lambda r: r["seed"])

    info = {
        "command": "python " + shlex.join([sys.argv[0], *argv]), "profile": _profile_label(a, settings, seeds),
        "budget": settings.budget(),
        "steps": settings.steps, "minutes": settings.minutes, "hidden": settings.hidden, "jobs": jobs,
        "threads": settings.threads, "seeds": list(seeds), "splits": splits, "methods": methods,
        "machine": _machine(device or settings.device, a.ray), "ray": a.ray,
        "wall_seconds": time.perf_counter() - t_start,
        "learned_runs": len(work), "cached_runs": sum(bool(r.get("cached")) for rs in runs.values() for r in rs),
        "skipped": skipped, "std": "population (ddof=0)", "uniform_nll": LOG_AREA,
    }
    summary = summarise(names, splits, methods, base, runs)
    text = render(info, names, summary, seeds)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "table.md", text)
    results = {
        **info,
        "data_sets": [{"name": d.name, "file": str(d.path), "n_points": d.points.n, "sha256": d.sha256}
                      for d in data_sets],
        "table": summary,
        "baselines": {f"{k[0]}/{k[1]}": v for k, v in base.items()},
        "runs": [r for rs in runs.values() for r in rs],
        "published": {"note": "reference only; the papers' splits differ from ours", "rows": PUBLISHED},
    }
    _write(out / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(text)
    _say(f"earth_table: wrote {out / 'table.md'} and {out / 'results.json'}")
    failed = any("error" in r for rs in runs.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
