"""From a config to objects: the device, the manifold, the vector field, the target path, and a trained
field rebuilt from its checkpoint alone.

The manifold is ``config.manifold`` (:data:`cnfm_core.manifolds.MANIFOLDS`), built with the options
:data:`MANIFOLD_OPTIONS` reads off the config; the target path is that manifold's kernel mixture
(:data:`cnfm_core.targets.TARGET_PATHS`). A manifold missing from either raises ``ValueError`` saying
it is not available.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import torch

from .config import TrainConfig
from .field import VectorField
from .kde import adaptive_kappas
from .kernelbase import KernelBase
from .manifolds import Manifold, make_manifold
from .paths import TargetPath
from .runs import RunDir, RunError
from .schedules import make_schedule
from .targets import make_target_path
from .torus_kde import torus_adaptive_kappas

__all__ = ["MANIFOLD_OPTIONS", "available_device", "build_field", "build_manifold", "build_path", "device_name",
           "load_field", "resolve_device"]

#: For each manifold name, the keyword options of its factory read off a config (the sphere needs none;
#: a manifold with a dimension reads it here, so that a checkpoint alone rebuilds it).
MANIFOLD_OPTIONS: dict[str, Callable[[TrainConfig], dict[str, Any]]] = {
    "sphere": lambda config: {},
    "torus": lambda config: {"dim": _torus_dim(config)},
}


#: For each manifold with an adaptive kernel, its per-point concentrations ``(train, k, a, cap=)``.
_ADAPTIVE_KAPPAS: dict[str, Callable[..., Any]] = {"sphere": adaptive_kappas, "torus": torus_adaptive_kappas}


def _torus_dim(config: TrainConfig) -> int:
    if config.manifold_dim is None:
        raise ValueError("the torus dimension (manifold_dim) is still to be read from the data")
    return config.manifold_dim


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was requested but no CUDA GPU is available")
    return torch.device(name)


def available_device(name: str) -> torch.device:
    """Where the work after training (report, frames) runs for a run whose config asks for device ``name``:
    CUDA when the run asked for ``auto`` or ``cuda`` and a GPU is here, else the CPU. Unlike
    :func:`resolve_device` it never refuses, so a run trained on a GPU is still reported on a CPU-only machine."""
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def build_manifold(config: TrainConfig) -> Manifold:
    """The manifold named by ``config.manifold``, with the options :data:`MANIFOLD_OPTIONS` reads off it."""
    if config.manifold not in MANIFOLD_OPTIONS:
        raise ValueError(f"manifold {config.manifold!r} is not available for training yet; available: "
                         f"{', '.join(MANIFOLD_OPTIONS)}")
    return make_manifold(config.manifold, **MANIFOLD_OPTIONS[config.manifold](config))


def build_field(config: TrainConfig, path: TargetPath | None = None, *,
                state: dict[str, torch.Tensor] | None = None) -> VectorField:
    """The (untrained) vector field on the config's manifold. With ``field_base="kernel"`` its base field is the
    target's (:mod:`cnfm_core.kernelbase`), from ``path`` (a new run) or from a checkpoint's ``state``; a field base
    not chosen yet (None) is none."""
    if config.space_frequencies is None:
        raise ValueError("space_frequencies is still to be chosen from the data (resolve_auto)")
    base = None
    if config.field_base == "kernel":
        if state is not None:
            base = KernelBase.from_state(state, "base.", fixed=config.kernel == "fixed", schedule=config.schedule,
                                         kappa_max=float(config.kappa_max), floor=config.floor)
        elif path is not None:
            base = KernelBase.from_path(path, config.schedule)
        else:
            raise ValueError("the kernel field base needs the target path or a checkpoint")
    return VectorField(hidden=config.hidden, layers=config.layers, frequencies=config.frequencies,
                       space_frequencies=config.space_frequencies, space_scale=config.space_scale,
                       space_scale_max=config.space_scale_max, manifold=build_manifold(config), base=base)


def build_path(config: TrainConfig, train_x: torch.Tensor) -> TargetPath:
    """The PPD target over the training points ``train_x`` (``(N, D)``, on the device to use): the kernel
    mixture of the config's manifold. The adaptive kernel (neighbour distances) is the sphere's and the torus's
    (:func:`cnfm_core.kde.adaptive_kappas`, :func:`cnfm_core.torus_kde.torus_adaptive_kappas`)."""
    if config.kappa_max is None or (config.kernel == "adaptive" and None in (config.kernel_neighbours,
                                                                              config.kernel_scale)):
        raise ValueError("the target's settings are still to be chosen from the data (resolve_auto)")
    scales = None
    if config.kernel == "adaptive":
        if config.manifold not in _ADAPTIVE_KAPPAS:
            raise ValueError(f"the adaptive kernel is available on the sphere and the torus only, "
                             f"not on {config.manifold!r}")
        kappas = _ADAPTIVE_KAPPAS[config.manifold](train_x.detach().cpu().double().numpy(), config.kernel_neighbours,
                                                   config.kernel_scale, cap=config.kernel_cap)
        scales = torch.as_tensor(kappas / config.kappa_max, dtype=train_x.dtype, device=train_x.device)
    schedule = make_schedule(config.schedule, config.kappa_max)
    return make_target_path(config.manifold, train_x, schedule, floor=config.floor, scales=scales)


def load_field(run: RunDir | str | os.PathLike[str], *, ema: bool = True,
               device: str | torch.device | None = "cpu") -> tuple[VectorField, TrainConfig]:
    """Rebuild the trained field (EMA weights by default) and its config from a checkpoint alone, on ``device``
    (None: the run's own, :func:`available_device` of its config). The checkpoint is read onto the CPU first
    (``map_location``), so one saved on a GPU loads on a machine without one."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    state = run.load_checkpoint(map_location="cpu")
    try:
        config = TrainConfig.from_dict(state["config"])
        weights = state["ema" if ema else "model"]
        model = build_field(config, state=weights)
        model.load_state_dict(weights)
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise RunError(f"{run.checkpoint}: does not match its config ({str(e).splitlines()[0][:200]})") from None
    return model.to(available_device(config.device) if device is None else device).eval(), config


def device_name(device: torch.device) -> str:
    """The device as a person names it: the GPU's model, or ``CPU (processor)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"
