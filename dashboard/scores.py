"""What a run's test NLL means, in plain words: the model's score beside the uniform density, the kernel density
and (for data with a known density) the truth, each read as how much likelier the model makes the test points.

The test NLL is the mean of ``-log q(x)`` over the test points (nats). Between two densities ``q`` and ``p`` a
difference of ``Δ = NLL_p - NLL_q`` nats means

    exp(Δ) = (prod_i q(x_i) / p(x_i)) ** (1 / n),

the test points are ``exp(Δ)`` times as likely under ``q`` as under ``p``: a geometric mean over the points.
The numbers come from the run's ``report.json`` (:func:`cnfm_core.report.test_report`).

>>> report = {"test_nll": 0.39, "uniform_nll": 2.531, "kde_nll": 0.46, "true_nll": 0.325, "n_test": 200}
>>> [(c.name, c.nll, round(c.times, 2)) for c in comparisons(report)]
[('the uniform density', 2.531, 8.51), ('the kernel density', 0.46, 1.07), ('the true density', 0.325, 0.94)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnfm_core.geo import LOG_AREA

__all__ = ["Comparison", "comparisons", "likelier", "nll_sentence", "times_text"]


@dataclass(frozen=True)
class Comparison:
    """The model against one other density: its name in words, its test NLL, and ``times = exp(nll - model)``,
    how many times as likely the model makes the test points (a geometric mean; below 1 where the other fits
    better)."""

    name: str
    nll: float
    times: float


def _number(report: dict[str, Any], key: str) -> float | None:
    value = report.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def comparisons(report: dict[str, Any]) -> list[Comparison]:
    """The model against the uniform density (``uniform_nll``, else log 4π), the kernel density (``kde_nll``)
    and the true density (``true_nll``), those the report has; empty without a test NLL."""
    model = _number(report, "test_nll")
    if model is None:
        return []
    others = [
        ("the uniform density", _number(report, "uniform_nll") or LOG_AREA),
        ("the kernel density", _number(report, "kde_nll")),
        ("the true density", _number(report, "true_nll")),
    ]
    # exp of a gap above 700 nats overflows; no reader needs a factor beyond e^700
    return [
        Comparison(name, nll, math.exp(min(700.0, max(-700.0, nll - model)))) for name, nll in others if nll is not None
    ]


def times_text(times: float) -> str:
    """A likelihood ratio as a reader says it: three significant figures, whole numbers with thousands
    separators from 100 up.

    >>> times_text(8.4213), times_text(1.0712), times_text(0.6262), times_text(12345.6)
    ('8.42', '1.07', '0.626', '12,346')
    """
    return f"{times:,.0f}" if times >= 100 else f"{times:.3g}"


def likelier(c: Comparison) -> str:
    """How the model's likelihood of the test points compares with ``c``'s, in words: ``"8.51 times as likely as
    under the uniform density"`` or, where ``c`` fits better, ``"1.07 times less likely than under the true
    density"`` (the factor then is ``1 / times``).

    >>> likelier(Comparison("the kernel density", 0.0, 0.5))
    '2 times less likely than under the kernel density'
    """
    if c.times >= 1.0:
        return f"{times_text(c.times)} times as likely as under {c.name}"
    return f"{times_text(1.0 / c.times)} times less likely than under {c.name}"


def nll_sentence(report: dict[str, Any]) -> str | None:
    """One sentence reading the test NLL against the others (:func:`comparisons`, :func:`likelier`), with the
    report's numbers; None without a test NLL.

    >>> print(nll_sentence({"test_nll": 0.39, "kde_nll": 0.46, "n_test": 200}))
    On the 200 test points the model scores 0.390 nats (lower is better): on average a test point is 8.51 times \
as likely under the model as under the uniform density (2.531 nats) and 1.07 times as likely as under the kernel \
density (0.460).
    """
    model = _number(report, "test_nll")
    found = comparisons(report)
    if model is None or not found:
        return None
    n = report.get("n_test")
    where = f"On the {n:,} test points" if isinstance(n, int) and n > 0 else "On the test points"
    parts = []
    for i, c in enumerate(found):
        text = likelier(c)
        if (
            i == 0
        ):  # the first names the model: "as likely under the model as under", "less likely under the model than"
            text = text.replace(" as likely as", " as likely under the model as").replace(
                " less likely than", " less likely under the model than"
            )
        text += f" ({_signed(c.nll)} nats)" if i == 0 else f" ({_signed(c.nll)})"
        parts.append(text + (", the best any model can do" if c.name == "the true density" else ""))
    listed = (
        parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ("," if len(parts) > 2 else "") + " and " + parts[-1]
    )
    return f"{where} the model scores {_signed(model)} nats (lower is better): on average a test point is {listed}."


def _signed(value: float) -> str:
    """``-0.086 -> "−0.086"`` (three decimals, a true minus sign)."""
    return f"{value:.3f}".replace("-", "−")
