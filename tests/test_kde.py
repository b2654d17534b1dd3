"""Contracts of cnfm_core.kde: the floored vMF kernel density and its grid search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from cnfm_core.kde import KAPPA_GRID, WEIGHT_GRID, KDEFit, fit_kde, kde_log_prob

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
