"""The background worker: ``python -m cnfm_core.worker RUN_DIR``, started by :class:`cnfm_core.jobs.JobRunner`
(or ``--standby STORE``: a warm worker that imports everything first and then waits for its job; see
:mod:`cnfm_core.standby`).

Reads ``RUN_DIR/request.json`` (written by :class:`cnfm_core.jobs.RunStore`) and does the job it names:
train or resume (writing the live picture, ``live.npz``, as it goes), then write the report and the path
frames in stages (:mod:`cnfm_core.stages`: a preview map within seconds, the exact test NLL, the frames, the exact
map; ``DIR/cancel.request`` skips the rest; a quick Step skips them all: its live picture is its result); or,
for a trained run, a ``report`` job (what the run lacks: the exact NLL always) or a ``frames`` job.
Its state goes to ``status.json``: running, reporting,
then done, stopped or failed (with a one-line message); a report or frames job gives the run back the
state it had, keeping a failure as ``job_error``. As it exits, the worker polls its runner, so the next
queued job starts whether or not a page is open. ``DIR/stop.request`` (what the dashboard's Stop
writes) or SIGTERM stops training after the current step;
the checkpoint is saved and a report is still written, so nothing trained is lost (a stop.request that
appears during the report skips the rest of it, as cancel.request does).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

# A stop can arrive while torch is still being imported: note it now, act on it once training starts.
_EARLY_STOP: list[int] = []
signal.signal(signal.SIGTERM, lambda *_: _EARLY_STOP.append(1))

from . import standby  # noqa: E402

if __name__ == "__main__" and sys.argv[1:2] == ["--standby"]:  # a standby lets the pages draw before torch loads
    standby.settle(sys.argv[2] if len(sys.argv) > 2 else "")

from .config import TrainConfig  # noqa: E402
from .guard import TrainingDiverged  # noqa: E402
from .jobs import JOBS, JobRunner, RunStore  # noqa: E402
from .live import LiveSnapshots  # noqa: E402
from .procs import start_time  # noqa: E402
from .runlock import RunLocked  # noqa: E402
from .runs import RunDir, RunError, write_error  # noqa: E402
from .stages import run_stages  # noqa: E402
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
    for old in (run.cancel_request, run.stop_request):  # meant for an earlier job: this one starts afresh
        old.unlink(missing_ok=True)
    _status(run, "reporting", job_error="")
    try:  # a report job completes what the run lacks (after a cancel, say); a frames job recomputes its frames
        if request.get("action") == "report":
            run_stages(run, _publisher(run), keep=True)
        else:
            run_stages(run, _publisher(run), only=("frames",))
    except Exception as e:
        why = f"computing the {request.get('action')} failed: {_one_line(e)}"
        if isinstance(e, (OSError, RunError)):  # a full disk, say: one line says it all
            print(f"cnfm worker: {why}", file=sys.stderr, flush=True)
        else:
            traceback.print_exc()
        _status(run, state, message, job_error=why)
        return 1
    _status(run, state, message)
    return 0


def _publisher(run: RunDir, **extra: object) -> Callable[[list[dict[str, Any]]], None]:
    """Where the report's stages go: ``status.json`` (state ``reporting``, with ``stages``)."""
    return lambda stages: _status(run, "reporting", stages=stages, **extra)


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
    if len(args) == 2 and args[0] == "--standby":  # warm: wait for a job (cnfm_core/standby.py), then do it
        import torch._dynamo  # noqa: F401  (the optimizer imports it on first use: 2 s of a cold start)

        return standby.serve(args[1], lambda run_dir: main([run_dir]), RunStore(args[1], demo_root=None).lock)
    if len(args) != 1:
        print("usage: python -m cnfm_core.worker RUN_DIR | --standby STORE", file=sys.stderr)
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
    def _say_events(rec: dict[str, Any]) -> None:  # a line in worker.log for each rollback after the loss diverged
        if rec.get("event") == "diverged":
            print(f"cnfm worker: {rec['message']}", file=sys.stderr, flush=True)

    try:
        request = run.read_json(run.request)
        if request.get("action") in JOBS:
            return _job(run, request)
        live = LiveSnapshots(run)  # DIR/live.npz every few seconds and at the end: the Train page's picture
        if request.get("action") == "resume":
            budget = TrainConfig(steps=request.get("steps"), minutes=request.get("minutes"))
            result = train(budget, run.path, resume=True, final_status=False, stop_file=True, live=live,
                           on_log=_say_events)
        else:
            config = TrainConfig.from_dict(request["config"])
            result = train(config, run.path, final_status=False, stop_file=True, live=live, on_log=_say_events)
        if request.get("quick"):  # step mode: the live picture written at the end of training is the result
            for stale in (run.report, run.density, run.samples, run.frames):  # they describe an older model
                stale.unlink(missing_ok=True)
            _status(run, result.state, step=result.step, elapsed=result.elapsed)
            return 0
        # The report in stages (cnfm_core/stages.py); the results of an older model go first, and so do
        # requests that training has already honoured (a stop) or that were meant for an older report.
        for stale in (run.report, run.density, run.samples, run.frames, run.stop_request, run.cancel_request):
            stale.unlink(missing_ok=True)
        run_stages(run, _publisher(run, step=result.step, elapsed=result.elapsed))
        _status(run, result.state, step=result.step, elapsed=result.elapsed)
        return 0
    except RunLocked as e:  # another process trains this run and owns its status: say why, and leave it alone
        print(f"cnfm worker: {_one_line(e)}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # the worker's last word: one line for the page and the log (a traceback if unforeseen)
        foreseen = isinstance(e, (OSError, RunError, TrainingDiverged))  # faults that say themselves in one line
        if not foreseen:
            traceback.print_exc()
        line = f"cnfm worker: failed: {_one_line(e)}"
        try:
            _status(run, "failed", _one_line(e))
        except OSError as e2:  # best effort: then the log alone has the reason
            foreseen, line = True, f"{line} (not recorded in status.json: {write_error(e2, 'it')})"
        if foreseen:
            print(line, file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
