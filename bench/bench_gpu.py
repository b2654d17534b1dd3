"""The GPU check's measurements, in one table: training steps/s, exact-NLL points/s and the classroom loop with the
worker, on one device (``scripts/gpu_check.sh`` runs it on a CUDA GPU; docs/gpu.md).

    python bench/bench_gpu.py [--device auto|cpu|cuda] [--quick] [--earth FILE] [--out DIR] [--tests LINE]

What it measures, each with the product's own code:

* training steps/s of PPD (l = 1) and RFM at batch 512 and 4096 (:func:`cnfm_core.train.train`, the real loop: the
  objective, backward, clipping, the divergence guard, Adam, the EMA), on the bundled mixture and on the Earth
  set ``--earth`` when that file is there (a note says when it is not: ``../shared`` does not travel to a lent GPU
  machine). The settings left to ``auto`` are read off each data set once, as a run would; the rate is counted
  after the first metrics line (:data:`LOG_SECONDS` of warm-up: CUDA's start, the first kernels);
* exact NLL points/s: dopri5 at the product's tolerances (:func:`cnfm_core.integrate.evaluate_nll`) on the model
  trained by the PPD batch-512 row, at a few numbers of points;
* the classroom loop: a run queued as the Train page's Start queues it (45 s, at least 300 steps, PPD l = 1) and
  started by the job runner as ``python -m cnfm_core.worker DIR`` with ``device`` set: Start -> first live
  preview, the steps trained, then from the end of training the preview map, the exact test NLL, the path frames
  and the exact map.

``--quick`` (how it is tried on a CPU: under two minutes on the 2-core machine) trains a second or two per row, only
on the bundled mixture, with a 6-second classroom run whose report is cancelled 30 s after training ends. The
table goes to stdout; with ``--out DIR`` (default ``$OUT`` when set) also ``DIR/gpu_table.md`` and
``DIR/gpu_results.json`` (the raw numbers). Exit status 1 when a measurement failed (its row says so).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cnfm_core import train as train_module  # noqa: E402
from cnfm_core.builders import device_name, load_field, resolve_device  # noqa: E402
from cnfm_core.config import TrainConfig  # noqa: E402
from cnfm_core.data import read_points  # noqa: E402
from cnfm_core.integrate import evaluate_nll  # noqa: E402
from cnfm_core.jobs import FINISHED, JobRunner, RunStore  # noqa: E402
from cnfm_core.runs import RunDir  # noqa: E402
from cnfm_core.splits import make_split  # noqa: E402
from cnfm_core.train import resolve_auto, train  # noqa: E402

__all__ = ["PLANS", "DataSet", "Plan", "Row", "Throughput", "data_set", "environment", "main", "measure_classroom",
           "measure_nll", "measure_steps", "steps_per_second", "table"]

MIXTURE = REPO / "assets" / "synthetic_mixture.csv"
DEFAULT_EARTH = REPO.parent / "shared" / "data" / "earth" / "earthquake.csv"
OBJECTIVES = {"PPD l=1": {"objective": "ppd", "ell": 1}, "RFM": {"objective": "rfm"}}


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs: seconds of training per steps/s row (warm-up included), the minimum steps of
    a row, how often the loop logs (:data:`cnfm_core.train.LOG_SECONDS`), the batches, the numbers of points of the
    exact NLL, the classroom run's budget, and how long after its training the report is waited for."""

    seconds: float
    min_steps: int
    log_seconds: float
    batches: tuple[int, ...]
    nll_points: tuple[int, ...]
    classroom_minutes: float
    classroom_min_steps: int
    report_wait: float
    earth: bool


PLANS = {
    "full": Plan(seconds=7.0, min_steps=20, log_seconds=1.0, batches=(512, 4096), nll_points=(1000, 8192),
                 classroom_minutes=0.75, classroom_min_steps=300, report_wait=150.0, earth=True),
    "quick": Plan(seconds=1.5, min_steps=3, log_seconds=0.4, batches=(512, 4096), nll_points=(100,),
                  classroom_minutes=0.1, classroom_min_steps=20, report_wait=30.0, earth=False),
}


@dataclass(frozen=True)
class Row:
    """One line of the table: what was measured, on which data, with which setting, its value (None: not reached)
    and unit, and a detail."""

    what: str
    data: str
    setting: str
    value: float | None
    unit: str
    detail: str = ""


@dataclass(frozen=True)
class Throughput:
    """Steps per second over ``steps`` steps and ``seconds`` of training; ``after_warmup`` is False when the rate
    had to include the first metrics line's steps (fewer than two lines were logged)."""

    per_s: float
    steps: int
    seconds: float
    after_warmup: bool


def steps_per_second(records: list[dict[str, Any]]) -> Throughput | None:
    """The training rate from a run's metrics lines (those with a ``loss``): from the first line to the last, so
    the steps of the first line (the warm-up) do not count; with one line, from the start.

    >>> steps_per_second([{"step": 10, "loss": 1.0, "elapsed": 2.0}, {"step": 110, "loss": 0.5, "elapsed": 4.0}])
    Throughput(per_s=50.0, steps=100, seconds=2.0, after_warmup=True)
    >>> steps_per_second([{"step": 8, "loss": 1.0, "elapsed": 4.0}]).per_s
    2.0
    """
    lines = [r for r in records if "loss" in r and "elapsed" in r]
    if not lines:
        return None
    first, last = lines[0], lines[-1]
    if len(lines) >= 2 and last["elapsed"] > first["elapsed"]:
        steps, seconds = last["step"] - first["step"], last["elapsed"] - first["elapsed"]
        return Throughput(steps / seconds, steps, seconds, True)
    return Throughput(last["step"] / max(last["elapsed"], 1e-9), last["step"], last["elapsed"], False)


def environment(device: torch.device) -> dict[str, Any]:
    """The device, its name, torch and CUDA versions, Python, cores, and float32 matrix precision."""
    env: dict[str, Any] = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "python": platform.python_version(), "cores": os.cpu_count(),
                           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}")
    return env


def _number(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "not reached"
    if abs(v) >= 100 or (abs(v) >= 10 and float(v).is_integer()):
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def table(env: dict[str, Any], rows: list[Row], notes: list[str]) -> str:
    """The markdown table: a heading line naming the device and versions, one row per measurement, then notes.

    >>> env = {"device": "cpu", "device_name": "CPU (x86_64)", "torch": "2.13.0", "cuda": None, "python": "3.11",
    ...        "cores": 2}
    >>> print(table(env, [Row("training", "mixture", "RFM, batch 512", 123.456, "steps/s")], ["a note"]))
    GPU check on CPU (x86_64) (cpu): torch 2.13.0, CUDA none, Python 3.11, 2 CPU cores
    <BLANKLINE>
    | measurement | data | setting | result | detail |
    |---|---|---|---|---|
    | training | mixture | RFM, batch 512 | 123 steps/s |  |
    <BLANKLINE>
    * a note
    """
    head = (f"GPU check on {env['device_name']} ({env['device']}): torch {env['torch']}, CUDA {env['cuda'] or 'none'}, "
            f"Python {env['python']}, {env['cores']} CPU cores")
    lines = [head, "", "| measurement | data | setting | result | detail |", "|---|---|---|---|---|"]
    for r in rows:
        result = _number(r.value) + (f" {r.unit}" if r.value is not None and math.isfinite(r.value) else "")
        lines.append(f"| {r.what} | {r.data} | {r.setting} | {result} | {r.detail} |")
    return "\n".join([*lines, "", *[f"* {n}" for n in notes]]) if notes else "\n".join(lines)


@dataclass(frozen=True)
class DataSet:
    """A data set, its label, and the settings a run left at ``auto`` would choose on it."""

    label: str
    path: Path
    settings: dict[str, Any]


def data_set(name: str, path: Path) -> DataSet:
    """The data set at ``path`` with the settings ``auto`` chooses on its standard split (seed 0), as a run would."""
    points = read_points(str(path))
    split = make_split(points, mode="standard", seed=0)
    config, _ = resolve_auto(TrainConfig(data=str(path)), points.xyz[split.train], points.xyz[split.val])
    settings = {"kappa_max": config.kappa_max, "space_frequencies": config.space_frequencies}
    return DataSet(f"{name} ({split.train.size:,} training points)", path, settings)


def measure_steps(data: DataSet, objective: str, batch: int, device: str, plan: Plan, run_dir: Path) -> Row:
    """Train ``objective`` (a key of :data:`OBJECTIVES`) at ``batch`` on ``device`` for the plan's seconds (and at
    least its steps) into ``run_dir``; the row's value is :func:`steps_per_second` of the run's metrics."""
    config = TrainConfig(data=str(data.path), device=device, batch_size=batch, minutes=plan.seconds / 60.0,
                         min_steps=plan.min_steps, log_every=10**9, eval_every=10**9, eval_points=64,
                         checkpoint_every=10**9, **data.settings, **OBJECTIVES[objective])
    records: list[dict[str, Any]] = []
    result = train(config, run_dir, on_log=records.append)
    rate = steps_per_second(records)
    if rate is None or not math.isfinite(result.final_loss):
        raise RuntimeError(f"no finite training steps (loss {result.final_loss})")
    detail = f"{rate.steps:,} steps in {rate.seconds:.1f} s" + ("" if rate.after_warmup else ", warm-up included")
    return Row("training", data.label, f"{objective}, batch {batch:,}", rate.per_s, "steps/s",
               f"{detail}; loss {result.final_loss:.3g}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_nll(run_dir: Path, data: DataSet, device: torch.device, plan: Plan) -> list[Row]:
    """Exact NLL points/s of the run's model on ``device``, at each of the plan's numbers of the data's points."""
    field, config = load_field(run_dir, device=device)
    xyz = read_points(str(data.path)).xyz
    evaluate_nll(field, xyz[:16], rtol=config.rtol, atol=config.atol)  # warm-up
    rows = []
    for n in plan.nll_points:
        x = np.resize(xyz, (n, 3))  # the data's points, repeated up to n
        _sync(device)
        t0 = time.perf_counter()
        est = evaluate_nll(field, x, rtol=config.rtol, atol=config.atol)
        seconds = time.perf_counter() - t0
        rows.append(Row("exact NLL", data.label, f"dopri5 rtol {est.rtol:g} atol {est.atol:g}, {n:,} points",
                        n / seconds, "points/s", f"{seconds:.2f} s, {est.nfe} evaluations, NLL {est.mean:.3f}"))
    return rows


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _preview_flag(run: RunDir) -> int | None:
    try:
        with np.load(run.density, allow_pickle=False) as z:
            return int(z["preview"])
    except (OSError, ValueError, KeyError):
        return None


def _watch(run: RunDir, plan: Plan, t0: float) -> tuple[dict[str, float], dict[str, Any], bool]:
    """Poll the run's files until its worker finishes: the seconds of each milestone (from Start, and from the end
    of training for the report's), the last status, and whether the rest of the report was cancelled (after the
    plan's ``report_wait``). Past the whole budget the run is asked to stop, and 30 s later left."""
    seen: dict[str, float] = {}
    end: float | None = None
    status: dict[str, Any] = {}
    cancelled = stopped = False
    deadline = 60.0 * plan.classroom_minutes + 60.0 + plan.report_wait
    while True:
        now = time.monotonic() - t0
        status = _read_json(run.status)
        state = status.get("state")
        if "first_live" not in seen and run.live.exists():
            seen["first_live"] = now
        if end is None and state in ("reporting", *FINISHED):
            end = seen["end_training"] = now
            seen["steps"], seen["elapsed"] = float(status.get("step") or 0), float(status.get("elapsed") or 0.0)
        if end is not None:
            flag = _preview_flag(run) if run.density.exists() else None
            for name, there in (("preview_map", flag is not None), ("exact_nll", run.report.exists()),
                                ("frames", run.frames.exists()), ("exact_map", flag == 0)):
                if there and name not in seen:
                    seen[name] = now - end
        if state in FINISHED:
            seen["done"] = now
            return seen, status, cancelled
        if end is not None and now - end > plan.report_wait and not cancelled:
            run.cancel_request.touch()  # the rest of the report is not waited for
            cancelled = True
        if now > deadline + 30.0:
            return seen, status, cancelled
        if now > deadline and not stopped:
            run.stop_request.touch()
            stopped = True
        time.sleep(0.05)


def measure_classroom(device: str, plan: Plan, root: Path) -> tuple[list[Row], dict[str, Any]]:
    """The Train page's Start, then the worker (module doc); returns rows and the raw times (seconds)."""
    store = RunStore(root, demo_root=None)
    config = TrainConfig(data=str(MIXTURE), objective="ppd", ell=1, minutes=plan.classroom_minutes,
                         min_steps=plan.classroom_min_steps, eval_every=500, device=device)
    t0 = time.monotonic()
    run = store.run_dir(store.create(config, name="classroom"))
    if not JobRunner(store).poll():
        raise RuntimeError("the job runner started no worker")
    seen: dict[str, float] = {}
    status: dict[str, Any] = {}
    cancelled = False
    try:
        seen, status, cancelled = _watch(run, plan, t0)
    finally:
        status = _read_json(run.status) or status
        pid = status.get("pid")
        if status.get("state") not in FINISHED and isinstance(pid, int):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)  # the worker this bench started, still going: it saves and stops
    state = status.get("state")
    meta = _read_json(run.config)
    report = _read_json(run.report)
    raw = {"seconds": seen, "state": state, "device": meta.get("device"), "device_name": meta.get("device_name"),
           "test_nll": report.get("test_nll"), "message": status.get("message", ""),
           "worker_log": (run.path / "worker.log").read_text()[-2000:] if (run.path / "worker.log").exists() else ""}
    label = f"synthetic mixture, {60 * plan.classroom_minutes:g} s, at least {plan.classroom_min_steps} steps"
    where = f"worker on {meta.get('device', '?')}"
    steps, elapsed = seen.get("steps"), seen.get("elapsed")
    rate = steps / elapsed if steps and elapsed else None
    nll = report.get("test_nll")
    rows = [
        Row("classroom loop", label, f"Start -> first live preview ({where})", seen.get("first_live"), "s"),
        Row("classroom loop", label, "steps trained", steps, "steps",
            f"{rate:.1f} steps/s over {elapsed:.1f} s" if rate else ""),
        Row("classroom loop", label, "end of training -> density (preview map)", seen.get("preview_map"), "s"),
        Row("classroom loop", label, "end of training -> exact test NLL", seen.get("exact_nll"), "s",
            f"test NLL {nll:.3f}" if isinstance(nll, float) else ""),
        Row("classroom loop", label, "end of training -> path frames", seen.get("frames"), "s",
            "cancelled: not waited for" if cancelled and "frames" not in seen else ""),
        Row("classroom loop", label, "end of training -> exact density map", seen.get("exact_map"), "s",
            "cancelled: not waited for" if cancelled and "exact_map" not in seen else ""),
        Row("classroom loop", label, "Start -> run finished", seen.get("done"), "s", f"state {state}"),
    ]
    return rows, raw


def _failed(what: str, e: BaseException) -> Row:
    traceback.print_exc()
    return Row(what, "", "FAILED", None, "", " ".join(str(e).split())[:200] or type(e).__name__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--quick", action="store_true", help="seconds per row, the mixture only (a dry run on a CPU)")
    ap.add_argument("--earth", type=Path, default=DEFAULT_EARTH, help="an Earth set (lat/lon CSV) to train on too")
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    ap.add_argument("--tests", default="", help="a line on the device tests, for the table's notes")
    ap.add_argument("--skip-classroom", action="store_true")
    a = ap.parse_args(argv)
    try:
        device = resolve_device(a.device)
    except ValueError as e:
        print(f"bench_gpu: {e}", file=sys.stderr)
        return 2
    plan = PLANS["quick" if a.quick else "full"]
    train_module.LOG_SECONDS = plan.log_seconds  # a metrics line this often: the warm-up is the first one
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    rows: list[Row] = []
    notes = [a.tests] if a.tests else []
    raw: dict[str, Any] = {}
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cnfm-gpu-") as tmp:
        sets = [("synthetic mixture", MIXTURE)]
        if plan.earth and a.earth.is_file():
            sets.append((a.earth.stem, a.earth))
        elif plan.earth:
            notes.append(f"{a.earth} not found (../shared does not travel to a lent GPU machine): no Earth rows")
        nll_run: tuple[DataSet, Path] | None = None
        for name, path in sets:
            try:
                data = data_set(name, path)
            except Exception as e:
                rows.append(_failed(f"settings of {name}", e))
                continue
            for objective in OBJECTIVES:
                for batch in plan.batches:
                    run_dir = Path(tmp) / f"{path.stem}-{objective.split()[0]}-{batch}"
                    try:
                        rows.append(measure_steps(data, objective, batch, str(device), plan, run_dir))
                    except Exception as e:
                        rows.append(_failed("training", e))
                        continue
                    if nll_run is None and objective.startswith("PPD") and batch == plan.batches[0]:
                        nll_run = data, run_dir
            print(table(environment(device), rows, []), file=sys.stderr, flush=True)  # progress
        if nll_run is not None:
            try:
                rows.extend(measure_nll(nll_run[1], nll_run[0], device, plan))
            except Exception as e:
                rows.append(_failed("exact NLL", e))
        if not a.skip_classroom:
            try:
                classroom_rows, raw["classroom"] = measure_classroom(str(device), plan, Path(tmp) / "store")
                rows.extend(classroom_rows)
            except Exception as e:
                rows.append(_failed("classroom loop", e))
    env = environment(device)
    if device.type == "cuda":
        env["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    env["bench_seconds"] = round(time.monotonic() - t_start, 1)
    notes.append(f"bench/bench_gpu.py{' --quick' if a.quick else ''} took {env['bench_seconds']:.0f} s"
                 + (f"; peak GPU memory {env['peak_gpu_memory_gib']} GiB" if "peak_gpu_memory_gib" in env else ""))
    text = table(env, rows, notes)
    print(text, flush=True)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "gpu_table.md").write_text(text + "\n")
        results = {"environment": env, "plan": dataclasses.asdict(plan), "quick": a.quick,
                   "rows": [dataclasses.asdict(r) for r in rows], "notes": notes, "raw": raw}
        (a.out / "gpu_results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 1 if any(r.setting == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
