"""Background processes: the one function that starts them, and a liveness check that survives PID reuse.

Every background job of the dashboard and the job runner (training, Step, reports, path frames) is
started by :func:`launch`: ``python -m MODULE ARGS`` in its own session (so closing the dashboard does not
stop it), with its output appended to a log file. A process is identified by its PID *and* its start time
(field 22 of ``/proc/PID/stat``, in clock ticks since boot), so a PID the kernel has given to another
process since is not mistaken for a live worker.

>>> me = os.getpid()
>>> alive(me, start_time(me)), alive(me, -1 if start_time(me) is not None else None)
(True, False)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import OPENMP_ENV

__all__ = ["Process", "alive", "launch", "start_time"]


@dataclass(frozen=True)
class Process:
    """A started process: its PID and its start time (``None`` where ``/proc`` is not available)."""

    pid: int
    start: int | None


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if it does not exist or there is no /proc."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` runs (not a zombie), and, when ``start`` is known, is the process that started then.

    A finished child of this process is reaped first, so it leaves no zombie behind.
    """
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    fields = _stat(pid)
    if fields is not None:
        return fields[0] != "Z" and (start is None or int(fields[19]) == start)
    if Path("/proc/self/stat").exists():
        return False  # /proc works, and has no entry for pid
    try:  # no /proc (macOS): the PID alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def launch(module: str, args: list[str], *, log: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``python -m module *args`` in a new session, output appended to ``log``; ``env`` adds variables.

    The process also gets :data:`cnfm_core.config.OPENMP_ENV` where neither ``env`` nor this process's
    environment sets those variables (threads that sleep while waiting, for busy shared machines)."""
    with log.open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**OPENMP_ENV, **os.environ, **(env or {})}, start_new_session=True,
        )
    return Process(proc.pid, start_time(proc.pid))
