"""Contracts of the Data page's flat map (dashboard.figures.pointmaps): points where they belong, the map
framed on them, a set across the antimeridian in one piece, coastlines cut at the map's seam, offline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dashboard.figures import load_land, lon_window, points_map
from dashboard.figures.pointmaps import wrap_lon, wrapped_lines

MAP_TRACES = {"scattergeo", "choropleth", "scattermapbox", "scattermap", "densitymapbox", "densitymap"}


@pytest.fixture(scope="module")
def land() -> dict[str, Any]:
    return load_land()


def _trace(fig: Any, name: str) -> Any:
    return next(t for t in fig.data if t.name == name)


def _to_lon(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, dtype=np.float64) + 180.0) % 360.0 - 180.0


def test_points_land_where_they_are_and_the_map_frames_them(land: dict[str, Any]) -> None:
    lat = np.array([35.7, 34.7, 43.1, 33.6])
    lon = np.array([139.7, 135.5, 141.3, 130.4])  # Tokyo, Osaka, Sapporo, Fukuoka
    fig = points_map(lat, lon, land=land)
    pts = _trace(fig, "points")
    np.testing.assert_allclose(pts.y, lat)
    np.testing.assert_allclose(pts.x, lon)  # far from the seam: x is the longitude itself
    np.testing.assert_allclose(np.asarray(pts.customdata), np.stack([lat, lon], axis=1))
    x0, x1 = fig.layout.xaxis.range
    y0, y1 = fig.layout.yaxis.range
    assert x0 < 130.4 and x1 > 141.3 and y0 < 33.6 and y1 > 43.1
    assert x1 - x0 < 90 and y1 - y0 < 60  # framed on Japan, not the whole world
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == pytest.approx(
        1 / np.cos(np.radians((y0 + y1) / 2))
    )
    assert not {t.type for t in fig.data} & MAP_TRACES
    assert not {"geo", "mapbox", "map"} & set(fig.to_plotly_json()["layout"])


def test_points_across_the_antimeridian_stay_in_one_piece(land: dict[str, Any]) -> None:
    lat = np.array([-17.7, -18.1, -16.5, -19.0])
    lon = np.array([178.4, -179.9, 179.9, -178.7])  # around Fiji, on both sides of 180
    assert lon_window(lon).west == pytest.approx(178.4) and lon_window(lon).east == pytest.approx(181.3)
    fig = points_map(lat, lon, land=land)
    x = np.asarray(_trace(fig, "points").x)
    assert x.max() - x.min() < 5  # one cluster, not two at the edges of the map
    np.testing.assert_allclose(_to_lon(x), lon, atol=1e-9)
    x0, x1 = fig.layout.xaxis.range
    assert x0 < x.min() and x1 > x.max() and x1 > 180.0
    labels = dict(zip(fig.layout.xaxis.tickvals, fig.layout.xaxis.ticktext, strict=True))
    assert labels.get(170.0) == "170°E" and labels.get(180.0) == "180°" and labels.get(190.0) == "170°W"


def test_coastlines_are_cut_at_the_seam_and_never_cross_the_map(land: dict[str, Any]) -> None:
    fig = points_map(np.array([-17.7, -18.1]), np.array([178.4, -179.9]), land=land)
    coast = _trace(fig, "coastline")
    x, y = np.asarray(coast.x, dtype=np.float64), np.asarray(coast.y, dtype=np.float64)
    seam = (sum(fig.layout.xaxis.range) / 2) - 180.0
    finite = np.isfinite(x)
    assert x[finite].min() >= seam - 1e-9 and x[finite].max() <= seam + 360.0 + 1e-9
    step = np.abs(np.diff(x))
    assert np.nanmax(step) <= 180.0  # no line runs across the whole map
    assert np.isfinite(y[finite]).all() and np.abs(y[finite]).max() <= 90.0


def test_wrapped_lines_cut_with_interpolated_latitude() -> None:
    x, y = wrapped_lines(np.array([10.0, 30.0, np.nan, 40.0]), np.array([0.0, 20.0, np.nan, 5.0]), 20.0)
    # 10 wraps to 370; from 370 to 30 the line crosses the seam at 380 == 20, halfway in longitude
    assert x[0] == 370.0 and x[1] == 380.0 and np.isnan(x[2]) and np.isnan(y[2])
    assert x[3] == 20.0 and y[1] == pytest.approx(10.0) and y[3] == pytest.approx(10.0)
    assert x[4] == 30.0 and y[4] == 20.0
    np.testing.assert_allclose(wrap_lon(np.array([-180.0, 179.0, 180.0]), -180.0), [-180.0, 179.0, -180.0])


def test_far_apart_points_and_empty_and_large_sets(land: dict[str, Any]) -> None:
    # London and Tokyo: both on the map, and the map is no thin strip
    fig = points_map(np.array([51.5, 35.7]), np.array([-0.1, 139.7]), land=land)
    x0, x1 = fig.layout.xaxis.range
    y0, y1 = fig.layout.yaxis.range
    assert x0 < -0.1 and x1 > 139.7 and (y1 - y0) >= 0.5 * (x1 - x0) * np.cos(np.radians(43.6)) - 1e-6
    empty = points_map(np.array([]), np.array([]), land=land)
    assert list(empty.layout.xaxis.range) == [-180.0, 180.0] and list(empty.layout.yaxis.range) == [-90.0, 90.0]
    rng = np.random.default_rng(0)
    big = points_map(rng.uniform(-80, 80, 30_000), rng.uniform(-180, 180, 30_000), land=land, max_points=5_000)
    assert len(_trace(big, "points").x) == 5_000
    wide = points_map(np.array([0.0, 10.0, 5.0]), np.array([-120.0, 0.0, 120.0]), land=land, height=540, width_hint=470)
    assert 200 <= wide.layout.height < 400  # a wide, short frame asks for less height than the globe beside it
    with pytest.raises(ValueError, match="same length"):
        points_map(np.array([1.0]), np.array([1.0, 2.0]), land=land)
