"""The path frames' times and the target's cell means, against closed forms and brute-force quadrature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnfm_core.config import TrainConfig
from cnfm_core.field import VectorField
from cnfm_core.frames import EVEN_SHARE, cell_mean_log_prob, compute_frames, frame_times
from cnfm_core.grid import cell_areas, cell_centres


class _StepPath:
    """A made-up target whose log density changes only for t in [a, b], linearly: ``log p_t(x) = s(t) z`` with
    ``s`` rising from 0 to 1 over [a, b] (not normalised; frame_times only looks at changes)."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def log_prob(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        s = ((t - self.a) / (self.b - self.a)).clamp(0.0, 1.0)
        return s * x[:, 2]


def test_frame_times_follow_the_change_of_the_target():
    a, b, n = 0.4, 0.6, 21
    times = frame_times(_StepPath(a, b), n, n_probe=1001)
    assert times[0] == 0.0 and times[-1] == 1.0 and np.all(np.diff(times) > 0) and times.size == n
    # Closed form: the change is uniform on [a, b] and zero elsewhere, so frame k sits where
    # (1 - e) * clip((t - a) / (b - a), 0, 1) + e * t = k / (n - 1).
    grid = np.linspace(0.0, 1.0, 100_001)
    spacing = (1 - EVEN_SHARE) * np.clip((grid - a) / (b - a), 0, 1) + EVEN_SHARE * grid
    expected = np.interp(np.linspace(0, 1, n), spacing, grid)
    np.testing.assert_allclose(times, expected, atol=2e-3)
    inside = np.sum((times > a) & (times < b))
    assert inside >= 0.7 * n  # most frames where the path changes, yet every gap is bounded
    assert np.diff(times).max() <= 1.0 / (EVEN_SHARE * (n - 1)) + 1e-9  # the even share bounds every gap


def test_frame_times_of_a_path_that_does_not_change_are_even():
    class Still:
        def log_prob(self, x, t):
            return torch.zeros(x.shape[0])

    np.testing.assert_allclose(frame_times(Still(), 11), np.linspace(0, 1, 11), atol=1e-12)


class _PolarVMF:
    """A von Mises-Fisher kernel at the north pole with concentration ``kappa``: ``p(x) = C exp(kappa z)``."""

    def __init__(self, kappa: float) -> None:
        self.kappa = kappa
        self.log_c = np.log(kappa) - np.log(2 * np.pi) - kappa - np.log1p(-np.exp(-2 * kappa))  # k / (4 pi sinh k)

    def log_prob(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return (self.kappa * x[:, 2].double() + self.log_c).float()

    def cell_means(self, lat: np.ndarray, n_lon: int) -> np.ndarray:
        """Closed form: over a cell between latitudes a < b the mean density is
        C (exp(k sin b) - exp(k sin a)) / (k (sin b - sin a)), as cos(lat) d(lat) = d(sin lat)."""
        half = 90.0 / lat.size
        sa, sb = np.sin(np.deg2rad(lat - half)), np.sin(np.deg2rad(lat + half))
        k = self.kappa
        log_mean = self.log_c + k * sb + np.log(-np.expm1(k * (sa - sb))) - np.log(k) - np.log(sb - sa)
        return np.repeat(log_mean[:, None], n_lon, axis=1)


@pytest.mark.parametrize("kappa", [5.0, 3000.0])
def test_cell_means_against_the_closed_form(kappa):
    path = _PolarVMF(kappa)
    lat, lon = cell_centres(30, 60)
    exact = path.cell_means(lat, lon.size)
    seen = exact > exact.max() - 15.0  # cells holding any of the mass
    converged = cell_mean_log_prob(path, 1.0, lat, lon, sub=48)
    np.testing.assert_allclose(converged[seen], exact[seen], atol=2e-3)  # the quadrature converges to it
    got = cell_mean_log_prob(path, 1.0, lat, lon, sub=3)
    centre = cell_mean_log_prob(path, 1.0, lat, lon, sub=1)  # the density at the cell centres
    if kappa == 5.0:  # smooth on the scale of a cell: cell means and centre values agree, and the mass is 1
        np.testing.assert_allclose(got[seen], exact[seen], atol=0.02)
        assert (np.exp(got) * cell_areas(lat, lon)).sum() == pytest.approx(1.0, abs=5e-3)
    else:  # a kernel of about 1 degree in 6-degree cells: the centres miss it, three points a side do not
        top = exact[-1, 0]
        assert abs(got[-1, 0] - top) < 0.3 and abs(centre[-1, 0] - top) > 1.0


def test_cell_means_of_the_uniform_density_are_exact():
    class Uniform:
        def log_prob(self, x, t):
            return torch.full((x.shape[0],), -float(np.log(4 * np.pi)))

    lat, lon = cell_centres(12, 24)
    np.testing.assert_allclose(cell_mean_log_prob(Uniform(), 0.0, lat, lon, sub=3), -np.log(4 * np.pi), atol=1e-6)


def test_compute_frames_shapes_and_the_ends_of_the_path(synthetic_csv):
    from cnfm_core.data import read_points

    torch.manual_seed(0)
    points = np.array(read_points(synthetic_csv).xyz[:200])
    config = TrainConfig(data=str(synthetic_csv), steps=1, hidden=16, layers=2, kappa_max=100.0, floor=0.0)
    field = VectorField(hidden=16, layers=2)
    f = compute_frames(field, config, points, n_frames=7, n_lat=6, n_lon=12, fine=(12, 24), n_samples=40,
                       n_trajectories=5)
    assert f.times.shape == (7,) and f.times[0] == 0 and f.times[-1] == 1
    assert f.target_log_prob.shape == f.model_log_prob.shape == f.residual.shape == (7, 6, 12)
    assert f.target_fine_log_prob.shape == (7, 12, 24) and f.fine_lat.shape == (12,) and f.fine_lon.shape == (24,)
    assert f.model_samples.shape == (7, 40, 2) and f.trajectories.shape == (7, 5, 2)
    # t = 0: both paths are the uniform density; the model samples are the uniform noise
    np.testing.assert_allclose(f.target_fine_log_prob[0], -np.log(4 * np.pi), atol=1e-5)
    np.testing.assert_allclose(f.model_log_prob[0], -np.log(4 * np.pi), atol=1e-5)
