"""Which device training runs on, found and named without importing torch (for pages).

Training with ``device="auto"`` uses CUDA exactly when torch was built with CUDA and a GPU is visible
(:func:`cnfm_core.builders.resolve_device`). :func:`detect` reads the same facts from files: the CUDA
version torch was built with (``torch/version.py``), the NVIDIA GPUs the driver lists
(``/proc/driver/nvidia/gpus/*/information``) and ``CUDA_VISIBLE_DEVICES``. A machine without an NVIDIA
driver is a CPU machine for certain; on a GPU machine, a run's ``config.json`` records the device it
really used, and :func:`device_label` names either the same way.

>>> device_label("cuda:0", "NVIDIA H200")
'GPU: NVIDIA H200'
>>> device_label("cpu", "CPU (x86_64)"), device_label("cpu")
('CPU (x86_64)', 'CPU')
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Device", "detect", "device_label", "gpu_names", "torch_cuda_version"]

_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class Device:
    """The device an ``auto`` run would use: ``"cuda"`` or ``"cpu"``, its name, and why (for a CPU)."""

    kind: str
    name: str
    reason: str = ""

    @property
    def label(self) -> str:
        text = device_label(self.kind, self.name)
        return f"{text} ({self.reason})" if self.reason else text


def device_label(device: str, name: str = "") -> str:
    """How the dashboard names a device: ``GPU: NAME`` for CUDA, else the CPU's name (or ``CPU``)."""
    if device.startswith("cuda"):
        return f"GPU: {name or device}"
    return name if name.startswith("CPU") else (f"CPU ({name})" if name else "CPU")


def torch_cuda_version() -> str | None:
    """The CUDA version the installed torch was built with (None for a CPU-only build or no torch), read from
    ``torch/version.py`` without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return None
    m = re.search(r"^cuda\s*(?::[^=\n]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return m.group(1) if m else None


def gpu_names(root: Path = _NVIDIA_GPUS) -> list[str]:
    """Models of the NVIDIA GPUs the driver lists (``Model:`` lines under ``root``), in bus order."""
    names = []
    for info in sorted(root.glob("*/information")) if root.is_dir() else []:
        try:
            m = re.search(r"^Model:\s*(.+)$", info.read_text(), re.MULTILINE)
        except OSError:
            continue
        if m:
            names.append(m.group(1).strip())
    return names


def detect(root: Path = _NVIDIA_GPUS) -> Device:
    """The device an ``auto`` run would train on here, from the files named in the module doc."""
    gpus = gpu_names(root)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if not gpus:
        return Device("cpu", "CPU", "no GPU found")
    if visible is not None and visible.strip() in ("", "-1"):
        return Device("cpu", "CPU", "CUDA_VISIBLE_DEVICES hides the GPUs")
    if torch_cuda_version() is None:
        return Device("cpu", "CPU", "this torch has no CUDA support")
    first = visible.split(",")[0].strip() if visible else "0"
    name = gpus[int(first)] if first.isdigit() and int(first) < len(gpus) else gpus[0]
    return Device("cuda", name)
