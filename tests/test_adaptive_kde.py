"""bench/adaptive_kde.py: its per-point-bandwidth density against scipy, its k-NN distances against brute force."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "adaptive_kde.py"
_spec = importlib.util.spec_from_file_location("adaptive_kde", SCRIPT)
adaptive_kde = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(adaptive_kde)


def test_log_density_is_the_floored_mixture_of_scipy_vmfs():
    rng = np.random.default_rng(0)
    centers = stats.uniform_direction(3).rvs(7, random_state=1)
    x = np.concatenate([stats.uniform_direction(3).rvs(300, random_state=2), centers])
    kappa = rng.uniform(10.0, 3000.0, size=7)
    w = rng.dirichlet(np.ones(7))
    floor = 0.05
    logs = np.stack([stats.vonmises_fisher(c, k).logpdf(x) for c, k in zip(centers, kappa, strict=True)])
    expected = np.log((1 - floor) * np.exp(logsumexp(logs + np.log(w)[:, None], axis=0)) + floor / (4 * np.pi))
    got = adaptive_kde.log_density(x, centers, np.log(w), kappa, floor)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3])
def test_knn_distances_match_brute_force(k):
    centers = stats.uniform_direction(3).rvs(600, random_state=3)  # more than one chunk
    d2 = ((centers[:, None] - centers[None]) ** 2).sum(-1)
    expected = np.sort(d2, axis=1)[:, k]
    np.testing.assert_allclose(adaptive_kde.knn_chord2(centers, k), expected, rtol=1e-9, atol=1e-12)


def test_probe_prints_a_row_per_set_and_split(tmp_path):
    lat = np.degrees(np.arcsin(stats.uniform_direction(3).rvs(400, random_state=4)[:, 2]))
    lon = np.linspace(-179.0, 179.0, 400)
    rows = "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(lat, lon, strict=True))
    (tmp_path / "gamma.csv").write_text("lat,lon\n" + rows)
    out = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| gamma")]
    assert [r.split("|")[1].strip() for r in rows] == ["gamma (standard)", "gamma (dedup)"]
    for r in rows:  # the NLLs are finite numbers
        assert all(np.isfinite(float(c)) for c in r.split("|")[2:6])
