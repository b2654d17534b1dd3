"""The path frames file ``DIR/frames.npz`` as a named dataclass, and its reader (torch-free, for pages).

:mod:`cnfm_core.frames` computes and writes the frames; this module only names and reads them, so a page
that shows them never imports torch. Shapes:

    times (K,), kappa (K,), lat (n_lat,), lon (n_lon,)              grid cell centres, degrees
    target_log_prob, model_log_prob, residual (K, n_lat, n_lon)       float32
    fine_lat (n_fine_lat,), fine_lon (n_fine_lon,)                   the finer grid of the target's cell means
    target_fine_log_prob (K, n_fine_lat, n_fine_lon)                  float32
    target_samples, model_samples (K, S, 2)                           (lat, lon) in degrees
    trajectories (K, M, 2)                                            (lat, lon), M <= S

Files written before the finer grid existed read with the coarse grid in its place.
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
    fine_lat: np.ndarray
    fine_lon: np.ndarray
    target_fine_log_prob: np.ndarray


#: Fields an older frames file may lack, and the field that stands in for each.
_STAND_INS = {"fine_lat": "lat", "fine_lon": "lon", "target_fine_log_prob": "target_log_prob"}


def read_frames(run: RunDir) -> Frames:
    """Read ``DIR/frames.npz`` (raises :class:`~cnfm_core.runs.RunError` when missing, unreadable or incomplete)."""
    arrays = run.read_npz(run.frames)
    if not all(name in arrays for name in _STAND_INS):
        arrays = {**arrays, **{name: arrays[other] for name, other in _STAND_INS.items() if other in arrays}}
    missing = [f.name for f in fields(Frames) if f.name not in arrays]
    if missing:
        raise RunError(f"{run.frames}: missing {', '.join(missing)}")
    return Frames(**{f.name: arrays[f.name] for f in fields(Frames)})
