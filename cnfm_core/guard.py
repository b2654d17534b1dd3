"""A guard against training that diverges: undo the bad step, lower the learning rate, give up after a few.

Every step the training loop asks :meth:`DivergenceGuard.check` about the step's loss and gradient norm (both
already computed, before the optimiser moves). A step is bad when either is not finite, or when the loss explodes:
more than :data:`EXPLODE` times the median magnitude of the last :data:`WINDOW` good losses. A good step's state is kept
(:meth:`~DivergenceGuard.keep`: the model, the optimiser and the EMA weights as they are before the optimiser
moves, copied in place into buffers); after a bad one the loop calls :meth:`~DivergenceGuard.roll_back`, which
restores that state, halves :attr:`~DivergenceGuard.lr_scale` (the factor on the learning rate) and returns the
``diverged`` event to record. After :data:`MAX_FAILURES` bad steps :meth:`~DivergenceGuard.give_up_if_exhausted`
raises :class:`TrainingDiverged`, one line for the user.

The guard only reads numbers the loop has anyway and copies tensors aside, so a healthy run's numbers are those of
a run without it (``tests/test_faults.py`` checks this).

>>> model = torch.nn.Linear(2, 1)
>>> opt = torch.optim.Adam(model.parameters())
>>> guard = DivergenceGuard(model, opt, torch.nn.Linear(2, 1))
>>> guard.check(1.0, 2.0) is None, guard.check(float("nan"), 2.0)
(True, 'the loss became nan')
>>> guard.keep(0)
>>> with torch.no_grad():
...     _ = model.weight.add_(1e6)
>>> guard.roll_back("the loss became nan", 1)["message"]
'step 1: the loss became nan; rolled back the last update and halved the learning rate (now 0.5 of --lr), ...'
>>> bool(model.weight.abs().max() < 1e6), guard.lr_scale
(True, 0.5)
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from typing import Any

import torch
from torch import nn

__all__ = ["EXPLODE", "MAX_FAILURES", "WINDOW", "DivergenceGuard", "TrainingDiverged"]

#: A loss above this many times the median magnitude of the recent good losses counts as exploding. Healthy PPD and
#: RFM losses vary by a factor of a few between minibatches; a step that diverges jumps by ten orders or more.
EXPLODE: float = 1e4
#: How many recent good losses the median is taken over, and how many bad steps end the run.
WINDOW: int = 50
MAX_FAILURES: int = 5


class TrainingDiverged(FloatingPointError):
    """Training diverged :data:`MAX_FAILURES` times despite the rollbacks (a one-line message)."""


def _copy_into(buffer: Any, value: Any) -> Any:
    """``value`` (a tensor, or a dict or list of them) copied into ``buffer`` where shapes allow, else cloned."""
    if isinstance(value, torch.Tensor):
        if isinstance(buffer, torch.Tensor) and buffer.shape == value.shape and buffer.dtype == value.dtype \
                and buffer.device == value.device:
            return buffer.copy_(value)
        return value.detach().clone()
    if isinstance(value, dict):
        old = buffer if isinstance(buffer, dict) else {}
        return {k: _copy_into(old.get(k), v) for k, v in value.items()}
    return value


class DivergenceGuard:
    """Watches a training loop's steps and undoes the bad ones (see the module doc)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: nn.Module, *,
                 lr_scale: float = 1.0) -> None:
        self.model, self.optimizer, self.ema = model, optimizer, ema
        self.lr_scale = lr_scale
        self.failures = 0
        self.good_step: int | None = None
        self._losses: deque[float] = deque(maxlen=WINDOW)
        self._saved: dict[str, Any] = {}

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def check(self, loss: float, grad_norm: float) -> str | None:
        """Why this step is bad ("the loss became nan", ...), or None for a good step."""
        if not math.isfinite(loss):
            return f"the loss became {loss}"
        if not math.isfinite(grad_norm):
            return f"the gradient norm became {grad_norm}"
        if self._losses:
            scale = statistics.median(self._losses)
            if abs(loss) > EXPLODE * max(scale, 1e-12):
                return f"the loss exploded to {loss:.3g} (recent losses about {scale:.3g})"
        self._losses.append(abs(loss))
        return None

    @torch.no_grad()
    def keep(self, step: int) -> None:
        """Keep the state of a good step (before the optimiser moves) for a rollback."""
        saved = self._saved
        saved["model"] = _copy_into(saved.get("model"), self.model.state_dict())
        saved["ema"] = _copy_into(saved.get("ema"), self.ema.state_dict())
        params = self._params()
        saved["optimizer"] = {i: _copy_into(saved.get("optimizer", {}).get(i), self.optimizer.state[p])
                              for i, p in enumerate(params) if p in self.optimizer.state}
        self.good_step = step

    @torch.no_grad()
    def roll_back(self, why: str, step: int) -> dict[str, Any]:
        """After a bad ``step`` (``why``, from :meth:`check`): restore the last kept state and halve
        :attr:`lr_scale`; returns the ``diverged`` event to record (its ``message`` is one line)."""
        self.failures += 1
        self.lr_scale *= 0.5
        if self._saved:
            self.model.load_state_dict(self._saved["model"])
            self.ema.load_state_dict(self._saved["ema"])
            params = self._params()
            self.optimizer.state.clear()
            for i, state in self._saved["optimizer"].items():
                self.optimizer.state[params[i]] = {k: v.clone() if isinstance(v, torch.Tensor) else v
                                                   for k, v in state.items()}
        message = (f"step {step}: {why}; rolled back the last update and halved the learning rate (now "
                   f"{self.lr_scale:g} of --lr), {self.failures} of {MAX_FAILURES} tries")
        return {"event": "diverged", "step": step, "reason": why, "lr_scale": self.lr_scale,
                "failures": self.failures, "message": message, "time": time.time()}

    @property
    def exhausted(self) -> bool:
        """Whether the run should stop: :data:`MAX_FAILURES` bad steps so far."""
        return self.failures >= MAX_FAILURES

    def give_up_if_exhausted(self, why: str, step: int) -> None:
        """Raise :class:`TrainingDiverged` (one line) once :data:`MAX_FAILURES` steps were bad."""
        if self.exhausted:
            raise TrainingDiverged(
                f"training diverged: {why} at step {step}, {self.failures} times, although the model was rolled "
                f"back and the learning rate halved each time (to {self.lr_scale:g} of --lr); the last good state "
                "is saved; try a lower --lr")
