"""Geographic coordinates on the unit sphere in numpy, torch-free (for pages, data reading and figures).

The order is **(lat, lon)** in degrees everywhere, with ``x = cos(lat) cos(lon)``, ``y = cos(lat) sin(lon)``,
``z = sin(lat)``; :mod:`cnfm_core.sphere` holds the same maps for torch tensors (tests/test_geo.py checks
that the two agree).

>>> import numpy as np
>>> latlon_to_xyz(np.array([90.0]), np.array([0.0])).round(12) + 0.0
array([[0., 0., 1.]])
>>> [float(v) for v in xyz_to_latlon(np.array([[0.0, -1.0, 0.0]]))[1]]
[-90.0]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LOG_AREA", "latlon_to_xyz", "xyz_to_latlon"]

#: log of the area of the unit sphere, log(4 pi) = 2.5310...; the NLL of the uniform density.
LOG_AREA: float = math.log(4.0 * math.pi)


def latlon_to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit vectors ``S + (3,)`` of latitudes and longitudes in degrees (same shape ``S``), float64."""
    la = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lo = np.deg2rad(np.asarray(lon, dtype=np.float64))
    c = np.cos(la)
    return np.stack([c * np.cos(lo), c * np.sin(lo), np.sin(la)], axis=-1)


def xyz_to_latlon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`latlon_to_xyz`: ``(lat, lon)`` in degrees, lon in (-180, 180]; ``xyz`` need not be unit.

    Latitude is ``atan2(z, hypot(x, y))``, exact near the poles.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    lat = np.rad2deg(np.arctan2(xyz[..., 2], np.hypot(xyz[..., 0], xyz[..., 1])))
    lon = np.rad2deg(np.arctan2(xyz[..., 1], xyz[..., 0]))
    lon = np.where(lon <= -180.0, lon + 360.0, lon)
    return lat, lon
