"""Contracts of cnfm_core.kde: the floored vMF kernel density and its grid search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from cnfm_core import kde
from cnfm_core.kde import (
    ADAPTIVE_RANGE,
    KAPPA_GRID,
    LEVELS_PER_DOUBLING,
    NEIGHBOUR_GRID,
    SCALE_GRID,
    WEIGHT_GRID,
    AdaptiveKDEFit,
    KDEFit,
    adaptive_kappas,
    fit_adaptive_kde,
    fit_kde,
    kde_log_prob,
)

pytestmark = pytest.mark.usefixtures("single_thread")
MU = np.array([0.3, -0.4, 0.8]) / np.linalg.norm([0.3, -0.4, 0.8])


def uniform_points(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def direct_kde_density(x: np.ndarray, centers: np.ndarray, kappa: float) -> np.ndarray:
    """(1/N) sum_i kappa / (2 pi (1 - e^{-2 kappa})) exp(kappa (<x, y_i> - 1)), straight from the formula."""
    c = kappa / (2.0 * math.pi * (1.0 - math.exp(-2.0 * kappa)))
    return (c * np.exp(kappa * (x @ centers.T - 1.0))).mean(axis=1)


@pytest.mark.parametrize("kappa", [5.0, 200.0, 1e5])
@pytest.mark.parametrize("weight", [0.0, 0.1, 0.5])
def test_kde_log_prob_equals_direct_formula(kappa: float, weight: float) -> None:
    centers = np.concatenate([uniform_points(20, 1), uniform_points(3, 1)])  # with duplicates
    x = np.concatenate([uniform_points(200, 2), centers[:5]])
    got = kde_log_prob(x, centers, kappa, weight)
    p = direct_kde_density(x, centers, kappa)
    with np.errstate(divide="ignore"):
        expected = np.log((1.0 - weight) * p + weight / (4.0 * math.pi))
    assert got.shape == (205,) and got.dtype == np.float64
    if weight == 0.0 and kappa == 1e5:
        # far from every centre p underflows in the direct formula: there use the same sum in log space
        ok = p > 1e-250
        assert 5 <= ok.sum() < len(x)
        np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-11)
        log_c = math.log(kappa / (2.0 * math.pi * -math.expm1(-2.0 * kappa)))
        in_logs = logsumexp(kappa * (x @ centers.T - 1.0), axis=1) + log_c - math.log(len(centers))
        np.testing.assert_allclose(got, in_logs, rtol=1e-11)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)
    if weight > 0:
        assert np.all(got >= math.log(weight) - math.log(4 * math.pi) - 1e-12)  # the floor


def test_kde_log_prob_accepts_float32_inputs() -> None:
    centers = uniform_points(10, 3)
    x = uniform_points(30, 4)
    np.testing.assert_allclose(
        kde_log_prob(x.astype(np.float32), centers.astype(np.float32), 50.0, 0.05),
        kde_log_prob(x.astype(np.float32).astype(np.float64), centers.astype(np.float32).astype(np.float64),
                     50.0, 0.05),
        rtol=1e-12,
    )


@pytest.mark.parametrize("kappa", [1e6, 1e7, 1e8])
def test_kde_resolves_kilometres_from_float32_points_like_scipy(kappa: float) -> None:
    # centres 1 km apart and points 0.1 to 10 km away, stored as float32: unit only to about 6e-8, which
    # kappa (<x, y> - 1) would turn into nats at these kappa; the KDE reads them as the unit vectors they stand for
    rng = np.random.default_rng(5)

    def at_km(y: np.ndarray, km: float) -> np.ndarray:
        d = rng.standard_normal(y.shape)
        d -= (d * y).sum(1, keepdims=True) * y
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return math.cos(km / 6371.0) * y + math.sin(km / 6371.0) * d

    base = uniform_points(4, 6)
    centers = np.concatenate([base, at_km(base, 1.0)]).astype(np.float32)
    x = np.concatenate([at_km(centers.astype(np.float64), km) for km in (0.1, 1.0, 10.0)]).astype(np.float32)

    def unit64(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.float64)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    logs = np.stack([stats.vonmises_fisher(c, kappa).logpdf(unit64(x)) for c in unit64(centers)])
    expected = np.logaddexp(math.log(0.98) + logsumexp(logs, axis=0) - math.log(len(centers)),
                            math.log(0.02 / (4.0 * math.pi)))
    np.testing.assert_allclose(kde_log_prob(x, centers, kappa, 0.02), expected, rtol=0, atol=1e-6)


def test_fit_kde_recovers_the_concentration_of_a_single_vmf() -> None:
    # With the one centre mu as "training set" the KDE is vMF(mu, kappa) itself, so the grid search is the
    # maximum-likelihood estimate of kappa on the validation points: it must land next to the true 50.
    val = stats.vonmises_fisher(MU, 50.0).rvs(3000, random_state=np.random.default_rng(5))
    fit = fit_kde(MU[None], val)
    assert isinstance(fit, KDEFit)
    assert 25.0 <= fit.kappa <= 100.0
    assert fit.kappa in KAPPA_GRID and fit.weight == 0.0
    own = -float(np.mean(kde_log_prob(val, MU[None], fit.kappa, fit.weight)))
    assert fit.val_nll == pytest.approx(own, rel=1e-12)
    # it is the minimum over the whole grid
    for kappa in KAPPA_GRID[::3]:
        for w in WEIGHT_GRID:
            assert fit.val_nll <= -float(np.mean(kde_log_prob(val, MU[None], kappa, w))) + 1e-12


def test_fit_kde_on_samples_picks_a_kernel_narrower_than_the_data() -> None:
    # A real KDE from n samples of vMF(50) needs a kernel narrower than the data (kappa >= 50, growing
    # with n); its validation NLL approaches the true NLL.
    rng = np.random.default_rng(6)
    dist = stats.vonmises_fisher(MU, 50.0)
    train, val = dist.rvs(500, random_state=rng), dist.rvs(1000, random_state=rng)
    fit = fit_kde(train, val)
    assert 50.0 <= fit.kappa <= 2000.0
    true_nll = -float(np.mean(dist.logpdf(val)))
    assert true_nll - 0.01 < fit.val_nll < true_nll + 0.1


def test_fit_kde_uses_the_floor_for_outliers() -> None:
    rng = np.random.default_rng(7)
    val = np.concatenate([stats.vonmises_fisher(MU, 50.0).rvs(900, random_state=rng), uniform_points(100, 8)])
    fit = fit_kde(MU[None], val, kappas=(10.0, 31.6, 56.2, 100.0))
    assert 0.05 <= fit.weight <= 0.2
    assert fit.kappa in (31.6, 56.2)


def test_fit_kde_needs_validation_points() -> None:
    with pytest.raises(ValueError):
        fit_kde(uniform_points(5, 9), np.zeros((0, 3)))


# ----------------------------------------------------------------------------- the adaptive (per-point) kernel
def test_kde_log_prob_with_a_concentration_per_centre_is_the_scipy_mixture() -> None:
    rng = np.random.default_rng(10)
    centers = np.concatenate([uniform_points(7, 11), uniform_points(2, 11)])  # two points repeated
    kappa = np.concatenate([rng.uniform(10.0, 3000.0, 7), [0.0, 0.0]])
    kappa[7:] = kappa[:2]  # a repeated point keeps its concentration
    x = np.concatenate([uniform_points(300, 12), centers])
    for weight in (0.0, 0.05):
        dens = np.mean([stats.vonmises_fisher(c, k).pdf(x) for c, k in zip(centers, kappa, strict=True)], axis=0)
        expected = np.log((1 - weight) * dens + weight / (4 * math.pi))
        np.testing.assert_allclose(kde_log_prob(x, centers, kappa, weight), expected, rtol=1e-10, atol=1e-10)


def test_adaptive_kappas_follow_the_kth_neighbour_distance() -> None:
    train = np.concatenate([uniform_points(600, 13), uniform_points(40, 13)])  # 40 points twice
    for k, a in ((1, 1.0), (3, 3.0)):
        got = adaptive_kappas(train, k, a)
        assert got.shape == (640,)
        np.testing.assert_array_equal(got[600:], got[:40])  # repeated points share theirs
        unique = train[:600]
        d2 = np.sort(((unique[:, None] - unique[None]) ** 2).sum(-1), axis=1)[:, k]  # brute force, distinct points
        raw = np.clip(a / d2, *ADAPTIVE_RANGE)
        # rounded to a level: within half a level of the raw value, and on the grid 10 * 2^(j / levels)
        half = 2.0 ** (0.5 / LEVELS_PER_DOUBLING)
        assert np.all(got[:600] <= raw * half * (1 + 1e-12)) and np.all(got[:600] >= raw / half * (1 - 1e-12))
        j = LEVELS_PER_DOUBLING * np.log2(got / ADAPTIVE_RANGE[0])
        on_grid = np.abs(j - np.round(j)) < 1e-9
        assert np.all(on_grid | (got == ADAPTIVE_RANGE[1]))
        assert len(np.unique(got)) <= LEVELS_PER_DOUBLING * np.log2(ADAPTIVE_RANGE[1] / ADAPTIVE_RANGE[0]) + 2


def test_neighbour_search_in_blocks_equals_one_block(monkeypatch) -> None:
    train = uniform_points(500, 17)
    whole = adaptive_kappas(train, 3, 3.0)
    monkeypatch.setattr(kde, "_TABLE_ENTRIES", 500 * 7)  # blocks of 7 rows, the last one short
    np.testing.assert_array_equal(adaptive_kappas(train, 3, 3.0), whole)
    d2 = np.sort(((train[:, None] - train[None]) ** 2).sum(-1), axis=1)[:, 3]
    np.testing.assert_allclose(kde._knn_chord2(train, (3,))[0], d2, rtol=1e-9, atol=1e-12)


def test_adaptive_kappas_clip_and_tolerate_tiny_sets() -> None:
    two = uniform_points(2, 14)
    got = adaptive_kappas(two, 30, 1.0)  # k above the number of other points: the farthest one
    assert np.all(got >= ADAPTIVE_RANGE[0]) and np.all(got <= ADAPTIVE_RANGE[1])
    one = np.repeat(uniform_points(1, 15), 3, axis=0)  # a single location: as sharp as allowed
    np.testing.assert_array_equal(adaptive_kappas(one, 1, 1.0), ADAPTIVE_RANGE[1])


def test_fit_adaptive_kde_beats_one_bandwidth_on_two_scales() -> None:
    # a tight cluster (kappa 5000) and a broad one (kappa 20): no single bandwidth suits both, one per point does
    rng = np.random.default_rng(16)
    other = np.array([-0.6, 0.7, 0.2]) / np.linalg.norm([-0.6, 0.7, 0.2])

    def draw(n: int) -> np.ndarray:
        return np.concatenate([stats.vonmises_fisher(MU, 5000.0).rvs(n, random_state=rng),
                               stats.vonmises_fisher(other, 20.0).rvs(n, random_state=rng)])

    train, val, test = draw(400), draw(300), draw(300)
    fixed, adaptive = fit_kde(train, val), fit_adaptive_kde(train, val)
    assert isinstance(adaptive, AdaptiveKDEFit)
    assert adaptive.neighbours in NEIGHBOUR_GRID and adaptive.scale in SCALE_GRID and adaptive.weight in WEIGHT_GRID
    kappa = adaptive_kappas(train, adaptive.neighbours, adaptive.scale)
    own = -float(np.mean(kde_log_prob(val, train, kappa, adaptive.weight)))
    assert adaptive.val_nll == pytest.approx(own, rel=1e-12)
    test_fixed = -float(np.mean(kde_log_prob(test, train, fixed.kappa, fixed.weight)))
    test_adaptive = -float(np.mean(kde_log_prob(test, train, kappa, adaptive.weight)))
    assert adaptive.val_nll < fixed.val_nll - 0.05 and test_adaptive < test_fixed - 0.05


def test_fit_adaptive_kde_needs_validation_points() -> None:
    with pytest.raises(ValueError):
        fit_adaptive_kde(uniform_points(5, 9), np.zeros((0, 3)))
