"""The Target path page with AppTest: the path of the chosen data set before training, its κ_max slider, samples,
and the figure it draws (dashboard/figures/pathpreview.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from pages import open_page
from streamlit.testing.v1 import AppTest

from cnfm_core.pathpreview import schedule_kappa
from dashboard import state
from dashboard.figures.pathpreview import LEVELS, frame_title, target_path_figure

PAGE = "views/target.py"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    lat, lon = 36.0 + rng.uniform(-4, 4, 120), 138.0 + rng.uniform(-4, 4, 120)
    rows = "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(lat, lon, strict=True))
    (data_dir / "japan.csv").write_text("lat,lon\n" + rows)
    (data_dir / "broken.csv").write_text("lat,lon\n1,2\n![b](http://HOST/b.png),3\n")
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DATA_DIR", str(data_dir))
    return tmp_path


def _spec(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def _last_title(at: AppTest) -> str:
    return _spec(at)["frames"][-1]["layout"]["title"]["text"]


def test_the_page_draws_the_path_from_noise_to_the_data(env: Path) -> None:
    at = open_page(PAGE, data="dir:japan")
    assert at.title[0].value == "Target path"
    assert "Before any model is trained" in at.markdown[0].value
    spec = _spec(at)
    assert len(spec["frames"]) == 21 and spec["layout"]["sliders"][0]["steps"][-1]["label"] == "1.00"
    assert spec["frames"][0]["layout"]["title"]["text"] == frame_title(0.0, 0.0)  # t = 0: uniform noise
    assert _last_title(at) == frame_title(1.0, 3000.0)  # the default κ_max (the Train page's is auto)
    assert at.select_slider(key=state.PREVIEW_KAPPA).value == "3000"
    assert any("von Mises-Fisher" in m.value for m in at.markdown)  # the maths, in the expander
    assert any("training points" in c.value for c in at.caption)
    # the first frame is uniform: one colour; the last holds the data: many
    first, last = (
        np.frombuffer(base64.b64decode(f["data"][0]["z"]["bdata"]), np.uint8)
        for f in (spec["frames"][0], spec["frames"][-1])
    )
    assert np.unique(first).size == 1 and np.unique(last).size > 20


def test_changing_kappa_max_redraws_the_path(env: Path) -> None:
    at = open_page(PAGE, data="dir:japan")
    before = _spec(at)
    at.select_slider(key=state.PREVIEW_KAPPA).set_value("30000").run()
    assert not at.exception, at.exception
    after = _spec(at)
    assert _last_title(at) == frame_title(1.0, 30000.0) and after["frames"][-1] != before["frames"][-1]
    kappa_half = float(schedule_kappa("exponential", 30000.0, 0.5))
    assert after["frames"][10]["layout"]["title"]["text"] == frame_title(0.5, kappa_half)
    kmax = at.query_params["kmax"]
    assert (kmax[0] if isinstance(kmax, list) else kmax) == "30000"  # a shared link opens the same path


def test_samples_can_be_hidden(env: Path) -> None:
    at = open_page(PAGE, data="dir:japan")
    assert _spec(at)["data"][1]["visible"] is True
    at.toggle(key="target_samples").set_value(False).run()
    assert not at.exception and _spec(at)["data"][1]["visible"] is False


def test_kappa_max_comes_from_the_link_or_the_train_pages_setting(env: Path) -> None:
    at = open_page(PAGE, data="dir:japan", kappa="10000")  # the Train page's κ_max
    assert at.select_slider(key=state.PREVIEW_KAPPA).value == "10000" and _last_title(at) == frame_title(1.0, 1e4)
    at = open_page(PAGE, data="dir:japan", kmax="abc")
    assert any("kmax" in w.value for w in at.warning) and at.select_slider(key=state.PREVIEW_KAPPA).value == "3000"


def test_a_data_set_that_cannot_be_read_gets_one_line(env: Path) -> None:
    at = open_page(PAGE, data="dir:broken")
    (error,) = at.error
    assert "cannot be read" in error.value and "![b](http" not in error.value
    assert not at.get("plotly_chart")


def test_the_figure_sends_one_byte_a_cell_on_one_colour_scale() -> None:
    lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
    grids = [(lat, lon, np.full((2, 2), -2.5)), (lat, lon, np.array([[-9.0, -3.0], [0.0, 4.0]]))]
    samples = [(np.zeros(3), np.zeros(3)), (np.ones(3), np.ones(3))]
    fig = target_path_figure(np.array([0.0, 1.0]), np.array([0.0, 10.0]), grids, samples, land=None, unit="log")
    z = [np.asarray(f.data[0].z) for f in fig.frames]
    assert all(v.dtype == np.uint8 for v in z) and z[1].max() == LEVELS - 1
    assert z[1][0, 0] == 0  # -9 is more than 10 nats below the top (4): the lowest colour
    bar = fig.layout.coloraxis.colorbar
    assert list(bar.ticktext) == ["−6", "−4", "−2", "0", "2", "4"] and bar.tickvals[0] == 0 and bar.tickvals[-1] == 255
    with pytest.raises(ValueError, match="one map"):
        target_path_figure(np.array([0.0]), np.array([0.0, 1.0]), grids, None, land=None)


def test_the_other_kappa_values_are_computed_in_the_background_at_a_lower_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the page hands to targetcache.prefetch: every other κ_max, nearest first, computed once each in one
    thread whose own niceness is raised; a second call while it works starts no second thread."""
    import os
    import threading

    from cnfm_core.data import read_points
    from dashboard import targetcache as tc

    csv = tmp_path / "pts.csv"
    rng = np.random.default_rng(1)
    csv.write_text("lat,lon\n" + "".join(f"{a:.3f},{b:.3f}\n" for a, b in rng.uniform(-60, 60, (61, 2))))
    points = read_points(csv)
    seen: list[tuple[float, int, str]] = []
    real = tc.preview_path
    release = threading.Event()

    mine = tc.training_rows(points.xyz, split="standard", seed=123).size  # 49 rows: other tests' threads pass by

    def counted(xyz: np.ndarray, *, kappa_max: float) -> object:
        if xyz.shape[0] != mine:
            return real(xyz, kappa_max=kappa_max)
        me = threading.current_thread()
        seen.append((kappa_max, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), me.name))
        release.wait(30)
        return real(xyz, kappa_max=kappa_max)

    monkeypatch.setattr(tc, "preview_path", counted)
    kappas = ["100", "300", "1000", "3000"]
    keys = [(str(csv), 1.0, "standard", 123, float(k)) for k in tc.prefetch_order(kappas, "300")]
    assert [k[4] for k in keys] == [1000.0, 100.0, 3000.0]
    base = os.getpriority(os.PRIO_PROCESS, 0)
    tc.prefetch(keys, points, True, "log")
    tc.prefetch(keys, points, True, "log")  # already at work on this group: nothing new
    _, running = tc._running()
    worker = running[(str(csv), 1.0, "standard", 123, True, "log")]
    release.set()
    worker.join(60)
    assert not worker.is_alive()
    assert [s[0] for s in seen] == [1000.0, 100.0, 3000.0]  # each once, in order, in one thread
    assert {s[2] for s in seen} == {"target-path-prefetch"}
    assert all(s[1] == min(19, base + tc.PREFETCH_NICE) for s in seen)
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the server's own threads keep theirs
    tc.preview(keys[0], points)  # cached: computed no second time
    assert len(seen) == 3
