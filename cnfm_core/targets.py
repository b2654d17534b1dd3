"""The kernel-mixture target path of each manifold, by manifold name: :data:`TARGET_PATHS`.

The PPD target over training points ``y_1..y_N`` is a kernel mixture whose concentration follows a
schedule (:mod:`cnfm_core.schedules`), uniform at ``t = 0``; at ``t = 1`` it is the kernel density estimate
of :mod:`cnfm_core.kde`. Each manifold has its kernel (the von Mises-Fisher kernel on S², a product of von
Mises kernels on Tᵈ: :mod:`cnfm_core.torus_path`); every entry is called as
``factory(centers, schedule, *, floor=w, scales=s)`` with ``centers`` of shape ``(N, D)`` and
returns a :class:`~cnfm_core.paths.TargetPath` (``scales``: one concentration factor per centre, or None).

>>> import torch
>>> from cnfm_core.schedules import LinearSchedule
>>> path = make_target_path("sphere", torch.tensor([[0.0, 0.0, 1.0]]), LinearSchedule(10.0))
>>> path.manifold
Sphere()
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .paths import TargetPath, VMFMixturePath
from .schedules import Schedule
from .torus_path import VonMisesMixturePath

__all__ = ["TARGET_PATHS", "make_target_path"]

#: Kernel-mixture target paths by manifold name (the names of :data:`cnfm_core.manifolds.MANIFOLDS`).
TARGET_PATHS: dict[str, Callable[..., TargetPath]] = {
    "sphere": VMFMixturePath,
    "torus": VonMisesMixturePath,
}


def make_target_path(manifold: str, centers: Tensor, schedule: Schedule, *, floor: float = 0.0,
                     scales: Tensor | None = None) -> TargetPath:
    """The kernel-mixture path over ``centers`` on the named manifold; a manifold without one raises
    ``ValueError`` listing those that have one."""
    if manifold not in TARGET_PATHS:
        raise ValueError(f"no target path is available for manifold {manifold!r} yet; available: "
                         f"{', '.join(TARGET_PATHS)}")
    return TARGET_PATHS[manifold](centers, schedule, floor=floor, scales=scales)
