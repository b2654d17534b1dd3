"""A probe: how far does a kernel density with a per-point bandwidth go on the Earth splits?

    python bench/adaptive_kde.py [--data-dir ../shared/data/earth] [--seed 0]

The Earth table's KDE baseline gives every kernel the same concentration. Here each training point
``y_i`` gets its own, ``kappa_i = a / r_k(y_i)^2`` with ``r_k`` the chord distance to its k-th
nearest other training point (clipped to [10, 1e6]), mixed with a uniform floor ``w``; ``(k, a, w)``
are chosen on the validation split from a small grid, and the choice is scored on test. It prints one
markdown row per data set and split, beside the fixed-bandwidth KDE of :func:`cnfm_core.kde.fit_kde`.

This is a probe for the target path, not a baseline row of the table: PPD's target at t = 1 is a
fixed-bandwidth KDE, and long runs approach it (docs/benchmarks.md), so a better end point is the
next lever. Exact duplicates are merged before the k-NN distances (as the path merges them).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from scipy.special import logsumexp

from cnfm_core.data import make_split, read_points
from cnfm_core.kde import fit_kde, kde_log_prob
from cnfm_core.paths import vmf_log_normalizer
from cnfm_core.sphere import LOG_AREA

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared/data/earth"
KS = (1, 3, 10, 30)
SCALES = (0.3, 1.0, 3.0, 10.0, 30.0)
FLOORS = (0.01, 0.02, 0.05, 0.1)
CHUNK = 256


def log_kernel(x: np.ndarray, centers: np.ndarray, log_w: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """``log sum_i w_i vMF(x; y_i, kappa_i)`` (no floor), with ``1 - <x, y>`` from the chord."""
    base = vmf_log_normalizer(torch.from_numpy(kappa)).numpy() + log_w
    out = np.empty(len(x))
    for s in range(0, len(x), CHUNK):
        xs = x[s : s + CHUNK]
        one_minus = np.clip(((xs[:, None, :] - centers[None]) ** 2).sum(-1) / 2.0, 0.0, 2.0)
        out[s : s + CHUNK] = logsumexp(base[None] - kappa[None] * one_minus, axis=1)
    return out


def with_floor(log_kernel_values: np.ndarray, floor: float) -> np.ndarray:
    """``log((1 - floor) p + floor / 4 pi)`` from ``log p``."""
    return np.logaddexp(math.log1p(-floor) + log_kernel_values, math.log(floor) - LOG_AREA)


def log_density(x: np.ndarray, centers: np.ndarray, log_w: np.ndarray, kappa: np.ndarray, floor: float) -> np.ndarray:
    """``log((1 - floor) sum_i w_i vMF(x; y_i, kappa_i) + floor / 4 pi)``."""
    return with_floor(log_kernel(x, centers, log_w, kappa), floor)


def knn_chord2(centers: np.ndarray, k: int) -> np.ndarray:
    """Squared chord distance from each centre to its k-th nearest other centre."""
    out = np.empty(len(centers))
    for s in range(0, len(centers), CHUNK):
        d2 = np.clip(2.0 - 2.0 * centers[s : s + CHUNK] @ centers.T, 0.0, 4.0)
        out[s : s + CHUNK] = np.partition(d2, k, axis=1)[:, k]  # column 0 is the centre itself
    return out


def probe(train: np.ndarray, val: np.ndarray, test: np.ndarray) -> tuple[float, float, tuple[int, float, float]]:
    """Best ``(k, a, w)`` on validation: returns (validation NLL, test NLL, (k, a, w))."""
    centers, counts = np.unique(train, axis=0, return_counts=True)
    log_w = np.log(counts / counts.sum())
    best = None
    for k in KS:
        if k >= len(centers):
            continue
        r2 = np.maximum(knn_chord2(centers, k), 1e-12)
        for a in SCALES:
            kappa = np.clip(a / r2, 10.0, 1e6)
            lp = log_kernel(val, centers, log_w, kappa)  # the floor only mixes in afterwards
            for w in FLOORS:
                v = -float(with_floor(lp, w).mean())
                if best is None or v < best[0]:
                    best = (v, (k, a, w), kappa)
    v, choice, kappa = best
    t = -float(log_density(test, centers, log_w, kappa, choice[2]).mean())
    return v, t, choice


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
            fit = fit_kde(train, val)
            fixed_test = -float(kde_log_prob(test, train, fit.kappa, fit.weight).mean())
            v, t, (k, sc, w) = probe(train, val, test)
            print(f"| {csv.stem} ({mode}) | {fit.val_nll:.3f} | {fixed_test:.3f} | {v:.3f} | {t:.3f} "
                  f"| ({k}, {sc:g}, {w:g}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
