"""The report after training, in stages: each writes its files as soon as it is done, so that a page shows a
density within seconds and the exact numbers as they come.

:func:`run_stages` runs, in this order (cheapest and most wanted first):

    map_preview   a coarse density map (30 x 60 cells, RK4 at step 0.1) and 300 samples -> density.npz with
                  preview = 1, samples.csv
    test_nll      the exact test NLL (dopri5 at the run's rtol/atol, unchanged) and the KDE -> report.json
    frames        the path frames over t (:func:`cnfm_core.frames.write_frames`) -> frames.npz
    map           the exact 90 x 180 map (dopri5, as before) and 2,000 samples -> density.npz with preview = 0

The exact map is last: it is the slowest (16,200 exact solves) and the preview already shows the density, while
the exact NLL and the frames have their own targets (end of training -> density <= 5 s, exact NLL <= 20 s, frames
<= 60 s on an idle 2-core machine). Measured on the bundled mixture after a default one-minute run (PPD l = 1,
850 steps), one torch thread, the 2-core machine at load 9-10: preview written 7.7 s after the end of training,
exact NLL at 11.4 s, frames at 98 s, exact map at 210 s (``python bench/bench_stages.py RUN_DIR``).

Progress goes to ``status.json`` through ``publish`` as
a list of stages ``{"name", "label", "state", "fraction", "eta_s", "seconds"}`` (state ``pending``, ``running``,
``done``, ``skipped``, ``cancelled`` or ``failed``). The fraction of an ODE stage is read off the solver's time
(the likelihood runs from t = 1 back to 0), per chunk of grid rows; the estimate ``eta_s`` extrapolates the
stage's elapsed time from its fraction. ``DIR/cancel.request`` (or ``DIR/stop.request``) is checked at every
evaluation of the field: the stage running and the ones after it are marked ``cancelled``, and what was
written stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .builders import load_field
from .frames import write_frames
from .report import test_report, write_density
from .runs import RunDir

__all__ = ["LABELS", "ORDER", "Cancelled", "StageBoard", "run_stages"]

#: The stages in the order they run, and what a page calls them.
ORDER = ("map_preview", "test_nll", "frames", "map")
LABELS = {"map_preview": "density map (preview)", "test_nll": "exact test NLL",
          "frames": "path frames over t", "map": "exact density map"}


class Cancelled(Exception):
    """Someone asked to cancel the report (``cancel.request`` or ``stop.request`` in the run directory)."""


class StageBoard:
    """The stages' states, fractions and estimates; every change is published (at most every ``every`` seconds
    for fractions), and :meth:`check` raises :class:`Cancelled` once ``cancelled()`` says so."""

    def __init__(self, names: tuple[str, ...], publish: Callable[[list[dict[str, Any]]], None],
                 cancelled: Callable[[], bool], *, every: float = 0.5) -> None:
        self.stages = [{"name": n, "label": LABELS[n], "state": "pending", "fraction": 0.0, "eta_s": None,
                        "seconds": None} for n in names]
        self._publish, self._cancelled, self._every = publish, cancelled, every
        self._t0: dict[str, float] = {}
        self._last = 0.0
        self.publish()

    def _stage(self, name: str) -> dict[str, Any]:
        return next(s for s in self.stages if s["name"] == name)

    def publish(self) -> None:
        self._last = time.monotonic()
        self._publish([dict(s) for s in self.stages])

    def states(self) -> dict[str, str]:
        return {s["name"]: s["state"] for s in self.stages}

    def check(self) -> None:
        if self._cancelled():
            raise Cancelled

    def begin(self, name: str) -> None:
        self.check()
        self._t0[name] = time.monotonic()
        self._stage(name).update(state="running", fraction=0.0, eta_s=None)
        self.publish()

    def progress(self, name: str, fraction: float) -> None:
        """The running stage is ``fraction`` done: an estimate once 3 % is done; cancelling is checked here."""
        self.check()
        s = self._stage(name)
        fraction = min(1.0, max(float(s["fraction"]), fraction))
        spent = time.monotonic() - self._t0[name]
        s.update(fraction=round(fraction, 4), seconds=round(spent, 2),
                 eta_s=round(spent * (1.0 - fraction) / fraction, 1) if fraction >= 0.03 else None)
        if time.monotonic() - self._last >= self._every:
            self.publish()

    def end(self, name: str, state: str = "done") -> None:
        s = self._stage(name)
        spent = round(time.monotonic() - self._t0[name], 2) if name in self._t0 else None
        s.update(state=state, eta_s=None, seconds=spent, fraction=1.0 if state == "done" else s["fraction"])
        self.publish()

    def cancel_rest(self) -> None:
        """Mark the running stage and every pending one ``cancelled``."""
        for s in self.stages:
            if s["state"] in ("pending", "running"):
                s.update(state="cancelled", eta_s=None)
        self.publish()


class _Watched(nn.Module):
    """A field that reports each evaluation's time ``t`` to ``seen(t, backward)`` (progress, cancelling) and
    otherwise is the field: same parameters, manifold and numbers. Likelihoods call ``velocity_and_divergence``
    (backward, t from 1 to 0), sampling calls the field itself (forward, t from 0 to 1)."""

    def __init__(self, field: nn.Module, seen: Callable[[float, bool], None]) -> None:
        super().__init__()
        self.field, self._seen = field, seen
        self.manifold = getattr(field, "manifold", None)

    @staticmethod
    def _float(t: Tensor | float) -> float:
        return float(t.reshape(-1)[0]) if isinstance(t, Tensor) else float(t)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        self._seen(self._float(t), False)
        return self.field(x, t)

    def velocity_and_divergence(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        self._seen(self._float(t), True)
        return self.field.velocity_and_divergence(x, t)


def _watch(field: nn.Module, board: StageBoard, name: str, chunks: int = 1) -> _Watched:
    """``field`` with the stage's fraction read off the solver's time over ``chunks`` solves in a row: a new
    solve starts when t is back at its starting end (1 for a likelihood, 0 for sampling)."""
    last: dict[str, Any] = {"chunk": -1, "t": None, "backward": None}

    def seen(t: float, backward: bool) -> None:
        at_start = t >= 1.0 if backward else t <= 0.0
        was_at_start = last["t"] is not None and last["backward"] == backward and (
            last["t"] >= 1.0 if backward else last["t"] <= 0.0)
        if at_start and not was_at_start:
            last["chunk"] += 1
        last.update(t=t, backward=backward)
        within = min(1.0, max(0.0, 1.0 - t if backward else t))
        board.progress(name, (max(0, last["chunk"]) + within) / chunks)

    return _Watched(field, seen)


def _density_state(run: RunDir) -> str:
    """``missing``, ``preview`` or ``final`` (an older density.npz without ``preview`` is final)."""
    if not run.density.exists():
        return "missing"
    try:
        with np.load(run.density, allow_pickle=False) as z:
            return "preview" if "preview" in z.files and int(z["preview"]) else "final"
    except (OSError, ValueError):
        return "missing"


def run_stages(run: RunDir, publish: Callable[[list[dict[str, Any]]], None], *, only: tuple[str, ...] = ORDER,
               keep: bool = False, device: str | torch.device | None = None,
               publish_every: float = 0.5) -> dict[str, str]:
    """Run the report stages ``only`` (in :data:`ORDER`) on a trained run; return each stage's final state.

    They run on ``device``; None is the run's own where this machine has it (a run trained on a GPU is reported on
    it, and on the CPU elsewhere: :func:`~cnfm_core.builders.available_device`).

    ``keep`` (a report job on a run that already has some results) skips what is already there: the preview
    when a density exists, the exact map when it is final, the frames when frames.npz exists. The test NLL is
    always computed. An exception in a stage marks it ``failed`` and is raised again. Progress within a stage is
    published at most every ``publish_every`` seconds (0: at every step, for tests)."""
    names = tuple(n for n in ORDER if n in only)
    board = StageBoard(names, publish, lambda: run.cancel_request.exists() or run.stop_request.exists(),
                       every=publish_every)
    density = _density_state(run) if keep else "missing"
    skip = {"map_preview": density != "missing", "map": density == "final",
            "frames": run.frames.exists()} if keep else {}
    field: nn.Module | None = None
    config = None
    current = ""
    try:
        for name in names:
            if skip.get(name):
                board.end(name, "skipped")
                continue
            current = name
            board.begin(name)
            if name == "frames":
                write_frames(run, device=device, on_frame=lambda k, n: board.progress("frames", k / n))
                board.end(name)
                continue
            if field is None:
                field, config = load_field(run, device=device)
            if name == "map_preview":
                write_density(run, _watch(field, board, name, chunks=3), config, n_lat=30, n_lon=60,
                              n_samples=300, preview=True, sample_steps=10, rows_per_chunk=15)
            elif name == "map":
                # 6 likelihood solves and the samples; a field on a kernel base may be sharp enough for the map's
                # cell means (:func:`cnfm_core.report.write_density`), one more sampling solve
                solves = 8 if getattr(field, "base", None) is not None else 7
                write_density(run, _watch(field, board, name, chunks=solves), config)
            else:
                run.write_json(run.report, test_report(run, _watch(field, board, name), config))
            board.end(name)
    except Cancelled:
        board.cancel_rest()
    except Exception:
        if current:
            board.end(current, "failed")
        board.cancel_rest()
        raise
    return board.states()
