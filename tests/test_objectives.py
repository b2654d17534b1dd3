"""Contracts of cnfm_core.objectives: the geodesic interpolant, a zero PPD residual for a field that
generates the path exactly, a zero RFM loss for the exact conditional velocity, and the name registry.

The generating field (one vMF centre at the north pole mu, so p_t depends only on z = <x, mu>):
the tangent field v = g(t, z) (mu - z x) moves z at the rate dz/dt = g (1 - z^2), and mass
conservation through the circle at height z gives g (1 - z^2) 2 pi p_t(z) = d/dt M_t(z), with the cap
mass M_t(z) = int_z^1 p_t(s) 2 pi ds = (1 - e^{-k u}) / (1 - e^{-2k}), u = 1 - z, k = kappa(t).
Differentiating in k and dividing, with D = 1 - e^{-2k},

    g = k'(t) (u - h(u)) / (k u (2 - u)),   h(u) = 2 (e^{-k (2 - u)} - e^{-2k}) / D.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import random_unit_vectors as sphere_points
from torch import nn

from cnfm_core.field import VectorField
from cnfm_core.objectives import OBJECTIVES, PPD, RFM, ObjectiveValue, geodesic_interpolant, make_objective
from cnfm_core.paths import ExponentialSchedule, VMFMixturePath
from cnfm_core.sphere import sample_uniform

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
NORTH = [0.0, 0.0, 1.0]
KAPPA_MAX = 50.0


def angle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Great-circle distance of unit vectors as 2 atan2(|x - y|, |x + y|) (accurate near 0 and pi)."""
    return 2.0 * torch.atan2((x - y).norm(dim=-1), (x + y).norm(dim=-1))


def autograd_divergence(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        return sum(torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(3))


class ZonalGeneratingField(nn.Module):
    """The exact generating field of the one-centre vMF path at the north pole (see the module docstring)."""

    def __init__(self, kappa_max: float, scale: float = 1.0) -> None:
        super().__init__()
        self.a = math.log1p(kappa_max)
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros((), dtype=F64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x / x.norm(dim=-1, keepdim=True)
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        k = torch.expm1(self.a * t)  # kappa(t) = (1 + kappa_max)^t - 1
        dk = self.a * torch.exp(self.a * t)
        z = x[:, 2]
        u = 1.0 - z
        d = -torch.expm1(-2.0 * k)
        h = 2.0 * (torch.exp(-k * (2.0 - u)) - torch.exp(-2.0 * k)) / d
        g = self.scale * dk * (u - h) / (k * u * (2.0 - u))
        mu = torch.tensor(NORTH, dtype=x.dtype)
        return g[:, None] * (mu - z[:, None] * x)

    def velocity_and_divergence(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x, t).detach(), autograd_divergence(self, x, t).detach()


class ConditionalVelocity(nn.Module):
    """For data = {y}: v(t, x) = log_x(y) / (1 - t), the velocity of the geodesic through x to y at t = 1."""

    def __init__(self, y: torch.Tensor) -> None:
        super().__init__()
        self.y = y
        self.dummy = nn.Parameter(torch.zeros((), dtype=y.dtype))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        w = self.y - (x @ self.y)[:, None] * x
        sin = w.norm(dim=-1, keepdim=True)
        theta = torch.atan2(sin, (x @ self.y)[:, None])
        return theta * w / sin / (1.0 - t)[:, None]


def one_centre_path() -> VMFMixturePath:
    return VMFMixturePath(torch.tensor([NORTH], dtype=F64), ExponentialSchedule(KAPPA_MAX))


# ----------------------------------------------------------------------------- geodesic interpolant
def _pairs(dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random pairs, plus a near-antipodal and a very close pair, and a per-pair tolerance.

    For the near-antipodal pair (sin theta ~ 3e-6) the tangent direction is ill-conditioned and the
    interpolant loses about eps / sin(theta) ~ 1e-11, so that pair gets a looser tolerance.
    """
    x0 = sphere_points(60, 1, dtype)
    x1 = sphere_points(60, 2, dtype)
    g = torch.Generator().manual_seed(3)
    step = torch.tensor([1e-6, -2e-6, 3e-6], dtype=dtype)
    near = x0[:2] + step * torch.randn(2, 1, generator=g, dtype=dtype)
    x1 = torch.cat([x1, -near[:1] / near[:1].norm(), near[1:] / near[1:].norm()])
    x0 = torch.cat([x0, x0[:2]])
    tol = torch.full((62,), 1e-12, dtype=dtype)
    tol[60] = 1e-10
    return x0, x1, tol


def assert_within(a: torch.Tensor, b: torch.Tensor, tol: torch.Tensor) -> None:
    err = (a - b).abs()
    if err.dim() > 1:
        err = err.amax(dim=-1)
    assert (err <= tol).all(), float((err / tol).max())


def test_geodesic_interpolant_endpoints_and_sphere() -> None:
    x0, x1, tol = _pairs()
    n = x0.shape[0]
    xt0, _ = geodesic_interpolant(x0, x1, torch.zeros(n, dtype=F64))
    xt1, _ = geodesic_interpolant(x0, x1, torch.ones(n, dtype=F64))
    torch.testing.assert_close(xt0, x0, rtol=0, atol=1e-15)
    assert_within(xt1, x1, tol)
    t = torch.rand(n, generator=torch.Generator().manual_seed(4), dtype=F64)
    xt, ut = geodesic_interpolant(x0, x1, t)
    assert_within(xt.norm(dim=-1), torch.ones(n, dtype=F64), tol / 10)
    assert_within((xt * ut).sum(-1), torch.zeros(n, dtype=F64), tol)  # velocity is tangent
    # x_t lies on the minimising great circle at the fraction t of the way
    theta = angle(x0, x1)
    assert_within(angle(x0, xt), t * theta, tol)
    assert_within(angle(xt, x1), (1 - t) * theta, tol)


def test_geodesic_interpolant_constant_speed_and_velocity() -> None:
    x0, x1, tol = _pairs()
    n = x0.shape[0]
    theta = angle(x0, x1)
    h = 1e-6
    for tv in (0.0, 0.2, 0.5, 0.999):
        t = torch.full((n,), tv, dtype=F64)
        _, ut = geodesic_interpolant(x0, x1, t)
        assert_within(ut.norm(dim=-1), theta, tol)
        fd = (geodesic_interpolant(x0, x1, t + h)[0] - geodesic_interpolant(x0, x1, t - h)[0]) / (2 * h)
        torch.testing.assert_close(ut, fd, rtol=0, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_geodesic_interpolant_coincident_points(dtype: torch.dtype) -> None:
    x0 = torch.cat([sphere_points(5, 5, dtype), torch.tensor([NORTH], dtype=dtype)])
    t = torch.linspace(0, 1, 6, dtype=dtype)
    xt, ut = geodesic_interpolant(x0, x0.clone(), t)
    assert torch.isfinite(xt).all() and torch.isfinite(ut).all()
    torch.testing.assert_close(xt, x0, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-15)
    assert ut.abs().max() < (1e-6 if dtype == torch.float32 else 1e-15)


# ----------------------------------------------------------------------------- PPD
def test_generating_field_is_tangent_and_regular() -> None:
    field = ZonalGeneratingField(KAPPA_MAX)
    x = sphere_points(100, 6)
    t = torch.full((100,), 0.5, dtype=F64)
    v, div = field.velocity_and_divergence(x, t)
    assert (v * x).sum(-1).abs().max() < 1e-13
    assert torch.isfinite(v).all() and torch.isfinite(div).all()
    # mass moves towards the centre as kappa grows: dz/dt = <v, mu> > 0 away from the poles
    assert (v[:, 2] > 0).all()


def test_ppd_residual_vanishes_for_the_generating_field() -> None:
    path = one_centre_path()
    g = torch.Generator().manual_seed(7)
    t = 0.05 + 0.9 * torch.rand(400, generator=g, dtype=F64)
    x = path.sample(t, generator=g)
    ppd = PPD(path)
    r = ppd.residual(ZonalGeneratingField(KAPPA_MAX), x, t)
    scale = float(path.quantities(x, t).dlog_prob_dt.abs().max())
    assert scale > 1.0
    assert r.abs().max() < 1e-9 * scale  # float64 reaches ~1e-15 relative
    # a wrong field leaves a clearly non-zero residual: zero field, and the right field 1% too fast
    r0 = ppd.residual(VectorField(hidden=8, layers=1).double(), x, t)
    torch.testing.assert_close(r0, path.quantities(x, t).dlog_prob_dt, rtol=0, atol=1e-12)
    assert r0.abs().mean() > 0.1 * scale
    r1 = ppd.residual(ZonalGeneratingField(KAPPA_MAX, scale=1.01), x, t)
    assert r1.abs().max() > 1e-4 * scale


@pytest.mark.parametrize("ell", [1, 2])
def test_ppd_loss(ell: int) -> None:
    path = one_centre_path()
    ppd = PPD(path, ell=ell)
    exact = ppd(ZonalGeneratingField(KAPPA_MAX), 256, generator=torch.Generator().manual_seed(8))
    assert isinstance(exact, ObjectiveValue) and exact.loss.dim() == 0
    assert float(exact.loss) < (1e-6 if ell == 1 else 1e-12)
    wrong = ppd(VectorField(hidden=8, layers=1).double(), 256, generator=torch.Generator().manual_seed(8))
    assert float(wrong.loss.detach()) > 0.1 and wrong.residual_ms > 0.1
    if ell == 2:
        assert wrong.residual_ms == pytest.approx(float(wrong.loss.detach()), rel=1e-12)
    # the loss is differentiable in the field's parameters
    field = VectorField(hidden=8, layers=2).double()
    ppd(field, 64, generator=torch.Generator().manual_seed(9)).loss.backward()
    assert field.output.weight.grad.abs().sum() > 0


def test_ppd_rejects_bad_ell() -> None:
    with pytest.raises(ValueError):
        PPD(one_centre_path(), ell=3)


# ----------------------------------------------------------------------------- RFM
def test_rfm_loss_of_the_exact_conditional_velocity_is_zero() -> None:
    y = torch.tensor([[0.36, 0.48, 0.8]], dtype=F64)
    rfm = RFM(y)
    exact = rfm(ConditionalVelocity(y[0]), 2048, generator=torch.Generator().manual_seed(10))
    assert float(exact.loss) < 1e-20
    # for the zero field the loss is E |u_t|^2 = E theta^2 with theta the angle from a uniform point to y:
    # int_0^pi theta^2 sin(theta) / 2 dtheta = (pi^2 - 4) / 2
    zero = rfm(VectorField(hidden=8, layers=1).double(), 20_000, generator=torch.Generator().manual_seed(11))
    assert float(zero.loss.detach()) == pytest.approx((math.pi**2 - 4) / 2, rel=0.03)
    assert zero.residual_ms == pytest.approx(float(zero.loss.detach()))


def test_rfm_uses_the_data() -> None:
    # with two data points the single-point conditional field is wrong for about half the batch
    data = torch.tensor([[0.36, 0.48, 0.8], [0.0, -0.6, -0.8]], dtype=F64)
    value = RFM(data)(ConditionalVelocity(data[0]), 512, generator=torch.Generator().manual_seed(12))
    assert float(value.loss) > 0.1


@pytest.mark.parametrize("floor", [0.0, 0.25])
def test_rfm_floor_draws_end_points_from_the_uniform(floor: float) -> None:
    # The field sees x_t; for t near 1, x_t is the end point x_1. With one data point y, x_1 is y except for
    # a uniform fraction `floor`, which lands outside a small cap around y (area share 1e-3) almost always.
    y = torch.tensor([[0.36, 0.48, 0.8]], dtype=F64)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def spy(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append((x, t))
        return torch.zeros_like(x)

    RFM(y, floor=floor)(spy, 200_000, generator=torch.Generator().manual_seed(14))
    x, t = seen[0]
    late = t > 0.999
    away = float(((x[late] @ y[0]) < 0.998).double().mean())  # x_t is within 0.001 pi rad of x_1 there
    n = int(late.sum())
    expected = floor * (1 - 0.001)
    assert abs(away - expected) < 5 * math.sqrt(max(expected * (1 - expected), 1e-4) / n) + 1e-9, (away, n)


def test_rfm_rejects_bad_floor() -> None:
    with pytest.raises(ValueError, match="floor"):
        RFM(torch.tensor([[0.0, 0.0, 1.0]]), floor=1.0)


# ----------------------------------------------------------------------------- registry
def test_make_objective() -> None:
    data = sample_uniform(10, dtype=F64, generator=torch.Generator().manual_seed(13))
    path = VMFMixturePath(data, ExponentialSchedule(10.0))
    assert set(OBJECTIVES) == {"ppd", "rfm"}
    ppd = make_objective("ppd", data=data, path=path, ell=1)
    assert isinstance(ppd, PPD) and ppd.ell == 1 and ppd.path is path
    rfm = make_objective("rfm", data=data, path=None)
    assert isinstance(rfm, RFM) and torch.equal(rfm.data, data)
    with pytest.raises(ValueError) as err:
        make_objective("cfm", data=data, path=path)
    assert "ppd" in str(err.value) and "rfm" in str(err.value) and "cfm" in str(err.value)
    with pytest.raises(ValueError, match="path"):
        make_objective("ppd", data=data, path=None)
    floored = make_objective("rfm", data=data, path=None, floor=0.1)
    assert isinstance(floored, RFM) and floored.floor == 0.1
    with pytest.raises(ValueError, match="floor"):  # PPD's floor is the path's; a different one is a mistake
        make_objective("ppd", data=data, path=path, floor=0.1)
    assert np.isfinite(float(ppd(VectorField(hidden=8, layers=1).double(), 8).loss.detach()))
