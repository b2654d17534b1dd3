"""Concentration schedules ``kappa(t)`` of a kernel-mixture target path, shared by every manifold.

A schedule starts at ``kappa(0) = 0`` (the uniform density) and ends at ``kappa(1) = kappa_max``;
:data:`SCHEDULES` maps names to them (:func:`make_schedule`).

>>> import torch
>>> make_schedule("linear", 100.0).kappa(torch.tensor([0.0, 0.5, 1.0])).tolist()
[0.0, 50.0, 100.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "ExponentialSchedule", "LinearSchedule", "Schedule", "make_schedule"]


@dataclass(frozen=True)
class ExponentialSchedule:
    """``kappa(t) = (1 + kappa_max)^t - 1``: slow at first, so mass leaves the uniform gradually."""

    kappa_max: float

    def kappa(self, t: Tensor) -> Tensor:
        return torch.expm1(t * math.log1p(self.kappa_max))

    def dkappa(self, t: Tensor) -> Tensor:
        a = math.log1p(self.kappa_max)
        return a * torch.exp(t * a)


@dataclass(frozen=True)
class LinearSchedule:
    """``kappa(t) = kappa_max * t``."""

    kappa_max: float

    def kappa(self, t: Tensor) -> Tensor:
        return t * self.kappa_max

    def dkappa(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.kappa_max)


Schedule = ExponentialSchedule | LinearSchedule

#: Schedule names for configs and UIs.
SCHEDULES: dict[str, Callable[[float], Schedule]] = {
    "exponential": ExponentialSchedule,
    "linear": LinearSchedule,
}


def make_schedule(name: str, kappa_max: float) -> Schedule:
    """Build a schedule by name; unknown names raise ``ValueError`` listing the known ones."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    if not (kappa_max > 0 and math.isfinite(kappa_max)):
        raise ValueError(f"kappa_max must be a positive finite number, got {kappa_max}")
    return SCHEDULES[name](float(kappa_max))
