"""Contracts of the torus: the wrap, the von Mises functions and sampler, the mixture path, the KDE and the
synthetic mixtures.

References are independent of the code under test: scipy's Bessel functions and von Mises distribution,
mpmath at 40 digits, periodic trapezoid quadrature (spectrally accurate for smooth periodic integrands),
finite differences, and KS tests against exact CDFs.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import special, stats
from scipy.special import logsumexp

from cnfm_core.manifolds.torus import Torus, wrap_angle
from cnfm_core.schedules import ExponentialSchedule, LinearSchedule
from cnfm_core.torus_auto import KAPPA_FACTOR, TORUS_KAPPA_DEFAULT, choose_torus_settings
from cnfm_core.torus_kde import TORUS_KAPPA_GRID, fit_torus_kde, torus_kde_log_prob
from cnfm_core.torus_path import VonMisesMixturePath
from cnfm_core.torus_synthetic import TORUS_MIXTURES, VonMisesProductMixture
from cnfm_core.von_mises import log_normalizer, log_prob, one_minus_mean_resultant, sample_von_mises

pytestmark = pytest.mark.usefixtures("single_thread")
F32, F64 = torch.float32, torch.float64
LOG_2PI = math.log(2.0 * math.pi)
KAPPAS = [0.0, 1e-8, 1e-3, 1.0, 50.0, 1e4, 1e7]


def grid(n: int, d: int) -> tuple[torch.Tensor, float]:
    """Midpoint nodes of an ``n^d`` grid on ``[-π, π)^d`` and the cell volume (the periodic trapezoid rule)."""
    g = (torch.arange(n, dtype=F64) + 0.5) * (2 * math.pi / n) - math.pi
    pts = torch.stack(torch.meshgrid(*([g] * d), indexing="ij"), -1).reshape(-1, d)
    return pts, (2 * math.pi / n) ** d


def random_angles(n: int, d: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, d, generator=g, dtype=F64) * 2 * math.pi - math.pi).to(dtype)


def mp_one_minus_a(k: float) -> float:
    with mpmath.workdps(40):
        return float(1 - mpmath.besseli(1, k) / mpmath.besseli(0, k))


# ----------------------------------------------------------------------------- wrap and the manifold
@pytest.mark.parametrize("dtype", [F32, F64])
def test_wrap_maps_exactly_into_half_open_interval(dtype: torch.dtype) -> None:
    pi = torch.tensor(math.pi, dtype=dtype)
    edges = torch.tensor([math.pi, -math.pi, 3 * math.pi, -3 * math.pi, 2 * math.pi, 1e7, -1e7], dtype=dtype)
    near = torch.stack([torch.nextafter(pi, -2 * pi), torch.nextafter(-pi, -2 * pi), torch.nextafter(pi, 2 * pi)])
    a = torch.cat([edges, near, torch.randn(100_000, generator=torch.Generator().manual_seed(0), dtype=dtype) * 50])
    w = wrap_angle(a)
    assert bool(((w >= -pi) & (w < pi)).all())
    assert float(wrap_angle(pi)) == float(-pi)
    # a whole number of turns away, to the rounding of a (|a| < 1e3 here: ulp(a) / 2π turns at most)
    small = a.abs() < 1e3
    turns = ((a.double() - w.double()) / (2 * math.pi))[small].numpy()
    np.testing.assert_allclose(turns, np.round(turns), rtol=0, atol=2e-5 if dtype == F32 else 1e-12)
    inside = torch.tensor([-math.pi, -1.0, -1e-30, 0.0, 1e-30, 1e-3, 3.0], dtype=dtype)
    assert torch.equal(wrap_angle(inside), inside)  # bit for bit


def test_torus_maps() -> None:
    t3 = Torus(3)
    x, y = random_angles(200, 3, 1), random_angles(200, 3, 2)
    u = t3.logmap(x, y)
    assert bool((u.abs() <= math.pi).all())
    torch.testing.assert_close(t3.expmap(x, u), y, rtol=0, atol=1e-12)
    # shortest: no other lift y - x + 2πk is shorter, coordinate by coordinate
    diffs = (y - x)[..., None] + 2 * math.pi * torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=F64)
    torch.testing.assert_close(u.abs(), diffs.abs().amin(-1), rtol=0, atol=1e-12)
    # distances across the seam and tiny distances in float32 keep their relative precision
    a = torch.tensor([[math.pi - 0.05, 0.0, 0.0]], dtype=F32)
    assert float(t3.dist(a, torch.tensor([[-math.pi + 0.05, 0.0, 0.0]], dtype=F32))) == pytest.approx(0.1, rel=1e-5)
    b = torch.tensor([[0.5, -1.0, 2.0]], dtype=F32)
    c = b + torch.tensor([[1e-6, 0.0, 0.0]])
    assert float(t3.dist(b, c)) == pytest.approx(float(c[0, 0].double() - b[0, 0].double()), rel=1e-6)
    assert t3.log_volume == pytest.approx(3 * LOG_2PI, rel=1e-15)
    z = t3.random_uniform(1000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (1000, 3) and bool(((z >= -math.pi) & (z < math.pi)).all())


def test_torus_geodesic_and_features() -> None:
    t2 = Torus(2)
    x0, x1 = random_angles(50, 2, 3), random_angles(50, 2, 4)
    t = torch.rand(50, generator=torch.Generator().manual_seed(5), dtype=F64)
    xt, ut = t2.geodesic(x0, x1, t)
    torch.testing.assert_close(t2.geodesic(x0, x1, torch.zeros(50, dtype=F64))[0], x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(t2.dist(t2.geodesic(x0, x1, torch.ones(50, dtype=F64))[0], x1),
                               torch.zeros(50, dtype=F64), rtol=0, atol=1e-12)
    # constant speed: the distance covered by time t is t |u| (|u| <= π sqrt(d), no wrap shortcut at t <= 1/2)
    half = t.clamp(max=0.5)
    torch.testing.assert_close(t2.dist(x0, t2.geodesic(x0, x1, half)[0]), half * ut.norm(dim=-1), rtol=1e-10,
                               atol=1e-12)
    # feature tangents are directional derivatives of the features
    tangents = torch.randn(2, 50, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    h = 1e-6
    fd = (t2.features(xt + h * tangents) - t2.features(xt - h * tangents)) / (2 * h)
    torch.testing.assert_close(t2.feature_tangents(xt, tangents), fd, rtol=1e-8, atol=1e-9)
    frame = t2.tangent_frame(xt)
    assert frame.shape == (2, 50, 2) and torch.equal(frame[0, 0], torch.tensor([1.0, 0.0], dtype=F64))
    assert bool((t2.projection_divergence(xt, ut) == 0).all())


# ----------------------------------------------------------------------------- one von Mises
@pytest.mark.parametrize("dtype", [F32, F64])
def test_log_normalizer_matches_scipy(dtype: torch.dtype) -> None:
    got = log_normalizer(torch.tensor(KAPPAS, dtype=dtype))
    assert got.dtype == dtype
    ref = -LOG_2PI - np.log(special.i0e(np.array(KAPPAS)))
    rtol = 1e-7 if dtype == F32 else 1e-14
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=rtol, atol=0)
    assert float(log_normalizer(torch.zeros((), dtype=dtype))) == float(torch.tensor(-LOG_2PI, dtype=dtype))


@pytest.mark.parametrize("dtype", [F32, F64])
def test_one_minus_mean_resultant_against_mpmath(dtype: torch.dtype) -> None:
    ks = [1e-8, 1e-3, 1.0, 50.0, 199.9, 200.0, 200.1, 1e3, 1e4, 1e7, 1e12]
    ref = np.array([mp_one_minus_a(k) for k in ks])
    got = one_minus_mean_resultant(torch.tensor(ks, dtype=dtype)).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-7 if dtype == F32 else 1e-12, atol=0)
    assert float(one_minus_mean_resultant(torch.zeros((), dtype=dtype))) == 1.0


@pytest.mark.parametrize("kappa", [0.0, 1e-3, 1.0, 50.0, 1e4, 1e6])
def test_von_mises_density_integrates_to_one(kappa: float) -> None:
    theta, dv = grid(1 << 16, 1)
    lp = log_prob(theta[:, 0], torch.tensor(0.7, dtype=F64), kappa)
    assert float(lp.exp().sum() * dv) == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(lp[::997].numpy(), stats.vonmises(max(kappa, 1e-300), loc=0.7).logpdf(
        theta[::997, 0].numpy()) if 0 < kappa < 1e5 else lp[::997].numpy(), rtol=1e-10, atol=1e-10)


def test_von_mises_log_prob_matches_scipy() -> None:
    theta = random_angles(300, 1, 7)[:, 0]
    for kappa in (1e-3, 1.0, 50.0, 700.0):
        ref = stats.vonmises(kappa, loc=-2.9).logpdf(theta.numpy())
        np.testing.assert_allclose(log_prob(theta, torch.tensor(-2.9, dtype=F64), kappa).numpy(), ref, rtol=1e-11,
                                   atol=1e-11)


@pytest.mark.parametrize("kappa", [0.0, 1e-12, 1e-3, 1.0, 50.0, 1e4])
def test_sampler_matches_von_mises_cdf(kappa: float) -> None:
    g = torch.Generator().manual_seed(11)
    x = sample_von_mises(torch.full((20_000,), 2.5, dtype=F64), torch.tensor(kappa, dtype=F64), generator=g)
    assert bool(((x >= -math.pi) & (x < math.pi)).all())
    delta = wrap_angle(x - 2.5).numpy()
    ref = stats.uniform(-math.pi, 2 * math.pi).cdf if kappa < 1e-10 else stats.vonmises(kappa).cdf
    assert stats.kstest(delta, ref).pvalue > 1e-3
    # the first trigonometric moment E cos(θ - μ) = A(κ), within 5 standard errors
    a = 1.0 - mp_one_minus_a(kappa) if kappa > 0 else 0.0
    c = np.cos(delta)
    assert abs(c.mean() - a) < 5 * c.std() / math.sqrt(len(c)) + 1e-12


@pytest.mark.parametrize("kappa", [1e6, 1e9, 1e12])
def test_sampler_at_large_concentration(kappa: float) -> None:
    # vM(0, κ) is N(0, 1/κ) to O(1/κ); the angle must keep its relative precision (no acos near 1)
    for dtype in (F32, F64):
        x = sample_von_mises(torch.zeros(20_000, dtype=dtype), torch.tensor(kappa), generator=torch.Generator()
                             .manual_seed(12))
        assert x.dtype == dtype
        assert stats.kstest(x.double().numpy() * math.sqrt(kappa), "norm").pvalue > 1e-3


def test_sampler_is_reproducible_and_broadcasts() -> None:
    mu, k = random_angles(100, 3, 8), torch.tensor([0.5, 5.0, 5e3], dtype=F64)
    a = sample_von_mises(mu, k, generator=torch.Generator().manual_seed(1))
    b = sample_von_mises(mu, k, generator=torch.Generator().manual_seed(1))
    assert a.shape == (100, 3) and torch.equal(a, b)


# ----------------------------------------------------------------------------- the mixture path
CENTRES2 = torch.tensor([[0.3, -2.0], [3.0, 3.1], [-3.1, 0.0], [0.3, -2.0], [1.5, 1.0]], dtype=F64)


@pytest.mark.parametrize("floor", [0.0, 0.05])
@pytest.mark.parametrize("kappa_max", [1.0, 50.0, 2000.0])
def test_path_integrates_to_one_on_t2(kappa_max: float, floor: float) -> None:
    path = VonMisesMixturePath(CENTRES2, ExponentialSchedule(kappa_max), floor=floor)
    pts, dv = grid(1024, 2)
    for t in (0.0, 0.4, 1.0):
        mass = float(path.log_prob(pts, t).exp().sum() * dv)
        assert mass == pytest.approx(1.0, abs=1e-9), t
    assert float((path.log_prob(pts[:7], 0.0) + 2 * LOG_2PI).abs().max()) < 1e-14


@pytest.mark.parametrize("d", [1, 3])
def test_path_integrates_to_one_on_t1_and_t3(d: int) -> None:
    centres = random_angles(6, d, 9)
    path = VonMisesMixturePath(centres, LinearSchedule(20.0), floor=0.02)
    pts, dv = grid(4096 if d == 1 else 64, d)
    for t in (0.5, 1.0):
        assert float(path.log_prob(pts, t).exp().sum() * dv) == pytest.approx(1.0, abs=1e-9)


def test_path_log_prob_matches_scipy_mixture() -> None:
    kappa = 7.0
    path = VonMisesMixturePath(CENTRES2, LinearSchedule(kappa), floor=0.1)
    x = random_angles(50, 2, 10)
    comp = np.stack([stats.vonmises(kappa, loc=c.numpy()).logpdf(x.numpy()).sum(-1) for c in CENTRES2])
    ref = np.logaddexp(math.log(0.9) + logsumexp(comp, axis=0) - math.log(len(CENTRES2)), math.log(0.1) - 2 * LOG_2PI)
    np.testing.assert_allclose(path.log_prob(x, 1.0).numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kappa_max", "floor"), [(5.0, 0.0), (300.0, 0.02), (1e4, 0.02)])
def test_path_derivatives_against_finite_differences(kappa_max: float, floor: float) -> None:
    centres = random_angles(40, 3, 11)
    path = VonMisesMixturePath(centres, ExponentialSchedule(kappa_max), floor=floor)
    x = wrap_angle(centres[:20] + 0.3 / math.sqrt(kappa_max) * torch.randn(20, 3, dtype=F64))
    t = torch.tensor([0.001, 0.01, 0.3, 0.5, 0.8, 0.95, 0.999] * 3, dtype=F64)[:20]
    q = path.quantities(x, t)
    torch.testing.assert_close(q.log_prob, path.log_prob(x, t), rtol=0, atol=1e-12)

    def stencil(f: object, h: float) -> torch.Tensor:
        return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h)

    h = 1e-4
    dt = stencil(lambda s: path.log_prob(x, t + s), h)
    scale = 1.0 + q.dlog_prob_dt.abs()
    assert float(((dt - q.dlog_prob_dt) / scale).abs().max()) < 1e-6
    hx = 1e-3 / math.sqrt(kappa_max)
    for j in range(3):
        e = torch.zeros(3, dtype=F64)
        e[j] = 1.0
        fd = stencil(lambda s, e=e: path.log_prob(x + s * e, t), hx)
        assert float(((fd - q.grad_log_prob[:, j]) / (1.0 + q.grad_log_prob[:, j].abs())).abs().max()) < 1e-6
    # the ends, where the schedule stops: one-sided second-order differences
    for end, sign in ((0.0, 1.0), (1.0, -1.0)):
        te = torch.full((20,), end, dtype=F64)
        f = [path.log_prob(x, te + sign * i * h) for i in range(3)]
        fd = sign * (-3 * f[0] + 4 * f[1] - f[2]) / (2 * h)
        got = path.quantities(x, te).dlog_prob_dt
        assert float(((fd - got) / (1.0 + got.abs())).abs().max()) < 1e-5


@pytest.mark.parametrize("adaptive", [False, True])
def test_path_float32_agrees_with_float64_and_chunks(adaptive: bool) -> None:
    centres = random_angles(300, 2, 12)
    # the adaptive kernel: a concentration factor per centre and coordinate, on 8 levels from 1/4 to 2
    scales = torch.exp2(torch.randint(-16, 9, (300, 2), generator=torch.Generator().manual_seed(1)) / 8).double()
    s64, s32 = (scales, scales.float()) if adaptive else (None, None)
    p64 = VonMisesMixturePath(centres, ExponentialSchedule(1e3), floor=0.02, chunk_entries=3000, scales=s64)
    p32 = VonMisesMixturePath(centres.float(), ExponentialSchedule(1e3), floor=0.02, scales=s32)
    x, t = random_angles(64, 2, 13), torch.rand(64, generator=torch.Generator().manual_seed(0), dtype=F64)
    q64, q32 = p64.quantities(x, t), p32.quantities(x.float(), t.float())
    # float32 loses about κ d 6e-8 in a logit (module doc), so tolerances scale with κ_max
    torch.testing.assert_close(q32.log_prob.double(), q64.log_prob, rtol=0, atol=1e-3)
    torch.testing.assert_close(q32.grad_log_prob.double(), q64.grad_log_prob, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(q32.dlog_prob_dt.double(), q64.dlog_prob_dt, rtol=1e-3, atol=0.05)


def test_path_samples_match_the_path() -> None:
    # one centre, no floor: each coordinate is vM(μ_j, κ(t)); with a floor, a mixture with the uniform
    mu = torch.tensor([[2.0, -3.0]], dtype=F64)
    sched = ExponentialSchedule(100.0)
    t = torch.full((20_000,), 0.6, dtype=F64)
    kappa = float(sched.kappa(torch.tensor(0.6, dtype=F64)))
    for floor in (0.0, 0.3):
        path = VonMisesMixturePath(mu, sched, floor=floor)
        x = path.sample(t, generator=torch.Generator().manual_seed(14))
        assert x.shape == (20_000, 2) and bool(((x >= -math.pi) & (x < math.pi)).all())
        for j in range(2):
            delta = wrap_angle(x[:, j] - mu[0, j]).numpy()

            def cdf(v: np.ndarray, floor: float = floor) -> np.ndarray:
                return (1 - floor) * stats.vonmises(kappa).cdf(v) + floor * (v + math.pi) / (2 * math.pi)

            assert stats.kstest(delta, cdf).pvalue > 1e-3


def test_path_samples_chi_square_on_t2() -> None:
    # histogram of exact samples against cell masses from quadrature of the path's density
    path = VonMisesMixturePath(CENTRES2, ExponentialSchedule(30.0), floor=0.05)
    n, bins = 40_000, 8
    x = path.sample(torch.full((n,), 0.7, dtype=F64), generator=torch.Generator().manual_seed(15))
    counts = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=bins, range=[[-math.pi, math.pi]] * 2)[0]
    pts, dv = grid(bins * 32, 2)
    dens = path.log_prob(pts, 0.7).exp().reshape(bins, 32, bins, 32).sum((1, 3)).numpy() * dv
    assert stats.chisquare(counts.ravel(), n * dens.ravel() / dens.sum()).pvalue > 1e-3


def test_path_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="floor"):
        VonMisesMixturePath(CENTRES2, LinearSchedule(1.0), floor=1.0)
    with pytest.raises(ValueError, match="shape"):
        VonMisesMixturePath(torch.zeros(0, 2), LinearSchedule(1.0))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        VonMisesMixturePath(CENTRES2, LinearSchedule(1.0)).log_prob(torch.zeros(3, 3, dtype=F64), 0.5)


# ----------------------------------------------------------------------------- KDE and synthetic mixtures
def test_torus_kde_matches_scipy_and_fits() -> None:
    m = TORUS_MIXTURES["T2"]
    pts = m.sample(700, seed=3).numpy()
    x, centres = pts[:50], pts[50:]
    comp = np.stack([stats.vonmises(20.0, loc=c).logpdf(x).sum(-1) for c in centres])
    ref = np.logaddexp(math.log(0.95) + logsumexp(comp, axis=0) - math.log(len(centres)), math.log(0.05) - 2 * LOG_2PI)
    np.testing.assert_allclose(torus_kde_log_prob(x, centres, 20.0, 0.05), ref, rtol=1e-12, atol=1e-12)
    fit = fit_torus_kde(pts[200:], pts[:200])
    assert 1.0 < fit.kappa < 1e3 and math.isfinite(fit.val_nll) and fit.val_nll < 2 * LOG_2PI


def test_synthetic_mixture_density_and_entropy() -> None:
    for m in TORUS_MIXTURES.values():
        x = random_angles(40, m.dim, 16)
        comp = np.stack([stats.vonmises(k, loc=mu).logpdf(x.numpy()).sum(-1) + math.log(w)
                         for w, mu, k in zip(m.weights, m.means, m.kappas, strict=True)])
        np.testing.assert_allclose(m.log_prob(x).numpy(), logsumexp(comp, axis=0), rtol=1e-12)
        h, se = m.entropy(n=40_000, seed=1)
        assert 0 < se < 0.02 and h < m.dim * LOG_2PI
    # T¹ with one component: the entropy has the closed form log(2π I₀(κ)) - κ A(κ)
    one = VonMisesProductMixture(np.array([1.0]), np.array([[0.4]]), np.array([[3.0]]))
    h, se = one.entropy(n=200_000, seed=2)
    exact = LOG_2PI + math.log(special.i0(3.0)) - 3.0 * special.i1(3.0) / special.i0(3.0)
    assert abs(h - exact) < 5 * se


def test_torus_auto_rule() -> None:
    pts = TORUS_MIXTURES["T2"].sample(1200, seed=4).numpy()
    choice = choose_torus_settings(pts[:1000], pts[1000:])
    assert choice.held_out == "the validation split" and choice.space_frequencies == 0
    assert choice.kde_kappa in TORUS_KAPPA_GRID
    assert choice.kappa_max == pytest.approx(min(max(KAPPA_FACTOR * choice.kde_kappa, 1.0), 1e5))
    assert "κ_max" in choice.describe() and "von Mises kernel density" in choice.describe()
    # no validation points: a tenth of the training points stands in; too few points: the fixed default
    assert choose_torus_settings(pts[:500], pts[:0]).held_out == "a tenth of the training points"
    few = choose_torus_settings(pts[:10], pts[:0])
    assert (few.kappa_max, few.kde_kappa) == (TORUS_KAPPA_DEFAULT, None) and "Too few points" in few.describe()
