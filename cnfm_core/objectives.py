"""Training objectives: the Probability Path Divergence (PPD) and Riemannian flow matching (RFM).

PPD (Ben-Hamu et al., 2022). For the target path ``p_t`` and the model field ``v``, the
continuity equation ``d/dt p_t + div(p_t v) = 0`` holds exactly when the residual

    r(t, x) = d/dt log p_t(x) + <grad log p_t(x), v(t, x)> + div v(t, x)

vanishes ``p_t``-almost everywhere. The loss is ``E_{t ~ U[0,1], x ~ p_t} |r(t, x)|^ell``;
no ODE is solved during training.

RFM (Chen & Lipman, 2024), the baseline: ``x_0`` uniform, ``x_1`` a data point, ``x_t`` the
geodesic between them at constant speed (the manifold's :meth:`~cnfm_core.manifolds.base.Manifold.geodesic`),
and the loss ``E |v(t, x_t) - d/dt x_t|^2``.

Both work on any manifold: PPD through its target path (any :class:`~cnfm_core.paths.TargetPath`), RFM
through the manifold's uniform sampling and geodesics.

Both are built from a name in :data:`OBJECTIVES` and called as ``objective(field, batch_size,
generator=...)``, returning an :class:`ObjectiveValue`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .field import VectorField
from .manifolds.base import Manifold
from .paths import TargetPath
from .sphere import SPHERE

__all__ = ["OBJECTIVES", "PPD", "RFM", "Objective", "ObjectiveValue", "geodesic_interpolant", "make_objective"]


@dataclass(frozen=True)
class ObjectiveValue:
    """A minibatch loss (differentiable) and the mean squared residual, a scale-free diagnostic.

    The diagnostic stays a detached tensor on the loss's device until :attr:`residual_ms` is read, so a training
    step on a GPU does not wait for a copy to the host that nothing uses."""

    loss: Tensor
    residual_square_mean: Tensor

    @property
    def residual_ms(self) -> float:
        """The mean squared residual, as a number."""
        return float(self.residual_square_mean)


class PPD:
    """``E |d/dt log p_t + <grad log p_t, v> + div v|^ell`` with ``t ~ U[0, 1]``, ``x ~ p_t``."""

    def __init__(self, path: TargetPath, *, ell: int = 2) -> None:
        if ell not in (1, 2):
            raise ValueError(f"ell must be 1 or 2, got {ell}")
        self.path, self.ell = path, ell

    def residual(self, field: VectorField, x: Tensor, t: Tensor) -> Tensor:
        """The PPD residual ``r(t, x)`` (shape ``(B,)``)."""
        q = self.path.quantities(x, t)
        v, div = field.velocity_and_divergence(x, t)
        return q.dlog_prob_dt + (q.grad_log_prob * v).sum(-1) + div

    def __call__(
        self, field: VectorField, batch_size: int, *, generator: torch.Generator | None = None
    ) -> ObjectiveValue:
        t = torch.rand(batch_size, generator=generator, device=self.path.device, dtype=self.path.dtype)
        x = self.path.sample(t, generator=generator)
        r = self.residual(field, x, t)
        loss = r.abs().mean() if self.ell == 1 else r.square().mean()
        return ObjectiveValue(loss, r.detach().square().mean())


def geodesic_interpolant(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Point ``x_t`` and velocity ``d/dt x_t`` on the constant-speed great circle from ``x0`` to ``x1``
    on S² (:meth:`cnfm_core.manifolds.Sphere.geodesic`)."""
    return SPHERE.geodesic(x0, x1, t)


class RFM:
    """Riemannian flow matching with uniform noise and geodesic conditional paths on ``manifold``
    (default the sphere).

    With ``floor=w`` the end point ``x_1`` is a uniform point with probability ``w``, so the flow
    learns the same floored data distribution ``(1 - w) data + w / vol(M)`` as PPD with that floor.
    """

    def __init__(self, data: Tensor, *, floor: float = 0.0, manifold: Manifold | None = None) -> None:
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        self.manifold = SPHERE if manifold is None else manifold
        if data.ndim != 2 or data.shape[1] != self.manifold.ambient_dim:
            raise ValueError(f"data must have shape (N, {self.manifold.ambient_dim}) on {self.manifold!r}, "
                             f"got {tuple(data.shape)}")
        self.data, self.floor = data, float(floor)

    def __call__(
        self, field: VectorField, batch_size: int, *, generator: torch.Generator | None = None
    ) -> ObjectiveValue:
        dev, dt = self.data.device, self.data.dtype
        t = torch.rand(batch_size, generator=generator, device=dev, dtype=dt)
        x1 = self.data[torch.randint(self.data.shape[0], (batch_size,), generator=generator, device=dev)]
        m = self.manifold
        x0 = m.random_uniform(batch_size, generator=generator, dtype=dt, device=dev)
        if self.floor > 0.0:
            from_floor = torch.rand(batch_size, generator=generator, device=dev, dtype=dt) < self.floor
            noise = m.random_uniform(batch_size, generator=generator, dtype=dt, device=dev)
            x1 = torch.where(from_floor[:, None], noise, x1)
        xt, ut = m.geodesic(x0, x1, t)
        r = (field(xt, t) - ut).square().sum(-1)
        loss = r.mean()
        return ObjectiveValue(loss, loss.detach())


Objective = PPD | RFM

#: Objective names for configs and UIs; each builder takes the training points, the target path (or None),
#: the options and the manifold.
OBJECTIVES: dict[str, Callable[..., Objective]] = {
    "ppd": lambda data, path, ell, floor, manifold: PPD(path, ell=ell),
    "rfm": lambda data, path, ell, floor, manifold: RFM(data, floor=floor, manifold=manifold),
}


def make_objective(name: str, *, data: Tensor, path: TargetPath | None, ell: int = 2,
                   floor: float = 0.0, manifold: Manifold | None = None) -> Objective:
    """Build an objective by name; unknown names raise ``ValueError`` listing the known ones.

    PPD takes its floor and manifold from ``path``; ``floor`` and ``manifold`` (default: the path's, else
    the sphere) are for RFM, and must agree with the path's when both are given.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    if name == "ppd" and path is None:
        raise ValueError("the ppd objective needs a target path")
    if path is not None and path.floor != floor:
        raise ValueError(f"the path's floor {path.floor} differs from floor={floor}")
    if manifold is None:
        manifold = SPHERE if path is None else path.manifold
    elif path is not None and path.manifold.name != manifold.name:
        raise ValueError(f"the path lives on {path.manifold!r}, not on {manifold!r}")
    return OBJECTIVES[name](data, path, ell, floor, manifold)
