"""Contracts of cnfm_core.field: a tangent field whose fused divergence is exact.

The divergence is checked against autograd (three backward passes), central finite differences of the
ambient field, and a closed form for a network replaced by an affine map f(x) = A x + b.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from conftest import random_unit_vectors
from torch import nn

from cnfm_core.field import VectorField

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
SPECIAL = [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [1 / math.sqrt(3)] * 3]


def sphere_points(n: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """The poles and an equator point, then ``n`` seeded uniform points."""
    x = torch.cat([torch.tensor(SPECIAL, dtype=dtype), random_unit_vectors(n, seed, dtype)])
    return x / x.norm(dim=-1, keepdim=True)


def times(n: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def random_field(seed: int = 0, hidden: int = 24, layers: int = 3, frequencies: int = 3,
                 space_frequencies: int = 0, space_scale_max: float | None = None) -> VectorField:
    """A float64 field whose output layer is random (the default output layer is zero)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        field = VectorField(hidden=hidden, layers=layers, frequencies=frequencies,
                            space_frequencies=space_frequencies, space_scale=3.0,
                            space_scale_max=space_scale_max).double()
        nn.init.normal_(field.output.weight, std=0.5)
        nn.init.normal_(field.output.bias, std=0.5)
    return field


def autograd_divergence(
    field: nn.Module, x: torch.Tensor, t: torch.Tensor, create_graph: bool = False
) -> torch.Tensor:
    """Ambient divergence sum_i d v_i / d x_i of ``field.forward`` by three backward passes."""
    x = x.detach().requires_grad_(True)
    v = field(x, t)
    div = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(3):
        (g,) = torch.autograd.grad(v[:, i].sum(), x, create_graph=True)
        div = div + g[:, i]
    return div if create_graph else div.detach()


def fd_divergence(field: nn.Module, x: torch.Tensor, t: torch.Tensor, h: float) -> torch.Tensor:
    """Ambient divergence of ``field.forward`` by central differences with step ``h`` along each axis."""
    fd = torch.zeros(x.shape[0], dtype=F64)
    with torch.no_grad():
        for i in range(3):
            e = torch.zeros(3, dtype=F64)
            e[i] = h
            fd += (field(x + e, t)[:, i] - field(x - e, t)[:, i]) / (2 * h)
    return fd


# ----------------------------------------------------------------------------- velocity
def test_velocity_equals_forward_and_is_tangent() -> None:
    field = random_field()
    x, t = sphere_points(64, 1), times(69, 2)
    v, div = field.velocity_and_divergence(x, t)
    assert v.shape == (69, 3) and div.shape == (69,) and v.dtype == F64
    torch.testing.assert_close(v, field(x, t), rtol=1e-13, atol=1e-14)
    assert (v * x).sum(-1).abs().max() < 1e-14
    assert v.norm(dim=-1).min() > 1e-3  # non-trivial


def test_scalar_time_equals_broadcast_time() -> None:
    field = random_field()
    x = sphere_points(20, 3)
    for t in (0.0, 0.37, 1.0):
        v1, d1 = field.velocity_and_divergence(x, t)
        v2, d2 = field.velocity_and_divergence(x, torch.full((x.shape[0],), t, dtype=F64))
        torch.testing.assert_close(v1, v2, rtol=0, atol=1e-15)
        torch.testing.assert_close(d1, d2, rtol=0, atol=1e-14)
        torch.testing.assert_close(field(x, t), v1, rtol=0, atol=1e-14)
    # the field depends on t
    assert (field(x, 0.1) - field(x, 0.9)).abs().max() > 1e-3


def test_field_depends_only_on_the_direction() -> None:
    field = random_field()
    x, t = sphere_points(20, 4), times(25, 5)
    scale = torch.linspace(0.5, 3.0, 25, dtype=F64)[:, None]
    v1, d1 = field.velocity_and_divergence(x, t)
    v2, d2 = field.velocity_and_divergence(scale * x, t)
    torch.testing.assert_close(v2, v1, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(d2, d1, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- multi-scale features
def test_multi_scale_frequencies_are_log_spaced_and_one_scale_is_unchanged() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        one = VectorField(hidden=8, layers=1, space_frequencies=6, space_scale=10.0)._space_b
        torch.manual_seed(3)
        same = VectorField(hidden=8, layers=1, space_frequencies=6, space_scale=10.0, space_scale_max=None)._space_b
        torch.manual_seed(3)
        multi = VectorField(hidden=8, layers=1, space_frequencies=6, space_scale=10.0, space_scale_max=1e5)._space_b
    torch.testing.assert_close(one, same, rtol=0, atol=0)
    # the same Gaussian draws, row j scaled by 10 * (1e4)^(j / 5) instead of 10
    expected = one * (10.0 ** (4.0 * torch.arange(6) / 5.0))[:, None]
    torch.testing.assert_close(multi, expected, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="space_scale_max"):
        VectorField(space_frequencies=4, space_scale_max=-1.0)


@pytest.mark.parametrize("space_scale_max", [300.0, 1e4])
def test_multi_scale_divergence_equals_autograd_and_finite_differences(space_scale_max: float) -> None:
    field = random_field(seed=11, space_frequencies=8, space_scale_max=space_scale_max)
    x, t = sphere_points(60, 12), times(65, 13)
    _, div = field.velocity_and_divergence(x, t)
    ref = autograd_divergence(field, x, t)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(div, ref, rtol=0, atol=1e-9 * float(ref.abs().max()))
    # central differences with a step well below the finest wavelength (2 pi / 1e4 rad)
    fd = fd_divergence(field, x, t, 1e-7)
    torch.testing.assert_close(div.detach(), fd, rtol=0, atol=1e-5 * float(ref.abs().max()))


# ----------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("space_frequencies", [0, 6])
@pytest.mark.parametrize("layers", [1, 2, 4])
def test_divergence_equals_autograd_divergence(layers: int, space_frequencies: int) -> None:
    field = random_field(seed=layers, layers=layers, space_frequencies=space_frequencies)
    x, t = sphere_points(100, 6), times(105, 7)
    _, div = field.velocity_and_divergence(x, t)
    ref = autograd_divergence(field, x, t)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(div, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("space_frequencies", [0, 6])
def test_divergence_equals_finite_difference(space_frequencies: int) -> None:
    field = random_field(seed=8, space_frequencies=space_frequencies)
    x, t = sphere_points(40, 9), times(45, 10)
    _, div = field.velocity_and_divergence(x, t)
    torch.testing.assert_close(div.detach(), fd_divergence(field, x, t, 1e-5), rtol=0, atol=1e-8)


Jvp = torch.Tensor | None
Network = Callable[[torch.Tensor, torch.Tensor, Jvp], tuple[torch.Tensor, Jvp]]


def _affine(a: torch.Tensor, b: torch.Tensor) -> Network:
    """A stand-in for ``VectorField._network``: f(x) = A x + b and its JVPs A e."""

    def network(
        x_hat: torch.Tensor, t: torch.Tensor, tangents: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return x_hat @ a.T + b, (None if tangents is None else tangents @ a.T)

    return network


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_closed_form_for_affine_network(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g, dtype=F64)
    b = torch.randn(3, generator=g, dtype=F64)
    field = VectorField(hidden=4, layers=1).double()
    monkeypatch.setattr(field, "_network", _affine(a, b))
    x = sphere_points(50, 11 + seed)
    v, div = field.velocity_and_divergence(2.5 * x, 0.3)  # off the sphere: the field uses x / |x|
    f = x @ a.T + b
    torch.testing.assert_close(v, f - (x * f).sum(-1, keepdim=True) * x, rtol=0, atol=1e-13)
    expected = torch.trace(a) - 3.0 * ((x @ a.T) * x).sum(-1) - 2.0 * (x @ b)
    torch.testing.assert_close(div, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(autograd_divergence(field, x, torch.tensor(0.3)), expected, rtol=0, atol=1e-12)


def test_rotation_field_is_divergence_free(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(3)
    m = torch.randn(3, 3, generator=g, dtype=F64)
    a = m - m.T  # skew-symmetric: f(x) = A x = w cross x, already tangent
    field = VectorField(hidden=4, layers=1).double()
    monkeypatch.setattr(field, "_network", _affine(a, torch.zeros(3, dtype=F64)))
    x = sphere_points(50, 14)
    v, div = field.velocity_and_divergence(x, 0.5)
    torch.testing.assert_close(v, x @ a.T, rtol=0, atol=1e-14)
    assert div.abs().max() < 1e-13


# ----------------------------------------------------------------------------- initialisation and training
def test_untrained_field_is_exactly_zero() -> None:
    field = VectorField(hidden=16, layers=2)
    x, t = sphere_points(30, 15, torch.float32), times(35, 16, torch.float32)
    v, div = field.velocity_and_divergence(x, t)
    assert torch.equal(v, torch.zeros_like(v)) and torch.equal(div, torch.zeros_like(div))
    assert torch.equal(field(x, t), torch.zeros_like(v))
    # but the output layer gets a gradient through the divergence, so training can start
    (div * torch.linspace(-1.0, 2.0, x.shape[0])).sum().backward()
    assert field.output.weight.grad.abs().sum() > 0 and field.output.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("space_frequencies", [0, 6])
def test_gradients_reach_all_parameters_through_the_divergence(space_frequencies: int) -> None:
    field = random_field(seed=17, space_frequencies=space_frequencies)
    x, t = sphere_points(60, 18), times(65, 19)
    _, div = field.velocity_and_divergence(x, t)
    weights = torch.linspace(-1.0, 2.0, x.shape[0], dtype=F64)
    (div * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in field.named_parameters()}
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
    # and they are the gradients of the exact divergence (double backward through autograd's divergence)
    field.zero_grad()
    (autograd_divergence(field, x, t, create_graph=True) * weights).sum().backward()
    for name, p in field.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-9, atol=1e-11, msg=name)


def test_float32_matches_float64() -> None:
    field64 = random_field(seed=20)
    field32 = copy.deepcopy(field64).float()
    x, t = sphere_points(80, 21), times(85, 22)
    v64, d64 = field64.velocity_and_divergence(x, t)
    v32, d32 = field32.velocity_and_divergence(x.float(), t.float())
    assert v32.dtype == torch.float32 and d32.dtype == torch.float32
    torch.testing.assert_close(v32.double(), v64, rtol=0, atol=1e-5 * float(v64.detach().abs().max()))
    torch.testing.assert_close(d32.double(), d64, rtol=0, atol=1e-5 * float(d64.detach().abs().max()))


def test_space_features_are_saved_and_restored() -> None:
    # the random frequencies travel in the state dict, so a reloaded field is the same function
    field = random_field(seed=23, space_frequencies=5)
    assert field.state_dict()["_space_b"].shape == (5, 3)
    with torch.random.fork_rng():
        torch.manual_seed(99)
        other = VectorField(hidden=24, layers=3, frequencies=3, space_frequencies=5, space_scale=3.0).double()
    x, t = sphere_points(20, 24), times(25, 25)
    assert not torch.allclose(other(x, t), field(x, t))
    other.load_state_dict(field.state_dict())
    torch.testing.assert_close(other(x, t), field(x, t), rtol=0, atol=0)
    # without space features nothing extra is saved (checkpoints from before them still load)
    assert "_space_b" not in VectorField(hidden=8, layers=1).state_dict()


def test_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        VectorField(hidden=8, layers=0)
    with pytest.raises(ValueError):
        VectorField(hidden=0, layers=2)
    with pytest.raises(ValueError, match="space"):
        VectorField(hidden=8, layers=1, space_frequencies=-1)
