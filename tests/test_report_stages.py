"""The staged report after training: stages in order with their files written as they finish, the exact NLL
unchanged, cancelling between stages (and completing later by a report job), and the Results page meanwhile."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnfm_core.builders import load_field
from cnfm_core.config import TrainConfig
from cnfm_core.integrate import evaluate_nll
from cnfm_core.jobs import RunStore
from cnfm_core.procs import start_time
from cnfm_core.runs import RunDir, RunError
from cnfm_core.stages import ORDER, run_stages
from cnfm_core.train import train

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")


def _tiny(steps: int = 20) -> TrainConfig:
    return TrainConfig(data=str(REPO / "assets" / "synthetic_mixture.csv"), steps=steps, hidden=16, layers=2,
                       eval_every=10**6, threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, single_thread) -> Path:
    """A tiny trained run: checkpoint and split, no results yet."""
    root = tmp_path_factory.mktemp("trained")
    train(_tiny(), root / "run")
    return root / "run"


def _density(run: RunDir) -> dict[str, np.ndarray]:
    return run.read_npz(run.density)


def test_stages_run_in_order_and_write_as_they_finish(trained, tmp_path):
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained, run.path)
    published: list[list[dict[str, Any]]] = []
    seen_at_nll: dict[str, Any] = {}

    def publish(stages: list[dict[str, Any]]) -> None:
        published.append(stages)
        states = {s["name"]: s["state"] for s in stages}
        if states["test_nll"] == "running" and not seen_at_nll:
            seen_at_nll.update(report=run.report.exists(), preview=int(_density(run)["preview"]),
                               samples=run.samples.exists())

    # every progress step is published (not at most every 0.5 s), so what is seen does not depend on speed
    assert run_stages(run, publish, publish_every=0.0) == dict.fromkeys(ORDER, "done")
    # The preview map was on disk (with samples) before the exact NLL was computed, and report.json was not.
    assert seen_at_nll == {"report": False, "preview": 1, "samples": True}
    # Each stage went pending -> running -> done, one after the other, in ORDER.
    for name in ORDER:
        states = [next(s for s in p if s["name"] == name)["state"] for p in published]
        squeezed = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
        assert squeezed == ["pending", "running", "done"], (name, squeezed)
    first_running = [next(i for i, p in enumerate(published) if p[ORDER.index(n)]["state"] == "running")
                     for n in ORDER]
    assert first_running == sorted(first_running)
    # The exact map is done in chunks of rows: while it runs, its fraction grows and it has an estimate.
    running = [p[ORDER.index("map")] for p in published if p[ORDER.index("map")]["state"] == "running"]
    fractions = [s["fraction"] for s in running]
    assert fractions == sorted(fractions) and any(0.0 < f < 1.0 for f in fractions) and max(fractions) <= 1.0
    assert any(s["eta_s"] is not None and s["eta_s"] >= 0 for s in running)
    final = {s["name"]: s for s in published[-1]}
    assert all(s["fraction"] == 1.0 and s["seconds"] is not None and s["eta_s"] is None for s in final.values())
    assert [s["label"] for s in published[-1]] and all(s["label"] for s in published[-1])
    density = _density(run)
    assert int(density["preview"]) == 0 and density["log_prob"].shape == (90, 180)
    assert abs(float(density["grid_mass"]) - 1.0) < 0.1
    assert len(np.loadtxt(run.samples, delimiter=",", skiprows=1)) == 2000 and run.frames.exists()
    # The exact NLL is unchanged by the staging: the same number as an independent evaluation.
    report = run.read_json(run.report)
    field, config = load_field(run)
    exact = evaluate_nll(field, run.read_split()["test"], rtol=config.rtol, atol=config.atol)
    assert report["test_nll"] == pytest.approx(exact.mean, abs=1e-9)
    assert (report["rtol"], report["atol"], report["solver"]) == (config.rtol, config.atol, "dopri5")
    assert {"kde_nll", "true_nll", "uniform_nll", "n_test"} <= set(report)


@pytest.fixture
def worker(monkeypatch):
    """The worker's ``main``, run in this process (the same code as ``python -m cnfm_core.worker DIR``), with
    no runner to poll and the SIGTERM handler restored afterwards."""
    monkeypatch.delenv("CNFM_RUNNER_SLOTS", raising=False)
    before = signal.getsignal(signal.SIGTERM)
    from cnfm_core import worker as module

    yield module
    signal.signal(signal.SIGTERM, before)


def test_cancel_after_the_preview_then_a_report_job_completes_it(tmp_path, worker, monkeypatch, single_thread):
    store = RunStore(tmp_path / "runs", demo_root=None)
    run_id = store.create(_tiny(), name="cancel")
    run = store.run_dir(run_id)
    publisher = worker._publisher

    def cancelling(run_dir: RunDir, **extra: object):
        inner = publisher(run_dir, **extra)

        def publish(stages: list[dict[str, Any]]) -> None:
            inner(stages)
            if stages[0]["state"] == "done":  # the moment the preview is written, someone presses Cancel
                store.request_cancel(run_id)

        return publish

    monkeypatch.setattr(worker, "_publisher", cancelling)
    assert worker.main([str(run.path)]) == 0
    status = run.read_json(run.status)
    assert status["state"] == "done"
    assert {s["name"]: s["state"] for s in status["stages"]} == {
        "map_preview": "done", "test_nll": "cancelled", "frames": "cancelled", "map": "cancelled"}
    assert not run.report.exists() and not run.frames.exists()
    assert int(_density(run)["preview"]) == 1 and run.samples.exists()
    with pytest.raises(RunError, match="nothing to cancel"):
        store.request_cancel(run_id)

    monkeypatch.setattr(worker, "_publisher", publisher)
    store.request_job(run_id, "report")
    assert worker.main([str(run.path)]) == 0  # what the runner's worker process does for this request
    status = run.read_json(run.status)
    assert status["state"] == "done" and not status.get("job_error")
    assert {s["name"]: s["state"] for s in status["stages"]} == {
        "map_preview": "skipped", "test_nll": "done", "frames": "done", "map": "done"}
    assert "test_nll" in run.read_json(run.report) and run.frames.exists()
    assert int(_density(run)["preview"]) == 0


def _app(runs: Path, run_id: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = run_id
    at.run()
    at.switch_page("views/results.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _preview_run(trained: Path, root: Path, status: dict[str, Any]) -> None:
    """A copy of the trained run whose density.npz is a preview and which has no report.json yet."""
    run = RunDir(root / "staged")
    shutil.copytree(trained, run.path)
    field, config = load_field(run)
    from cnfm_core.report import write_density

    write_density(run, field, config, n_lat=10, n_lon=20, n_samples=50, preview=True, sample_steps=4)
    run.write_json(run.status, {"state": "done", "step": 20, "message": "", **status})


@pytest.mark.parametrize("reporting", [True, False])
def test_results_page_shows_a_preview_before_the_report(trained, tmp_path, monkeypatch, reporting):
    root = tmp_path / "runs"
    monkeypatch.setenv("CNFM_RUNS", str(root))
    monkeypatch.setenv("CNFM_THREADS", "1")
    stages = [{"name": n, "label": n.replace("_", " "), "state": s, "fraction": f, "eta_s": e, "seconds": None}
              for n, s, f, e in [("map_preview", "done", 1.0, None), ("test_nll", "running", 0.4, 3.0),
                                 ("frames", "pending", 0.0, None), ("map", "pending", 0.0, None)]]
    # While reporting, the status names this (live) process as the worker, so the run is not taken as stale.
    extra = ({"state": "reporting", "pid": os.getpid(), "pid_start": start_time(os.getpid()), "stages": stages}
             if reporting else {})
    _preview_run(trained, root, extra)
    at = _app(root, "staged")
    titles = [m.value for m in at.markdown if m.value.startswith("**Learned")]
    assert any("preview" in t for t in titles), titles
    assert len(at.get("image")) >= 1
    assert not any(m.label.startswith("This model") for m in at.metric)  # no NLL table before report.json
    infos = " ".join(i.value for i in at.info)
    if reporting:
        assert "Computing the exact test NLL" in infos
        assert at.button(key="cancel_report").proto.label == "Cancel"
        assert any("test nll: running (40 %" in p.proto.text for p in at.get("progress")), \
            [p.proto.text for p in at.get("progress")]
    else:
        assert "was not computed" in infos and "Computing" not in infos
        assert at.button(key="compute_report").proto.label == "Compute the exact test NLL"
        assert not at.get("progress")  # no stale progress for a run that is not reporting


def test_results_page_offers_the_results_of_a_run_that_has_none(trained, tmp_path, monkeypatch):
    """A finished run without results (as after Step, which removes those of the older model) is offered a
    report job, and the button queues it."""
    root = tmp_path / "runs"
    monkeypatch.setenv("CNFM_RUNS", str(root))
    monkeypatch.setenv("CNFM_THREADS", "1")
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")
    run = RunDir(root / "stepped")
    shutil.copytree(trained, run.path)
    run.write_json(run.status, {"state": "done", "step": 20, "message": ""})
    at = _app(root, "stepped")
    assert any("no results for its current model (step 20)" in i.value for i in at.info)
    button = at.button(key="compute_results")
    assert button.proto.label == "Compute the results for step 20"
    monkeypatch.setattr("cnfm_core.jobs.JobRunner.poll", lambda self: [])  # queue only; no worker in this test
    button.click().run()
    assert not at.exception, at.exception
    assert RunDir(root / "stepped").read_json(RunDir(root / "stepped").request)["action"] == "report"
    assert RunStore(root).info("stepped").state == "queued"
