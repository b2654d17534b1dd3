"""Contracts of target paths and of what is built from a manifold's name, over every registered manifold.

Every kernel-mixture path of :data:`cnfm_core.targets.TARGET_PATHS` is a :class:`~cnfm_core.paths.TargetPath`:
uniform at t = 0, a probability density at every t (quadrature through a chart, tests/manifold_helpers.py),
with ``d/dt log p_t`` and a tangent Riemannian gradient equal to finite differences of ``log_prob``, and
exact samples whose moments match the density. PPD and RFM train a field on every manifold, and the
builders build from ``config.manifold`` or say that a manifold is not available.
"""

from __future__ import annotations

import math

import pytest
import torch
from manifold_helpers import Circle, chart_quadrature, contract_instances
from torch import nn

from cnfm_core.builders import MANIFOLD_OPTIONS, build_field, build_path
from cnfm_core.config import MANIFOLD_NAMES, TrainConfig
from cnfm_core.field import VectorField
from cnfm_core.manifolds import MANIFOLDS, Manifold
from cnfm_core.objectives import PPD, RFM, make_objective
from cnfm_core.paths import TargetPath, VMFMixturePath
from cnfm_core.schedules import ExponentialSchedule
from cnfm_core.targets import TARGET_PATHS, make_target_path

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
WITH_PATHS = [m for m in contract_instances() if m.name in TARGET_PATHS]
each_path_manifold = pytest.mark.parametrize("m", WITH_PATHS, ids=[f"{m.name}{m.dim}" for m in WITH_PATHS])
each_manifold = pytest.mark.parametrize("m", [*contract_instances(), Circle()],
                                        ids=[f"{m.name}{m.dim}" for m in [*contract_instances(), Circle()]])


def points(m: Manifold, n: int, seed: int) -> torch.Tensor:
    return m.random_uniform(n, generator=torch.Generator().manual_seed(seed), dtype=F64)


def target(m: Manifold, floor: float = 0.1) -> TargetPath:
    return make_target_path(m.name, points(m, 6, 1), ExponentialSchedule(5.0), floor=floor)


def test_every_target_path_is_on_a_registered_manifold() -> None:
    assert set(TARGET_PATHS) <= set(MANIFOLDS) and "sphere" in TARGET_PATHS
    assert TARGET_PATHS["sphere"] is VMFMixturePath
    with pytest.raises(ValueError, match="no target path"):
        make_target_path("circle", points(Circle(), 3, 0), ExponentialSchedule(5.0))


@each_path_manifold
def test_target_path_interface(m: Manifold) -> None:
    path = target(m)
    assert isinstance(path, TargetPath) and path.manifold.name == m.name and path.floor == 0.1
    assert path.device == torch.device("cpu") and path.dtype == F64 and path.to("cpu") is path
    x = points(m, 50, 2)
    torch.testing.assert_close(path.log_prob(x, 0.0), m.uniform_log_prob(x), rtol=0, atol=1e-12)
    t = torch.rand(50, generator=torch.Generator().manual_seed(3), dtype=F64)
    q = path.quantities(x, t)
    assert q.log_prob.shape == q.dlog_prob_dt.shape == (50,) and q.grad_log_prob.shape == (50, m.ambient_dim)
    torch.testing.assert_close(q.log_prob, path.log_prob(x, t), rtol=0, atol=1e-12)


@each_path_manifold
@pytest.mark.parametrize("t", [0.5, 1.0])
def test_target_density_integrates_to_one(m: Manifold, t: float) -> None:
    pts, weights = chart_quadrature(m)
    mass = float((target(m).log_prob(pts, t).exp() * weights).sum())
    assert mass == pytest.approx(1.0, rel=1e-6)


@each_path_manifold
def test_target_derivatives_equal_finite_differences(m: Manifold) -> None:
    path, x = target(m), points(m, 40, 4)
    t = 0.1 + 0.8 * torch.rand(40, generator=torch.Generator().manual_seed(5), dtype=F64)
    q, h = path.quantities(x, t), 1e-5
    fd_t = (path.log_prob(x, t + h) - path.log_prob(x, t - h)) / (2 * h)
    torch.testing.assert_close(q.dlog_prob_dt, fd_t, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(m.proju(x, q.grad_log_prob), q.grad_log_prob, rtol=0, atol=1e-12)
    for e in m.tangent_frame(x):
        fd_x = (path.log_prob(m.expmap(x, h * e), t) - path.log_prob(m.expmap(x, -h * e), t)) / (2 * h)
        torch.testing.assert_close((q.grad_log_prob * e).sum(-1), fd_x, rtol=1e-6, atol=1e-7)


@each_path_manifold
def test_target_samples_follow_the_density(m: Manifold) -> None:
    path, n = target(m), 100_000
    for t in (0.0, 1.0):
        x = path.sample(torch.full((n,), t, dtype=F64), generator=torch.Generator().manual_seed(6))
        assert x.shape == (n, m.ambient_dim) and x.dtype == F64
        torch.testing.assert_close(m.projx(x), x, rtol=0, atol=1e-13)
        pts, weights = chart_quadrature(m)
        density = path.log_prob(pts, t).exp() * weights
        for c in points(m, 3, 7):
            def g(z: torch.Tensor, c: torch.Tensor = c) -> torch.Tensor:
                return torch.exp(-(m.dist(z, c.expand_as(z)) / 0.5) ** 2)
            values = g(x)
            assert abs(float(values.mean() - (g(pts) * density).sum())) < 5.0 * float(values.std()) / math.sqrt(n)


# ----------------------------------------------------------------------------- objectives on every manifold
@each_manifold
def test_objectives_train_a_field_on_every_manifold(m: Manifold) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(8)
        field = VectorField(hidden=8, layers=2, manifold=m).double()
        nn.init.normal_(field.output.weight, std=0.3)
    data = points(m, 20, 9)
    objectives = [RFM(data, floor=0.1, manifold=m)]
    if m.name in TARGET_PATHS:
        path = make_target_path(m.name, data, ExponentialSchedule(5.0))
        objectives.append(make_objective("ppd", data=data, path=path, ell=1))
        assert make_objective("rfm", data=data, path=path).manifold is path.manifold
    for objective in objectives:
        field.zero_grad()
        value = objective(field, 16, generator=torch.Generator().manual_seed(10))
        value.loss.backward()
        assert math.isfinite(float(value.loss.detach())) and float(value.loss.detach()) > 0
        assert field.output.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        RFM(torch.zeros(5, m.ambient_dim + 1, dtype=F64), manifold=m)


def test_ppd_takes_any_target_path() -> None:
    path = target(contract_instances()[0])
    assert isinstance(PPD(path).path, TargetPath)


# ----------------------------------------------------------------------------- builders
@pytest.mark.parametrize("name", MANIFOLD_NAMES)
def test_builders_build_from_the_config_manifold_or_say_it_is_not_available(name: str) -> None:
    options = {"manifold_dim": 2} if name == "torus" else {}  # the torus's dimension is read from the data
    config = TrainConfig(manifold=name, space_frequencies=0, kappa_max=5.0, hidden=8, layers=1, **options)
    if name not in MANIFOLD_OPTIONS:
        with pytest.raises(ValueError, match="not available"):
            build_field(config)
        return
    field = build_field(config)
    assert field.manifold.name == name
    train_x = field.manifold.random_uniform(10, generator=torch.Generator().manual_seed(11))
    if name in TARGET_PATHS:
        assert build_path(config, train_x).manifold.name == name
    else:
        with pytest.raises(ValueError, match="no target path"):
            build_path(config, train_x)


def test_old_configs_are_on_the_sphere_and_keep_their_state_dict() -> None:
    config = TrainConfig.from_dict({"data": "x.csv", "space_frequencies": 0, "kappa_max": 10.0})
    assert config.manifold == "sphere"
    field = build_field(config)
    # the keys and shapes checkpoints made before the manifold interface hold
    shapes = {k: tuple(v.shape) for k, v in field.state_dict().items()}
    hidden = config.hidden
    assert shapes == {"_freqs": (4,), "input_x.weight": (hidden, 3), "input_x.bias": (hidden,),
                      "input_t.weight": (hidden, 9), "hidden_layers.0.weight": (hidden, hidden),
                      "hidden_layers.0.bias": (hidden,), "hidden_layers.1.weight": (hidden, hidden),
                      "hidden_layers.1.bias": (hidden,), "output.weight": (3, hidden), "output.bias": (3,)}
    with pytest.raises(ValueError, match="adaptive kernel is available on the sphere and the torus only"):
        build_path(TrainConfig(manifold="circle", kernel="adaptive", kernel_neighbours=1, kernel_scale=1.0,
                               kappa_max=5.0), points(Circle(), 5, 12))
