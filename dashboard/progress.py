"""What the Train page says about a run in progress, as pure functions of its files (no Streamlit, no torch).

Every text here is plain words with numbers that are known: a time left is given only once there is a rate
to estimate it from, so nothing on the page ever reads "nan".

>>> running_progress(elapsed=30.0, step=120, budget_s=60.0, min_steps=300, steps=None, rate=4.0)[1]
'training: 30 s of at least 60 s, step 120 of at least 300; about 45 s left'
>>> stage_text({"label": "density map", "state": "running", "fraction": 0.5, "eta_s": float("nan")})
'density map: running (50 %)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cnfm_core.geo import LOG_AREA

__all__ = ["NEAR_UNIFORM_NATS", "latest_val_nll", "near_uniform", "running_progress", "stage_text", "steps_per_s"]

#: A validation NLL within this many nats of the uniform density's (log 4 pi) means the model has barely learned.
NEAR_UNIFORM_NATS: float = 0.3


def _number(value: object) -> float | None:
    """``value`` as a finite float, else None (missing, a string, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def steps_per_s(metrics: Sequence[dict[str, Any]]) -> float | None:
    """The training speed of the latest metrics line (steps per second of wall time), None before the first."""
    for rec in reversed(metrics):
        rate = _number(rec.get("steps_per_s"))
        if rate is not None and rate > 0:
            return rate
    return None


def latest_val_nll(metrics: Sequence[dict[str, Any]]) -> float | None:
    """The latest validation NLL (nats) in the metrics, None before the first."""
    for rec in reversed(metrics):
        value = _number(rec.get("val_nll"))
        if value is not None:
            return value
    return None


def near_uniform(val_nll: float | None) -> bool:
    """Whether a validation NLL is still within :data:`NEAR_UNIFORM_NATS` of the uniform density's."""
    return val_nll is not None and val_nll > LOG_AREA - NEAR_UNIFORM_NATS


def _seconds(s: float) -> str:
    return f"{math.ceil(s)} s" if s < 120 else f"{s / 60:.1f} min"


def running_progress(*, elapsed: float, step: int, budget_s: float | None, min_steps: int | None, steps: int | None,
                     rate: float | None) -> tuple[float, str]:
    """``(fraction done, text)`` for a training run: a time budget (``budget_s``, trained on until ``min_steps``)
    or a step budget (``steps``); the time left comes from ``rate`` (steps per second) where steps decide it."""
    if step == 0 and elapsed == 0:
        return 0.0, "starting: reading the data and building the target ..."
    if budget_s:
        fraction = min(1.0, elapsed / budget_s)
        text = f"training: {elapsed:.0f} s of {'at least ' if min_steps else ''}{budget_s:.0f} s"
        left: float | None = max(0.0, budget_s - elapsed)
        if min_steps and step < min_steps:
            fraction = min(fraction, step / min_steps)
            text += f", step {step} of at least {min_steps}"
            left = max(left or 0.0, (min_steps - step) / rate) if rate else None
        else:
            text += f", step {step}"
    elif steps:
        fraction = min(1.0, step / steps)
        text = f"training: step {step} of {steps}"
        left = max(0.0, (steps - step) / rate) if rate else None
    else:
        return 0.0, f"training: step {step}"
    text += f"; about {_seconds(left)} left" if left is not None else "; estimating the time left ..."
    return max(0.0, fraction), text


_STATE_WORDS = {"pending": "waiting", "running": "running", "done": "done", "skipped": "skipped",
                "cancelled": "cancelled", "failed": "failed"}


def stage_text(stage: dict[str, Any]) -> str:
    """One line for a stage of the report (``status.json``'s ``stages``): its label, state, progress and
    estimate or time taken, leaving out whatever is unknown."""
    label = str(stage.get("label") or stage.get("name") or "a stage")
    state = str(stage.get("state") or "pending")
    text = f"{label}: {_STATE_WORDS.get(state, state)}"
    fraction, eta, seconds = (_number(stage.get(k)) for k in ("fraction", "eta_s", "seconds"))
    if state == "running":
        extra = [f"{100 * min(1.0, max(0.0, fraction)):.0f} %"] if fraction is not None else []
        if eta is not None:
            extra.append(f"about {_seconds(max(0.0, eta))} left")
        text += f" ({', '.join(extra)})" if extra else ""
    elif state == "done" and seconds is not None:
        text += f" in {seconds:.1f} s"
    return text
