"""Contracts of cnfm_core.clustered: a normalised density, its samples follow it,
and its entropy is known two ways. References: importance sampling from wider vMF proposals, scipy's vMF entropy,
exact per-component CDFs (KS) and a chi-square test of the component counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cnfm_core.clustered import clustered_mixture, separated_entropy, vmf_entropy
from cnfm_core.paths import sample_vmf, vmf_log_prob

pytestmark = pytest.mark.usefixtures("single_thread")
F64 = torch.float64


def test_the_mixture_spans_six_degrees_to_two_kilometres() -> None:
    m = clustered_mixture()
    assert float(m.kappa.min()) == pytest.approx(1e2) and float(m.kappa.max()) == pytest.approx(1e7)
    assert float(m.weights.sum()) == pytest.approx(1.0, abs=1e-15)
    widths_km = 6371.0 / np.sqrt(m.kappa)
    assert widths_km.max() > 600 and widths_km.min() < 2.1  # 5.7 degrees to 2 km
    # centres far apart: the nearest pair is over 50 degrees apart
    c = m.centers.numpy()
    cos = c @ c.T - 2.0 * np.eye(len(c))
    assert math.degrees(math.acos(cos.max())) > 50.0


def test_density_integrates_to_one_by_importance_sampling() -> None:
    # proposals: the same centres at a quarter of the concentration (wider, so p / q is bounded by 4)
    m = clustered_mixture()
    n = 40_000
    g = torch.Generator().manual_seed(7)
    comp = torch.randint(len(m.kappa), (n,), generator=g)
    kq = torch.as_tensor(m.kappa, dtype=F64) / 4.0
    x = sample_vmf(m.centers[comp], kq[comp], generator=g)
    log_q = torch.logsumexp(vmf_log_prob(x[:, None, :], m.centers[None], kq[None]), dim=1) - math.log(len(kq))
    ratio = torch.exp(m.log_prob(x) - log_q).numpy()
    assert ratio.max() <= 4.0 + 1e-9
    se = ratio.std(ddof=1) / math.sqrt(n)
    assert abs(ratio.mean() - 1.0) < 4.0 * se
    assert se < 0.01


def test_samples_follow_the_components_and_their_exact_laws() -> None:
    m = clustered_mixture()
    x = m.sample(22_000, seed=3).numpy()
    c = m.centers.numpy()
    nearest = np.argmax(x @ c.T, axis=1)
    counts = np.bincount(nearest, minlength=len(c))
    assert stats.chisquare(counts, len(x) * m.weights).pvalue > 1e-3
    for j, kappa in enumerate(m.kappa):
        one_minus_w = ((x[nearest == j] - c[j]) ** 2).sum(1) / 2.0  # 1 - <x, mu>, from the chord
        # exact CDF of 1 - w under vMF(kappa) on S^2: (1 - e^{-k s}) / (1 - e^{-2k})
        cdf = -np.expm1(-kappa * one_minus_w) / -np.expm1(-2.0 * kappa)
        assert stats.kstest(cdf, "uniform").pvalue > 1e-4, kappa


@pytest.mark.parametrize("kappa", [1e-3, 0.5, 100.0, 1e4, 1e7])
def test_vmf_entropy_equals_scipy(kappa: float) -> None:
    expected = stats.vonmises_fisher(np.array([0.0, 0.0, 1.0]), kappa).entropy()
    assert float(vmf_entropy(kappa)) == pytest.approx(expected, rel=0, abs=1e-9)
    assert float(vmf_entropy(0.0)) == pytest.approx(math.log(4.0 * math.pi), abs=1e-12)


def test_monte_carlo_entropy_agrees_with_the_separated_closed_form() -> None:
    m = clustered_mixture()
    mc, se = m.entropy(n=100_000, seed=11)
    closed = separated_entropy(m)
    assert se < 0.02
    assert abs(mc - closed) < 4.0 * se
