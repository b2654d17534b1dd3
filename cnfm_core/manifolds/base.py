"""The manifold interface: what paths, fields, objectives, integrators and the likelihood need of a space.

A manifold ``M`` of dimension ``d`` is represented by points of shape ``(..., D)`` in an ambient
coordinate space (``D = 3`` unit vectors for the sphere S², ``D = d`` angles in radians for the flat
torus Tᵈ). The vocabulary is geoopt's:

* ``projx(x)`` maps ambient points onto ``M`` (idempotent), ``proju(x, u)`` ambient vectors onto the
  tangent space at ``x`` (idempotent, and ``proju(x, u)`` is tangent);
* ``expmap(x, u)`` follows the geodesic from ``x`` with initial velocity ``u`` for unit time, ``logmap(x, y)``
  is its inverse (the shortest such ``u``), ``dist(x, y) = |logmap(x, y)|``;
* ``random_uniform(n)`` samples the normalised volume measure, whose log density is
  ``uniform_log_prob(x) = -log_volume``;
* ``tangent_frame(x)`` is an orthonormal basis ``e_1..e_d`` of the tangent space (shape ``(d, B, D)``);
* ``geodesic(x0, x1, t)`` is the constant-speed geodesic ``x_t`` and its velocity (RFM's interpolant).

The exact divergence of a field ``v(x) = proju(x, f(x))`` (``f`` ambient, ``J`` its Jacobian) is

    div v(x) = sum_i <e_i, J e_i> + projection_divergence(x, f(x)),

where the second term is ``sum_i <e_i, (D_{e_i} P) f>`` for the tangent projection ``P``:
``-(D - 1) <x, f>`` on the unit sphere in R^D, 0 on a flat manifold. The network of a field sees the point
through ``features(x)`` (periodic on the torus) and pushes tangents through ``feature_tangents``.

Contract tests over every registered manifold live in tests/test_manifolds.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Manifold"]


class Manifold(ABC):
    """A Riemannian manifold of dimension ``dim`` embedded in ``ambient_dim`` coordinates (module doc)."""

    #: Registry name (``TrainConfig.manifold``).
    name: str
    #: Intrinsic dimension ``d``.
    dim: int
    #: Number of ambient coordinates ``D`` of a point.
    ambient_dim: int
    #: Number of features the field's network sees per point.
    feature_dim: int

    @property
    @abstractmethod
    def log_volume(self) -> float:
        """``log vol(M)``: the NLL of the uniform density (log 4π on S², d log 2π on Tᵈ)."""

    @abstractmethod
    def projx(self, x: Tensor) -> Tensor:
        """Ambient points onto the manifold."""

    @abstractmethod
    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        """Ambient vectors ``u`` onto the tangent space at ``x``."""

    @abstractmethod
    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        """Follow the geodesic from ``x`` with initial velocity ``u`` (tangent) for unit time."""

    @abstractmethod
    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        """The tangent vector at ``x`` whose exponential is ``y`` (the shortest one)."""

    @abstractmethod
    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        """Geodesic distance, exact to relative float precision at small distances."""

    def inner(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        """Riemannian inner product of tangent vectors at ``x`` (the ambient Euclidean one by default)."""
        return (u * v).sum(-1)

    @abstractmethod
    def random_uniform(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> Tensor:
        """``n`` points from the normalised volume measure."""

    def uniform_log_prob(self, x: Tensor) -> Tensor:
        """Log density of the uniform distribution w.r.t. volume: ``-log_volume`` everywhere."""
        return torch.full(x.shape[:-1], -self.log_volume, dtype=x.dtype, device=x.device)

    @abstractmethod
    def tangent_frame(self, x: Tensor) -> Tensor:
        """An orthonormal basis of the tangent space at each point: shape ``(dim, B, ambient_dim)``."""

    @abstractmethod
    def projection_divergence(self, x: Tensor, f: Tensor) -> Tensor:
        """``sum_i <e_i, (D_{e_i} P) f>``: what the divergence of ``proju(x, f(x))`` adds to ``tr(P J P)``."""

    @abstractmethod
    def features(self, x: Tensor) -> Tensor:
        """What a field's network sees of the points ``x`` (shape ``(B, feature_dim)``)."""

    @abstractmethod
    def feature_tangents(self, x: Tensor, tangents: Tensor) -> Tensor:
        """Directional derivatives of :meth:`features` along tangents ``(T, B, D)``: shape ``(T, B, feature_dim)``."""

    @abstractmethod
    def geodesic(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """The constant-speed geodesic from ``x0`` (t = 0) to ``x1`` (t = 1) at times ``t`` (``(B,)``):
        the points ``x_t`` and velocities ``d/dt x_t``."""
