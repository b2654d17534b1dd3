"""Data page with Streamlit's AppTest: the globe faces the data, a flat map of the points, the next step to Train."""

from __future__ import annotations

import base64
import json
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


def test_globe_faces_a_data_set_in_japan(env: Path) -> None:
    at = _app(data="dir:japan")
    decks = at.get("deck_gl_json_chart")
    assert len(decks) == 1
    view = json.loads(decks[0].proto.json)["initialViewState"]
    assert view["latitude"] == pytest.approx(36.0, abs=1.5) and view["longitude"] == pytest.approx(138.0, abs=1.5)


def test_flat_map_of_the_points_is_beside_the_globe(env: Path) -> None:
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
