"""One trainer per run folder: an exclusive lock held for the trainer's lifetime.

:func:`training_lock` takes ``DIR/train.lock`` with ``fcntl.flock`` (the kernel releases it when its holder exits,
however it exits, so a killed trainer never leaves a stale lock) and writes the holder's PID into it. A second
trainer is refused at once with a one-line :class:`RunLocked` naming that process. Holding the lock, the trainer
clears the temporary files a killed predecessor left (:meth:`cnfm_core.runs.RunDir.remove_stale_temps`).
No torch here.

>>> import tempfile
>>> run = RunDir(tempfile.mkdtemp())
>>> with training_lock(run):
...     try:
...         with training_lock(run):
...             pass
...     except RunLocked as e:
...         print(f"pid {os.getpid()}" in str(e))
True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator

from .procs import start_time
from .runs import RunDir, RunError, writing

__all__ = ["RunLocked", "holder", "training_lock"]


class RunLocked(RunError):
    """Another process is training this run folder."""


def holder(run: RunDir) -> dict[str, object]:
    """What the lock file says of the process that holds (or last held) it: ``pid``, ``pid_start``, ``since``;
    empty when it says nothing readable."""
    try:
        obj = json.loads(run.train_lock.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


@contextlib.contextmanager
def training_lock(run: RunDir) -> Iterator[None]:
    """Hold ``DIR/train.lock`` while the body runs; raise :class:`RunLocked` at once if another process holds it."""
    with writing(f"the lock file in {run.path}"):
        run.path.mkdir(parents=True, exist_ok=True)
        f = run.train_lock.open("a+")  # "a+": never truncate a file that another process may hold
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = holder(run)
            who = f"pid {other['pid']}" if other.get("pid") else "another process"
            since = other.get("since")
            when = f", since {time.strftime('%H:%M:%S', time.localtime(float(since)))}" if since else ""
            raise RunLocked(f"{run.path} is being trained by another process ({who}{when}); wait for it to end or "
                            "stop it first") from None
        try:
            with writing(f"the lock file in {run.path}"):
                f.seek(0)
                f.truncate()
                f.write(json.dumps({"pid": os.getpid(), "pid_start": start_time(os.getpid()), "since": time.time()}))
                f.flush()
                run.remove_stale_temps()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()
