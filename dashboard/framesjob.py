"""A run without path frames on the Path page: why, and a button that queues the frames job (then its progress).

The job runs in a worker of the dashboard's job runner, never in the server; this module only writes the
request and reads the run's files.
"""

import re
import time

import streamlit as st

from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunDir, RunError
from dashboard import access, state
from dashboard.text import plain

__all__ = ["offer_frames"]


def _log_tail(run: RunDir, lines: int = 5) -> str:
    log = run.worker_log
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


@st.fragment(run_every=2)
def _wait_for_frames(run_id: str) -> None:
    """Shown while the frames job is queued or running: rerun the page when it ends."""
    info = state.store().info(run_id)
    if info.job != "frames" or info.state not in ACTIVE:
        st.rerun()
    where = "waiting for a free worker" if info.state == "queued" else "computing"
    st.info(
        f":material/hourglass_top: Computing the path frames of this run ({where})… "
        f"{max(0.0, time.time() - info.queued):.0f} s (usually under a minute). They appear here when ready."
    )


def offer_frames(run_id: str, run: RunDir) -> None:
    """A run without frames: why, and a button that computes them (or the progress of that)."""
    store, runner = state.store(), state.runner()
    info = store.info(run_id)
    if info.demo:
        st.warning(
            f"The demo run `{run_id}` has no path frames: its files are incomplete. Regenerate the demo runs "
            "with `python scripts/make_demo_runs.py`."
        )
        return
    if info.job == "frames" and info.state in ACTIVE:
        _wait_for_frames(run_id)
        return
    if info.state in ACTIVE:
        st.info(f"Run `{run_id}` is {info.state}. Its path frames are computed when training finishes.")
        return
    if not run.checkpoint.exists():
        st.warning(f"Run `{run_id}` has no trained model ({info.state}), so it has no path to show.")
        return
    if info.job_error:
        tail = _log_tail(run)  # in a code fence longer than any run of backticks in it, so it shows as written
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", tail)), default=0))
        st.error(f"{plain(info.job_error[:1].upper() + info.job_error[1:])}\n\n{fence}\n{tail}\n{fence}")
    st.info(
        "This run has no path frames yet (it was trained before they were written with every run). "
        "Computing them takes about a minute in the background; the page updates by itself."
    )
    may = access.control(store, run_id)
    off = access.why_not(may)
    if off:
        st.caption(off)
    if (
        st.button(
            "Compute frames",
            key="compute_frames",
            type="primary",
            icon=":material/play_circle:",
            disabled=off is not None,
            help=off,
        )
        and may.allowed
    ):
        try:
            store.request_job(run_id, "frames")
        except RunError as e:
            st.error(f"Not started: {plain(e)}")
            return
        runner.poll()
        st.rerun()
