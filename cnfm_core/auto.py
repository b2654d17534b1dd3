"""Settings chosen from the data: how sharp the target is, its kernel, whether the field gets Fourier features,
and what the network's output is added to.

One rule, the same for every data set, read off the kernel density estimate that fits the
validation points best (:func:`cnfm_core.kde.fit_kde`, concentration ``kappa_kde``):

- ``kappa_kde < SHARP_KAPPA`` (smooth data, structure wider than about 2 degrees):
  ``kappa_max = KAPPA_MIN``, the fixed kernel and no Fourier features;
- otherwise (clustered data): ``SHARP_FEATURES`` random Fourier features of the point at scale ``SHARP_SCALE``,
  and the kernel density with a bandwidth per point (:func:`cnfm_core.kde.fit_adaptive_kde`) is fitted on the
  same points. The target's kernel is that adaptive one when it beats one bandwidth on the held-out points by
  more than :data:`ADAPTIVE_SWITCH` nats (and by two standard errors), else the fixed one;
- the network's output is added to the target's own contraction field (``field_base="kernel"``,
  :mod:`cnfm_core.kernelbase`) when the target's sharpest kernel is sharper than :data:`KAPPA_CAP`; then a fixed
  kernel's ``kappa_max`` is ``kappa_kde`` itself. Without it ``kappa_max = clamp(kappa_kde, KAPPA_MIN, KAPPA_CAP)``.

The cap (3e5) is what a network alone follows with PPD, not what float32 resolves: the target's logits are
exact up to ``kappa = 1e8`` (:mod:`cnfm_core.paths`, "Precision"), and on volcano's standard split (whose
validation KDE wants 1e8) a target at 1e6 trains as well as 3e5, at 1e7 worse by 1.65 nats and at 1e8 not at
all (docs/clustered.md). A kernel sharper than that is a cluster a few kilometres wide, which random features
at the data's scale cannot draw; the contraction field draws it exactly, and the network learns the rest.

The switch to the adaptive kernel is for data whose clusters differ in width by orders of magnitude (the
clustered benchmark, :mod:`cnfm_core.clustered`: one bandwidth is 1.4 nats worse than the adaptive one
there). On the Earth sets the adaptive KDE gains 0.07-0.26 nats on validation (volcano's standard split loses
4.9), and a flow trained on it was no better than on the fixed kernel (docs/defaults.md, round 7), so they keep
the fixed kernel; half a nat is twice the largest of those gains. A run that asks for a kernel
(``kernel="fixed"`` or ``"adaptive"``) gets it; the adaptive one also gets its neighbour rank and scale here,
with the adaptive KDE's mean validation gain over the fixed one and its standard error.

The thresholds were chosen on validation splits only (docs/defaults.md, rounds 5 and 6): on the Earth sets
the sharper target with features cut the mean validation NLL from 0.390 to 0.025 nats at 3,000
steps, while on the bundled smooth mixture (``kappa_kde`` about 300) both a smoother target
(``kappa_kde`` itself) and features made it worse, so smooth data keep the fixed settings.

Without a validation split (split ``"none"``, or too few points) a seeded tenth of the training
points stands in for it, for this choice only; with fewer than :data:`MIN_POINTS` points there is
nothing to read and the fixed settings are used. Large sets are subsampled (at most
:data:`MAX_CENTRES` kernel centres and :data:`MAX_HELD_OUT` held-out points), which bounds the fit to a few
seconds (6.5 s at the bounds on a 2-core CPU whose cores were both busy training; 1.6 s for the
bundled 6,204 cities), plus the adaptive fit on clustered data (its neighbour search reads every training point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import KAPPA_CAP, KAPPA_MIN, KERNEL_CAP
from .kde import adaptive_kappas, fit_adaptive_kde, fit_kde, kde_log_prob

__all__ = ["ADAPTIVE_SWITCH", "AutoChoice", "KAPPA_CAP", "KAPPA_MIN", "SHARP_KAPPA", "adaptive_gain", "choose_settings",
           "fit_points"]

#: A validation KDE at least this sharp marks clustered data (a kernel width of about 1.8 degrees).
SHARP_KAPPA = 1000.0
SHARP_FEATURES = 32
SHARP_SCALE = 10.0
#: The adaptive KDE's mean validation gain over one bandwidth (nats) above which the rule picks the adaptive kernel.
ADAPTIVE_SWITCH = 0.5
#: Below this many points no choice is read from the data.
MIN_POINTS = 20
MAX_CENTRES = 10_000
MAX_HELD_OUT = 1_000
#: The adaptive kernel's neighbour rank and scale when nothing was read (too few points).
DEFAULT_NEIGHBOURS = 3
DEFAULT_KERNEL_SCALE = 3.0


@dataclass(frozen=True)
class AutoChoice:
    """What the rule chose, and what it read (``kde_kappa`` is None when it read nothing)."""

    kappa_max: float
    space_frequencies: int
    space_scale: float
    kde_kappa: float | None
    kde_weight: float | None
    held_out: str  # "the validation split", "a tenth of the training points" or "none"
    kernel_neighbours: int = DEFAULT_NEIGHBOURS
    kernel_scale: float = DEFAULT_KERNEL_SCALE
    #: The adaptive KDE's mean validation gain over the fixed one (nats) and its standard error, when fitted.
    adaptive_gain: float | None = None
    adaptive_gain_se: float | None = None
    #: The target's kernel (:data:`cnfm_core.config.KERNELS`).
    kernel: str = "fixed"
    #: What the network's output is added to (:data:`cnfm_core.config.FIELD_BASES`).
    field_base: str = "none"

    def target_kappas(self, train: np.ndarray, *, cap: float = KERNEL_CAP) -> float | np.ndarray:
        """The concentrations of the target this choice makes over ``train`` at t = 1: ``kappa_max`` for the fixed
        kernel, one per point for the adaptive one (``cap``: ``TrainConfig.kernel_cap``), as
        :func:`cnfm_core.kde.kde_log_prob` takes them."""
        if self.kernel == "fixed":
            return self.kappa_max
        return adaptive_kappas(train, self.kernel_neighbours, self.kernel_scale, cap=cap)

    @property
    def sharp(self) -> bool:
        return self.space_frequencies > 0

    def describe(self, fields: tuple[str, ...] = ("kappa_max", "space_frequencies")) -> str:
        """One sentence for a person: what was read, and what was chosen of ``fields``."""
        parts = []
        if "kappa_max" in fields:
            parts.append(f"κ_max = {self.kappa_max:,.0f}")
        if "space_frequencies" in fields:
            parts.append(f"{self.space_frequencies} Fourier features of the point at scale {self.space_scale:g}"
                         if self.sharp else "no Fourier features")
        gain = ("" if self.adaptive_gain is None else
                f"as a KDE {self.adaptive_gain:+.2f} ± {self.adaptive_gain_se:.2f} nats against one bandwidth")
        if self.kernel == "adaptive" and ("kernel_neighbours" in fields or "kernel_scale" in fields):
            parts.append(f"bandwidths from the {_ordinal(self.kernel_neighbours)} nearest neighbour "
                         f"(scale {self.kernel_scale:g}{'; ' + gain if gain else ''})")
        elif "kernel" in fields and self.adaptive_gain is not None:
            parts.append(f"one bandwidth (a bandwidth per point: {self.adaptive_gain:+.2f} ± "
                         f"{self.adaptive_gain_se:.2f} nats as a KDE; the switch needs {ADAPTIVE_SWITCH:+.1f})")
        if "field_base" in fields and self.field_base == "kernel":
            parts.append("the network adds to the target's own contraction field (its sharpest kernels are "
                         "narrower than a network alone follows)")
        chosen = ", ".join(parts)
        if self.kde_kappa is None:
            return f"Too few points to read the data's sharpness; fixed settings: {chosen}."
        kind = "clustered" if self.sharp else "smooth"
        return f"The best kernel density on {self.held_out} has κ = {self.kde_kappa:,.0f} ({kind} data): {chosen}."


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _base(sharpest: float) -> str:
    """The field base for a target whose sharpest kernel has concentration ``sharpest`` (module doc)."""
    return "kernel" if sharpest > KAPPA_CAP else "none"


def _fixed(held_out: str = "none", kernel: str = "fixed", kappa_max: float | None = None) -> AutoChoice:
    base = _base(kappa_max) if kappa_max is not None and kernel == "fixed" else "none"
    return AutoChoice(KAPPA_MIN, 0, SHARP_SCALE, None, None, held_out, kernel=kernel, field_base=base)


def fit_points(train: np.ndarray, val: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str, np.ndarray] | None:
    """The points a data rule fits its KDE on (any manifold's coordinates, rows are points): ``(centres,
    held-out points, what the held-out points are, every training point)``. The held-out points are ``val``,
    or a tenth of ``train`` when ``val`` has fewer than 10 points; both are subsampled to at most
    :data:`MAX_CENTRES` and :data:`MAX_HELD_OUT`. None when there are too few points (under :data:`MIN_POINTS`)."""
    held_out = "the validation split"
    if len(val) < 10:
        if len(train) < MIN_POINTS:
            return None
        order = rng.permutation(len(train))
        cut = len(train) // 10
        val, train = train[order[:cut]], train[order[cut:]]
        held_out = "a tenth of the training points"
    every = train  # the adaptive kernel reads distances between training points, which a subsample would stretch
    if len(train) > MAX_CENTRES:
        train = train[rng.choice(len(train), MAX_CENTRES, replace=False)]
    if len(val) > MAX_HELD_OUT:
        val = val[rng.choice(len(val), MAX_HELD_OUT, replace=False)]
    return train, val, held_out, every


def adaptive_gain(adaptive: np.ndarray, fixed: np.ndarray) -> dict[str, float]:
    """The adaptive KDE's validation gain over the fixed one, from their log-densities at the same held-out
    points: ``adaptive_gain`` (mean, nats) and ``adaptive_gain_se`` (its standard error; NaN for one point).

    >>> adaptive_gain(np.array([1.0, 2.0]), np.array([0.5, 0.5]))
    {'adaptive_gain': 1.0, 'adaptive_gain_se': 0.5}
    """
    gain = np.asarray(adaptive, dtype=np.float64) - np.asarray(fixed, dtype=np.float64)
    se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.nan
    return {"adaptive_gain": float(gain.mean()), "adaptive_gain_se": se}


def choose_settings(train: np.ndarray, val: np.ndarray, *, seed: int = 0, adaptive: bool | None = False,
                    kernel_cap: float = KERNEL_CAP, kappa_max: float | None = None) -> AutoChoice:
    """Apply the rule (module doc) to unit vectors ``train`` ``(N, 3)`` and ``val`` ``(M, 3)``. ``adaptive``: True
    for the adaptive kernel (its settings fitted), False for the fixed one, None to let the rule choose.
    ``kernel_cap`` is the adaptive kernel's sharpest per-point concentration (``TrainConfig.kernel_cap``);
    ``kappa_max``, a value a person set: the fixed kernel's field base then follows it (the returned ``kappa_max``
    is still the rule's own)."""
    train = np.asarray(train, dtype=np.float64).reshape(-1, 3)
    val = np.asarray(val, dtype=np.float64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    points = fit_points(train, val, rng)
    if points is None:
        return _fixed(kernel="adaptive" if adaptive else "fixed", kappa_max=kappa_max)
    train, val, held_out, every = points
    fit = fit_kde(train, val)
    if not math.isfinite(fit.kappa):
        return _fixed(kernel="adaptive" if adaptive else "fixed", kappa_max=kappa_max)
    sharp = fit.kappa >= SHARP_KAPPA
    read: dict[str, Any] = {}
    sharpest = fit.kappa if sharp else KAPPA_MIN
    if adaptive or (adaptive is None and sharp):
        a = fit_adaptive_kde(every, val)
        kappas = adaptive_kappas(every, a.neighbours, a.scale, cap=kernel_cap)
        read = dict(kernel_neighbours=a.neighbours, kernel_scale=a.scale,
                    **adaptive_gain(kde_log_prob(val, every, kappas, a.weight),
                                    kde_log_prob(val, every, fit.kappa, fit.weight)))
        if adaptive is None:
            adaptive = read["adaptive_gain"] > max(ADAPTIVE_SWITCH, 2.0 * read["adaptive_gain_se"])
        if adaptive:
            sharpest = float(np.max(kappas))
    kernel = "adaptive" if adaptive else "fixed"
    base = _base(kappa_max if kappa_max is not None and kernel == "fixed" else sharpest)
    if not sharp:
        return AutoChoice(KAPPA_MIN, 0, SHARP_SCALE, fit.kappa, fit.weight, held_out, kernel=kernel, field_base=base,
                          **read)
    kappa = max(fit.kappa, KAPPA_MIN) if base == "kernel" and kernel == "fixed" else min(max(fit.kappa, KAPPA_MIN),
                                                                                         KAPPA_CAP)
    return AutoChoice(kappa, SHARP_FEATURES, SHARP_SCALE, fit.kappa, fit.weight, held_out, kernel=kernel,
                      field_base=base, **read)
