"""The words of the dashboard in plain language: one or two sentences a student can read, and that are right.

:data:`GLOSSARY` maps a term to its :class:`Entry`; the sidebar shows it all (:func:`as_markdown`), and a page
uses :func:`explain` for the help text of a widget or metric that names a term.

>>> explain("NLL").startswith("Negative log-likelihood")
True
>>> list(GLOSSARY)[:3]
['density', 'uniform', 'times uniform']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GLOSSARY", "Entry", "as_markdown", "explain"]

_LOG_AREA = math.log(4.0 * math.pi)


@dataclass(frozen=True)
class Entry:
    """A term: the words a page uses for it (``term``, with its symbol when it has one) and what it means."""

    term: str
    meaning: str


_ENTRIES: tuple[Entry, ...] = (
    Entry(
        "density",
        "How crowded the probability is around a place: the chance that a point lands in a small "
        "patch, divided by the patch's area (in steradians, the sphere's unit of area: the whole sphere is "
        f"4π ≈ {4 * math.pi:.2f}). Twice the density means twice as likely per unit of area.",
    ),
    Entry(
        "uniform",
        "Spread evenly, like raindrops on a ball: every patch of the same area is equally likely, so "
        f"the density is 1 / 4π ≈ {1 / (4 * math.pi):.3f} everywhere. Training starts from uniform noise.",
    ),
    Entry(
        "times uniform",
        "A density divided by the uniform one: ×1 is as crowded as evenly spread points, ×10 "
        "ten times as crowded, ×0.1 a tenth. Maps use a log scale, so each colour step is a factor.",
    ),
    Entry(
        "log density",
        "The natural logarithm ln p of the density, which makes huge differences readable: one "
        f"more means e ≈ 2.7 times as dense, and uniform is −ln 4π ≈ −{_LOG_AREA:.2f}.",
    ),
    Entry(
        "nats", "The unit of a natural logarithm (ln) of a probability, as bits are of log base 2: 1 nat ≈ 1.44 bits."
    ),
    Entry(
        "NLL",
        "Negative log-likelihood: the average of −ln p(x) over points x the model did not train on, in "
        "nats, which says how surprised the model is by real data (lower is better). The uniform density "
        f"scores ln 4π ≈ {_LOG_AREA:.2f} on any data.",
    ),
    Entry(
        "kernel density",
        "A density built by putting a small bump (a kernel) on every data point and averaging "
        "the bumps: narrow bumps keep fine detail, wide bumps smooth it. It is the baseline the model is "
        "compared with.",
    ),
    Entry(
        "vMF",
        "The von Mises–Fisher distribution, the sphere's bell curve: a round bump around a centre point. "
        "Its concentration κ says how tight it is.",
    ),
    Entry(
        "κ (kappa)",
        "The concentration of a vMF bump, how tightly it hugs its centre: its width is about "
        "1/√κ radians, so κ = 100 is about 6° (640 km on Earth) and κ = 10,000 about 0.6° (64 km). κ_max is how "
        "sharp the target gets at the end, t = 1.",
    ),
    Entry(
        "ℓ (ell)",
        "The power in the PPD loss: ℓ = 1 averages the size of the mismatch |r|, ℓ = 2 its square r², "
        "which punishes a few large mismatches more than many small ones.",
    ),
    Entry(
        "ODE tolerance",
        "Following a flow exactly means solving an ordinary differential equation (ODE) in "
        "small steps, and the tolerance (rtol, atol) is the error allowed at each step: smaller is more exact "
        "and slower. dopri5 (Dormand–Prince) is the step rule used.",
    ),
    Entry(
        "flow",
        "The model: a velocity at every point of the sphere and every time t. Following it moves each "
        "point of the noise, and with them the whole density, towards the data.",
    ),
    Entry(
        "path",
        "A film of densities from t = 0 (uniform noise) to t = 1 (the data). The target path p_t is what "
        "training asks for; the model's path q_t is what its flow actually does.",
    ),
    Entry("t (time)", "How far along the path: 0 is the noise, 1 the data. It is not clock time."),
    Entry(
        "PPD",
        "Probability Path Divergence, the training method here: at random times and places it measures "
        "how far the flow is from moving mass the way the target path changes (the residual), without "
        "following the flow step by step.",
    ),
    Entry(
        "RFM",
        "Riemannian flow matching, the baseline method: it teaches the flow to carry each noise point "
        "along the shortest route on the sphere (a great circle) to a data point.",
    ),
    Entry(
        "residual",
        "r(t, x): how fast the target's density at x grows, minus how fast the flow brings mass to "
        "x. Positive (red): the flow brings too little; negative (blue): too much; zero: just right.",
    ),
    Entry(
        "step",
        "One update of the model: it looks at a small batch of random points, measures the loss and "
        "nudges its weights to lower it. Training is hundreds or thousands of steps.",
    ),
    Entry(
        "split",
        "How the data are divided: training points (the model learns from them), validation points "
        "(to check it while it trains) and test points (kept aside for the final score).",
    ),
)

#: Every term, in the order a reader meets them (density first).
GLOSSARY: dict[str, Entry] = {e.term.split(" (")[0]: e for e in _ENTRIES}


def explain(term: str) -> str:
    """What ``term`` (a key of :data:`GLOSSARY`) means; ``KeyError`` naming the known terms otherwise."""
    try:
        return GLOSSARY[term].meaning
    except KeyError:
        raise KeyError(f"no glossary entry {term!r}; known: {', '.join(GLOSSARY)}") from None


def as_markdown() -> str:
    """The whole glossary as a Markdown list, a term in bold and its meaning."""
    return "\n".join(f"- **{e.term}**: {e.meaning}" for e in GLOSSARY.values())
