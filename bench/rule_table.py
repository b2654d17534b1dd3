"""What the data's rule (:func:`cnfm_core.auto.choose_settings`, as a default run calls it) picks on each data
set, split and seed: the validation KDE's κ, κ_max, Fourier features, the kernel, the field base, the adaptive
KDE's validation gain over one bandwidth, and how long the choice took, beside the same choice with the kernel
fixed (the rule before it chose the kernel; the two are timed in turn).

    python bench/rule_table.py [FILE.csv ...] [--splits standard dedup] [--seeds 0 1 2 3 4]

Default files: the Earth sets in ../shared/data/earth. Prints a markdown table. Used to check that a change to
the rule leaves the settings of the Earth runs as they were where it should (docs/clustered.md, section 4).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cnfm_core.auto import choose_settings
from cnfm_core.data import read_points
from cnfm_core.splits import make_split

EARTH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "earth"
DEFAULT_FILES = [EARTH / f"{name}.csv" for name in ("earthquake", "flood", "volcano")]


def rows(files: list[Path], splits: list[str], seeds: list[int]) -> list[str]:
    out = ["| data | split | seed | κ_kde | κ_max | features | kernel | field base | adaptive gain (nats) | seconds | "
           "seconds, kernel fixed |", "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    for path in files:
        points = read_points(path)
        for split in splits:
            for seed in seeds:
                s = make_split(points, mode=split, seed=seed)
                t0 = time.perf_counter()
                c = choose_settings(points.xyz[s.train], points.xyz[s.val], seed=seed, adaptive=None)
                took = time.perf_counter() - t0
                t0 = time.perf_counter()
                choose_settings(points.xyz[s.train], points.xyz[s.val], seed=seed, adaptive=False)
                fixed = time.perf_counter() - t0
                gain = "–" if c.adaptive_gain is None else f"{c.adaptive_gain:+.3f} ± {c.adaptive_gain_se:.3f}"
                kde = "–" if c.kde_kappa is None else f"{c.kde_kappa:.3g}"
                out.append(f"| {path.stem} | {split} | {seed} | {kde} | {c.kappa_max:.3g} | {c.space_frequencies} | "
                           f"{c.kernel} | {c.field_base} | {gain} | {took:.1f} | {fixed:.1f} |")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    ap.add_argument("--splits", nargs="+", default=["standard", "dedup"], choices=("standard", "dedup", "none"))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    a = ap.parse_args(argv)
    print("\n".join(rows(a.files, a.splits, a.seeds)), flush=True)


if __name__ == "__main__":
    main()
