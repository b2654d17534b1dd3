"""What the Train page shows of one run below its form: the run's buttons (Stop, Cancel, Resume), its state in
words (queue position, training progress, report stages, how it ended) and the live picture of the model.

Each function draws into the page (or the column it is given) and reads the run's files; the page calls them from
its fragment, which redraws every 2 s while the run is busy. A button this session may not use is off, with the
reason (``dashboard/access.py``).
"""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnfm_core import owners
from cnfm_core.jobs import ACTIVE, JobRunner, RunInfo, RunStore
from cnfm_core.runs import RunDir, RunError
from dashboard import access, figures, progress, state, units
from dashboard.text import plain

__all__ = ["STEP", "controls", "picture", "read_live", "resume_budget", "status_line"]

#: Steps one press of Step trains.
STEP = 50


def resume_budget(info: RunInfo) -> dict[str, float | int]:
    """The new total budget of a Resume: a failed run finishes the budget it had; a finished one trains for the
    same time again."""
    if info.state == "failed" and info.minutes:
        return {"minutes": max(float(info.minutes), info.elapsed / 60.0 + 0.1)}
    if info.state == "failed" and isinstance(info.steps, int):
        return {"steps": max(info.steps, info.step + STEP)}
    return {"minutes": info.elapsed / 60.0 + float(info.minutes or 1.0)}


def _pressed(col: DeltaGenerator, label: str, key: str, off: str | None, hint: str, may: owners.Access) -> bool:
    """A button of the run in ``col``: off, with the reason ``off`` as its help, for a session that may not change
    the run (else ``hint``); True when a session that may change it pressed it."""
    return col.button(label, key=key, help=off or hint, disabled=off is not None) and may.allowed


def controls(info: RunInfo, run: RunDir, col: DeltaGenerator, *, run_id: str, store: RunStore,
             runner: JobRunner) -> None:
    """Stop while training, Cancel while reporting, Resume once finished or failed with a checkpoint (none on a
    demo run); off, with the reason, for a session that may not change the run."""
    if getattr(info, "demo", False):
        return
    may = access.control(store, run_id)
    off = access.why_not(may)
    if info.state in ("queued", "running"):
        if _pressed(col, "Stop", "stop", off, "Stop after the current step; the checkpoint is kept.", may):
            runner.stop(run_id)
            st.toast("Stopping after the current step; the checkpoint is kept.")
    elif info.state == "reporting":
        if _pressed(col, "Cancel", "cancel", off, "Skip the rest of the report; the run keeps what is done.", may):
            try:
                store.request_cancel(run_id)
                st.toast("Cancelling the rest of the report; what is done is kept.")
            except RunError as e:  # it finished meanwhile
                st.toast(plain(e))
    elif info.state in ("done", "stopped", "failed") and run.checkpoint.exists():
        lost = info.state == "failed" and (info.stale or info.message.startswith("the worker process"))
        where = f"at or before step {info.step:,}" if lost else f"step {info.step:,}"
        if _pressed(col, "Resume", "resume", off, f"Train on from the checkpoint ({where}).", may):
            try:
                store.request_resume(run_id, **resume_budget(info))
            except RunError as e:
                st.toast(plain(e))
            else:
                runner.poll()
                st.rerun()
        if info.state == "failed":
            col.caption(f"Resume continues from its last checkpoint ({where}).")
    if off:
        col.caption(off)


def status_line(info: RunInfo, run: RunDir, rate: float | None, col: DeltaGenerator, *, run_id: str,
                runner: JobRunner) -> None:
    """The run's state in words: queue position, training progress, report stages, or how it ended."""
    status = {}
    if info.state in ("running", "reporting"):
        try:
            status = run.read_json(run.status)
        except RunError:
            status = {}
    if info.state == "queued":
        queue = runner.queue()
        pos = queue.index(run_id) + 1 if run_id in queue else None
        col.info(
            f"Queued{f' (position {pos} of {len(queue)})' if pos else ''}: "
            f"{state.settings().max_concurrent} run(s) train at a time."
        )
    elif info.state == "running":
        fraction, text = progress.running_progress(
            elapsed=info.elapsed,
            step=info.step,
            budget_s=60.0 * info.minutes if info.minutes else None,
            min_steps=status.get("min_steps") if isinstance(status.get("min_steps"), int) else None,
            steps=info.steps,
            rate=rate,
        )
        col.progress(fraction, text=text)
    elif info.state == "reporting":
        stages = status.get("stages") if isinstance(status.get("stages"), list) else []
        stages = [s for s in stages if isinstance(s, dict)]
        if not stages:
            col.progress(0.0, text="Training is over; starting the report ...")
        for s in stages:
            if s.get("state") == "running":
                fraction = s.get("fraction") if isinstance(s.get("fraction"), int | float) else 0.0
                col.progress(min(1.0, max(0.0, float(fraction))), text=progress.stage_text(s))
            else:
                col.caption(progress.stage_text(s))
    elif info.state == "done":
        if run.report.exists():
            col.success("Done. See the **Results** page.")
        else:
            col.success(
                f"Done: the picture below is the model after step {info.step:,}. Its exact test NLL is "
                "computed when a full run ends (Start training or Resume)."
            )
    elif info.state == "stopped":
        col.warning(f"Stopped at step {info.step:,}. {plain(info.message)}".strip())
    elif info.state == "failed":
        col.error(f"Failed: {plain(info.message)}")
    if info.job_error and info.state not in ACTIVE:
        col.warning(plain(info.job_error))


def read_live(run: RunDir) -> dict | None:
    """The run's live picture (``live.npz``), None when there is none yet or it cannot be read."""
    try:
        return run.read_npz(run.live) if run.live.exists() else None
    except RunError:
        return None


def picture(info: RunInfo, run: RunDir, live: dict | None) -> None:
    """The live picture of the model (``live``); for a run from before live pictures, its density map."""
    try:
        grid = run.read_npz(run.density) if live is None and info.state not in ACTIVE and run.density.exists() else None
    except RunError:
        grid = None
    unit = state.density_unit()
    if live is not None and {"lat", "lon", "log_prob"} <= set(live):
        step = int(live["step"]) if "step" in live else info.step
        fig = figures.live_density_map(
            live["lat"],
            live["lon"],
            live["log_prob"],
            live.get("samples"),
            land=figures.load_land(),
            title=f"The model at step {step:,} (preview)",
            unit=unit,
        )
        st.plotly_chart(fig, use_container_width=True, key="live_density")
        scale = (
            "how many times as crowded as evenly spread points (×1)"
            if unit == "times"
            else f"log density (uniform is {units.describe(units.LOG_UNIFORM, 'log')})"
        )
        st.caption(
            f"A coarse preview, redrawn every few seconds while training. Colour: {scale}, on a scale "
            "that stays fixed while the blobs form; dots: points drawn from the model. The exact map is on "
            "Results."
        )
    elif grid is not None and {"lat", "lon", "log_prob"} <= set(grid):
        st.plotly_chart(
            figures.density_map(
                grid["lat"],
                grid["lon"],
                grid["log_prob"],
                land=figures.load_land(),
                title=f"Learned density at step {info.step:,}",
                unit=unit,
            ),
            use_container_width=True,
            key="live_density",
        )
    elif info.state in ACTIVE:
        st.caption("The picture of the model appears here a few seconds after training starts.")
