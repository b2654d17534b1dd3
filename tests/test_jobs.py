"""The run store and job runner without a browser: ids, listing, broken runs, cancelling."""

from __future__ import annotations

import json

import pytest

from cnfm_core.config import TrainConfig
from cnfm_core.jobs import JobRunner, RunStore, valid_run_id
from cnfm_core.runs import RunError


@pytest.mark.parametrize("run_id, ok", [("20261128-run-ab12", True), ("a", True), ("flood-lr=1e-2,batch=1024", True),
                                        ("../etc", False),
                                        ("a/b", False), ("", False), (".hidden", False), ("x" * 65, False)])
def test_run_ids_from_urls_are_plain_names(run_id, ok):
    assert valid_run_id(run_id) is ok


def test_bad_run_id_is_refused(tmp_path):
    with pytest.raises(RunError, match="not a valid run id"):
        RunStore(tmp_path).run_dir("../outside")


def test_unreadable_runs_are_listed_not_fatal(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    good = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="good")
    for name, content in [("list-status", "[1, 2]"), ("garbage-status", "{not json")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "status.json").write_text(content)
    infos = {r.run_id: r for r in store.runs()}
    assert infos[good].state == "queued"
    assert infos["list-status"].state == "unreadable" and "JSON object" in infos["list-status"].message
    assert infos["garbage-status"].state == "unreadable"


def test_cancel_queued_and_queue_order(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    runner = JobRunner(store, max_concurrent=1)
    a = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="a")
    b = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="b")
    assert runner.queue() == [a, b]
    runner.stop(b)
    assert store.info(b).state == "stopped" and "cancelled" in store.info(b).message
    assert runner.queue() == [a]


def test_resume_clears_an_old_stop_request(tmp_path, synthetic_csv):
    store = RunStore(tmp_path)
    run_id = store.create(TrainConfig(data=str(synthetic_csv), steps=5), name="r")
    run = store.run_dir(run_id)
    run.checkpoint.write_bytes(b"placeholder")  # request_resume only checks that a checkpoint exists
    status = json.loads(run.status.read_text())
    status["state"] = "stopped"
    run.status.write_text(json.dumps(status))
    run.stop_request.touch()
    store.request_resume(run_id, steps=10, quick=True)
    assert not run.stop_request.exists()
    assert json.loads(run.request.read_text())["quick"] is True and store.info(run_id).state == "queued"
    with pytest.raises(RunError, match="stop it before resuming"):
        store.request_resume(run_id, steps=20)
