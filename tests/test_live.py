"""The classroom loop: the live picture during training, status by time, the step budget floor, Step that
continues the selected run (and is off, saying why, while the run is busy), and curves that draw one point."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnfm_core import train as train_module
from cnfm_core.builders import load_field
from cnfm_core.config import TrainConfig
from cnfm_core.field import VectorField
from cnfm_core.grid import cell_centres
from cnfm_core.integrate import log_likelihood
from cnfm_core.jobs import FINISHED, RunStore
from cnfm_core.live import LiveSnapshots, live_preview
from cnfm_core.procs import start_time
from cnfm_core.runs import RunDir
from cnfm_core.sphere import LOG_AREA, grid_points
from cnfm_core.train import train
from dashboard import figures, progress

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
TINY = dict(hidden=32, layers=2, batch_size=128, log_every=10**6, eval_every=10**6, threads=1)


def _config(data: Path, **kw: object) -> TrainConfig:
    return TrainConfig(data=str(data), **{**TINY, **kw})


class _Recorder(LiveSnapshots):
    """The real snapshots, also noting the step of each one written (and the status seen at every step)."""

    def __init__(self, run: RunDir, **kw: object) -> None:
        super().__init__(run, **kw)
        self.steps: list[int] = []
        self.status_steps: list[int] = []

    def __call__(self, field: torch.nn.Module, step: int, elapsed: float, final: bool = False) -> bool:
        if not final:
            self.status_steps.append(json.loads(self.run.status.read_text())["step"])
        wrote = super().__call__(field, step, elapsed, final)
        if wrote:
            self.steps.append(int(np.load(self.run.live)["step"]))
        return wrote


def test_live_npz_is_written_during_training(tmp_path, synthetic_csv):
    run = RunDir(tmp_path / "run")
    # first=0: the first snapshot comes after the first step, whatever the machine's speed
    hook = _Recorder(run, first=0.0, interval=1e-6, share=1.0)
    result = train(_config(synthetic_csv, steps=6), run.path, live=hook)
    assert result.step == 6
    assert hook.steps[0] == 1 and hook.steps[-1] == 6  # during training, and at its end
    with np.load(run.live) as z:
        assert z["lat"].shape == (15,) and z["lon"].shape == (30,)
        assert z["log_prob"].shape == (15, 30) and z["log_prob"].dtype == np.float32
        assert z["samples"].shape == (300, 2) and z["samples"].dtype == np.float32
        assert int(z["step"]) == 6 and float(z["elapsed"]) > 0
        assert np.isfinite(z["log_prob"]).all() and np.isfinite(z["samples"]).all()
        assert (np.abs(z["samples"][:, 0]) <= 90).all() and (np.abs(z["samples"][:, 1]) <= 180).all()


def test_snapshots_wait_for_their_interval_and_share(tmp_path):
    run = RunDir(tmp_path / "run")
    field = VectorField(hidden=8, layers=1)
    hook = LiveSnapshots(run, first=0.0, interval=3600.0, n_lat=4, n_lon=8, n_samples=5)
    assert hook(field, 1, 0.1) and not hook(field, 2, 0.2)  # the next one is an hour away ...
    assert hook(field, 3, 0.3, True) and hook.written == 2  # ... but the end of training always writes
    assert int(np.load(run.live)["step"]) == 3


def test_preview_density_integrates_to_one_and_matches_the_exact_one(tmp_path, synthetic_csv):
    zero = VectorField(hidden=8, layers=1)  # an untrained field is v = 0: exactly uniform
    flat = live_preview(zero, n_lat=6, n_lon=12, n_samples=10)
    np.testing.assert_allclose(flat.log_prob, -LOG_AREA, atol=1e-5)
    run = RunDir(tmp_path / "run")
    train(_config(synthetic_csv, steps=40, hidden=64, kappa_max=100.0), run.path)
    field, _ = load_field(run)
    preview = live_preview(field)
    assert abs(preview.mass - 1.0) < 0.06, preview.mass  # a density: about 1 over the sphere
    assert preview.log_prob.std() > 0.05  # and no longer uniform
    lat, lon = cell_centres(15, 30)
    exact = log_likelihood(field, grid_points(lat, lon, dtype=torch.float32)).log_prob.numpy().reshape(15, 30)
    assert np.abs(preview.log_prob - exact).mean() < 0.1


def test_status_is_written_by_time_between_log_lines(tmp_path, synthetic_csv, monkeypatch):
    monkeypatch.setattr(train_module, "STATUS_SECONDS", 0.0)  # "every 0 s": every step, with no log line due
    monkeypatch.setattr(train_module, "LOG_SECONDS", 1e9)
    run = RunDir(tmp_path / "run")
    hook = _Recorder(run, first=1e9)  # only reads the status: no snapshot before the end
    train(_config(synthetic_csv, steps=5), run.path, live=hook)
    assert hook.status_steps == [1, 2, 3, 4, 5]
    assert not [r for r in run.read_metrics() if "loss" in r and r["step"] < 5]  # no log line told it to


def test_time_budget_runs_on_to_min_steps(tmp_path, synthetic_csv):
    run = RunDir(tmp_path / "run")
    result = train(_config(synthetic_csv, minutes=1e-6, min_steps=12), run.path)
    assert result.state == "done" and result.step == 12  # the time was up after the first step
    assert json.loads(run.status.read_text())["min_steps"] == 12


def test_one_point_curves_have_markers():
    fig = figures.curves([{"step": 50, "loss": 1.2}, {"step": 50, "val_nll": 2.0}])
    assert [len(t.x) for t in fig.data if t.type == "scatter"] == [1, 1]
    assert all("markers" in t.mode for t in fig.data if t.type == "scatter")


def test_progress_texts_never_say_nan():
    texts = [
        progress.running_progress(elapsed=5.0, step=10, budget_s=60.0, min_steps=300, steps=None, rate=None)[1],
        progress.running_progress(elapsed=5.0, step=10, budget_s=None, min_steps=None, steps=60, rate=None)[1],
        progress.running_progress(elapsed=70.0, step=200, budget_s=60.0, min_steps=300, steps=None, rate=2.0)[1],
        progress.stage_text({"label": "exact test NLL", "state": "running", "fraction": math.nan, "eta_s": math.nan}),
        progress.stage_text({"name": "frames", "state": "done", "seconds": None}),
    ]
    assert not [t for t in texts if "nan" in t.lower()], texts
    assert texts[2] == "training: 70 s of at least 60 s, step 200 of at least 300; about 50 s left"
    assert progress.near_uniform(LOG_AREA - 0.1) and not progress.near_uniform(1.0)
    assert not progress.near_uniform(None)


# -- Step on the Train page (AppTest, with a real worker)

@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CNFM_THREADS", "1")
    return tmp_path


def _page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("views/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _step_button(at: AppTest):
    return next(b for b in at.button if b.label.startswith("Step"))


def _wait_finished(store: RunStore, run_id: str, timeout: float = 240.0) -> str:
    # generous: a worker process imports torch and trains 50 steps on a machine shared with other tests
    t0 = time.time()
    while time.time() - t0 < timeout:
        info = store.info(run_id)
        if info.state in FINISHED:
            return info.state
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish")


def test_step_continues_the_selected_run(env, synthetic_csv):
    store = RunStore(env / "runs")
    run = store.run_dir("tiny")
    train(_config(synthetic_csv, steps=20, log_every=10), run.path)
    at = _page(run="tiny")
    _step_button(at).click().run()
    assert not at.exception and not at.error
    assert at.query_params["run"] in ("tiny", ["tiny"])
    assert [r.run_id for r in store.runs() if not getattr(r, "demo", False)] == ["tiny"]  # no new run
    assert _wait_finished(store, "tiny") == "done"
    assert store.info("tiny").step == 70
    assert int(np.load(run.live)["step"]) == 70 and not run.report.exists()  # the quick picture, no report
    at = _page(run="tiny")
    assert len(at.get("plotly_chart")) == 2  # the curves and the picture
    assert any("model after step 70" in s.value for s in at.success)


def test_step_is_off_with_a_reason_while_the_run_is_busy(env, synthetic_csv):
    store = RunStore(env / "runs")
    run = store.run_dir("busy")
    train(_config(synthetic_csv, steps=5), run.path)
    status = json.loads(run.status.read_text())
    status.update(state="running", pid=os.getpid(), pid_start=start_time(os.getpid()))  # this process is alive
    run.write_json(run.status, status)
    at = _page(run="busy")
    step = _step_button(at)
    assert step.disabled
    assert any("Step is off while this run is busy (running" in c.value for c in at.caption)
    assert not any("nan" in c.value.lower() for c in at.caption)
