"""Jobs on a Ray cluster (cnfm_core/rayjobs.py) against a real local cluster of two one-CPU nodes.

The cluster is the tests' shared one (the ``ray_cluster`` fixture, tests/ray_cluster.py: ``ray start`` of a head
with the job server, then a second node, ended by the process groups it was started in). One story drives it, and
each test states one of its contracts: four queued runs finish with at most two running at a time; a worker killed
by hand leaves its run failed with Ray's reason and a resume trains it on from its checkpoint; Stop stops. Without
``CNFM_RAY_ADDRESS`` nothing imports ray, and a cluster that is missing or not installed ends a job with one line.
States are waited for, never wall time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ray_cluster import bench_ray, need_ray
from waiting import until

from cnfm_core.config import TrainConfig
from cnfm_core.jobs import FINISHED, JobRunner, RunStore
from cnfm_core.procs import alive
from cnfm_core.rayjobs import JOB_FILE

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "assets" / "synthetic_mixture.csv"


#: Generous limits for waiting on states: each worker imports torch on two cores shared with the cluster.
WAIT = 240.0


def _tiny(steps: int, **kw: object) -> TrainConfig:
    return TrainConfig(data=str(DATA), steps=steps, hidden=16, layers=2, eval_every=10**6, threads=1, **kw)


@pytest.fixture(scope="module")
def cluster(ray_cluster: str) -> str:
    """The tests' local Ray cluster: a head (1 CPU, the job server) and a second node (1 CPU); its address."""
    return ray_cluster


# ---------------------------------------------------------------------------------------------
# One story on the cluster: K is killed and resumed, S stopped and resumed, T1 and T2 train between


@dataclass
class Story:
    store: RunStore
    runs: dict[str, str]
    max_active: int = 0
    killed: str = ""  # K's message after its worker was killed
    killed_step: int = 0
    stopped: str = ""  # S's state after Stop
    stopped_step: int = 0
    nodes: set[str] = field(default_factory=set)  # where K and S ran at the same time


def _active(store: RunStore) -> int:
    return sum(r.state in ("running", "reporting") for r in store.runs())


def _status(store: RunStore, run_id: str) -> dict:
    return json.loads(store.run_dir(run_id).status.read_text())


def _polled(runner: JobRunner, run_id: str) -> str:
    """The run's state after a poll (what a page that is open shows)."""
    runner.poll()
    return runner.store.info(run_id).state


@pytest.fixture(scope="module")
def story(cluster, tmp_path_factory) -> Iterator[Story]:
    store = RunStore(tmp_path_factory.mktemp("ray") / "runs", demo_root=None)
    with pytest.MonkeyPatch.context() as env:  # the runner as the dashboard makes it, with the variable set
        env.setenv("CNFM_RAY_ADDRESS", cluster)
        runner = JobRunner(store, max_concurrent=2, threads=1, standby=True)
    assert runner.cluster is not None and runner.cluster.address == cluster and not runner.standby  # no local standby
    long = _tiny(100_000, checkpoint_every=5, batch_size=64)
    runs = {name: store.create(cfg, name=name, quick=True)
            for name, cfg in (("K", long), ("S", long), ("T1", _tiny(3)), ("T2", _tiny(3)))}
    told = Story(store, runs)
    watching = threading.Event()

    def watch() -> None:  # the number of runs the status files say are running, as often as they can be read
        while not watching.is_set():
            with contextlib.suppress(OSError, ValueError):
                told.max_active = max(told.max_active, _active(store))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    k, s = store.run_dir(runs["K"]), store.run_dir(runs["S"])
    try:
        assert runner.poll() == [runs["K"], runs["S"]]  # oldest first, two slots
        # K is killed once it has a checkpoint and S trains beside it; S is stopped once it has one too.
        until(lambda: (k.checkpoint_step() or 0) >= 5 and s.metrics.exists(), "K to train and S to start", WAIT)
        from cnfm_core import rayjobs

        for run in (k, s):
            meta = json.loads((run.path / JOB_FILE).read_text())
            told.nodes.add(rayjobs.client(cluster).get_job_info(meta["job"]).driver_node_id)
        worker = _status(store, runs["K"])["pid"]
        assert "cnfm_core.worker" in Path(f"/proc/{worker}/cmdline").read_text()
        os.kill(worker, signal.SIGKILL)  # the Ray job's worker dies: Ray reports the job FAILED
        until(lambda: (s.checkpoint_step() or 0) >= 5, "S to train", WAIT)
        runner.stop(runs["S"])
        # A page is open meanwhile: its runner polls now and then (the finishing S polls too).
        until(lambda: _polled(runner, runs["K"]) == "failed", "K to fail", WAIT)
        until(lambda: store.info(runs["S"]).state in FINISHED, "S to stop", WAIT)
        told.killed, told.killed_step = store.info(runs["K"]).message, store.info(runs["K"]).step
        told.stopped, told.stopped_step = store.info(runs["S"]).state, store.info(runs["S"]).step
        store.request_resume(runs["K"], steps=told.killed_step + 10, quick=True)
        store.request_resume(runs["S"], steps=told.stopped_step + 5, quick=True)
        runner.poll()  # what the page does on Resume; no page polls from here: finishing workers move the queue
        until(lambda: all(store.info(r).state in FINISHED for r in runs.values()), "every run to finish", WAIT)
        yield told
    finally:
        watching.set()
        watcher.join()
        for run_id in runs.values():  # a failed test leaves no worker behind
            pid = _status(store, run_id).get("pid") or 0
            if store.info(run_id).state in ("running", "reporting") and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_queued_runs_finish_at_most_two_at_a_time(story):
    assert {name: story.store.info(run_id).state for name, run_id in story.runs.items()} == dict.fromkeys(
        story.runs, "done")
    assert story.max_active == 2  # two slots, both used, never more
    for run_id in story.runs.values():  # each ran as a Ray job, on either node
        assert (story.store.run_dir(run_id).path / JOB_FILE).exists()
    assert len(story.nodes) == 2  # one CPU per node: the two jobs that ran together ran on both nodes
    assert story.store.info(story.runs["T1"]).step == 3


def test_a_killed_worker_fails_its_run_with_rays_reason_and_resumes(story):
    assert "Ray job" in story.killed and "FAILED" in story.killed and "worker.log" in story.killed
    assert "\n" not in story.killed
    run = story.store.run_dir(story.runs["K"])
    assert story.killed_step >= 5  # the step of its checkpoint, where it resumes
    events = [rec for rec in run.read_metrics() if rec.get("event") == "resume"]
    assert [e["step"] for e in events] == [story.killed_step]
    assert story.store.info(story.runs["K"]).step == story.killed_step + 10


def test_stop_stops_a_ray_job_with_its_checkpoint(story):
    assert story.stopped == "stopped" and story.stopped_step >= 5
    assert story.store.info(story.runs["S"]).step == story.stopped_step + 5  # and resumes from there


def test_a_job_ray_no_longer_knows_fails_its_run(story, cluster):
    # What a dashboard started after the cluster was restarted finds: a running run whose Ray job is unknown.
    store = story.store
    run_id = store.create(_tiny(3), name="lost")
    run = store.run_dir(run_id)
    run.write_json(run.path / JOB_FILE, {"job": "raysubmit_gone", "address": cluster})
    run.write_json(run.status, {**_status(store, run_id), "state": "running", "pid": 0})
    assert store.info(run_id).state == "running"  # no PID here: a Ray job is known by its job file
    JobRunner(store, max_concurrent=2, threads=1, ray_address="").poll()  # even a runner of local processes asks Ray
    info = store.info(run_id)
    assert info.state == "failed" and "no longer knows" in info.message and cluster in info.message


# ---------------------------------------------------------------------------------------------
# Without a cluster


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("CNFM_RAY_ADDRESS", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          env={**clean, **(env or {})}, timeout=300)


def test_without_the_variable_nothing_imports_ray(tmp_path):
    code = """if True:
        import sys
        from cnfm_core.config import TrainConfig
        from cnfm_core.jobs import JobRunner, RunStore
        store = RunStore(sys.argv[1], demo_root=None)
        runner = JobRunner(store, max_concurrent=1, threads=1, standby=False)
        run_id = store.create(TrainConfig(data=sys.argv[2], steps=3))
        runner.stop(run_id)
        runner.poll()
        print(runner.cluster, store.info(run_id).state, [m for m in sys.modules if m.split(".")[0] == "ray"])
    """
    p = _python(code, str(tmp_path), str(DATA))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["None", "stopped", "[]"]


def test_ray_not_installed_says_so_in_one_line_and_loses_nothing(tmp_path):
    code = """if True:
        import json, sys
        sys.modules["ray"] = None  # as if ray were not installed
        from cnfm_core.config import TrainConfig
        from cnfm_core.jobs import JobRunner, RunStore
        store = RunStore(sys.argv[1], demo_root=None)
        run_id = store.create(TrainConfig(data=sys.argv[2], steps=3))
        run = store.run_dir(run_id)
        run.checkpoint.write_bytes(b"kept")
        run.write_json(run.status, {**json.loads(run.status.read_text()), "state": "stopped"})
        store.request_resume(run_id, steps=10)
        JobRunner(store, max_concurrent=1, threads=1).poll()
        print(json.dumps({"info": store.info(run_id).message, "kept": run.checkpoint.read_bytes().decode()}))
    """
    p = _python(code, str(tmp_path), str(DATA), env={"CNFM_RAY_ADDRESS": "auto"})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["kept"] == "kept"
    assert out["info"].startswith("could not start the worker: Ray is not installed")
    assert "requirements-ray.txt" in out["info"] and "\n" not in out["info"]


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_with_no_cluster_fails_the_job_naming_it(tmp_path, scheme):
    need_ray()
    address = f"{scheme}127.0.0.1:{bench_ray._free_port()}"  # nothing listens there
    store = RunStore(tmp_path, demo_root=None)
    run_id = store.create(_tiny(3), name="nowhere")
    assert JobRunner(store, threads=1, ray_address=address).poll() == []
    info = store.info(run_id)
    assert info.state == "failed" and f"no Ray cluster answers at {address}" in info.message
    assert "\n" not in info.message and not (store.run_dir(run_id).path / JOB_FILE).exists()
