"""Contracts every manifold meets, run over every registered one (:data:`cnfm_core.manifolds.MANIFOLDS`).

Each registered manifold is tested through the instances of :func:`contract_instances` (a registered name
without one fails ``test_every_registered_manifold_is_tested``), plus the circle S¹ ⊂ R² defined here
(tests/manifold_helpers.py), a second curved manifold that keeps the generic code honest. References are
independent of the code under test:

* volumes and uniform moments by Gauss-Legendre quadrature through a chart, with the volume element
  ``sqrt(det(Jᵀ J))`` of the chart's Jacobian (autograd);
* the divergence as the rate of change of log-volume under the map ``x -> expmap(x, ε v(x))``: with
  ``e_i`` a frame at ``x`` and ``f_j`` one at ``y = expmap(x, ε v(x))``,
  ``div v(x) = d/dε log |det <f_j, D_{e_i} y>|`` at ``ε = 0``, the derivatives ``D_{e_i} y`` by central
  differences of ``logmap(y, .)`` along ``expmap(x, ±h e_i)``. It holds on curved and flat manifolds
  alike and is checked against closed forms and, on S², against the ambient finite differences of
  tests/test_field.py.
"""

from __future__ import annotations

import math

import geoopt
import pytest
import torch
from manifold_helpers import Circle, chart_quadrature, closed_form_field, contract_instances, fd_divergence
from torch import nn

from cnfm_core.config import MANIFOLD_NAMES
from cnfm_core.field import VectorField
from cnfm_core.integrate import log_likelihood
from cnfm_core.manifolds import MANIFOLDS, Manifold, make_manifold

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
INSTANCES = [*contract_instances(), Circle()]
IDS = [f"{m.name}{m.dim}" for m in INSTANCES]
each_manifold = pytest.mark.parametrize("m", INSTANCES, ids=IDS)


def points(m: Manifold, n: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return m.random_uniform(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def ambient(m: Manifold, n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, m.ambient_dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def tangents(m: Manifold, x: torch.Tensor, seed: int, max_norm: float) -> torch.Tensor:
    """Tangent vectors at ``x`` with norms uniform in (0, max_norm)."""
    u = m.proju(x, ambient(m, x.shape[0], seed))
    r = torch.rand(x.shape[0], generator=torch.Generator().manual_seed(seed + 1), dtype=x.dtype)
    return u / u.norm(dim=-1, keepdim=True) * (max_norm * r)[:, None]


def random_field(m: Manifold, seed: int, space_frequencies: int = 0) -> VectorField:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        field = VectorField(hidden=16, layers=2, frequencies=2, space_frequencies=space_frequencies,
                            space_scale=2.0, manifold=m).double()
        nn.init.normal_(field.output.weight, std=0.5)
        nn.init.normal_(field.output.bias, std=0.5)
    return field


# ----------------------------------------------------------------------------- registry
def test_every_registered_manifold_is_tested_and_named_in_the_config() -> None:
    assert "sphere" in MANIFOLDS
    assert set(MANIFOLDS) <= set(MANIFOLD_NAMES)  # a name the config does not know could never be trained
    assert set(MANIFOLDS) <= {m.name for m in contract_instances()}
    for m in contract_instances():
        assert isinstance(m, Manifold) and m.name in MANIFOLDS
        assert m.dim >= 1 and m.ambient_dim >= m.dim and m.feature_dim >= 1


def test_make_manifold_unknown_name_lists_the_known_ones() -> None:
    assert make_manifold("sphere").ambient_dim == 3
    with pytest.raises(ValueError) as err:
        make_manifold("hyperboloid")
    assert "hyperboloid" in str(err.value) and all(name in str(err.value) for name in MANIFOLDS)


# ----------------------------------------------------------------------------- projections and frames
@each_manifold
def test_projx_is_idempotent(m: Manifold) -> None:
    y = m.projx(ambient(m, 200, 1, scale=3.0))
    assert y.shape == (200, m.ambient_dim)
    torch.testing.assert_close(m.projx(y), y, rtol=0, atol=1e-14)
    x = points(m, 200, 2)
    torch.testing.assert_close(m.projx(x), x, rtol=0, atol=1e-14)


@each_manifold
def test_proju_is_the_orthogonal_projection_onto_the_frame(m: Manifold) -> None:
    x, u = points(m, 200, 3), ambient(m, 200, 4)
    p = m.proju(x, u)
    torch.testing.assert_close(m.proju(x, p), p, rtol=0, atol=1e-14)
    frame = m.tangent_frame(x)
    in_frame = (torch.einsum("ibd,bd->ib", frame, u)[..., None] * frame).sum(0)
    torch.testing.assert_close(p, in_frame, rtol=0, atol=1e-13)
    # tangent vectors are velocities of curves on M: projx(x + s p) moves along p to first order
    s = 1e-5
    fd = (m.logmap(x, m.projx(x + s * p)) - m.logmap(x, m.projx(x - s * p))) / (2 * s)
    torch.testing.assert_close(fd, p, rtol=0, atol=1e-8)


@each_manifold
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_tangent_frame_is_orthonormal_and_tangent(m: Manifold, dtype: torch.dtype) -> None:
    x = points(m, 300, 5, dtype)
    frame = m.tangent_frame(x)
    assert frame.shape == (m.dim, 300, m.ambient_dim) and frame.dtype == dtype
    gram = torch.stack([torch.stack([m.inner(x, a, b) for b in frame]) for a in frame])  # (d, d, B)
    eye = torch.eye(m.dim, dtype=dtype)[..., None].expand_as(gram)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(gram, eye, rtol=0, atol=tol)
    torch.testing.assert_close(m.proju(x.expand_as(frame), frame), frame, rtol=0, atol=tol)


# ----------------------------------------------------------------------------- exponential map and distance
@each_manifold
def test_exp_log_round_trips(m: Manifold) -> None:
    x, y = points(m, 300, 6), points(m, 300, 7)
    u = m.logmap(x, y)
    torch.testing.assert_close(m.proju(x, u), u, rtol=0, atol=1e-13)
    assert m.dist(m.expmap(x, u), y).max() < 1e-12
    v = tangents(m, x, 8, max_norm=2.0)  # within the injectivity radius of S¹, S² and Tᵈ (π)
    torch.testing.assert_close(m.logmap(x, m.expmap(x, v)), v, rtol=0, atol=1e-12)
    torch.testing.assert_close(m.expmap(x, torch.zeros_like(x)), x, rtol=0, atol=1e-15)


@each_manifold
def test_dist_is_the_norm_of_logmap_and_a_metric(m: Manifold) -> None:
    x, y, z = points(m, 300, 9), points(m, 300, 10), points(m, 300, 11)
    d = m.dist(x, y)
    torch.testing.assert_close(d, m.logmap(x, y).norm(dim=-1), rtol=0, atol=1e-12)
    torch.testing.assert_close(d, m.dist(y, x), rtol=0, atol=1e-14)
    assert (d >= 0).all() and m.dist(x, x).abs().max() < 1e-15
    assert (m.dist(x, z) <= d + m.dist(y, z) + 1e-12).all()
    v = tangents(m, x, 12, max_norm=2.0)
    torch.testing.assert_close(m.dist(x, m.expmap(x, v)), v.norm(dim=-1), rtol=0, atol=1e-12)


@each_manifold
@pytest.mark.parametrize("angle", [1e-3, 1e-5, 1e-6])
def test_float32_dist_and_logmap_resolve_tiny_distances(m: Manifold, angle: float) -> None:
    # float32 points a tiny distance apart; the truth is the float64 distance of the rounded points
    x64 = points(m, 400, 13)
    u = tangents(m, x64, 14, max_norm=1.0)
    y64 = m.expmap(x64, u / u.norm(dim=-1, keepdim=True) * angle)
    x32, y32 = x64.float(), y64.float()
    truth = m.dist(m.projx(x32.double()), m.projx(y32.double()))
    assert (truth > 0.3 * angle).all()
    assert ((m.dist(x32, y32).double() - truth).abs() / truth).max() < 1e-3
    assert ((m.logmap(x32, y32).double().norm(dim=-1) - truth).abs() / truth).max() < 1e-3


# ----------------------------------------------------------------------------- uniform measure
@each_manifold
def test_uniform_density_integrates_to_one(m: Manifold) -> None:
    pts, weights = chart_quadrature(m)
    volume = float(weights.sum())
    assert volume == pytest.approx(math.exp(m.log_volume), rel=1e-12)
    total = float((m.uniform_log_prob(pts).exp() * weights).sum())
    assert total == pytest.approx(1.0, rel=1e-12)
    lp = m.uniform_log_prob(torch.zeros(2, 5, m.ambient_dim, dtype=torch.float32))
    assert lp.shape == (2, 5) and lp.dtype == torch.float32


@each_manifold
def test_random_uniform_matches_the_uniform_moments(m: Manifold) -> None:
    n = 200_000
    x = points(m, n, 15)
    assert x.shape == (n, m.ambient_dim) and x.dtype == F64
    torch.testing.assert_close(m.projx(x), x, rtol=0, atol=1e-14)
    assert torch.equal(x, points(m, n, 15)) and not torch.equal(x, points(m, n, 16))
    assert m.random_uniform(3).dtype == torch.float32
    # E g(x) for bumps g(x) = exp(-(dist(x, c) / 0.5)^2) around random centres, against quadrature / volume
    # (on S², points of a cube pushed to the sphere miss these by 4 to 28 standard errors)
    centres = points(m, 4, 17)
    pts, weights = chart_quadrature(m)
    for c in centres:
        def g(z: torch.Tensor, c: torch.Tensor = c) -> torch.Tensor:
            return torch.exp(-(m.dist(z, c.expand_as(z)) / 0.5) ** 2)
        expected = float((g(pts) * weights).sum() / weights.sum())
        values = g(x)
        assert abs(float(values.mean()) - expected) < 5.0 * float(values.std()) / math.sqrt(n)


# ----------------------------------------------------------------------------- the field's exact divergence
@each_manifold
def test_feature_tangents_are_directional_derivatives_of_features(m: Manifold) -> None:
    x = points(m, 50, 18)
    frame = m.tangent_frame(x)
    feats = m.features(x)
    assert feats.shape == (50, m.feature_dim)
    h = 1e-5
    fd = torch.stack([(m.features(m.expmap(x, h * e)) - m.features(m.expmap(x, -h * e))) / (2 * h) for e in frame])
    torch.testing.assert_close(m.feature_tangents(x, frame), fd, rtol=0, atol=1e-8)


@each_manifold
def test_finite_difference_reference_matches_closed_forms(m: Manifold) -> None:
    # first the reference itself: fields whose divergence is known in closed form on this manifold
    x = points(m, 40, 19)
    velocity, divergence = closed_form_field(m)
    torch.testing.assert_close(fd_divergence(m, velocity, x), divergence(x), rtol=0, atol=1e-7)
    # a constant ambient f: J = 0, so the divergence of proju(x, f) is the projection term alone
    f = ambient(m, 1, 20)[0]
    const = fd_divergence(m, lambda z: m.proju(z, f.expand_as(z)), x)
    torch.testing.assert_close(m.projection_divergence(x, f.expand_as(x)), const, rtol=0, atol=1e-7)


@each_manifold
@pytest.mark.parametrize("space_frequencies", [0, 4])
def test_exact_divergence_equals_finite_differences(m: Manifold, space_frequencies: int) -> None:
    field = random_field(m, 21, space_frequencies)
    x = points(m, 40, 22)
    t = torch.full((40,), 0.3, dtype=F64)
    v, div = field.velocity_and_divergence(x, t)
    assert v.shape == (40, m.ambient_dim) and div.shape == (40,)
    torch.testing.assert_close(m.proju(x, v), v.detach(), rtol=0, atol=1e-13)
    ref = fd_divergence(m, lambda z: field(z, t).detach(), x)
    assert ref.abs().max() > 0.1  # a non-trivial field
    torch.testing.assert_close(div.detach(), ref, rtol=0, atol=1e-6)


def test_finite_difference_reference_agrees_with_the_ambient_one_on_the_sphere() -> None:
    # tests/test_field.py checks the divergence on S² by ambient central differences, sum_i dv_i/dx_i
    m = make_manifold("sphere")
    field = random_field(m, 23)
    x = points(m, 30, 24)
    t = torch.full((30,), 0.6, dtype=F64)
    h = 1e-5
    with torch.no_grad():
        ambient_fd = sum((field(x + h * e, t)[:, i] - field(x - h * e, t)[:, i]) / (2 * h)
                         for i, e in enumerate(torch.eye(3, dtype=F64)))
        ref = fd_divergence(m, lambda z: field(z, t), x)
    torch.testing.assert_close(ref, ambient_fd, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- likelihood and geodesics
@each_manifold
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_zero_field_gives_the_uniform_log_density(m: Manifold, dtype: torch.dtype) -> None:
    field = VectorField(hidden=8, layers=1, manifold=m).to(dtype)
    x = points(m, 64, 25, dtype)
    res = log_likelihood(field, x)
    torch.testing.assert_close(res.log_prob, m.uniform_log_prob(x), rtol=0, atol=1e-6)
    assert m.dist(res.x0, x).max() < 1e-5
    with pytest.raises(ValueError, match="shape"):
        log_likelihood(field, torch.zeros(4, m.ambient_dim + 1, dtype=dtype))


@each_manifold
def test_geodesic_has_the_right_ends_and_constant_speed(m: Manifold) -> None:
    x0, x1 = points(m, 200, 26), points(m, 200, 27)
    t = torch.rand(200, generator=torch.Generator().manual_seed(28), dtype=F64)
    d = m.dist(x0, x1)
    for s, end in ((0.0, x0), (1.0, x1)):
        xs, _ = m.geodesic(x0, x1, torch.full_like(t, s))
        assert m.dist(xs, end).max() < 1e-12
    xt, ut = m.geodesic(x0, x1, t)
    torch.testing.assert_close(m.projx(xt), xt, rtol=0, atol=1e-14)
    torch.testing.assert_close(ut.norm(dim=-1), d, rtol=0, atol=1e-12)
    torch.testing.assert_close(m.dist(x0, xt), t * d, rtol=0, atol=1e-12)
    h = 1e-5
    fd = (m.logmap(xt, m.geodesic(x0, x1, t + h)[0]) - m.logmap(xt, m.geodesic(x0, x1, t - h)[0])) / (2 * h)
    torch.testing.assert_close(fd, ut, rtol=0, atol=1e-8)


def test_sphere_logmap_is_exact_where_geoopt_s_is_not() -> None:
    # the gap the sphere wraps: geoopt scales its logmap by an acos distance, blind below ~0.014 rad in float32
    m = make_manifold("sphere")
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[math.cos(1e-4), math.sin(1e-4), 0.0]])
    truth = math.atan2(float(b[0, 1]), float(b[0, 0]))
    assert abs(float(m.logmap(a, b).norm()) - truth) < 1e-4 * truth
    assert abs(float(geoopt.Sphere().logmap(a, b).norm()) - truth) > 0.1 * truth
