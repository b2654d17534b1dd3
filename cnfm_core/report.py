"""What a finished run shows: test NLL beside the baselines, a density grid and model samples.

The pieces are computed separately, so that the worker can write each as soon as it is ready
(:mod:`cnfm_core.stages`); :func:`write_report` computes them all at once (``python -m cnfm_core report``):

    DIR/report.json   test NLL (exact, with solver tolerances), the uniform NLL log(4 pi), the vMF KDE
                      baseline fitted on the validation split, sizes and timings (:func:`test_report`)
    DIR/density.npz   lat, lon (cell centres, degrees), the model's log-density on that grid, ``grid_mass``
                      (its total mass, close to 1), ``preview`` (1: a coarse fixed-step map, 0: the exact one;
                      absent in older runs, meaning exact) and, for the bundled data, ``true_log_prob``
    DIR/samples.csv   model samples, header lat,lon (:func:`write_density`)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from .builders import load_field
from .config import TrainConfig
from .data import write_points
from .grid import cell_areas, cell_centres
from .integrate import evaluate_nll, log_likelihood, mean_sem, sample
from .kde import fit_kde, kde_log_prob
from .runs import RunDir
from .sphere import grid_points
from .synthetic import known_density

__all__ = ["PREVIEW_ODE_STEP", "mean_sem", "test_report", "write_density", "write_report"]

#: The preview map's fixed RK4 step in t. On the bundled mixture after a default one-minute run (45 x 90 grid),
#: step 0.1 is within 0.11 nats of dopri5 at 1e-5 everywhere (99 % of cells within 0.07), step 0.05 within 0.006.
PREVIEW_ODE_STEP = 0.1


@torch.no_grad()
def _grid_log_prob(field: nn.Module, lat: np.ndarray, lon: np.ndarray, *, rtol: float, atol: float,
                   step_size: float | None, rows_per_chunk: int) -> np.ndarray:
    """Log-density at the cell centres, ``rows_per_chunk`` latitude rows per solve (dopri5 at ``rtol``/``atol``,
    or RK4 with ``step_size``); chunks let a caller's field wrapper report progress and stop between them."""
    p = next(field.parameters())
    out = np.empty((len(lat), len(lon)), np.float32)
    kw: dict[str, Any] = ({"method": "rk4", "options": {"step_size": step_size}} if step_size
                          else {"rtol": rtol, "atol": atol})
    for i in range(0, len(lat), rows_per_chunk):
        x = grid_points(lat[i : i + rows_per_chunk], lon, dtype=p.dtype).to(p.device)
        lp = log_likelihood(field, x, **kw).log_prob
        out[i : i + rows_per_chunk] = lp.cpu().numpy().reshape(-1, len(lon))
    return out


def write_density(run: RunDir, field: nn.Module, config: TrainConfig, *, n_lat: int = 90, n_lon: int = 180,
                  n_samples: int = 2000, preview: bool = False, sample_steps: int = 50, rows_per_chunk: int = 15,
                  seed: int = 0) -> dict[str, Any]:
    """Write density.npz and samples.csv: the exact map (dopri5 at the run's tolerances), or with ``preview``
    a coarse one by RK4 at :data:`PREVIEW_ODE_STEP`. Returns facts for the report (``grid_mass``)."""
    lat, lon = cell_centres(n_lat, n_lon)
    log_prob = _grid_log_prob(field, lat, lon, rtol=config.rtol, atol=config.atol,
                              step_size=PREVIEW_ODE_STEP if preview else None, rows_per_chunk=rows_per_chunk)
    mass = float((np.exp(log_prob.astype(np.float64)) * cell_areas(lat, lon)).sum())
    arrays = {"lat": lat, "lon": lon, "log_prob": log_prob, "preview": np.array(int(preview)),
              "grid_mass": np.array(mass)}
    truth = known_density(config.data)
    if truth is not None:  # the bundled synthetic data: show the truth beside the model
        arrays["true_log_prob"] = truth.log_prob(grid_points(lat, lon)).numpy().reshape(log_prob.shape)
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same start points on every device
    points = sample(field, n_samples, generator=g, steps=sample_steps)
    run.write_npz(run.density, arrays)  # the map first: it is what a page shows
    write_points(run.samples, points, decimals=5)
    return {"grid_mass": mass}


def test_report(run: RunDir, field: nn.Module, config: TrainConfig) -> dict[str, Any]:
    """The report's numbers: the exact test NLL (:func:`~cnfm_core.integrate.evaluate_nll` at the run's
    tolerances) beside the uniform density, the vMF KDE and, for the bundled data, the true density."""
    t0 = time.perf_counter()
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
    truth = known_density(config.data)
    if truth is not None:
        if len(test):
            report["true_nll"] = float(-truth.log_prob(torch.as_tensor(test)).mean())
        report["true_entropy"] = truth.entropy(n=100_000)[0]
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def write_report(run: RunDir, *, n_lat: int = 90, n_lon: int = 180, n_samples: int = 2000, seed: int = 0,
                 device: str | torch.device | None = None) -> dict[str, Any]:
    """Compute and write report.json, density.npz (exact) and samples.csv for a trained run, all at once, on
    ``device`` (None: the run's own where this machine has it, :func:`~cnfm_core.builders.available_device`);
    return the report."""
    t0 = time.perf_counter()
    field, config = load_field(run, device=device)
    facts = write_density(run, field, config, n_lat=n_lat, n_lon=n_lon, n_samples=n_samples, seed=seed)
    report = {**test_report(run, field, config), **facts}
    report["seconds"] = round(time.perf_counter() - t0, 2)
    run.write_json(run.report, report)
    return report
