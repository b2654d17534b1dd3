"""The target path without torch (cnfm_core.pathpreview) and its maps (cnfm_core.pathmaps).

References are independent of the code under test: torch's VMFMixturePath (another implementation of the same
path), torch's seeded permutation (cnfm_core.splits), mpmath at 40 digits, Gauss-Legendre quadrature on the
sphere, the closed-form mean resultant length of a vMF, and cell means by brute force on fine sub-grids.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from cnfm_core.data import PointSet
from cnfm_core.geo import LOG_AREA, latlon_to_xyz
from cnfm_core.pathmaps import path_map
from cnfm_core.pathpreview import PreviewPath, preview_path, schedule_kappa, training_rows, vmf_log_normalizer
from cnfm_core.paths import VMFMixturePath
from cnfm_core.schedules import make_schedule
from cnfm_core.splits import make_split

pytestmark = pytest.mark.usefixtures("single_thread")
FLOOR = 0.02


def clustered(n: int, seed: int, spread_deg: float = 3.0) -> np.ndarray:
    """``n`` unit vectors in a few clusters (some exact repeats), as Earth data are."""
    rng = np.random.default_rng(seed)
    centres_lat, centres_lon = rng.uniform(-70, 70, 6), rng.uniform(-180, 180, 6)
    k = rng.integers(0, 6, n)
    lat = np.clip(centres_lat[k] + rng.normal(0, spread_deg, n), -89.0, 89.0)
    lon = centres_lon[k] + rng.normal(0, spread_deg, n)
    xyz = latlon_to_xyz(lat, lon)
    xyz[: n // 10] = xyz[n // 10 : 2 * (n // 10)]  # a tenth repeats other points exactly
    return xyz


def sphere_quadrature(n_z: int = 120, n_lon: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and area weights on S^2: Gauss-Legendre in z = sin(lat) (dA = dz dlon), uniform in longitude."""
    z, wz = np.polynomial.legendre.leggauss(n_z)
    lon = (np.arange(n_lon) + 0.5) * (2.0 * np.pi / n_lon)
    r = np.sqrt(1.0 - z * z)
    x = np.stack(np.broadcast_arrays(r[:, None] * np.cos(lon), r[:, None] * np.sin(lon), z[:, None]), -1)
    return x.reshape(-1, 3), np.broadcast_to(wz[:, None] * (2.0 * np.pi / n_lon), x.shape[:2]).reshape(-1)


# ----------------------------------------------------------------------------- the path, against torch's
@pytest.mark.parametrize("kappa_max", [10.0, 3000.0, 3e5])
@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_log_prob_is_the_torch_paths(kappa_max: float, schedule: str) -> None:
    train = clustered(300, seed=1)
    ours = preview_path(train, kappa_max=kappa_max, schedule=schedule, floor=FLOOR)
    theirs = VMFMixturePath(torch.tensor(train), make_schedule(schedule, kappa_max), floor=FLOOR)
    x = np.concatenate(
        [
            latlon_to_xyz(
                np.random.default_rng(2).uniform(-90, 90, 200), np.random.default_rng(3).uniform(-180, 180, 200)
            ),
            train[:50],
        ]
    )
    for t in (0.0, 0.2, 0.6, 0.9, 1.0):
        expected = theirs.log_prob(torch.tensor(x), torch.tensor(t, dtype=torch.float64)).numpy()
        # float64 both; at kappa 3e5 the 1 - <x, y> of a point 1e-8 from a centre differs by rounding
        np.testing.assert_allclose(ours.log_prob(x, t), expected, rtol=0, atol=1e-9 * max(1.0, kappa_max / 1e3))


def test_the_schedules_are_torchs() -> None:
    t = np.linspace(0.0, 1.0, 11)
    for name in ("exponential", "linear"):
        expected = make_schedule(name, 3000.0).kappa(torch.tensor(t)).numpy()
        np.testing.assert_allclose(schedule_kappa(name, 3000.0, t), expected, rtol=1e-14, atol=1e-12)
    with pytest.raises(ValueError, match="exponential, linear"):
        schedule_kappa("cosine", 10.0, 0.5)


@pytest.mark.parametrize("kappa", [0.0, 1e-9, 0.01, 0.0499, 0.0501, 1.0, 50.0, 700.0, 1e6])
def test_the_normaliser_matches_mpmath(kappa: float) -> None:
    """log c(k) = log(k / (2 pi (1 - e^-2k))), and log(k / (4 pi sinh k)) = log c(k) - k."""
    with mpmath.workdps(40):
        k = mpmath.mpf(kappa)
        expected = -mpmath.log(4 * mpmath.pi) if kappa == 0 else mpmath.log(k / (4 * mpmath.pi * mpmath.sinh(k))) + k
    assert float(vmf_log_normalizer(kappa)) == pytest.approx(float(expected), rel=0, abs=1e-11)


@pytest.mark.parametrize("kappa_max", [1.0, 100.0])
def test_the_path_integrates_to_one_by_quadrature(kappa_max: float) -> None:
    x, w = sphere_quadrature()
    path = preview_path(clustered(100, seed=4), kappa_max=kappa_max, floor=FLOOR)
    for t in (0.0, 0.5, 1.0):
        assert float(np.exp(path.log_prob(x, t)) @ w) == pytest.approx(1.0, abs=1e-9)


def test_a_sharp_path_integrates_to_one_around_its_centre() -> None:
    """At kappa 3e4 the kernel is 0.3 degrees wide: Gauss-Legendre in z on the cap around it, and on the rest."""
    kappa = 3e4
    path = PreviewPath(np.array([[0.0, 0.0, 1.0]]), np.zeros(1), kappa_max=kappa, floor=FLOOR)
    split = 1.0 - 60.0 / kappa  # the cap z > split holds all but e^-60 of the kernel
    total = 0.0
    for lo, hi in ((-1.0, split), (split, 1.0)):
        z, wz = np.polynomial.legendre.leggauss(200)
        z, wz = lo + (hi - lo) * (z + 1) / 2, wz * (hi - lo) / 2
        r = np.sqrt(1.0 - z * z)
        x = np.stack([r, np.zeros_like(r), z], axis=1)  # the path is symmetric about the pole
        total += float(np.exp(path.log_prob(x, 1.0)) @ wz) * 2.0 * math.pi
    assert total == pytest.approx(1.0, abs=1e-9)


def test_t_zero_is_uniform_and_repeats_weigh_more() -> None:
    path = preview_path(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), kappa_max=50.0)
    assert path.centres.shape == (2, 3)
    np.testing.assert_allclose(sorted(np.exp(path.log_weights)), [1 / 3, 2 / 3], rtol=1e-14)
    np.testing.assert_allclose(path.log_prob(np.eye(3), 0.0), -LOG_AREA, atol=1e-15)


# ----------------------------------------------------------------------------- samples
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0, 5e3])
def test_samples_have_the_mean_resultant_length_of_a_vmf(kappa: float) -> None:
    """E<x, mu> = coth(k) - 1/k for one centre without a floor (within 5 standard errors)."""
    mu = latlon_to_xyz(np.array([35.0]), np.array([-120.0]))
    path = PreviewPath(mu, np.zeros(1), kappa_max=kappa, schedule="linear", floor=0.0)
    x = path.sample(1.0, 40_000, np.random.default_rng(5))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    cosines = x @ mu[0]
    expected = 1.0 / math.tanh(kappa) - 1.0 / kappa
    assert abs(cosines.mean() - expected) < 5.0 * cosines.std() / math.sqrt(cosines.size)


def test_samples_pick_centres_by_weight_and_the_floor_by_its_share() -> None:
    north, south = [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]
    path = preview_path(np.array([north, north, north, south]), kappa_max=1e4, floor=0.2)
    z = path.sample(1.0, 40_000, np.random.default_rng(6))[:, 2]
    near_north, near_south = (z > 0.99).mean(), (z < -0.99).mean()
    # kernels: 0.8 * 3/4 and 0.8 * 1/4 near the poles; the floor adds 0.2 * 0.005 (the caps' share of the area) to each
    assert near_north == pytest.approx(0.6 + 0.001, abs=0.01) and near_south == pytest.approx(0.2 + 0.001, abs=0.01)
    assert path.sample(0.0, 10, np.random.default_rng(7)).shape == (10, 3)


# ----------------------------------------------------------------------------- training rows, against torch's split
@pytest.mark.parametrize("split", ["standard", "dedup", "none"])
def test_the_training_rows_are_those_of_the_split(split: str) -> None:
    for n in (1, 9, 10, 11, 827, 6120):
        xyz = clustered(n, seed=n) if n > 1 else np.array([[0.0, 0.0, 1.0]])
        points = PointSet(xyz=xyz, lines=np.arange(2, n + 2), source="test")
        for seed in (0, 3):
            expected = make_split(points, mode=split, seed=seed).train
            np.testing.assert_array_equal(training_rows(xyz, split=split, seed=seed), expected)


# ----------------------------------------------------------------------------- maps
def cell_mean_by_brute_force(path: PreviewPath, t: float, lat: float, lon: float, cell: float, sub: int = 40) -> float:
    """log of the area-weighted mean of exp(log_prob) over ``sub x sub`` points of the cell centred at (lat, lon)."""
    offsets = ((np.arange(sub) + 0.5) / sub - 0.5) * cell
    la, lo = np.meshgrid(lat + offsets, lon + offsets, indexing="ij")
    weights = np.cos(np.deg2rad(la))
    values = np.exp(path.log_prob(latlon_to_xyz(la, lo).reshape(-1, 3), t)).reshape(la.shape)
    return float(np.log((values * weights).sum() / weights.sum()))


def map_mass(m) -> float:  # noqa: ANN001 (a PathMap)
    edges = np.sin(np.deg2rad(np.arange(m.lat.size + 1) * m.cell - 90.0))
    return float((np.exp(m.log_density) * (np.diff(edges)[:, None] * math.radians(m.cell))).sum())


@pytest.mark.parametrize("t", [0.0, 0.3, 0.6, 0.8, 1.0])
def test_a_map_holds_all_the_probability(t: float) -> None:
    """kappa from 0 to 3e5: wide kernels (values at cell centres), narrow ones (cell by cell), one near a pole."""
    train = np.concatenate([clustered(300, seed=8, spread_deg=1.0), latlon_to_xyz(np.array([88.5]), np.array([10.0]))])
    m = path_map(preview_path(train, kappa_max=3e5, floor=FLOOR), t)
    assert map_mass(m) == pytest.approx(1.0, abs=2e-3)


def test_wide_kernels_are_drawn_at_the_cell_centres() -> None:
    path = preview_path(clustered(300, seed=9), kappa_max=300.0, floor=FLOOR)
    for t in (0.3, 1.0):
        m = path_map(path, t)
        assert m.cell > 1.0
        exact = path.log_prob(latlon_to_xyz(*np.meshgrid(m.lat, m.lon, indexing="ij")).reshape(-1, 3), t)
        error = m.log_density - exact.reshape(m.log_density.shape)
        assert error.max() < 1e-3 and error.min() > -0.011  # float32, and kernels cut at 1 % of the floor


@pytest.mark.parametrize("kappa", [5e3, 1e5])
def test_narrow_kernels_fill_their_cells(kappa: float) -> None:
    """Cell means against brute force where the kernels are narrower than a cell, at cells picked above the floor,
    and near a pole (drawn by the midpoint rule there)."""
    train = np.concatenate([clustered(100, seed=10, spread_deg=1.0), latlon_to_xyz(np.array([89.3]), np.array([50.0]))])
    path = preview_path(train, kappa_max=kappa, schedule="linear", floor=FLOOR)
    m = path_map(path, 1.0)
    assert m.cell == 1.0
    rng = np.random.default_rng(11)
    bright = np.argwhere(m.log_density > math.log(FLOOR) - LOG_AREA + 0.5)
    picks = [*bright[rng.choice(len(bright), 12, replace=False)], (m.lat.size - 1, int(np.argmax(m.log_density[-1])))]
    for i, j in picks:
        expected = cell_mean_by_brute_force(path, 1.0, m.lat[i], m.lon[j], m.cell)
        assert m.log_density[i, j] == pytest.approx(expected, abs=0.06), (i, j)


def test_a_map_needs_a_floor() -> None:
    with pytest.raises(ValueError, match="floor"):
        path_map(preview_path(np.array([[0.0, 0.0, 1.0]]), kappa_max=10.0, floor=0.0), 1.0)
