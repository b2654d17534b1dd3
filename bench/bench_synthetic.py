"""PPD against RFM at the same wall time, on a synthetic vMF mixture whose entropy is known.

    python bench/bench_synthetic.py [--minutes 10] [--train 20000] [--test 5000] [--out out/synthetic]

The data are exact samples of ``cnfm_core.synthetic.DEFAULT_MIXTURE``. Both objectives train at
the same time, each in its own process with one torch thread (on a 2-core machine this is one
core each, so both get the same wall time and the same hardware), with the product defaults
otherwise. The test NLL (exact, adaptive ODE) of fresh samples is compared with the mixture's
entropy (Monte Carlo, with its standard error), which is the lowest expected NLL any model can
have, and with a vMF KDE fitted on validation samples.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from cnfm_core.builders import load_field
from cnfm_core.data import write_points
from cnfm_core.integrate import log_likelihood
from cnfm_core.kde import fit_kde, kde_log_prob
from cnfm_core.sphere import LOG_AREA
from cnfm_core.synthetic import DEFAULT_MIXTURE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--test", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("out/synthetic"))
    ap.add_argument("--objectives", nargs="*", default=["ppd", "rfm"])
    ap.add_argument("--extra", nargs="*", default=[], help="more train options, e.g. --extra --kappa-max 3000")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    data = a.out / "train.csv"
    write_points(data, DEFAULT_MIXTURE.sample(a.train, seed=1), decimals=8)
    test = DEFAULT_MIXTURE.sample(a.test, seed=2)
    val = DEFAULT_MIXTURE.sample(1000, seed=3)

    procs = {}
    for obj in a.objectives:
        run = a.out / obj
        cmd = [sys.executable, "-m", "cnfm_core", "train", "--data", str(data), "--run-dir", str(run),
               "--objective", obj, "--minutes", str(a.minutes), "--split", "none", "--threads", "1", "--quiet",
               *a.extra]
        procs[obj] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    info = {obj: json.loads(p.communicate()[0]) for obj, p in procs.items()}

    torch.set_num_threads(2)
    entropy, se = DEFAULT_MIXTURE.entropy()
    rows = []
    for obj in a.objectives:
        field, cfg = load_field(a.out / obj)
        nll = float(-log_likelihood(field, test.float()).log_prob.double().mean())
        rows.append((f"{obj.upper()}" + (f" (l={cfg.ell})" if obj == "ppd" else ""), nll, info[obj]["step"]))
    train_x = DEFAULT_MIXTURE.sample(a.train, seed=1).numpy()
    kde = fit_kde(train_x, val.numpy())
    kde_nll = float(-kde_log_prob(test.numpy(), train_x, kde.kappa, kde.weight).mean())
    truth = float(-DEFAULT_MIXTURE.log_prob(test).mean())

    print(f"\nSynthetic vMF mixture, {a.train} training samples, {a.test} test samples, "
          f"{a.minutes:g} min per objective, one thread each, torch {torch.__version__}\n")
    print(f"entropy (Monte Carlo) = {entropy:.4f} ± {se:.4f} nats\n")
    print("The last column compares with the true density on the same test points (no sampling noise of the")
    print("test set); the entropy is the expected value of the true density's NLL.\n")
    print("| model | steps | test NLL | NLL − entropy | NLL − true density's NLL |\n|---|---:|---:|---:|---:|")
    print(f"| true density | | {truth:.4f} | {truth - entropy:+.4f} | 0 |")
    for name, nll, steps in rows:
        print(f"| {name} | {steps} | {nll:.4f} | {nll - entropy:+.4f} | {nll - truth:+.4f} |")
    print(f"| vMF KDE (kappa={kde.kappa:.3g}, floor={kde.weight}) | | {kde_nll:.4f} | {kde_nll - entropy:+.4f} "
          f"| {kde_nll - truth:+.4f} |")
    print(f"| uniform | | {LOG_AREA:.4f} | {LOG_AREA - entropy:+.4f} | {LOG_AREA - truth:+.4f} |")


if __name__ == "__main__":
    main()
