"""A warm worker: one process per run store that has already imported torch and waits for the next job.

A worker spends its first seconds importing torch, torch._dynamo (the optimizer loads it), geoopt and
torchdiffeq: about 4 s on an idle 2-core machine and 10 s or more on a busy one, before it trains a
single step. That is most of a Step (+50 steps) and of the wait for the first live picture. So a runner
that keeps a standby (``JobRunner(standby=True)``, the dashboard's) starts one
``python -m cnfm_core.worker --standby STORE`` ahead of time; when a job is due, the runner hands it the run
folder instead of starting a cold worker, and starts the next standby.

The hand-over happens through files in ``STORE/.standby/`` (``ID`` is ``PID-STARTTIME``, so a reused PID
is never mistaken for the standby; see :mod:`cnfm_core.procs`):

* ``ID.starting``: written by the runner as it launches the standby (so that it launches only one);
* ``ID.ready``: the standby's settings (threads, slots), put in place of ``.starting`` once it has imported
  everything;
* ``ID.job``: the run folder, written by the runner (under the store's lock) when it claims the standby,
  which then removes ``ID.ready``. The standby takes the job, sends its output to the run's
  ``worker.log`` and becomes that run's worker; it does one job and exits, as a cold worker does.

A standby waits ``CNFM_STANDBY_DELAY`` seconds (default 10) before it imports anything heavy
(:func:`settle`): the dashboard's first page view starts the first standby, and its imports (seconds of CPU)
would otherwise compete with the browser drawing that page. A job that comes sooner starts a cold worker.

A standby with nothing to do for ``idle_s`` seconds (``CNFM_STANDBY_IDLE``, default 600) removes its
``.ready`` under the store's lock (unless a job arrived first) and exits; so does one whose files were
removed or whose store is gone. Files of a standby that died are removed by the next runner that looks.
This module does not import torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from .procs import Process, alive, launch, start_time
from .runs import RunDir, atomic_write

__all__ = ["DELAY_ENV", "IDLE_ENV", "STANDBY_DIR", "Standby", "claim", "ensure", "find", "serve", "settle"]

STANDBY_DIR = ".standby"
#: Seconds an unused standby waits before it exits (the environment may set it; default 600).
IDLE_ENV, DEFAULT_IDLE_S = "CNFM_STANDBY_IDLE", 600.0
#: How often a waiting standby looks for its job file.
POLL_S = 0.05
#: Seconds a new standby waits before its imports (the environment may set it; default 10).
DELAY_ENV, DEFAULT_DELAY_S = "CNFM_STANDBY_DELAY", 10.0


@dataclass(frozen=True)
class Standby:
    """A standby worker that is ready: its process and the runner settings it was started with."""

    pid: int
    start: int | None
    threads: int
    slots: int
    path: Path  # its ``.ready`` file

    @property
    def process(self) -> Process:
        return Process(self.pid, self.start)


def _folder(root: Path) -> Path:
    return Path(root) / STANDBY_DIR


def _ident(pid: int, start: int | None) -> str:
    return f"{pid}-{start if start is not None else 'x'}"


def _parse(name: str) -> tuple[int, int | None] | None:
    pid, _, start = name.partition("-")
    if not pid.isdigit() or not (start.isdigit() or start == "x"):
        return None
    return int(pid), int(start) if start.isdigit() else None


def _live(path: Path) -> tuple[int, int | None] | None:
    """The process a standby file names, if it still runs; otherwise the file is removed and None returned."""
    ident = _parse(path.stem)
    if ident is not None and alive(*ident):
        return ident
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def find(root: Path, *, threads: int, slots: int) -> tuple[Standby | None, bool]:
    """The ready standby of the store ``root`` started with these settings (None if there is none), and
    whether one is still starting. Files of dead standbys are removed on the way. Call under the store's lock."""
    folder = _folder(root)
    if not folder.is_dir():
        return None, False
    starting, found = False, None
    for path in sorted(folder.glob("*.starting")):
        starting = starting or _live(path) is not None
    for path in sorted(folder.glob("*.ready")):
        ident = _live(path)
        if ident is None or found is not None:
            continue
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("threads") == threads and meta.get("slots") == slots:
            found = Standby(ident[0], ident[1], threads, slots, path)
    for path in folder.glob("*.job"):  # a job nobody took: its standby died
        _live(path)
    return found, starting


def claim(standby: Standby, run_dir: Path) -> bool:
    """Hand the job of ``run_dir`` to ``standby`` (call under the store's lock); False if it is gone."""
    if not standby.path.exists() or not alive(standby.pid, standby.start):
        return False
    atomic_write(standby.path.with_suffix(".job"), json.dumps({"run_dir": str(run_dir)}).encode())
    standby.path.unlink(missing_ok=True)
    return True


def ensure(root: Path, *, threads: int, slots: int, env: dict[str, str]) -> Process | None:
    """Start a standby for the store ``root`` unless one is ready or starting (call under the store's lock);
    the new process, or None. ``env`` is what the runner gives its workers."""
    ready, starting = find(root, threads=threads, slots=slots)
    if ready is not None or starting:
        return None
    folder = _folder(root)
    folder.mkdir(exist_ok=True)
    proc = launch("cnfm_core.worker", ["--standby", str(root)], log=folder / "standby.log",
                  env={**env, IDLE_ENV: os.environ.get(IDLE_ENV, str(DEFAULT_IDLE_S))})
    settings = json.dumps({"threads": threads, "slots": slots}).encode()
    atomic_write(folder / f"{_ident(proc.pid, proc.start)}.starting", settings)  # .ready will say the same
    return proc


def settle(root: str | os.PathLike[str]) -> None:
    """Wait ``CNFM_STANDBY_DELAY`` seconds before the standby's imports; end the process at once if its store
    or its ``.starting`` file goes away meanwhile (then no runner will hand it a job)."""
    try:
        delay = float(os.environ.get(DELAY_ENV, DEFAULT_DELAY_S))
    except ValueError:
        delay = DEFAULT_DELAY_S
    pid = os.getpid()
    starting = _folder(Path(root)) / f"{_ident(pid, start_time(pid))}.starting"
    t_end = time.monotonic() + delay
    while time.monotonic() < t_end:
        time.sleep(min(0.5, max(0.0, t_end - time.monotonic())))
        if not starting.exists():
            sys.exit(0)


def _redirect_output(log: Path) -> None:
    """From now on this process writes its output to ``log`` (appended), as a cold worker does."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def serve(root: str | os.PathLike[str], job: Callable[[str], int],
          lock: Callable[[], AbstractContextManager[object]], *, idle_s: float | None = None) -> int:
    """The standby's life (in the worker process, after its imports): announce readiness, wait for a job,
    do it with ``job(run_dir)``; or exit after ``idle_s`` seconds without one. ``lock`` is the store's lock."""
    root = Path(root)
    if idle_s is None:
        try:
            idle_s = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S))
        except ValueError:
            idle_s = DEFAULT_IDLE_S
    pid = os.getpid()
    ident = _ident(pid, start_time(pid))
    folder = _folder(root)
    ready, job_file = folder / f"{ident}.ready", folder / f"{ident}.job"
    quit_now: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: quit_now.append(1))  # while idle, a SIGTERM just ends it
    starting = folder / f"{ident}.starting"
    try:  # the settings its runner wrote as it started this process
        settings = starting.read_bytes()
    except OSError:  # started by hand, or its files were removed: no runner will hand it a job
        return 0
    atomic_write(ready, settings)
    starting.unlink(missing_ok=True)
    t_end = time.monotonic() + idle_s
    while True:
        if job_file.exists():
            return _take(job_file, job)
        expired = time.monotonic() > t_end or quit_now or not ready.exists() or not root.is_dir()
        if expired:
            try:
                with lock():
                    if job_file.exists():  # claimed just now: the job comes first
                        return _take(job_file, job)
                    ready.unlink(missing_ok=True)
            except OSError:  # the store is gone
                pass
            return 0
        time.sleep(POLL_S)


def _take(job_file: Path, job: Callable[[str], int]) -> int:
    run_dir = str(json.loads(job_file.read_text())["run_dir"])
    job_file.unlink(missing_ok=True)
    _redirect_output(RunDir(run_dir).worker_log)
    return job(run_dir)
