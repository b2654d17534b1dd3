"""Independent references for the manifold contracts (tests/test_manifolds.py, tests/test_targets.py).

* :func:`contract_instances`: a small instance of every registered manifold;
* :class:`Circle`: S¹ ⊂ R², a test-only second curved manifold (``dim = 1``, ``ambient_dim = 2``);
* :func:`chart_quadrature`: Gauss-Legendre nodes and volume weights through a chart of each manifold;
* :func:`fd_divergence` and :func:`closed_form_field`: a finite-difference divergence valid on curved and
  flat manifolds, and fields whose divergence is known in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from cnfm_core.manifolds import MANIFOLDS, Manifold, make_manifold

__all__ = ["Circle", "chart_quadrature", "closed_form_field", "contract_instances", "fd_divergence"]

Velocity = Callable[[Tensor], Tensor]


def contract_instances() -> list[Manifold]:
    """The sphere, and the flat torus in dimensions 2 and 3 once it is registered."""
    out = [make_manifold("sphere")]
    if "torus" in MANIFOLDS:
        out += [make_manifold("torus", dim=2), make_manifold("torus", dim=3)]
    return out


def _perp(x: Tensor) -> Tensor:
    """``x`` turned by +90 degrees in the plane: the unit tangent of S¹ at ``x``."""
    return torch.stack([-x[..., 1], x[..., 0]], dim=-1)


class Circle(Manifold):
    """The unit circle S¹ ⊂ R², written from the angle: ``expmap(x, s Jx) = cos(s) x + sin(s) Jx``."""

    name = "circle"
    dim = 1
    ambient_dim = 2
    feature_dim = 2

    @property
    def log_volume(self) -> float:
        return math.log(2.0 * math.pi)

    def projx(self, x: Tensor) -> Tensor:
        return x / x.norm(dim=-1, keepdim=True)

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return u - (x * u).sum(-1, keepdim=True) * x

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        s = (u * _perp(x)).sum(-1, keepdim=True)
        return torch.cos(s) * x + torch.sin(s) * _perp(x)

    def _angle(self, x: Tensor, y: Tensor) -> Tensor:
        """Signed angle from ``x`` to ``y``; the cross term from ``y - x`` (``y + x``) is exact nearby."""
        dot = (x * y).sum(-1)
        d = torch.where(dot[..., None] >= 0, y - x, y + x)
        return torch.atan2(x[..., 0] * d[..., 1] - x[..., 1] * d[..., 0], dot)

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        return self._angle(x, y)[..., None] * _perp(x)

    def dist(self, x: Tensor, y: Tensor) -> Tensor:
        return self._angle(x, y).abs()

    def random_uniform(self, n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                       device: torch.device | str | None = None) -> Tensor:
        theta = 2.0 * math.pi * torch.rand(n, generator=generator, dtype=dtype, device=device)
        return torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)

    def tangent_frame(self, x: Tensor) -> Tensor:
        return _perp(x)[None]

    def projection_divergence(self, x: Tensor, f: Tensor) -> Tensor:
        return -(x * f).sum(-1)

    def features(self, x: Tensor) -> Tensor:
        return x

    def feature_tangents(self, x: Tensor, tangents: Tensor) -> Tensor:
        return tangents

    def geodesic(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        s = self._angle(x0, x1)[..., None]
        xt = self.expmap(x0, t[:, None] * s * _perp(x0))
        return xt, s * _perp(xt)


# ----------------------------------------------------------------------------- quadrature through a chart
def _chart(m: Manifold) -> tuple[Callable[[Tensor], Tensor], list[tuple[float, float]]]:
    """A parametrisation of (almost all of) ``m`` by a box, into ambient coordinates."""
    if m.name == "sphere":  # (lat, lon) in radians
        def sphere(u: Tensor) -> Tensor:
            return torch.stack([torch.cos(u[0]) * torch.cos(u[1]), torch.cos(u[0]) * torch.sin(u[1]),
                                torch.sin(u[0])])
        return sphere, [(-math.pi / 2, math.pi / 2), (-math.pi, math.pi)]
    if m.name == "circle":
        return (lambda u: torch.stack([torch.cos(u[0]), torch.sin(u[0])])), [(-math.pi, math.pi)]
    if m.name == "torus":  # the angles themselves
        return (lambda u: u.clone()), [(-math.pi, math.pi)] * m.dim
    raise AssertionError(f"no chart for manifold {m.name!r}: add one to tests/manifold_helpers.py")


def chart_quadrature(m: Manifold) -> tuple[Tensor, Tensor]:
    """Points on ``m`` (``(Q, D)``, float64) and weights (``(Q,)``) with ``sum w g(x) = int_M g dV``: a
    tensor-product Gauss-Legendre rule on the chart's box times the volume element ``sqrt(det(Jᵀ J))``."""
    chart, box = _chart(m)
    n = 48 if m.dim <= 2 else 24
    nodes, weights = np.polynomial.legendre.leggauss(n)
    axes = [torch.as_tensor(0.5 * (b - a) * nodes + 0.5 * (b + a)) for a, b in box]
    axis_w = [torch.as_tensor(0.5 * (b - a) * weights) for a, b in box]
    u = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(box))
    w = torch.stack(torch.meshgrid(*axis_w, indexing="ij"), dim=-1).reshape(-1, len(box)).prod(-1)
    jac = torch.func.vmap(torch.func.jacfwd(chart))(u)  # (Q, D, d)
    element = torch.sqrt(torch.linalg.det(jac.transpose(1, 2) @ jac))
    return m.projx(torch.func.vmap(chart)(u)), w * element


# ----------------------------------------------------------------------------- divergence references
def fd_divergence(m: Manifold, velocity: Velocity, x: Tensor, *, eps: float = 1e-3, h: float = 1e-5) -> Tensor:
    """``div v(x) = d/dε log |det D φ_ε(x)|`` at ``ε = 0`` for ``φ_ε(x) = expmap(x, ε v(x))``.

    ``D φ_ε`` is taken between orthonormal frames at ``x`` and at ``y = φ_ε(x)``: its columns are central
    differences (step ``h``) of ``logmap(y, φ_ε(expmap(x, ±h e_i)))``; the ``ε``-derivative is a fourth-order
    central difference. Only ``expmap``, ``logmap`` and ``tangent_frame`` enter, so it holds on curved and
    flat manifolds alike; ``velocity(z)`` must be tangent at ``z``.
    """
    frame = m.tangent_frame(x)
    shifted = [(m.expmap(x, h * e), m.expmap(x, -h * e)) for e in frame]

    def log_det(s: float) -> Tensor:
        y = m.expmap(x, s * velocity(x))
        cols = torch.stack([(m.logmap(y, m.expmap(zp, s * velocity(zp))) - m.logmap(y, m.expmap(zm, s * velocity(zm))))
                            / (2 * h) for zp, zm in shifted])  # (d, B, D)
        jac = torch.einsum("jbk,ibk->bji", m.tangent_frame(y), cols)
        return torch.linalg.slogdet(jac).logabsdet

    return (8.0 * (log_det(eps) - log_det(-eps)) - (log_det(2 * eps) - log_det(-2 * eps))) / (12.0 * eps)


def closed_form_field(m: Manifold) -> tuple[Velocity, Callable[[Tensor], Tensor]]:
    """A tangent field on ``m`` and its divergence in closed form.

    * S² and S¹: the gradient of ``c <a, x>``, ``v = c (a - <a, x> x)``, with divergence (its Laplacian)
      ``-2 c <a, x>`` on S² and ``-c <a, x>`` on S¹;
    * Tᵈ (angles ``θ``): ``v_k = sin(θ_k + 0.3 k) + 0.5 cos(θ_{k+1})``, divergence ``sum_k cos(θ_k + 0.3 k)``
      (the cross terms have no diagonal derivative).
    """
    if m.name in ("sphere", "circle"):
        a = torch.linspace(0.3, -0.9, m.ambient_dim, dtype=torch.float64)
        a = a / a.norm()
        c = 0.8

        def grad(z: Tensor) -> Tensor:
            return c * (a - (z @ a)[:, None] * z)

        return grad, lambda z: -float(m.dim) * c * (z @ a)
    if m.name == "torus":
        shift = 0.3 * torch.arange(m.dim, dtype=torch.float64)

        def waves(z: Tensor) -> Tensor:
            return torch.sin(z + shift) + 0.5 * torch.cos(torch.roll(z, -1, dims=-1))

        return waves, lambda z: torch.cos(z + shift).sum(-1)
    raise AssertionError(f"no closed-form field for manifold {m.name!r}: add one to tests/manifold_helpers.py")
