"""Geometry of the unit sphere S^2 embedded in R^3.

Coordinates: a point is a unit vector ``x = (x, y, z)``. Geographic coordinates are always
given in the order **(lat, lon)**, in degrees, with

    x = cos(lat) cos(lon),   y = cos(lat) sin(lon),   z = sin(lat).

The manifold operations (projections, exponential map, the exact float32 geodesic distance
``atan2(|x × y|, x · y)``, uniform sampling, the tangent frame) are those of the manifold object
:data:`SPHERE` (:class:`cnfm_core.manifolds.Sphere`, on geoopt where geoopt is exact enough); the
functions here are shorthands for them.

>>> import torch
>>> x = latlon_to_xyz(torch.tensor([90.0]), torch.tensor([0.0]))
>>> torch.allclose(x, torch.tensor([[0.0, 0.0, 1.0]]), atol=1e-7)
True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .geo import LOG_AREA
from .manifolds.sphere import Sphere

__all__ = [
    "LOG_AREA",
    "SPHERE",
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


#: The sphere as a :class:`~cnfm_core.manifolds.base.Manifold`.
SPHERE = Sphere()


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
    return SPHERE.projx(x)


def proju(x: Tensor, u: Tensor) -> Tensor:
    """Project ambient vectors ``u`` onto the tangent plane at ``x``: ``u - <x, u> x``."""
    return SPHERE.proju(x, u)


def expmap(x: Tensor, u: Tensor) -> Tensor:
    """Exponential map: follow the great circle from ``x`` with initial velocity ``u`` for unit time."""
    return SPHERE.expmap(x, u)


def dist(x: Tensor, y: Tensor) -> Tensor:
    """Geodesic (great-circle) distance in radians, ``atan2(|x × y|, x · y)`` (:meth:`Sphere.dist`)."""
    return SPHERE.dist(x, y)


def sample_uniform(
    n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n`` points uniformly on the sphere (normalised Gaussians)."""
    return SPHERE.random_uniform(n, generator=generator, dtype=dtype, device=device)


def uniform_log_prob(x: Tensor) -> Tensor:
    """Log-density of the uniform distribution w.r.t. area: ``-log(4 pi)`` at every point."""
    return SPHERE.uniform_log_prob(x)


def tangent_frame(x: Tensor) -> tuple[Tensor, Tensor]:
    """An orthonormal basis ``(e1, e2)`` of the tangent plane at each unit vector ``x``
    (:meth:`Sphere.tangent_frame`: ``e1`` from the axis least aligned with ``x``, ``e2 = x × e1``)."""
    e1, e2 = SPHERE.tangent_frame(x)
    return e1, e2
