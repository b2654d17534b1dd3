"""Contracts of the bundled geographic assets: assets/cities.csv and assets/land.geojson."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnfm_core.data import read_points

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CITIES = ASSETS / "cities.csv"
LAND = ASSETS / "land.geojson"


def point_in_ring(lon: float, lat: float, ring: list[list[float]]) -> bool:
    """Even-odd rule: whether a horizontal ray from (lon, lat) crosses the ring an odd number of times."""
    inside = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y0 > lat) != (y1 > lat) and lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


def on_land(lat: float, lon: float, land: dict[str, Any]) -> bool:
    """Whether (lat, lon) is inside some polygon of ``land`` (holes count by the even-odd rule)."""
    for feature in land["features"]:
        geometry = feature["geometry"]
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        for polygon in polygons:
            if sum(point_in_ring(lon, lat, ring) for ring in polygon) % 2:
                return True
    return False


@pytest.fixture(scope="module")
def land() -> dict[str, Any]:
    return json.loads(LAND.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cities() -> list[dict[str, str]]:
    with CITIES.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_point_in_ring_helper() -> None:
    square = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]]
    hole = [[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0], [4.0, 4.0]]
    land = {"features": [{"geometry": {"type": "Polygon", "coordinates": [square, hole]}}]}
    assert on_land(2.0, 2.0, land)
    assert not on_land(5.0, 5.0, land)  # in the hole
    assert not on_land(5.0, 15.0, land)
    assert not on_land(15.0, 5.0, land)


def test_cities_header_and_size(cities: list[dict[str, str]]) -> None:
    with CITIES.open(encoding="utf-8") as f:
        assert f.readline().strip() == "lat,lon,name,country,population"
    assert len(cities) > 1000
    assert CITIES.stat().st_size < 500_000


def test_cities_read_as_points() -> None:
    pts = read_points(CITIES)
    assert pts.n > 1000
    assert np.all(np.abs(pts.lat) <= 90) and np.all(np.abs(pts.lon) <= 180)


def test_cities_values_plausible(cities: list[dict[str, str]]) -> None:
    lat = np.array([float(c["lat"]) for c in cities])
    lon = np.array([float(c["lon"]) for c in cities])
    pop = np.array([int(c["population"]) for c in cities])
    assert np.all((lat >= -90) & (lat <= 90)) and np.all((lon >= -180) & (lon <= 180))
    assert np.all(pop >= 100_000) and pop.max() > 10_000_000
    assert np.all(np.diff(pop) <= 0), "rows are sorted by population, largest first"
    assert all(c["name"] and len(c["country"]) == 2 for c in cities)
    # Coordinates have at most 4 decimals.
    assert all(len(c["lat"].partition(".")[2]) <= 4 and len(c["lon"].partition(".")[2]) <= 4 for c in cities)


@pytest.mark.parametrize(
    ("name", "country", "lat", "lon"),
    [("Tokyo", "JP", 35.7, 139.7), ("London", "GB", 51.5, -0.1), ("São Paulo", "BR", -23.5, -46.6),
     ("Lagos", "NG", 6.5, 3.4), ("Sydney", "AU", -33.9, 151.2)],
)
def test_known_cities(cities: list[dict[str, str]], name: str, country: str, lat: float, lon: float) -> None:
    rows = [c for c in cities if c["name"] == name and c["country"] == country]
    assert rows, f"{name} missing"
    assert abs(float(rows[0]["lat"]) - lat) < 0.3 and abs(float(rows[0]["lon"]) - lon) < 0.3


def test_land_is_a_feature_collection_of_polygons(land: dict[str, Any]) -> None:
    assert LAND.stat().st_size < 300_000
    assert land["type"] == "FeatureCollection"
    assert len(land["features"]) > 50
    for feature in land["features"]:
        assert feature["type"] == "Feature"
        geometry = feature["geometry"]
        assert geometry["type"] in ("Polygon", "MultiPolygon")
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        for polygon in polygons:
            for ring in polygon:
                xy = np.asarray(ring, dtype=np.float64)
                assert xy.ndim == 2 and xy.shape[1] == 2 and len(xy) >= 4
                assert np.array_equal(xy[0], xy[-1]), "rings are closed"
                assert np.all(np.abs(xy[:, 0]) <= 180) and np.all(np.abs(xy[:, 1]) <= 90)


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [(23.0, 13.0, True),  # Sahara
     (0.0, -150.0, False),  # mid Pacific
     (-80.0, 0.0, True),  # Antarctica
     (42.0, 50.5, False),  # Caspian Sea, a hole in Eurasia
     (40.0, -100.0, True),  # Kansas
     (-25.0, 134.0, True),  # central Australia
     (30.0, -40.0, False)],  # mid Atlantic
)
def test_land_contains(land: dict[str, Any], lat: float, lon: float, expected: bool) -> None:
    assert on_land(lat, lon, land) is expected
