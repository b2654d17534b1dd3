"""The live picture of a run in training: a coarse preview of the model density and a few samples.

While a run trains, the training loop calls a :class:`LiveSnapshots` every step (:func:`cnfm_core.train.train`'s
``live`` hook); every few seconds of wall time it writes ``DIR/live.npz`` (atomically), so the Train page can
redraw the blobs as they form:

    lat (n_lat,), lon (n_lon,)   cell centres in degrees (:func:`cnfm_core.grid.cell_centres`)
    log_prob (n_lat, n_lon)      float32, the model's log-density (nats per steradian), a *preview*
    samples (S, 2)               float32 (lat, lon) in degrees of S model samples
    step, elapsed                the training step and the seconds of training when it was taken
    mass                         the preview's total mass on the grid (close to 1 when it is accurate)

How the preview is computed, and why it is honest but coarse: the same change of variables as the exact
likelihood (:func:`cnfm_core.integrate.log_likelihood`, ``d/dt [x, a] = [v, div v]`` from ``t = 1`` back to
0 with the exact divergence), on a 15 x 30 grid (12 degree cells, drawn smoothed), but with a fixed-step RK4
of 4 steps instead of the adaptive dopri5 at 1e-5. On the bundled mixture after 300 steps this is within
0.08 nats of the exact value on average (0.55 at worst, at the sharpest blob; the mass on the grid within
0.06 of 1); the page calls it a preview, and the report computes the exact map after training. The samples
are a fixed set of uniform points pushed through the flow (RK4, the same steps), so between two snapshots
they move with the model instead of being redrawn.

The cost is bounded by a share of the training time: after each snapshot the next one waits at least
``interval`` seconds and at least ``cost / share`` seconds (``share = 0.1`` keeps snapshots between the first and
the last to a tenth of the wall time; bench/bench_live.py measures the throughput with and without them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .grid import cell_areas, cell_centres
from .integrate import field_manifold, flow, log_likelihood
from .runs import RunDir
from .sphere import grid_points, xyz_to_latlon

__all__ = ["LivePreview", "LiveSnapshots", "live_preview", "write_live"]


@dataclass(frozen=True)
class LivePreview:
    """A coarse picture of the model (see the module doc): grid, log-density, samples, and its cost."""

    lat: np.ndarray
    lon: np.ndarray
    log_prob: np.ndarray
    samples: np.ndarray
    mass: float
    seconds: float


@torch.no_grad()
def live_preview(field: nn.Module, *, n_lat: int = 15, n_lon: int = 30, ode_steps: int = 4, n_samples: int = 300,
                 seed: int = 0) -> LivePreview:
    """The model's coarse log-density on an ``n_lat x n_lon`` grid and ``n_samples`` samples (fixed-step RK4 with
    ``ode_steps`` steps; S² only, other manifolds raise ``ValueError``)."""
    if field_manifold(field).name != "sphere":
        raise ValueError("the live preview is a lat/lon map: sphere runs only")
    if ode_steps < 1 or n_lat < 1 or n_lon < 1 or n_samples < 0:
        raise ValueError("the live preview needs ode_steps, n_lat and n_lon >= 1 and n_samples >= 0")
    t0 = time.perf_counter()
    p = next(field.parameters())
    lat, lon = cell_centres(n_lat, n_lon)
    x = grid_points(lat, lon, dtype=p.dtype).to(p.device)
    lp = log_likelihood(field, x, method="rk4", options={"step_size": 1.0 / ode_steps}).log_prob
    log_prob = lp.cpu().numpy().reshape(n_lat, n_lon).astype(np.float32)
    g = torch.Generator().manual_seed(seed)  # the same start points every time: samples move, not jump
    x0 = field_manifold(field).random_uniform(n_samples, generator=g, dtype=p.dtype).to(p.device)
    x1 = flow(field, x0, steps=ode_steps, method="rk4")
    s_lat, s_lon = xyz_to_latlon(x1.cpu())
    samples = torch.stack([s_lat, s_lon], dim=1).numpy().astype(np.float32)
    mass = float((np.exp(log_prob.astype(np.float64)) * cell_areas(lat, lon)).sum())
    return LivePreview(lat, lon, log_prob, samples, mass, time.perf_counter() - t0)


def write_live(run: RunDir, preview: LivePreview, *, step: int, elapsed: float) -> None:
    """Write ``DIR/live.npz`` atomically (the module doc lists its arrays)."""
    run.write_npz(run.live, {
        "lat": preview.lat, "lon": preview.lon, "log_prob": preview.log_prob, "samples": preview.samples,
        "step": np.array(step, dtype=np.int64), "elapsed": np.array(elapsed, dtype=np.float64),
        "mass": np.array(preview.mass, dtype=np.float64), "seconds": np.array(preview.seconds, dtype=np.float64),
    })


class LiveSnapshots:
    """The training loop's hook: writes ``live.npz`` now and then (see the module doc for when and why).

    Call it every step as ``snapshots(field, step, elapsed)``; with ``final=True`` it always writes (the end
    of training). It returns whether it wrote (never, for a field off the sphere: the picture is a lat/lon
    map). ``first`` is the wall time before the first snapshot.
    """

    def __init__(self, run: RunDir, *, interval: float = 3.0, share: float = 0.1, first: float = 1.0,
                 n_lat: int = 15, n_lon: int = 30, ode_steps: int = 4, n_samples: int = 300) -> None:
        if not (interval > 0 and 0 < share <= 1 and first >= 0):
            raise ValueError("need interval > 0, 0 < share <= 1 and first >= 0")
        self.run, self.interval, self.share = run, interval, share
        self.options = {"n_lat": n_lat, "n_lon": n_lon, "ode_steps": ode_steps, "n_samples": n_samples}
        self.next_at = time.perf_counter() + first
        self.written = 0
        self.seconds = 0.0  # wall time spent in snapshots, all together

    def __call__(self, field: nn.Module, step: int, elapsed: float, final: bool = False) -> bool:
        if (not final and time.perf_counter() < self.next_at) or field_manifold(field).name != "sphere":
            return False
        preview = live_preview(field, **self.options)
        write_live(self.run, preview, step=step, elapsed=elapsed)
        self.written += 1
        self.seconds += preview.seconds
        self.next_at = time.perf_counter() + max(self.interval, preview.seconds / self.share)
        return True
