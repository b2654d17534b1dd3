"""Frames of the probability paths over t in [0, 1], for showing how noise becomes data.

:func:`compute_frames` evaluates, at ``K`` times from 0 to 1 (:func:`frame_times`: spaced so that the target
changes by about as much between any two frames, so the animation does not rush where the path changes
fastest), on a coarse lat/lon grid:

* the target path ``log p_t`` (the vMF mixture over the training points, with the run's schedule), and the same
  on a finer grid as cell means (the log of the mean density over each cell, from ``sub`` x ``sub`` points a
  cell), so that at t = 1, where the kernels are narrower than a cell, the map is not speckled,
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
    fine_lat (n_fine_lat,), fine_lon (n_fine_lon,)                   the finer grid of the target's cell means
    target_fine_log_prob (K, n_fine_lat, n_fine_lon)                  float32
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
from .paths import TargetPath
from .runs import RunDir
from .sphere import grid_points, sample_uniform, xyz_to_latlon

__all__ = ["Frames", "cell_mean_log_prob", "compute_frames", "frame_times", "read_frames", "write_frames"]

#: Of the spacing of the frames, this share is even in t and the rest follows the target's change.
EVEN_SHARE = 0.25


def _latlon(x: torch.Tensor) -> np.ndarray:
    lat, lon = xyz_to_latlon(x.cpu().double())
    return np.stack([lat.numpy(), lon.numpy()], axis=-1).astype(np.float32)


@torch.no_grad()
def frame_times(path: TargetPath, n_frames: int, *, n_probe: int = 101, n_lat: int = 18, n_lon: int = 36,
                even_share: float = EVEN_SHARE) -> np.ndarray:
    """``n_frames`` increasing times from 0 to 1 (both included), closer together where the target path changes
    faster.

    The change between probe times ``t_j < t_{j+1}`` (``n_probe`` of them, evenly spaced) is the area-weighted
    mean of ``|log p_{t_{j+1}} - log p_{t_j}|`` over a coarse grid; the frames sit at equal steps of
    ``(1 - even_share) * (cumulative change) + even_share * t``, both parts scaled to [0, 1], so every gap is
    at least ``even_share / (n_frames - 1)`` of the path's duration.
    """
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}")
    probe = np.linspace(0.0, 1.0, n_probe)
    lat, lon = cell_centres(n_lat, n_lon)
    grid = grid_points(lat, lon, dtype=torch.float32).to(_device(path))
    weights = np.repeat(np.cos(np.deg2rad(lat)), n_lon)
    weights /= weights.sum()
    tt = torch.as_tensor(np.repeat(probe, grid.shape[0]), dtype=torch.float32, device=grid.device)
    logp = path.log_prob(grid.repeat(n_probe, 1), tt).cpu().double().numpy().reshape(n_probe, -1)
    change = np.abs(np.diff(logp, axis=0)) @ weights
    cumulative = np.concatenate([[0.0], np.cumsum(change)])
    share = cumulative / cumulative[-1] if cumulative[-1] > 0 else probe
    spacing = (1.0 - even_share) * share + even_share * probe
    times = np.interp(np.linspace(0.0, 1.0, n_frames), spacing, probe)
    times[0], times[-1] = 0.0, 1.0
    return times


def _device(path: TargetPath) -> torch.device:
    centers = getattr(path, "centers", None)  # where a kernel mixture keeps its data
    return centers.device if isinstance(centers, torch.Tensor) else torch.device("cpu")


@torch.no_grad()
def cell_mean_log_prob(path: TargetPath, t: float, lat: np.ndarray, lon: np.ndarray, *, sub: int = 3,
                       device: torch.device | None = None) -> np.ndarray:
    """``(n_lat, n_lon)`` log of the mean of ``p_t`` over each cell of the grid with centres ``lat``, ``lon``
    (degrees): ``sub`` x ``sub`` points evenly inside each cell, weighted by ``cos(lat)`` (their share of the
    cell's area). Where ``p_t`` is smooth on the scale of a cell this is ``log p_t`` at the centre; where its
    kernels are narrower than a cell it is what the cell holds, not whether its centre hits a kernel."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    dlat, dlon = 180.0 / lat.size, 360.0 / lon.size
    offsets = ((np.arange(sub) + 0.5) / sub - 0.5)
    sub_lat = (lat[:, None] + offsets[None, :] * dlat).ravel()
    sub_lon = (lon[:, None] + offsets[None, :] * dlon).ravel()
    points = grid_points(sub_lat, sub_lon, dtype=torch.float32).to(device or _device(path))
    logp = path.log_prob(points, float(t)).cpu().double().numpy().reshape(lat.size, sub, lon.size, sub)
    log_w = np.log(np.cos(np.deg2rad(sub_lat))).reshape(lat.size, sub, 1, 1)
    weighted = logp + log_w
    top = weighted.max(axis=(1, 3), keepdims=True)
    log_sum = np.log(np.exp(weighted - top).sum(axis=(1, 3), keepdims=True)) + top
    log_norm = np.log(np.exp(log_w).sum(axis=1, keepdims=True) * sub)
    return (log_sum - log_norm)[:, 0, :, 0]


@torch.no_grad()
def compute_frames(
    field: VectorField, config: TrainConfig, train_points: np.ndarray, *, n_frames: int = 31, n_lat: int = 30,
    n_lon: int = 60, fine: tuple[int, int] = (60, 120), sub: int = 2, n_samples: int = 600,
    n_trajectories: int = 200, step_size: float = 0.1, seed: int = 0,
    on_frame: Callable[[int, int], None] | None = None,
) -> Frames:
    """Evaluate both paths, the PPD residual and samples at ``n_frames`` times from 0 to 1 (:func:`frame_times`).

    ``on_frame(k, n_frames)`` is called after each frame (progress; it may raise to stop the work)."""
    p = next(field.parameters())
    dev = p.device
    path = build_path(config, torch.as_tensor(train_points, dtype=torch.float32, device=dev))
    times = frame_times(path, n_frames)
    schedule = path.schedule
    residual_of = PPD(path, ell=config.ell).residual
    lat, lon = cell_centres(n_lat, n_lon)
    fine_lat, fine_lon = cell_centres(*fine)
    grid = grid_points(lat, lon, dtype=torch.float32).to(dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    x0 = sample_uniform(n_samples, generator=g, device=dev)
    # the flow of the samples through every frame time: fixed RK4 steps of at most step_size between frames
    model_traj = [x0]
    for t0, t1 in zip(times[:-1], times[1:], strict=True):
        steps = max(1, int(np.ceil((t1 - t0) / step_size - 1e-9)))
        model_traj.append(flow(field, model_traj[-1], steps=steps, t0=float(t0), t1=float(t1)))
    shape = (n_frames, n_lat, n_lon)
    target_lp, model_lp, resid = (np.empty(shape, np.float32) for _ in range(3))
    target_fine = np.empty((n_frames, *fine), np.float32)
    target_samples = np.empty((n_frames, n_samples, 2), np.float32)
    for k, t in enumerate(times):
        tt = torch.full((grid.shape[0],), float(t), device=dev)
        target_lp[k] = path.log_prob(grid, tt).cpu().numpy().reshape(n_lat, n_lon)
        target_fine[k] = cell_mean_log_prob(path, float(t), fine_lat, fine_lon, sub=sub, device=dev)
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
        model_samples=model_samples, trajectories=model_samples[:, :n_trajectories], fine_lat=fine_lat,
        fine_lon=fine_lon, target_fine_log_prob=target_fine,
    )


def write_frames(run: RunDir, *, device: str | torch.device | None = None, **kwargs: object) -> float:
    """Compute the frames of a trained run (EMA weights) on ``device`` (None: the run's own where this machine has
    it, :func:`~cnfm_core.builders.available_device`) and write ``DIR/frames.npz``; returns seconds taken."""
    t0 = time.perf_counter()
    field, config = load_field(run, device=device)
    frames = compute_frames(field, config, run.read_split()["train"], **kwargs)
    run.write_npz(run.frames, {k: getattr(frames, k) for k in Frames.__dataclass_fields__})
    return time.perf_counter() - t0
