"""Page tests with Streamlit's AppTest: every page, its widgets, uploads good and bad, a run reattached from the URL."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnfm_core.config import TrainConfig
from cnfm_core.jobs import FINISHED, RunStore

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def env(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "islands.csv").write_text("lat,lon\n" + "".join(f"{10 + i % 7},{20 + i % 11}\n" for i in range(60)))
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CNFM_THREADS", "1")
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")  # no bundled demo runs here (tests/test_demo_runs.py has them)
    return tmp_path


def _app(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def _shown(boxes) -> str:
    """The text of message boxes as a reader sees it: the escapes that keep file text plain removed."""
    return re.sub(r"\\(.)", r"\1", " ".join(b.value for b in boxes))


def _wait(store: RunStore, run_id: str, timeout: float = 240.0, *, report: bool = True) -> str:
    """Wait for the run to finish (with its report, unless ``report=False``: a Step writes none)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        info = store.info(run_id)
        if info.state in FINISHED and (store.run_dir(run_id).report.exists() or info.state == "failed" or not report):
            return info.state
        time.sleep(1.0)
    raise TimeoutError(f"run {run_id} did not finish")


def test_data_page_defaults(env):
    at = _app()
    assert at.title[0].value == "Points on the globe"
    sel = at.selectbox(key="data_select")
    assert sel.value == "synthetic"
    assert "islands (data folder)" in sel.options and "World cities (GeoNames)" in sel.options
    values = {m.label: m.value for m in at.metric}
    assert values["Points"] == "2,000"
    assert len(at.get("plotly_chart")) == 1 and not at.get("deck_gl_json_chart")  # the flat map; the globe is a tab
    assert [b.proto.label for b in at.get("download_button")] == ["Globe (PNG)"]


def test_data_page_select_folder_set_goes_to_url(env):
    at = _app()
    at.selectbox(key="data_select").set_value("dir:islands").run()
    assert not at.exception
    assert at.query_params["data"] == ["dir:islands"] or at.query_params["data"] == "dir:islands"
    values = {m.label: m.value for m in at.metric}
    assert values["Points"] == "60" and values["Unique locations"] == "60"


def test_upload_good_file(env):
    at = _app()
    content = b"City,Latitude,Longitude\nA,10.5,20\nB,-33.9,151.2\nC,51.5,-0.1\n"
    at.file_uploader(key="upload").set_value(("my points.csv", content, "text/csv")).run()
    assert at.selectbox(key="lat_col").value == "Latitude"
    assert at.selectbox(key="lon_col").value == "Longitude"
    at.button(key="use_upload").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="data_select").value.startswith("upload:my-points-")
    assert {m.label: m.value for m in at.metric}["Points"] == "3"
    saved = list((env / "runs" / "uploads").glob("*.csv"))
    assert len(saved) == 1 and saved[0].read_text().startswith("lat,lon\n")


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"lat,lon\n10,20\n95,0\n", "line 3"),
        (b"lat,lon\n10,20\nNaN,0\n", "line 3"),
        (b"lat,lon\n10,20\nten,0\n", "line 3"),
        (b"lat,lon\n10,20\n", "at least 2"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "UTF-8"),
    ],
)
def test_upload_bad_file_keeps_session(env, content, needle):
    at = _app()
    at.file_uploader(key="upload").set_value(("bad.csv", content, "text/csv")).run()
    assert not at.exception
    if at.button(key="use_upload") if _has_button(at, "use_upload") else False:
        at.button(key="use_upload").click().run()
    errors = _shown(at.error)
    assert needle in errors, errors
    # The session is intact: the previous data set is still selected and shown.
    assert at.selectbox(key="data_select").value == "synthetic"
    assert {m.label: m.value for m in at.metric}["Points"] == "2,000"
    assert not (env / "runs" / "uploads").exists() or not list((env / "runs" / "uploads").glob("*.csv"))


def _has_button(at: AppTest, key: str) -> bool:
    try:
        at.button(key=key)
    except KeyError:
        return False
    return True


def test_empty_upload_is_reported(env):
    at = _app()
    at.file_uploader(key="upload").set_value(("empty.csv", b"", "text/csv")).run()
    assert not at.exception
    if _has_button(at, "use_upload"):
        at.button(key="use_upload").click().run()
    assert at.error, "an empty file must be reported"


def test_train_page_widgets(env):
    at = _app("views/train.py")
    assert at.title[0].value == "Train a flow"
    assert list(at.radio[0].options) == ["PPD, ℓ = 1", "PPD, ℓ = 2", "RFM (flow matching baseline)"]
    assert at.radio[0].value == "ppd1"
    assert at.select_slider[0].options == ["small", "medium", "large"]
    assert "CPU" in at.caption[0].value or "GPU" in at.caption[0].value
    assert any("No run yet" in i.value for i in at.info)
    # one plain sentence on top; the maths on demand; jargon explained in the help texts
    assert at.main.markdown[0].value.startswith("Teach a model to turn dots scattered evenly over the globe")
    maths = next(e for e in at.main.expander if e.label == "What the settings mean (the maths)")
    assert "continuity-equation residual" in maths.markdown[0].value
    assert at.select_slider[1].label == "Target sharpness (κ_max)" and "PPD" in at.radio[0].help


def test_results_page_without_runs(env):
    at = _app("views/results.py")
    assert any("No finished run" in i.value for i in at.info)


def test_start_run_then_reattach_from_url_and_see_results(env):
    at = _app("views/train.py")
    at.select_slider[0].set_value("small")
    at.number_input[0].set_value(0.1)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    store = RunStore(env / "runs")
    assert store.info(run_id).config["hidden"] == 64
    assert _wait(store, run_id) == "done"
    # A fresh session (a reload or a second tab) reattaches from the URL alone.
    at2 = _app("views/train.py", run=run_id)
    assert any(run_id in s.value for s in at2.subheader)
    assert any("Done" in s.value for s in at2.success)
    res = _app("views/results.py", run=run_id)
    labels = [m.label for m in res.metric]
    assert labels[0] == "This model (exact likelihood)" and labels[-1] == "Uniform density (log 4π)"
    assert "True density (the best possible)" in labels  # the bundled synthetic data has a known density
    assert float(res.metric[0].value) < 2.531
    assert any(c.value.startswith("Settings from the data:") and "κ_max = 3,000" in c.value for c in res.caption)
    # Only the open tab is drawn: the map tab first, with no globe (deck.gl) to wait for.
    assert len(res.get("image")) == 2 and len(res.get("plotly_chart")) == 0 and len(res.get("deck_gl_json_chart")) == 0
    files = ["Samples (CSV)", "Density grid (CSV)", "Checkpoint (.pt)", "Config (JSON)"]
    assert [b.proto.label for b in res.get("download_button")] == files
    for tab, png in (("Density on the globe", "Density map (PNG)"),
                     ("Samples vs test points", "Samples and test points (PNG)")):
        res.session_state["results_tab"] = tab
        res.run()
        assert not res.exception, res.exception
        flat = 1 if tab == "Samples vs test points" else 0  # the flat map of the same points beside the globe
        assert len(res.get("plotly_chart")) == flat and len(res.get("deck_gl_json_chart")) == 1
        assert [b.proto.label for b in res.get("download_button")] == [png, *files]


def test_queue_and_stop(env):
    store = RunStore(env / "runs")
    data = str(Path(APP).parents[1] / "assets" / "synthetic_mixture.csv")
    first = store.create(TrainConfig(data=data, minutes=2.0, hidden=32, threads=1), name="first")
    second = store.create(TrainConfig(data=data, steps=10, hidden=32, threads=1), name="second")
    at = _app("views/train.py", run=second)
    assert any("Queued (position" in i.value for i in at.info), [i.value for i in at.info]
    from dashboard.state import runner  # same process: the page's runner

    assert store.info(first).state == "running"
    runner().stop(first)
    assert _wait(store, first) == "stopped"
    runner().poll()
    assert _wait(store, second) == "done"


def test_train_settings_come_from_the_url(env):
    at = _app("views/train.py", obj="rfm", kappa="300", seed="7", size="small", split="dedup", minutes="2.5")
    assert at.radio[0].value == "rfm"
    assert at.select_slider[0].value == "small" and at.select_slider[1].value == "300"
    assert at.number_input[0].value == 2.5 and at.number_input[1].value == 7
    assert at.selectbox[0].value == "dedup"
    # Values that are not offered fall back to the defaults instead of breaking the page.
    at = _app("views/train.py", obj="nope", kappa="12", minutes="abc")
    assert at.radio[0].value == "ppd1" and at.select_slider[1].value == "auto" and at.number_input[0].value == 0.75


def test_step_mode_advances_and_redraws(env):
    at = _app("views/train.py", size="small")
    at.button[1].click().run()  # "Step (+50 steps)"
    assert not at.exception
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    store = RunStore(env / "runs")
    # A Step writes the live picture of the model, not the slow exact report (changed with the live picture)
    assert _wait(store, run_id, report=False) == "done" and store.info(run_id).step == 50
    assert store.run_dir(run_id).live.exists() and not store.run_dir(run_id).report.exists()
    key = at.query_params["key"]  # the run's control key: this session started it
    key = key[0] if isinstance(key, list) else key
    at = _app("views/train.py", run=run_id, key=key, size="small")  # a reload of its control link
    assert len(at.get("plotly_chart")) == 2  # curves and the picture after the step
    # κ_max was left at auto: the page says what the rule read off the bundled (smooth) data
    assert any("Settings from the data" in c.value and "smooth data" in c.value for c in at.caption)
    at.button[1].click().run()  # the run is idle: the next Step continues it
    assert at.query_params["run"] in (run_id, [run_id])
    assert _wait(store, run_id, report=False) == "done" and store.info(run_id).step == 100


def test_upload_over_the_limit_is_refused_with_the_limit_named(env, monkeypatch):
    monkeypatch.setenv("CNFM_MAX_UPLOAD_MB", "1")
    at = _app()
    assert any("Size limit: 1 MB" in m.value for m in at.markdown)
    big = b"lat,lon\n" + b"10.000000,20.000000\n" * 80_000  # 1.6 MB
    at.file_uploader(key="upload").set_value(("big.csv", big, "text/csv")).run()
    if _has_button(at, "use_upload"):
        at.button(key="use_upload").click().run()
    errors = _shown(at.error)
    assert "1.5 MB" in errors and "limit is 1 MB" in errors, errors
    assert at.selectbox(key="data_select").value == "synthetic"
