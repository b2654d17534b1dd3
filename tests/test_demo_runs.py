"""The bundled demo runs (assets/demo, made by scripts/make_demo_runs.py): they load with the current code and
reproduce their own reports, they are small, the run store lists them read-only, and the pages show them on
first open until the user has a run of their own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnfm_core.config import TrainConfig
from cnfm_core.jobs import DEFAULT_DEMO_ROOT, JobRunner, RunStore
from cnfm_core.pathframes import read_frames
from cnfm_core.runs import RunDir, RunError

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
DEMOS = ("synthetic", "cities")
#: The most the demo runs may take in the repository, all together (they are committed).
SIZE_LIMIT_MB = 6.0
FILES = ("checkpoint.pt", "config.json", "split.npz", "metrics.jsonl", "status.json", "report.json", "density.npz",
         "samples.csv", "frames.npz")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_the_demo_runs_are_bundled_whole_and_small():
    assert DEFAULT_DEMO_ROOT == REPO / "assets" / "demo"
    for name in DEMOS:
        present = sorted(p.name for p in (DEFAULT_DEMO_ROOT / name).iterdir())
        assert present == sorted(FILES), name
    total = sum(p.stat().st_size for p in DEFAULT_DEMO_ROOT.rglob("*") if p.is_file())
    assert total < SIZE_LIMIT_MB * 2**20, f"assets/demo holds {total / 2**20:.2f} MB"


@pytest.mark.parametrize("name", DEMOS)
def test_a_demo_loads_with_the_current_code(name, single_thread):
    from cnfm_core.builders import load_field

    run = RunDir(DEFAULT_DEMO_ROOT / name)
    meta = run.read_json(run.config)
    TrainConfig.from_dict(meta["config"]).validate()
    assert not Path(meta["config"]["data"]).is_absolute() and (REPO / meta["config"]["data"]).is_file()
    field, config = load_field(run)
    assert config.data == meta["config"]["data"] and config.objective == "ppd" and config.ell == 1
    state = run.load_checkpoint()
    assert state["optimizer"] == {}  # stripped: what load_field needs, no optimizer state
    status = run.read_json(run.status)
    assert status["state"] == "done" and status["step"] == state["step"] > 0 and "pid" not in status

    frames = read_frames(run)
    k, n_lat, n_lon = len(frames.times), len(frames.lat), len(frames.lon)
    assert k >= 2 and frames.times[0] == 0.0 and frames.times[-1] == 1.0
    for grid in (frames.target_log_prob, frames.model_log_prob, frames.residual):
        assert grid.shape == (k, n_lat, n_lon) and np.isfinite(grid).all()
    s = frames.model_samples.shape[1]
    assert frames.target_samples.shape == frames.model_samples.shape == (k, s, 2)
    assert frames.trajectories.shape[0] == k and frames.trajectories.shape[1] <= s
    assert frames.trajectories.shape[2] == 2

    density = run.read_npz(run.density)
    assert density["log_prob"].shape == (len(density["lat"]), len(density["lon"]))
    assert np.isfinite(density["log_prob"]).all()
    samples = np.loadtxt(run.samples, delimiter=",", skiprows=1, ndmin=2)
    assert samples.shape[1] == 2 and len(samples) > 0 and np.abs(samples[:, 0]).max() <= 90


@pytest.mark.parametrize("name", DEMOS)
def test_a_demo_report_is_reproduced_by_the_current_code(name, single_thread):
    """The exact test NLL, re-evaluated now at the report's tolerances, matches report.json: a change in the
    code's numerics (field, divergence, solver) shows here."""
    from cnfm_core.builders import load_field
    from cnfm_core.integrate import evaluate_nll

    run = RunDir(DEFAULT_DEMO_ROOT / name)
    report = run.read_json(run.report)
    field, _ = load_field(run)
    test = run.read_split()["test"]
    assert report["n_test"] == len(test) > 0
    est = evaluate_nll(field, test, rtol=report["rtol"], atol=report["atol"])
    assert abs(est.mean - report["test_nll"]) < 1e-3, (est.mean, report["test_nll"])
    assert report["test_nll"] < report["uniform_nll"]
    if name == "synthetic":  # recognisable: close to the truth (about 0.33), far from uniform (2.53)
        assert report["test_nll"] <= 0.6 and report["true_nll"] < report["test_nll"]


def test_the_store_lists_the_demos_read_only(tmp_path):
    store = RunStore(tmp_path / "runs", demo_root=DEFAULT_DEMO_ROOT)
    runs = store.runs()
    assert {r.run_id for r in runs} == {f"demo-{n}" for n in DEMOS} and all(r.demo for r in runs)
    assert runs[0].run_id == "demo-synthetic"  # the newest: what pages show first
    assert store.exists("demo-synthetic") and store.run_dir("demo-synthetic").path == DEFAULT_DEMO_ROOT / "synthetic"
    info = store.info("demo-synthetic")
    assert info.state == "done" and info.data_name == "synthetic_mixture.csv" and info.demo
    before = _digest(DEFAULT_DEMO_ROOT)
    runner = JobRunner(store)
    attempts = {"trained further": lambda: store.request_resume("demo-synthetic", steps=10_000),
                "given a new frames": lambda: store.request_job("demo-synthetic", "frames"),
                "given a new report": lambda: store.request_job("demo-cities", "report"),
                "stopped": lambda: runner.stop("demo-synthetic"),
                "cancelled": lambda: store.request_cancel("demo-synthetic"),
                "deleted": lambda: store.delete("demo-cities")}
    for what, attempt in attempts.items():
        with pytest.raises(RunError, match="bundled demo run \\(read-only\\)") as e:
            attempt()
        assert what in str(e.value) and "\n" not in str(e.value)
    assert runner.poll() == [] and _digest(DEFAULT_DEMO_ROOT) == before  # nothing was written


def test_a_store_without_demos_and_a_run_of_the_same_id(tmp_path):
    assert RunStore(tmp_path / "a", demo_root=None).runs() == []
    assert not RunStore(tmp_path / "a", demo_root=None).exists("demo-synthetic")
    assert not RunStore(tmp_path / "b", demo_root=tmp_path / "missing").runs()
    # A run of the user's own with a demo's id is the user's (writable, listed once) and hides the demo.
    store = RunStore(tmp_path / "c", demo_root=DEFAULT_DEMO_ROOT)
    own = store.root / "demo-cities"
    own.mkdir()
    (own / "status.json").write_text(json.dumps({"state": "stopped", "step": 3}))
    runs = {r.run_id: r for r in store.runs()}
    assert set(runs) == {"demo-synthetic", "demo-cities"} and not runs["demo-cities"].demo
    assert store.run_dir("demo-cities").path == own
    store.delete("demo-cities")
    assert not own.exists() and store.info("demo-cities").demo


def test_delete_removes_a_finished_run_of_the_users_own_only(tmp_path):
    store = RunStore(tmp_path, demo_root=None)
    for run_id, state in (("finished", "done"), ("busy", "running")):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "status.json").write_text(json.dumps({"state": state, "pid": 0}))
    store.delete("finished")
    assert not (tmp_path / "finished").exists()
    with pytest.raises(RunError, match="no run nothing-here"):
        store.delete("nothing-here")
    # "busy" says running but has no live process: it reads as failed (stale), so it may go.
    store.delete("busy")
    assert not (tmp_path / "busy").exists()


# ---------------------------------------------------------------------------------------------
# The pages


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A fresh dashboard: an empty run store and the bundled demos (the default demo folder)."""
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_THREADS", "1")
    monkeypatch.delenv("CNFM_DEMO_RUNS", raising=False)
    return tmp_path / "runs"


def _page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_results_shows_the_demo_density_on_first_open(fresh):
    at = _page("views/results.py")
    assert at.selectbox[0].value == "demo-synthetic"
    assert "This model (exact likelihood)" in [m.label for m in at.metric]
    assert len(at.get("image")) == 2  # the learned and the true density, as pictures
    assert "**Learned density**" in [m.value for m in at.markdown]
    assert "run" not in at.query_params  # the fallback is not written to the URL


def test_path_shows_the_demo_frames_read_only(fresh):
    at = _page("views/path.py")
    assert at.selectbox(key="path_run").value == "demo-synthetic"
    assert any(c.value.startswith("Demo run (bundled, read-only)") for c in at.caption)
    assert len(at.select_slider) == 1 and len(at.get("plotly_chart")) == 1  # the animation (the residual is a tab)
    assert len(at.select_slider[0].options) >= 30  # the bundled frames are of the current kind
    assert not [b for b in at.button if b.key == "compute_frames"]
    at.selectbox(key="path_run").set_value("demo-cities").run()
    assert not at.exception and at.select_slider[0].label == "t"


def test_runs_lists_the_demos_and_opens_them(fresh):
    at = _page("views/runs.py")
    table = at.dataframe[0].value
    assert set(table["Run"]) == {"demo-synthetic", "demo-cities"}
    assert set(table["Source"]) == {"demo (read-only)"}
    ids = list(table["Run"])
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index("demo-cities")], "columns": []}}
    at.run()
    assert not [b for b in at.button if b.key == "open_train"]  # a demo is not trained further
    at.button(key="open_path").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "How noise becomes data" and at.selectbox(key="path_run").value == "demo-cities"


def _current_run_id() -> None:
    import streamlit as st

    from dashboard import state

    st.text(f"current={state.current_run_id()}")


def test_current_run_falls_back_to_the_demo_only_without_runs_of_ones_own(fresh):
    at = AppTest.from_function(_current_run_id, default_timeout=60).run()
    assert at.text[0].value == "current=demo-synthetic"
    own = fresh / "my-run"
    own.mkdir(parents=True)
    (own / "status.json").write_text(json.dumps({"state": "stopped", "step": 5}))
    at = AppTest.from_function(_current_run_id, default_timeout=60).run()
    assert at.text[0].value == "current=None"
    at = AppTest.from_function(_current_run_id, default_timeout=60)
    at.query_params["run"] = "demo-cities"  # a demo chosen on purpose still opens
    at.run()
    assert at.text[0].value == "current=demo-cities"


def test_the_train_page_is_not_taken_by_a_demo(fresh):
    """On first open the Train page has no run (the demo is for looking), so Step is on and starts a run."""
    at = _page("views/train.py")
    assert any("No run yet" in i.value for i in at.info)
    step = next(b for b in at.button if b.proto.label.startswith("Step"))
    assert not step.proto.disabled
    # an explicitly opened demo is shown, read-only, with Step off
    at = _page("views/train.py", run="demo-cities")
    step = next(b for b in at.button if b.proto.label.startswith("Step"))
    assert step.proto.disabled
