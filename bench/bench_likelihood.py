"""Exact-NLL throughput and accuracy of the adaptive likelihood solver.

    python bench/bench_likelihood.py [--run-dir DIR] [--points 2000] [--threads 2]

Without ``--run-dir`` a field is trained for 1,500 steps on the bundled synthetic mixture
first (about a minute). For several solver settings it prints points per second and the
error of the per-point log-likelihood against a float64 dopri5 reference at rtol = atol = 1e-9.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from cnfm_core.builders import load_field
from cnfm_core.config import TrainConfig
from cnfm_core.integrate import log_likelihood
from cnfm_core.synthetic import DEFAULT_MIXTURE
from cnfm_core.train import train

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SETTINGS = [
    ("dopri5", 1e-3, 1e-3),
    ("dopri5", 1e-4, 1e-4),
    ("dopri5", 1e-5, 1e-5),
    ("dopri5", 1e-6, 1e-6),
    ("rk4", None, None),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    run_dir = a.run_dir
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp()) / "run"
        train(TrainConfig(data=str(ASSETS / "synthetic_mixture.csv"), steps=1500, eval_every=10_000,
                          threads=a.threads), run_dir)
    field, cfg = load_field(run_dir)
    x = DEFAULT_MIXTURE.sample(a.points, seed=7).float()
    ref = log_likelihood(field.double(), x.double(), rtol=1e-9, atol=1e-9).log_prob
    field = field.float()
    print(f"run={run_dir} hidden={cfg.hidden} layers={cfg.layers} points={a.points} threads={a.threads} "
          f"torch={torch.__version__}")
    print("| solver | rtol | atol | points/s | NFE | mean NLL | max abs error (nats) | error of mean |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for method, rtol, atol in SETTINGS:
        kw = {"method": method, "rtol": rtol or 0.0, "atol": atol or 0.0}
        if method == "rk4":
            kw["options"] = {"step_size": 1.0 / 50}
        t0 = time.perf_counter()
        res = log_likelihood(field, x, **kw)
        secs = time.perf_counter() - t0
        err = (res.log_prob.double() - ref).abs()
        label = "rk4 (50 steps)" if method == "rk4" else method
        print(f"| {label} | {rtol or '-'} | {atol or '-'} | {a.points / secs:,.0f} | {res.nfe} | "
              f"{-float(res.log_prob.double().mean()):.5f} | {float(err.max()):.2e} | "
              f"{abs(float(res.log_prob.double().mean() - ref.mean())):.2e} |")
    print(f"| reference dopri5 float64 | 1e-9 | 1e-9 | | | {-float(ref.mean()):.5f} | | |")


if __name__ == "__main__":
    main()
