"""The path frames file ``DIR/frames.npz`` as a named dataclass, and its reader (torch-free, for pages).

:mod:`cnfm_core.frames` computes and writes the frames; this module only names and reads them, so a page
that shows them never imports torch. Shapes:

    times (K,), kappa (K,), lat (n_lat,), lon (n_lon,)              grid cell centres, degrees
    target_log_prob, model_log_prob, residual (K, n_lat, n_lon)       float32
    target_samples, model_samples (K, S, 2)                           (lat, lon) in degrees
    trajectories (K, M, 2)                                            (lat, lon), M <= S
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .runs import RunDir, RunError

__all__ = ["Frames", "read_frames"]


@dataclass(frozen=True)
class Frames:
    """Path frames (see the module doc for shapes)."""

    times: np.ndarray
    kappa: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    target_log_prob: np.ndarray
    model_log_prob: np.ndarray
    residual: np.ndarray
    target_samples: np.ndarray
    model_samples: np.ndarray
    trajectories: np.ndarray


def read_frames(run: RunDir) -> Frames:
    """Read ``DIR/frames.npz`` (raises :class:`~cnfm_core.runs.RunError` when missing, unreadable or incomplete)."""
    arrays = run.read_npz(run.frames)
    missing = [f.name for f in fields(Frames) if f.name not in arrays]
    if missing:
        raise RunError(f"{run.frames}: missing {', '.join(missing)}")
    return Frames(**{f.name: arrays[f.name] for f in fields(Frames)})
