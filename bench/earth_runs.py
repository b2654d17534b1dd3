"""The learned runs of the Earth table (``bench/earth_table.py``): each trained by the CLI in a subprocess, here or
as a Ray job, then scored, its ``result.json`` written into its run folder.

:func:`run_job` trains one run (``python -m cnfm_core train``, unless its folder holds a result the cache may reuse;
an unfinished folder is deleted and redone) and computes its exact test NLL on the run's own test split with
:func:`load_field` and :func:`evaluate_nll`. :func:`run_job_on_ray` does the same as a Ray job
(``python bench/earth_table.py --run-one SPEC``, :func:`run_one` on a node of the cluster) and reads the result back
from the shared run folder. Both return a failure as ``{"error": ...}`` rather than raising.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.earth_baselines import file_sha256
from bench.earth_cache import RESULT_FILE, Settings, read_cached
from bench.earth_spec import METHODS, DataSet, Job
from cnfm_core import rayjobs
from cnfm_core.builders import load_field, resolve_device
from cnfm_core.data import DataError, read_points
from cnfm_core.integrate import evaluate_nll
from cnfm_core.runs import RunDir, RunError, atomic_write

__all__ = ["NO_EVAL", "ON_RAY", "RAY_ASKS_PER_S", "RAY_POLL_S", "evaluate_run", "run_job", "run_job_on_ray",
           "run_one"]

REPO = Path(__file__).resolve().parents[1]
#: The table's entry point, which a Ray job runs with ``--run-one SPEC``.
SCRIPT = Path(__file__).resolve().with_name("earth_table.py")
#: ``--eval-every`` passed to training: larger than any budget, so only the final validation runs.
NO_EVAL = 1_000_000_000


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
    line = shlex.join([sys.executable, str(SCRIPT), "--run-one", json.dumps(spec)])
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
        data = DataSet(path.stem, path, read_points(path), file_sha256(path))
    except (DataError, OSError) as e:
        result: dict[str, Any] = {"error": f"reading {path} failed: {' '.join(str(e).split())}"}
    else:
        job = Job(data, spec["split"], spec["method"], int(spec["seed"]), Path(spec["run_dir"]))
        settings = Settings(**spec["settings"])
        torch.set_num_threads(settings.threads)
        result = run_job(job, settings)
    print(json.dumps(result, sort_keys=True), flush=True)
    return 1 if "error" in result else 0
