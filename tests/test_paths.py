"""Contracts of cnfm_core.paths: vMF densities, normalisers, the mixture path, its derivatives and samplers.

References are independent of the code under test: scipy's von Mises-Fisher distribution, mpmath at 40
digits, Gauss-Legendre quadrature on the sphere, finite differences, and exact CDFs for KS tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
import torch
from conftest import random_unit_vectors as random_points
from scipy import stats
from scipy.special import logsumexp

from cnfm_core.auto import KAPPA_CAP
from cnfm_core.paths import (
    SCHEDULES,
    ExponentialSchedule,
    LinearSchedule,
    Schedule,
    VMFMixturePath,
    make_schedule,
    sample_vmf,
    vmf_dlog_normalizer,
    vmf_log_normalizer,
    vmf_log_prob,
)
from cnfm_core.sphere import LOG_AREA

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64
SEED = 20240611


# ----------------------------------------------------------------------------- independent references
def unit(v: list[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def frame(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal tangent basis at unit vector ``c`` by Gram-Schmidt (independent of tangent_frame)."""
    a = np.array([1.0, 0.0, 0.0]) if abs(c[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    b1 = a - (a @ c) * c
    b1 /= np.linalg.norm(b1)
    return b1, np.cross(c, b1)


def sphere_quadrature(n_z: int = 128, n_phi: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and area weights on S^2: Gauss-Legendre in z = sin(lat) (dA = dz dphi), uniform in lon."""
    z, wz = np.polynomial.legendre.leggauss(n_z)
    phi = (np.arange(n_phi) + 0.5) * (2.0 * np.pi / n_phi)
    r = np.sqrt(1.0 - z * z)
    x = np.stack(np.broadcast_arrays(r[:, None] * np.cos(phi), r[:, None] * np.sin(phi), z[:, None]), -1)
    w = np.broadcast_to(wz[:, None] * (2.0 * np.pi / n_phi), x.shape[:2])
    return x.reshape(-1, 3), w.reshape(-1)


def cap_quadrature(
    c: np.ndarray, cos_r: float, n_w: int = 96, n_phi: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and area weights on the cap {<x, c> >= cos_r}, Gauss-Legendre in w = <x, c>."""
    z, wz = np.polynomial.legendre.leggauss(n_w)
    half = (1.0 - cos_r) / 2.0
    w = half * z + (1.0 + cos_r) / 2.0
    phi = (np.arange(n_phi) + 0.5) * (2.0 * np.pi / n_phi)
    b1, b2 = frame(c)
    r = np.sqrt(1.0 - w * w)[:, None, None]
    x = w[:, None, None] * c + r * (np.cos(phi)[:, None] * b1 + np.sin(phi)[:, None] * b2)
    weights = np.broadcast_to((half * wz)[:, None] * (2.0 * np.pi / n_phi), x.shape[:2])
    return x.reshape(-1, 3), weights.reshape(-1)


def scipy_mixture_logpdf(x: np.ndarray, centers: np.ndarray, kappa: float) -> np.ndarray:
    """``log (1/N) sum_i vMF(x; y_i, kappa)`` from scipy (duplicates counted as separate terms)."""
    if kappa == 0.0:
        return np.full(len(x), -math.log(4.0 * math.pi))
    logs = np.stack([stats.vonmises_fisher(c, kappa).logpdf(x) for c in centers])
    return logsumexp(logs, axis=0) - math.log(len(centers))


def vmf_cosine_cdf(one_minus_w: np.ndarray, kappa: float) -> np.ndarray:
    """Exact CDF of w = <x, mu> under vMF(mu, kappa) on S^2, as a function of 1 - w (computed stably).

    F(w) = (e^{k w} - e^{-k}) / (e^k - e^{-k}) = (expm1(-k (1 - w)) - expm1(-2k)) / (-expm1(-2k)).
    """
    if kappa == 0.0:
        return (2.0 - one_minus_w) / 2.0
    return (np.expm1(-kappa * one_minus_w) - np.expm1(-2.0 * kappa)) / (-np.expm1(-2.0 * kappa))


def mp_log_normalizer(k: float) -> float:
    with mpmath.workdps(40):
        k = mpmath.mpf(k)
        return float(mpmath.log(k / (2 * mpmath.pi * (1 - mpmath.exp(-2 * k)))))


def mp_dlog_normalizer(k: float) -> float:
    with mpmath.workdps(40):
        k = mpmath.mpf(k)
        return float(1 / k - 2 / mpmath.expm1(2 * k))


CENTERS = np.stack(
    [unit([0.0, 0.0, 1.0]), unit([1.0, 0.2, -0.1]), unit([-0.3, -1.0, 0.4]), unit([0.2, 0.5, -1.0])]
)


# ----------------------------------------------------------------------------- schedules
def test_schedules() -> None:
    t = torch.linspace(0, 1, 11, dtype=F64)
    for name in ("exponential", "linear"):
        s = make_schedule(name, 50.0)
        assert isinstance(s, SCHEDULES[name])
        assert float(s.kappa(torch.tensor(0.0, dtype=F64))) == 0.0
        assert float(s.kappa(torch.tensor(1.0, dtype=F64))) == pytest.approx(50.0, rel=1e-14)
        h = 1e-6
        fd = (s.kappa(t + h) - s.kappa(t - h)) / (2 * h)
        torch.testing.assert_close(s.dkappa(t), fd, rtol=1e-8, atol=0)
    # exponential: kappa(t) = (1 + kappa_max)^t - 1
    torch.testing.assert_close(ExponentialSchedule(50.0).kappa(t), 51.0**t - 1.0, rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="exponential.*linear"):
        make_schedule("cosine", 50.0)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            make_schedule("linear", bad)


# ----------------------------------------------------------------------------- one vMF
@pytest.mark.parametrize("kappa", [1e-3, 0.5, 5.0, 50.0, 500.0])
def test_vmf_log_prob_matches_scipy(kappa: float) -> None:
    mu = unit([0.3, -0.4, 0.8])
    x = np.concatenate([random_points(300, 1).numpy(), mu[None], -mu[None], np.array([[0.0, 0.0, 1.0]])])
    ref = stats.vonmises_fisher(mu, kappa).logpdf(x)
    got = vmf_log_prob(torch.tensor(x), torch.tensor(mu), kappa).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)


def test_vmf_log_prob_broadcasts_over_centres() -> None:
    x = random_points(5, 2)[:, None, :]
    mu = torch.tensor(CENTERS)[None]
    lp = vmf_log_prob(x, mu, torch.tensor(3.0, dtype=F64))
    assert lp.shape == (5, 4)
    ref = np.stack([stats.vonmises_fisher(c, 3.0).logpdf(x[:, 0].numpy()) for c in CENTERS], axis=1)
    np.testing.assert_allclose(lp.numpy(), ref, rtol=1e-12)


KAPPAS_REF = [1e-8, 1e-5, 1e-3, 0.01, 0.03, 0.0499, 0.05, 0.0501, 0.07, 0.0999, 0.1, 0.1001, 0.3, 1.0, 7.0,
              40.0, 300.0, 5e3, 1e6]


def test_vmf_log_normalizer_against_mpmath() -> None:
    k = torch.tensor(KAPPAS_REF, dtype=F64)
    ref = np.array([mp_log_normalizer(v) for v in KAPPAS_REF])
    # the documented bound: the series below 0.05 is truncated after k^4 (error k^6 / 2835 < 1e-11)
    np.testing.assert_allclose(vmf_log_normalizer(k).numpy(), ref, rtol=0, atol=1e-11)
    far = (k < 0.03) | (k >= 0.05)
    np.testing.assert_allclose(vmf_log_normalizer(k[far]).numpy(), ref[far.numpy()], rtol=1e-14, atol=1e-13)
    dref = np.array([mp_dlog_normalizer(v) for v in KAPPAS_REF])
    np.testing.assert_allclose(vmf_dlog_normalizer(k).numpy(), dref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_vmf_log_normalizer_at_zero_is_exactly_uniform(dtype: torch.dtype) -> None:
    zero = torch.zeros(3, dtype=dtype)
    assert torch.all(vmf_log_normalizer(zero) == torch.tensor(-LOG_AREA, dtype=dtype))
    assert torch.all(vmf_dlog_normalizer(zero) == 1.0)


@pytest.mark.parametrize(
    ("fn", "switch", "jump"), [(vmf_log_normalizer, 0.05, 1e-11), (vmf_dlog_normalizer, 0.1, 1e-13)]
)
def test_series_branches_are_continuous(
    fn: Callable[[torch.Tensor], torch.Tensor], switch: float, jump: float
) -> None:
    below, above = np.nextafter(switch, 0.0), np.nextafter(switch, 1.0)
    v = fn(torch.tensor([below, switch, above], dtype=F64)).numpy()
    assert abs(v[0] - v[1]) < jump and abs(v[2] - v[1]) < 1e-14
    # and in float32, the jump is at the level of float32 rounding
    v32 = fn(torch.tensor([switch * (1 - 1e-6), switch * (1 + 1e-6)], dtype=torch.float32)).double().numpy()
    assert abs(v32[0] - v32[1]) < 2e-6


@pytest.mark.parametrize("kappa", [0.02, 0.049, 0.06, 0.09, 0.099, 0.101, 0.3, 3.0, 30.0])
def test_dlog_normalizer_is_derivative_of_log_normalizer(kappa: float) -> None:
    # 5-point central stencil; h = 1e-2 keeps the series-switch error of log c (< 1e-11) below 1e-9 in the FD.
    h = 1e-2
    k = torch.tensor([kappa - 2 * h, kappa - h, kappa + h, kappa + 2 * h], dtype=F64)
    f = vmf_log_normalizer(k)
    fd = float((f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h))
    assert float(vmf_dlog_normalizer(torch.tensor(kappa, dtype=F64))) == pytest.approx(fd, abs=2e-9)


@pytest.mark.parametrize("kappa", [0.0, 1e-8, 1e-3, 0.05, 0.1, 1e4, 1e6])
def test_vmf_normalizers_float32_finite_and_accurate(kappa: float) -> None:
    k32 = torch.tensor([kappa], dtype=torch.float32)
    k64 = torch.tensor([kappa], dtype=F64)
    for fn in (vmf_log_normalizer, vmf_dlog_normalizer):
        v = fn(k32)
        assert v.dtype == torch.float32 and torch.isfinite(v).all()
        torch.testing.assert_close(v.double(), fn(k64), rtol=2e-6, atol=2e-6)


# ----------------------------------------------------------------------------- the mixture path: densities
@pytest.mark.parametrize("t", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("schedule", [ExponentialSchedule(50.0), LinearSchedule(50.0)], ids=["exp", "lin"])
def test_path_density_integrates_to_one(t: float, schedule: Schedule) -> None:
    x, w = sphere_quadrature()
    path = VMFMixturePath(torch.tensor(CENTERS[[0, 1, 1, 2, 3]]), schedule)
    p = path.log_prob(torch.tensor(x), t).exp().numpy()
    assert float(w.sum()) == pytest.approx(4 * math.pi, rel=1e-13)
    assert float(p @ w) == pytest.approx(1.0, abs=1e-8)


def test_quadrature_resolves_a_concentrated_vmf() -> None:
    # the quadrature used above is itself accurate at the largest concentration it is used with
    x, w = sphere_quadrature()
    for c in CENTERS:
        assert float(stats.vonmises_fisher(c, 50.0).pdf(x) @ w) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("idx", [[0], [1, 2, 3], [0, 0, 1], [3, 1, 3, 3, 2, 0, 1]])
def test_log_prob_at_t0_is_uniform(idx: list[int], dtype: torch.dtype) -> None:
    path = VMFMixturePath(torch.tensor(CENTERS[idx], dtype=dtype), ExponentialSchedule(1e4))
    x = torch.cat([random_points(50, 3, dtype), torch.tensor(CENTERS, dtype=dtype)])
    lp = path.log_prob(x, 0.0)
    uniform = torch.tensor(-LOG_AREA, dtype=dtype)
    if len(idx) == 1:
        assert torch.all(lp == uniform)
    else:  # log(pi_i) + log(sum exp) may round by an ulp
        assert (lp - uniform).abs().max() <= 4 * torch.finfo(dtype).eps * LOG_AREA


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_path_equals_explicit_scipy_mixture(t: float) -> None:
    schedule = ExponentialSchedule(200.0)
    centers = CENTERS[[0, 1, 2, 3, 2]]
    path = VMFMixturePath(torch.tensor(centers), schedule)
    x = np.concatenate([random_points(200, 4).numpy(), CENTERS])
    kappa = float(schedule.kappa(torch.tensor(t, dtype=F64)))
    expected = scipy_mixture_logpdf(x, centers, kappa)
    np.testing.assert_allclose(path.log_prob(torch.tensor(x), t).numpy(), expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("floor", [0.05, 0.5])
@pytest.mark.parametrize("t", [0.0, 0.5, 1.0])
def test_floored_path_is_the_mixture_plus_a_uniform_component(t: float, floor: float) -> None:
    schedule = ExponentialSchedule(200.0)
    centers = CENTERS[[0, 1, 2, 3, 2]]
    path = VMFMixturePath(torch.tensor(centers), schedule, floor=floor)
    x = np.concatenate([random_points(200, 4).numpy(), CENTERS, -CENTERS])
    kappa = float(schedule.kappa(torch.tensor(t, dtype=F64)))
    expected = np.log((1 - floor) * np.exp(scipy_mixture_logpdf(x, centers, kappa)) + floor / (4 * math.pi))
    np.testing.assert_allclose(path.log_prob(torch.tensor(x), t).numpy(), expected, rtol=1e-12, atol=1e-12)
    q = path.quantities(torch.tensor(x), t)
    torch.testing.assert_close(q.log_prob, torch.tensor(expected), rtol=0, atol=1e-12)
    xq, wq = sphere_quadrature()
    assert float(path.log_prob(torch.tensor(xq), t).exp().numpy() @ wq) == pytest.approx(1.0, abs=1e-8)


def test_floor_outside_unit_interval_is_refused() -> None:
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match="floor"):
            VMFMixturePath(torch.tensor(CENTERS), LinearSchedule(1.0), floor=bad)


def test_duplicate_centres_are_merged_with_their_weight() -> None:
    a, b = CENTERS[1], CENTERS[2]
    for order in ([a, a, b], [a, b, a], [b, a, a]):
        path = VMFMixturePath(torch.tensor(np.stack(order)), LinearSchedule(8.0))
        assert path.centers.shape == (2, 3) and path.n_data == 3
        x = np.concatenate([random_points(100, 5).numpy(), np.stack([a, b])])
        for t in (0.25, 1.0):
            k = 8.0 * t
            pa, pb = stats.vonmises_fisher(a, k).pdf(x), stats.vonmises_fisher(b, k).pdf(x)
            ref = np.log(2 / 3 * pa + 1 / 3 * pb)
            np.testing.assert_allclose(path.log_prob(torch.tensor(x), t).numpy(), ref, rtol=1e-12, atol=1e-12)


def test_path_rejects_bad_centres() -> None:
    for bad in (torch.zeros(3), torch.zeros(4, 2), torch.zeros(0, 3)):
        with pytest.raises(ValueError, match="centers"):
            VMFMixturePath(bad, LinearSchedule(1.0))


# ----------------------------------------------------------------------------- the mixture path: derivatives
def _central4(f: list[torch.Tensor] | torch.Tensor, h: float) -> torch.Tensor:
    """The fourth-order central difference from values at offsets -2h, -h, h, 2h."""
    return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)


def fd_dlog_prob_dt(path: VMFMixturePath, x: torch.Tensor, t: float, h: float) -> torch.Tensor:
    """d/dt log p_t(x) by the fourth-order central stencil in t."""
    return _central4([path.log_prob(x, t + s * h) for s in (-2, -1, 1, 2)], h)


def fd_grad_along_geodesics(path: VMFMixturePath, x: torch.Tensor, t: float, h: float = 1e-4) -> torch.Tensor:
    """The Riemannian gradient of log p_t at each row of ``x``, from the fourth-order stencil along the
    geodesics in the two directions of a Gram-Schmidt tangent frame."""
    fd_grad = torch.zeros_like(x)
    for j, xi in enumerate(x.numpy()):
        for b in frame(xi):
            # d/ds log p(exp_x(s b)) at s = 0 is <grad, b>; exp_x(s b) = cos(s) x + sin(s) b.
            pts = torch.tensor(np.stack([np.cos(s * h) * xi + np.sin(s * h) * b for s in (-2, -1, 1, 2)]))
            fd_grad[j] += float(_central4(path.log_prob(pts, t), h)) * torch.tensor(b)
    return fd_grad


def _path_and_points(floor: float = 0.0) -> tuple[VMFMixturePath, torch.Tensor]:
    path = VMFMixturePath(torch.tensor(CENTERS[[0, 1, 1, 2, 3]]), ExponentialSchedule(50.0), floor=floor)
    x = torch.cat([random_points(60, 6), torch.tensor(CENTERS), torch.tensor([[0.0, 0.0, -1.0]], dtype=F64)])
    return path, x


@pytest.mark.parametrize("floor", [0.0, 0.2])
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_dlog_prob_dt_matches_finite_difference(t: float, floor: float) -> None:
    path, x = _path_and_points(floor)
    fd = fd_dlog_prob_dt(path, x, t, 1e-3)
    q = path.quantities(x, t)
    # log_prob and quantities reach the same sum by two different reductions.
    torch.testing.assert_close(q.log_prob, path.log_prob(x, t), rtol=0, atol=1e-13)
    scale = float(q.dlog_prob_dt.abs().max())
    assert scale > 1.0
    torch.testing.assert_close(q.dlog_prob_dt, fd, rtol=0, atol=1e-8 * scale)


def test_dlog_prob_dt_at_t0_closed_form() -> None:
    # Near k = 0, log vMF(x; y, k) = -log 4 pi + k <x, y> + O(k^2),
    # so d/dt log p_0 = k'(0) <x, sum_i pi_i y_i>.
    path, x = _path_and_points()
    centers = CENTERS[[0, 1, 1, 2, 3]]
    q = path.quantities(x, 0.0)
    expected = math.log(51.0) * (x.numpy() @ centers.mean(0))
    np.testing.assert_allclose(q.dlog_prob_dt.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert q.grad_log_prob.abs().max() == 0.0


@pytest.mark.parametrize("floor", [0.0, 0.2])
@pytest.mark.parametrize("t", [0.2, 0.6, 1.0])
def test_grad_log_prob_matches_finite_difference_along_geodesics(t: float, floor: float) -> None:
    path, x = _path_and_points(floor)
    q = path.quantities(x, t)
    assert (q.grad_log_prob * x).sum(-1).abs().max() < 1e-12  # tangent
    # between centres log p bends on the scale 1/kappa: the stencil error ~ h^4 kappa^5 must stay small
    fd_grad = fd_grad_along_geodesics(path, x, t, h=1e-4)
    scale = float(q.grad_log_prob.norm(dim=-1).max())
    torch.testing.assert_close(q.grad_log_prob, fd_grad, rtol=0, atol=1e-7 * scale)


@pytest.mark.parametrize("n_centers", [3, 10])
def test_chunked_equals_unchunked(n_centers: int) -> None:
    centers = random_points(n_centers, 7)
    x = random_points(13, 8)
    t = torch.rand(13, generator=torch.Generator().manual_seed(9), dtype=F64)
    whole = VMFMixturePath(centers, ExponentialSchedule(80.0)).quantities(x, t)
    chunked_path = VMFMixturePath(centers, ExponentialSchedule(80.0), chunk_entries=7)
    assert chunked_path.chunk_entries // n_centers < 13  # really more than one chunk
    chunked = chunked_path.quantities(x, t)
    for name in ("log_prob", "dlog_prob_dt", "grad_log_prob"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(chunked_path.log_prob(x, t), whole.log_prob, rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------- float32 safety
@pytest.mark.parametrize("kappa_max", [1e5, KAPPA_CAP])
def test_path_float32_is_finite_and_close_to_float64(kappa_max: float) -> None:
    centers64 = torch.tensor(np.concatenate([CENTERS, [[0.0, 0.0, -1.0]]]))
    centers32 = centers64.float()
    # float64 reference on the *same* float32 inputs, so only the float32 arithmetic differs
    path32 = VMFMixturePath(centers32, ExponentialSchedule(kappa_max))
    path64 = VMFMixturePath(centers32.double(), ExponentialSchedule(kappa_max))
    poles = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    near = centers32 + 1e-3 * torch.tensor([0.3, -0.2, 0.1])
    near = near / near.norm(dim=-1, keepdim=True)
    x32 = torch.cat([poles, centers32, -centers32, near, random_points(100, 10, torch.float32)])
    x64 = x32.double()
    for t in (0.0, 0.5, 0.9, 1.0):
        q32, q64 = path32.quantities(x32, t), path64.quantities(x64, t)
        for name in ("log_prob", "dlog_prob_dt", "grad_log_prob"):
            v = getattr(q32, name)
            assert v.dtype == torch.float32 and torch.isfinite(v).all(), (t, name)
        tt = torch.tensor(t, dtype=F64)
        k, dk = float(path64.schedule.kappa(tt)), float(path64.schedule.dkappa(tt))
        # The logits k(<x, y> - 1) are formed as k <x, y> - k: with float32 eps = 6e-8 and a few roundings,
        # that loses about k * 1e-7 absolutely (cancellation of two numbers of size k), which nothing
        # downstream can recover. So float32 log p agrees with float64 to kappa * 1e-6, no better. The same
        # logit error is a relative error of the softmax weights, so the mean centre m is off by up to
        # k * 1e-6 where two centres compete, and d/dt log p = dk/dt (... + <x, m>) and
        # grad log p = k (m - <x, m> x) inherit it times their scales dk/dt and k.
        k1 = max(k, 1.0)
        assert (q32.log_prob.double() - q64.log_prob).abs().max() <= k1 * 1e-6, t
        assert (q32.dlog_prob_dt.double() - q64.dlog_prob_dt).abs().max() <= max(dk, 1.0) * k1 * 1e-6, t
        assert (q32.grad_log_prob.double() - q64.grad_log_prob).abs().max() <= k * k1 * 1e-6, t
    # the density at a centre at t = 1 is about c(k) = k / 2 pi / N_centres
    at_centre = path32.log_prob(centers32[:1], 1.0)
    assert float(at_centre) == pytest.approx(math.log(kappa_max / (2 * math.pi) / 5), abs=1e-3)


# ----------------------------------------------------------------------------- sampling
MUS = torch.tensor(np.concatenate([CENTERS, [[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]]))


def _ks_cosine(x: torch.Tensor, mu: torch.Tensor, kappa: float) -> float:
    """KS p-value of w = <x, mu> against the exact vMF(kappa) law (via the probability integral transform)."""
    x64 = x.double() / x.double().norm(dim=-1, keepdim=True)
    one_minus_w = ((x64 - mu.double()) ** 2).sum(-1).numpy() / 2.0  # = 1 - <x, mu>, no cancellation
    return stats.kstest(vmf_cosine_cdf(one_minus_w, kappa), "uniform").pvalue


def _ks_azimuth(x: torch.Tensor, mu: torch.Tensor) -> float:
    """KS p-value of the azimuth of x about mu (in a Gram-Schmidt frame at mu) against U(-pi, pi)."""
    x64, mu64 = x.double().numpy(), mu.double().numpy()
    frames = {tuple(m): frame(m) for m in np.unique(mu64, axis=0)}
    b1 = np.stack([frames[tuple(m)][0] for m in mu64])
    b2 = np.stack([frames[tuple(m)][1] for m in mu64])
    phi = np.arctan2((x64 * b2).sum(-1), (x64 * b1).sum(-1))
    return stats.kstest(phi, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue


@pytest.mark.parametrize("kappa", [0.0, 1e-4, 3.0, 300.0, 1e5])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sample_vmf_matches_exact_distribution(kappa: float, dtype: torch.dtype) -> None:
    n = 30_000
    mu = MUS[torch.arange(n) % len(MUS)].to(dtype)
    g = torch.Generator().manual_seed(SEED)
    x = sample_vmf(mu, torch.full((n,), kappa, dtype=dtype), generator=g)
    assert x.shape == (n, 3) and x.dtype == dtype and torch.isfinite(x).all()
    assert (x.norm(dim=-1) - 1).abs().max() < (1e-6 if dtype == torch.float32 else 1e-14)
    assert _ks_cosine(x, mu, kappa) > 1e-3
    assert _ks_azimuth(x, mu) > 1e-3
    # the KS test has power: a sampler with the concentration off by 20% is rejected (for kappa >= 3)
    if kappa >= 3.0:
        assert _ks_cosine(x, mu, 1.2 * kappa) < 1e-6


def test_sample_vmf_per_row_concentration() -> None:
    n = 8000
    kappa = torch.where(torch.arange(n) % 2 == 0, 0.5, 200.0).to(F64)
    mu = MUS[torch.arange(n) % len(MUS)]
    x = sample_vmf(mu, kappa, generator=torch.Generator().manual_seed(SEED + 1))
    for k in (0.5, 200.0):
        rows = kappa == k
        assert _ks_cosine(x[rows], mu[rows], k) > 1e-3 and _ks_azimuth(x[rows], mu[rows]) > 1e-3


def test_sampling_is_exactly_seeded() -> None:
    mu = MUS[torch.arange(100) % len(MUS)]
    k = torch.full((100,), 5.0, dtype=F64)
    a = sample_vmf(mu, k, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, sample_vmf(mu, k, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, sample_vmf(mu, k, generator=torch.Generator().manual_seed(2)))
    path = VMFMixturePath(torch.tensor(CENTERS), ExponentialSchedule(50.0))
    t = torch.rand(100, generator=torch.Generator().manual_seed(3), dtype=F64)
    s = path.sample(t, generator=torch.Generator().manual_seed(4))
    assert torch.equal(s, path.sample(t, generator=torch.Generator().manual_seed(4)))
    assert not torch.equal(s, path.sample(t, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("floor", [0.0, 0.3])
@pytest.mark.parametrize("t", [0.0, 0.7, 1.0])
def test_path_samples_match_density_on_caps(t: float, floor: float) -> None:
    # Centres a, a, b, c (a twice): region counts of n samples against p_t integrated over disjoint caps
    # by quadrature (scipy densities), plus the complement; Pearson chi-square with 4 degrees of freedom.
    a, b, c = CENTERS[1], CENTERS[2], CENTERS[3]
    centers = np.stack([a, a, b, c])
    schedule = ExponentialSchedule(50.0)
    path = VMFMixturePath(torch.tensor(centers), schedule, floor=floor)
    kappa = float(schedule.kappa(torch.tensor(t, dtype=F64)))
    caps = [a, b, c, CENTERS[0]]
    cos_r = math.cos(0.35)
    assert max(float(p @ q) for i, p in enumerate(caps) for q in caps[:i]) < math.cos(0.7)  # disjoint caps
    probs = []
    for cap in caps:
        xq, wq = cap_quadrature(cap, cos_r)
        mixture = float(np.exp(scipy_mixture_logpdf(xq, centers, kappa)) @ wq)
        probs.append((1 - floor) * mixture + floor * (1 - cos_r) / 2)  # a cap's share of the area
    probs.append(1.0 - sum(probs))
    expected = np.array(probs)
    if t == 0.0:
        np.testing.assert_allclose(expected[:4], (1 - cos_r) / 2, rtol=1e-10)

    n = 40_000
    x = path.sample(torch.full((n,), t, dtype=F64), generator=torch.Generator().manual_seed(SEED + 2)).numpy()
    assert x.shape == (n, 3)
    inside = np.stack([x @ cap >= cos_r for cap in caps], axis=1)
    counts = np.append(inside.sum(0), n - inside.sum())
    chi2 = stats.chisquare(counts, n * expected)
    assert chi2.pvalue > 1e-3, (counts, n * expected)


# ----------------------------------------------------------------------------- per-centre scales (adaptive kernel)
SCALED_CENTERS = CENTERS[[0, 1, 1, 2, 3]]
SCALES = np.array([0.3, 2.0, 2.0, 0.5, 3.0])  # centre 1 twice, with its scale twice


def scipy_scaled_logpdf(x: np.ndarray, centers: np.ndarray, kappas: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The adaptive path from scipy: ``(1 - w) (1/N) sum_i [(1 - e^{-2 k_i}) vMF(x; y_i, k_i) + e^{-2 k_i} / 4 pi]
    + w / 4 pi``, one kernel per row."""
    dens = np.zeros(len(x))
    for c, k in zip(centers, kappas, strict=True):
        vmf = stats.vonmises_fisher(c, k).pdf(x) if k > 0 else np.full(len(x), 1 / (4 * math.pi))
        dens += (1 - math.exp(-2 * k)) * vmf + math.exp(-2 * k) / (4 * math.pi)
    return np.log((1 - floor) * dens / len(centers) + floor / (4 * math.pi))


def _scaled_path_and_points(floor: float = 0.0, kappa_max: float = 200.0) -> tuple[VMFMixturePath, torch.Tensor]:
    path = VMFMixturePath(torch.tensor(SCALED_CENTERS), ExponentialSchedule(kappa_max), floor=floor,
                          scales=torch.tensor(SCALES))
    x = torch.cat([random_points(60, 16), torch.tensor(CENTERS), torch.tensor([[0.0, 0.0, -1.0]], dtype=F64)])
    return path, x


@pytest.mark.parametrize("floor", [0.0, 0.2])
@pytest.mark.parametrize("t", [0.0, 0.05, 0.3, 0.8, 1.0])
def test_scaled_path_equals_explicit_scipy_mixture(t: float, floor: float) -> None:
    path, x = _scaled_path_and_points(floor)
    k = float(path.schedule.kappa(torch.tensor(t, dtype=F64)))
    expected = scipy_scaled_logpdf(x.numpy(), SCALED_CENTERS, k * SCALES, floor)
    np.testing.assert_allclose(path.log_prob(x, t).numpy(), expected, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(path.quantities(x, t).log_prob.numpy(), expected, rtol=1e-11, atol=1e-11)
    xq, wq = sphere_quadrature()
    assert float(path.log_prob(torch.tensor(xq), t).exp().numpy() @ wq) == pytest.approx(1.0, abs=1e-8)


def test_scaled_path_batch_of_times_equals_row_by_row() -> None:
    path, x = _scaled_path_and_points(0.1)
    t = torch.linspace(0.0, 1.0, x.shape[0], dtype=F64)
    whole = path.quantities(x, t)
    rows = [path.quantities(x[i : i + 1], t[i : i + 1]) for i in range(x.shape[0])]
    for name in ("log_prob", "dlog_prob_dt", "grad_log_prob"):
        torch.testing.assert_close(getattr(whole, name), torch.cat([getattr(r, name) for r in rows]),
                                   rtol=1e-12, atol=1e-12)


def test_unit_scales_equal_the_shared_kernel_once_it_is_sharp() -> None:
    # the kernels differ by the uniform remainder e^{-2k}: below 1e-17 once k >= 20
    plain, x = _path_and_points(0.1)
    ones = VMFMixturePath(torch.tensor(CENTERS[[0, 1, 1, 2, 3]]), ExponentialSchedule(50.0), floor=0.1,
                          scales=torch.ones(5, dtype=F64))
    for t in (0.8, 0.9, 1.0):
        assert float(plain.schedule.kappa(torch.tensor(t))) >= 20.0
        a, b = ones.quantities(x, t), plain.quantities(x, t)
        for name in ("log_prob", "dlog_prob_dt", "grad_log_prob"):
            torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9)
    # and at small k they differ: the remainder is a different path, not a rounding
    assert (ones.log_prob(x, 0.2) - plain.log_prob(x, 0.2)).abs().max() > 1e-3


@pytest.mark.parametrize("floor", [0.0, 0.2])
@pytest.mark.parametrize("t", [0.05, 0.3, 0.8, 0.95])
def test_scaled_dlog_prob_dt_matches_finite_difference(t: float, floor: float) -> None:
    path, x = _scaled_path_and_points(floor)
    fd = fd_dlog_prob_dt(path, x, t, 1e-4)
    q = path.quantities(x, t)
    scale = float(q.dlog_prob_dt.abs().max())
    assert scale > 0.1
    torch.testing.assert_close(q.dlog_prob_dt, fd, rtol=0, atol=1e-7 * max(scale, 1.0))


def test_scaled_path_at_t0_is_uniform_and_still() -> None:
    # kernel_i = 1/4 pi + k_i^2 <x, y_i> / 2 pi + O(k^3): uniform, with zero time derivative, at k = 0
    path, x = _scaled_path_and_points(0.2)
    q = path.quantities(x, 0.0)
    torch.testing.assert_close(q.log_prob, torch.full_like(q.log_prob, -LOG_AREA), rtol=0, atol=1e-15)
    assert q.dlog_prob_dt.abs().max() < 1e-12 and q.grad_log_prob.abs().max() < 1e-15
    path32 = VMFMixturePath(torch.tensor(SCALED_CENTERS).float(), ExponentialSchedule(3e5),
                            scales=torch.tensor(SCALES).float())
    q32 = path32.quantities(x.float(), 0.0)
    assert (q32.log_prob + LOG_AREA).abs().max() < 1e-6
    assert q32.dlog_prob_dt.abs().max() < 1e-5 * math.log1p(3e5) * SCALES.max()  # see the float32 test below


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_scaled_grad_log_prob_matches_finite_difference_along_geodesics(t: float) -> None:
    path, x = _scaled_path_and_points(0.2)
    q = path.quantities(x, t)
    assert (q.grad_log_prob * x).sum(-1).abs().max() < 1e-12  # tangent
    fd_grad = fd_grad_along_geodesics(path, x, t, h=1e-4)
    scale = float(q.grad_log_prob.norm(dim=-1).max())
    assert scale > 0.1
    torch.testing.assert_close(q.grad_log_prob, fd_grad, rtol=0, atol=1e-6 * scale)


def test_scaled_path_float32_is_finite_and_close_to_float64() -> None:
    # scales up to KAPPA_CAP / kappa_max: the sharpest centre reaches the cap at t = 1
    centers32 = torch.tensor(np.concatenate([CENTERS, [[0.0, 0.0, -1.0]]])).float()
    scales = torch.tensor([1e-3, 0.1, 1.0, 3.0, 30.0], dtype=F64)
    kappa_max = KAPPA_CAP / 30.0
    path32 = VMFMixturePath(centers32, ExponentialSchedule(kappa_max), scales=scales.float())
    path64 = VMFMixturePath(centers32.double(), ExponentialSchedule(kappa_max), scales=scales)
    x32 = torch.cat([centers32, -centers32, random_points(100, 17, torch.float32)])
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        q32, q64 = path32.quantities(x32, t), path64.quantities(x32.double(), t)
        for name in ("log_prob", "dlog_prob_dt", "grad_log_prob"):
            assert torch.isfinite(getattr(q32, name)).all(), (t, name)
        k = float(path64.schedule.kappa(torch.tensor(t, dtype=F64))) * 30.0  # the sharpest kernel
        dk = float(path64.schedule.dkappa(torch.tensor(t, dtype=F64))) * 30.0
        k1 = max(k, 1.0)
        assert (q32.log_prob.double() - q64.log_prob).abs().max() <= k1 * 1e-6, t
        # near t = 0 the two terms of d/dt log p (vMF part and remainders) cancel to O(k): float32 keeps
        # about 1e-5 of their size dk/dt
        assert (q32.dlog_prob_dt.double() - q64.dlog_prob_dt).abs().max() <= max(dk, 1.0) * (k1 * 1e-6 + 1e-5), t
        assert (q32.grad_log_prob.double() - q64.grad_log_prob).abs().max() <= k * k1 * 1e-6 + 1e-30, t


@pytest.mark.parametrize("t", [0.3, 0.6, 1.0])
def test_scaled_path_samples_match_density_on_caps(t: float) -> None:
    a, b, c = CENTERS[1], CENTERS[2], CENTERS[3]
    centers = np.stack([a, a, b, c])
    scales = np.array([3.0, 3.0, 0.2, 1.0])
    schedule = ExponentialSchedule(30.0)
    path = VMFMixturePath(torch.tensor(centers), schedule, floor=0.1, scales=torch.tensor(scales))
    k = float(schedule.kappa(torch.tensor(t, dtype=F64)))
    caps, cos_r = [a, b, c, CENTERS[0]], math.cos(0.35)
    probs = []
    for cap in caps:
        xq, wq = cap_quadrature(cap, cos_r)
        probs.append(float(np.exp(scipy_scaled_logpdf(xq, centers, k * scales, 0.1)) @ wq))
    expected = np.array([*probs, 1.0 - sum(probs)])
    n = 40_000
    x = path.sample(torch.full((n,), t, dtype=F64), generator=torch.Generator().manual_seed(SEED + 3)).numpy()
    inside = np.stack([x @ cap >= cos_r for cap in caps], axis=1)
    counts = np.append(inside.sum(0), n - inside.sum())
    assert stats.chisquare(counts, n * expected).pvalue > 1e-3, (counts, n * expected)
    # and the test has power: sampling every centre at the shared concentration is rejected
    shared = VMFMixturePath(torch.tensor(centers), schedule, floor=0.1)
    y = shared.sample(torch.full((n,), t, dtype=F64), generator=torch.Generator().manual_seed(SEED + 3)).numpy()
    inside = np.stack([y @ cap >= cos_r for cap in caps], axis=1)
    assert stats.chisquare(np.append(inside.sum(0), n - inside.sum()), n * expected).pvalue < 1e-6


def test_bad_scales_are_refused() -> None:
    centers = torch.tensor(CENTERS[[0, 1, 1]])
    for bad in ([1.0, 2.0], [1.0, 0.0, 0.0], [1.0, -1.0, -1.0], [1.0, math.nan, math.nan], [1.0, 2.0, 3.0]):
        with pytest.raises(ValueError, match="scale"):
            VMFMixturePath(centers, LinearSchedule(1.0), scales=torch.tensor(bad, dtype=F64))


# ----------------------------------------------------------------------------- kilometre-scale kernels
EARTH_KM = 6371.0


def _at_distance(y: np.ndarray, km: float, seed: int) -> np.ndarray:
    """Points exactly ``km`` (great circle, on the Earth) from each row of ``y``, in random directions."""
    d = np.random.default_rng(seed).normal(size=y.shape)
    d -= (d * y).sum(1, keepdims=True) * y
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    a = km / EARTH_KM
    return math.cos(a) * y + math.sin(a) * d


def _kilometre_cloud() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Float32 centres (each of CENTERS and a twin 1 km away) and query points 0.1, 1 and 10 km from them; and
    the same float32 numbers normalised in float64 (the points the float32 ones stand for)."""
    centers = np.concatenate([CENTERS, _at_distance(CENTERS, 1.0, 1)])
    x = np.concatenate([_at_distance(centers, km, 2 + i) for i, km in enumerate((0.1, 1.0, 10.0))])
    c32, x32 = torch.tensor(centers).float(), torch.tensor(x).float()

    def unit64(v: torch.Tensor) -> np.ndarray:
        v64 = v.double().numpy()
        return v64 / np.linalg.norm(v64, axis=1, keepdims=True)

    return c32, x32, unit64(c32), unit64(x32)


@pytest.mark.parametrize("kappa", [1e6, 1e7, 1e8])
def test_float32_path_resolves_kilometres_like_scipy(kappa: float) -> None:
    # At kappa = 3e7, <x, y> - 1 for points 1 km apart is about 1e-8, below float32's resolution near 1: the
    # logits must come from chord distances in float64 (module doc, "Precision").
    c32, x32, c64, x64 = _kilometre_cloud()
    path = VMFMixturePath(c32, LinearSchedule(kappa))
    assert path.precise
    expected = scipy_mixture_logpdf(x64, c64, kappa)
    lp = path.log_prob(x32, 1.0)
    assert lp.dtype == torch.float32
    np.testing.assert_allclose(lp.double().numpy(), expected, rtol=0, atol=1e-4)
    q = path.quantities(x32, 1.0)
    np.testing.assert_allclose(q.log_prob.double().numpy(), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("t", [0.7, 0.95, 1.0])
def test_float32_kilometre_path_derivatives_match_finite_differences(t: float) -> None:
    # The float64 path on the float64-normalised points is the reference (its logits lose kappa * 1e-16); its
    # derivatives are finite differences in t and along geodesics (steps far below the 1e-4 rad kernel width).
    kappa_max = 1e8
    c32, x32, c64, x64 = _kilometre_cloud()
    path32 = VMFMixturePath(c32, ExponentialSchedule(kappa_max), floor=0.02)
    path64 = VMFMixturePath(torch.tensor(c64), ExponentialSchedule(kappa_max), floor=0.02)
    q = path32.quantities(x32, t)
    x = torch.tensor(x64)
    fd_t = fd_dlog_prob_dt(path64, x, t, 1e-3)  # its log p loses k * 1e-16: a smaller step amplifies that
    scale = float(fd_t.abs().max())
    assert scale > 10.0
    torch.testing.assert_close(q.dlog_prob_dt.double(), fd_t, rtol=0, atol=1e-5 * scale)
    fd_x = fd_grad_along_geodesics(path64, x, t, h=1e-7)
    k = float(path64.schedule.kappa(torch.tensor(t, dtype=F64)))
    assert float(fd_x.norm(dim=-1).max()) > 0.1 * math.sqrt(k)
    # the gradient k (m - <x, m> x) keeps the float32 mean centre m: it loses about k * 2e-7 absolutely
    torch.testing.assert_close(q.grad_log_prob.double(), fd_x, rtol=0, atol=3e-7 * k)


@pytest.mark.parametrize("kappa", [1e6, 1e7, 1e8])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sample_vmf_at_kilometre_scale(kappa: float, dtype: torch.dtype) -> None:
    # kappa (1 - <x, mu>) is exponential with mean 1 for large kappa, and the mean resultant length
    # coth(kappa) - 1/kappa: 1 - <x, mu> (from the chord, without cancellation) has mean 1/kappa - (coth - 1).
    n = 20_000
    mu = torch.tensor(unit([0.3, -0.5, 0.81]))
    x = sample_vmf(mu.to(dtype).expand(n, 3), torch.full((n,), kappa, dtype=dtype),
                   generator=torch.Generator().manual_seed(SEED))
    assert x.dtype == dtype
    x64 = x.double() / x.double().norm(dim=-1, keepdim=True)
    one_minus_w = ((x64 - mu) ** 2).sum(-1).numpy() / 2.0
    expected_mean = 1.0 / kappa - 2.0 / math.expm1(2.0 * kappa) if kappa < 300 else 1.0 / kappa
    assert one_minus_w.mean() == pytest.approx(expected_mean, rel=4.0 / math.sqrt(n))
    assert stats.kstest(kappa * one_minus_w, "expon").pvalue > 1e-3
    assert _ks_azimuth(x, mu.expand(n, 3)) > 1e-3


def test_precise_path_samples_sit_on_their_centres() -> None:
    # at t = 1 a float32 path at kappa = 1e8 puts its samples 1/sqrt(kappa) = 0.64 km from their centre: kappa
    # (1 - <x, centre>) is exponential with mean 1 (the centres here are far apart, so the nearest is its own)
    c32 = torch.tensor(CENTERS).float()
    path = VMFMixturePath(c32, ExponentialSchedule(1e8))
    assert path.precise
    x = path.sample(torch.ones(4000), generator=torch.Generator().manual_seed(SEED))
    d2 = ((x.double()[:, None, :] - c32.double()[None]) ** 2).sum(-1).min(dim=1).values
    z = 1e8 * d2.numpy() / 2.0
    assert z.mean() == pytest.approx(1.0, rel=0.1)
    assert stats.kstest(z, "expon").pvalue > 1e-3
