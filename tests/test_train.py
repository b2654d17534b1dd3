"""The training loop, the run directory and checkpoints."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch

from cnfm_core.builders import load_field
from cnfm_core.config import TrainConfig
from cnfm_core.runs import CheckpointError, RunDir, RunError
from cnfm_core.sphere import LOG_AREA
from cnfm_core.train import request_stop, train

TINY = dict(hidden=48, layers=2, batch_size=128, log_every=10, eval_every=10_000, threads=2)


def _config(data, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), **{**TINY, **kw})


@pytest.mark.parametrize("objective, margin", [("ppd", 0.5), ("rfm", 0.2)])
def test_short_run_lowers_loss_and_beats_uniform(tmp_path, synthetic_csv, objective, margin):
    cfg = _config(synthetic_csv, objective=objective, steps=400, batch_size=256, hidden=64, lr=3e-3,
                  kappa_max=100.0)
    result = train(cfg, tmp_path / "run")
    assert result.state == "done" and result.step == 400
    losses = [r["loss"] for r in RunDir(tmp_path / "run").read_metrics() if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    # The final validation NLL (EMA weights) is well below the uniform density's log(4 pi).
    assert result.val_nll is not None and result.val_nll < LOG_AREA - margin


def test_run_directory_contents(tmp_path, synthetic_csv):
    run = RunDir(tmp_path / "run")
    train(_config(synthetic_csv, steps=20, eval_every=10), run.path)
    meta = json.loads(run.config.read_text())
    assert meta["config"]["steps"] == 20 and meta["n_points"] == 2000
    assert meta["n_train"] + meta["n_val"] + meta["n_test"] == 2000 and meta["n_val"] == 200
    records = list(run.read_metrics())
    assert records[0]["event"] == "start" and records[-1]["event"] == "done"
    assert sum("val_nll" in r for r in records) == 2
    assert json.loads(run.status.read_text())["state"] == "done"
    # A checkpoint stores its config and loads with weights_only=True (no code can run).
    state = torch.load(run.checkpoint, weights_only=True)
    assert state["config"]["hidden"] == 48 and state["step"] == 20
    field, cfg = load_field(run)
    assert cfg.hidden == 48 and field.hidden == 48


def test_existing_run_is_not_overwritten(tmp_path, synthetic_csv):
    train(_config(synthetic_csv, steps=5), tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(RunError, match="already holds a run"):
        train(_config(synthetic_csv, steps=5), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_stop_and_resume(tmp_path, synthetic_csv):
    def stop_at_30(rec):
        if rec.get("step") == 30:
            request_stop()

    r1 = train(_config(synthetic_csv, steps=100), tmp_path / "run", on_log=stop_at_30)
    assert r1.state == "stopped" and r1.step == 30
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "stopped"
    r2 = train(None, tmp_path / "run", resume=True)
    assert r2.state == "done" and r2.step == 100
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    # Adam's step counters continued from the checkpoint rather than restarting.
    assert int(next(iter(state["optimizer"]["state"].values()))["step"]) == 100
    # Extending the budget on resume.
    r3 = train(TrainConfig(steps=120), tmp_path / "run", resume=True)
    assert r3.step == 120
    events = [r.get("event") for r in RunDir(tmp_path / "run").read_metrics() if "event" in r]
    assert events == ["start", "stopped", "resume", "done", "resume", "done"]


def test_time_budget(tmp_path, synthetic_csv):
    # States and steps only, never how many steps fit in the time: on a busy machine a step can take seconds.
    run = RunDir(tmp_path / "run")
    r = train(_config(synthetic_csv, minutes=0.05), run.path)
    assert r.state == "done" and r.elapsed >= 3.0 and r.step >= 1
    assert json.loads(run.status.read_text())["state"] == "done"
    assert torch.load(run.checkpoint, weights_only=True)["step"] == r.step
    assert run.read_metrics()[-1]["event"] == "done" and run.read_metrics()[-1]["step"] == r.step


def test_time_budget_with_min_steps_runs_on_until_they_are_done(tmp_path, synthetic_csv):
    r = train(_config(synthetic_csv, minutes=0.001, min_steps=25), tmp_path / "run")
    assert r.state == "done" and r.step == 25


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a checkpoint", "not a readable checkpoint"),
        (b"", "not a readable checkpoint"),
    ],
)
def test_tampered_checkpoint_bytes(tmp_path, synthetic_csv, content, message):
    train(_config(synthetic_csv, steps=5), tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_field(tmp_path / "run")


class _Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran')",))


def test_checkpoint_with_code_is_refused(tmp_path, synthetic_csv):
    train(_config(synthetic_csv, steps=5), tmp_path / "run")
    ck = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ck, weights_only=True)
    state["config"] = _Evil()
    torch.save(state, ck, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_field(tmp_path / "run")


def test_checkpoint_of_other_format_or_mismatched_weights(tmp_path, synthetic_csv):
    train(_config(synthetic_csv, steps=5), tmp_path / "run")
    ck = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ck, weights_only=True)
    torch.save({"model": state["model"]}, ck)
    with pytest.raises(CheckpointError, match="not a cnfm-checkpoint"):
        load_field(tmp_path / "run")
    state["config"]["hidden"] = 7
    torch.save(state, ck)
    with pytest.raises(RunError, match="does not match its config"):
        load_field(tmp_path / "run")


def test_bad_config_is_refused_before_anything_is_written(tmp_path, synthetic_csv):
    with pytest.raises(ValueError, match="unknown objective 'nope'; known: ppd, rfm"):
        train(_config(synthetic_csv, objective="nope", steps=5), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_nan_loss_fails_cleanly(tmp_path, synthetic_csv):
    r = pytest.raises(FloatingPointError, train, _config(synthetic_csv, steps=50, lr=math.inf), tmp_path / "run")
    assert "loss" in str(r.value) or "lr" in str(r.value)
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "failed"


def test_config_from_before_the_floor_keeps_training_without_one(tmp_path, synthetic_csv):
    # A checkpoint whose config has no "floor" or space features (written before they existed) loads and resumes
    # without them, not with the current defaults; a new config gets the defaults.
    assert TrainConfig().floor > 0
    train(_config(synthetic_csv, steps=5, floor=0.0, space_frequencies=0), tmp_path / "run")
    ck = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ck, weights_only=True)
    del state["config"]["floor"], state["config"]["space_frequencies"], state["config"]["space_scale"]
    torch.save(state, ck)
    assert load_field(tmp_path / "run")[1].floor == 0.0
    assert load_field(tmp_path / "run")[1].space_frequencies == 0
    train(TrainConfig(steps=8), tmp_path / "run", resume=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["floor"] == 0.0
    with pytest.raises(ValueError, match="floor"):
        train(_config(synthetic_csv, steps=5, floor=1.5), tmp_path / "other")


def test_cpu_time_budget_ends_the_run_and_says_why(tmp_path, synthetic_csv):
    # A generous wall-time budget beside a tiny CPU-time one: the CPU budget ends the run, whatever the load.
    run = RunDir(tmp_path / "run")
    r = train(_config(synthetic_csv, minutes=60.0, cpu_minutes=0.001, threads=1), run.path)
    assert r.state == "done" and r.step >= 1 and r.cpu_elapsed >= 0.06
    status = json.loads(run.status.read_text())
    assert status["state"] == "done" and "CPU-time budget" in status["message"]
    assert status["cpu_minutes"] == 0.001 and status["cpu_elapsed"] == r.cpu_elapsed
    assert json.loads(run.config.read_text())["config"]["cpu_minutes"] == 0.001
    state = torch.load(run.checkpoint, weights_only=True)
    assert state["step"] == r.step and state["cpu_elapsed"] == r.cpu_elapsed
    # Resuming with a larger CPU budget continues from the CPU time already used (the final validation included).
    more = (r.cpu_elapsed + 0.3) / 60.0
    r2 = train(TrainConfig(cpu_minutes=more), run.path, resume=True)
    assert r2.state == "done" and r2.step > r.step and r2.cpu_elapsed >= 60.0 * more
    # A config saved before the CPU budget existed loads without one; alone, the CPU budget sets no step budget.
    old = {k: v for k, v in json.loads(run.config.read_text())["config"].items() if k != "cpu_minutes"}
    assert TrainConfig.from_dict(old).cpu_minutes is None
    assert TrainConfig(cpu_minutes=1.0).budget() == (None, None) and TrainConfig(cpu_minutes=1.0).cpu_budget() == 60.0
    with pytest.raises(ValueError, match="cpu_minutes"):
        TrainConfig(cpu_minutes=0.0).validate()
