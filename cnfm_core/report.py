"""What a finished run shows: test NLL beside the baselines, a density grid and model samples.

The pieces are computed separately, so that the worker can write each as soon as it is ready
(:mod:`cnfm_core.stages`); :func:`write_report` computes them all at once (``python -m cnfm_core report``):

    DIR/report.json   test NLL (exact, with solver tolerances), the uniform NLL log(4 pi), the vMF KDE
                      baseline fitted on the validation split, sizes and timings (:func:`test_report`)
    DIR/density.npz   lat, lon (cell centres, degrees), ``log_prob`` (the map a page draws: the model's
                      log-density at the cell centres, or for a very sharp flow its log mean over each cell, see
                      below), ``grid_mass`` (the mass of the values at the centres, close to 1 for a smooth flow),
                      ``map_mass`` (the mass of ``log_prob``), ``cell_means`` (1: ``log_prob`` holds cell means),
                      ``preview`` (1: a coarse fixed-step map, 0: the exact one; absent in older runs, meaning
                      exact) and, for the bundled data, ``true_log_prob``
    DIR/samples.csv   model samples, header lat,lon (:func:`write_density`)

A flow trained on very clustered data can be as sharp as kernels 0.6 km wide: its values at the cell centres of a
2-degree grid then miss nearly all of its mass, and a map of them shows only the uniform floor. Where the exact
map's ``grid_mass`` is below :data:`SHARP_MASS`, :func:`write_density` also draws :data:`CELL_MEAN_SAMPLES` samples
and stores, where a cell's count of them differs by more than chance from what its centre's value predicts, the
cell's share of them over its area (:func:`sample_cell_means`) as ``log_prob``, with the values at the centres
kept as ``point_log_prob`` and the number of samples as ``cell_mean_samples``.
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
from .geo import xyz_to_latlon
from .grid import cell_areas, cell_centres
from .integrate import evaluate_nll, log_likelihood, mean_sem, sample
from .kde import fit_kde, kde_log_prob
from .runs import RunDir
from .sphere import grid_points
from .synthetic import known_density

__all__ = [
    "CELL_MEAN_SAMPLES",
    "CHANCE_Z",
    "PREVIEW_ODE_STEP",
    "SHARP_MASS",
    "mean_sem",
    "sample_cell_means",
    "test_report",
    "write_density",
    "write_report",
]

#: The preview map's fixed RK4 step in t. On the bundled mixture after a default one-minute run (45 x 90 grid),
#: step 0.1 is within 0.11 nats of dopri5 at 1e-5 everywhere (99 % of cells within 0.07), step 0.05 within 0.006.
PREVIEW_ODE_STEP = 0.1
#: Below this mass of the values at the cell centres, the exact map is drawn as cell means from samples
#: (a smooth flow's values hold 0.99 or more of its mass; a flow of kernels far narrower than a cell, a few %).
SHARP_MASS = 0.5
#: Samples drawn for a map of cell means: a cell with a 1/1,000 share of the mass gets 20 of them (a relative
#: error of about 1 / sqrt(20) = 22 %, 0.2 nats on the map's log scale).
CELL_MEAN_SAMPLES = 20_000
#: A cell's count of samples ``n`` is taken as chance while ``|n - lambda| <= z (sqrt(lambda) + 1/2)``, with
#: ``lambda`` the count its centre's value predicts (:func:`sample_cell_means`). At ``z = 4`` a Poisson count passes
#: that by chance with a probability below 1e-4 at any ``lambda`` (0.025, a 2 % floor's share of 20,000 samples in a
#: 2-degree cell: ``n >= 3``, 3e-6; 1.4: ``n >= 9``, 2e-5; 100: ``n >= 143``, 3e-5): about one cell of a map of
#: 16,200 set apart by chance.
CHANCE_Z = 4.0


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


def _grid_mass(log_prob: np.ndarray) -> float:
    """The mass ``sum exp(log_prob) * area`` of a map on the full grid of cell centres (:func:`cell_areas`)."""
    lat, lon = cell_centres(*log_prob.shape)
    return float((np.exp(log_prob.astype(np.float64)) * cell_areas(lat, lon)).sum())


def sample_cell_means(xyz: np.ndarray, point_log_prob: np.ndarray, *, z: float = CHANCE_Z) -> np.ndarray:
    """The log mean density over each cell of the full ``n_lat x n_lon`` grid of :func:`cell_centres` (the shape of
    ``point_log_prob``, the density's log values at the cell centres), from ``M`` samples ``xyz`` (``(M, 3)``, unit
    vectors) of the density: in a cell of area ``A`` (:func:`cell_areas`) that holds ``n`` of them,

        mean_cell p = (n / M) / A   where   |n - lambda| > z (sqrt(lambda) + 1/2),   lambda = M p(centre) A,

    that is where the count differs by more than chance from what the value at the centre predicts (a bump narrower
    than the cell); elsewhere, and where no sample fell, the value at the centre, which is exact where the density
    is smooth across the cell. So the floor's scattered samples leave hardly a speckle, and the map's mass is close to 1
    (the counts alone would double the smooth part's mass in sparse cells: a sample there, the centre's value in
    the empty cells around it). The result has ``point_log_prob``'s dtype.

    Cells are ``[-90 + i dlat, -90 + (i + 1) dlat)`` in latitude and likewise from -180 in longitude; a sample on
    the last edge (the north pole, longitude 180) is in the last cell.

    Three samples at the north pole (longitude 0) on a 2 x 4 grid of a density whose centres' values predict none:
    that cell holds all the mass, the others keep the centres' values (two samples would pass as chance).

    >>> out = sample_cell_means(np.array([[0.0, 0.0, 1.0]] * 3), np.full((2, 4), -9.0, np.float32))
    >>> lat, lon = cell_centres(2, 4)
    >>> out[0].tolist(), out[1, 3].item(), round(float(np.exp(out[1, 2]) * cell_areas(lat, lon)[1, 2]), 5)
    ([-9.0, -9.0, -9.0, -9.0], -9.0, 1.0)
    """
    n_lat, n_lon = point_log_prob.shape
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    if not len(xyz):
        raise ValueError("cell means need at least one sample")
    lat_s, lon_s = xyz_to_latlon(xyz)
    rows = np.clip(np.floor((lat_s + 90.0) * (n_lat / 180.0)).astype(np.int64), 0, n_lat - 1)
    cols = np.clip(np.floor((lon_s + 180.0) * (n_lon / 360.0)).astype(np.int64), 0, n_lon - 1)
    count = np.bincount(rows * n_lon + cols, minlength=n_lat * n_lon).reshape(n_lat, n_lon)
    lat, lon = cell_centres(n_lat, n_lon)
    log_area = np.log(cell_areas(lat, lon))
    expected = len(xyz) * np.exp(point_log_prob.astype(np.float64) + log_area)
    counted = (count > 0) & (np.abs(count - expected) > z * (np.sqrt(expected) + 0.5))
    with np.errstate(divide="ignore"):  # log 0 where no sample fell: the centre's value is taken there
        mean = np.log(count / len(xyz)) - log_area
    return np.where(counted, mean, point_log_prob).astype(point_log_prob.dtype)


def write_density(run: RunDir, field: nn.Module, config: TrainConfig, *, n_lat: int = 90, n_lon: int = 180,
                  n_samples: int = 2000, preview: bool = False, sample_steps: int = 50, rows_per_chunk: int = 15,
                  seed: int = 0) -> dict[str, Any]:
    """Write density.npz and samples.csv: the exact map (dopri5 at the run's tolerances), or with ``preview``
    a coarse one by RK4 at :data:`PREVIEW_ODE_STEP`. Returns facts for the report: ``grid_mass``, the mass of the
    values at the cell centres, and ``map_mass``, the mass of the map stored as ``log_prob``.

    Where the exact map's ``grid_mass`` is below :data:`SHARP_MASS` (a flow of bumps narrower than a cell), the map
    stored is of cell means from :data:`CELL_MEAN_SAMPLES` more samples (:func:`sample_cell_means`; ``cell_means``
    1, the values at the centres in ``point_log_prob``), drawn after samples.csv's from the same generator, so that
    samples.csv is the same either way (in one call: a kernel base field forms its ``B x N`` table in chunks,
    :class:`~cnfm_core.kernelbase.KernelBase`). A preview stays a map of the values at the centres: it is replaced
    within minutes, and the samples would cost it many times its few seconds."""
    lat, lon = cell_centres(n_lat, n_lon)
    log_prob = _grid_log_prob(field, lat, lon, rtol=config.rtol, atol=config.atol,
                              step_size=PREVIEW_ODE_STEP if preview else None, rows_per_chunk=rows_per_chunk)
    mass = _grid_mass(log_prob)
    arrays = {"lat": lat, "lon": lon, "log_prob": log_prob, "preview": np.array(int(preview)),
              "grid_mass": np.array(mass), "map_mass": np.array(mass), "cell_means": np.array(0)}
    truth = known_density(config.data)
    if truth is not None:  # the bundled synthetic data: show the truth beside the model
        arrays["true_log_prob"] = truth.log_prob(grid_points(lat, lon)).numpy().reshape(log_prob.shape)
    g = torch.Generator().manual_seed(seed)  # on the CPU: the same start points on every device
    points = sample(field, n_samples, generator=g, steps=sample_steps)
    if not preview and mass < SHARP_MASS:
        drawn = sample(field, CELL_MEAN_SAMPLES, generator=g, steps=sample_steps).cpu().double().numpy()
        means = sample_cell_means(drawn, log_prob)
        arrays.update(log_prob=means, point_log_prob=log_prob, map_mass=np.array(_grid_mass(means)),
                      cell_means=np.array(1), cell_mean_samples=np.array(CELL_MEAN_SAMPLES))
    run.write_npz(run.density, arrays)  # the map first: it is what a page shows
    write_points(run.samples, points, decimals=5)
    return {"grid_mass": mass, "map_mass": float(arrays["map_mass"])}


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
