"""A job through the runner with and without a warm worker (cnfm_core/standby.py): seconds from the request to done.

    python bench/bench_standby.py [--rounds 3] [--steps 50] [--busy N]

Each round makes one quick job of ``--steps`` training steps (the default model, as a Step of the Train page does)
twice: once started cold (``python -m cnfm_core.worker`` imports torch, torch._dynamo, geoopt, ...) and once handed
to a standby that was ready before the request. Seconds from ``RunStore.create`` to the run's ``done`` state, as
the page sees it. ``--busy N`` keeps N busy loops running (one per core is the loaded case of the classroom bench).
Prints a markdown table and the median of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cnfm_core import standby  # noqa: E402
from cnfm_core.config import TrainConfig  # noqa: E402
from cnfm_core.jobs import FINISHED, JobRunner, RunStore  # noqa: E402


def _job(store: RunStore, runner: JobRunner, steps: int, name: str) -> float:
    config = TrainConfig(data=str(REPO / "assets" / "synthetic_mixture.csv"), steps=steps, eval_every=10**6)
    t0 = time.perf_counter()
    run_id = store.create(config, name=name, quick=True)
    runner.poll()
    while store.info(run_id).state not in FINISHED:
        time.sleep(0.02)
    if store.info(run_id).state != "done":
        raise SystemExit(f"{run_id}: {store.info(run_id).message}")
    return time.perf_counter() - t0


def _ready(root: Path) -> bool:
    return any((root / standby.STANDBY_DIR).glob("*.ready"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--busy", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault(standby.DELAY_ENV, "0")  # measured from ready standbys: no need to wait for one
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    root = Path(tempfile.mkdtemp(prefix="bench-standby-"))
    store = RunStore(root, demo_root=None)
    rows: dict[str, list[float]] = {"cold worker": [], "warm worker (standby)": []}
    try:
        for r in range(args.rounds):
            rows["cold worker"].append(_job(store, JobRunner(store, threads=2), args.steps, f"cold{r}"))
            warm = JobRunner(store, threads=2, standby=True)
            warm.poll()
            while not _ready(root):
                time.sleep(0.1)
            rows["warm worker (standby)"].append(_job(store, warm, args.steps, f"warm{r}"))
            while not _ready(root):  # the finishing worker started the next standby; let it settle
                time.sleep(0.1)
    finally:
        for path in (root / standby.STANDBY_DIR).glob("*.*"):
            pid = path.stem.partition("-")[0]
            if pid.isdigit() and path.suffix in (".starting", ".ready"):
                try:
                    os.kill(int(pid), 15)
                except ProcessLookupError:
                    pass
        for p in busy:
            p.kill()
    print(f"quick job of {args.steps} steps (default model), {args.rounds} rounds, busy loops={args.busy}, "
          f"load at end={os.getloadavg()[0]:.1f}")
    print("| worker | seconds, request -> done (each round) | median |")
    print("|---|---|---:|")
    for name, values in rows.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
