"""Jobs on a Ray cluster: the job runner's workers started as Ray jobs instead of local processes.

With ``CNFM_RAY_ADDRESS`` set (``auto``, ``HOST:PORT`` of the head, ``ray://HOST:10001`` or the job server's
``http://HOST:8265``), :class:`cnfm_core.jobs.JobRunner` hands each job it starts to :class:`RayCluster`: the
same ``python -m cnfm_core.worker RUN_DIR`` that runs locally, submitted through Ray's job API
(``ray.job_submission``, from ``ray[default]``; ``requirements-ray.txt``) with ``entrypoint_num_cpus`` = the
runner's threads and, for a run whose device is ``cuda``, ``entrypoint_num_gpus`` = 1. The queue stays the
runner's (at most ``max_concurrent`` jobs of a store at a time); Ray chooses the node.

The run store is on a filesystem every node sees at the same path (NFS or the like, with file locks), and the
code and its venv are at the same path on every node too (docs/scaling.md): the worker writes the run folder as it
does locally, its output goes to ``worker.log`` there, pages read it, Stop is the same ``stop.request`` file, and a
finishing worker polls the runner (this module again) so the queue moves with no page open.

A Ray job is known by its submission id, kept with the cluster's address in ``DIR/ray_job.json`` (:data:`JOB_FILE`,
beside ``status.json``, which the training loop rewrites whole), so any runner (a restarted dashboard, a worker on
another node) can ask Ray whether it still lives instead of looking for a PID of another machine: a job Ray
reports ``FAILED`` or ``STOPPED``, one that ended while the run still says it is running, and one Ray no longer
knows end the run as a dead PID does locally (:func:`gone`): failed at its checkpoint's step, with the reason, and
resumable from there. A cluster that cannot be reached leaves the run as it is (nothing is known about it).

Ray is imported only here, only when a job is started or checked, so pages stay light; a failure to reach the
cluster, or Ray not installed, is :class:`RayUnavailable`, one line naming the address.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import OPENMP_ENV
from .runs import RunDir, RunError

__all__ = ["ADDRESS_ENV", "JOB_FILE", "LIVE", "RayCluster", "RayUnavailable", "client", "cluster", "entrypoint",
           "forget", "gone", "job_state", "stop", "submit", "submitted"]

#: The environment variable that names the cluster; unset or empty: jobs are local processes.
ADDRESS_ENV = "CNFM_RAY_ADDRESS"
#: The file in a run folder that names the run's Ray job while it has one: submission id and cluster address.
JOB_FILE = "ray_job.json"
#: The repository every node has at the same path (the entrypoint starts there).
REPO = Path(__file__).resolve().parents[1]
#: Seconds to wait for the cluster's port before calling it unreachable (Ray itself waits 40 s and more).
CONNECT_S = 3.0
#: Ray job states in which the worker still runs, or will.
LIVE = ("PENDING", "RUNNING")
INSTALL = "Ray is not installed: pip install -r requirements-ray.txt (or bash scripts/setup.sh --ray)"
_CLIENTS: dict[str, Any] = {}  # one job-API client per address and process


class RayUnavailable(OSError):
    """The cluster cannot take or tell about a job (not installed, not reachable, refused), in one line."""


def _one_line(e: BaseException) -> str:
    return (" ".join(str(e).split()) or type(e).__name__)[:300]


def _endpoint(address: str) -> tuple[str, int] | None:
    """The host and port an address names (``auto``: the cluster this machine runs or joined), or None."""
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address  # what ray.init("auto") reads

        try:
            address = canonicalize_bootstrap_address("auto") or ""
        except (ConnectionError, ValueError):
            return None
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        return (parts.hostname, parts.port or (8265 if parts.scheme.startswith("http") else 6379)) \
            if parts.hostname else None
    except ValueError:  # a port that is not a number
        return None


def client(address: str) -> Any:
    """The job-API client for ``address`` (made once per process); :class:`RayUnavailable` when there is none.

    The cluster's port is tried first with a short timeout: Ray's own client waits 40 s on a dead address."""
    if address in _CLIENTS:
        return _CLIENTS[address]
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise RayUnavailable(f"{INSTALL} (asked for the cluster at {address})") from None
    endpoint = _endpoint(address)
    if endpoint is None:
        raise RayUnavailable(f"no Ray cluster found at {address}: no cluster runs here, or the address is not "
                             "auto, HOST:PORT, ray://HOST:PORT or http://HOST:PORT")
    try:
        socket.create_connection(endpoint, timeout=CONNECT_S).close()
    except OSError as e:
        raise RayUnavailable(f"no Ray cluster answers at {address}: {_one_line(e)}") from None
    try:
        made = JobSubmissionClient(address)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError or its own RpcError
        raise RayUnavailable(f"the Ray cluster at {address} does not take jobs: {_one_line(e)}") from None
    _CLIENTS[address] = made
    return made


def submit(address: str, line: str, *, cpus: float, gpus: float = 0, name: str = "") -> str:
    """Run the shell line ``line`` as a Ray job on the cluster at ``address`` with ``cpus`` CPUs and ``gpus`` GPUs
    reserved for it; its submission id. :class:`RayUnavailable` if the cluster does not take it."""
    api = client(address)
    try:
        return str(api.submit_job(entrypoint=line, entrypoint_num_cpus=cpus, entrypoint_num_gpus=gpus or None,
                                     metadata={"cnfm": name}))
    except Exception as e:  # an HTTP failure (RuntimeError) or a lost connection
        _CLIENTS.pop(address, None)
        raise RayUnavailable(f"the Ray cluster at {address} refused the job: {_one_line(e)}") from None


def job_state(address: str, job: str) -> tuple[str, str]:
    """A Ray job's state (``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``STOPPED``, or ``UNKNOWN`` for a job
    the cluster does not know: its head was restarted) and Ray's message, as Ray wrote it (a failed job's ends with
    the last lines of its output). :class:`RayUnavailable` when the cluster cannot be asked now."""
    try:
        info = client(address).get_job_info(job)
    except RayUnavailable:
        raise
    except Exception as e:  # Ray answers 404 for a job it does not know; anything else: ask again later
        if "404" in str(e):
            return "UNKNOWN", f"the Ray cluster at {address} does not know job {job}"
        _CLIENTS.pop(address, None)
        raise RayUnavailable(f"the Ray cluster at {address} did not answer: {_one_line(e)}") from None
    return str(getattr(info.status, "value", info.status)), str(info.message or "")


def stop(address: str, job: str) -> None:
    """Ask Ray to stop a job (SIGTERM to its processes, SIGKILL a few seconds later); nothing if it cannot be asked."""
    try:
        client(address).stop_job(job)
    except (RayUnavailable, RuntimeError, ConnectionError):
        pass


def _wants_gpu(run: RunDir) -> bool:
    """Whether the run's config asks for ``cuda`` (a new run's request carries it; later jobs read config.json)."""
    try:
        request = run.read_json(run.request) if run.request.exists() else {}
        config = request.get("config") or (run.read_json(run.config).get("config", {}) if run.config.exists() else {})
    except RunError:
        return False
    return isinstance(config, dict) and config.get("device") == "cuda"


def entrypoint(run: RunDir, env: dict[str, str]) -> str:
    """The shell line a Ray job runs: the worker of ``run``, with ``env``, its output appended to ``worker.log``.

    >>> print(entrypoint(RunDir("/srv/runs/r1"), {"CNFM_THREADS": "2"}).replace(sys.executable, "PY"))
    export CNFM_THREADS=2; cd ... && exec PY -m cnfm_core.worker /srv/runs/r1 >> /srv/runs/r1/worker.log 2>&1
    """
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    path = run.path.absolute()
    return (f"export {exports}; cd {shlex.quote(str(REPO))} && exec {shlex.quote(sys.executable)} -m cnfm_core.worker "
            f"{shlex.quote(str(path))} >> {shlex.quote(str(path / run.worker_log.name))} 2>&1")


@dataclass(frozen=True)
class RayCluster:
    """Where a :class:`~cnfm_core.jobs.JobRunner` starts its workers when ``CNFM_RAY_ADDRESS`` is set."""

    address: str

    def start(self, run: RunDir, *, threads: int, env: dict[str, str]) -> str:
        """Submit the worker of ``run`` (``env``: what the runner gives its workers) and write :data:`JOB_FILE`;
        the job's submission id. :class:`RayUnavailable` if it cannot be submitted."""
        env = {**OPENMP_ENV, **env, ADDRESS_ENV: self.address}  # its own poll, as it exits, goes to Ray too
        job = submit(self.address, entrypoint(run, env), cpus=threads, gpus=1 if _wants_gpu(run) else 0,
                     name=run.path.name)
        try:
            run.write_json(run.path / JOB_FILE, {"job": job, "address": self.address})
        except OSError:  # a job nobody could ask about would run unseen: it does not run
            stop(self.address, job)
            raise
        return job


def cluster(address: str | None = None) -> RayCluster | None:
    """The cluster named by ``address``, else by ``CNFM_RAY_ADDRESS``; None (local processes) when neither is set."""
    address = (os.environ.get(ADDRESS_ENV, "") if address is None else address).strip()
    return RayCluster(address) if address else None


def submitted(run: RunDir) -> bool:
    """Whether the run's current job is a Ray job (then its PID, another machine's, says nothing here)."""
    return (run.path / JOB_FILE).exists()


def forget(run: RunDir) -> None:
    """Forget the Ray job of an earlier start (the runner calls this as it starts the next job of ``run``)."""
    (run.path / JOB_FILE).unlink(missing_ok=True)


def gone(run: RunDir) -> str | None:
    """Why the Ray job of a run whose status says running is no more (a one-line reason), or None: it lives,
    the run's job is not a Ray job, or the cluster cannot be asked now."""
    try:
        meta = run.read_json(run.path / JOB_FILE) if submitted(run) else {}
    except RunError:
        meta = {}
    job, address = meta.get("job"), str(meta.get("address") or "")
    if not job:
        return None
    try:
        state, message = job_state(address, job)
    except RayUnavailable:
        return None
    if state in LIVE:
        return None
    if state == "UNKNOWN":
        return (f"the Ray cluster at {address} no longer knows the run's job {job} (was the cluster restarted?); "
                "its output is in worker.log in the run folder")
    why = _one_line(message.split(", last available logs")[0]) or "no reason given"  # the logs are in worker.log
    return (f"the Ray job {job} ({address}) ended {state} without finishing ({why}); was its worker killed or its "
            "node lost? Its output is in worker.log in the run folder")
