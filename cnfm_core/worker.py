"""The background worker: ``python -m cnfm_core.worker RUN_DIR``, started by :class:`cnfm_core.jobs.JobRunner`.

Reads ``RUN_DIR/request.json`` (written by :class:`cnfm_core.jobs.RunStore`) and does the job it names:
train or resume, then write the report and the path frames; or, for a trained run, only its report and
frames (``report``) or only its frames (``frames``). Its state goes to ``status.json``: running, reporting,
then done, stopped or failed (with a one-line message); a report or frames job gives the run back the
state it had, keeping a failure as ``job_error``. As it exits, the worker polls its runner, so the next
queued job starts whether or not a page is open. ``DIR/stop.request`` (what the dashboard's Stop
writes) or SIGTERM stops training after the current step;
the checkpoint is saved and a report is still written, so nothing trained is lost.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

# A stop can arrive while torch is still being imported: note it now, act on it once training starts.
_EARLY_STOP: list[int] = []
signal.signal(signal.SIGTERM, lambda *_: _EARLY_STOP.append(1))

from .config import TrainConfig  # noqa: E402
from .frames import write_frames  # noqa: E402
from .jobs import JOBS, JobRunner, RunStore  # noqa: E402
from .procs import start_time  # noqa: E402
from .report import write_report  # noqa: E402
from .runs import RunDir  # noqa: E402
from .train import request_stop, train  # noqa: E402

__all__ = ["main"]


def _status(run: RunDir, state: str, message: str = "", **extra: object) -> None:
    old = run.read_json(run.status) if run.status.exists() else {}
    run.write_json(run.status, {**old, "state": state, "message": message, "pid": os.getpid(),
                                "pid_start": start_time(os.getpid()), "updated": time.time(), **extra})


def _one_line(e: BaseException) -> str:
    return (" ".join(str(e).split()) or type(e).__name__)[:500]


def _job(run: RunDir, request: dict[str, object]) -> int:
    """A report or frames job on a trained run: afterwards the run has the state it had before."""
    previous = request.get("previous")
    before: dict[str, object] = previous if isinstance(previous, dict) else {}
    state, message = str(before.get("state", "done")), str(before.get("message", ""))
    _status(run, "reporting", job_error="")
    try:
        if request.get("action") == "report":
            write_report(run)
        write_frames(run)
    except Exception as e:
        traceback.print_exc()
        _status(run, state, message, job_error=f"computing the {request.get('action')} failed: {_one_line(e)}")
        return 1
    _status(run, state, message)
    return 0


def _next_job(run: RunDir) -> None:
    """Start the next queued job of the runner that started this worker (none when started by hand)."""
    runner = JobRunner.of_worker(RunStore(run.path.parent))
    if runner is not None:
        try:
            runner.poll()
        except Exception:  # the queue is polled again by the next page or worker; never fail a finished run
            traceback.print_exc()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cnfm_core.worker RUN_DIR", file=sys.stderr)
        return 2
    run = RunDir(args[0])
    signal.signal(signal.SIGTERM, lambda *_: request_stop())
    if _EARLY_STOP:
        request_stop()
    try:
        return _run(run)
    finally:
        _next_job(run)


def _run(run: RunDir) -> int:
    try:
        request = run.read_json(run.request)
        if request.get("action") in JOBS:
            return _job(run, request)
        if request.get("action") == "resume":
            budget = TrainConfig(steps=request.get("steps"), minutes=request.get("minutes"))
            result = train(budget, run.path, resume=True, final_status=False, stop_file=True)
        else:
            config = TrainConfig.from_dict(request["config"])
            result = train(config, run.path, final_status=False, stop_file=True)
        _status(run, "reporting", step=result.step, elapsed=result.elapsed)
        if request.get("quick"):  # step mode: a coarse report, fast enough to redraw after a few steps
            write_report(run, n_lat=45, n_lon=90, n_samples=500)
            run.frames.unlink(missing_ok=True)  # stale now; the Path page can recompute them
        else:
            write_report(run)
            write_frames(run)
        _status(run, result.state, step=result.step, elapsed=result.elapsed)
        return 0
    except Exception as e:  # the worker's last word: one line for the page, the traceback for the log
        traceback.print_exc()
        _status(run, "failed", _one_line(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
