"""Densities in the unit the user chose: "times uniform" or log density.

A density ``p`` on the unit sphere is probability per steradian; the whole sphere is ``4π`` steradians, so the
uniform density is ``p_u = 1 / (4π) ≈ 0.0796`` everywhere. The dashboard shows a density in one of two units
(:data:`UNITS`), one choice for the whole app (``dashboard/state.py``: ``density_unit``):

``"times"``, times uniform
    ``p / p_u = exp(log p + log 4π)``, a pure number: ×1 is as crowded as evenly spread points, ×10 ten times
    as crowded, ×0.1 a tenth. Maps colour ``log10(p / p_u)`` (a log colour axis), with ticks labelled
    ×0.1, ×1, ×10, ×100 (:func:`ratio_ticks`).
``"log"``, log density
    ``log p`` in nats per steradian (the natural logarithm), as the library computes it; uniform is
    ``-log 4π ≈ -2.531``.

Everything here is pure numpy, from log densities in nats (what every run file holds) to what a figure draws.

>>> round(float(times_uniform(-math.log(4 * math.pi))), 12)
1.0
>>> colour_scale("times", -math.log(4 * math.pi) - 3.0, -math.log(4 * math.pi) + 5.0).ticktext
('×0.1', '×1', '×10', '×100')
>>> describe(-math.log(4 * math.pi) + math.log(25.0), "times"), describe(-2.5314, "log")
('25 × uniform', '−2.53 nats')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_UNIT",
    "LOG_UNIFORM",
    "UNITS",
    "ColourScale",
    "colour_scale",
    "colour_values",
    "describe",
    "ratio_label",
    "ratio_ticks",
    "times_uniform",
]

#: The units a density can be shown in: key -> its name in the user's words.
UNITS: dict[str, str] = {"times": "times uniform (×1 = evenly spread)", "log": "log density (nats)"}
#: The unit of a new session: the one a reader needs no logarithm for.
DEFAULT_UNIT: str = "times"
#: ``log p_u = -log 4π``: the log density of the uniform density on the unit sphere, in nats per steradian.
LOG_UNIFORM: float = -math.log(4.0 * math.pi)
_LN10 = math.log(10.0)
#: Superscript digits, for labels such as ×10⁶.
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _check(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unknown density unit {unit!r}; choose one of {', '.join(UNITS)}")


def times_uniform(log_prob: np.ndarray | float) -> np.ndarray:
    """``p / p_u = exp(log p - log p_u)`` from log densities in nats (``-inf`` gives 0, NaN stays NaN)."""
    return np.exp(np.asarray(log_prob, dtype=np.float64) - LOG_UNIFORM)


def colour_values(log_prob: np.ndarray, unit: str) -> np.ndarray:
    """What a map colours for log densities ``log_prob`` (nats) in ``unit``: ``log p`` itself for ``"log"``,
    ``log10(p / p_u) = (log p - log p_u) / ln 10`` for ``"times"`` (so one colour step is a factor of ten).

    >>> colour_values(np.array([LOG_UNIFORM, LOG_UNIFORM + math.log(100.0)]), "times").round(12).tolist()
    [0.0, 2.0]
    """
    _check(unit)
    log_prob = np.asarray(log_prob, dtype=np.float64)
    return log_prob if unit == "log" else (log_prob - LOG_UNIFORM) / _LN10


def ratio_label(decade: float) -> str:
    """The label of ``p / p_u = 10**decade``: ×0.01, ×0.5, ×1, ×20, ×1,000; beyond a million (or below a
    millionth) ×10⁷ and ×10⁻⁷.

    >>> [ratio_label(d) for d in (-2, -math.log10(2), 0, 1 + math.log10(2), 3, 7, -7)]
    ['×0.01', '×0.5', '×1', '×20', '×1,000', '×10⁷', '×10⁻⁷']
    """
    if abs(decade) > 6 + 1e-9:
        return "×10" + str(round(decade)).translate(_SUPERSCRIPT)
    value = 10.0**decade
    digits = max(0, -math.floor(decade + 1e-9))  # 0.05 needs two decimals, 0.5 one, 5 none
    return f"×{value:,.{digits}f}"


def ratio_ticks(lo: float, hi: float) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Colour-bar ticks between ``lo`` and ``hi`` in ``log10(p / p_u)``: every power of ten (every second or
    third one over a range of more than 8 or 16 decades); with fewer than two powers of ten in the range,
    also ×2 and ×5 of each; with none of those, the two ends. Returns ``(positions, labels)``.

    >>> ratio_ticks(-1.2, 2.3)[1]
    ('×0.1', '×1', '×10', '×100')
    >>> ratio_ticks(-0.2, 0.8)[1]
    ('×1', '×2', '×5')
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return (), ()
    first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    every = 1 if last - first <= 8 else 2 if last - first <= 16 else 3
    decades = [float(d) for d in range(first, last + 1) if d % every == 0]
    if len(decades) < 2:
        extra = [d + math.log10(m) for d in range(first - 1, last + 1) for m in (1, 2, 5)]
        decades = sorted(d for d in extra if lo - 1e-9 <= d <= hi + 1e-9)
    if not decades:  # a range within one 1-2-5 step: its two ends, to two digits
        return (lo, hi), tuple(f"×{_two_digits(10.0**d)}" for d in (lo, hi))
    return tuple(decades), tuple(ratio_label(d) for d in decades)


@dataclass(frozen=True)
class ColourScale:
    """How a density map draws its values in one unit (plotly's words).

    ``zmin``/``zmax``: the ends of the colour axis in the values drawn (:func:`colour_values`), None for the
    values' own range; ``tickvals``/``ticktext``: the colour bar's ticks (None: plotly's own numbers);
    ``title``: the colour bar's title; ``hover``: how a hover label writes a value ``%{z}``."""

    unit: str
    title: str
    zmin: float | None
    zmax: float | None
    tickvals: tuple[float, ...] | None
    ticktext: tuple[str, ...] | None
    hover: str

    def colorbar(self, **extra: object) -> dict[str, object]:
        """A plotly ``colorbar`` dict: title on the right, and the ticks (when set)."""
        bar: dict[str, object] = {"title": {"text": self.title, "side": "right"}, **extra}
        if self.tickvals is not None:
            bar.update(tickmode="array", tickvals=list(self.tickvals), ticktext=list(self.ticktext or ()))
        return bar


def colour_scale(unit: str, lo: float | None, hi: float | None) -> ColourScale:
    """The colour axis of a density map in ``unit`` spanning log densities ``lo`` to ``hi`` (nats; None where
    unknown). For ``"times"`` the ends are converted by :func:`colour_values` and the ticks are
    :func:`ratio_ticks` of the range; for ``"log"`` the ends stay and plotly writes its own numbers.

    >>> s = colour_scale("times", LOG_UNIFORM - math.log(10.0), LOG_UNIFORM + math.log(1000.0))
    >>> round(s.zmin, 12), round(s.zmax, 12), s.ticktext
    (-1.0, 3.0, ('×0.1', '×1', '×10', '×100', '×1,000'))
    """
    _check(unit)
    if unit == "log":
        return ColourScale(unit, "log density (nats)", lo, hi, None, None, "log density %{z:.2f} nats")
    zlo = None if lo is None else float(colour_values(np.array(lo), unit))
    zhi = None if hi is None else float(colour_values(np.array(hi), unit))
    ticks = ratio_ticks(zlo, zhi) if zlo is not None and zhi is not None else (None, None)
    return ColourScale(unit, "density (× uniform)", zlo, zhi, ticks[0], ticks[1], "density ≈ 10^%{z:.1f} × uniform")


def _two_digits(ratio: float) -> str:
    """``ratio`` to two significant digits, with thousands separators and no trailing zeros: 25, 0.031, 1,200."""
    r = float(f"{ratio:.2g}")
    if r >= 10:
        return f"{r:,.0f}"
    text = f"{r:.{1 - math.floor(math.log10(r))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def describe(log_prob: float, unit: str) -> str:
    """One log density ``log_prob`` (nats) in words: ``"25 × uniform"`` (two significant digits, a power of ten
    beyond a million) or ``"−2.53 nats"``; ``"–"`` when it is not a finite number.

    >>> describe(float("nan"), "times"), describe(LOG_UNIFORM + 20 * math.log(10.0), "times")
    ('–', '10²⁰ × uniform')
    >>> describe(LOG_UNIFORM + math.log(1234.0), "times"), describe(LOG_UNIFORM, "times")
    ('1,200 × uniform', '1 × uniform')
    """
    _check(unit)
    if isinstance(log_prob, bool) or not isinstance(log_prob, int | float) or not math.isfinite(log_prob):
        return "–"
    if unit == "log":
        return f"{log_prob:.2f} nats".replace("-", "−")
    decade = (log_prob - LOG_UNIFORM) / _LN10
    if abs(decade) > 6:
        return "10" + str(round(decade)).translate(_SUPERSCRIPT) + " × uniform"
    return f"{_two_digits(10.0**decade)} × uniform"
