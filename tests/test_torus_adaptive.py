"""The torus's adaptive kernel: a von Mises product mixture with a concentration per centre and coordinate.

Checked against a direct scipy evaluation of the mixture (``scipy.special.i0e``), finite differences,
autograd, the uniform density at ``t = 0``, exact quadrature and a goodness-of-fit test of the samples, a
brute-force neighbour search, and the CLI end to end. Float32 against float64: tests/test_torus.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import i0e, logsumexp

from cnfm_core.builders import build_path
from cnfm_core.config import TrainConfig
from cnfm_core.manifolds.torus import wrap_angle
from cnfm_core.schedules import ExponentialSchedule, LinearSchedule
from cnfm_core.torus_auto import choose_torus_settings
from cnfm_core.torus_kde import TORUS_ADAPTIVE_RANGE, fit_torus_adaptive_kde, torus_adaptive_kappas
from cnfm_core.torus_path import VonMisesMixturePath
from cnfm_core.torus_synthetic import TORUS_MIXTURES

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)
REPO = Path(__file__).resolve().parents[1]


def angles(n: int, d: int, seed: int) -> torch.Tensor:
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64) * 2 - 1) * math.pi


def scales_for(n: int, d: int, seed: int) -> torch.Tensor:
    """Positive scales with a few repeated values (levels), as rounded concentrations have."""
    g = torch.Generator().manual_seed(seed)
    return torch.exp2(torch.randint(-6, 4, (n, d), generator=g).to(F64) / 2)


def scipy_log_prob(x: np.ndarray, centres: np.ndarray, kappas: np.ndarray, floor: float) -> np.ndarray:
    """``log((1 - w) (1/N) sum_i prod_j vM(x_j; y_ij, κ_ij) + w (2π)^-d)`` with κ_ij ``(B, N, d)`` or ``(N, d)``."""
    delta = x[:, None, :] - centres[None]
    k = np.broadcast_to(kappas, delta.shape)
    comp = (k * (np.cos(delta) - 1.0) - LOG_2PI - np.log(i0e(k))).sum(-1)
    lp = logsumexp(comp, axis=1) - math.log(len(centres))
    if floor <= 0:
        return lp
    return np.logaddexp(math.log1p(-floor) + lp, math.log(floor) - x.shape[1] * LOG_2PI)


@pytest.mark.parametrize("floor", [0.0, 0.05])
@pytest.mark.parametrize("per_coordinate", [True, False])
def test_log_prob_matches_scipy_mixture(floor: float, per_coordinate: bool) -> None:
    n, d = 40, 3
    centres = angles(n, d, 1)
    scales = scales_for(n, d, 2) if per_coordinate else scales_for(n, 1, 2)[:, 0]
    sched = ExponentialSchedule(30.0)
    path = VonMisesMixturePath(centres, sched, floor=floor, scales=scales)
    x, t = angles(25, d, 3), torch.rand(25, generator=torch.Generator().manual_seed(4), dtype=F64)
    table = scales.numpy() if per_coordinate else np.repeat(scales.numpy()[:, None], d, axis=1)
    kappas = sched.kappa(t).numpy()[:, None, None] * table[None]
    ref = scipy_log_prob(x.numpy(), centres.numpy(), kappas, floor)
    np.testing.assert_allclose(path.log_prob(x, t).numpy(), ref, rtol=0, atol=1e-11)
    np.testing.assert_allclose(path.quantities(x, t).log_prob.numpy(), ref, rtol=0, atol=1e-11)


def test_uniform_at_zero_and_kde_at_one() -> None:
    centres, scales = angles(30, 2, 5), scales_for(30, 2, 6)
    path = VonMisesMixturePath(centres, ExponentialSchedule(50.0), floor=0.02, scales=scales)
    x = angles(10, 2, 7)
    q = path.quantities(x, 0.0)
    torch.testing.assert_close(q.log_prob, torch.full((10,), -2 * LOG_2PI, dtype=F64), rtol=0, atol=1e-14)
    assert float(q.grad_log_prob.abs().max()) < 1e-14
    ref = scipy_log_prob(x.numpy(), centres.numpy(), 50.0 * scales.numpy(), 0.02)
    np.testing.assert_allclose(path.log_prob(x, 1.0).numpy(), ref, rtol=0, atol=1e-11)


def test_integrates_to_one_on_t2() -> None:
    path = VonMisesMixturePath(angles(12, 2, 8), ExponentialSchedule(40.0), floor=0.01, scales=scales_for(12, 2, 9))
    m = 256  # the trapezoidal rule is spectrally accurate for smooth periodic densities
    g = torch.linspace(-math.pi, math.pi, m + 1, dtype=F64)[:-1]
    pts = torch.cartesian_prod(g, g)
    for t in (0.3, 0.8, 1.0):
        assert float(path.log_prob(pts, t).exp().sum() * (2 * math.pi / m) ** 2) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize(("kappa_max", "floor"), [(5.0, 0.0), (300.0, 0.02)])
def test_derivatives_against_finite_differences_and_autograd(kappa_max: float, floor: float) -> None:
    n, d = 30, 3
    centres, scales = angles(n, d, 10), scales_for(n, d, 11)
    path = VonMisesMixturePath(centres, ExponentialSchedule(kappa_max), floor=floor, scales=scales)
    x = wrap_angle(centres[:20] + 0.3 / math.sqrt(kappa_max) * torch.randn(20, d, dtype=F64,
                                                                           generator=torch.Generator().manual_seed(1)))
    t = torch.tensor([0.001, 0.01, 0.3, 0.5, 0.8, 0.95, 0.999] * 3, dtype=F64)[:20]
    q = path.quantities(x, t)
    h = 1e-4
    dt = (path.log_prob(x, t - 2 * h) - 8 * path.log_prob(x, t - h) + 8 * path.log_prob(x, t + h)
          - path.log_prob(x, t + 2 * h)) / (12 * h)
    assert float(((dt - q.dlog_prob_dt) / (1.0 + q.dlog_prob_dt.abs())).abs().max()) < 1e-6

    # autograd of the direct formula (float64), independent of the path's closed forms
    k_t = ExponentialSchedule(kappa_max).kappa(t)[:, None, None] * scales[None]
    log_norm = (-LOG_2PI - torch.log(torch.special.i0e(k_t))).sum(-1)
    xr = x.clone().requires_grad_(True)
    comp = (k_t * (torch.cos(xr[:, None, :] - centres[None]) - 1.0)).sum(-1) + log_norm
    lp = torch.logsumexp(comp, dim=1) - math.log(n)
    if floor > 0:
        lp = torch.logaddexp(math.log1p(-floor) + lp, torch.tensor(math.log(floor) - d * LOG_2PI, dtype=F64))
    (grad,) = torch.autograd.grad(lp.sum(), xr)
    torch.testing.assert_close(q.grad_log_prob, grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(q.log_prob, lp.detach(), rtol=0, atol=1e-11)


def test_samples_follow_each_coordinates_von_mises() -> None:
    # one centre with a different scale in each coordinate: coordinate j is vM(μ_j, s_j κ(t))
    mu = torch.tensor([[2.0, -3.0]], dtype=F64)
    scales = torch.tensor([[1.0, 0.05]], dtype=F64)
    sched = ExponentialSchedule(100.0)
    path = VonMisesMixturePath(mu, sched, scales=scales)
    x = path.sample(torch.full((20_000,), 0.7, dtype=F64), generator=torch.Generator().manual_seed(15))
    kappa = float(sched.kappa(torch.tensor(0.7, dtype=F64)))
    for j in range(2):
        delta = wrap_angle(x[:, j] - mu[0, j]).numpy()
        assert stats.kstest(delta, stats.vonmises(kappa * float(scales[0, j])).cdf).pvalue > 1e-3


def test_samples_chi_square_on_t2() -> None:
    path = VonMisesMixturePath(angles(6, 2, 16), ExponentialSchedule(30.0), floor=0.05, scales=scales_for(6, 2, 17))
    n, bins = 40_000, 8
    x = path.sample(torch.full((n,), 0.8, dtype=F64), generator=torch.Generator().manual_seed(18))
    counts = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=bins, range=[[-math.pi, math.pi]] * 2)[0]
    g = torch.linspace(-math.pi, math.pi, bins * 32 + 1, dtype=F64)[:-1] + math.pi / (bins * 32)
    dens = path.log_prob(torch.cartesian_prod(g, g), 0.8).exp().reshape(bins, 32, bins, 32).sum((1, 3)).numpy()
    assert stats.chisquare(counts.ravel(), n * dens.ravel() / dens.sum()).pvalue > 1e-3


def test_repeated_points_merge_and_bad_scales_are_refused() -> None:
    centres = torch.cat([angles(5, 2, 19), angles(5, 2, 19)[:2]])
    scales = torch.cat([scales_for(5, 2, 20), scales_for(5, 2, 20)[:2]])
    path = VonMisesMixturePath(centres, LinearSchedule(10.0), scales=scales)
    assert path.centers.shape == (5, 2)
    x = angles(8, 2, 21)
    ref = scipy_log_prob(x.numpy(), centres.numpy(), 10.0 * scales.numpy(), 0.0)
    np.testing.assert_allclose(path.log_prob(x, 1.0).numpy(), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        VonMisesMixturePath(centres, LinearSchedule(1.0), scales=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="positive"):
        VonMisesMixturePath(centres, LinearSchedule(1.0), scales=torch.zeros(7, dtype=F64))


def test_adaptive_kappas_against_brute_force() -> None:
    train = angles(60, 3, 22).numpy()
    k, a = 5, 2.0
    got = torus_adaptive_kappas(train, k, a)
    assert got.shape == (60, 3)
    r2 = (2.0 * (1.0 - np.cos(train[:, None] - train[None]))).sum(-1)
    np.fill_diagonal(r2, np.inf)
    nearest = np.argsort(r2, axis=1)[:, :k]
    v = (2.0 * (1.0 - np.cos(train[nearest] - train[:, None]))).mean(1)
    exact = a / v
    # rounded to 8 levels per doubling: within a factor 2^(1/16) of the exact value
    assert np.all(np.abs(np.log2(got / exact)) <= 1 / 16 + 1e-12)
    lo, hi = TORUS_ADAPTIVE_RANGE
    tight = torus_adaptive_kappas(np.concatenate([train, train[:1] + 1e-9]), 1, 1.0)
    # a near-duplicate pair is clipped at the cap (then rounded to the level at or below it)
    assert tight.min() >= lo and hi * 2 ** (-1 / 16) <= tight.max() <= hi
    assert np.all(torus_adaptive_kappas(train[:1], 3, 1.0) == hi)  # a single location


def test_adaptive_kde_beats_the_fixed_one_on_a_mixture() -> None:
    x = TORUS_MIXTURES["T7"].sample(1200, seed=3).numpy()[:, :3]
    train, val = x[:1000], x[1000:]
    fit = fit_torus_adaptive_kde(train, val, neighbours=(10, 30), scales=(0.5, 1.0, 2.0))
    assert fit.neighbours in (10, 30) and fit.scale in (0.5, 1.0, 2.0) and math.isfinite(fit.val_nll)
    choice = choose_torus_settings(train, val, adaptive=True)
    assert choice.adaptive_gain is not None and choice.adaptive_gain > 0
    assert "nearest neighbours" in choice.describe(("kappa_max", "kernel_neighbours", "kernel_scale"))
    assert choose_torus_settings(train, val).adaptive_gain is None


def test_build_path_uses_per_coordinate_kappas() -> None:
    train = torch.as_tensor(TORUS_MIXTURES["T7"].sample(200, seed=4).numpy()[:, :2])
    config = TrainConfig(manifold="torus", manifold_dim=2, kernel="adaptive", kernel_neighbours=10, kernel_scale=1.0,
                         kappa_max=20.0, floor=0.0, space_frequencies=0)
    path = build_path(config, train)
    kappas = torus_adaptive_kappas(train.numpy(), 10, 1.0)
    x = angles(10, 2, 23)
    ref = scipy_log_prob(x.numpy(), train.numpy(), kappas, 0.0)
    np.testing.assert_allclose(path.log_prob(x, 1.0).numpy(), ref, rtol=0, atol=1e-10)
    config.validate()  # the adaptive kernel is a valid torus setting


def test_cli_trains_the_adaptive_torus_kernel(tmp_path: Path) -> None:
    x = np.rad2deg(TORUS_MIXTURES["T7"].sample(200, seed=6).numpy()[:, :3])
    data = tmp_path / "angles.csv"
    data.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in x) + "\n")
    run = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "cnfm_core", "train", "--manifold", "torus", "--data", str(data),
                        "--run-dir", str(run), "--kernel", "adaptive", "--steps", "10", "--eval-every", "1000",
                        "--hidden", "16", "--layers", "2", "--batch-size", "32", "--threads", "1", "--quiet"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["state"] == "done" and out["step"] == 10 and math.isfinite(out["val_nll"])
    meta = json.loads((run / "config.json").read_text())
    cfg = meta["config"]
    assert cfg["kernel"] == "adaptive" and cfg["kernel_neighbours"] >= 1 and cfg["kernel_scale"] > 0
    assert set(meta["auto"]["fields"]) >= {"kernel_neighbours", "kernel_scale"}
    assert "nearest neighbours" in meta["auto"]["description"]
