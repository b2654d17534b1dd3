"""Seconds of each report stage after training (cnfm_core/stages.py), on a copy of a trained run.

    python bench/bench_stages.py RUN_DIR [--threads 1]

The copy loses its results first (as the worker does at the end of training), then the stages run in order;
the table gives when each stage finished, counted from the end of training, and its own seconds.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cnfm_core.runs import RunDir
from cnfm_core.stages import run_stages

__all__ = ["main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        shutil.copytree(args.run_dir, run.path)
        for stale in (run.report, run.density, run.samples, run.frames, run.cancel_request, run.stop_request):
            stale.unlink(missing_ok=True)
        t0 = time.monotonic()
        finished: dict[str, tuple[float, Any]] = {}

        def publish(stages: list[dict[str, Any]]) -> None:
            for s in stages:
                if s["state"] in ("done", "failed", "cancelled") and s["name"] not in finished:
                    finished[s["name"]] = (time.monotonic() - t0, s["seconds"])

        states = run_stages(run, publish)
        report = run.read_json(run.report) if run.report.exists() else {}
    print(f"threads {args.threads}; test NLL {report.get('test_nll', float('nan')):.4f}\n")
    print("| stage | state | finished after the end of training (s) | its own seconds |")
    print("|---|---|---|---|")
    for name, (at, seconds) in finished.items():
        print(f"| {name} | {states[name]} | {at:.1f} | {seconds} |")


if __name__ == "__main__":
    main()
