"""The regular lat/lon grid on which densities are drawn: cell centres and cell areas (numpy only).

>>> lat, lon = cell_centres(90, 180)
>>> lat[:2].tolist(), lon[:2].tolist()
([-89.0, -87.0], [-179.0, -177.0])
>>> round(float(cell_areas(lat, lon).sum() / (4 * np.pi)), 4)
1.0001
"""

from __future__ import annotations

import numpy as np

__all__ = ["cell_areas", "cell_centres"]


def cell_centres(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes ``(n_lat,)`` and longitudes ``(n_lon,)`` in degrees of the centres of an equirectangular grid."""
    lat = (np.arange(n_lat) + 0.5) * (180.0 / n_lat) - 90.0
    lon = (np.arange(n_lon) + 0.5) * (360.0 / n_lon) - 180.0
    return lat, lon


def cell_areas(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(n_lat, n_lon)`` solid angles in steradians of a regular grid with cell centres ``lat``, ``lon``
    (degrees): ``dlat * dlon * cos(lat)`` in radians. On a full grid they add up to about 4 pi."""
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    dlat = np.deg2rad(float(np.abs(np.diff(lat)).mean()) if lat.size > 1 else 180.0)
    dlon = np.deg2rad(float(np.abs(np.diff(lon)).mean()) if lon.size > 1 else 360.0)
    return np.outer(dlat * dlon * np.cos(np.deg2rad(lat)), np.ones(lon.size))
