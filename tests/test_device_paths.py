"""The device paths: training steps (PPD and RFM) with the live preview, checkpoints saved and loaded (and resumed),
the exact NLL, the report stages and the path frames, on the CPU always and on a CUDA GPU where there is one.

Each test takes a ``device``: ``cpu``, and ``cuda`` where ``torch.cuda.is_available()``. ``CNFM_TEST_DEVICE=cuda``
(or ``cpu``) runs that device's cases only: ``scripts/gpu_check.sh`` runs this file so on a GPU machine, where a
missing GPU is then a failure, not a skip. Everything is tiny (seconds on a CPU).

Tolerances: the exact NLL is compared with a float64 solve at ``rtol = atol = 1e-10`` of the same weights (an
independent reference of the same ODE); a float32 dopri5 solve at the product's tolerances (1e-5) was within 3e-4
nats of it on every seeded field tried, so 2e-3 is the bound, on every device and between devices (where the same
seed gives the same weights, :func:`cnfm_core.builders.build_field` draws them on the CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from cnfm_core.builders import available_device, build_field, load_field
from cnfm_core.config import DEFAULT_ATOL, DEFAULT_RTOL, TrainConfig
from cnfm_core.frames import compute_frames
from cnfm_core.integrate import evaluate_nll, log_likelihood, sample
from cnfm_core.live import LiveSnapshots
from cnfm_core.runs import RunDir
from cnfm_core.sphere import LOG_AREA, sample_uniform
from cnfm_core.stages import run_stages
from cnfm_core.train import train

REPO = Path(__file__).resolve().parents[1]
MIXTURE = REPO / "assets" / "synthetic_mixture.csv"
#: The stated bound on an exact NLL against its float64 reference, and between devices (module doc).
NLL_TOLERANCE = 2e-3


def _devices() -> list[str]:
    only = os.environ.get("CNFM_TEST_DEVICE", "").strip()
    if only:
        if only not in ("cpu", "cuda"):
            raise ValueError(f"CNFM_TEST_DEVICE must be cpu or cuda, not {only!r}")
        return [only]
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


DEVICES = _devices()
OBJECTIVES = {"ppd": {"objective": "ppd", "ell": 1}, "rfm": {"objective": "rfm"}}


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    """Every tenth point of the bundled mixture (200 points): the split and the KDE stay cheap."""
    lines = MIXTURE.read_text().splitlines()
    path = tmp_path_factory.mktemp("data") / "mixture200.csv"
    path.write_text("\n".join([lines[0], *lines[1::10]]) + "\n")
    return path


def _config(data: Path, device: str, objective: str, steps: int = 4) -> TrainConfig:
    # kappa_max and space_frequencies given: nothing is left to choose from the data (no auto settings)
    return TrainConfig(data=str(data), device=device, steps=steps, hidden=16, layers=2, batch_size=64,
                       kappa_max=50.0, space_frequencies=4, space_scale=2.0, log_every=1, eval_every=10**6,
                       eval_points=32, threads=1, **OBJECTIVES[objective])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_csv, single_thread) -> dict[tuple[str, str], tuple[Path, object]]:
    """``(objective, device) -> (run folder, TrainResult)``: 4 steps with the live preview, trained once."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for device in DEVICES:
        for objective in OBJECTIVES:
            run = RunDir(root / f"{objective}-{device}")
            live = LiveSnapshots(run, first=0.0)  # the first call writes, and the last (final) always does
            out[objective, device] = run.path, train(_config(small_csv, device, objective), run.path, live=live)
    return out


def _tensors(state: object) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for v in state.values() for t in _tensors(v)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _tensors(v)]
    return []


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("device", DEVICES)
def test_training_steps_and_the_live_preview_on_the_device(trained, device, objective):
    path, result = trained[objective, device]
    run = RunDir(path)
    assert (result.state, result.step) == ("done", 4)
    assert math.isfinite(result.final_loss) and result.val_nll is not None and math.isfinite(result.val_nll)
    losses = [rec["loss"] for rec in run.read_metrics() if "loss" in rec]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    meta = run.read_json(run.config)
    assert torch.device(meta["device"]).type == device
    live = run.read_npz(run.live)
    assert int(live["step"]) == 4 and live["log_prob"].shape == (15, 30) and live["samples"].shape == (300, 2)
    assert np.isfinite(live["log_prob"]).all() and np.isfinite(live["samples"]).all()
    assert 0.5 < float(live["mass"]) < 1.5


@pytest.mark.parametrize("device", DEVICES)
def test_a_checkpoint_loads_on_the_device_and_on_the_cpu_and_resumes(trained, device, tmp_path):
    path, _ = trained["ppd", device]
    run = RunDir(tmp_path / "run")
    shutil.copytree(path, run.path)
    state = run.load_checkpoint()  # map_location="cpu": a checkpoint saved on a GPU reads on any machine
    assert state["step"] == 4 and all(t.device.type == "cpu" for t in _tensors(state))
    for where in dict.fromkeys([device, "cpu"]):
        field, config = load_field(run, device=where)
        assert config.device == device and {p.device.type for p in field.state_dict().values()} == {where}
        for name, value in field.state_dict().items():
            assert torch.equal(value.cpu(), state["ema"][name]), name
    # the same weights give the same exact NLL on the device and on the CPU (the stated tolerance)
    test = run.read_split()["test"]
    on_device = evaluate_nll(load_field(run, device=device)[0], test)
    on_cpu = evaluate_nll(load_field(run, device="cpu")[0], test)
    assert math.isfinite(on_device.mean) and abs(on_device.mean - on_cpu.mean) <= NLL_TOLERANCE
    # resumed on its device: the optimiser state read onto the CPU goes back to the parameters' device
    result = train(TrainConfig(steps=6), run.path, resume=True)
    assert (result.state, result.step) == ("done", 6) and math.isfinite(result.final_loss)


def _seeded_field(seed: int) -> torch.nn.Module:
    """A field whose flow is far from the identity: weights from the seed, output layer not zero."""
    torch.manual_seed(seed)
    field = build_field(TrainConfig(hidden=32, layers=2, space_frequencies=4, space_scale=2.0, kappa_max=50.0))
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        field.output.weight.copy_(0.3 * torch.randn(field.output.weight.shape, generator=g))
    return field.eval()


@pytest.mark.parametrize("device", DEVICES)
def test_exact_nll_on_the_device_against_a_float64_reference(device, single_thread):
    field = _seeded_field(0)
    x = sample_uniform(8, generator=torch.Generator().manual_seed(100))
    reference = log_likelihood(copy.deepcopy(field).double(), x.double(), rtol=1e-10, atol=1e-10).log_prob
    assert float((reference + LOG_AREA).abs().mean()) > 0.05  # far from the uniform density: a real test
    got = log_likelihood(field.to(device), x.to(device), rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL)
    assert got.log_prob.device.type == device and got.log_prob.dtype == torch.float32
    assert float((got.log_prob.cpu().double() - reference).abs().max()) <= NLL_TOLERANCE
    # the zero field's density is uniform: log q = -log 4 pi exactly, on every device
    zero = build_field(TrainConfig(hidden=8, layers=1, space_frequencies=0)).to(device)
    lp = log_likelihood(zero, x.to(device)).log_prob
    assert torch.allclose(lp.cpu().double(), torch.full((8,), -LOG_AREA, dtype=torch.float64), atol=1e-6)
    # samples drawn with a CPU generator start from the same points on every device
    a = sample(field, 5, generator=torch.Generator().manual_seed(3), steps=4)
    b = sample(field.cpu(), 5, generator=torch.Generator().manual_seed(3), steps=4)
    assert a.device.type == device and torch.allclose(a.cpu(), b, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_report_stages_and_frames_on_the_device(trained, device, tmp_path):
    path, _ = trained["ppd", device]
    run = RunDir(tmp_path / "run")
    shutil.copytree(path, run.path)
    states = run_stages(run, lambda stages: None, only=("map_preview", "test_nll"), device=device)
    assert states == {"map_preview": "done", "test_nll": "done"}
    density = run.read_npz(run.density)
    assert int(density["preview"]) == 1 and np.isfinite(density["log_prob"]).all()
    report = json.loads(run.report.read_text())
    assert math.isfinite(report["test_nll"]) and math.isfinite(report["kde_nll"])
    assert len(run.samples.read_text().splitlines()) == 301  # header and 300 samples
    field, config = load_field(run, device=device)
    frames = compute_frames(field, config, run.read_split()["train"], n_frames=3, n_lat=6, n_lon=12, fine=(6, 12),
                            sub=1, n_samples=20, n_trajectories=5)
    assert frames.times.tolist()[0] == 0.0 and frames.times.tolist()[-1] == 1.0
    for name in ("target_log_prob", "model_log_prob", "residual", "target_fine_log_prob", "model_samples"):
        assert np.isfinite(getattr(frames, name)).all(), name
    assert frames.model_samples.shape == (3, 20, 2) and frames.trajectories.shape == (3, 5, 2)


def test_work_after_training_runs_on_the_runs_device_where_this_machine_has_it():
    gpu = "cuda" if torch.cuda.is_available() else "cpu"
    assert available_device("cpu").type == "cpu"
    assert available_device("auto").type == gpu
    assert available_device("cuda").type == gpu  # a GPU run is still reported on a machine without one


@pytest.fixture(scope="module")
def bench_gpu() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "bench_gpu.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_bench_gpu_rates_are_counted_after_the_warm_up_line(bench_gpu):
    rate = bench_gpu.steps_per_second([{"event": "start", "step": 0}, {"step": 10, "loss": 1.0, "elapsed": 2.0},
                                       {"step": 60, "loss": 0.9, "elapsed": 3.0}, {"step": 110, "loss": 0.8,
                                                                                   "elapsed": 4.0}])
    assert (rate.per_s, rate.steps, rate.seconds, rate.after_warmup) == (50.0, 100, 2.0, True)
    one = bench_gpu.steps_per_second([{"step": 8, "loss": 1.0, "elapsed": 4.0}])
    assert (one.per_s, one.after_warmup) == (2.0, False)
    assert bench_gpu.steps_per_second([{"event": "start", "step": 0}]) is None


def test_bench_gpu_smallest_training_row_on_the_cpu(bench_gpu, small_csv, tmp_path, single_thread):
    plan = dataclasses.replace(bench_gpu.PLANS["quick"], seconds=0.2, min_steps=2)
    data = bench_gpu.DataSet("small", small_csv, {"kappa_max": 50.0, "space_frequencies": 0})
    row = bench_gpu.measure_steps(data, "RFM", 64, "cpu", plan, tmp_path / "run")
    assert row.unit == "steps/s" and row.value > 0 and "steps in" in row.detail
    env = bench_gpu.environment(torch.device("cpu"))
    text = bench_gpu.table(env, [row, bench_gpu.Row("exact NLL", "small", "dopri5", None, "points/s")], ["a note"])
    lines = text.splitlines()
    assert lines[0].startswith(f"GPU check on {env['device_name']} (cpu): torch {torch.__version__}, CUDA none")
    assert lines[4].startswith("| training | small | RFM, batch 64 | ") and "steps/s" in lines[4]
    assert lines[5] == "| exact NLL | small | dopri5 | not reached |  |" and lines[-1] == "* a note"
