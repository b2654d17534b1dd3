"""Contracts of cnfm_core.integrate: flows with exact solutions and log-likelihoods with known densities.

* A rotation v = omega x x: the flow is a rotation (Rodrigues' formula) and the density stays uniform.
* A gradient field v = c(t) (a - <a, x> x), divergence -2 c(t) <a, x>: its flow keeps the azimuth about
  ``a`` and moves the polar angle as d/dt log tan(theta/2) = -c(t). With s = tan^2(theta/2) and
  C = int_0^1 c, the pushed-forward uniform density is
  log q_1(x) = -log 4 pi + 2 C + 2 log((1 + s_1) / (1 + s_1 e^{2C})),
  and scipy's solve_ivp gives an independent numerical reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import random_unit_vectors
from manifold_helpers import Circle
from scipy.integrate import solve_ivp
from torch import nn

from cnfm_core.field import VectorField
from cnfm_core.integrate import (
    FIXED_STEP,
    NLLEstimate,
    density_grid,
    evaluate_nll,
    flow,
    log_likelihood,
    mean_sem,
    sample,
)
from cnfm_core.sphere import LOG_AREA, latlon_to_xyz, sample_uniform

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
OMEGA = [0.7, -1.2, 1.5]
AXIS = [0.48, -0.6, 0.64]  # unit vector


def sphere_points(n: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """The poles and an equator point, then ``n`` seeded uniform points."""
    special = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], dtype=dtype)
    x = torch.cat([special, random_unit_vectors(n, seed, dtype)])
    return x / x.norm(dim=-1, keepdim=True)


class RotationField(nn.Module):
    """v(t, x) = omega x x, divergence 0."""

    def __init__(self, omega: list[float]) -> None:
        super().__init__()
        self.register_buffer("omega", torch.tensor(omega, dtype=F64))
        self.dummy = nn.Parameter(torch.zeros((), dtype=F64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.linalg.cross(self.omega.expand_as(x), x, dim=-1)

    def velocity_and_divergence(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x, t), torch.zeros(x.shape[0], dtype=x.dtype)


Rate = Callable[[torch.Tensor], torch.Tensor]  # also applied to numpy scalars


def c_const(t: torch.Tensor) -> torch.Tensor:
    return 0.8 + 0.0 * t


def c_varying(t: torch.Tensor) -> torch.Tensor:
    return 0.5 + 1.5 * t * t  # integral over [0, 1] is 1


class GradientField(nn.Module):
    """v(t, x) = c(t) (a - <a, x> x) at x / |x|; Riemannian divergence -2 c(t) <a, x>."""

    def __init__(self, a: list[float], c: Rate) -> None:
        super().__init__()
        self.register_buffer("a", torch.tensor(a, dtype=F64))
        self.c = c
        self.dummy = nn.Parameter(torch.zeros((), dtype=F64))

    def velocity_and_divergence(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x / x.norm(dim=-1, keepdim=True)
        c = self.c(torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]))
        ax = x @ self.a
        return c[:, None] * (self.a - ax[:, None] * x), -2.0 * c * ax

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.velocity_and_divergence(x, t)[0]


def rodrigues(x: torch.Tensor, omega: list[float], t: float) -> torch.Tensor:
    w = torch.tensor(omega, dtype=x.dtype)
    angle = float(w.norm()) * t
    k = w / w.norm()
    kx = torch.linalg.cross(k.expand_as(x), x, dim=-1)
    return x * math.cos(angle) + kx * math.sin(angle) + k * (x @ k)[:, None] * (1 - math.cos(angle))


def closed_form_log_q1(x: np.ndarray, a: np.ndarray, big_c: float) -> np.ndarray:
    cos1 = np.clip(x @ a, -1.0, 1.0)
    s1 = (1.0 - cos1) / (1.0 + cos1)
    s0 = s1 * math.exp(2.0 * big_c)
    return -LOG_AREA + 2.0 * big_c + 2.0 * np.log((1.0 + s1) / (1.0 + s0))


def solve_ivp_log_q1(x1: np.ndarray, a: np.ndarray, c: Rate) -> tuple[np.ndarray, np.ndarray]:
    """log q_1(x1) and x_0 by integrating (x, int div) backwards from t = 1 with scipy (rtol 1e-10)."""
    def rhs(t: float, z: np.ndarray) -> np.ndarray:
        x = z[:3] / np.linalg.norm(z[:3])
        ct = float(c(np.float64(t)))
        ax = float(a @ x)
        return np.concatenate([ct * (a - ax * x), [-2.0 * ct * ax]])

    logs, ends = [], []
    for xi in x1:
        sol = solve_ivp(rhs, (1.0, 0.0), np.concatenate([xi, [0.0]]), method="DOP853", rtol=1e-10, atol=1e-12)
        z0 = sol.y[:, -1]
        logs.append(z0[3] - LOG_AREA)
        ends.append(z0[:3] / np.linalg.norm(z0[:3]))
    return np.array(logs), np.stack(ends)


def random_vector_field(seed: int) -> VectorField:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        field = VectorField(hidden=16, layers=2, frequencies=2)
        nn.init.normal_(field.output.weight, std=0.3)
    return field


# ----------------------------------------------------------------------------- zero field
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_zero_field_is_uniform_and_static(dtype: torch.dtype) -> None:
    field = VectorField(hidden=8, layers=1).to(dtype)
    x = sphere_points(40, 1, dtype)
    for method in FIXED_STEP:
        torch.testing.assert_close(flow(field, x, steps=5, method=method), x, rtol=0, atol=1e-7)
    res = log_likelihood(field, x)
    assert res.log_prob.shape == (43,) and res.log_prob.dtype == dtype
    assert (res.log_prob.double() + math.log(4 * math.pi)).abs().max() < 1e-6
    # dopri5's dense-output interpolation moves even a static state by a few float32 ulps
    torch.testing.assert_close(res.x0, x, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert res.nfe > 0 and res.method == "dopri5"


def test_sample_of_zero_field_is_the_uniform_draw() -> None:
    field = VectorField(hidden=8, layers=1)
    s = sample(field, 500, generator=torch.Generator().manual_seed(3), steps=4)
    u = sample_uniform(500, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(s, u, rtol=0, atol=1e-6)


def test_samples_are_unit_vectors_and_seeded() -> None:
    field = random_vector_field(4)
    s = sample(field, 300, generator=torch.Generator().manual_seed(5), steps=10)
    assert s.shape == (300, 3) and s.dtype == torch.float32
    assert (s.norm(dim=-1) - 1).abs().max() < 1e-6
    assert torch.equal(s, sample(field, 300, generator=torch.Generator().manual_seed(5), steps=10))
    # the field moved the points
    u = sample_uniform(300, generator=torch.Generator().manual_seed(5))
    assert (s - u).norm(dim=-1).max() > 1e-2


# ----------------------------------------------------------------------------- rotation
def test_rotation_flow_matches_rodrigues() -> None:
    field = RotationField(OMEGA)
    x = sphere_points(50, 6)
    end = flow(field, x, steps=50, method="rk4")
    torch.testing.assert_close(end, rodrigues(x, OMEGA, 1.0), rtol=0, atol=1e-6)
    assert (end.norm(dim=-1) - 1).abs().max() < 1e-14
    # Euler with projection is consistent but far less accurate
    err_euler = float((flow(field, x, steps=50, method="euler") - rodrigues(x, OMEGA, 1.0)).abs().max())
    assert 1e-5 < err_euler < 5e-2
    # partial intervals and backwards in time
    part = flow(field, x, t0=0.2, t1=0.7, steps=30)
    torch.testing.assert_close(part, rodrigues(x, OMEGA, 0.5), rtol=0, atol=1e-6)
    torch.testing.assert_close(flow(field, end, t0=1.0, t1=0.0, steps=50), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("steps", "keep"), [(50, 11), (50, 4), (7, 2)])
def test_rotation_trajectory(steps: int, keep: int) -> None:
    field = RotationField(OMEGA)
    x = sphere_points(20, 7)
    traj = flow(field, x, steps=steps, keep=keep)
    assert traj.shape == (keep, 23, 3)
    assert torch.equal(traj[0], x)
    total = -(-steps // (keep - 1)) * (keep - 1)  # steps rounded up to a multiple of keep - 1
    assert torch.equal(traj[-1], flow(field, x, steps=total))
    atol = 1e-6 if total >= 40 else 1e-3
    for k, tk in enumerate(np.linspace(0.0, 1.0, keep)):
        torch.testing.assert_close(traj[k], rodrigues(x, OMEGA, float(tk)), rtol=0, atol=atol)


def test_rotation_likelihood_is_uniform() -> None:
    field = RotationField(OMEGA)
    x = sphere_points(30, 8)
    res = log_likelihood(field, x, rtol=1e-10, atol=1e-10)
    assert (res.log_prob + LOG_AREA).abs().max() < 1e-12
    torch.testing.assert_close(res.x0, rodrigues(x, OMEGA, -1.0), rtol=0, atol=1e-8)


def test_flow_rejects_bad_arguments() -> None:
    field = RotationField(OMEGA)
    x = sphere_points(2, 9)
    with pytest.raises(ValueError, match="euler.*rk4"):
        flow(field, x, method="midpoint")
    with pytest.raises(ValueError):
        flow(field, x, keep=1)


# ----------------------------------------------------------------------------- a flow with a known density
@pytest.mark.parametrize(("c", "big_c"), [(c_const, 0.8), (c_varying, 1.0)], ids=["const", "varying"])
def test_gradient_flow_likelihood_matches_closed_form_and_solve_ivp(c: Rate, big_c: float) -> None:
    a = np.array(AXIS)
    assert abs(np.linalg.norm(a) - 1) < 1e-15
    field = GradientField(AXIS, c)
    x = torch.cat([sphere_points(12, 10), torch.tensor([AXIS, [-v for v in AXIS]], dtype=F64)])
    x[-1] = x[-1] + torch.tensor([1e-3, 0.0, 0.0], dtype=F64)  # near (not at) the repelling antipode
    x = x / x.norm(dim=-1, keepdim=True)
    ref_closed = closed_form_log_q1(x.numpy(), a, big_c)
    ref_ivp, x0_ivp = solve_ivp_log_q1(x.numpy(), a, c)
    np.testing.assert_allclose(ref_ivp, ref_closed, rtol=0, atol=1e-8)  # the two references agree

    tight = log_likelihood(field, x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tight.log_prob.numpy(), ref_ivp, rtol=0, atol=1e-7)
    np.testing.assert_allclose(tight.x0.numpy(), x0_ivp, rtol=0, atol=1e-7)
    default = log_likelihood(field, x)  # the default tolerances are good to 1e-4
    np.testing.assert_allclose(default.log_prob.numpy(), ref_ivp, rtol=0, atol=1e-4)
    # the density is far from uniform, so the comparison has teeth
    assert np.ptp(ref_closed) > 1.0
    # batching does not change the result
    batched = log_likelihood(field, x, rtol=1e-10, atol=1e-10, batch_size=5)
    np.testing.assert_allclose(batched.log_prob.numpy(), tight.log_prob.numpy(), rtol=0, atol=1e-8)


def test_fixed_step_likelihood_through_solver_options() -> None:
    field = GradientField(AXIS, c_varying)
    x = sphere_points(10, 11)
    res = log_likelihood(field, x, method="rk4", options={"step_size": 0.02})
    assert res.method == "rk4" and res.nfe == 4 * 50
    expected = closed_form_log_q1(x.numpy(), np.array(AXIS), 1.0)
    np.testing.assert_allclose(res.log_prob.numpy(), expected, rtol=0, atol=1e-6)


def test_gradient_flow_density_integrates_to_one() -> None:
    # the closed form used above is a probability density (quadrature in z = <x, a>)
    z, wz = np.polynomial.legendre.leggauss(200)
    x = np.stack([np.sqrt(1 - z * z), np.zeros_like(z), z], axis=1)
    for big_c in (0.8, 1.0):
        q = np.exp(closed_form_log_q1(x, np.array([0.0, 0.0, 1.0]), big_c))
        assert float(2 * np.pi * q @ wz) == pytest.approx(1.0, abs=1e-10)


# ----------------------------------------------------------------------------- density grids
def test_density_grid_of_zero_field() -> None:
    field = VectorField(hidden=8, layers=1)
    grid = density_grid(field, n_lat=6, n_lon=8)
    np.testing.assert_allclose(grid.lat, [-75.0, -45.0, -15.0, 15.0, 45.0, 75.0])
    np.testing.assert_allclose(grid.lon, [-157.5, -112.5, -67.5, -22.5, 22.5, 67.5, 112.5, 157.5])
    assert grid.log_prob.shape == (6, 8)
    np.testing.assert_allclose(grid.log_prob, -math.log(4 * math.pi), atol=1e-6)
    default = density_grid(field)
    assert default.lat.shape == (90,) and default.lon.shape == (180,) and default.log_prob.shape == (90, 180)
    np.testing.assert_allclose(np.diff(default.lat), 2.0)
    assert default.lat[0] == pytest.approx(-89.0) and default.lon[-1] == pytest.approx(179.0)


def test_density_grid_orientation_against_closed_form() -> None:
    # log_prob[i, j] is at (lat[i], lon[j]): compare a non-uniform density with its closed form
    field = GradientField(AXIS, c_const)
    grid = density_grid(field, n_lat=7, n_lon=9, rtol=1e-9, atol=1e-9)
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    x = latlon_to_xyz(torch.tensor(la, dtype=F64), torch.tensor(lo, dtype=F64)).numpy()
    expected = closed_form_log_q1(x.reshape(-1, 3), np.array(AXIS), 0.8).reshape(7, 9)
    np.testing.assert_allclose(grid.log_prob, expected, rtol=0, atol=1e-6)


def test_density_grid_is_the_sphere_s_only() -> None:
    with pytest.raises(ValueError, match="sphere"):
        density_grid(VectorField(hidden=8, layers=1, manifold=Circle()), n_lat=4, n_lon=4)


# ----------------------------------------------------------------------------- the test-set NLL
def test_evaluate_nll_against_closed_form() -> None:
    field = GradientField(AXIS, c_const)
    x = sphere_points(40, 12)
    nll = -closed_form_log_q1(x.numpy(), np.array(AXIS), 0.8)
    x_file = x.numpy().copy()
    x_file.flags.writeable = False  # points read from a file are read-only
    est = evaluate_nll(field, x_file, rtol=1e-9, atol=1e-9)
    assert isinstance(est, NLLEstimate) and est.n == 43 and est.solver == "dopri5"
    assert (est.rtol, est.atol) == (1e-9, 1e-9) and est.nfe > 0 and est.seconds >= 0
    assert est.mean == pytest.approx(float(nll.mean()), abs=1e-7)
    assert est.sem == pytest.approx(float(nll.std(ddof=1) / math.sqrt(len(nll))), rel=1e-6)
    assert est.sem > 0.01  # a non-uniform density: the points' NLLs differ
    single = evaluate_nll(field, x[:1])
    assert single.n == 1 and single.sem == 0.0
    assert mean_sem(np.array([1.0, 3.0])) == (2.0, 1.0)
    with pytest.raises(ValueError, match="at least one point"):
        evaluate_nll(field, np.zeros((0, 3)))
