"""The Runs page with AppTest: the table of runs (broken ones too), its key columns first and formatted, opening a
run, comparing two from the URL (with the steps each trained and their rate)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pages import open_page
from streamlit.testing.v1 import AppTest

from cnfm_core.config import TrainConfig
from cnfm_core.report import write_report
from cnfm_core.runs import RunDir
from cnfm_core.train import train
from dashboard import resultfiles
from dashboard.figures import raster

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
PAGE = "views/runs.py"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory, single_thread):
    """A run store with a PPD run (adaptive kernel), an RFM run, a run with an unreadable status and one with a
    broken report (made before the kernel field existed)."""
    root = tmp_path_factory.mktemp("runs")
    data = str(REPO / "assets" / "synthetic_mixture.csv")
    for run_id, objective in (("ppd-run", "ppd"), ("rfm-run", "rfm")):
        config = TrainConfig(
            data=data,
            steps=15,
            hidden=16,
            layers=2,
            eval_every=10**6,
            objective=objective,
            threads=1,
            kernel="adaptive" if objective == "ppd" else "fixed",
        )
        train(config, root / run_id)
        write_report(RunDir(root / run_id), n_lat=10, n_lon=20, n_samples=50)
    (root / "bad-status").mkdir()
    (root / "bad-status" / "status.json").write_text("{not json")
    shutil.copytree(root / "ppd-run", root / "bad-report")
    (root / "bad-report" / "report.json").write_text("not json either")
    (root / "bad-report" / "density.npz").unlink()
    meta = json.loads((root / "bad-report" / "config.json").read_text())
    del meta["config"]["kernel"]
    (root / "bad-report" / "config.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def env(store_dir, monkeypatch):
    monkeypatch.setenv("CNFM_RUNS", str(store_dir))
    monkeypatch.setenv("CNFM_THREADS", "1")
    return store_dir


@pytest.fixture(autouse=True)
def no_demos(monkeypatch):
    """The runs of these tests only: the bundled demo runs are tested in tests/test_demo_runs.py."""
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")


def _runs_page(**query: str) -> AppTest:
    return open_page(PAGE, **query)


def _report(root: Path, run_id: str) -> dict:
    return json.loads((root / run_id / "report.json").read_text())


def _param(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def test_table_lists_every_run_with_objective_and_nll(env):
    at = _runs_page()
    assert at.title[0].value == "Runs"
    df = at.dataframe[0].value
    rows = {r["Run"]: r for r in df.to_dict("records")}
    assert set(rows) == {"ppd-run", "rfm-run", "bad-status", "bad-report"}
    assert rows["ppd-run"]["Objective"] == "PPD ℓ=1" and rows["rfm-run"]["Objective"] == "RFM"
    for run_id in ("ppd-run", "rfm-run"):
        report = _report(env, run_id)
        assert rows[run_id]["Test NLL"] == pytest.approx(report["test_nll"])
        assert rows[run_id]["KDE NLL"] == pytest.approx(report["kde_nll"])
        assert rows[run_id]["Hidden"] == 16 and rows[run_id]["Status"] == "done" and rows[run_id]["Steps"] == 15
        status = json.loads((env / run_id / "status.json").read_text())
        assert rows[run_id]["Steps/s"] == pytest.approx(15 / status["elapsed"])
        assert re.fullmatch(r"\d+(\.\d)? s|\d+\.\d min|\d+\.\d h", rows[run_id]["Training time"])
    assert (rows["ppd-run"]["Kernel"], rows["rfm-run"]["Kernel"], rows["bad-report"]["Kernel"]) == (
        "adaptive",
        "fixed",
        "fixed",
    )  # a run from before the field was trained with the fixed kernel
    assert rows["bad-status"]["Status"] == "unreadable"
    for col in ("Objective", "Test NLL", "Hidden", "Data set"):
        assert rows["bad-status"][col] is None or (
            isinstance(rows["bad-status"][col], float) and math.isnan(rows["bad-status"][col])
        )
    assert math.isnan(rows["bad-report"]["Test NLL"]) and rows["bad-report"]["Objective"] == "PPD ℓ=1"
    assert at.dataframe[0].proto.placeholder == "–"
    # the key columns first, each formatted for reading; the settings after
    assert list(df.columns)[:7] == ["Run", "Data set", "Objective", "Status", "Steps", "Test NLL", "Training time"]
    formats = {k: v.get("type_config", {}).get("format") for k, v in json.loads(at.dataframe[0].proto.columns).items()}
    assert formats["Steps"] == "%,d" and formats["Test NLL"] == "%.3f" and formats["KDE NLL"] == "%.3f"
    # Newest first: the rfm run was created after the ppd run.
    assert list(df["Run"]).index("rfm-run") < list(df["Run"]).index("ppd-run")


def test_compare_from_url(env, monkeypatch):
    drawn = []  # the maps the page drew: their density file and colour range

    def map_png(path, mtime, which, unit, zrange, width, values, lat, lon, coast):
        drawn.append((Path(path).parent.name, zrange, values.shape))
        return raster.density_image(lat, lon, values, coast=coast, vmin=zrange[0], vmax=zrange[1], width=400).png

    monkeypatch.setattr(resultfiles, "map_png", map_png)
    at = _runs_page(a="ppd-run", b="rfm-run")
    assert at.selectbox(key="run_a").value == "ppd-run" and at.selectbox(key="run_b").value == "rfm-run"
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2 and not any(t.get("type") == "heatmap" for c in charts for t in c["data"])  # curves
    # The two density maps are pictures (no chart library to load) on one colour scale: the range of both maps.
    assert len(at.get("image")) == 2 and [d[0] for d in drawn] == ["ppd-run", "rfm-run"]
    maps = [np.load(env / r / "density.npz")["log_prob"] for r in ("ppd-run", "rfm-run")]
    top = max(float(np.max(m[np.isfinite(m)])) for m in maps)
    assert drawn[0][1] == drawn[1][1] and drawn[0][1][1] == pytest.approx(top)
    assert drawn[0][1][0] == pytest.approx(max(top - 10.0, min(float(np.min(m[np.isfinite(m)])) for m in maps)))
    assert any("objective" in m.value for m in at.markdown)
    a, b = _report(env, "ppd-run")["test_nll"], _report(env, "rfm-run")["test_nll"]
    nlls = [m.value for m in at.metric if m.label == "Test NLL (nats)"]
    assert nlls == [f"{a:.3f}", f"{b:.3f}"]
    assert any(f"{b - a:+.3f}" in c.value for c in at.caption)
    # the steps each run trained and its steps per second (over its training time)
    elapsed = [json.loads((env / r / "status.json").read_text())["elapsed"] for r in ("ppd-run", "rfm-run")]
    assert [m.value for m in at.metric if m.label == "Steps trained"] == ["15", "15"]
    rates = [m.value for m in at.markdown if " steps a second" in m.value]
    assert rates == [
        f"in **{t:.1f} s**: **{15 / t:.3g}** steps a second"
        if t < 10
        else f"in **{t:.0f} s**: **{15 / t:.3g}** steps a second"
        for t in elapsed
    ]
    assert any(
        c.value.startswith("A trained 15 steps in ") and f"({15 / elapsed[1]:.3g} a second)" in c.value
        for c in at.caption
    )


def test_compare_counts_a_field_a_run_predates_at_its_old_value(env):
    at = _runs_page(a="ppd-run", b="bad-report")  # bad-report: ppd-run's config without the kernel field
    differs = [m.value for m in at.markdown if m.value.startswith("Differs: ")]
    assert differs == ["Differs: **kernel** = `adaptive`", "Differs: **kernel** = `fixed`"]
    at = _runs_page(a="ppd-run", b="rfm-run")  # the fixed-kernel run has no neighbour rank: shown as a dash
    differs = [m.value for m in at.markdown if m.value.startswith("Differs: ")]
    assert "**kernel_neighbours** = `–`" in differs[1] and "None" not in differs[1]


def test_selectbox_choice_goes_to_url(env):
    at = _runs_page(a="ppd-run", b="rfm-run")
    at.selectbox(key="run_b").set_value("bad-report").run()
    assert not at.exception
    assert _param(at, "b") == "bad-report"
    assert any("No density map" in i.value for i in at.info)
    assert [m.value for m in at.metric if m.label == "Test NLL (nats)"][1] == "–"


def test_defaults_are_two_newest_finished_runs(env):
    at = _runs_page()
    assert {at.selectbox(key="run_a").value, at.selectbox(key="run_b").value} == {"ppd-run", "rfm-run"}
    assert {_param(at, "a"), _param(at, "b")} == {"ppd-run", "rfm-run"}


def test_broken_run_compares_without_crashing(env):
    at = _runs_page(a="bad-status", b="bad-report")
    assert len(at.get("plotly_chart")) == 2  # two (empty) curve charts, no density map
    assert len([i for i in at.info if "No density map" in i.value]) == 2


def test_table_selection(env):
    at = _runs_page()
    ids = list(at.dataframe[0].value["Run"])
    at.session_state["runs_table"] = {
        "selection": {"rows": [ids.index("rfm-run"), ids.index("ppd-run")], "columns": []}
    }
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="run_a").value == "rfm-run" and at.selectbox(key="run_a").disabled
    assert (_param(at, "a"), _param(at, "b")) == ("rfm-run", "ppd-run")
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index("ppd-run")], "columns": []}}
    at.run()
    at.button(key="open_results").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Results"
    assert _param(at, "run") == "ppd-run"
    at = _runs_page()
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index("rfm-run")], "columns": []}}
    at.run()
    at.button(key="open_train").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Train a flow" and _param(at, "run") == "rfm-run"


def test_only_unreadable_runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    for run_id, status in (("garbage", "{not json"), ("a-list", "[1, 2]"), ("bad-types", '{"step": "x"}')):
        (root / run_id).mkdir(parents=True)
        (root / run_id / "status.json").write_text(status)
    (root / "a-list" / "metrics.jsonl").write_text('3\n{"step": 1, "loss": 2.0}\n')
    monkeypatch.setenv("CNFM_RUNS", str(root))
    at = _runs_page(a="a-list", b="garbage")
    assert sorted(at.dataframe[0].value["Run"]) == ["a-list", "bad-types", "garbage"]
    assert set(at.dataframe[0].value["Status"]) == {"unreadable"}
    assert len(at.get("plotly_chart")) == 2 and [m.value for m in at.metric] == ["–"] * 4


def test_compare_writes_config_values_for_reading(env, tmp_path, monkeypatch):
    """A budget of 2.2426314711333286 minutes reads 2.243, a κ_max of 17782.79 reads 17,783."""
    root = tmp_path / "runs"
    for run_id in ("ppd-run", "rfm-run"):
        shutil.copytree(env / run_id, root / run_id)
    meta = json.loads((root / "ppd-run" / "config.json").read_text())
    meta["config"].update(minutes=2.2426314711333286, kappa_max=17782.794100389227)
    (root / "ppd-run" / "config.json").write_text(json.dumps(meta))
    monkeypatch.setenv("CNFM_RUNS", str(root))
    at = _runs_page(a="ppd-run", b="rfm-run")
    differs = next(m.value for m in at.markdown if m.value.startswith("Differs: "))
    assert "**minutes** = `2.243`" in differs and "**kappa_max** = `17,783`" in differs


def test_empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    at = _runs_page()
    assert any("python -m cnfm_core train --run-dir" in i.value for i in at.info)
    assert not at.dataframe


def test_who_may_change_a_run_is_shown_and_enforced(env, monkeypatch):
    """Runs from the command line have no owner: everyone's in single-user mode, the teacher's with an admin key."""
    at = _runs_page()
    sources = dict(zip(at.dataframe[0].value["Run"], at.dataframe[0].value["Source"], strict=True))
    assert set(sources.values()) == {"command line"}
    assert any("single-user mode" in c.value for c in at.caption)
    ids = list(at.dataframe[0].value["Run"])
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index("ppd-run")], "columns": []}}
    at.run()
    assert not at.checkbox(key="delete_sure_ppd-run").disabled
    assert at.button(key="delete_run").disabled  # until the box is ticked
    monkeypatch.setenv("CNFM_ADMIN_KEY", "teacher-secret-1")
    at = _runs_page()
    at.session_state["runs_table"] = {"selection": {"rows": [ids.index("ppd-run")], "columns": []}}
    at.run()
    assert at.button(key="delete_run").disabled and at.checkbox(key="delete_sure_ppd-run").disabled
    assert any("command line, so only the teacher" in c.value for c in at.caption)
    assert (env / "ppd-run").is_dir()
