"""The Path page ("How noise becomes data") with AppTest, and the figure functions it adds to dashboard.figures."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnfm_core.config import TrainConfig
from cnfm_core.frames import read_frames, write_frames
from cnfm_core.jobs import ACTIVE, RunStore
from cnfm_core.kde import adaptive_kappas, kde_log_prob
from cnfm_core.runs import RunDir
from cnfm_core.sphere import grid_points
from cnfm_core.train import train
from dashboard import figures
from dashboard.text import plain

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
RUN = "tiny-run"
K = 3


@pytest.fixture(scope="module")
def land() -> dict[str, Any]:
    return figures.load_land()


# ---------------------------------------------------------------------------------------------
# Figures


def test_density_map_colour_range_is_optional(land: dict[str, Any]) -> None:
    lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
    heat = figures.density_map(lat, lon, np.zeros((2, 2)), land=land).data[0]
    assert heat.zmin is None and heat.zmax is None
    heat = figures.density_map(lat, lon, np.zeros((2, 2)), land=land, zmin=-3.0, zmax=1.0).data[0]
    assert (heat.zmin, heat.zmax) == (-3.0, 1.0)


def test_shared_log_range_and_symmetric_limit() -> None:
    assert figures.shared_log_range(np.array([-1.0, 2.0]), np.array([-5.0, np.nan, -np.inf])) == (-5.0, 2.0)
    assert figures.shared_log_range(np.array([5.0, -100.0]), span=4.0) == (1.0, 5.0)
    assert figures.shared_log_range(np.array([np.nan])) == (-1.0, 1.0)
    assert figures.symmetric_limit(np.r_[np.zeros(99), 50.0], q=99.0) < 50.0
    assert figures.symmetric_limit(np.zeros(3)) == 1.0


def test_cell_areas_and_weighted_residual_closed_forms() -> None:
    lat = (np.arange(90) + 0.5) * 2.0 - 90.0
    lon = (np.arange(180) + 0.5) * 2.0 - 180.0
    area = figures.cell_areas(lat, lon)
    assert area.shape == (90, 180) and area.sum() == pytest.approx(4 * math.pi, rel=1e-3)
    # Uniform p_t and r = cos(lat): mean |r| = E|cos lat| = pi / 4 under the uniform density.
    log_p = np.full((90, 180), -math.log(4 * math.pi))
    r = np.cos(np.deg2rad(lat))[:, None] * np.ones(180)
    w = figures.weighted_residual(lat, lon, log_p, -r)
    assert w.mass == pytest.approx(1.0, rel=1e-3)
    assert w.mean_abs == pytest.approx(math.pi / 4, rel=1e-3)
    np.testing.assert_allclose(w.values, -r / (4 * math.pi))
    r[0, 0] = np.nan
    assert np.isnan(figures.weighted_residual(lat, lon, log_p, r).values[0, 0])
    with pytest.raises(ValueError, match="same shape"):
        figures.weighted_residual(lat, lon, log_p, r[:, :5])


def test_residual_map_is_diverging_and_centred(land: dict[str, Any]) -> None:
    lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
    fig = figures.residual_map(lat, lon, np.array([[1.0, -3.0], [0.5, np.nan]]), land=land, title="r", limit=2.0)
    assert isinstance(fig, go.Figure)
    heat = fig.data[0]
    assert heat.type == "heatmap" and (heat.zmin, heat.zmax, heat.zmid) == (-2.0, 2.0, 0.0)
    assert heat.colorscale[0][1] != heat.colorscale[-1][1]  # a real two-colour scale
    assert figures.residual_map(lat, lon, np.array([[1.0, -3.0], [0.5, 0.0]]), land=land).data[0].zmax > 0


def test_split_antimeridian_and_view_centre() -> None:
    pieces = figures.split_antimeridian(np.array([0.0, 10.0, 20.0]), np.array([-170.0, 170.0, 160.0]))
    assert pieces == [[[-170.0, 0.0], [-180.0, 5.0]], [[180.0, 5.0], [170.0, 10.0], [160.0, 20.0]]]
    assert figures.split_antimeridian(np.array([1.0, 2.0]), np.array([10.0, 20.0])) == [[[10.0, 1.0], [20.0, 2.0]]]
    assert figures.view_centre(np.array([45.0]), np.array([-120.0])) == pytest.approx((45.0, -120.0))
    assert figures.view_centre(np.array([]), np.array([])) == (20.0, 0.0)
    assert figures.globe_zoom(60.0, 2.0) == pytest.approx(1.0)


def test_trajectory_paths_follow_great_circles_without_jumps() -> None:
    # Two particles over three frames; the second crosses the antimeridian.
    traj = np.array([[[0.0, 0.0], [10.0, 170.0]], [[0.0, 30.0], [10.0, -170.0]], [[30.0, 30.0], [20.0, -150.0]]])
    assert figures.trajectory_paths(traj, 0) == []
    paths = figures.trajectory_paths(traj, 2, max_step_deg=5.0)
    for path in paths:
        xy = np.asarray(path)
        assert np.all(np.abs(np.diff(xy[:, 0])) <= 180.0)
        assert np.all(np.hypot(*np.diff(xy, axis=0).T) <= 5.5)  # about max_step_deg apart here
    starts = [p[0] for p in paths]
    assert [0.0, 0.0] in starts and [170.0, 10.0] in starts
    assert any(p[-1][0] == 180.0 for p in paths) and any(p[0][0] == -180.0 for p in paths)
    with pytest.raises(ValueError, match="shape"):
        figures.trajectory_paths(traj[..., 0], 1)


def test_trajectories_globe_layers_offline(land: dict[str, Any]) -> None:
    traj = np.zeros((3, 4, 2))
    traj[:, :, 1] = np.array([0.0, 20.0, 40.0])[:, None]
    deck = figures.trajectories_globe(land, traj, 1)
    spec = json.loads(deck.to_json())
    assert [layer["id"] for layer in spec["layers"]] == ["ocean", "land", "coast", "trajectories", "points-0"]
    assert "http" not in deck.to_json() and spec.get("mapProvider") is None
    assert spec.get("mapStyle") in (None, "__MAP_STYLE__")  # pydeck's "no style", dropped by st.pydeck_chart
    assert spec["layers"][3]["widthUnits"] == "pixels" and spec["layers"][3]["data"]
    dots = spec["layers"][-1]["data"]
    assert {d["lon"] for d in dots} == {20.0}  # the particles at frame 1


# ---------------------------------------------------------------------------------------------
# The page


@pytest.fixture(scope="module")
def trained(tmp_path_factory, single_thread) -> Path:
    """A tiny trained run with frames (K = 3 on a 10 x 20 grid), in a store folder of its own."""
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(
        data=str(REPO / "assets" / "synthetic_mixture.csv"), steps=20, hidden=16, layers=2, eval_every=10**6, threads=1
    )
    train(config, root / RUN)
    write_frames(RunDir(root / RUN), n_frames=K, n_lat=10, n_lon=20, n_samples=50, n_trajectories=10)
    return root / RUN


@pytest.fixture(scope="module")
def trained_adaptive(tmp_path_factory, single_thread) -> Path:
    """Like ``trained``, with the adaptive target kernel."""
    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(
        data=str(REPO / "assets" / "synthetic_mixture.csv"),
        steps=20,
        hidden=16,
        layers=2,
        eval_every=10**6,
        threads=1,
        kernel="adaptive",
    )
    train(config, root / RUN)
    write_frames(RunDir(root / RUN), n_frames=K, n_lat=10, n_lon=20, n_samples=50, n_trajectories=10)
    return root / RUN


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_THREADS", "1")
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")  # no bundled demo runs here (tests/test_demo_runs.py has them)
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("views/path.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _shown_t(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("**t = ")).split("**")[1]


def test_page_without_runs(env):
    at = _app()
    assert at.title[0].value == "How noise becomes data"
    assert any("No run has path frames yet" in i.value and "Compute frames" in i.value for i in at.info)
    assert not at.select_slider


def test_page_shows_a_run(env, trained):
    shutil.copytree(trained, env / RUN)
    times = read_frames(RunDir(env / RUN)).times
    at = _app(run=RUN)
    slider = at.select_slider[0]
    assert slider.label == "t" and len(slider.options) == K and slider.value == 0.0
    assert _shown_t(at) == "t = 0.00"
    caption = next(c.value for c in at.caption if c.value.startswith("**t = "))
    assert f"A share of {TrainConfig().floor:.0%} of the target stays uniform" in caption  # the default floor
    # Only the open tab at t is drawn: the samples as a picture, with no globe (deck.gl) to wait for.
    assert len(at.get("plotly_chart")) == 1 and len(at.get("deck_gl_json_chart")) == 0
    assert len(at.get("image")) == 1 and not at.metric
    # The animation: one frame per time, both maps on one colour axis, Play and a slider of the browser's own
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["frames"]) == K and [f["traces"] for f in spec["frames"]] == [[0, 1]] * K
    assert {d.get("coloraxis") for d in spec["data"] if d["type"] == "heatmap"} == {"coloraxis"}
    assert [s["label"] for s in spec["layout"]["sliders"][0]["steps"]] == [f"{t:.2f}" for t in times]
    assert spec["layout"]["updatemenus"][0]["buttons"][0]["args"][0] is None  # Play: all frames, in the browser
    at.toggle(key="path_samples_on_globe").set_value(True).run()  # the same samples on a globe, on request
    assert not at.exception and len(at.get("deck_gl_json_chart")) == 1 and not at.get("image")
    layers = json.loads(at.get("deck_gl_json_chart")[0].proto.json)["layers"]
    assert {"points-0", "points-1"} <= {layer.get("id") for layer in layers}  # target and model samples
    at.session_state["path_tab"] = "Particle trajectories"
    at.run()
    assert not at.exception and len(at.get("deck_gl_json_chart")) == 1 and len(at.get("plotly_chart")) == 1
    at.session_state["path_tab"] = "Where they disagree"
    at.run()
    assert not at.exception and len(at.get("deck_gl_json_chart")) == 0 and len(at.get("plotly_chart")) == 2
    text = " ".join(m.value for m in at.markdown)
    assert "continuity equation" in text and "under-supplies" in text and "PPD loss" in text
    metric = at.metric[0]
    assert metric.label == "Mismatch at this t (PPD loss)" and float(metric.value.replace(",", "")) > 0
    assert "the ℓ = 1 PPD loss at this t" in metric.proto.help
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == [
        "Target map (PNG)",
        "Model map (PNG)",
        "Residual map (PNG)",
        "Samples globe (PNG)",
        "p_t animation (GIF)",
        "q_t animation (GIF)",
    ]

    middle = round(float(times[1]), 4)
    at.select_slider[0].set_value(middle).run()
    assert not at.exception
    assert _shown_t(at) == f"t = {middle:.2f}"
    assert f"t = {middle:.2f}" in json.dumps(at.get("plotly_chart")[1].proto.spec)  # the residual map follows t


def test_the_page_opens_in_plain_words_and_draws_densities_in_the_chosen_unit(env, trained):
    shutil.copytree(trained, env / RUN)
    at = _app(run=RUN)
    assert at.main.markdown[0].value.startswith("Watch dots scattered evenly over the globe")
    at.session_state["path_tab"] = "Where they disagree"  # the residual's tab, with its maths
    at.run()
    labels = [e.label for e in at.main.expander]
    assert labels == [
        "What am I looking at?",
        "How the target path is made (the maths)",
        "The maths: the continuity equation and the PPD residual",
    ]
    caption = next(c.value for c in at.caption if c.value.startswith("**Play**"))
    assert "× uniform" in caption and "nan" not in caption
    bar = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["coloraxis"]["colorbar"]
    assert bar["title"]["text"] == "density (× uniform)" and "×1" in bar["ticktext"]  # the default unit
    at.sidebar.radio[0].set_value("log").run()  # one choice for the whole app, in the sidebar
    assert not at.exception
    bar = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["coloraxis"]["colorbar"]
    assert bar["title"]["text"] == "log density (nats)" and "ticktext" not in bar
    assert " nats" in next(c.value for c in at.caption if c.value.startswith("**Play**"))


def test_a_target_without_floor_is_not_said_to_have_one(env, trained):
    shutil.copytree(trained, env / RUN)
    meta = json.loads((env / RUN / "config.json").read_text())
    del meta["config"]["floor"]  # a run from before floors existed
    (env / RUN / "config.json").write_text(json.dumps(meta))
    at = _app(run=RUN)
    caption = next(c.value for c in at.caption if c.value.startswith("**t = "))
    assert caption.startswith("**t = 0.00**") and "uniform at every t" not in caption


def test_shared_link_opens_the_same_run_and_time(env, trained):
    shutil.copytree(trained, env / RUN)
    times = read_frames(RunDir(env / RUN)).times
    at = _app(run=RUN, t="0.5")
    nearest = times[np.argmin(np.abs(times - 0.5))]  # a link's t opens the nearest frame
    assert _shown_t(at) == f"t = {nearest:.2f}"
    at.select_slider[0].set_value(1.0).run()
    assert at.query_params["t"] in ("1.00", ["1.00"])  # the URL follows the time shown
    at.switch_page("views/data.py").run()  # sidebar navigation drops URL parameters ...
    at.switch_page("views/path.py").run()
    assert at.query_params["run"] in (RUN, [RUN])  # ... but the session keeps the run and puts it back


def test_run_without_frames_offers_to_compute_them(env, trained):
    shutil.copytree(trained, env / RUN)
    (env / RUN / "frames.npz").unlink()
    at = _app(run=RUN)
    assert any("no path frames yet" in i.value for i in at.info)
    assert not at.select_slider
    at.button(key="compute_frames").click().run()
    assert not at.exception
    assert any("Computing the path frames" in i.value for i in at.info)
    store = RunStore(env)
    assert store.info(RUN).job == "frames"  # a job of the dashboard's runner, not a process of the page
    t0 = time.time()  # generous: the worker imports torch and computes 31 frames on two shared cores
    while store.info(RUN).state in ACTIVE and time.time() - t0 < 300:
        time.sleep(0.3)
    assert (env / RUN / "frames.npz").exists(), (env / RUN / "worker.log").read_text()
    info = store.info(RUN)
    assert info.state == "done" and not info.job_error  # the run keeps its state
    at.run()
    assert not at.exception
    assert len(at.select_slider[0].options) == 31  # the default


def test_an_adaptive_run_says_its_kernel_and_shows_its_target(env, trained_adaptive):
    shutil.copytree(trained_adaptive, env / RUN)
    at = _app(run=RUN)
    caption = next(c.value for c in at.caption if "reference concentration κ(t)" in c.value)  # in the maths
    assert "adaptive kernel" in caption
    assert "adaptive kernel" in " ".join(m.value for m in at.markdown)  # and in how the target path is made
    # the frames' target at t = 1 is the adaptive kernel density of the training points (with the floor)
    run = RunDir(env / RUN)
    frames, config = read_frames(run), TrainConfig.from_dict(run.read_json(run.config)["config"])
    grid = grid_points(frames.lat, frames.lon, dtype=torch.float64).numpy()
    train_x = run.read_split()["train"].astype(np.float32).astype(np.float64)
    kappas = adaptive_kappas(train_x, config.kernel_neighbours, config.kernel_scale)
    expected = kde_log_prob(grid, train_x, kappas, config.floor).reshape(frames.target_log_prob[-1].shape)
    np.testing.assert_allclose(frames.target_log_prob[-1], expected, rtol=0, atol=1e-3)


def test_a_failed_frames_job_is_explained_and_can_be_retried(env, trained):
    shutil.copytree(trained, env / RUN)
    (env / RUN / "frames.npz").unlink()
    status = json.loads((env / RUN / "status.json").read_text())
    status["job_error"] = "computing the frames failed: out of memory"  # what the worker keeps after a failure
    (env / RUN / "status.json").write_text(json.dumps(status))
    (env / RUN / "worker.log").write_text("Traceback ...\nMemoryError\n")
    at = _app(run=RUN)
    said = plain("Computing the frames failed: out of memory")  # run messages are shown as plain text
    assert any(said in e.value and "MemoryError" in e.value for e in at.error)
    assert at.button(key="compute_frames").label == "Compute frames"  # the run keeps its state: it can try again


def test_an_rfm_run_is_not_measured_against_ppd_as_if_it_were_its_own(env, trained):
    shutil.copytree(trained, env / RUN)
    meta = json.loads((env / RUN / "config.json").read_text())
    meta["config"]["objective"] = "rfm"  # its frames are the same kind: the model's path and PPD's target path
    (env / RUN / "config.json").write_text(json.dumps(meta))
    at = _app(run=RUN)
    assert any("trained with **RFM**" in i.value and "PPD's" in i.value for i in at.info)
    titles = [a["text"] for a in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"]]
    assert titles == ["PPD's target path p_t (for comparison)", "Model path q_t (RFM)"]
    at.session_state["path_tab"] = "Where they disagree"
    at.run()
    assert "What PPD would measure: its residual for this RFM model" in " ".join(m.value for m in at.markdown)
    # and a PPD run keeps its own words
    meta["config"]["objective"] = "ppd"
    (env / RUN / "config.json").write_text(json.dumps(meta))
    at = _app(run=RUN)
    assert not any("RFM" in i.value for i in at.info)
    at.session_state["path_tab"] = "Where they disagree"
    at.run()
    text = " ".join(m.value for m in at.main.markdown)  # (the sidebar's glossary says what RFM is)
    assert "Where the flow and the target disagree: the PPD residual" in text and "RFM" not in text


def test_every_download_of_the_page_renders(trained):
    """The files behind the download buttons (rendered only on a click, so no page run draws them)."""
    from dashboard import pathfiles

    path = str(trained)
    mtime = (trained / "frames.npz").stat().st_mtime
    pngs = [pathfiles.map_png(path, mtime, 1, which, unit) for which in ("target", "model")
            for unit in ("log", "times")]
    pngs += [pathfiles.map_png(path, mtime, 1, "residual"), pathfiles.samples_png(path, mtime, 1),
             pathfiles.samples_map_png(path, mtime, 1)]
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    for which in ("target", "model"):
        assert pathfiles.path_gif(path, mtime, which, "times")[:6] in (b"GIF87a", b"GIF89a")
