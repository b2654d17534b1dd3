"""Synthetic data on the torus with a known density: mixtures of products of von Mises distributions.

    p(x) = sum_k w_k prod_j vM(x_j; μ_kj, κ_kj)       (w.r.t. Lebesgue measure on [-π, π)ᵈ)

Its entropy ``H = -E log p`` (the best expected NLL any model can reach) has no closed form; it is
estimated by Monte Carlo from exact samples, with its standard error ``std(log p) / sqrt(n)``. On a
finite test set the fair reference for a model's mean NLL is the true density's mean NLL on the same
points (:meth:`VonMisesProductMixture.log_prob`), whose difference from the model's has a much smaller
standard error than either.

:data:`TORUS_MIXTURES` holds the benchmark's mixtures on T² and T⁷ (bench/bench_torus.py).

>>> m = TORUS_MIXTURES["T2"]
>>> m.dim, round(float(m.weights.sum()), 12)
(2, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .von_mises import log_prob as vm_log_prob
from .von_mises import sample_von_mises

__all__ = ["TORUS_MIXTURES", "VonMisesProductMixture", "random_mixture"]


@dataclass(frozen=True)
class VonMisesProductMixture:
    """Weights ``(K,)`` summing to 1, means ``(K, d)`` in radians and concentrations ``(K, d)``."""

    weights: np.ndarray
    means: np.ndarray
    kappas: np.ndarray

    def __post_init__(self) -> None:
        w, mu, k = (np.asarray(a, dtype=np.float64) for a in (self.weights, self.means, self.kappas))
        if w.ndim != 1 or mu.shape != (len(w), mu.shape[-1]) or k.shape != mu.shape:
            raise ValueError("need weights (K,), means (K, d) and kappas (K, d)")
        if not (np.all(w > 0) and abs(w.sum() - 1.0) < 1e-12 and np.all(k >= 0)):
            raise ValueError("weights must be positive and sum to 1, kappas non-negative")

    @property
    def dim(self) -> int:
        return int(np.shape(self.means)[1])

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density at angles ``x`` ``(B, d)`` (radians), computed in float64, returned in ``x``'s dtype."""
        x64 = x.to(torch.float64)
        mu = torch.as_tensor(self.means, dtype=torch.float64)
        k = torch.as_tensor(self.kappas, dtype=torch.float64)
        comp = vm_log_prob(x64[:, None, :], mu[None], k[None]).sum(-1)
        comp = comp + torch.log(torch.as_tensor(self.weights, dtype=torch.float64))[None]
        return torch.logsumexp(comp, dim=1).to(x.dtype)

    def sample(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``n`` exact samples (float64 radians in ``[-π, π)``), reproducible from ``seed``."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.multinomial(torch.as_tensor(self.weights, dtype=torch.float64), n, replacement=True,
                                generator=g)
        mu = torch.as_tensor(self.means, dtype=torch.float64)[idx]
        return sample_von_mises(mu, torch.as_tensor(self.kappas, dtype=torch.float64)[idx], generator=g)

    def entropy(self, *, n: int = 400_000, seed: int = 12345) -> tuple[float, float]:
        """Differential entropy ``-E log p`` in nats by Monte Carlo over ``n`` exact samples, and its standard error."""
        lp = torch.cat([self.log_prob(self.sample(min(n - i, 100_000), seed=seed + i))
                        for i in range(0, n, 100_000)]).double()
        return float(-lp.mean()), float(lp.std() / math.sqrt(n))


def random_mixture(dim: int, components: int, kappa_range: tuple[float, float], *, seed: int) -> VonMisesProductMixture:
    """A seeded mixture: uniform means, concentrations log-uniform in ``kappa_range``, Dirichlet(3) weights."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(components, 3.0))
    means = rng.uniform(-math.pi, math.pi, size=(components, dim))
    lo, hi = (math.log(k) for k in kappa_range)
    kappas = np.exp(rng.uniform(lo, hi, size=(components, dim)))
    return VonMisesProductMixture(weights / weights.sum(), means, kappas)


#: The benchmark's mixtures: six blobs on T² (κ from 2 to 40) and eight on T⁷ (κ from 1 to 10).
TORUS_MIXTURES: dict[str, VonMisesProductMixture] = {
    "T2": random_mixture(2, 6, (2.0, 40.0), seed=2),
    "T7": random_mixture(7, 8, (1.0, 10.0), seed=7),
}
