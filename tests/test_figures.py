"""Contracts of dashboard.figures: the right traces and layers, offline, small payloads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pydeck as pdk
import pytest

from dashboard.figures import (
    DATA_COLOR,
    LAND_PATH,
    SAMPLE_COLOR,
    TEST_COLOR,
    UNIFORM_NLL,
    PointLayer,
    curves,
    density_map,
    globe,
    land_lines,
    legend_html,
    load_land,
    points_payload,
    value_colors,
)

# Trace types that draw on plotly's geo or tile maps, which fetch topojson or tiles over the network.
MAP_TRACES = {"scattergeo", "choropleth", "scattermapbox", "choroplethmapbox", "densitymapbox",
              "scattermap", "choroplethmap", "densitymap"}
MAP_LAYOUT_KEYS = {"geo", "mapbox", "map"}
ROOT = Path(__file__).resolve().parents[1]


def grid(n_lat: int = 18, n_lon: int = 36) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat = (np.arange(n_lat) + 0.5) * (180.0 / n_lat) - 90.0
    lon = (np.arange(n_lon) + 0.5) * (360.0 / n_lon) - 180.0
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    log_prob = -0.01 * ((la - 20.0) ** 2 + (lo - 30.0) ** 2) - math.log(4 * math.pi)
    return lat, lon, log_prob


def assert_offline_plotly(fig: go.Figure) -> None:
    assert not {trace.type for trace in fig.data} & MAP_TRACES
    assert not set(fig.to_plotly_json()["layout"]) & MAP_LAYOUT_KEYS


@pytest.fixture(scope="module")
def land() -> dict[str, Any]:
    return load_land()


# ---------------------------------------------------------------------------------------------
# Land


def test_load_land_default_and_cached(land: dict[str, Any]) -> None:
    assert land["type"] == "FeatureCollection" and land["features"]
    assert load_land() is land
    assert load_land(LAND_PATH) == land


def test_load_land_explicit_path(tmp_path: Path) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    path = tmp_path / "land.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": square}]}))
    assert load_land(path)["features"][0]["geometry"] == square
    (tmp_path / "bad.geojson").write_text(json.dumps(square))
    with pytest.raises(ValueError, match="FeatureCollection"):
        load_land(tmp_path / "bad.geojson")


def test_land_lines(land: dict[str, Any]) -> None:
    lines = land_lines(land)
    assert lines.lon.shape == lines.lat.shape and lines.lon.dtype == np.float64
    gaps = np.isnan(lines.lon)
    assert np.array_equal(gaps, np.isnan(lines.lat)) and gaps[-1]
    assert gaps.sum() >= len(land["features"])
    assert np.nanmax(np.abs(lines.lon)) <= 180 and np.nanmax(np.abs(lines.lat)) <= 90
    # No segment runs along the antimeridian or a pole: those are cuts, not coasts.
    lon0, lon1, lat0, lat1 = lines.lon[:-1], lines.lon[1:], lines.lat[:-1], lines.lat[1:]
    assert not np.any((np.abs(lon0) == 180) & (np.abs(lon1) == 180))
    assert not np.any((np.abs(lat0) == 90) & (np.abs(lat1) == 90))


def test_land_lines_empty() -> None:
    lines = land_lines({"type": "FeatureCollection", "features": []})
    assert lines.lon.size == 0 and lines.lat.size == 0


# ---------------------------------------------------------------------------------------------
# Flat maps and curves


def test_density_map_traces_and_axes(land: dict[str, Any]) -> None:
    lat, lon, log_prob = grid()
    fig = density_map(lat, lon, log_prob, land=land, title="model")
    assert isinstance(fig, go.Figure)
    assert [trace.type for trace in fig.data] == ["heatmap", "scatter"]
    heat, coast = fig.data
    np.testing.assert_allclose(heat.x, lon)
    np.testing.assert_allclose(heat.y, lat)
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), log_prob)
    assert heat.colorbar.title.text == "log density (nats)"
    assert coast.mode == "lines" and len(coast.x) == len(land_lines(land).lon)
    assert tuple(fig.layout.xaxis.range) == (-180, 180) and tuple(fig.layout.yaxis.range) == (-90, 90)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert "°" in fig.layout.xaxis.ticktext[0] and "°" in fig.layout.yaxis.ticktext[0]
    assert fig.layout.title.text == "model"
    assert_offline_plotly(fig)


def test_density_map_linear_scale_points_and_nonfinite(land: dict[str, Any]) -> None:
    lat, lon, log_prob = grid()
    log_prob[0, 0] = -np.inf
    rng = np.random.default_rng(1)
    pts = (rng.uniform(-90, 90, 30_000), rng.uniform(-180, 180, 30_000))
    fig = density_map(lat, lon, log_prob, land=land, log_scale=False, points=pts)
    assert [trace.type for trace in fig.data] == ["heatmap", "scatter", "scattergl"]
    z = np.asarray(fig.data[0].z, dtype=float)
    np.testing.assert_allclose(z[1:], np.exp(log_prob[1:]))
    assert z[0, 0] == 0.0  # exp(-inf)
    assert fig.data[0].colorbar.title.text == "density"
    assert len(fig.data[2].x) == 20_000
    json.loads(fig.to_json())  # serialisable
    assert_offline_plotly(fig)


def test_density_map_blank_nonfinite_log(land: dict[str, Any]) -> None:
    lat, lon, log_prob = grid()
    log_prob[2, 3] = np.nan
    log_prob[4, 5] = -np.inf
    z = np.asarray(density_map(lat, lon, log_prob, land=land).data[0].z, dtype=float)
    assert np.isnan(z[2, 3]) and np.isnan(z[4, 5]) and np.isfinite(z).sum() == z.size - 2


def test_density_map_rejects_bad_shape(land: dict[str, Any]) -> None:
    lat, lon, log_prob = grid()
    with pytest.raises(ValueError, match="shape"):
        density_map(lat, lon, log_prob.T, land=land)


@pytest.mark.parametrize(
    "metrics",
    [[], [{"event": "start", "step": 0, "time": 1.0}], [{"step": 1, "loss": float("nan")}]],
)
def test_curves_without_data(metrics: list[dict[str, Any]]) -> None:
    fig = curves(metrics)
    assert isinstance(fig, go.Figure) and len(fig.data) == 0
    assert any(a.text == "no data yet" for a in fig.layout.annotations)


def test_curves(tmp_path: Path) -> None:
    metrics = [{"event": "start", "step": 0}]
    metrics += [{"step": s, "loss": 1.0 / s, "lr": 1e-3} for s in (10, 20, 30)]
    metrics += [{"step": 20, "val_nll": 2.0, "elapsed": 1.0}, {"step": 30, "val_nll": None}]
    fig = curves(metrics)
    loss, nll = fig.data
    assert list(loss.x) == [10, 20, 30] and list(loss.y) == pytest.approx([0.1, 0.05, 1 / 30])
    assert list(nll.x) == [20] and list(nll.y) == [2.0]
    assert nll.yaxis != loss.yaxis
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].y0 == lines[0].y1 == pytest.approx(UNIFORM_NLL)
    assert lines[0].line.dash == "dash" and lines[0].yref == nll.yaxis
    assert UNIFORM_NLL == pytest.approx(2.531, abs=1e-3)
    assert_offline_plotly(fig)


# ---------------------------------------------------------------------------------------------
# Points, colours, legend


def test_points_payload_subsamples_and_rounds() -> None:
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-90, 90, 1000), rng.uniform(-180, 180, 1000)
    payload = points_payload(lat, lon, max_points=100, seed=3, decimals=2)
    assert len(payload) == 100 and set(payload[0]) == {"lat", "lon"}
    assert payload == points_payload(lat, lon, max_points=100, seed=3, decimals=2)
    assert payload != points_payload(lat, lon, max_points=100, seed=4, decimals=2)
    pairs = {(round(a, 2), round(o, 2)) for a, o in zip(lat.tolist(), lon.tolist(), strict=True)}
    assert all((p["lat"], p["lon"]) in pairs for p in payload)
    assert len({(p["lat"], p["lon"]) for p in payload}) == 100  # without replacement
    assert all(round(v, 2) == v for p in payload for v in p.values())
    assert all(isinstance(v, float) for p in payload for v in p.values())


def test_points_payload_small_sets_keep_order() -> None:
    lat, lon = np.array([1.23456, -2.0, 3.0]), np.array([10.0, 20.98765, -30.0])
    assert points_payload(lat, lon) == [
        {"lat": 1.235, "lon": 10.0}, {"lat": -2.0, "lon": 20.988}, {"lat": 3.0, "lon": -30.0},
    ]
    assert points_payload(lat, lon, max_points=0) == []
    with pytest.raises(ValueError):
        points_payload(lat, lon, max_points=-1)
    with pytest.raises(ValueError):
        points_payload(lat, lon[:2])


def test_colours() -> None:
    colours = [SAMPLE_COLOR, TEST_COLOR, DATA_COLOR]
    for c in colours:
        assert len(c) in (3, 4) and all(0 <= v <= 255 for v in c)
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.linalg.norm(np.subtract(colours[i][:3], colours[j][:3])) > 100
    table = value_colors(np.array([[np.nan, 0.0], [0.5, 1.0]]))
    assert table.shape == (2, 2, 3) and table.dtype == np.uint8
    assert table[0, 0].tolist() == table[0, 1].tolist()  # non-finite gets the lowest colour
    middle = value_colors(np.array([0.0, 0.5, 1.0]))[1]
    assert value_colors(np.array([5.0]), vmin=0.0, vmax=10.0)[0].tolist() == middle.tolist()


def test_legend_html() -> None:
    text = legend_html([("samples", SAMPLE_COLOR), ("test <held out>", [94, 60, 153])])
    assert "samples" in text and "test &lt;held out&gt;" in text and "<held" not in text
    assert "rgba(230, 97, 1, 1)" in text and "rgba(94, 60, 153, 1)" in text
    assert legend_html([]).startswith("<div")


# ---------------------------------------------------------------------------------------------
# Globe


def deck_json(deck: pdk.Deck) -> dict[str, Any]:
    text = deck.to_json()

    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} in deck JSON")

    return json.loads(text, parse_constant=no_constant)


def layer_summary(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(layer["@@type"], layer["id"]) for layer in spec["layers"]]


def test_globe_offline_without_data(land: dict[str, Any]) -> None:
    deck = globe(land=land)
    assert isinstance(deck, pdk.Deck)
    text = deck.to_json()
    assert "http" not in text and "mapbox" not in text.lower() and "carto" not in text.lower()
    spec = deck_json(deck)
    assert spec.get("mapProvider") is None
    # pydeck's placeholder for "no style", which st.pydeck_chart removes; never a style URL.
    assert spec.get("mapStyle") in (None, "__MAP_STYLE__")
    assert spec["views"] == [{"@@type": "_GlobeView", "controller": True}]
    assert spec["initialViewState"] == {"latitude": 20.0, "longitude": 0.0, "zoom": 1.1}
    assert layer_summary(spec) == [("SolidPolygonLayer", "ocean"), ("GeoJsonLayer", "land"), ("PathLayer", "coast")]
    ocean = spec["layers"][0]["data"][0]["polygon"]
    lon, lat = np.array(ocean).T
    assert lon.min() == -180 and lon.max() == 180 and lat.min() == -90 and lat.max() == 90
    assert np.abs(np.diff(lon)).max() <= 10 and np.abs(np.diff(lat)).max() <= 10  # densified
    assert spec["layers"][1]["data"] == land and spec["layers"][1]["filled"] is True
    assert spec["layers"][2]["widthUnits"] == "pixels"  # a plain string, not an accessor expression
    assert "\n" not in text  # compact JSON


def test_globe_layers_with_density_and_points(land: dict[str, Any]) -> None:
    lat, lon, log_prob = grid()
    rng = np.random.default_rng(0)
    layers = [
        PointLayer("samples", rng.uniform(-90, 90, 25_000), rng.uniform(-180, 180, 25_000), SAMPLE_COLOR),
        PointLayer("test", np.array([10.0, 20.0]), np.array([30.0, 40.0]), TEST_COLOR, radius_m=5e4, max_points=1),
    ]
    deck = globe(land=land, point_layers=layers, density=(lat, lon, log_prob), view_lat=-10, view_lon=120, zoom=1)
    spec = deck_json(deck)
    assert layer_summary(spec) == [
        ("SolidPolygonLayer", "ocean"), ("ScatterplotLayer", "density"), ("PathLayer", "coast"),
        ("ScatterplotLayer", "points-0"), ("ScatterplotLayer", "points-1"),
    ]
    density, samples, test = spec["layers"][1], spec["layers"][3], spec["layers"][4]
    assert density["parameters"] == {"depthWriteEnabled": False}
    assert 0.5 * lat.size * lon.size < len(density["data"]) <= lat.size * lon.size
    assert all(len(row["c"]) == 3 and row["r"] > 0 for row in density["data"])
    assert len(samples["data"]) == 20_000 and samples["getFillColor"] == SAMPLE_COLOR and samples["pickable"]
    assert len(test["data"]) == 1 and test["getRadius"] == 5e4 and test["getFillColor"] == TEST_COLOR
    assert samples["getPosition"] == "@@=[lon, lat]"
    assert spec["initialViewState"] == {"latitude": -10.0, "longitude": 120.0, "zoom": 1.0}
    assert "http" not in deck.to_json()
    assert deck._tooltip and "{lat}" in deck._tooltip["text"]


def test_globe_density_covers_grid_cells(land: dict[str, Any]) -> None:
    lat, lon, log_prob = grid(9, 18)
    log_prob[0, :] = np.nan  # a row without finite values is left out
    rows = deck_json(globe(land=land, density=(lat, lon, log_prob)))["layers"][1]["data"]
    assert {row["lat"] for row in rows} == set(lat[1:].round(2).tolist())
    equator = [row for row in rows if row["lat"] == 0.0]
    assert len(equator) == lon.size
    cell = math.radians(20.0) * 6_371_008.8
    assert all(cell / 2 * math.sqrt(2) < row["r"] < cell for row in equator)
    high = [row for row in rows if row["lat"] == 80.0]
    assert len(high) == math.ceil(lon.size * math.cos(math.radians(80.0))) == 4


def test_globe_optional_pole_caps_and_bad_density(land: dict[str, Any]) -> None:
    spec = deck_json(globe(land=land, pole_caps=True))
    assert ("ScatterplotLayer", "pole-caps") in layer_summary(spec)
    lat, lon, log_prob = grid()
    with pytest.raises(ValueError, match="shape"):
        globe(land=land, density=(lat, lon, log_prob.T))


# ---------------------------------------------------------------------------------------------
# Imports


def test_figures_do_not_import_torch() -> None:
    """Every module of dashboard.figures imports without torch (pages must not pay for it)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import dashboard.figures as f\n"
        "names = [m.name for m in pkgutil.iter_modules(f.__path__, 'dashboard.figures.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "assert len(names) >= 5, names\n"
        "assert 'torch' not in sys.modules, [m for m in sys.modules if m.startswith('torch')]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
