"""What the live picture costs: training throughput with and without live.npz snapshots, in one process.

    python bench/bench_live.py [--steps 150] [--rounds 2] [--threads 1]

Trains the Train page's default model (PPD l = 1, 256 x 3, κ_max auto) on the bundled synthetic mixture,
alternating runs without and with :class:`cnfm_core.live.LiveSnapshots` (so a change of machine load hits
both alike), each for ``--steps`` steps with no validation, and prints a markdown table: steps per second of
training wall time (snapshots included), the snapshots written and their mean cost, the throughput lost
between the runs, and the share of the training time spent in snapshots inside the runs that had them (robust
to a load that changes between runs). The target is a loss of at most 15 %.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from cnfm_core.config import TrainConfig
from cnfm_core.live import LiveSnapshots
from cnfm_core.runs import RunDir
from cnfm_core.train import train

REPO = Path(__file__).resolve().parents[1]


def _one(root: Path, name: str, steps: int, threads: int, live: bool) -> tuple[float, int, float, float]:
    """Steps per second of one run, the snapshots it wrote with their total seconds, and its training seconds."""
    run = RunDir(root / name)
    hook = LiveSnapshots(run) if live else None
    config = TrainConfig(data=str(REPO / "assets" / "synthetic_mixture.csv"), steps=steps, eval_every=10**6,
                         threads=threads)
    result = train(config, run.path, live=hook)
    return result.step / result.elapsed, hook.written if hook else 0, hook.seconds if hook else 0.0, result.elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rates: dict[bool, list[float]] = {False: [], True: []}
    written, seconds, live_wall = 0, 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for live in (False, True):
                rate, n, s, wall = _one(Path(tmp), f"{r}-{live}", a.steps, a.threads, live)
                rates[live].append(rate)
                written, seconds, live_wall = written + n, seconds + s, live_wall + (wall if live else 0.0)
    off, on = statistics.mean(rates[False]), statistics.mean(rates[True])
    print("| snapshots | steps/s (mean of runs) | runs |\n|---|---|---|")
    print(f"| off | {off:.2f} | {', '.join(f'{x:.2f}' for x in rates[False])} |")
    print(f"| on | {on:.2f} | {', '.join(f'{x:.2f}' for x in rates[True])} |")
    mean_cost = seconds / written if written else float("nan")
    print(f"\nthroughput lost: {100 * (1 - on / off):.1f} % between the runs (target <= 15 %); snapshots took "
          f"{100 * seconds / live_wall:.1f} % of the training time of the runs with them (the same cost, measured "
          f"inside each run, so it does not depend on the load changing between runs); {written} snapshots, "
          f"{mean_cost:.2f} s each on average; {a.steps} steps per run, {a.rounds} rounds, threads {a.threads}")


if __name__ == "__main__":
    main()
