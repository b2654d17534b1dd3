"""The torch-free device detection agrees with torch here, and reads the driver's GPU list as torch would."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnfm_core import devices
from cnfm_core.devices import detect, device_label, gpu_names, torch_cuda_version


def _driver(root: Path, *models: str) -> Path:
    for i, model in enumerate(models):
        (root / f"0000:0{i}:00.0").mkdir(parents=True)
        (root / f"0000:0{i}:00.0" / "information").write_text(f"Model: \t {model}\nIRQ:   42\nBus Type: PCIe\n")
    return root


def test_detect_agrees_with_torch_on_this_machine():
    assert torch_cuda_version() == torch.version.cuda
    assert detect().kind == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert detect().name == torch.cuda.get_device_name(0)


def test_a_gpu_is_used_only_with_a_cuda_build_and_visible(tmp_path, monkeypatch):
    root = _driver(tmp_path, "NVIDIA H200", "NVIDIA A100")
    assert gpu_names(root) == ["NVIDIA H200", "NVIDIA A100"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "torch_cuda_version", lambda: "12.4")
    assert detect(root).label == "GPU: NVIDIA H200"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert detect(root).label == "GPU: NVIDIA A100"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect(root).kind == "cpu" and "hides" in detect(root).reason
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(devices, "torch_cuda_version", lambda: None)
    assert detect(root).label == "CPU (this torch has no CUDA support)"


def test_no_driver_means_cpu(tmp_path):
    assert detect(tmp_path / "absent").label == "CPU (no GPU found)"


@pytest.mark.parametrize("device, name, label", [("cuda:0", "NVIDIA H200", "GPU: NVIDIA H200"),
                                                 ("cuda", "", "GPU: cuda"), ("cpu", "CPU (x86_64)", "CPU (x86_64)"),
                                                 ("cpu", "", "CPU")])
def test_one_label_for_a_device(device, name, label):
    assert device_label(device, name) == label
