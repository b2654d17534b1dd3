"""Settings chosen from the data on the torus: how sharp the target is at ``t = 1``.

One rule, read off the von Mises product KDE that fits the held-out points best
(:func:`cnfm_core.torus_kde.fit_torus_kde`, concentration ``κ_kde`` per coordinate):

    κ_max = clamp(KAPPA_FACTOR · κ_kde, TORUS_KAPPA_MIN, TORUS_KAPPA_CAP),

and no random Fourier features (the field already sees the periodic features ``[cos θ, sin θ]``).
``KAPPA_FACTOR = 10``: a target sharper than the validation-optimal KDE, as on the sphere (where κ_max 3000
beat the smooth mixture's KDE κ of about 300, docs/defaults.md). It was chosen on validation NLL (512
validation points, PPD ℓ = 1, one CPU thread) on the T⁷ mixture of bench/bench_torus.py (κ_kde = 5.6):
factor 1 cannot do better than the KDE, whose test NLL is 0.53 nats above the truth (at 1.5 minutes it was
0.66 above); after 3 minutes factor 10 reached a validation NLL of 8.637 against 8.668 for factor 3 (their
test gaps to the truth, 0.176 ± 0.018 and 0.164 ± 0.015, are equal within noise), while factor 100 was
2.4 nats worse at 1.5 minutes. On T² (κ_kde = 178) factors 1 and 10 tied at 1.5 minutes (2.2625 and
2.2619). Without a validation
split (or with fewer than 10 validation points) a seeded tenth of the training points stands in for it;
with fewer than :data:`cnfm_core.auto.MIN_POINTS` points nothing is read and ``κ_max = TORUS_KAPPA_DEFAULT``.
Large sets are subsampled as on the sphere (:func:`cnfm_core.auto.fit_points`).

With the adaptive kernel (``kernel="adaptive"``: a concentration per point and coordinate,
:func:`cnfm_core.torus_kde.torus_adaptive_kappas`) the rule also fits the adaptive KDE on the same held-out
points (:func:`cnfm_core.torus_kde.fit_torus_adaptive_kde`, every training point as a centre) and takes its
neighbour rank ``k`` and ``ADAPTIVE_FACTOR`` times its scale ``a``; ``κ_max`` (which then sets only the
schedule's pace, the end being ``κ_ij``) follows the rule above. ``ADAPTIVE_FACTOR = 3`` was chosen on
validation NLL on the same T⁷ mixture (2 CPU minutes, seed 0; k = 300, a = 1.78 read): factors 1, 2, 3, 4,
6, 10 gave 8.789, 8.650, 8.632, 8.666, 8.669, 8.749 against the true density's 8.486 on the same points and
8.661 for the fixed kernel (docs/torus.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .auto import adaptive_gain, fit_points
from .torus_kde import fit_torus_adaptive_kde, fit_torus_kde, torus_adaptive_kappas, torus_kde_log_prob

__all__ = ["ADAPTIVE_FACTOR", "DEFAULT_KERNEL_SCALE", "DEFAULT_NEIGHBOURS", "KAPPA_FACTOR", "TORUS_KAPPA_CAP",
           "TORUS_KAPPA_DEFAULT", "TORUS_KAPPA_MIN", "TorusAutoChoice", "choose_torus_settings"]

#: κ_max is this multiple of the validation KDE's concentration.
KAPPA_FACTOR = 10.0
#: With the adaptive kernel, ``kernel_scale`` is this multiple of the validation-optimal scale ``a``.
ADAPTIVE_FACTOR = 3.0
#: The adaptive kernel's neighbour rank and scale when nothing was read (too few points).
DEFAULT_NEIGHBOURS = 10
DEFAULT_KERNEL_SCALE = 1.0
#: Bounds of κ_max: below 1 a kernel is nearly uniform; above 1e5 (a kernel width of 0.2 degrees) float32
#: loses more than ``κ d`` 6e-8 ≈ 0.04 nats per logit in 7 dimensions (cnfm_core/torus_path.py).
TORUS_KAPPA_MIN = 1.0
TORUS_KAPPA_CAP = 1e5
#: κ_max when too few points are given to read anything.
TORUS_KAPPA_DEFAULT = 100.0


@dataclass(frozen=True)
class TorusAutoChoice:
    """What the rule chose (``kappa_max``; never Fourier features) and what it read (None: nothing read)."""

    kappa_max: float
    kde_kappa: float | None
    kde_weight: float | None
    held_out: str  # "the validation split", "a tenth of the training points" or "none"
    space_frequencies: int = 0
    space_scale: float = 10.0
    kernel_neighbours: int = DEFAULT_NEIGHBOURS
    kernel_scale: float = DEFAULT_KERNEL_SCALE
    #: The adaptive KDE's mean validation gain over the fixed one (nats) and its standard error, when fitted.
    adaptive_gain: float | None = None
    adaptive_gain_se: float | None = None
    #: The kernel asked for (the torus's rule never switches it).
    kernel: str = "fixed"
    #: The torus has no kernel base field (:data:`cnfm_core.config.FIELD_BASES`).
    field_base: str = "none"

    def describe(self, fields: tuple[str, ...] = ("kappa_max", "space_frequencies")) -> str:
        """One sentence for a person: what was read, and what was chosen of ``fields``."""
        parts = []
        if "kappa_max" in fields:
            parts.append(f"κ_max = {self.kappa_max:,.3g}")
        if "space_frequencies" in fields:
            parts.append("no random Fourier features (the field sees cos θ, sin θ)")
        if "kernel_neighbours" in fields or "kernel_scale" in fields:
            read = ("" if self.adaptive_gain is None else
                    f"; as a KDE {self.adaptive_gain:+.2f} ± {self.adaptive_gain_se:.2f} nats against one bandwidth")
            parts.append(f"per-coordinate bandwidths from {self.kernel_neighbours} nearest neighbours "
                         f"(scale {self.kernel_scale:.3g}{read})")
        chosen = ", ".join(parts)
        if self.kde_kappa is None:
            return f"Too few points to read the data's sharpness; fixed settings: {chosen}."
        return f"The best von Mises kernel density on {self.held_out} has κ = {self.kde_kappa:,.3g}: {chosen}."


def choose_torus_settings(train: np.ndarray, val: np.ndarray, *, seed: int = 0,
                          adaptive: bool = False) -> TorusAutoChoice:
    """Apply the rule (module doc) to angles in radians ``train`` ``(N, d)`` and ``val`` ``(M, d)``; with
    ``adaptive=True`` also fit the adaptive kernel's neighbour rank and scale."""
    train = np.asarray(train, dtype=np.float64)
    val = np.asarray(val, dtype=np.float64).reshape(-1, train.shape[1])
    kernel = "adaptive" if adaptive else "fixed"
    points = fit_points(train, val, np.random.default_rng(seed))
    if points is None:
        return TorusAutoChoice(TORUS_KAPPA_DEFAULT, None, None, "none", kernel=kernel)
    train, val, held_out, every = points
    fit = fit_torus_kde(train, val)
    if not math.isfinite(fit.kappa):
        return TorusAutoChoice(TORUS_KAPPA_DEFAULT, None, None, "none", kernel=kernel)
    kappa = min(max(KAPPA_FACTOR * fit.kappa, TORUS_KAPPA_MIN), TORUS_KAPPA_CAP)
    read: dict[str, Any] = {}
    if adaptive:
        a = fit_torus_adaptive_kde(every, val)
        kappas = torus_adaptive_kappas(every, a.neighbours, a.scale)
        read = dict(kernel_neighbours=a.neighbours, kernel_scale=ADAPTIVE_FACTOR * a.scale,
                    **adaptive_gain(torus_kde_log_prob(val, every, kappas, a.weight),
                                    torus_kde_log_prob(val, every, fit.kappa, fit.weight)))
    return TorusAutoChoice(kappa, fit.kappa, fit.weight, held_out, kernel=kernel, **read)
