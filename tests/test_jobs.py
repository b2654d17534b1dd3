"""The run store and job runner without a browser: ids, listing, broken runs, cancelling, and the queue
advancing with no page open (workers start the next job; a new runner recovers a store after a restart)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from waiting import until

from cnfm_core import standby
from cnfm_core.config import TrainConfig
from cnfm_core.jobs import ACTIVE, FINISHED, JobRunner, RunStore, valid_run_id
from cnfm_core.pathframes import read_frames
from cnfm_core.procs import alive, start_time
from cnfm_core.runs import RunError
from cnfm_core.train import train


@pytest.mark.parametrize("run_id, ok", [("20261128-run-ab12", True), ("a", True), ("flood-lr=1e-2,batch=1024", True),
                                        ("../etc", False),
                                        ("a/b", False), ("", False), (".hidden", False), ("x" * 65, False)])
def test_run_ids_from_urls_are_plain_names(run_id, ok):
    assert valid_run_id(run_id) is ok


def test_bad_run_id_is_refused(tmp_path):
    with pytest.raises(RunError, match="not a valid run id"):
        RunStore(tmp_path).run_dir("../outside")


def test_unreadable_runs_are_listed_not_fatal(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    good = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="good")
    for name, content in [("list-status", "[1, 2]"), ("garbage-status", "{not json")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "status.json").write_text(content)
    infos = {r.run_id: r for r in store.runs()}
    assert infos[good].state == "queued"
    assert infos["list-status"].state == "unreadable" and "JSON object" in infos["list-status"].message
    assert infos["garbage-status"].state == "unreadable"


def test_cancel_queued_and_queue_order(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    runner = JobRunner(store, max_concurrent=1)
    a = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="a")
    b = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="b")
    assert runner.queue() == [a, b]
    runner.stop(b)
    assert store.info(b).state == "stopped" and "cancelled" in store.info(b).message
    assert runner.queue() == [a]


def test_resume_clears_an_old_stop_request(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    run_id = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="r")
    run = store.run_dir(run_id)
    run.checkpoint.write_bytes(b"placeholder")  # request_resume only checks that a checkpoint exists
    status = json.loads(run.status.read_text())
    status["state"] = "stopped"
    run.status.write_text(json.dumps(status))
    run.stop_request.touch()
    store.request_resume(run_id, steps=10, quick=True)
    assert not run.stop_request.exists()
    assert json.loads(run.request.read_text())["quick"] is True and store.info(run_id).state == "queued"
    with pytest.raises(RunError, match="stop it before resuming"):
        store.request_resume(run_id, steps=20)


# ---------------------------------------------------------------------------------------------
# Processes and the queue without a page: real workers, waited for by their state (never by wall time)

#: Generous limits for waiting on workers: each imports torch and trains on two cores shared with other work.
WAIT = 300.0


def _tiny(data: Path, steps: int = 3) -> TrainConfig:
    return TrainConfig(data=str(data), steps=steps, hidden=16, layers=2, eval_every=10**6, threads=1)


def _wait_until(store: RunStore, run_id: str, done: Callable[[str], bool]) -> str:
    """Read the run's state until ``done(state)``; returns it. Fails after :data:`WAIT` seconds."""
    t0 = time.time()
    while time.time() - t0 < WAIT:
        state = store.info(run_id).state
        if done(state):
            return state
        time.sleep(0.2)
    log = store.run_dir(run_id).worker_log
    pytest.fail(f"run {run_id} stayed {store.info(run_id).state}: {log.read_text() if log.exists() else ''}")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_process_identity_is_pid_and_start_time():
    me = os.getpid()
    assert alive(me, start_time(me)) and alive(me)
    assert not alive(me, start_time(me) + 1)  # the same PID, started at another time: another process
    assert not alive(_dead_pid()) and not alive(0)


def test_the_queue_advances_with_no_page_open(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    runner = JobRunner(store, max_concurrent=1, threads=1)
    first = store.create(_tiny(synthetic_csv), name="first", quick=True)
    second = store.create(_tiny(synthetic_csv), name="second", quick=True)
    assert runner.poll() == [first] and store.info(second).state == "queued"
    status = json.loads(store.run_dir(first).status.read_text())
    assert status["pid_start"] == start_time(status["pid"])  # the runner records more than the PID
    # No page and no further poll from here: the first worker starts the second as it exits.
    assert _wait_until(store, first, lambda s: s in FINISHED) == "done"
    assert _wait_until(store, second, lambda s: s != "queued") in ("running", "reporting", "done")
    assert _wait_until(store, second, lambda s: s in FINISHED) == "done"


def test_a_new_dashboard_runner_recovers_the_store(tmp_path, synthetic_csv, monkeypatch):
    store = RunStore(tmp_path)
    queued = [store.create(_tiny(synthetic_csv), name=f"q{i}", quick=True) for i in range(2)]
    dead, reused = (store.create(_tiny(synthetic_csv), name=n) for n in ("dead", "reused"))
    for run_id, pid, start in ((dead, _dead_pid(), None), (reused, os.getpid(), start_time(os.getpid()) + 1)):
        run = store.run_dir(run_id)
        status = json.loads(run.status.read_text())
        status.update(state="running", pid=pid, pid_start=start)
        run.status.write_text(json.dumps(status))
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path))
    monkeypatch.setenv("CNFM_MAX_CONCURRENT", "2")
    from dashboard import state

    state.runner()  # what the server does on its first page after a restart
    for run_id in (dead, reused):
        status = json.loads(store.run_dir(run_id).status.read_text())  # written, not only shown as failed
        assert status["state"] == "failed" and "ended without finishing" in status["message"]
    assert all(store.info(q).state != "queued" for q in queued)
    for q in queued:
        assert _wait_until(store, q, lambda s: s in FINISHED) == "done"


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory, single_thread) -> Path:
    """A store with one tiny run trained in this process: a checkpoint, a split, no report and no frames."""
    root = tmp_path_factory.mktemp("store")
    train(_tiny(Path(__file__).resolve().parents[1] / "assets" / "synthetic_mixture.csv", steps=5), root / "old")
    return root


def test_path_frames_are_a_job_of_the_runner(trained_store, tmp_path):
    shutil.copytree(trained_store, tmp_path, dirs_exist_ok=True)
    store = RunStore(tmp_path)
    runner = JobRunner(store, max_concurrent=1, threads=1)
    store.request_job("old", "frames")
    assert store.info("old").state == "queued" and store.info("old").job == "frames"
    assert runner.poll() == ["old"] and store.info("old").state == "reporting"
    assert _wait_until(store, "old", lambda s: s not in ACTIVE) == "done"  # the run's own state comes back
    frames = read_frames(store.run_dir("old"))
    assert frames.target_log_prob.shape[0] == len(frames.times) == 31 and not store.info("old").job_error
    store.request_job("old", "frames")
    with pytest.raises(RunError, match="is queued"):  # one job at a time on a run
        store.request_job("old", "frames")


def test_a_failed_frames_job_keeps_the_run_and_says_why(trained_store, tmp_path):
    shutil.copytree(trained_store, tmp_path, dirs_exist_ok=True)
    store = RunStore(tmp_path)
    store.run_dir("old").checkpoint.write_bytes(b"not a checkpoint")
    store.request_job("old", "frames")
    JobRunner(store, max_concurrent=1, threads=1).poll()
    assert _wait_until(store, "old", lambda s: s not in ACTIVE) == "done"
    info = store.info("old")
    assert "frames failed" in info.job_error and "not a readable checkpoint" in info.job_error
    assert not store.run_dir("old").frames.exists()


def test_cancelling_a_queued_frames_job_keeps_the_run(trained_store, tmp_path):
    shutil.copytree(trained_store, tmp_path, dirs_exist_ok=True)
    store = RunStore(tmp_path)
    store.request_job("old", "frames")
    JobRunner(store).stop("old")
    info = store.info("old")
    assert info.state == "done" and "cancelled" in info.job_error
    with pytest.raises(ValueError, match="unknown job"):
        store.request_job("old", "sample")


# ---------------------------------------------------------------------------------------------
# The warm worker (cnfm_core/standby.py): a job handed to a process that has already imported torch


def _files(root: Path, suffix: str) -> list[Path]:
    folder = root / standby.STANDBY_DIR
    return sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []


def _wait_for(what: Callable[[], object], why: str) -> object:
    return until(what, why, WAIT)


@pytest.fixture
def standby_store(tmp_path, monkeypatch):
    """A store whose runner keeps a standby; every standby process still there at the end is ended."""
    monkeypatch.setenv(standby.IDLE_ENV, "300")
    monkeypatch.setenv(standby.DELAY_ENV, "0")
    yield tmp_path
    for path in (tmp_path / standby.STANDBY_DIR).glob("*.*"):
        pid = path.stem.partition("-")[0]
        if pid.isdigit() and path.suffix in (".starting", ".ready", ".job"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_a_standby_worker_takes_the_next_job(standby_store, synthetic_csv):
    store = RunStore(standby_store)
    runner = JobRunner(store, max_concurrent=1, threads=1, standby=True)
    assert runner.poll() == [] and len(_files(standby_store, ".starting")) == 1  # started ahead of any job
    runner.poll()
    assert len(_files(standby_store, ".starting")) == 1  # one at a time, however often the runner polls
    ready = _wait_for(lambda: _files(standby_store, ".ready"), "the standby to be ready")[0]
    warm_pid = int(ready.stem.partition("-")[0])
    assert json.loads(ready.read_text()) == {"threads": 1, "slots": 1}

    run_id = store.create(_tiny(synthetic_csv, steps=4), name="warm", quick=True)
    assert runner.poll() == [run_id]
    assert json.loads(store.run_dir(run_id).status.read_text())["pid"] == warm_pid  # no cold worker
    assert _wait_until(store, run_id, lambda s: s in FINISHED) == "done"
    assert store.info(run_id).step == 4
    assert store.run_dir(run_id).worker_log.exists() and not _files(standby_store, ".job")
    _wait_for(lambda: not alive(warm_pid), "the worker to exit after its one job, as a cold worker does")
    # The finishing worker polled its runner, which started the next standby.
    nxt = _wait_for(lambda: _files(standby_store, ".ready"), "the next standby")[0]
    assert int(nxt.stem.partition("-")[0]) != warm_pid


def test_standby_files_of_dead_or_unsuited_processes_are_not_used(tmp_path):
    folder = tmp_path / standby.STANDBY_DIR
    folder.mkdir()
    me = os.getpid()
    (folder / f"{_dead_pid()}-1.ready").write_text('{"threads": 1, "slots": 1}')  # died
    (folder / f"{me}-{start_time(me) + 1}.ready").write_text('{"threads": 1, "slots": 1}')  # PID reused
    (folder / f"{me}-{start_time(me)}.ready").write_text('{"threads": 4, "slots": 1}')  # other settings
    assert standby.find(tmp_path, threads=1, slots=1) == (None, False)
    assert [p.name for p in folder.iterdir()] == [f"{me}-{start_time(me)}.ready"]  # the dead ones removed
    found, _ = standby.find(tmp_path, threads=4, slots=1)
    assert found is not None and found.pid == me


def test_an_unused_standby_ends_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(standby.IDLE_ENV, "0.5")
    monkeypatch.setenv(standby.DELAY_ENV, "0")
    store = RunStore(tmp_path)
    proc = standby.ensure(store.root, threads=1, slots=1, env={})
    assert proc is not None and alive(proc.pid, proc.start)
    _wait_for(lambda: not alive(proc.pid, proc.start), "the idle standby to exit")
    assert not _files(tmp_path, ".ready") and not _files(tmp_path, ".starting")


def test_a_killed_training_job_shows_the_step_of_its_checkpoint(trained_store, tmp_path):
    shutil.copytree(trained_store, tmp_path, dirs_exist_ok=True)
    store = RunStore(tmp_path)
    run = store.run_dir("old")
    kept = run.checkpoint_step()
    status = json.loads(run.status.read_text())
    status.update(state="running", step=kept + 7, pid=_dead_pid(), pid_start=None)  # it got further, then died
    run.status.write_text(json.dumps(status))
    JobRunner(store, max_concurrent=1, threads=1).poll()
    info = store.info("old")
    assert info.state == "failed" and "ended without finishing" in info.message
    assert kept == 5 and info.step == kept  # resumable from there, and the page says so


def test_a_settling_standby_waits_and_ends_when_its_runner_forgets_it(tmp_path, monkeypatch):
    monkeypatch.setenv(standby.DELAY_ENV, "600")  # it would wait ten minutes before its imports
    proc = standby.ensure(RunStore(tmp_path).root, threads=1, slots=1, env={})
    assert proc is not None
    (starting,) = _files(tmp_path, ".starting")
    assert standby.find(tmp_path, threads=1, slots=1) == (None, True)  # starting: no second one is launched
    starting.unlink()  # what a runner does with the files of a standby it no longer counts on
    _wait_for(lambda: not alive(proc.pid, proc.start), "the settling standby to exit")
    assert not _files(tmp_path, ".ready")
