"""Command line: ``python -m cnfm_core {train,evaluate,sample} ...``.

A user error (bad file, bad option, missing run) prints one line, ``cnfm: error: ...``,
on stderr and exits with status 2; no traceback. So do the faults of a training run: a write that failed (a full
disk, a read-only folder), training that diverged (each rollback before it is said on a line of its own, even
with ``--quiet``), and a run folder another process is training.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import torch

from .angles import read_angles, write_angles
from .builders import load_field
from .config import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    FIELD_BASES,
    KERNELS,
    MANIFOLD_NAMES,
    OBJECTIVE_NAMES,
    SCHEDULE_NAMES,
    TrainConfig,
    choose_threads,
)
from .data import DataError, read_points, write_points
from .guard import TrainingDiverged
from .integrate import evaluate_nll, sample
from .report import write_report
from .runs import RunDir, RunError
from .train import request_stop, train

__all__ = ["main"]

T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"cnfm: error: {message} (see --help)\n")


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An option parser for whole numbers of at least ``minimum``."""
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{s!r} must be at least {minimum}")
        return v
    return parse


_positive_int = _whole_number(1)
_count = _whole_number(0)


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{s!r} must be a positive number")
    return v


def _auto_or(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """An option that also takes ``auto`` (None: chosen from the data when the run starts)."""
    def parse_or_auto(s: str) -> T | None:
        return None if s.strip().lower() == "auto" else parse(s)
    parse_or_auto.__name__ = parse.__name__
    return parse_or_auto


def _kernel(s: str) -> str:
    if s not in KERNELS:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(KERNELS)} or auto")
    return s


def _field_base(s: str) -> str:
    if s not in FIELD_BASES:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FIELD_BASES)} or auto")
    return s


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _Parser(prog="python -m cnfm_core", description="PPD flows on the sphere: train, evaluate, sample.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a flow on a CSV of points")
    t.add_argument("--data", help="CSV with lat/lon (or x,y,z) columns, or for --manifold torus a CSV whose every "
                                  "column is an angle in degrees; not needed with --resume")
    t.add_argument("--manifold", choices=MANIFOLD_NAMES, default=d.manifold,
                   help="where the points live: the sphere S² (lat/lon) or the flat torus Tᵈ (d columns of angles)")
    t.add_argument("--run-dir", required=True, help="directory for config, metrics and checkpoint")
    t.add_argument("--objective", choices=OBJECTIVE_NAMES, default=d.objective)
    t.add_argument("--ell", type=int, choices=(1, 2), default=d.ell, help="PPD exponent l")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="step budget (default 2000)")
    budget.add_argument("--minutes", type=_positive_float, help="wall-time budget in minutes")
    budget.add_argument("--cpu-minutes", type=_positive_float,
                        help="CPU-time budget in minutes (the training process's CPU time; with --threads 1 it does "
                             "not depend on how busy the machine is)")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--split", choices=("standard", "dedup", "none"), default=d.split)
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    t.add_argument("--kappa-max", type=_auto_or(_positive_float), default=d.kappa_max,
                   help="sharpness of the target at t = 1 (default: auto, from the data; see docs/defaults.md)")
    t.add_argument("--kernel", type=_auto_or(_kernel), default=d.kernel,
                   help="the target's kernels: fixed (one bandwidth for every point) or adaptive (one per point, from "
                        "the distance to its nearest neighbours, with the neighbour rank and scale read from the "
                        "data); default: auto, adaptive where one bandwidth is clearly worse on validation")
    t.add_argument("--kernel-neighbours", type=_positive_int, default=d.kernel_neighbours,
                   help="adaptive kernel: the neighbour rank its bandwidths are read from (default: auto)")
    t.add_argument("--kernel-scale", type=_positive_float, default=d.kernel_scale,
                   help="adaptive kernel: the scale of its concentrations (default: auto)")
    t.add_argument("--field-base", type=_auto_or(_field_base), default=d.field_base,
                   help="what the network's output is added to: none, or the target's own contraction field "
                        "(kernel; the sphere's, for targets sharper than a network can draw); default: auto")
    t.add_argument("--schedule", choices=SCHEDULE_NAMES, default=d.schedule)
    t.add_argument("--floor", type=float, default=d.floor,
                   help="weight of a uniform component in the target, in [0, 1)")
    t.add_argument("--hidden", type=_positive_int, default=d.hidden)
    t.add_argument("--layers", type=_positive_int, default=d.layers)
    t.add_argument("--space-frequencies", type=_auto_or(_count), default=d.space_frequencies,
                   help="random Fourier features of the point (0: none; default: auto, from the data)")
    t.add_argument("--space-scale", type=_positive_float, default=d.space_scale,
                   help="standard deviation of their frequencies")
    t.add_argument("--lr", type=_positive_float, default=d.lr)
    t.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    t.add_argument("--eval-every", type=_positive_int, default=d.eval_every)
    t.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: usable cores, at most 8)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    e = sub.add_parser("evaluate", help="exact test NLL of a trained run")
    e.add_argument("--run-dir", required=True)
    e.add_argument("--data", help="score every row of this CSV instead of the run's test split")
    e.add_argument("--rtol", type=_positive_float, default=DEFAULT_RTOL)
    e.add_argument("--atol", type=_positive_float, default=DEFAULT_ATOL)
    e.add_argument("--threads", type=_positive_int)

    r = sub.add_parser("report", help="write report.json, density.npz and samples.csv for a trained run")
    r.add_argument("--run-dir", required=True)
    r.add_argument("--threads", type=_positive_int)

    f = sub.add_parser("frames", help="write frames.npz: target and model paths, PPD residual, samples over t")
    f.add_argument("--run-dir", required=True)
    f.add_argument("--frames", type=_positive_int, default=11, help="number of times from 0 to 1")
    f.add_argument("--threads", type=_positive_int)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("--run-dir", required=True)
    s.add_argument("-n", type=_positive_int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="CSV to write (header lat,lon; on the torus the data's columns, "
                                                "in degrees)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=_positive_int, default=50, help="RK4 steps")
    s.add_argument("--threads", type=_positive_int)
    return p


def _train(a: argparse.Namespace) -> int:
    if not a.resume and not a.data:
        raise DataError("--data is required (or --resume to continue a run)", source="train")
    if a.resume:
        config = None
        if a.steps is not None or a.minutes is not None or a.cpu_minutes is not None:
            config = TrainConfig(steps=a.steps, minutes=a.minutes, cpu_minutes=a.cpu_minutes)
    else:
        config = TrainConfig(
            data=str(Path(a.data).resolve()), manifold=a.manifold, objective=a.objective, ell=a.ell, steps=a.steps,
            minutes=a.minutes, cpu_minutes=a.cpu_minutes,
            seed=a.seed, split=a.split, device=a.device, kappa_max=a.kappa_max, schedule=a.schedule, floor=a.floor,
            hidden=a.hidden, layers=a.layers, space_frequencies=a.space_frequencies, space_scale=a.space_scale,
            lr=a.lr, batch_size=a.batch_size, eval_every=a.eval_every, kernel=a.kernel,
            field_base=a.field_base,
            kernel_neighbours=a.kernel_neighbours, kernel_scale=a.kernel_scale,
            threads=a.threads,
        )
    signal.signal(signal.SIGTERM, lambda *_: request_stop())

    def log(rec: dict) -> None:
        if rec.get("event") == "diverged":
            print(f"cnfm: {rec['message']}", file=sys.stderr, flush=True)
        if a.quiet:
            return
        if rec.get("event") == "auto":
            print(rec["message"], file=sys.stderr, flush=True)
        elif "loss" in rec:
            print(f"step {rec['step']:>6}  loss {rec['loss']:.4f}  {rec['steps_per_s']:.1f} steps/s  "
                  f"{rec['elapsed']:.0f}s", file=sys.stderr, flush=True)
        elif "val_nll" in rec:
            print(f"step {rec['step']:>6}  validation NLL {rec['val_nll']:.4f} nats", file=sys.stderr, flush=True)

    try:
        result = train(config, a.run_dir, resume=a.resume, on_log=log)
    except KeyboardInterrupt:
        print(f"cnfm: stopped; resume with --resume --run-dir {a.run_dir}", file=sys.stderr)
        return 130
    print(json.dumps({"run_dir": str(result.run_dir), "state": result.state, "step": result.step,
                      "elapsed": round(result.elapsed, 2), "val_nll": result.val_nll}))
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    torch.set_num_threads(choose_threads(a.threads))
    run = RunDir(a.run_dir)
    field, config = load_field(run)
    if a.data and config.manifold == "torus":
        angles = read_angles(a.data)
        if angles.dim != field.manifold.dim:
            raise DataError(f"{angles.dim} columns of angles, but the run's torus has dimension {field.manifold.dim}",
                            source=angles.source)
        x, where = angles.radians, str(Path(a.data).resolve())
    elif a.data:
        points = read_points(a.data)
        x, where = points.xyz, str(Path(a.data).resolve())
    else:
        x, where = run.read_split()["test"], "test split"
        if len(x) == 0:
            raise RunError(f"{run.path}: the run has no test split (trained with --split {config.split}); pass --data")
    est = evaluate_nll(field, x, rtol=a.rtol, atol=a.atol)
    out = {
        "nll": est.mean, "nll_sem": est.sem, "n": est.n, "data": where, "solver": est.solver, "rtol": est.rtol,
        "atol": est.atol, "nfe": est.nfe, "seconds": round(est.seconds, 3), "uniform_nll": field.manifold.log_volume,
        "objective": config.objective,
    }
    print(json.dumps(out))
    return 0


def _sample(a: argparse.Namespace) -> int:
    torch.set_num_threads(choose_threads(a.threads))
    run = RunDir(a.run_dir)
    field, config = load_field(run)
    out = Path(a.out)
    if out.parent and not out.parent.exists():
        raise RunError(f"{out}: the folder {out.parent} does not exist")
    g = torch.Generator().manual_seed(a.seed)
    x = sample(field, a.n, generator=g, steps=a.steps)
    if config.manifold == "torus":
        dim = field.manifold.dim
        names = run.read_json(run.config).get("columns") or [f"angle{i + 1}" for i in range(dim)]
        write_angles(out, names, x.double().numpy())
    else:
        write_points(out, x)
    print(json.dumps({"out": str(out), "n": a.n}))
    return 0


def _sphere_only(run: RunDir, command: str) -> None:
    """``report`` and ``frames`` draw lat/lon density maps: a run on another manifold is a one-line error."""
    manifold = TrainConfig.from_dict(run.read_json(run.config).get("config", {})).manifold
    if manifold != "sphere":
        raise RunError(f"{run.path}: a {manifold} run has no density map; '{command}' is for sphere runs "
                       "(use evaluate and sample)")


def _report(a: argparse.Namespace) -> int:
    torch.set_num_threads(choose_threads(a.threads))
    _sphere_only(RunDir(a.run_dir), "report")
    print(json.dumps(write_report(RunDir(a.run_dir))))
    return 0


def _frames(a: argparse.Namespace) -> int:
    from .frames import write_frames

    torch.set_num_threads(choose_threads(a.threads))
    _sphere_only(RunDir(a.run_dir), "frames")
    secs = write_frames(RunDir(a.run_dir), n_frames=max(2, a.frames))
    print(json.dumps({"frames": str(RunDir(a.run_dir).frames), "seconds": round(secs, 2)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    handlers = {"train": _train, "evaluate": _evaluate, "sample": _sample, "report": _report, "frames": _frames}
    try:
        return handlers[a.command](a)
    except (DataError, RunError, ValueError, OSError, TrainingDiverged) as e:
        msg = " ".join(str(e).split())
        print(f"cnfm: error: {msg}", file=sys.stderr)
        return 2
