"""The PPD target path ``p_t`` on the sphere before any training, in numpy: its log density and exact samples.

The Target path page shows the path a run will ask its flow to follow, before a model exists; pages may not
import torch, so this is the torch-free twin of :class:`cnfm_core.paths.VMFMixturePath` with the fixed kernel
(``tests/test_pathpreview.py`` checks the two against each other). For the ``N`` training points ``y_1..y_N``
(a repeated point is one centre with weight ``pi_i = count_i / N``), a concentration schedule ``kappa(t)`` from
``kappa(0) = 0`` to ``kappa(1) = kappa_max`` and a uniform floor ``w``,

    p_t(x)        = (1 - w) sum_i pi_i vMF(x; y_i, kappa(t)) + w / (4 pi)          (nats per steradian)
    vMF(x; mu, k) = k / (4 pi sinh k) exp(k <mu, x>) = c(k) exp(-k (1 - <mu, x>)),
    c(k)          = k / (2 pi (1 - e^{-2k}))                                       (c(0) = 1 / 4 pi).

Written with ``c(k)``, the kernel never overflows: ``k / (4 pi sinh k)`` underflows above ``k = 700`` while
``exp(k <mu, x>)`` overflows, but ``1 - <mu, x>`` is at least 0, and ``log c(k)`` is a sum of logs
(:func:`vmf_log_normalizer`). :meth:`PreviewPath.log_prob` is the mixture at any points (log-sum-exp over the
centres), and :meth:`PreviewPath.sample` draws from it exactly (a centre by its weight, or the floor; then the
vMF's cosine to the centre by its inverse CDF, uniform at ``k = 0``). :func:`training_rows` names the rows a run
trains on, as :mod:`cnfm_core.splits` draws them, without torch. :mod:`cnfm_core.pathmaps` draws the path on maps.

>>> path = PreviewPath(np.array([[0.0, 0.0, 1.0]]), np.zeros(1), kappa_max=100.0, floor=0.0)
>>> round(float(path.log_prob(np.array([[1.0, 0.0, 0.0]]), 0.0)[0]), 4)  # uniform at t = 0: -log 4 pi
-2.531
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import TrainConfig
from .data import unique_rows
from .geo import LOG_AREA

__all__ = [
    "SCHEDULES",
    "PreviewPath",
    "preview_path",
    "schedule_kappa",
    "training_rows",
    "vmf_log_normalizer",
]

_LOG_2PI = math.log(2.0 * math.pi)
#: Point-centre dot products held at once by :meth:`PreviewPath.log_prob` (bounds its memory).
_CHUNK_ENTRIES = 1 << 21

#: ``kappa(t)`` by schedule name, for ``t`` in [0, 1] and ``kappa_max`` (as :data:`cnfm_core.schedules.SCHEDULES`).
SCHEDULES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "exponential": lambda t, kappa_max: np.expm1(t * math.log1p(kappa_max)),  # (1 + kappa_max)^t - 1
    "linear": lambda t, kappa_max: t * kappa_max,
}


def schedule_kappa(name: str, kappa_max: float, t: np.ndarray | float) -> np.ndarray:
    """``kappa(t)`` of the schedule ``name`` (:data:`SCHEDULES`); unknown names raise ``ValueError``."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](np.asarray(t, dtype=np.float64), float(kappa_max))


def vmf_log_normalizer(kappa: np.ndarray | float) -> np.ndarray:
    """``log c(k)``, ``c(k) = k / (2 pi (1 - e^{-2k}))``, so that ``vMF = c(k) exp(-k (1 - <mu, x>))``.

    ``log(k / (4 pi sinh k)) = log c(k) - k``. Below ``k = 0.05`` the series ``k - log 2 - k^2/6 + k^4/180 - log 2 pi``
    (error under 1e-11) gives ``k = 0`` exactly ``-log 4 pi``; above, ``log k - log(-expm1(-2k))`` has no overflow.

    >>> [round(float(v), 6) for v in vmf_log_normalizer(np.array([0.0, 1.0, 1e6]))]
    [-2.531024, -1.692464, 11.977633]
    """
    k = np.asarray(kappa, dtype=np.float64)
    small = k < 0.05
    ks = np.where(small, 1.0, k)
    direct = np.log(ks) - np.log(-np.expm1(-2.0 * ks))
    series = k - math.log(2.0) - k * k / 6.0 + k**4 / 180.0
    return np.where(small, series, direct) - _LOG_2PI


def training_rows(xyz: np.ndarray, *, split: str = "standard", seed: int = 0) -> np.ndarray:
    """The rows of ``xyz`` (``(n, 3)``) a run with this split and seed trains on, as :func:`cnfm_core.splits.make_split`
    draws them (``"standard"``, ``"dedup"`` or ``"none"``), in the same order.

    Those splits take the first ``n - 2 (n // 10)`` entries of torch's seeded ``randperm(n)``. On the CPU that is a
    Fisher-Yates shuffle driven by a 32-bit Mersenne Twister seeded with ``seed``: step ``i`` swaps entry ``i`` with
    entry ``i + (r_i mod (n - i))`` for the twister's ``i``-th output ``r_i``. numpy's ``RandomState(seed)`` is the
    same twister with the same seeding, so the shuffle is repeated here without torch.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if split == "none":
        return np.arange(xyz.shape[0], dtype=np.int64)
    if split not in ("standard", "dedup"):
        raise ValueError(f"unknown split mode {split!r}; known modes: standard, dedup, none")
    keep = unique_rows(xyz) if split == "dedup" else np.arange(xyz.shape[0], dtype=np.int64)
    n = keep.size
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2^32), got {seed}")
    draws = np.random.RandomState(seed).randint(0, 2**32, size=max(n - 1, 0), dtype=np.uint32).astype(np.int64)
    offsets = draws % (n - np.arange(n - 1, dtype=np.int64)) + np.arange(n - 1, dtype=np.int64) if n > 1 else draws
    perm = np.arange(n, dtype=np.int64)
    for i, j in enumerate(offsets.tolist()):  # sequential by nature: 6,000 swaps take a few milliseconds
        perm[i], perm[j] = perm[j], perm[i]
    return keep[perm[: n - 2 * (n // 10)]]


@dataclass(frozen=True, eq=False)
class PreviewPath:
    """The target path over ``centres`` (``(M, 3)`` distinct unit vectors) with log weights ``log_weights``
    (``(M,)``, ``log pi_i``, adding up to 1), the schedule ``schedule`` up to ``kappa_max``, and the floor ``floor``
    (module doc). :func:`preview_path` makes one from training points."""

    centres: np.ndarray
    log_weights: np.ndarray
    kappa_max: float
    schedule: str = "exponential"
    floor: float = 0.02

    def __post_init__(self) -> None:
        if self.centres.ndim != 2 or self.centres.shape[1] != 3 or self.centres.shape[0] < 1:
            raise ValueError(f"centres must have shape (M, 3) with M >= 1, got {self.centres.shape}")
        if self.log_weights.shape != (self.centres.shape[0],):
            raise ValueError("log_weights needs one entry per centre")
        if not (self.kappa_max > 0 and math.isfinite(self.kappa_max)):
            raise ValueError(f"kappa_max must be a positive finite number, got {self.kappa_max}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        schedule_kappa(self.schedule, self.kappa_max, 0.0)

    def kappa(self, t: np.ndarray | float) -> np.ndarray:
        """The concentration ``kappa(t)``."""
        return schedule_kappa(self.schedule, self.kappa_max, t)

    def log_prob(self, x: np.ndarray, t: float) -> np.ndarray:
        """``log p_t(x)`` (nats per steradian) at unit vectors ``x`` (``(B, 3)``), exact up to rounding: float64
        dot products, the log-sum-exp over the centres, and the floor added as one more term."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, 3)
        k = float(self.kappa(t))
        out = np.empty(x.shape[0])
        step = max(1, _CHUNK_ENTRIES // self.centres.shape[0])
        for i in range(0, x.shape[0], step):
            logits = k * (x[i : i + step] @ self.centres.T - 1.0) + self.log_weights  # <= 0 up to rounding
            top = logits.max(axis=1, keepdims=True)
            out[i : i + step] = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        out += vmf_log_normalizer(k)
        if self.floor == 0.0:
            return out
        return np.logaddexp(out + math.log1p(-self.floor), math.log(self.floor) - LOG_AREA)

    def sample(self, t: float, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` exact samples of ``p_t`` (``(n, 3)`` unit vectors).

        With probability ``w`` a sample is uniform (the floor); otherwise it picks centre ``mu`` with probability
        ``pi_i`` and its cosine to it, ``c = <x, mu>``, from the inverse of the vMF's CDF on S^2,
        ``P(c <= s) = (e^{k s} - e^{-k}) / (e^k - e^{-k})``:
        ``1 - c = -log1p((1 - u) expm1(-2k)) / k`` for ``u`` uniform in [0, 1) (never formed from ``c`` itself, so
        exact at large ``k``), with the direction around ``mu`` uniform. At ``k = 0`` the cosine is uniform in
        [-1, 1], which is the uniform density.
        """
        k = float(self.kappa(t))
        weights = np.exp(self.log_weights)
        centre = rng.choice(self.centres.shape[0], size=n, p=weights / weights.sum())
        u = rng.random(n)
        if k > 0.0:
            one_minus_c = np.clip(-np.log1p((1.0 - u) * np.expm1(-2.0 * k)) / k, 0.0, 2.0)
        else:
            one_minus_c = 2.0 * u
        mu = self.centres[centre]
        e1, e2 = _tangent_frame(mu)
        angle = rng.random(n) * (2.0 * math.pi)
        radius = np.sqrt(one_minus_c * (2.0 - one_minus_c))  # sin of the angle to mu
        x = (1.0 - one_minus_c)[:, None] * mu + radius[:, None] * (
            np.cos(angle)[:, None] * e1 + np.sin(angle)[:, None] * e2
        )
        from_floor = rng.random(n) < self.floor
        x[from_floor] = _uniform(int(from_floor.sum()), rng)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def preview_path(
    train_xyz: np.ndarray, *, kappa_max: float, schedule: str | None = None, floor: float | None = None
) -> PreviewPath:
    """The target path over training points ``train_xyz`` (``(N, 3)`` unit vectors, repeats allowed), with the
    schedule and floor of a default :class:`~cnfm_core.config.TrainConfig` unless given."""
    defaults = TrainConfig()
    xyz = np.asarray(train_xyz, dtype=np.float64).reshape(-1, 3)
    if xyz.shape[0] < 1:
        raise ValueError("the target path needs at least one training point")
    centres, counts = np.unique(xyz, axis=0, return_counts=True)
    return PreviewPath(
        centres,
        np.log(counts / xyz.shape[0]),
        float(kappa_max),
        defaults.schedule if schedule is None else schedule,
        defaults.floor if floor is None else float(floor),
    )


def _tangent_frame(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to each row of ``mu`` and to each other: ``mu`` crossed with the axis it is
    least aligned with, then ``mu`` crossed with that."""
    axis = np.zeros_like(mu)
    axis[np.arange(mu.shape[0]), np.abs(mu).argmin(axis=1)] = 1.0
    e1 = np.cross(mu, axis)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(mu, e1)


def _uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points on the sphere (normalised Gaussians)."""
    g = rng.standard_normal((n, 3))
    return g / np.linalg.norm(g, axis=1, keepdims=True)
