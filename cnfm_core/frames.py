"""Frames of the probability paths over t in [0, 1], for showing how noise becomes data.

:func:`compute_frames` evaluates, at ``K`` evenly spaced times, on a coarse lat/lon grid:

* the target path ``log p_t`` (the vMF mixture over the training points, with the run's schedule),
* the model path ``log q_t`` (exact change of variables from ``t`` back to 0, fixed-step RK4),
* the PPD residual ``r(t, x) = d/dt log p_t + <grad log p_t, v> + div v``: where it is positive the
  target's density grows faster than the flow brings mass (the flow under-supplies), where it is
  negative the flow piles up more mass than the target has. It is zero everywhere exactly when the
  flow carries the target path,
* samples of the target ``p_t`` and model samples (uniform noise pushed through the flow to ``t``);
  the first ``n_trajectories`` model samples over all frames are particle trajectories.

:func:`write_frames` stores them in ``DIR/frames.npz`` so pages only read files (with
:func:`~cnfm_core.pathframes.read_frames`, torch-free; :class:`Frames` is defined there):

    times (K,), kappa (K,), lat (n_lat,), lon (n_lon,)              grid cell centres, degrees
    target_log_prob, model_log_prob, residual (K, n_lat, n_lon)       float32
    target_samples, model_samples (K, S, 2)                           (lat, lon) in degrees
    trajectories (K, M, 2)                                            (lat, lon), M <= S
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .builders import build_path, load_field
from .config import TrainConfig
from .field import VectorField
from .grid import cell_centres
from .integrate import flow, log_likelihood
from .objectives import PPD
from .pathframes import Frames, read_frames
from .runs import RunDir
from .sphere import grid_points, sample_uniform, xyz_to_latlon

__all__ = ["Frames", "compute_frames", "read_frames", "write_frames"]


def _latlon(x: torch.Tensor) -> np.ndarray:
    lat, lon = xyz_to_latlon(x.double().cpu())
    return np.stack([lat.numpy(), lon.numpy()], axis=-1).astype(np.float32)


@torch.no_grad()
def compute_frames(
    field: VectorField, config: TrainConfig, train_points: np.ndarray, *, n_frames: int = 11, n_lat: int = 45,
    n_lon: int = 90, n_samples: int = 1000, n_trajectories: int = 200, step_size: float = 0.1, seed: int = 0,
    on_frame: Callable[[int, int], None] | None = None,
) -> Frames:
    """Evaluate both paths, the PPD residual and samples at ``n_frames`` times from 0 to 1.

    ``on_frame(k, n_frames)`` is called after each frame (progress; it may raise to stop the work)."""
    p = next(field.parameters())
    dev = p.device
    times = np.linspace(0.0, 1.0, n_frames)
    path = build_path(config, torch.as_tensor(train_points, dtype=torch.float32, device=dev))
    schedule = path.schedule
    residual_of = PPD(path, ell=config.ell).residual
    lat, lon = cell_centres(n_lat, n_lon)
    grid = grid_points(lat, lon, dtype=torch.float32).to(dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    x0 = sample_uniform(n_samples, generator=g, device=dev)
    steps = max(1, round(1.0 / step_size))
    model_traj = flow(field, x0, steps=steps * (n_frames - 1), keep=n_frames)
    shape = (n_frames, n_lat, n_lon)
    target_lp, model_lp, resid = (np.empty(shape, np.float32) for _ in range(3))
    target_samples = np.empty((n_frames, n_samples, 2), np.float32)
    for k, t in enumerate(times):
        tt = torch.full((grid.shape[0],), float(t), device=dev)
        target_lp[k] = path.log_prob(grid, tt).cpu().numpy().reshape(n_lat, n_lon)
        lq = log_likelihood(field, grid, t=float(t), method="rk4", options={"step_size": step_size}).log_prob
        model_lp[k] = lq.cpu().numpy().reshape(n_lat, n_lon)
        resid[k] = residual_of(field, grid, tt).cpu().numpy().reshape(n_lat, n_lon)
        ts = torch.full((n_samples,), float(t), device=dev)
        target_samples[k] = _latlon(path.sample(ts, generator=g))
        if on_frame is not None:
            on_frame(k + 1, n_frames)
    model_samples = np.stack([_latlon(x) for x in model_traj])
    return Frames(
        times=times, kappa=schedule.kappa(torch.as_tensor(times)).numpy(), lat=lat, lon=lon,
        target_log_prob=target_lp, model_log_prob=model_lp, residual=resid, target_samples=target_samples,
        model_samples=model_samples, trajectories=model_samples[:, :n_trajectories],
    )


def write_frames(run: RunDir, **kwargs: object) -> float:
    """Compute the frames of a trained run (EMA weights) and write ``DIR/frames.npz``; returns seconds taken."""
    t0 = time.perf_counter()
    field, config = load_field(run)
    frames = compute_frames(field, config, run.read_split()["train"], **kwargs)
    run.write_npz(run.frames, {k: getattr(frames, k) for k in Frames.__dataclass_fields__})
    return time.perf_counter() - t0
