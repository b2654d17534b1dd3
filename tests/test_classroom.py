"""A shared classroom server, with AppTest: who may change a run, URL values out of range, a repeated Start, a
failed run resumed, and text from runs shown as plain text.

No run trains here: a fake "running" run (this test process) takes the one training slot, so the runs these
tests make stay queued and nothing is started.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from pages import open_page
from streamlit.testing.v1 import AppTest

from cnfm_core import owners
from cnfm_core.config import TrainConfig
from cnfm_core.jobs import RunStore
from cnfm_core.procs import start_time

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
DATA = str(REPO / "assets" / "synthetic_mixture.csv")
KEY, OTHER_KEY, ADMIN = "k" * 32, "o" * 32, "teacher-secret-1"


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")
    monkeypatch.setenv("CNFM_STANDBY", "0")
    monkeypatch.setenv("CNFM_THREADS", "1")
    monkeypatch.delenv(owners.ADMIN_ENV, raising=False)
    store = RunStore(tmp_path / "runs", demo_root=None)
    busy = store.create(TrainConfig(data=DATA, steps=10), name="busy")
    _status(store, busy, state="running", step=5, pid=os.getpid(), pid_start=start_time(os.getpid()))
    return store


def _status(store: RunStore, run_id: str, **fields: object) -> None:
    run = store.run_dir(run_id)
    run.write_json(run.status, {**run.read_json(run.status), **fields})


def _queued(store: RunStore, key: str | None = KEY) -> str:
    return store.create(TrainConfig(data=DATA, steps=10), name="mine", owner_key=key)


def _page(page: str, **query: str) -> AppTest:
    return open_page(page, **query)


def _param(at: AppTest, key: str) -> str | None:
    value = at.query_params.get(key)
    return value[0] if isinstance(value, list) else value


def _warnings(at: AppTest) -> str:
    return " | ".join(w.value for w in at.warning)


# --- ownership -------------------------------------------------------------------------------------------------


def test_the_run_folder_keeps_only_a_hash_of_the_control_key(store):
    run_id = _queued(store)
    text = (store.run_dir(run_id).path / owners.OWNER_FILE).read_text()
    assert KEY not in text and json.loads(text)["key_sha256"] == owners.key_hash(KEY)
    assert all(KEY not in p.read_text() for p in store.run_dir(run_id).path.iterdir() if p.is_file())


def test_a_run_of_another_session_can_be_viewed_not_stopped(store):
    run_id = _queued(store)
    at = _page("views/train.py", run=run_id)  # a view-only link: the run id without its key
    assert any(run_id in s.value for s in at.subheader)
    assert at.button(key="stop").disabled
    assert any("another browser session" in c.value for c in at.caption)
    at = _page("views/train.py", run=run_id, key=OTHER_KEY)  # somebody else's key
    assert at.button(key="stop").disabled and "not the control key" in _warnings(at)
    assert _param(at, "key") is None
    assert store.info(run_id).state == "queued"


def test_the_control_link_stops_the_run_and_survives_page_changes(store):
    run_id = _queued(store)
    at = _page("views/train.py", run=run_id, key=KEY)
    assert not at.button(key="stop").disabled
    at.switch_page("views/runs.py").run()
    for name in list(at.query_params):  # sidebar navigation drops the URL's values; the session keeps the key
        del at.query_params[name]
    at.switch_page("views/train.py").run()
    assert _param(at, "run") == run_id and _param(at, "key") == KEY
    at.button(key="stop").click().run()
    assert not at.exception
    assert store.info(run_id).state == "stopped"


def test_the_teacher_may_stop_any_run(store, monkeypatch):
    monkeypatch.setenv(owners.ADMIN_ENV, ADMIN)
    run_id = _queued(store)
    at = _page("views/train.py", run=run_id, admin="wrong")
    assert at.button(key="stop").disabled and "admin key" in _warnings(at)
    at = _page("views/train.py", run=run_id, admin=ADMIN)
    assert _param(at, "admin") is None  # taken out of the URL once read
    at.button(key="stop").click().run()
    assert store.info(run_id).state == "stopped"


def test_the_teacher_signs_in_on_the_runs_page_and_deletes_a_students_run(store, monkeypatch):
    monkeypatch.setenv(owners.ADMIN_ENV, ADMIN)
    run_id = _queued(store)
    _status(store, run_id, state="stopped")
    at = _page("views/runs.py")
    ids = list(at.dataframe[0].value["Run"])
    assert dict(zip(ids, at.dataframe[0].value["Source"], strict=True))[run_id] == "another session"
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index(run_id)], "columns": []}}
    at.run()
    assert at.button(key="delete_run").disabled and at.checkbox(key=f"delete_sure_{run_id}").disabled
    at.text_input(key="admin_input").input(ADMIN)
    at.button[0].click().run()  # the sign-in form's button
    assert not at.exception, at.exception
    assert any("Signed in as the teacher" in c.value for c in at.caption)
    at.checkbox(key=f"delete_sure_{run_id}").check().run()
    at.button(key="delete_run").click().run()
    assert not at.exception and not store.exists(run_id)


def test_command_line_runs_are_everyones_without_an_admin_key_and_the_teachers_with_one(store, monkeypatch):
    run_id = _queued(store, key=None)
    at = _page("views/train.py", run=run_id)
    assert not at.button(key="stop").disabled
    assert any("single-user mode" in c.value for c in _page("views/runs.py").caption)
    monkeypatch.setenv(owners.ADMIN_ENV, ADMIN)
    at = _page("views/train.py", run=run_id)
    assert at.button(key="stop").disabled and any("command line" in c.value for c in at.caption)


def test_the_rule_for_every_case():
    h = owners.key_hash(KEY)
    assert not owners.decide(demo=True, owner=None, key=None, admin=True, admin_configured=True).allowed
    assert owners.decide(demo=False, owner=h, key=KEY, admin=False, admin_configured=False).who == "owner"
    assert not owners.decide(demo=False, owner=h, key=OTHER_KEY, admin=False, admin_configured=False).allowed
    assert owners.decide(demo=False, owner=h, key=None, admin=True, admin_configured=True).who == "teacher"
    assert owners.decide(demo=False, owner=None, key=None, admin=False, admin_configured=False).who == "everyone"
    assert not owners.decide(demo=False, owner=None, key=None, admin=False, admin_configured=True).allowed
    assert not owners.decide(demo=False, owner="", key=KEY, admin=False, admin_configured=False).allowed
    assert owners.admin_matches(ADMIN, ADMIN) and not owners.admin_matches("", "") and not owners.admin_matches(
        ADMIN, None)


def test_buttons_on_results_and_path_are_off_for_a_run_of_another_session(store):
    run_id = _queued(store)
    _status(store, run_id, state="done", step=10)
    store.run_dir(run_id).checkpoint.write_bytes(b"not read here")
    at = _page("views/results.py", run=run_id)
    assert at.button(key="compute_results").disabled
    at = _page("views/path.py", run=run_id)
    assert at.button(key="compute_frames").disabled
    at = _page("views/results.py", run=run_id, key=KEY)
    assert not at.button(key="compute_results").disabled


# --- a repeated Start, a failed run resumed ----------------------------------------------------------------------


def test_five_fast_starts_make_one_run(store):
    at = _page("views/train.py")
    for _ in range(5):
        at.button[0].click().run()  # the form's Start training
        assert not at.exception, at.exception
    mine = [r for r in store.runs() if "busy" not in r.run_id]
    assert len(mine) == 1 and mine[0].state == "queued"
    assert any("made no second run" in e.value for e in at.error)
    run_id = mine[0].run_id
    assert _param(at, "run") == run_id and owners.key_hash(_param(at, "key")) == owners.owner_of(
        store.run_dir(run_id).path)
    _status(store, run_id, state="running", step=3, pid=os.getpid(), pid_start=start_time(os.getpid()))
    at.button[0].click().run()  # it trains: a new Start is a new run
    assert len([r for r in store.runs() if "busy" not in r.run_id]) == 2


def test_a_failed_run_with_a_checkpoint_is_resumed_by_its_owner(store):
    run_id = _queued(store)
    store.run_dir(run_id).checkpoint.write_bytes(b"not read here")
    _status(store, run_id, state="failed", step=120, minutes=2.0, elapsed=30.0,
            message="FloatingPointError: the loss became nan at step 120 **x** ![i](http://h/i.png)")
    at = _page("views/train.py", run=run_id)
    assert at.button(key="resume").disabled  # not this session's run
    at = _page("views/train.py", run=run_id, key=KEY)
    assert not at.button(key="resume").disabled
    assert any("Resume continues from its last checkpoint (step 120)" in c.value for c in at.caption)
    failed = next(e.value for e in at.error if e.value.startswith("Failed"))
    assert "![i]" not in failed and "**x**" not in failed and r"\*\*x\*\*" in failed  # shown as plain text
    at.button(key="resume").click().run()
    assert not at.exception
    run = store.run_dir(run_id)
    assert store.info(run_id).state == "queued" and run.read_json(run.request)["action"] == "resume"
    assert run.read_json(run.request)["minutes"] == 2.0  # it finishes the budget it had


def test_a_failed_runs_message_on_results_is_plain_text(store):
    run_id = _queued(store)
    _status(store, run_id, state="failed", message="bad row ![i](http://h/i.png) $x$")
    at = _page("views/results.py", run=run_id)
    shown = _warnings(at)
    assert "has no results" in shown and "![i]" not in shown and r"\$x\$" in shown


# --- URL values ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query, name", [({"seed": "3000000000"}, "seed"), ({"seed": "-5"}, "seed"),
                                         ({"seed": "1.5"}, "seed"), ({"minutes": "1e9"}, "minutes"),
                                         ({"minutes": "nan"}, "minutes"), ({"minutes": "0"}, "minutes"),
                                         ({"obj": "nope"}, "obj"), ({"run": "../../etc"}, "run"),
                                         ({"run": "no-such-run"}, "run")])
def test_a_bad_url_value_on_train_is_ignored_with_a_notice(store, query, name):
    at = _page("views/train.py", **query)
    assert f"Ignored the link's {name}" in _warnings(at)
    assert at.number_input[0].value == 0.75 and at.number_input[1].value == 0
    assert _param(at, name) is None


def test_bad_compare_and_data_values_are_ignored_with_a_notice(store):
    at = _page("views/runs.py", a="no-such-run")
    assert "Ignored the link's a" in _warnings(at)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["data"] = "upload:nothing"
    at.run()
    assert not at.exception and "Ignored the link's data" in _warnings(at)


def _frame_script() -> None:
    import streamlit as st

    from dashboard import state

    st.write(f"frame {state.current_frame([0.0, 0.5, 1.0])}")


@pytest.mark.parametrize("t", ["abc", "inf", "7", "-1"])
def test_a_bad_time_on_the_path_page_is_ignored_with_a_notice(store, t):
    at = AppTest.from_function(_frame_script)
    at.query_params["t"] = t
    at.run()
    assert not at.exception and "Ignored the link's t" in _warnings(at)
    assert at.markdown[0].value == "frame 0"
    at = AppTest.from_function(_frame_script)
    at.query_params["t"] = "0.6"
    at.run()
    assert at.markdown[0].value == "frame 1" and not at.warning


def test_the_dashboard_listens_on_loopback_unless_told_otherwise():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    script = (REPO / "scripts" / "dashboard.sh").read_text()
    assert '${HOST:-127.0.0.1}' in script and "CNFM_ADMIN_KEY" in script
