"""Work in the background: a store of run directories and the one runner that starts every job.

A page (or any caller) asks the :class:`RunStore` for a job on a run: training a new run
(:meth:`~RunStore.create`), more training (:meth:`~RunStore.request_resume`, also the Train page's Step), or
the report or path frames of a trained run (:meth:`~RunStore.request_job`). Each writes ``request.json``
and a ``queued`` status. :meth:`JobRunner.poll` starts queued jobs, oldest first, while fewer than
``max_concurrent`` are active; each runs as ``python -m cnfm_core.worker DIR``, started by
:func:`cnfm_core.procs.launch` (a process in its own session, never a thread), with its output in
``DIR/worker.log``; or, with ``CNFM_RAY_ADDRESS`` set, as a job on a Ray cluster (:mod:`cnfm_core.rayjobs`).

The queue does not depend on a page being open: a worker that finishes polls the runner itself (under the
store's lock), so the next job starts then, and a new runner (the dashboard's, after a restart) polls when
it is made. A poll also ends jobs whose process is gone (killed, or the machine restarted): a process is
known by its PID and its start time, so a PID reused by another process does not count as a live worker.
Pages only read files, so any number of browser tabs can watch the same run, and runs started from the
CLI appear too.

The store also lists the bundled demo runs (``assets/demo/<name>``, made by ``scripts/make_demo_runs.py``) as
read-only runs with the ids ``demo-<name>`` and :attr:`RunInfo.demo` set: pages can show a trained density on
first open. Everything that writes to a run refuses a demo with a :class:`~cnfm_core.runs.RunError`. A run of
the user's own with the same id as a demo hides that demo. This module does not import torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import owners, rayjobs, standby
from .config import TrainConfig, choose_threads
from .procs import Process, alive, launch
from .runs import RunDir, RunError

__all__ = ["ACTIVE", "DEFAULT_DEMO_ROOT", "DEMO_PREFIX", "FINISHED", "JOBS", "JobRunner", "RunInfo", "RunStore",
           "valid_run_id"]

#: States of a run whose worker is (or should be) alive, and states it ends in.
ACTIVE = ("queued", "running", "reporting")
FINISHED = ("done", "stopped", "failed")
#: Jobs on a trained run that leave its state as it was: a report (and frames), or the path frames alone.
JOBS = ("report", "frames")
#: Environment variables a runner gives its workers, so that a finishing worker can poll the same queue.
SLOTS_ENV, THREADS_ENV, STANDBY_ENV = "CNFM_RUNNER_SLOTS", "CNFM_THREADS", "CNFM_STANDBY"
#: Why a job whose process is gone was ended by a poll.
GONE = ("the worker process (pid {pid}) ended without finishing; was it killed, or the server or machine "
        "restarted? Its output is in worker.log in the run folder")
#: Where the bundled demo runs live, and the prefix of their run ids (``demo-synthetic`` is ``assets/demo/synthetic``).
DEFAULT_DEMO_ROOT = Path(__file__).resolve().parents[1] / "assets" / "demo"
DEMO_PREFIX = "demo-"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,=+-]{0,63}$")


def valid_run_id(run_id: str) -> bool:
    """Run ids are plain names (they come from URLs): letters, digits, ``_ . , = + -``, at most 64."""
    return bool(_RUN_ID.match(run_id or "")) and ".." not in run_id


@dataclass(frozen=True)
class RunInfo:
    """A run as listed by the store (read from its files; nothing is loaded into torch)."""

    run_id: str
    state: str
    step: int
    steps: int | None
    minutes: float | None
    elapsed: float
    message: str
    data_name: str
    objective: str
    created: float
    config: dict[str, Any]
    queued: float = 0.0  # when it last entered the queue (orders the queue)
    job: str = ""  # what the last request asked for: train, resume, report or frames
    job_error: str = ""  # why the last report or frames job failed (the run's state is kept)
    stale: bool = False  # status.json says running or reporting, but its process is gone
    demo: bool = False  # a bundled demo run (read-only; see the module doc)


def _finish_job(run: RunDir, message: str) -> None:
    """End the run's current job with ``message``: a report or frames job restores the state the run had
    before it (with ``job_error``), anything else fails the run at its checkpoint's step."""
    status = run.read_json(run.status)
    request = run.read_json(run.request) if run.request.exists() else {}
    if request.get("action") in JOBS:
        before = request.get("previous") or {}
        status.update(state=before.get("state", "done"), message=before.get("message", ""), job_error=message)
    else:  # a training job: it shows the step its checkpoint holds, not one it did not keep
        status.update(state="failed", message=message, step=run.checkpoint_step() or status.get("step", 0))
    status["updated"] = time.time()
    run.write_json(run.status, status)


class RunStore:
    """The run directories under ``root`` (one folder per run id), and the read-only demo runs under
    ``demo_root`` (None: no demos)."""

    def __init__(self, root: str | os.PathLike[str], *,
                 demo_root: str | os.PathLike[str] | None = DEFAULT_DEMO_ROOT) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.demo_root = Path(demo_root) if demo_root is not None else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The store's lock (a file lock, so it holds across processes): queue changes happen under it."""
        with (self.root / ".jobs.lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def run_dir(self, run_id: str) -> RunDir:
        """The run's directory: under ``root``, or under ``demo_root`` for a demo run (read it only)."""
        if not valid_run_id(run_id):
            raise RunError(f"{run_id!r} is not a valid run id")
        return RunDir(self._demo_path(run_id) if self.is_demo(run_id) else self.root / run_id)

    def exists(self, run_id: str) -> bool:
        return valid_run_id(run_id) and ((self.root / run_id).is_dir() or self.is_demo(run_id))

    def _demo_path(self, run_id: str) -> Path:
        return (self.demo_root or self.root) / run_id.removeprefix(DEMO_PREFIX)

    def is_demo(self, run_id: str) -> bool:
        """Whether ``run_id`` names a bundled demo run (and no run of the user's own has that id)."""
        return (self.demo_root is not None and valid_run_id(run_id) and run_id.startswith(DEMO_PREFIX)
                and len(run_id) > len(DEMO_PREFIX) and self._demo_path(run_id).is_dir()
                and not (self.root / run_id).is_dir())

    def refuse_demo(self, run_id: str, what: str) -> None:
        """Raise a one-line :class:`RunError` when ``run_id`` is a demo run, which nothing may change."""
        if self.is_demo(run_id):
            raise RunError(f"{run_id} is a bundled demo run (read-only), so it cannot be {what}; "
                           "start a run of your own on the Train page")

    def create(self, config: TrainConfig, *, name: str = "run", quick: bool = False,
               owner_key: str | None = None) -> str:
        """Queue a new training run; returns its id. The config is validated first. ``quick``: see
        :meth:`request_resume`. ``owner_key``: the control key of the session that starts it (only its hash is
        kept; see :mod:`cnfm_core.owners`); None for a run with no owner.

        Any number of threads and processes may create runs at once: each id is claimed by an exclusive
        ``mkdir``, and an id that is taken is drawn again."""
        config.validate()
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:32] or "run"
        for _ in range(1000):
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{secrets.token_hex(4)}"
            run = self.run_dir(run_id)
            with contextlib.suppress(FileExistsError):  # a taken id: draw again
                run.path.mkdir(parents=True)  # exclusive: exactly one creator gets this id
                break
        else:
            raise RunError(f"could not find a free run id in {self.root}")
        if owner_key is not None:  # before the status, so the run is never seen without its owner
            owners.write_owner(run.path, owner_key)
        now = time.time()
        run.write_json(run.request, {"action": "train", "config": dataclasses.asdict(config), "quick": quick,
                                     "created": now})
        run.write_json(run.status, {"state": "queued", "step": 0, "steps": config.budget()[0],
                                    "minutes": config.minutes, "elapsed": 0.0, "message": "", "queued": now})
        return run_id

    def request_resume(self, run_id: str, *, steps: int | None = None, minutes: float | None = None,
                       quick: bool = False) -> None:
        """Queue more training for a finished or stopped run (new total budget).

        ``quick`` asks the worker for a coarse report and no path frames (step mode)."""
        self.refuse_demo(run_id, "trained further")
        run = self.run_dir(run_id)
        if not run.checkpoint.exists():
            raise RunError(f"run {run_id} has no checkpoint to resume from")
        with self.lock():
            info = self.info(run_id)
            if info.state in ACTIVE:
                raise RunError(f"run {run_id} is {info.state}; stop it before resuming")
            run.stop_request.unlink(missing_ok=True)
            run.write_json(run.request, {"action": "resume", "steps": steps, "minutes": minutes, "quick": quick,
                                         "created": time.time()})
            status = run.read_json(run.status)
            status.update(state="queued", message="", job_error="", queued=time.time(), steps=steps, minutes=minutes)
            run.write_json(run.status, status)

    def request_job(self, run_id: str, action: str) -> None:
        """Queue a job on a trained, idle run: ``"report"`` (report, then frames) or ``"frames"`` (the path
        frames). The run returns to its state when the job ends; a failure is kept as its ``job_error``."""
        if action not in JOBS:
            raise ValueError(f"unknown job {action!r}; known: {', '.join(JOBS)}")
        self.refuse_demo(run_id, f"given a new {action}")
        run = self.run_dir(run_id)
        if not run.checkpoint.exists():
            raise RunError(f"run {run_id} has no trained model")
        with self.lock():
            info = self.info(run_id)
            if info.state in ACTIVE:
                raise RunError(f"run {run_id} is {info.state}; its {action} is written when it finishes")
            run.write_json(run.request, {"action": action, "created": time.time(),
                                         "previous": {"state": info.state, "message": info.message}})
            status = run.read_json(run.status) if run.status.exists() else {}
            status.update(state="queued", message="", job_error="", queued=time.time())
            run.write_json(run.status, status)

    def request_cancel(self, run_id: str) -> None:
        """Ask a reporting run to skip the rest of its report (``cancel.request``, seen by the worker between
        evaluations): it ends done or stopped with what it has, and a ``report`` job can complete it later."""
        self.refuse_demo(run_id, "cancelled")
        run = self.run_dir(run_id)
        if (state := self.info(run_id).state) != "reporting":
            raise RunError(f"run {run_id} is {state}, not computing its report; there is nothing to cancel")
        run.cancel_request.touch()

    def delete(self, run_id: str) -> None:
        """Delete a run of the user's own that is not queued, training or reporting (its folder and files)."""
        self.refuse_demo(run_id, "deleted")
        run = self.run_dir(run_id)
        if not run.path.is_dir():
            raise RunError(f"there is no run {run_id}")
        with self.lock():
            info = self.info(run_id)
            if info.state in ACTIVE:
                raise RunError(f"run {run_id} is {info.state}; stop it before deleting it")
            shutil.rmtree(run.path)

    def info(self, run_id: str) -> RunInfo:
        """What the run's files say; a run whose files cannot be read is ``unreadable`` (never an exception)."""
        try:
            return self._info(run_id)
        except (RunError, OSError, ValueError, TypeError, AttributeError) as e:
            msg = " ".join(str(e).split())[:300]
            return RunInfo(run_id, "unreadable", 0, None, None, 0.0, msg, "", "", 0.0, {}, demo=self.is_demo(run_id))

    def _info(self, run_id: str) -> RunInfo:
        run = self.run_dir(run_id)
        status = run.read_json(run.status) if run.status.exists() else {"state": "unknown"}
        if run.config.exists():
            meta = run.read_json(run.config)
            config, data_name, created = meta.get("config", {}), meta.get("data_name", ""), meta.get("created", 0.0)
        elif run.request.exists():
            req = run.read_json(run.request)
            config = req.get("config", {})
            data_name, created = Path(config.get("data", "")).name, req.get("created", 0.0)
        else:
            config, data_name, created = {}, "", 0.0
        try:  # only says which job ran last: an unreadable request does not make the run unreadable
            job = run.read_json(run.request).get("action", "") if run.request.exists() else ""
        except RunError:
            job = ""
        state = status.get("state", "unknown")
        pid, started = int(status.get("pid") or 0), status.get("pid_start")  # a Ray job's: another machine's PID
        stale = state in ("running", "reporting") and not (rayjobs.submitted(run) or alive(pid, started))
        if stale:
            state, status["message"] = "failed", status.get("message") or "the worker process ended unexpectedly"
        return RunInfo(
            run_id=run_id, state=state, step=int(status.get("step") or 0), steps=status.get("steps"),
            minutes=status.get("minutes"), elapsed=float(status.get("elapsed") or 0.0),
            message=str(status.get("message") or ""), data_name=data_name,
            objective=str(config.get("objective", "")), created=float(created or 0.0), config=config,
            queued=float(status.get("queued") or created or 0.0), job=str(job),
            job_error=str(status.get("job_error") or ""), stale=stale, demo=self.is_demo(run_id),
        )

    def runs(self) -> list[RunInfo]:
        """All runs, the user's and the demos, newest first (folders without run files are ignored; unreadable
        ones are listed as such, and a run that does not say when it was made counts from its folder's
        modification time)."""
        folders = [(p, p.name) for p in self.root.iterdir()]
        if self.demo_root is not None and self.demo_root.is_dir():
            folders += [(p, DEMO_PREFIX + p.name) for p in sorted(self.demo_root.iterdir())
                        if self.is_demo(DEMO_PREFIX + p.name)]
        out = []
        for p, run_id in folders:
            if p.is_dir() and valid_run_id(run_id) and ((p / "status.json").exists() or (p / "config.json").exists()):
                info = self.info(run_id)
                if not info.created:
                    with contextlib.suppress(OSError):
                        info = dataclasses.replace(info, created=p.stat().st_mtime)
                out.append(info)
        return sorted(out, key=lambda r: r.created, reverse=True)


class JobRunner:
    """Starts queued jobs as worker processes, at most ``max_concurrent`` at a time (see the module doc)."""

    def __init__(self, store: RunStore, *, max_concurrent: int = 1, threads: int | None = None,
                 standby: bool = False, ray_address: str | None = None) -> None:
        self.store = store
        self.max_concurrent = max(1, int(max_concurrent))
        self.threads = threads or max(1, choose_threads(None) // self.max_concurrent)
        #: The Ray cluster jobs run on (``ray_address``, else ``CNFM_RAY_ADDRESS``); None: local processes.
        self.cluster = rayjobs.cluster(ray_address)
        #: Keep a warm worker waiting (cnfm_core/standby.py), so a job starts without importing torch.
        self.standby = standby and self.cluster is None

    @classmethod
    def of_worker(cls, store: RunStore) -> JobRunner | None:
        """The runner that started this process (from the environment it gave its worker), or None."""
        slots, threads = os.environ.get(SLOTS_ENV, ""), os.environ.get(THREADS_ENV, "")
        if not slots.isdigit():
            return None
        return cls(store, max_concurrent=int(slots), threads=int(threads) if threads.isdigit() else None,
                   standby=os.environ.get(STANDBY_ENV) == "1")

    def queue(self, infos: list[RunInfo] | None = None) -> list[str]:
        """Queued run ids in the order they will start (from ``infos`` when the caller has just read them)."""
        infos = self.store.runs() if infos is None else infos
        queued = (r for r in infos if r.state == "queued" and not r.demo)
        return [r.run_id for r in sorted(queued, key=lambda r: (r.queued, r.run_id))]

    def poll(self) -> list[str]:
        """End jobs whose process is gone, then start queued jobs while there is room; returns the ids started.

        Safe to call from any number of tabs and workers at once (it holds the store's lock)."""
        started = []
        with self.store.lock():
            infos, ended = self.store.runs(), set()
            for r in infos:
                if r.demo or not (r.stale or r.state in ("running", "reporting")):
                    continue
                run = self.store.run_dir(r.run_id)
                why = GONE.format(pid=run.read_json(run.status).get("pid")) if r.stale else rayjobs.gone(run)
                if why:
                    _finish_job(run, why)
                    ended.add(r.run_id)
            active = sum(r.state in ("running", "reporting") and not r.demo and r.run_id not in ended for r in infos)
            for run_id in self.queue(infos):
                if active >= self.max_concurrent:
                    break
                if self._start(run_id):
                    started.append(run_id)
                    active += 1
            if self.standby:
                self._keep_standby()
        return started

    def _env(self) -> dict[str, str]:
        """What a worker (or a standby) of this runner is started with."""
        return {THREADS_ENV: str(self.threads), "OMP_NUM_THREADS": str(self.threads),
                SLOTS_ENV: str(self.max_concurrent), STANDBY_ENV: "1" if self.standby else "0"}

    def _keep_standby(self) -> None:
        with contextlib.suppress(OSError):  # no standby: jobs start cold, as without one
            standby.ensure(self.store.root, threads=self.threads, slots=self.max_concurrent, env=self._env())

    def _start(self, run_id: str) -> bool:
        """Start the worker of a queued job and mark it running; False if no process could be started."""
        run = self.store.run_dir(run_id)
        request = run.read_json(run.request) if run.request.exists() else {}
        rayjobs.forget(run)  # a Ray job of an earlier start no longer speaks for the run
        proc = self._warm_worker(run)
        if proc is None:
            try:
                if self.cluster is not None:  # a Ray job, known by its submission id (cnfm_core/rayjobs.py)
                    self.cluster.start(run, threads=self.threads, env=self._env())
                else:
                    proc = launch("cnfm_core.worker", [str(run.path)], log=run.worker_log, env=self._env())
            except OSError as e:  # no process to wait for: the job ends here, with the reason
                _finish_job(run, f"could not start the worker: {e}")
                return False
        status = run.read_json(run.status)
        status.update(state="reporting" if request.get("action") in JOBS else "running",
                      **({"pid": proc.pid, "pid_start": proc.start} if proc else {}), message="", updated=time.time())
        run.write_json(run.status, status)
        return True

    def _warm_worker(self, run: RunDir) -> Process | None:
        """The standby that now does the job of ``run``, or None when there is none ready (start a cold one)."""
        if not self.standby:
            return None
        ready, _ = standby.find(self.store.root, threads=self.threads, slots=self.max_concurrent)
        return ready.process if ready is not None and standby.claim(ready, run.path) else None

    def stop(self, run_id: str) -> None:
        """Stop a run: a queued one is cancelled; a running one finds ``stop.request`` at its next step and
        ends with a checkpoint and a report (a file, not a signal, so a worker still starting up sees it too).
        A queued report or frames job is cancelled and the run keeps its state. A demo run is refused."""
        self.store.refuse_demo(run_id, "stopped")
        run = self.store.run_dir(run_id)
        with self.store.lock():
            status = run.read_json(run.status)
            state = status.get("state")
            job = run.read_json(run.request).get("action") if run.request.exists() else None
            if state == "queued" and job in JOBS:
                _finish_job(run, f"the {job} job was cancelled before it started")
            elif state == "queued":
                status.update(state="stopped", message="cancelled before it started")
                run.write_json(run.status, status)
            elif state in ("running", "reporting"):
                run.stop_request.touch()
