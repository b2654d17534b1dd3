"""Data page with Streamlit's AppTest: a flat map of the points, the globe (a tab away) faces the data, the next step to
Train."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    lat, lon = 36.0 + rng.uniform(-4, 4, 80), 138.0 + rng.uniform(-4, 4, 80)  # Honshu and around
    rows = "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(lat, lon, strict=True))
    (data_dir / "japan.csv").write_text("lat,lon\n" + rows)
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CNFM_THREADS", "1")
    return tmp_path


def _app(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _array(value: list[float] | dict[str, str]) -> np.ndarray:
    """A plotly JSON array: a plain list, or ``{"dtype", "bdata"}`` (base64 of the raw values)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=np.float64)


def _query(at: AppTest, key: str) -> str | None:
    value = at.query_params.get(key)
    return value[0] if isinstance(value, list) else value


def test_the_page_opens_on_the_flat_map_and_draws_the_globe_only_in_its_tab(env: Path) -> None:
    at = _app(data="dir:japan")
    assert [t.label for t in at.tabs] == ["Flat map", "3-D globe"]
    assert len(at.get("plotly_chart")) == 1 and not at.get("deck_gl_json_chart")  # no WebGL globe on a visit
    at.session_state["data_view_tab"] = "3-D globe"
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("deck_gl_json_chart")) == 1 and not at.get("plotly_chart")


def test_globe_faces_a_data_set_in_japan(env: Path) -> None:
    at = _app(data="dir:japan")
    at.session_state["data_view_tab"] = "3-D globe"
    at.run()
    decks = at.get("deck_gl_json_chart")
    assert len(decks) == 1
    view = json.loads(decks[0].proto.json)["initialViewState"]
    assert view["latitude"] == pytest.approx(36.0, abs=1.5) and view["longitude"] == pytest.approx(138.0, abs=1.5)


def test_flat_map_of_the_points_is_framed_on_them(env: Path) -> None:
    at = _app(data="dir:japan")
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    names = [t.get("name") for t in spec["data"]]
    assert names == ["coastline", "points"]
    points = next(t for t in spec["data"] if t["name"] == "points")
    x, y = _array(points["x"]), _array(points["y"])
    assert x.size == 80 and np.all((x > 133) & (x < 143)) and np.all((y > 31) & (y < 41))
    x0, x1 = spec["layout"]["xaxis"]["range"]
    assert 110 < x0 < 134 and 142 < x1 < 166  # framed on Japan (at least 40 degrees wide), not the world


def test_next_step_button_goes_to_train_keeping_the_data(env: Path) -> None:
    at = _app(data="dir:japan")
    button = at.button(key="to_train")
    assert button.label == "Train a flow on these points" and button.proto.type == "primary"
    button.click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Train a flow"
    assert _query(at, "data") == "dir:japan"


def test_the_page_opens_with_a_plain_sentence_and_leads_to_the_target_path(env: Path) -> None:
    at = _app(data="dir:japan")
    assert at.markdown[0].value.startswith("**Each point is one place on the globe")
    button = at.button(key="to_target")
    assert button.label == "See the path a flow will follow"
    button.click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Target path"
    assert _query(at, "data") == "dir:japan"


# ---------------------------------------------------------------------------------------------
# Uploads: the page reads a file as the CLI does (the one reader), and keeps it readable


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="upload").set_value((name, content, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def _has(at: AppTest, kind: str, key: str) -> bool:
    try:
        getattr(at, kind)(key=key)
    except KeyError:
        return False
    return True


def _saved(env: Path) -> list[Path]:
    return sorted((env / "runs" / "uploads").glob("*.csv")) if (env / "runs" / "uploads").is_dir() else []


def test_an_xyz_upload_is_read_as_xyz_not_as_lat_lon(env: Path) -> None:
    """The column pickers defaulted to the first two columns, so x,y,z rows were read as (lat, lon) = (x, y)."""
    at = _upload(_app(), "cube.csv", b"x,y,z\n0,0,2\n3,0,0\n0,-0.5,0\n")
    assert not _has(at, "selectbox", "lat_col") and not at.error
    at.button(key="use_upload").click().run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Points"] == "3"
    (saved,) = _saved(env)
    from cnfm_core.data import read_points

    np.testing.assert_allclose(read_points(saved).xyz, [[0, 0, 1], [1, 0, 0], [0, -1, 0]], atol=1e-15)


def test_a_file_without_a_header_is_refused_as_the_cli_refuses_it(env: Path) -> None:
    """Its first row became the header: the page kept the file without it."""
    at = _upload(_app(), "nohead.csv", b"10,20\n30,40\n50,60\n")
    assert "looks like data" in " ".join(e.value for e in at.error)
    assert not _has(at, "button", "use_upload") and _saved(env) == []


def test_unknown_columns_wait_for_the_users_choice(env: Path) -> None:
    """``a,b`` was taken as (lat, lon) by default; now the pickers start empty and nothing is kept until chosen."""
    at = _upload(_app(), "ab.csv", b"a,b,c\n10,20,x\n30,40,y\n")
    assert _picker(at, "Latitude").value is None and _picker(at, "Longitude").value is None
    assert at.button(key="use_upload").disabled and at.info
    _picker(at, "Latitude").set_value("b").run()
    assert at.button(key="use_upload").disabled
    _picker(at, "Longitude").set_value("a").run()
    at.button(key="use_upload").click().run()
    assert not at.exception and not at.error
    (saved,) = _saved(env)
    assert saved.read_text() == "lat,lon\n20,10\n40,30\n"
    # Another file with the same columns starts again with no choice.
    at = _upload(at, "ab2.csv", b"a,b\n1,2\n3,4\n")
    assert _picker(at, "Latitude").value is None and at.button(key="use_upload").disabled


def _picker(at: AppTest, what: str):  # noqa: ANN202 (an AppTest selectbox)
    return next(s for s in at.selectbox if s.label == f"{what} column")


def test_an_upload_near_the_limit_is_kept_under_it_and_read_back(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of short rows was rewritten 4.5 times larger (``%.6f``), over the limit: unreadable everywhere."""
    monkeypatch.setenv("CNFM_MAX_UPLOAD_MB", "1")
    content = b"lat,lon\n" + b"1,2\n" * 260_000  # 0.99 MB
    at = _upload(_app(), "short.csv", content)
    at.button(key="use_upload").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric}["Points"] == "260,000"
    (saved,) = _saved(env)
    assert saved.stat().st_size <= 1024 * 1024
    from cnfm_core.data import read_points

    assert read_points(saved, max_bytes=1024 * 1024).n == 260_000


def test_an_uploaded_set_can_be_deleted_after_a_confirmation(env: Path) -> None:
    at = _upload(_app(), "mine.csv", b"lat,lon\n10,20\n30,40\n")
    at.button(key="use_upload").click().run()
    key = at.selectbox(key="data_select").value
    assert key.startswith("upload:mine-") and len(_saved(env)) == 1
    assert at.button(key="delete_upload").disabled  # not before the box is ticked
    at.checkbox(key="delete_upload_sure").check().run()
    at.button(key="delete_upload").click().run()
    assert not at.exception and not at.error
    assert _saved(env) == []
    assert at.selectbox(key="data_select").value != key and key not in at.selectbox(key="data_select").options
    at2 = _app(data=key)  # an old link to it opens another set, without an error
    assert at2.selectbox(key="data_select").value != key


def test_on_a_classroom_server_only_the_uploader_and_the_teacher_delete_an_upload(env, monkeypatch):
    monkeypatch.setenv("CNFM_ADMIN_KEY", "teacher-secret")
    mine = _upload(_app(), "mine.csv", b"lat,lon\n10,20\n30,40\n")
    mine.button(key="use_upload").click().run()
    key = mine.selectbox(key="data_select").value
    other = _app(data=key)  # another student's session on the same data set
    assert other.checkbox(key="delete_upload_sure").disabled and other.button(key="delete_upload").disabled
    assert any("Not yours to delete" in c.value for c in other.caption)
    assert len(_saved(env)) == 1
    teacher = _app(data=key, admin="teacher-secret")
    assert not teacher.checkbox(key="delete_upload_sure").disabled
    mine.checkbox(key="delete_upload_sure").check().run()  # the uploader may
    mine.button(key="delete_upload").click().run()
    assert not mine.exception and _saved(env) == []


def test_text_from_the_file_is_shown_as_plain_text(env: Path) -> None:
    """A bad row holding a Markdown image made the error box fetch it."""
    at = _upload(_app(), "evil.csv", b"lat,lon\n1,2\n![b](http://HOST/b.png),3\n")
    if _has(at, "button", "use_upload") and not at.button(key="use_upload").disabled:
        at.button(key="use_upload").click().run()  # (the page once found the bad row only here)
    (error,) = at.error
    assert "![b](http" not in error.value and r"\!\[b\]\(http" in error.value and "line 3" in error.value
    at = _upload(_app(), "evil.csv", b"**a**,<img src=x>\n1,2\n3,4\n")
    (info,) = at.info
    assert "**a**" not in info.value and r"\*\*a\*\*" in info.value
    assert re.search(r"(?<!\\)<img", info.value) is None and r"\<img" in info.value


def test_a_run_trained_on_a_deleted_upload_still_shows(env: Path) -> None:
    """Runs keep their own points (their split), so deleting the upload they were trained on breaks none of their
    pages. The run here is the bundled demo run, pointed at the upload."""
    import shutil

    at = _upload(_app(), "mine.csv", b"lat,lon\n10,20\n30,40\n")
    at.button(key="use_upload").click().run()
    (saved,) = _saved(env)
    run = env / "runs" / "on-upload"
    shutil.copytree(Path(APP).parents[1] / "assets" / "demo" / "synthetic", run)
    meta = json.loads((run / "config.json").read_text())
    meta["config"]["data"], meta["data_name"] = str(saved), saved.name
    (run / "config.json").write_text(json.dumps(meta))
    at.checkbox(key="delete_upload_sure").check().run()
    at.button(key="delete_upload").click().run()
    assert _saved(env) == []
    for page in ("views/results.py", "views/path.py", "views/runs.py"):
        shown = AppTest.from_file(APP, default_timeout=120)
        shown.query_params["run"] = "on-upload"
        shown.run()
        shown.switch_page(page)
        shown.run()
        assert not shown.exception and not shown.error, (page, shown.exception, [e.value for e in shown.error])
        assert shown.get("plotly_chart") or shown.get("image") or shown.dataframe, page  # a map, an image or a table
        assert _query(shown, "run") == "on-upload" or page == "views/runs.py", page
