"""How much later a job starts on Ray than as a local process: seconds from the queue to the first training step.

    python bench/bench_ray.py [--ray ADDRESS] [--repeats 5] [--steps 2]

Each repeat queues one quick job of ``--steps`` steps (the default model, as a Step of the Train page) twice, one
after the other: started by a :class:`~cnfm_core.jobs.JobRunner` of local processes (cold, no warm worker:
``python -m cnfm_core.worker`` imports torch first) and by one whose jobs run on Ray (``cnfm_core/rayjobs.py``). For
each it records, from ``RunStore.create``: the poll that started it (status ``running``; for Ray this includes the
submission), the worker's ``start`` event (imports done, training begins) and the first training step in
``metrics.jsonl`` (polled every 20 ms). Without ``--ray`` a local cluster (one head with the job server and two
CPUs) is started for the measurement and ended after it. Prints a markdown table, medians last; the target is a
Ray job starting at most 5 s after a local process.

:func:`local_cluster` (a Ray cluster of one or more nodes on this machine, ended by its process groups) is also
what ``tests/test_ray.py`` runs its cluster with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cnfm_core import rayjobs  # noqa: E402
from cnfm_core.config import TrainConfig  # noqa: E402
from cnfm_core.jobs import FINISHED, JobRunner, RunStore  # noqa: E402

__all__ = ["local_cluster", "main"]

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait(what: object, why: str, timeout: float) -> None:
    t_end = time.monotonic() + timeout
    while not what():  # type: ignore[operator]
        if time.monotonic() > t_end:
            raise TimeoutError(f"waited {timeout:.0f} s for {why}")
        time.sleep(0.1)


def _job_server(address: str) -> bool:
    try:
        rayjobs.client(address)
    except rayjobs.RayUnavailable:
        return False
    return True


@contextlib.contextmanager
def local_cluster(cpus: tuple[int, ...] = (2,), *, timeout: float = 240.0) -> Iterator[str]:
    """A Ray cluster on this machine: a head with the job server and ``cpus[0]`` CPUs, then one more node per
    further entry; its address (``127.0.0.1:PORT``) once the job server answers. Every port is a free one (another
    cluster may run here), and each ``ray start`` runs in its own session, whose processes are killed at the end
    (never ``ray stop``, which would end every cluster of this machine)."""
    if not RAY.exists():
        raise RuntimeError("ray is not installed: pip install -r requirements-ray.txt (or bash scripts/setup.sh --ray)")
    temp = Path(tempfile.mkdtemp(prefix="cnfm-ray-", dir="/tmp"))  # short: Ray's socket paths must stay short
    port = _free_port()
    address = f"127.0.0.1:{port}"

    def start(cpu: int, *where: str) -> int:
        cmd = [str(RAY), "start", *where, "--num-cpus", str(cpu), "--disable-usage-stats", "--temp-dir", str(temp),
               "--dashboard-agent-listen-port", str(_free_port())]
        with (temp / "start.log").open("a") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True).pid

    groups = [start(cpus[0], "--head", "--port", str(port), "--dashboard-port", str(_free_port()),
                    "--include-dashboard", "true", "--ray-client-server-port", str(_free_port()))]
    try:
        _wait(lambda: _answers(port), "the head's GCS port", timeout)
        groups += [start(cpu, "--address", address) for cpu in cpus[1:]]  # they join while the job server starts
        _wait(lambda: _job_server(address), f"the job server of the cluster at {address}", timeout)
        yield address
    finally:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _first(run_dir: Path, test: object) -> bool:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return False
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            if test(json.loads(line)):  # type: ignore[operator]
                return True
    return False


def _job(store: RunStore, runner: JobRunner, steps: int, name: str) -> dict[str, float]:
    """Seconds from the queue to: the runner's poll done (running), the worker's start event, the first step."""
    config = TrainConfig(data=str(REPO / "assets" / "synthetic_mixture.csv"), steps=steps, eval_every=10**6,
                         log_every=1)
    t0 = time.perf_counter()
    run_id = store.create(config, name=name, quick=True)
    runner.poll()
    out = {"running": time.perf_counter() - t0}
    run = store.run_dir(run_id).path
    while "step" not in out:
        if "start" not in out and _first(run, lambda r: r.get("event") in ("start", "resume")):
            out["start"] = time.perf_counter() - t0
        if _first(run, lambda r: "loss" in r):
            out["step"] = time.perf_counter() - t0
            out.setdefault("start", out["step"])
        elif store.info(run_id).state in FINISHED:
            raise SystemExit(f"{run_id}: {store.info(run_id).state}: {store.info(run_id).message}")
        time.sleep(0.02)
    while store.info(run_id).state not in FINISHED:  # the next repeat starts on an idle machine
        time.sleep(0.05)
    return out


def _row(label: str, values: list[float]) -> str:
    return f"| {label} | " + ", ".join(f"{v:.1f}" for v in values) + f" | {statistics.median(values):.1f} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ray", help="address of a running cluster (default: start a local one for the measurement)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (and Ray CPUs) per job")
    a = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    store = RunStore(root, demo_root=None)
    times: dict[str, list[dict[str, float]]] = {"local process": [], "Ray job": []}
    t_cluster = time.perf_counter()
    with contextlib.ExitStack() as stack:
        address = a.ray or stack.enter_context(local_cluster((max(2, a.threads),)))
        cluster_s = time.perf_counter() - t_cluster
        runners = {"local process": JobRunner(store, threads=a.threads, ray_address=""),
                   "Ray job": JobRunner(store, threads=a.threads, ray_address=address)}
        for r in range(a.repeats):
            for label, runner in runners.items():
                times[label].append(_job(store, runner, a.steps, f"{label.split()[0].lower()}{r}"))
    shutil.rmtree(root, ignore_errors=True)
    print(f"`python bench/bench_ray.py {' '.join(argv if argv is not None else sys.argv[1:])}` · {os.cpu_count()} "
          f"cores · {a.repeats} repeats · cluster {a.ray or f'started here in {cluster_s:.1f} s'}\n")
    print("| seconds from the queue to | values | median |\n|---|---|---|")
    for key, what in (("running", "status running (the poll)"), ("start", "training starts (imports done)"),
                      ("step", "first step written")):
        for label in times:
            print(_row(f"{what}, {label}", [t[key] for t in times[label]]))
    later = statistics.median(t["step"] for t in times["Ray job"]) - statistics.median(
        t["step"] for t in times["local process"])
    print(f"\nA Ray job's first step comes {later:.1f} s after a local process's (median; target at most 5 s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
