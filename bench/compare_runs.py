"""Paired comparison of two trained runs on the same points: which flow gives the higher likelihood?

    python bench/compare_runs.py RUN_A RUN_B [--part test|val] [--threads 1]

Both runs must hold the same split (same data, split and seed). The exact log-likelihood of every
point of ``--part`` under each run's flow (EMA weights) is computed, and the script prints each
run's NLL and the mean per-point difference with its standard error. Pairing removes the spread
between points, which is most of a single NLL's standard error on the Earth sets, so a difference
of a few hundredths can be told from noise; it does not remove run-to-run (training) noise.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

from cnfm_core.builders import load_field
from cnfm_core.integrate import log_likelihood
from cnfm_core.runs import RunDir, RunError


def per_point_log_prob(run: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """(points, log-likelihoods) of ``part`` of ``run``'s split under its flow."""
    field, _ = load_field(run)
    x = RunDir(run).read_split()[part]
    return x, log_likelihood(field, torch.as_tensor(x, dtype=torch.float32)).log_prob.double().numpy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--part", choices=("test", "val"), default="test")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        xa, la = per_point_log_prob(a.run_a, a.part)
        xb, lb = per_point_log_prob(a.run_b, a.part)
    except (RunError, OSError, KeyError, ValueError) as e:
        print(f"compare_runs: {e}", file=sys.stderr)
        return 2
    if xa.shape != xb.shape or not np.array_equal(xa, xb):
        print(f"compare_runs: the runs' {a.part} splits differ (same data, split and seed needed)", file=sys.stderr)
        return 2
    if len(xa) < 2:
        print(f"compare_runs: the {a.part} split has fewer than 2 points", file=sys.stderr)
        return 2
    d = la - lb
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    print(f"| {a.part} points | NLL A | NLL B | A better by (nats) |")
    print("|---:|---:|---:|---:|")
    print(f"| {len(d)} | {-la.mean():.4f} | {-lb.mean():.4f} | {d.mean():+.4f} ± {se:.4f} |")
    print(f"A = {a.run_a}, B = {a.run_b}; ± is the standard error of the mean per-point difference.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
