"""The Earth table's data sets and the baselines of each split and seed (``bench/earth_table.py``).

Every readable ``*.csv`` of the data folder is a data set, named by its file stem. On the split that training
uses (:func:`cnfm_core.splits.make_split`), the baselines are the uniform density's test NLL (log 4 pi), a vMF KDE
with a uniform floor (``fit_kde`` on train/val, scored on test), and the end point of PPD's target path under the
product defaults (the kernel estimate at the κ_max the data's rule picks), with the settings the rule picks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from bench.earth_spec import DataSet
from cnfm_core.auto import choose_settings
from cnfm_core.config import TrainConfig
from cnfm_core.data import DataError, PointSet, read_points
from cnfm_core.kde import fit_kde, kde_log_prob
from cnfm_core.sphere import LOG_AREA
from cnfm_core.splits import make_split

__all__ = ["baselines", "file_sha256", "find_data_sets"]


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, as hex (what a cached run's data must match)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_data_sets(data_dir: Path) -> tuple[list[DataSet], list[dict[str, str]]]:
    """Every readable ``*.csv`` in ``data_dir``, sorted by name, and the files skipped with why."""
    found, skipped = [], []
    for path in sorted(data_dir.glob("*.csv")):
        try:
            points = read_points(path)
            found.append(DataSet(path.stem, path.resolve(), points, file_sha256(path)))
        except (DataError, OSError) as e:
            skipped.append({"file": path.name, "error": " ".join(str(e).split())})
    return found, skipped


def baselines(points: PointSet, split: str, seed: int) -> dict[str, Any]:
    """Uniform, vMF-KDE and PPD-target test NLLs on the split ``make_split`` (and so training) uses."""
    s = make_split(points, mode=split, seed=seed)
    train, val, test = points.xyz[s.train], points.xyz[s.val], points.xyz[s.test]
    out: dict[str, Any] = {"seed": seed, "n_train": len(train), "n_val": len(val), "n_test": len(test),
                           "uniform": LOG_AREA, "kde": None, "target": None}
    if len(train) > 0:
        choice = choose_settings(train, val, seed=seed, adaptive=None)
        out.update(auto_kappa_max=choice.kappa_max, auto_space_frequencies=choice.space_frequencies,
                   auto_kernel=choice.kernel, auto_field_base=choice.field_base)
        if len(test) > 0:
            out["target"] = float(-np.mean(kde_log_prob(test, train, choice.target_kappas(train),
                                                        TrainConfig().floor)))
    if len(val) == 0 or len(test) == 0:
        out["kde_error"] = "no validation or test points"
        return out
    fit = fit_kde(train, val)
    out.update(kde=float(-np.mean(kde_log_prob(test, train, fit.kappa, fit.weight))),
               kde_kappa=fit.kappa, kde_weight=fit.weight, kde_val_nll=fit.val_nll)
    return out
