"""How far does a kernel density with a per-point bandwidth go on the Earth splits?

    python bench/adaptive_kde.py [--data-dir ../shared/data/earth] [--seed 0]

The Earth table's KDE baseline gives every kernel the same concentration. The adaptive KDE of
:mod:`cnfm_core.kde` gives each training point its own, ``kappa_i = a / r_k(y_i)^2`` from the distance
to its k-th nearest other training location, with ``(k, a, w)`` chosen on the validation split. This
prints one markdown row per data set and split: validation and test NLL of both, and the choice.

It is the end point of PPD's adaptive target path (``VMFMixturePath(..., scales=...)``), so it bounds
what a long run on that target approaches, as the fixed KDE does for the fixed target.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnfm_core.data import read_points
from cnfm_core.kde import adaptive_kappas, fit_adaptive_kde, fit_kde, kde_log_prob
from cnfm_core.splits import make_split

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared/data/earth"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print("| data (split) | fixed KDE val | fixed KDE test | per-point KDE val | per-point KDE test | (k, a, w) |")
    print("|---|---:|---:|---:|---:|---|")
    for csv in sorted(a.data_dir.glob("*.csv")):
        points = read_points(csv)
        for mode in ("standard", "dedup"):
            s = make_split(points, mode=mode, seed=a.seed)
            train, val, test = points.xyz[s.train], points.xyz[s.val], points.xyz[s.test]
            fixed = fit_kde(train, val)
            fixed_test = -float(kde_log_prob(test, train, fixed.kappa, fixed.weight).mean())
            fit = fit_adaptive_kde(train, val)
            kappa = adaptive_kappas(train, fit.neighbours, fit.scale)
            adaptive_test = -float(kde_log_prob(test, train, kappa, fit.weight).mean())
            print(f"| {csv.stem} ({mode}) | {fixed.val_nll:.3f} | {fixed_test:.3f} | {fit.val_nll:.3f} "
                  f"| {adaptive_test:.3f} | ({fit.neighbours}, {fit.scale:g}, {fit.weight:g}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
