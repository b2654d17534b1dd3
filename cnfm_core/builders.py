"""From a config to objects: the device, the vector field, the target path, and a trained field rebuilt
from its checkpoint alone.
"""

from __future__ import annotations

import os
import platform

import torch

from .config import TrainConfig
from .field import VectorField
from .kde import adaptive_kappas
from .paths import VMFMixturePath, make_schedule
from .runs import RunDir, RunError

__all__ = ["build_field", "build_path", "device_name", "load_field", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was requested but no CUDA GPU is available")
    return torch.device(name)


def build_field(config: TrainConfig) -> VectorField:
    if config.space_frequencies is None:
        raise ValueError("space_frequencies is still to be chosen from the data (resolve_auto)")
    return VectorField(hidden=config.hidden, layers=config.layers, frequencies=config.frequencies,
                       space_frequencies=config.space_frequencies, space_scale=config.space_scale)


def build_path(config: TrainConfig, train_x: torch.Tensor) -> VMFMixturePath:
    """The PPD target over the training points ``train_x`` (``(N, 3)``, on the device to use)."""
    if config.kappa_max is None or (config.kernel == "adaptive" and None in (config.kernel_neighbours,
                                                                              config.kernel_scale)):
        raise ValueError("the target's settings are still to be chosen from the data (resolve_auto)")
    scales = None
    if config.kernel == "adaptive":
        kappas = adaptive_kappas(train_x.detach().cpu().double().numpy(), config.kernel_neighbours,
                                 config.kernel_scale)
        scales = torch.as_tensor(kappas / config.kappa_max, dtype=train_x.dtype, device=train_x.device)
    schedule = make_schedule(config.schedule, config.kappa_max)
    return VMFMixturePath(train_x, schedule, floor=config.floor, scales=scales)


def load_field(run: RunDir | str | os.PathLike[str], *, ema: bool = True,
               device: str | torch.device = "cpu") -> tuple[VectorField, TrainConfig]:
    """Rebuild the trained field (EMA weights by default) and its config from a checkpoint alone."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    state = run.load_checkpoint()
    try:
        config = TrainConfig.from_dict(state["config"])
        model = build_field(config)
        model.load_state_dict(state["ema" if ema else "model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise RunError(f"{run.checkpoint}: does not match its config ({str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), config


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"
