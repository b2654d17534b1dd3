"""A clustered data set with a known density: vMF components from about 6 degrees to 2 km wide.

Earth data are clustered at every scale, from continents to a volcano's repeated coordinates. This mixture
has that range with a density known exactly: ``p(x) = sum_j w_j vMF(x; mu_j, kappa_j)`` with concentrations
log-spaced from ``1e2`` (a kernel about ``1 / sqrt(kappa)`` = 0.1 rad = 5.7 degrees wide) to ``1e7``
(3.2e-4 rad, 2 km on the Earth), centres on a Fibonacci lattice (about 60 degrees apart for 11 components)
and equal weights.

Its entropy ``H = -E log p`` has no closed form; it is known two ways:

* by Monte Carlo with the exact log density (:meth:`cnfm_core.synthetic.VMFMixture.entropy`, with its
  standard error), and
* nearly in closed form: with components this far apart (the widest, ``kappa = 100``, puts ``e^-50`` of
  its peak density on its nearest neighbour's centre) it is the weights' entropy plus each component's,
  ``H ~ -sum_j w_j log w_j + sum_j w_j H(kappa_j)`` with the vMF entropy on S²
  ``H(kappa) = -log c(kappa) + kappa (1 - coth kappa) + 1`` (:func:`vmf_entropy`).

>>> m = clustered_mixture()
>>> len(m.kappa), float(m.kappa.min()), float(m.kappa.max()), round(separated_entropy(m), 3)
(11, 100.0, 10000000.0, -5.126)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .paths import vmf_log_normalizer
from .synthetic import VMFMixture

__all__ = ["CLUSTERED_KAPPA_RANGE", "clustered_mixture", "fibonacci_latlon", "separated_entropy", "vmf_entropy"]

#: The concentrations' range of :func:`clustered_mixture` (bandwidths from 5.7 degrees to 2 km).
CLUSTERED_KAPPA_RANGE: tuple[float, float] = (1e2, 1e7)


def fibonacci_latlon(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` nearly evenly spread points on S² (a Fibonacci lattice), as (lat, lon) in degrees."""
    i = np.arange(n) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * i / n))
    lon = (np.degrees(math.pi * (3.0 - math.sqrt(5.0)) * i) + 180.0) % 360.0 - 180.0
    return lat, lon


def clustered_mixture(n_components: int = 11, kappa_range: tuple[float, float] = CLUSTERED_KAPPA_RANGE,
                      ) -> VMFMixture:
    """Equal-weight vMF components on a Fibonacci lattice, concentrations log-spaced over ``kappa_range``;
    the sharp and the wide components alternate over the lattice (the order is a fixed permutation)."""
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}")
    lat, lon = fibonacci_latlon(n_components)
    kappa = np.logspace(math.log10(kappa_range[0]), math.log10(kappa_range[1]), n_components)
    order = np.argsort((np.arange(n_components) * 7) % n_components, kind="stable")
    return VMFMixture(lat=lat, lon=lon, kappa=kappa[order], weights=np.full(n_components, 1.0 / n_components))


def vmf_entropy(kappa: float | np.ndarray) -> np.ndarray:
    """The differential entropy (nats, w.r.t. area) of a vMF on S²:
    ``-log c(kappa) + kappa (1 - coth kappa) + 1`` with ``c(kappa) = kappa / (2 pi (1 - e^{-2 kappa}))``;
    ``log 4 pi`` at ``kappa = 0``."""
    k = np.asarray(kappa, dtype=np.float64)
    log_c = vmf_log_normalizer(torch.as_tensor(k)).numpy()
    # kappa (1 - coth kappa) + 1 = 1 - 2 kappa / (e^{2 kappa} - 1), which is 0 at kappa = 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        tail = np.where(k > 0, 2.0 * k / np.expm1(2.0 * np.maximum(k, 1e-300)), 1.0)
    return -log_c + 1.0 - tail


def separated_entropy(mixture: VMFMixture) -> float:
    """The entropy of a mixture whose components do not overlap: ``-sum w log w + sum w H(kappa)`` (module doc)."""
    w = np.asarray(mixture.weights, dtype=np.float64)
    return float(-(w * np.log(w)).sum() + (w * vmf_entropy(mixture.kappa)).sum())
