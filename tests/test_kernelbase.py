"""Contracts of cnfm_core.kernelbase: the target's own contraction field and its exact divergence.

Checked against a closed form (one kernel: ``v = a P_x y``, ``div = -2 a <x, y>``), central finite differences
along geodesics at concentrations up to 1e8 (clusters 1 km apart), the PPD residual of the path it belongs to
(small where one kernel dominates), and a field that carries it through a checkpoint.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import random_unit_vectors

from cnfm_core.config import TrainConfig
from cnfm_core.field import VectorField
from cnfm_core.kernelbase import KernelBase
from cnfm_core.paths import VMFMixturePath
from cnfm_core.schedules import make_schedule

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
KM = 1.0 / 6371.0  # one kilometre on the unit sphere


def clustered_centres(n: int, seed: int, spread: float) -> torch.Tensor:
    """``n`` unit vectors: half uniform, half within about ``spread`` radians of the first half."""
    y = random_unit_vectors(n, seed, F64)
    g = torch.Generator().manual_seed(seed + 1)
    y[n // 2:] = y[: n - n // 2] + spread * torch.randn(n - n // 2, 3, generator=g, dtype=F64)
    return y / y.norm(dim=1, keepdim=True)


def near(y: torch.Tensor, spread: float, seed: int) -> torch.Tensor:
    """A point within about ``spread`` radians of each row of ``y``."""
    x = y + spread * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return x / x.norm(dim=1, keepdim=True)


def geodesic_fd_divergence(fn, x: torch.Tensor, t: torch.Tensor, h: float) -> torch.Tensor:  # noqa: ANN001
    """Riemannian divergence ``sum_e <e, d/ds v(exp_x(s e))>`` of ``fn(x, t) -> v`` by central differences along
    the geodesics of an orthonormal tangent frame, step ``h`` radians."""
    out = torch.zeros(x.shape[0], dtype=F64)
    a = torch.tensor([0.3, -0.5, 0.8], dtype=F64).expand_as(x)
    e1 = a - (a * x).sum(1, keepdim=True) * x
    e1 = e1 / e1.norm(dim=1, keepdim=True)
    e2 = torch.linalg.cross(x, e1, dim=1)
    for e in (e1, e2):
        plus, minus = x * math.cos(h) + e * math.sin(h), x * math.cos(h) - e * math.sin(h)
        out += ((fn(plus, t) - fn(minus, t)) * e).sum(1) / (2 * h)
    return out


def base_for(y: torch.Tensor, kappa_max: float, *, scales: torch.Tensor | None = None, floor: float = 0.02,
             schedule: str = "exponential") -> tuple[KernelBase, VMFMixturePath]:
    path = VMFMixturePath(y, make_schedule(schedule, kappa_max), floor=floor, scales=scales)
    return KernelBase.from_path(path, schedule), path


@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_one_kernel_is_its_closed_form(schedule: str) -> None:
    y = torch.tensor([[0.0, 0.6, 0.8]], dtype=F64)
    base, path = base_for(y, 1e4, floor=0.0, schedule=schedule)
    x = random_unit_vectors(30, 3, F64)
    t = torch.rand(30, generator=torch.Generator().manual_seed(4), dtype=F64)
    v, div = base(x, t)
    k, dk = path.schedule.kappa(t), path.schedule.dkappa(t)
    a = dk / (2.0 * (1.0 + k))
    c = (x * y).sum(1)
    torch.testing.assert_close(v, a[:, None] * (y - c[:, None] * x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(div, -2.0 * a * c, rtol=1e-10, atol=1e-10)
    if schedule == "exponential":  # k' / (1 + k) = log(1 + k_max): the same rate at every t
        torch.testing.assert_close(a, torch.full_like(a, 0.5 * math.log1p(1e4)))


@pytest.mark.parametrize(("kappa_max", "spread", "adaptive"),
                         [(100.0, 0.2, False), (1e6, 1e-3, False), (1e6, 1e-3, True), (1e8, KM, False),
                          (1e8, KM, True)])
def test_divergence_equals_finite_differences(kappa_max: float, spread: float, adaptive: bool) -> None:
    y = clustered_centres(40, 1, spread)
    scales = (0.05 + torch.rand(40, generator=torch.Generator().manual_seed(2), dtype=F64)) if adaptive else None
    base, _ = base_for(y, kappa_max, scales=scales)
    x = near(y[:12], spread, 5)
    width = 1.0 / math.sqrt(kappa_max)  # the sharpest kernel's width
    for t0 in (0.1, 0.6, 0.95):
        t = torch.full((12,), t0, dtype=F64)
        v, div = base(x, t)
        assert torch.equal(base.velocity(x, t), v)  # the velocity alone, without the divergence's work
        assert float((v * x).sum(1).abs().max()) < 1e-12 * max(1.0, float(v.norm(dim=1).max()))  # tangent
        fd = geodesic_fd_divergence(lambda p, s: base(p, s)[0], x, t, 1e-3 * width)
        scale = 1.0 + float(div.abs().max())
        assert float((div - fd).abs().max()) < 1e-5 * scale, (t0, div, fd)


@pytest.mark.parametrize("adaptive", [False, True])
def test_the_base_nearly_solves_the_path_where_one_kernel_dominates(adaptive: bool) -> None:
    """Three kernels 30 degrees apart, points near them: the PPD residual of the base alone is a small part of
    d/dt log p late in the path (the Gaussian limit), and for the fixed kernel at its start (the first-order
    field; the adaptive kernel's uniform remainder leaves the uniform only at second order, which it does not
    follow)."""
    y = torch.tensor([[1.0, 0.0, 0.0], [math.cos(0.52), math.sin(0.52), 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    scales = torch.tensor([1.0, 0.3, 0.1], dtype=F64) if adaptive else None
    base, path = base_for(y, 1e6, scales=scales, floor=0.0)
    x = near(y.repeat(20, 1), 1e-3, 7)
    for t0, bound in ((0.8, 0.01), (0.95, 0.01)) + (() if adaptive else ((0.002, 0.05),)):
        t = torch.full((60,), t0, dtype=F64)
        v, div = base(x, t)
        q = path.quantities(x, t)
        residual = q.dlog_prob_dt + (q.grad_log_prob * v).sum(1) + div
        size = float(q.dlog_prob_dt.abs().mean()) + float(div.abs().mean())
        assert float(residual.abs().mean()) < bound * size, (t0, float(residual.abs().mean()), size)


def test_gate_is_a_kernels_width() -> None:
    base, path = base_for(clustered_centres(6, 3, 0.1), 1e6)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    torch.testing.assert_close(base.gate(t), (1.0 + path.schedule.kappa(t)).rsqrt())
    assert float(base.gate(t)[0]) == 1.0


def test_field_with_a_base_adds_the_gated_network_and_keeps_an_exact_divergence() -> None:
    y = clustered_centres(20, 4, 0.01)
    base, _ = base_for(y, 1e5)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        field = VectorField(hidden=16, layers=2, space_frequencies=4, space_scale=3.0, base=base).double()
        torch.nn.init.normal_(field.output.weight, std=0.5)
        plain = VectorField(hidden=16, layers=2, space_frequencies=4, space_scale=3.0).double()
    plain.load_state_dict({k: v for k, v in field.state_dict().items() if not k.startswith("base.")})
    x = near(y[:10], 0.01, 8)
    t = torch.rand(10, generator=torch.Generator().manual_seed(9), dtype=F64)
    v, div = field.velocity_and_divergence(x, t)
    vb, divb = base(x, t)
    vn, divn = plain.velocity_and_divergence(x, t)
    g = base.gate(t)
    torch.testing.assert_close(v, vb + g[:, None] * vn)
    torch.testing.assert_close(div, divb + g * divn)
    torch.testing.assert_close(field(x, t), v.detach())
    fd = geodesic_fd_divergence(lambda p, s: field(p, s).detach(), x, t, 1e-6)
    torch.testing.assert_close(div.detach(), fd, rtol=1e-5, atol=1e-5)


def test_the_base_lives_in_the_state_dict_and_rebuilds_from_it() -> None:
    from cnfm_core.builders import build_field

    y = clustered_centres(30, 5, 0.01)
    y[3] = y[4]  # a repeated point: one centre with twice the weight
    config = TrainConfig(kappa_max=1e7, space_frequencies=0, field_base="kernel", hidden=8, layers=1)
    from cnfm_core.builders import build_path

    path = build_path(config, y.float())
    field = build_field(config, path)
    state = field.state_dict()
    assert state["base.centers"].shape == (29, 3) and state["base.centers"].dtype == F64
    torch.testing.assert_close(state["base.log_weights"].exp().sum(), torch.tensor(1.0, dtype=F64))
    again = build_field(config, state=state)
    again.load_state_dict(state)
    x, t = near(y[:6], 0.01, 6).float(), torch.full((6,), 0.9)
    for a, b in zip(field.velocity_and_divergence(x, t), again.velocity_and_divergence(x, t), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_config_refuses_an_unknown_or_misplaced_base() -> None:
    with pytest.raises(ValueError, match="unknown field base"):
        TrainConfig(field_base="score").validate()
    with pytest.raises(ValueError, match="PPD on the sphere"):
        TrainConfig(field_base="kernel", objective="rfm").validate()
    with pytest.raises(ValueError, match="PPD on the sphere"):
        TrainConfig(field_base="kernel", manifold="torus").validate()
    assert TrainConfig.from_dict({"data": "x.csv"}).field_base == "none"  # configs from before it: no base
