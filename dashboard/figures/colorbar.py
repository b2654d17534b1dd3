"""The colour bar of a density drawn without one (HTML; deck.gl draws none on a globe): the colours of
:func:`~dashboard.figures.colours.value_colors` from one value to another, with round ticks and end labels that
say values beyond the ends get the end colours.

>>> colorbar_ticks(0.0, 1.0)
[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from dashboard.figures.colours import value_colors

__all__ = ["colorbar_html", "colorbar_ticks"]


def colorbar_ticks(vmin: float, vmax: float, *, most: int = 6) -> list[float]:
    """Round values inside ``[vmin, vmax]`` to label a colour bar with, at most ``most`` of them: multiples of
    1, 2 or 5 times a power of ten.

    >>> colorbar_ticks(-9.4, 2.1)
    [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0]
    >>> colorbar_ticks(0.0, 0.0)
    [0.0]
    """
    lo, hi = float(vmin), float(vmax)
    if not hi > lo:
        return [round(lo, 6)]
    power = 10.0 ** math.floor(math.log10((hi - lo) / most))

    def count(step: float) -> int:
        return math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1

    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0, 20.0) if count(m * power) <= most)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(k * step, 6) + 0.0 for k in range(first, last + 1)]


def colorbar_html(
    vmin: float,
    vmax: float,
    label: str,
    *,
    ticks: tuple[Sequence[float], Sequence[str]] | None = None,
    ends: tuple[str, str] | None = None,
    stops: int = 11,
    width_px: int = 420,
) -> str:
    """A horizontal colour bar of :data:`COLORSCALE` from ``vmin`` to ``vmax`` (the colours of
    :func:`value_colors`), with ``label`` (escaped) above it, for ``st.markdown(..., unsafe_allow_html=True)``.
    Ticks are ``(values, labels)`` between ``vmin`` and ``vmax`` (default: round values, :func:`colorbar_ticks`);
    values outside the range get the end colours, which the end labels say (``≤`` and ``≥`` before ``ends``, by
    default the two values). At most ``width_px`` wide, narrower in a narrow column.

    >>> bar = colorbar_html(-4.0, 1.0, "log density <nats>")
    >>> "linear-gradient(to right, rgb(68, 1, 84) 0%" in bar and "rgb(253, 231, 37) 100%" in bar
    True
    >>> "log density &lt;nats&gt;" in bar and "≤ −4" in bar and "≥ 1" in bar
    True
    """
    lo, hi = float(vmin), float(vmax)
    span = hi - lo if hi > lo else 1.0
    at = np.linspace(0.0, 1.0, stops)
    colours = value_colors(lo + at * span, vmin=lo, vmax=lo + span)
    gradient = ", ".join(f"rgb({r}, {g}, {b}) {100 * a:g}%" for (r, g, b), a in zip(colours.tolist(), at, strict=True))
    round_values = colorbar_ticks(lo, hi)
    values, texts = ticks if ticks is not None else (round_values, [_number(v) for v in round_values])
    marks = "".join(
        f'<span style="position:absolute;left:{100 * (v - lo) / span:.2f}%;transform:translateX(-50%)">'
        f"{html.escape(str(text))}</span>"
        for v, text in zip(values, texts, strict=True)
        if 0.1 <= (v - lo) / span <= 0.9  # the ends carry their own labels
    )
    low, high = ends if ends is not None else (_number(lo), _number(hi))
    end_marks = (
        f'<span style="position:absolute;left:0">≤ {html.escape(low)}</span>'
        f'<span style="position:absolute;right:0">≥ {html.escape(high)}</span>'
    )
    return (
        f'<div style="max-width:{int(width_px)}px;font-size:0.85em;line-height:1.3;margin:0.2em 0 0.6em 0">'
        f"<div>{html.escape(label)}</div>"
        f'<div style="height:0.9em;border-radius:2px;background:linear-gradient(to right, {gradient})"></div>'
        f'<div style="position:relative;height:1.4em;white-space:nowrap">{marks}{end_marks}</div></div>'
    )


def _number(v: float) -> str:
    """A tick value as a reader writes it: ``-4.0 -> "−4"``, ``2.5 -> "2.5"`` (a true minus sign)."""
    text = f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"
    return text.replace("-", "−") if text not in ("-0",) else "0"
