"""Contracts of cnfm_core.sphere: coordinates, projections, exponential map, distance, sampling, frames."""

from __future__ import annotations

import math

import geoopt
import numpy as np
import pytest
import torch
from conftest import random_unit_vectors as random_points

from cnfm_core.sphere import (
    LOG_AREA,
    dist,
    expmap,
    latlon_to_xyz,
    proju,
    projx,
    sample_uniform,
    tangent_frame,
    uniform_log_prob,
    xyz_to_latlon,
)

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def random_tangents(x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return u - (u * x).sum(-1, keepdim=True) * x


def wrapped_deg(a: torch.Tensor) -> torch.Tensor:
    """Angular difference in degrees, in [-180, 180)."""
    return torch.remainder(a + 180.0, 360.0) - 180.0


# ----------------------------------------------------------------------------- coordinates
@pytest.mark.parametrize("dtype", DTYPES)
def test_latlon_xyz_round_trip(dtype: torch.dtype) -> None:
    lat = torch.tensor([0.0, 10.0, -45.5, 89.0, -89.0, 33.3, 0.0, 60.0], dtype=dtype)
    lon = torch.tensor([0.0, 180.0, -180.0, 179.9, -179.9, -120.0, 90.0, -0.5], dtype=dtype)
    x = latlon_to_xyz(lat, lon)
    assert x.shape == (8, 3) and x.dtype == dtype
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(8, dtype=dtype), atol=TOL[dtype], rtol=0)
    lat2, lon2 = xyz_to_latlon(x)
    tol_deg = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(lat2, lat, atol=tol_deg, rtol=0)
    # lon +-180 name the same meridian: compare on the circle.
    assert wrapped_deg(lon2 - lon).abs().max() < tol_deg
    assert ((lon2 > -180.0) & (lon2 <= 180.0)).all(), "documented range is (-180, 180]"


@pytest.mark.parametrize("dtype", DTYPES)
def test_latlon_known_points_and_poles(dtype: torch.dtype) -> None:
    lat = torch.tensor([90.0, -90.0, 0.0, 0.0, 0.0], dtype=dtype)
    lon = torch.tensor([37.0, -150.0, 0.0, 90.0, 180.0], dtype=dtype)
    expected = torch.tensor(
        [[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, 1, 0], [-1, 0, 0]], dtype=dtype
    )
    x = latlon_to_xyz(lat, lon)
    torch.testing.assert_close(x, expected, atol=TOL[dtype], rtol=0)
    lat2, _ = xyz_to_latlon(x)
    # atan2(z, hypot(x, y)) keeps the poles exact.
    assert lat2[0] == 90.0 and lat2[1] == -90.0
    # Exact axis vectors, incl. signed zeros that make atan2 return -pi.
    axes = torch.tensor([[0.0, 0.0, 1.0], [-1.0, -0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=dtype)
    la, lo = xyz_to_latlon(axes)
    torch.testing.assert_close(la, torch.tensor([90.0, 0.0, 0.0, 0.0], dtype=dtype))
    torch.testing.assert_close(lo[1:], torch.tensor([180.0, 180.0, -90.0], dtype=dtype))


def test_latlon_broadcasts_over_grids() -> None:
    lat, lon = torch.meshgrid(torch.linspace(-80, 80, 5, dtype=F64), torch.linspace(-170, 170, 7, dtype=F64),
                              indexing="ij")
    x = latlon_to_xyz(lat, lon)
    assert x.shape == (5, 7, 3)
    la, lo = xyz_to_latlon(x)
    torch.testing.assert_close(la, lat)
    torch.testing.assert_close(lo, lon)


def test_xyz_to_latlon_accepts_unnormalised_points() -> None:
    x = latlon_to_xyz(torch.tensor([12.5], dtype=F64), torch.tensor([-77.0], dtype=F64))
    la, lo = xyz_to_latlon(3.7 * x)
    torch.testing.assert_close(la, torch.tensor([12.5], dtype=F64))
    torch.testing.assert_close(lo, torch.tensor([-77.0], dtype=F64))


# ----------------------------------------------------------------------------- projections
@pytest.mark.parametrize("dtype", DTYPES)
def test_projx_unit_norm_and_idempotent(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 3, generator=g, dtype=dtype) * torch.logspace(-3, 3, 200, dtype=dtype)[:, None]
    x = projx(a)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(200, dtype=dtype), atol=TOL[dtype], rtol=0)
    torch.testing.assert_close(projx(x), x, atol=TOL[dtype], rtol=0)
    # same direction as the input
    torch.testing.assert_close(x, a / a.norm(dim=-1, keepdim=True), atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_proju_tangent_and_idempotent(dtype: torch.dtype) -> None:
    x = random_points(200, 1, dtype)
    u = torch.randn(200, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    p = proju(x, u)
    assert (p * x).sum(-1).abs().max() < TOL[dtype]
    torch.testing.assert_close(proju(x, p), p, atol=TOL[dtype], rtol=0)
    # the removed part is normal: u - p is parallel to x
    torch.testing.assert_close(u - p, (u * x).sum(-1, keepdim=True) * x, atol=TOL[dtype], rtol=0)


# ----------------------------------------------------------------------------- exponential map, distance
def test_expmap_on_sphere_and_distance_equals_norm() -> None:
    x = random_points(300, 3)
    u = random_tangents(x, 4)
    norms = torch.logspace(-6, math.log10(3.1), 300, dtype=F64)
    u = u / u.norm(dim=-1, keepdim=True) * norms[:, None]
    y = expmap(x, u)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(300, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(dist(x, y), norms, rtol=1e-9, atol=1e-15)
    # exp_x(u) = cos|u| x + sin|u| u/|u| (closed form)
    n = norms[:, None]
    torch.testing.assert_close(y, torch.cos(n) * x + torch.sin(n) * u / n, atol=1e-12, rtol=0)


def test_expmap_zero_is_identity() -> None:
    x = random_points(10, 5)
    torch.testing.assert_close(expmap(x, torch.zeros_like(x)), x, atol=1e-15, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dist_properties(dtype: torch.dtype) -> None:
    x, y = random_points(100, 6, dtype), random_points(100, 7, dtype)
    d = dist(x, y)
    torch.testing.assert_close(d, dist(y, x), atol=TOL[dtype], rtol=0)
    assert ((d >= 0) & (d <= math.pi)).all()
    assert dist(x, x).abs().max() < TOL[dtype]
    torch.testing.assert_close(dist(x, -x), torch.full((100,), math.pi, dtype=dtype), atol=1e-3, rtol=0)
    ref = torch.acos((x.double() * y.double()).sum(-1).clamp(-1, 1))
    torch.testing.assert_close(d.double(), ref, atol=10 * TOL[dtype], rtol=0)


@pytest.mark.parametrize("angle", [1e-3, 1e-5, 1e-7])
def test_dist_float32_resolves_tiny_angles_where_geoopt_cannot(angle: float) -> None:
    # Generic pairs at a tiny angle, built in float64 and rounded to float32. The truth is the float64
    # angle of the *rounded* points (rounding moves each point by up to ~6e-8), so only the float32
    # arithmetic of dist is under test. The truth is computed independently as 2 asin(|x - y| / 2)
    # after normalising in float64.
    x64 = random_points(500, 8)
    u = random_tangents(x64, 9)
    y64 = expmap(x64, u / u.norm(dim=-1, keepdim=True) * angle)
    x32, y32 = x64.float(), y64.float()
    xn, yn = (v.double() / v.double().norm(dim=-1, keepdim=True) for v in (x32, y32))
    truth = 2.0 * torch.asin((xn - yn).norm(dim=-1) / 2.0)
    assert (truth > 0.3 * angle).all() and (truth < 3.0 * angle).all()
    rel = (dist(x32, y32).double() - truth).abs() / truth
    assert rel.max() < 1e-3
    # axis-aligned pairs whose float32 coordinates are exact: (1, 0, 0) and (cos a, sin a, 0)
    a = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float32)
    b = torch.tensor([math.cos(angle), math.sin(angle), 0.0], dtype=torch.float32)
    b_truth = math.atan2(float(b[1]), float(b[0]))
    assert abs(float(dist(a, b)) - b_truth) < 1e-3 * b_truth

    # The gap this wraps: geoopt's acos of a clamped dot product cannot see angles this small in float32.
    # At 1e-4 rad it is off by far more than the angle itself (it returns ~0.014 rad).
    b = torch.tensor([math.cos(1e-4), math.sin(1e-4), 0.0], dtype=torch.float32)
    assert abs(float(dist(a, b)) - 1e-4) < 1e-7
    assert abs(float(geoopt.Sphere().dist(a, b)) - 1e-4) > 1e-2
    # and on the same pairs as above it is off by more than 10x the angle (clamped at acos(1 - 1e-4)).
    theirs = geoopt.Sphere().dist(x32, y32).double()
    assert ((theirs - truth).abs() / truth).min() > 10.0


# ----------------------------------------------------------------------------- sampling, densities, frames
def test_sample_uniform_moments_and_seeding() -> None:
    n = 100_000
    x = sample_uniform(n, generator=torch.Generator().manual_seed(10), dtype=F64)
    assert x.shape == (n, 3) and x.dtype == F64
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(n, dtype=F64), atol=1e-12, rtol=0)
    # std of a mean coordinate is sqrt(1/3 / n) = 1.8e-3; of mean z^2 it is sqrt(4/45 / n) = 9.4e-4
    assert x.mean(0).abs().max() < 1e-2
    second = (x * x).mean(0).numpy()
    np.testing.assert_allclose(second, 1.0 / 3.0, atol=5e-3)
    assert abs(float((x[:, 0] * x[:, 1]).mean())) < 5e-3
    x2 = sample_uniform(n, generator=torch.Generator().manual_seed(10), dtype=F64)
    assert torch.equal(x, x2)
    assert not torch.equal(x, sample_uniform(n, generator=torch.Generator().manual_seed(11), dtype=F64))
    assert sample_uniform(4).dtype == torch.float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_log_prob(dtype: torch.dtype) -> None:
    assert LOG_AREA == pytest.approx(math.log(4 * math.pi), abs=1e-15)
    lp = uniform_log_prob(torch.zeros(2, 5, 3, dtype=dtype))
    assert lp.shape == (2, 5) and lp.dtype == dtype
    assert torch.all(lp == torch.tensor(-math.log(4 * math.pi), dtype=dtype))


SPECIAL = [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
           [0.0, -1.0, 0.0], [1 / math.sqrt(3)] * 3, [0.6, 0.0, 0.8]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tangent_frame_orthonormal_and_tangent(dtype: torch.dtype) -> None:
    x = torch.cat([torch.tensor(SPECIAL, dtype=dtype), random_points(200, 12, dtype)])
    x = x / x.norm(dim=-1, keepdim=True)
    e1, e2 = tangent_frame(x)
    tol = TOL[dtype]
    for e in (e1, e2):
        assert (e * x).sum(-1).abs().max() < tol
        torch.testing.assert_close(e.norm(dim=-1), torch.ones(len(x), dtype=dtype), atol=tol, rtol=0)
    assert (e1 * e2).sum(-1).abs().max() < tol
    # right-handed: (e1, e2, x) with e2 = x cross e1, so e1 cross e2 = x
    torch.testing.assert_close(torch.linalg.cross(e1, e2, dim=-1), x, atol=tol, rtol=0)
    assert torch.isfinite(e1).all() and torch.isfinite(e2).all()
