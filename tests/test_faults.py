"""Faults while training: a killed trainer, a full disk, a read-only folder, training that diverges, and two
trainers on one run folder. Each ends with a one-line reason (status ``failed`` with it, where the status can be
written), no traceback, and the last checkpoint intact and resumable.

The kills are injected at a chosen write (a trainer process that SIGKILLs itself right after a metrics line, or
halfway through a checkpoint write), so the tests do not depend on timing; a full disk and a read-only folder are
``OSError``s injected at the writes (the tests run as root, so chmod would not stop a write).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnfm_core import runs
from cnfm_core.cli import main
from cnfm_core.config import TrainConfig
from cnfm_core.runs import RunDir, RunError
from cnfm_core.train import train

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "assets" / "synthetic_mixture.csv"
# Tiny and fixed (no settings chosen from the data), so a run takes a fraction of a second per ten steps.
TINY = dict(hidden=16, layers=2, batch_size=32, threads=1, eval_every=10**6, kappa_max=100.0, space_frequencies=0)
CLI_TINY = ["--hidden", "16", "--layers", "2", "--batch-size", "32", "--threads", "1", "--kappa-max", "100",
            "--space-frequencies", "0", "--eval-every", "1000000", "--quiet"]
# Generous: a subprocess that imports torch and trains a few dozen tiny steps takes seconds, but the test machine
# may be shared by several test runs and busy loops (5 processes per core); the tests wait on states, not time.
SUBPROCESS_TIMEOUT = 600


def _config(**kw: object) -> TrainConfig:
    return TrainConfig(**{"data": str(DATA), **TINY, **kw})


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=SUBPROCESS_TIMEOUT)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnfm_core", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=SUBPROCESS_TIMEOUT)


def _loss_steps(run: RunDir) -> list[int]:
    return [int(r["step"]) for r in run.read_metrics() if "loss" in r]


def _temps(run: RunDir) -> list[str]:
    return sorted(p.name for p in run.path.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# A trainer that kills itself (SIGKILL: no handler runs, nothing is flushed) at a chosen point.
_KILL_AFTER_METRICS = """
import os, signal, sys
from cnfm_core import runs
from cnfm_core.config import TrainConfig
from cnfm_core.train import train
append = runs.RunDir.append_metrics
def append_then_die(self, rec):
    append(self, rec)
    if rec.get("step") == int(sys.argv[2]) and "loss" in rec:
        os.kill(os.getpid(), signal.SIGKILL)
runs.RunDir.append_metrics = append_then_die
train(TrainConfig(**{**__import__("json").loads(sys.argv[3])}), sys.argv[1])
"""

_KILL_IN_CHECKPOINT_WRITE = """
import os, signal, sys
from cnfm_core.config import TrainConfig
from cnfm_core.train import train
replace, seen = os.replace, []
def replace_or_die(src, dst):
    if os.path.basename(dst) == sys.argv[4]:
        seen.append(dst)
        if len(seen) == int(sys.argv[2]):  # the temporary file is written in full; the rename never happens
            os.kill(os.getpid(), signal.SIGKILL)
    replace(src, dst)
os.replace = replace_or_die
train(TrainConfig(**{**__import__("json").loads(sys.argv[3])}), sys.argv[1])
"""


def _config_json(**kw: object) -> str:
    return json.dumps(dataclasses.asdict(_config(**kw)))


def test_killed_after_a_metrics_line_resumes_from_the_checkpoint_without_repeated_steps(tmp_path):
    run = RunDir(tmp_path / "run")
    p = _python(_KILL_AFTER_METRICS, str(run.path), "50", _config_json(steps=1000, log_every=5, checkpoint_every=20))
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert max(_loss_steps(run)) == 50  # the page saw step 50 ...
    assert run.load_checkpoint()["step"] == 40  # ... while the checkpoint is at 40
    assert run.checkpoint_step() == 40  # known without torch, for the job runner
    p = _cli("train", "--run-dir", str(run.path), "--resume", "--steps", "60", "--quiet")
    assert p.returncode == 0, p.stderr
    steps = _loss_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 60, steps  # 45 and 50 are not repeated
    resumed = [r for r in run.read_metrics() if r.get("event") == "resume"]
    assert [r["step"] for r in resumed] == [40]


@pytest.mark.parametrize("name, nth, kept", [
    ("checkpoint.pt", 3, 40),  # the third checkpoint (step 60) is written to its temporary file, never renamed
    ("checkpoint.json", 6, 60),  # the third checkpoint is in place; its note (two writes each) is not yet final
])
def test_killed_during_a_checkpoint_write_keeps_the_last_checkpoint_and_leaves_no_temp_file(tmp_path, name, nth,
                                                                                            kept):
    run = RunDir(tmp_path / "run")
    p = _python(_KILL_IN_CHECKPOINT_WRITE, str(run.path), str(nth),
                _config_json(steps=1000, log_every=5, checkpoint_every=20), name)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert _temps(run), "the kill should have left a temporary file"
    assert run.load_checkpoint()["step"] == kept and run.checkpoint_step() == kept  # the note knows which
    assert train(TrainConfig(steps=70), run.path, resume=True).step == 70  # what `train --resume` does
    assert _temps(run) == []  # removed when the run was opened for training
    steps = _loss_steps(run)
    assert steps == sorted(set(steps)) and steps[-1] == 70, steps
    assert run.load_checkpoint()["step"] == 70 and run.checkpoint_step() == 70


def test_a_kill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    """A real SIGKILL at whatever point the trainer has reached once two checkpoints exist."""
    run = RunDir(tmp_path / "run")
    code = "import sys, json; from cnfm_core.train import train; from cnfm_core.config import TrainConfig; " \
           "train(TrainConfig(**json.loads(sys.argv[2])), sys.argv[1])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(run.path),
                             _config_json(steps=10**6, log_every=3, checkpoint_every=10)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT  # a state is awaited; the limit only stops a hang
        while (run.checkpoint_step() or 0) < 20 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    state = run.load_checkpoint()
    assert run.checkpoint_step() == state["step"]
    assert train(TrainConfig(steps=state["step"] + 6), run.path, resume=True).state == "done"
    steps = _loss_steps(run)
    assert steps == sorted(set(steps)) and _temps(run) == []


def _fail_writes(monkeypatch: pytest.MonkeyPatch, code: int, *, names: tuple[str, ...], after: int,
                 metrics_after_step: int | None = None) -> None:
    """``OSError(code)`` at the atomic writes of the files ``names`` after ``after`` of them succeeded, and at the
    metrics lines past ``metrics_after_step``."""
    write, calls = runs.atomic_write, []

    def failing_write(path: Path, data: bytes) -> None:
        if path.name in names:
            calls.append(path.name)
            if len(calls) > after:
                raise OSError(code, os.strerror(code))
        write(path, data)

    monkeypatch.setattr(runs, "atomic_write", failing_write)
    if metrics_after_step is not None:
        append = runs.RunDir.append_metrics

        def failing_append(self: RunDir, rec: dict) -> None:
            if rec.get("step", 0) > metrics_after_step:
                raise OSError(code, os.strerror(code))
            append(self, rec)

        monkeypatch.setattr(runs.RunDir, "append_metrics", failing_append)


def test_disk_full_at_a_checkpoint_fails_with_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    _fail_writes(monkeypatch, errno.ENOSPC, names=("checkpoint.pt",), after=2)  # steps 10 and 20 are saved
    with pytest.raises(OSError) as raised:
        train(_config(steps=100, log_every=5, checkpoint_every=10), run.path)
    message = str(raised.value)
    assert "\n" not in message and "disk is full" in message and "step 20" in message, message
    status = run.read_json(run.status)
    assert status["state"] == "failed" and status["message"] == message
    assert run.load_checkpoint()["step"] == 20 and run.checkpoint_step() == 20
    assert _temps(run) == []


def test_disk_full_at_a_metrics_line_through_the_cli(tmp_path, monkeypatch, capsys):
    run = RunDir(tmp_path / "run")
    _fail_writes(monkeypatch, errno.ENOSPC, names=(), after=0, metrics_after_step=40)
    monkeypatch.setattr("cnfm_core.cli.TrainConfig", lambda **kw: _config(**{**kw, "checkpoint_every": 20,
                                                                              "log_every": 5}))
    assert main(["train", "--data", str(DATA), "--run-dir", str(run.path), "--steps", "300", *CLI_TINY]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("cnfm: error:") and "metrics.jsonl" in line and "disk is full" in line, line
    status = run.read_json(run.status)
    assert status["state"] == "failed" and "disk is full" in status["message"]
    assert run.load_checkpoint()["step"] == 40


def _read_only_after(monkeypatch: pytest.MonkeyPatch, code: int, step: int) -> None:
    """Every write fails with ``OSError(code)`` (status.json too) once the metrics line of ``step`` is written."""
    write, append = runs.atomic_write, runs.RunDir.append_metrics
    state = {"read_only": False}

    def guarded_write(path: Path, data: bytes) -> None:
        if state["read_only"]:
            raise OSError(code, os.strerror(code))
        write(path, data)

    def guarded_append(self: RunDir, rec: dict) -> None:
        if state["read_only"]:
            raise OSError(code, os.strerror(code))
        append(self, rec)
        if rec.get("step") == step and "loss" in rec:
            state["read_only"] = True

    monkeypatch.setattr(runs, "atomic_write", guarded_write)
    monkeypatch.setattr(runs.RunDir, "append_metrics", guarded_append)


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_a_folder_that_became_read_only_fails_with_one_line(tmp_path, monkeypatch, capsys, code, words):
    """Every write fails (status.json too): the one line goes to stderr, the checkpoint stays loadable."""
    run = RunDir(tmp_path / "run")
    monkeypatch.setattr("cnfm_core.cli.TrainConfig", lambda **kw: _config(**{**kw, "checkpoint_every": 20,
                                                                              "log_every": 5}))
    _read_only_after(monkeypatch, code, 45)
    rc = main(["train", "--data", str(DATA), "--run-dir", str(run.path), "--steps", "300", *CLI_TINY])
    assert rc == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("cnfm: error:") and words in line.lower(), line
    assert str(run.path) in line and "step 40" in line, line  # where, and what is kept
    assert run.load_checkpoint()["step"] == 40
    assert _temps(run) == []


def test_the_worker_ends_a_read_only_run_with_one_line_in_its_log(tmp_path, monkeypatch, capsys):
    from cnfm_core import worker

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_json(run.request, {"action": "train", "quick": True,
                                 "config": dataclasses.asdict(_config(steps=60, log_every=5, checkpoint_every=20))})
    _read_only_after(monkeypatch, errno.EROFS, 25)
    monkeypatch.setattr(worker, "LiveSnapshots", lambda run: None)
    assert worker._run(run) == 1
    line = _one_line(capsys.readouterr().err)
    assert "read-only" in line, line
    assert run.load_checkpoint()["step"] == 20


def test_permission_denied_at_a_checkpoint_sets_failed_with_the_reason(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    _fail_writes(monkeypatch, errno.EACCES, names=("checkpoint.pt",), after=1)
    with pytest.raises(OSError, match="permission denied"):
        train(_config(steps=100, log_every=5, checkpoint_every=10), run.path)
    status = run.read_json(run.status)
    assert status["state"] == "failed" and "permission denied" in status["message"] and "step 10" in status["message"]
    assert run.load_checkpoint()["step"] == 10


def test_checkpoints_also_come_on_a_time_interval(tmp_path, monkeypatch):
    """With the interval at zero every step is saved (the step interval alone would save none before the end)."""
    saved: list[int] = []
    save = runs.RunDir.save_checkpoint
    monkeypatch.setattr(runs.RunDir, "save_checkpoint", lambda self, state: (saved.append(state["step"]),
                                                                             save(self, state)))
    monkeypatch.setattr("cnfm_core.train.CHECKPOINT_SECONDS", 0.0)
    train(_config(steps=5, checkpoint_every=1000), tmp_path / "run")
    assert saved[:5] == [1, 2, 3, 4, 5]


def test_training_that_diverges_rolls_back_then_stops_with_one_line(tmp_path):
    run = RunDir(tmp_path / "run")
    p = _cli("train", "--data", str(DATA), "--run-dir", str(run.path), "--steps", "50", "--lr", "1e12", *CLI_TINY)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("cnfm: error: training diverged"), p.stderr
    assert sum("rolled back" in line for line in lines[:-1]) == 5  # each event said on stderr
    events = [r for r in run.read_metrics() if r.get("event") == "diverged"]
    assert len(events) == 5 and [e["lr_scale"] for e in events] == [0.5, 0.25, 0.125, 0.0625, 0.03125]
    status = run.read_json(run.status)
    assert status["state"] == "failed" and status["message"] in lines[-1]
    state = run.load_checkpoint()  # the last good state was kept, and it is finite
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_diverging_step_is_rolled_back_and_training_goes_on(tmp_path, monkeypatch):
    """One poisoned step (a NaN loss) is undone: the run ends done, with one event and a halved learning rate."""
    from cnfm_core import objectives

    make = objectives.make_objective

    def poisoned(*args: object, **kw: object) -> object:
        objective, calls = make(*args, **kw), []

        def call(model: torch.nn.Module, batch: int, **kw2: object) -> object:
            value = objective(model, batch, **kw2)
            calls.append(1)
            if len(calls) == 7:
                return dataclasses.replace(value, loss=value.loss * math.nan)
            return value
        return call

    monkeypatch.setattr("cnfm_core.train.make_objective", poisoned)
    run = RunDir(tmp_path / "run")
    result = train(_config(steps=20, log_every=1), run.path)
    assert result.state == "done" and result.step == 20 and math.isfinite(result.final_loss)
    events = [r for r in run.read_metrics() if r.get("event") == "diverged"]
    assert len(events) == 1 and events[0]["lr_scale"] == 0.5
    lrs = {r["step"]: r["lr"] for r in run.read_metrics() if "loss" in r}
    assert lrs[20] == pytest.approx(0.5 * _config(steps=20).lr * _lr(20))


def _lr(step: int) -> float:
    from cnfm_core.train import _lr_factor

    return _lr_factor(_config(steps=20), step - 1, (step - 1) / 20)


def test_the_guard_does_not_change_a_healthy_run(tmp_path, monkeypatch):
    from cnfm_core import guard

    train(_config(steps=30, log_every=1), tmp_path / "guarded")

    class Unguarded(guard.DivergenceGuard):
        def check(self, loss: float, grad_norm: float) -> str | None:
            return None

        def keep(self, step: int) -> None:
            pass

    monkeypatch.setattr("cnfm_core.train.DivergenceGuard", Unguarded)
    train(_config(steps=30, log_every=1), tmp_path / "plain")
    guarded, plain = ([(r["step"], r["loss"], r["grad_norm"]) for r in RunDir(tmp_path / name).read_metrics()
                       if "loss" in r] for name in ("guarded", "plain"))
    assert len(guarded) == 30 and guarded == plain


def test_a_second_trainer_is_refused_while_the_first_holds_the_run(tmp_path):
    run = RunDir(tmp_path / "run")
    first = subprocess.Popen([sys.executable, "-m", "cnfm_core", "train", "--data", str(DATA), "--run-dir",
                              str(run.path), "--steps", "1000000", *CLI_TINY], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT  # a state is awaited; the limit only stops a hang
        while first.poll() is None and time.monotonic() < deadline:
            if run.status.exists() and run.read_json(run.status).get("state") == "running":
                break
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        p = _cli("train", "--run-dir", str(run.path), "--resume", "--steps", "5", "--quiet")
        assert p.returncode == 2
        line = _one_line(p.stderr)
        assert f"pid {first.pid}" in line, line
        with pytest.raises(RunError, match=f"pid {first.pid}"):
            train(None, run.path, resume=True)
        assert first.poll() is None  # the first trainer was not disturbed
        first.send_signal(signal.SIGTERM)  # it stops after its step, with a checkpoint
        assert first.wait(timeout=SUBPROCESS_TIMEOUT) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    stopped = run.load_checkpoint()["step"]
    result = train(TrainConfig(steps=stopped + 3), run.path, resume=True)  # the lock went with its holder
    assert result.state == "done" and result.step == stopped + 3


def test_a_resume_before_the_first_checkpoint_names_the_trainer_that_holds_the_run(tmp_path):
    """A trainer that holds the run folder but has not written its first checkpoint yet (a slow start on a loaded
    machine) is named, not reported as a folder without a run."""
    from cnfm_core.runlock import training_lock

    run = RunDir(tmp_path / "run")
    with training_lock(run):  # this process is the trainer; no checkpoint.pt yet
        with pytest.raises(RunError, match=f"pid {os.getpid()}"):
            train(None, run.path, resume=True)
    with pytest.raises(RunError, match="no such file"):  # no trainer: the folder has no run to resume
        train(None, run.path, resume=True)


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    """A run folder's files are readable by the group and others as far as the umask allows (not mkstemp's 0600),
    as a file written with open() would be: a teacher's server may be read by another account."""
    import os
    import stat

    from cnfm_core.runs import atomic_write

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.json", b"{}")
        (tmp_path / "b.json").write_bytes(b"{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640
