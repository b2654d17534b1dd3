"""The unit sphere S² as unit vectors in R³: the first :class:`~cnfm_core.manifolds.base.Manifold`.

Projections and the exponential map are geoopt's (:class:`geoopt.Sphere`)::

    projx(x) = x / |x|,   proju(x, u) = u - <x, u> x,   expmap(x, u) = cos|u| x + sin|u| u / |u|.

Where geoopt is not exact enough in float32 this class has its own formulas, and tests/test_manifolds.py
measures the gap:

* ``dist(x, y) = atan2(|x × y|, x · y)``; geoopt's ``acos`` of a clamped dot product cannot resolve
  angles below about 0.014 rad in float32 (at 1e-4 rad it returns 0 or 0.0138).
* ``logmap(x, y) = dist(x, y) w / |w|`` with ``w = y - <x, y> x``: geoopt scales ``w`` by its ``acos``
  distance, so its float32 logmap inherits that error.

Uniform points are normalised Gaussians, with density ``1 / 4π`` w.r.t. area. The tangent frame is
``e_1 = x × a / |x × a|`` (``a`` the coordinate axis least aligned with ``x``, well conditioned everywhere,
poles included) and ``e_2 = x × e_1``. For ``v = proju(x, f(x))`` the divergence adds
``projection_divergence = -2 <x, f>`` to ``tr(P J P)``: with ``P = I - x xᵀ``,
``sum_i <e_i, (D_{e_i} P) f> = -sum_i <e_i, e_i <x, f> + x <e_i, f>> = -2 <x, f>``.

>>> import torch
>>> s = Sphere()
>>> x, y = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
>>> round(float(s.dist(x, y)), 6), s.logmap(x, y).tolist()
(1.570796, [[1.5707963705062866, 0.0, 0.0]])
"""

from __future__ import annotations

import geoopt
import torch
from torch import Tensor

from ..geo import LOG_AREA
from .base import Manifold

__all__ = ["Sphere"]


class Sphere(Manifold):
    """S² ⊂ R³ (module doc): ``dim = 2``, ``ambient_dim = 3``, the network sees the unit vector itself."""

    name = "sphere"
    dim = 2
    ambient_dim = 3
    feature_dim = 3

    def __init__(self) -> None:
        self._geoopt = geoopt.Sphere()

    def __repr__(self) -> str:
        return "Sphere()"

    @property
    def log_volume(self) -> float:
        """``log 4π``."""
        return LOG_AREA

    def projx(self, x: Tensor) -> Tensor:
        return self._geoopt.projx(x)

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return self._geoopt.proju(x, u)

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        return self._geoopt.expmap(x, u)

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        """``dist(x, y) w / |w|``, ``w = proju(x, y - x)``; 0 where ``w = 0`` (``y = ±x``: for ``y = -x`` every
        direction is a shortest one, and 0 is returned rather than an arbitrary one)."""
        w = self.proju(x, y - x)
        norm = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
        scale = self.dist(x, y)[..., None] / norm.clamp_min(torch.finfo(x.dtype).tiny)
        return torch.where(norm > 0, w * scale, torch.zeros_like(w))

    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        """Great-circle distance in radians, ``atan2(|x × y|, x · y)``.

        Exact to relative float precision at every angle, including tiny ones, unlike ``acos(clamp(x · y))``.
        The cross product is formed as ``x × (y - x)`` (``x × (y + x)`` for obtuse pairs): the difference of
        nearby points is exact, whereas ``x × y`` of two generic float32 points cancels to an absolute error
        of about 1e-7 (30% at 1e-7 rad).
        """
        dot = (x * y).sum(-1)
        d = torch.where(dot[..., None] >= 0, y - x, y + x)
        cross = torch.linalg.vector_norm(torch.linalg.cross(x, d, dim=-1), dim=-1)
        return torch.atan2(cross, dot)

    def random_uniform(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> Tensor:
        """Normalised standard Gaussians ``(n, 3)``: uniform by rotational symmetry."""
        g = torch.randn(n, 3, generator=generator, dtype=dtype, device=device)
        return self.projx(g)

    def tangent_frame(self, x: Tensor) -> Tensor:
        """``(e_1, e_2)`` stacked, shape ``(2, B, 3)`` (module doc)."""
        axis = torch.zeros_like(x)
        idx = x.abs().argmin(dim=-1, keepdim=True)
        axis.scatter_(-1, idx, 1.0)
        e1 = torch.linalg.cross(x, axis, dim=-1)
        e1 = e1 / torch.linalg.vector_norm(e1, dim=-1, keepdim=True)
        e2 = torch.linalg.cross(x, e1, dim=-1)
        return torch.stack([e1, e2])

    def projection_divergence(self, x: Tensor, f: Tensor) -> Tensor:
        """``-2 <x, f>`` (module doc)."""
        return -2.0 * (x * f).sum(-1)

    def features(self, x: Tensor) -> Tensor:
        """The unit vector itself."""
        return x

    def feature_tangents(self, x: Tensor, tangents: Tensor) -> Tensor:
        """The tangents themselves (the features are the identity)."""
        return tangents

    def geodesic(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The constant-speed great circle from ``x0`` to ``x1``.

        With ``d`` the unit tangent at ``x0`` towards ``x1`` and ``θ`` their distance,
        ``x_t = cos(tθ) x0 + sin(tθ) d`` and ``d/dt x_t = θ (cos(tθ) d - sin(tθ) x0)``. For ``x1 = x0`` the
        velocity is 0; for ``x1 = -x0`` the great circle is not unique (``w = 0``) and ``x_t`` leaves the sphere
        (uniform ``x0`` meets this with probability 0).
        """
        w = x1 - (x0 * x1).sum(-1, keepdim=True) * x0
        sin = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
        theta = torch.atan2(sin, (x0 * x1).sum(-1, keepdim=True))
        d = w / sin.clamp_min(torch.finfo(x0.dtype).tiny)
        a = t[:, None] * theta
        xt = torch.cos(a) * x0 + torch.sin(a) * d
        ut = theta * (torch.cos(a) * d - torch.sin(a) * x0)
        return xt, ut
