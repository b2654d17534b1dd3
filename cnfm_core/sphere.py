"""Geometry of the unit sphere S^2 embedded in R^3.

Coordinates: a point is a unit vector ``x = (x, y, z)``. Geographic coordinates are always
given in the order **(lat, lon)**, in degrees, with

    x = cos(lat) cos(lon),   y = cos(lat) sin(lon),   z = sin(lat).

Manifold operations (projections, exponential map) come from :mod:`geoopt`. The geodesic
distance is computed here as ``atan2(|x × y|, x · y)``: geoopt's float32 distance is an
``acos`` of a clamped dot product, which cannot resolve angles below about 0.014 rad
(tests/test_sphere.py measures the gap).

>>> import torch
>>> x = latlon_to_xyz(torch.tensor([90.0]), torch.tensor([0.0]))
>>> torch.allclose(x, torch.tensor([[0.0, 0.0, 1.0]]), atol=1e-7)
True
"""

from __future__ import annotations

import geoopt
import numpy as np
import torch
from torch import Tensor

from .geo import LOG_AREA

__all__ = [
    "LOG_AREA",
    "dist",
    "expmap",
    "grid_points",
    "latlon_to_xyz",
    "projx",
    "proju",
    "sample_uniform",
    "tangent_frame",
    "uniform_log_prob",
    "xyz_to_latlon",
]


_SPHERE = geoopt.Sphere()


def latlon_to_xyz(lat: Tensor, lon: Tensor) -> Tensor:
    """Map latitude and longitude in degrees (same shape ``S``) to unit vectors of shape ``S + (3,)``."""
    la = torch.deg2rad(lat)
    lo = torch.deg2rad(lon)
    c = torch.cos(la)
    return torch.stack([c * torch.cos(lo), c * torch.sin(lo), torch.sin(la)], dim=-1)


def grid_points(lat: np.ndarray, lon: np.ndarray, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """Unit vectors ``(len(lat) * len(lon), 3)`` of every ``(lat[i], lon[j])``, row-major in ``i`` (degrees)."""
    la, lo = np.meshgrid(np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64), indexing="ij")
    return latlon_to_xyz(torch.as_tensor(la.ravel()), torch.as_tensor(lo.ravel())).to(dtype)


def xyz_to_latlon(x: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`latlon_to_xyz`: returns ``(lat, lon)`` in degrees, lon in (-180, 180].

    The input need not be normalised; latitude uses ``atan2(z, hypot(x, y))`` so that it is
    exact near the poles.
    """
    lat = torch.rad2deg(torch.atan2(x[..., 2], torch.hypot(x[..., 0], x[..., 1])))
    lon = torch.rad2deg(torch.atan2(x[..., 1], x[..., 0]))
    # atan2 returns -pi for y = -0.0 (or y rounding to -pi), which would give lon = -180.
    lon = torch.where(lon <= -180.0, lon + 360.0, lon)
    return lat, lon


def projx(x: Tensor) -> Tensor:
    """Project ambient points onto the sphere, ``x / |x|``."""
    return _SPHERE.projx(x)


def proju(x: Tensor, u: Tensor) -> Tensor:
    """Project ambient vectors ``u`` onto the tangent plane at ``x``: ``u - <x, u> x``."""
    return _SPHERE.proju(x, u)


def expmap(x: Tensor, u: Tensor) -> Tensor:
    """Exponential map: follow the great circle from ``x`` with initial velocity ``u`` for unit time."""
    return _SPHERE.expmap(x, u)


def dist(x: Tensor, y: Tensor) -> Tensor:
    """Geodesic (great-circle) distance in radians, ``atan2(|x × y|, x · y)``.

    Exact to relative float precision at every angle, including tiny ones, unlike
    ``acos(clamp(x · y))``. The cross product is formed as ``x × (y - x)`` (``x × (y + x)`` for
    obtuse pairs): the difference of nearby points is exact, whereas ``x × y`` of two generic
    float32 points cancels to an absolute error of about 1e-7 (30% at 1e-7 rad).
    """
    dot = (x * y).sum(-1)
    d = torch.where(dot[..., None] >= 0, y - x, y + x)
    cross = torch.linalg.vector_norm(torch.linalg.cross(x, d, dim=-1), dim=-1)
    return torch.atan2(cross, dot)


def sample_uniform(
    n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` points uniformly on the sphere (normalised Gaussians)."""
    g = torch.randn(n, 3, generator=generator, dtype=dtype, device=device)
    return projx(g)


def uniform_log_prob(x: Tensor) -> Tensor:
    """Log-density of the uniform distribution w.r.t. area: ``-log(4 pi)`` at every point."""
    return torch.full(x.shape[:-1], -LOG_AREA, dtype=x.dtype, device=x.device)


def tangent_frame(x: Tensor) -> tuple[Tensor, Tensor]:
    """An orthonormal basis ``(e1, e2)`` of the tangent plane at each unit vector ``x``.

    ``e1`` is built from the coordinate axis least aligned with ``x``, so it is well
    conditioned everywhere (poles included); ``e2 = x × e1``.
    """
    axis = torch.zeros_like(x)
    idx = x.abs().argmin(dim=-1, keepdim=True)
    axis.scatter_(-1, idx, 1.0)
    e1 = torch.linalg.cross(x, axis, dim=-1)
    e1 = e1 / torch.linalg.vector_norm(e1, dim=-1, keepdim=True)
    e2 = torch.linalg.cross(x, e1, dim=-1)
    return e1, e2
