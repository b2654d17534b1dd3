"""The map of a flow sharper than a map cell: cell means from samples (cnfm_core.report.sample_cell_means) against
known cells and a vMF's cell masses by quadrature; write_density keeping the values at the centres for a smooth
flow and drawing cell means for a sharp one (samples.csv the same either way); and the Results page's caption."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pages import open_page
from scipy.stats import vonmises_fisher

from cnfm_core import report
from cnfm_core.config import TrainConfig
from cnfm_core.field import VectorField
from cnfm_core.geo import latlon_to_xyz, xyz_to_latlon
from cnfm_core.grid import cell_areas, cell_centres
from cnfm_core.integrate import sample
from cnfm_core.jobs import DEFAULT_DEMO_ROOT
from cnfm_core.kernelbase import KernelBase
from cnfm_core.runs import RunDir

pytestmark = pytest.mark.usefixtures("single_thread")
LOG_4PI = math.log(4 * math.pi)


def _mass(log_prob: np.ndarray) -> np.ndarray:
    lat, lon = cell_centres(*log_prob.shape)
    return np.exp(log_prob.astype(np.float64)) * cell_areas(lat, lon)


def test_samples_at_known_points_land_in_their_cells():
    """10-degree cells; samples inside cells, on the poles and on longitude 180 (the last cell)."""
    point = np.full((18, 36), -9.0, np.float32)  # predicts 0.004 of 1,000 samples in an equatorial cell
    lat = np.array([5.0] * 500 + [-85.0] * 300 + [90.0] * 100 + [-90.0] * 50 + [-3.0] * 50)
    lon = np.array([15.0] * 500 + [-175.0] * 300 + [0.0] * 100 + [0.0] * 50 + [180.0] * 50)
    got = report.sample_cell_means(latlon_to_xyz(lat, lon), point)
    share = np.zeros((18, 36))
    share[9, 19], share[0, 0], share[17, 18], share[0, 18], share[8, 35] = 0.5, 0.3, 0.1, 0.05, 0.05
    counted = share > 0
    np.testing.assert_allclose(_mass(got)[counted], share[counted], rtol=1e-6)
    np.testing.assert_array_equal(got[~counted], point[~counted])  # no sample: the centre's value, exactly
    assert got.dtype == np.float32
    assert _mass(got).sum() == pytest.approx(1.0 + _mass(point)[~counted].sum(), rel=1e-6)


def test_counts_within_chance_of_the_centres_values_keep_them():
    """A uniform density sampled 1,000 times: every count is chance, so the map is the centres' values; a cell
    whose count is far above (a bump) or far below (a centre on a bump) what its centre predicts is counted."""
    lat, lon = cell_centres(18, 36)
    point = np.full((18, 36), -LOG_4PI, np.float32)
    rng = np.random.default_rng(0)
    xyz = rng.standard_normal((1000, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    np.testing.assert_array_equal(report.sample_cell_means(xyz, point), point)
    expected = 1000 * cell_areas(lat, lon)[9, 19] / (4 * math.pi)  # 7.6 samples
    high = point.copy()
    high[9, 19] += math.log(40.0)  # a centre on a bump predicts 300 samples; the uniform samples give about 8
    got = report.sample_cell_means(xyz, high)
    n = round(float(_mass(got)[9, 19]) * 1000)
    assert got[9, 19] < -LOG_4PI + 1.5 and abs(n - expected) < 4 * math.sqrt(expected)
    bump = np.concatenate([xyz, latlon_to_xyz(np.full(100, 5.0), np.full(100, 15.0))])
    got = report.sample_cell_means(bump, point)
    assert _mass(got)[9, 19] == pytest.approx((100 + n) / 1100)


def test_cell_means_of_a_sharp_vmf_match_its_cell_masses_by_quadrature():
    """A vMF 0.1 degree wide (kappa 3e5) near a corner of four 2-degree cells, with a uniform floor of 0.1: the
    values at the centres hold only the floor's mass, the cell means the kernel's share of each cell (quadrature)
    within sampling error, and chance counts of the floor leave the map's mass at 1, not 1 + the floor's."""
    kappa, w, m = 3e5, 0.1, 20_000
    lat, lon = cell_centres(90, 180)
    mu = latlon_to_xyz(np.array(40.05), np.array(-0.04))
    vmf = vonmises_fisher(mu, kappa)
    centres = latlon_to_xyz(*np.meshgrid(lat, lon, indexing="ij"))
    point = np.logaddexp(math.log1p(-w) + vmf.logpdf(centres.reshape(-1, 3)).reshape(90, 180),
                         math.log(w) - LOG_4PI).astype(np.float32)
    assert _mass(point).sum() == pytest.approx(w, rel=1e-3)  # the centres miss the kernel
    rng = np.random.default_rng(1)
    uniform = rng.standard_normal((m, 3))
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    xyz = np.where((rng.random(m) < w)[:, None], uniform, vmf.rvs(m, random_state=rng))
    got = report.sample_cell_means(xyz, point)
    # the kernel's mass in each of the four cells around (40, 0): midpoint rule on 400 x 400 points a cell
    sub = (np.arange(400) + 0.5) / 400 * 2.0
    for i, j in ((64, 89), (64, 90), (65, 89), (65, 90)):
        la, lo = np.meshgrid(lat[i] - 1.0 + sub, lon[j] - 1.0 + sub, indexing="ij")
        dens = np.exp(vmf.logpdf(latlon_to_xyz(la, lo).reshape(-1, 3))).reshape(la.shape)
        exact = (1 - w) * (dens * np.cos(np.deg2rad(la))).sum() * np.deg2rad(2.0 / 400) ** 2
        sd = math.sqrt(exact * (1 - exact) / m)
        assert abs(_mass(got)[i, j] - exact) < 4 * sd + 1e-3, (i, j, _mass(got)[i, j], exact)
    assert _mass(got).sum() == pytest.approx(1.0, abs=0.01)
    # what the chance rule avoids: every count as the cell's share, the floor counted twice in its sparse cells
    counts = np.histogram2d(*xyz_to_latlon(xyz), bins=[np.linspace(-90, 90, 91), np.linspace(-180, 180, 181)])[0]
    assert np.where(counts > 0, counts / m, _mass(point)).sum() > 1.07


def _field(kappa_max: float | None) -> VectorField:
    """An untrained field (its network gives 0): with a kernel base over three centres (weights 0.5, 0.3, 0.2)
    it follows their path to kernels ``kappa_max`` sharp; without one it is the uniform density."""
    torch.manual_seed(0)
    if kappa_max is None:
        return VectorField(hidden=8, layers=1).double()
    y = torch.tensor(latlon_to_xyz(np.array([12.3, -41.7, 55.1]), np.array([21.2, 101.9, -71.6])))
    base = KernelBase(y, torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)), None, "exponential",
                      kappa_max, 0.02)
    return VectorField(hidden=8, layers=1, base=base).double()


def _run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    return run


def _samples(field: torch.nn.Module, n: int, steps: int) -> np.ndarray:
    """The samples write_density writes to samples.csv, as it rounds them."""
    points = sample(field, n, generator=torch.Generator().manual_seed(0), steps=steps).numpy()
    return np.round(np.stack(xyz_to_latlon(points), axis=1), 5)


def _write(tmp_path, field: torch.nn.Module, n_lat: int, n_lon: int, **kw):
    """``write_density``'s facts, its density.npz and the exact values at the cell centres, computed apart."""
    config, run = TrainConfig(data="none.csv"), _run(tmp_path)
    facts = report.write_density(run, field, config, n_lat=n_lat, n_lon=n_lon, **kw)
    lat, lon = cell_centres(n_lat, n_lon)
    point = report._grid_log_prob(field, lat, lon, rtol=config.rtol, atol=config.atol, step_size=None,
                                  rows_per_chunk=15)
    return run, facts, run.read_npz(run.density), point


def test_a_smooth_flow_keeps_the_values_at_the_centres(tmp_path):
    field = _field(30.0)
    run, facts, z, point = _write(tmp_path, field, 12, 24, n_samples=40, sample_steps=8)
    np.testing.assert_array_equal(z["log_prob"], point)
    assert int(z["cell_means"]) == 0 and "point_log_prob" not in z and "cell_mean_samples" not in z
    assert facts["grid_mass"] == facts["map_mass"] == float(z["grid_mass"]) == float(z["map_mass"])
    assert facts["grid_mass"] > report.SHARP_MASS
    np.testing.assert_array_equal(np.loadtxt(run.samples, delimiter=",", skiprows=1), _samples(field, 40, 8))


def test_a_sharp_flow_is_drawn_as_cell_means(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "CELL_MEAN_SAMPLES", 4000)
    field = _field(1e7)
    run, facts, z, point = _write(tmp_path, field, 18, 36, n_samples=50, sample_steps=50)
    lat, lon = cell_centres(18, 36)
    np.testing.assert_array_equal(z["point_log_prob"], point)
    assert facts["grid_mass"] == float(z["grid_mass"]) == pytest.approx(_mass(point).sum())
    assert facts["grid_mass"] < report.SHARP_MASS
    assert int(z["cell_means"]) == 1 and int(z["cell_mean_samples"]) == 4000
    assert facts["map_mass"] == float(z["map_mass"]) == pytest.approx(_mass(z["log_prob"]).sum())
    assert facts["map_mass"] == pytest.approx(1.0, abs=0.03)
    # the three kernels' cells hold the most mass, in the order of their weights
    top = np.argsort(_mass(z["log_prob"]), axis=None)[::-1][:3]
    rows, cols = np.unravel_index(top, (18, 36))
    assert [(lat[r], lon[c]) for r, c in zip(rows, cols, strict=True)] == [(15.0, 25.0), (-45.0, 105.0),
                                                                          (55.0, -75.0)]
    # samples.csv: the first samples of the same generator, as without cell means
    np.testing.assert_array_equal(np.loadtxt(run.samples, delimiter=",", skiprows=1), _samples(field, 50, 50))
    # a preview stays a map of the values at the centres
    report.write_density(run, field, TrainConfig(data="none.csv"), n_lat=18, n_lon=36, n_samples=50, preview=True,
                         sample_steps=10)
    z = run.read_npz(run.density)
    assert int(z["cell_means"]) == 0 and "point_log_prob" not in z and float(z["map_mass"]) < report.SHARP_MASS


def test_the_results_page_says_when_the_map_is_cell_means(tmp_path, monkeypatch):
    demos = tmp_path / "demos"
    shutil.copytree(DEFAULT_DEMO_ROOT / "cities", demos / "cities")
    path = demos / "cities" / "density.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["grid_mass"] = np.array(0.021)  # as a flow sharper than a cell: its centres' values hold 2.1 %
    np.savez(path, **arrays, point_log_prob=arrays["log_prob"], cell_means=np.array(1),
             cell_mean_samples=np.array(20_000), map_mass=np.array(1.0004))
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DEMO_RUNS", str(demos))
    monkeypatch.setenv("CNFM_THREADS", "1")
    at = open_page("views/results.py", run="demo-cities")
    captions = [c.value for c in at.caption]
    (text,) = [c for c in captions if "narrower than a map cell" in c]
    assert "hold only 2.1% of it" in text and "20,000 samples" in text
    assert "Total mass of the map: 1.000" in text
    assert not any("Total mass on the grid" in c for c in captions)
