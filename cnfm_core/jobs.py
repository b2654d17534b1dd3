"""Runs in the background: a store of run directories and a runner that starts worker processes.

A page (or any caller) asks the :class:`RunStore` for a new run, which writes
``request.json`` and a ``queued`` status. :meth:`JobRunner.poll` starts queued runs, oldest
first, while fewer than ``max_concurrent`` are active; each runs as ``python -m
cnfm_core.worker DIR`` in its own process group (``subprocess.Popen``, never a thread or a
multiprocessing spawn), with its output in ``DIR/worker.log``. Pages only read files, so any
number of browser tabs can watch the same run, and runs started from the CLI appear too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import TrainConfig, choose_threads
from .runs import RunDir, RunError

__all__ = ["ACTIVE", "FINISHED", "JobRunner", "RunInfo", "RunStore", "valid_run_id"]

#: States of a run whose worker is (or should be) alive, and states it ends in.
ACTIVE = ("queued", "running", "reporting")
FINISHED = ("done", "stopped", "failed")
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


def _alive(pid: int) -> bool:
    """Whether a process exists; reaps it first if it is our finished child (no zombies)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """The run directories under ``root`` (one folder per run id)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def run_dir(self, run_id: str) -> RunDir:
        if not valid_run_id(run_id):
            raise RunError(f"{run_id!r} is not a valid run id")
        return RunDir(self.root / run_id)

    def exists(self, run_id: str) -> bool:
        return valid_run_id(run_id) and (self.root / run_id).is_dir()

    def create(self, config: TrainConfig, *, name: str = "run", quick: bool = False) -> str:
        """Queue a new training run; returns its id. The config is validated first. ``quick``: see
        :meth:`request_resume`."""
        config.validate()
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:32] or "run"
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{secrets.token_hex(2)}"
        run = self.run_dir(run_id)
        run.path.mkdir(parents=True)
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
        run = self.run_dir(run_id)
        if not run.checkpoint.exists():
            raise RunError(f"run {run_id} has no checkpoint to resume from")
        info = self.info(run_id)
        if info.state in ACTIVE:
            raise RunError(f"run {run_id} is {info.state}; stop it before resuming")
        run.stop_request.unlink(missing_ok=True)
        run.write_json(run.request, {"action": "resume", "steps": steps, "minutes": minutes, "quick": quick,
                                     "created": time.time()})
        status = run.read_json(run.status)
        status.update(state="queued", message="", queued=time.time(), steps=steps, minutes=minutes)
        run.write_json(run.status, status)

    def info(self, run_id: str) -> RunInfo:
        """What the run's files say; a run whose files cannot be read is ``unreadable`` (never an exception)."""
        try:
            return self._info(run_id)
        except (RunError, OSError, ValueError, TypeError, AttributeError) as e:
            msg = " ".join(str(e).split())[:300]
            return RunInfo(run_id, "unreadable", 0, None, None, 0.0, msg, "", "", 0.0, {})

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
        state = status.get("state", "unknown")
        pid = int(status.get("pid") or 0)
        if state in ("running", "reporting") and not _alive(pid):
            state, status["message"] = "failed", status.get("message") or "the worker process ended unexpectedly"
        return RunInfo(
            run_id=run_id, state=state, step=int(status.get("step") or 0), steps=status.get("steps"),
            minutes=status.get("minutes"), elapsed=float(status.get("elapsed") or 0.0),
            message=str(status.get("message") or ""), data_name=data_name,
            objective=str(config.get("objective", "")), created=float(created or 0.0), config=config,
            queued=float(status.get("queued") or created or 0.0),
        )

    def runs(self) -> list[RunInfo]:
        """All runs, newest first (folders without run files are ignored; unreadable ones are listed as such)."""
        out = []
        for p in self.root.iterdir():
            if p.is_dir() and valid_run_id(p.name) and ((p / "status.json").exists() or (p / "config.json").exists()):
                out.append(self.info(p.name))
        return sorted(out, key=lambda r: r.created, reverse=True)


class JobRunner:
    """Starts queued runs as worker processes, at most ``max_concurrent`` at a time."""

    def __init__(self, store: RunStore, *, max_concurrent: int = 1, threads: int | None = None) -> None:
        self.store = store
        self.max_concurrent = max(1, int(max_concurrent))
        self.threads = threads or max(1, choose_threads(None) // self.max_concurrent)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with (self.store.root / ".jobs.lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def queue(self, infos: list[RunInfo] | None = None) -> list[str]:
        """Queued run ids in the order they will start (from ``infos`` when the caller has just read them)."""
        infos = self.store.runs() if infos is None else infos
        return [r.run_id for r in sorted((r for r in infos if r.state == "queued"), key=lambda r: (r.queued, r.run_id))]

    def poll(self) -> list[str]:
        """Start queued runs while there is room; returns the ids started. Safe to call from many tabs."""
        started = []
        with self._lock():
            infos = self.store.runs()
            active = sum(1 for r in infos if r.state in ("running", "reporting"))
            for run_id in self.queue(infos):
                if active >= self.max_concurrent:
                    break
                self._start(run_id)
                started.append(run_id)
                active += 1
        return started

    def _start(self, run_id: str) -> None:
        run = self.store.run_dir(run_id)
        env = {**os.environ, "CNFM_THREADS": str(self.threads), "OMP_NUM_THREADS": str(self.threads)}
        with run.worker_log.open("a") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cnfm_core.worker", str(run.path)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        status = run.read_json(run.status)
        status.update(state="running", pid=proc.pid, message="", updated=time.time())
        run.write_json(run.status, status)

    def stop(self, run_id: str) -> None:
        """Stop a run: a queued one is cancelled; a running one finds ``stop.request`` at its next step and
        ends with a checkpoint and a report (a file, not a signal, so a worker still starting up sees it too)."""
        run = self.store.run_dir(run_id)
        with self._lock():
            status = run.read_json(run.status)
            state = status.get("state")
            if state == "queued":
                status.update(state="stopped", message="cancelled before it started")
                run.write_json(run.status, status)
            elif state in ("running", "reporting"):
                run.stop_request.touch()

