"""The flat torus Tᵈ = (R / 2πZ)ᵈ: points are ``d`` angles in radians, each in ``[-π, π)``.

The metric is the flat one inherited from Rᵈ, so every tangent space is Rᵈ itself:

* ``projx(x) = wrap(x)`` with ``wrap(a) = a - 2π floor((a + π) / 2π)`` mapped exactly into ``[-π, π)``
  (:func:`wrap_angle`, which corrects the rounding that can land on ``π``); ``proju(x, u) = u``;
* ``expmap(x, u) = wrap(x + u)``, ``logmap(x, y) = wrap(y - x)`` (coordinate-wise the shortest of the
  differences ``y - x + 2πk``), ``dist(x, y) = |logmap(x, y)|``;
* the volume is ``(2π)ᵈ``, so the uniform density scores ``d log 2π`` nats;
* the tangent frame is the identity basis and the projection adds nothing to the divergence
  (``div v = tr J`` for ``v = f``);
* a field's network sees ``[cos θ, sin θ]`` (``2d`` features, periodic), whose derivative along a
  tangent ``u`` is ``[-sin θ · u, cos θ · u]``;
* the geodesic from ``x0`` to ``x1`` is ``wrap(x0 + t · logmap(x0, x1))`` with constant velocity
  ``logmap(x0, x1)`` (RFM's interpolant).

>>> import torch
>>> t2 = Torus(2)
>>> t2.logmap(torch.tensor([[3.0, 0.0]]), torch.tensor([[-3.0, 1.0]]))  # across the seam
tensor([[0.2832, 1.0000]])
>>> round(t2.log_volume, 4)  # 2 log 2π
3.6758
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Manifold

__all__ = ["Torus", "wrap_angle"]

_TWO_PI = 2.0 * math.pi


def wrap_angle(a: Tensor) -> Tensor:
    """Angles ``a`` (radians) wrapped into ``[-π, π)``, where ``π`` is ``math.pi`` rounded to ``a``'s dtype.

    Angles already in range are returned unchanged (bit for bit: ``(a + π) - π`` would round away the
    low bits of a small difference, and with them the relative precision of :meth:`Torus.dist`). The
    others are reduced with ``remainder``, which can round up to a full turn (for ``a`` a hair below
    ``-π`` in float32, say), so the result is corrected once more: a value at or above ``π`` moves down
    a turn, one below ``-π`` up.
    """
    pi = torch.tensor(math.pi, dtype=a.dtype, device=a.device)
    w = torch.remainder(a + pi, _TWO_PI) - pi
    w = torch.where(w >= pi, w - _TWO_PI, w)
    w = torch.where(w < -pi, w + _TWO_PI, w)
    return torch.where((a >= -pi) & (a < pi), a, w)


class Torus(Manifold):
    """The flat torus of dimension ``dim`` (module doc); points are ``(..., dim)`` angles in radians."""

    name = "torus"

    def __init__(self, dim: int) -> None:
        if int(dim) != dim or dim < 1:
            raise ValueError(f"the torus needs a whole dimension of at least 1, got {dim}")
        self.dim = int(dim)
        self.ambient_dim = self.dim
        self.feature_dim = 2 * self.dim

    def __repr__(self) -> str:
        return f"Torus({self.dim})"

    @property
    def log_volume(self) -> float:
        return self.dim * math.log(_TWO_PI)

    def projx(self, x: Tensor) -> Tensor:
        return wrap_angle(x)

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return u

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        return wrap_angle(x + u)

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        return wrap_angle(y - x)

    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.linalg.vector_norm(self.logmap(x, y), dim=-1)

    def random_uniform(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> Tensor:
        u = torch.rand(n, self.dim, generator=generator, dtype=dtype, device=device)
        return wrap_angle(u * _TWO_PI - math.pi)

    def tangent_frame(self, x: Tensor) -> Tensor:
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return eye[:, None, :].expand(self.dim, x.shape[0], self.dim)

    def projection_divergence(self, x: Tensor, f: Tensor) -> Tensor:
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

    def features(self, x: Tensor) -> Tensor:
        return torch.cat([torch.cos(x), torch.sin(x)], dim=-1)

    def feature_tangents(self, x: Tensor, tangents: Tensor) -> Tensor:
        return torch.cat([-torch.sin(x) * tangents, torch.cos(x) * tangents], dim=-1)

    def geodesic(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        u = self.logmap(x0, x1)
        return wrap_angle(x0 + t[:, None] * u), u
