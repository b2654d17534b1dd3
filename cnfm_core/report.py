"""What a finished run shows: test NLL beside the baselines, a density grid and model samples.

:func:`write_report` is run by the background worker after training (and by
``python -m cnfm_core report``), so that pages only read files:

    DIR/report.json   test NLL (exact, with solver tolerances), the uniform NLL log(4 pi), the vMF KDE
                      baseline fitted on the validation split, sizes and timings
    DIR/density.npz   lat, lon (cell centres, degrees) and the model's log-density on that grid
    DIR/samples.csv   model samples, header lat,lon
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .builders import load_field
from .data import write_points
from .grid import cell_areas
from .integrate import density_grid, evaluate_nll, mean_sem, sample
from .kde import fit_kde, kde_log_prob
from .runs import RunDir
from .sphere import grid_points
from .synthetic import known_density

__all__ = ["mean_sem", "write_report"]


def write_report(run: RunDir, *, n_lat: int = 90, n_lon: int = 180, n_samples: int = 2000, seed: int = 0,
                 device: str | torch.device = "cpu") -> dict[str, Any]:
    """Compute and write report.json, density.npz and samples.csv for a trained run; return the report."""
    t0 = time.perf_counter()
    field, config = load_field(run, device=device)
    split = run.read_split()
    report: dict[str, Any] = {"uniform_nll": field.manifold.log_volume, "objective": config.objective,
                              "ell": config.ell, "split": config.split, "n_train": int(len(split["train"])),
                              "n_test": int(len(split["test"]))}
    test = split["test"]
    if len(test):
        est = evaluate_nll(field, test, rtol=config.rtol, atol=config.atol)
        report.update(test_nll=est.mean, test_nll_sem=est.sem, solver=est.solver, rtol=est.rtol, atol=est.atol)
        if len(split["val"]):
            kde = fit_kde(split["train"], split["val"])
            kde_nll = -kde_log_prob(test, split["train"], kde.kappa, kde.weight)
            report["kde_nll"], report["kde_nll_sem"] = mean_sem(kde_nll)
            report.update(kde_kappa=kde.kappa, kde_weight=kde.weight)
    grid = density_grid(field, n_lat=n_lat, n_lon=n_lon, rtol=config.rtol, atol=config.atol)
    arrays = {"lat": grid.lat, "lon": grid.lon, "log_prob": grid.log_prob}
    truth = known_density(config.data)
    if truth is not None:  # the bundled synthetic data: show the truth beside the model
        xg = grid_points(grid.lat, grid.lon)
        arrays["true_log_prob"] = truth.log_prob(xg).numpy().reshape(grid.log_prob.shape)
        if len(test):
            report["true_nll"] = float(-truth.log_prob(torch.as_tensor(test)).mean())
        report["true_entropy"] = truth.entropy(n=100_000)[0]
    run.write_npz(run.density, arrays)
    g = torch.Generator(device=device).manual_seed(seed)
    write_points(run.samples, sample(field, n_samples, generator=g), decimals=5)
    # Total mass of the grid (should be close to 1): a visible check on the density map.
    report["grid_mass"] = float((np.exp(grid.log_prob) * cell_areas(grid.lat, grid.lon)).sum())
    report["seconds"] = round(time.perf_counter() - t0, 2)
    run.write_json(run.report, report)
    return report
