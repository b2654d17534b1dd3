"""Who may change a run, for this browser session: the part of the session and the URL that holds its rights.

The rule is :func:`cnfm_core.owners.decide` (everyone views; a run's owner and the teacher change it). This
session holds the control key of every run it started (``run_keys``); the URL carries the current run's key as
``?key=`` (put there by ``dashboard/state.py`` with the run), so a reload keeps it: that link is the run's secret
control link, and ``?run=ID`` alone is a view-only link. The teacher signs in with the server's admin key
(``$CNFM_ADMIN_KEY``) on the Runs page or with a ``?admin=`` URL value, which is taken out of the URL once read.
Pages ask :func:`control` before offering a button that changes a run.
"""

from __future__ import annotations

import os

import streamlit as st

from cnfm_core import owners
from cnfm_core.jobs import RunInfo, RunStore
from dashboard.text import plain

__all__ = ["admin_configured", "control", "ignored", "is_admin", "origin", "pending_start", "remember", "run_key",
           "sign_in", "sign_out", "take_url_key", "why_not"]


def ignored(name: str, value: object | None, why: str) -> None:
    """A URL value that is ignored: a one-line notice, and the value taken out of the URL."""
    shown = "" if value is None else "=" + plain(str(value)[:40]) + ("…" if len(str(value)) > 40 else "")
    st.warning(f"Ignored the link's {plain(name)}{shown}: {why}.", icon=":material/link_off:")
    if name in st.query_params:
        del st.query_params[name]


def admin_configured() -> bool:
    """Whether this server has an admin key (a classroom server); without one it is in single-user mode."""
    return bool(os.environ.get(owners.ADMIN_ENV))


def is_admin() -> bool:
    """Whether this session is signed in as the teacher (a ``?admin=`` URL value is read first)."""
    if "admin" in st.query_params:
        given = st.query_params.get("admin")
        if sign_in(given):
            del st.query_params["admin"]
        else:
            ignored("admin", None, "it is not this server's admin key" if admin_configured()
                    else "this server has no admin key (single-user mode)")
    return owners.admin_matches(st.session_state.get("admin_key"), os.environ.get(owners.ADMIN_ENV))


def sign_in(given: object) -> bool:
    """Sign this session in as the teacher when ``given`` is the admin key; False (and no change) otherwise."""
    if not owners.admin_matches(given, os.environ.get(owners.ADMIN_ENV)):
        return False
    st.session_state["admin_key"] = given
    return True


def sign_out() -> None:
    st.session_state.pop("admin_key", None)


def run_key(run_id: str) -> str | None:
    """The control key this session holds for ``run_id`` (None: it did not start it)."""
    keys = st.session_state.get("run_keys")
    return keys.get(run_id) if isinstance(keys, dict) else None


def remember(run_id: str, key: str, *, started: bool = True) -> None:
    """Keep ``key`` as this session's control key of ``run_id`` (``started``: this session just started it)."""
    st.session_state["run_keys"] = {**(st.session_state.get("run_keys") or {}), run_id: key}
    if started:
        st.session_state["last_started"] = run_id


def take_url_key(store: RunStore, run_id: str) -> None:
    """Adopt the URL's ``?key=`` for ``run_id`` (the URL's run) when it is that run's control key; else say why
    it is ignored. The key is checked against the hash in the run folder, never shown."""
    key = st.query_params.get("key")
    if key is None or key == run_key(run_id):
        return
    owner = owners.owner_of(store.run_dir(run_id).path) if not store.is_demo(run_id) else None
    if owners.valid_key(key) and owner and owners.decide(demo=False, owner=owner, key=key, admin=False,
                                                         admin_configured=True).allowed:
        remember(run_id, key, started=False)
    else:
        ignored("key", None, f"it is not the control key of run {run_id}; you can view the run, not change it")


def control(store: RunStore, run_id: str) -> owners.Access:
    """Whether this session may change run ``run_id`` (stop, resume, step, delete, request a job), and if not,
    why, in one line."""
    demo = store.is_demo(run_id)
    owner = None if demo else owners.owner_of(store.run_dir(run_id).path)
    return owners.decide(demo=demo, owner=owner, key=run_key(run_id), admin=is_admin(),
                         admin_configured=admin_configured())


def why_not(may: owners.Access) -> str | None:
    """The one line a page shows beside a button this session may not use (None: it may use it)."""
    return None if may.allowed else f"{may.reason[:1].upper()}{may.reason[1:]}."


def origin(store: RunStore, info: RunInfo) -> str:
    """Where a run comes from, seen from this session: for the Runs page's table."""
    if info.demo:
        return "demo (read-only)"
    owner = owners.owner_of(store.run_dir(info.run_id).path)
    if owner is None:
        return "command line"
    key = run_key(info.run_id)
    mine = owners.decide(demo=False, owner=owner, key=key, admin=False, admin_configured=True).allowed
    return "yours" if mine else "another session"


def pending_start(store: RunStore) -> str | None:
    """The run this session started last, while it is still queued or starting (no step done yet), else None:
    a repeated Start then makes no second run."""
    run_id = st.session_state.get("last_started")
    if not run_id or not store.exists(run_id):
        return None
    info = store.info(run_id)
    return run_id if info.state == "queued" or (info.state == "running" and info.step == 0) else None
