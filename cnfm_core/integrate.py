"""Integrating the flow: samples, trajectories, exact log-likelihoods and density grids.

The manifold is the field's (``field.manifold``; a field without one is on the sphere S²), with points
of shape ``(B, D)`` in its ambient coordinates.

* Samples and trajectories use a fixed-step method (``euler`` or ``rk4`` from
  :data:`FIXED_STEP`) in ambient coordinates, projecting back onto the manifold (``projx``) after each step.
* The log-likelihood uses the instantaneous change of variables,
  ``d/dt log q_t(x_t) = -div v(t, x_t)``: integrating ``(x, a)`` with ``dx/dt = v``,
  ``da/dt = div v`` backwards from ``(x_1, 0)`` at ``t = 1`` to ``t = 0`` gives
  ``log q_1(x_1) = -log vol(M) + a(0)`` (``-log 4 pi + a(0)`` on S²). The solver is adaptive
  (torchdiffeq's ``dopri5`` by default) with stated tolerances; the divergence is exact.
* :func:`evaluate_nll` is the test-set NLL every report uses: mean and standard error, with the solver.
* :func:`density_grid` is the density on a lat/lon grid: S² only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from .config import DEFAULT_ATOL, DEFAULT_RTOL
from .grid import cell_centres
from .manifolds.base import Manifold
from .sphere import SPHERE, grid_points

__all__ = [
    "FIXED_STEP",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "DensityGrid",
    "LikelihoodResult",
    "NLLEstimate",
    "density_grid",
    "evaluate_nll",
    "field_manifold",
    "mean_sem",
    "flow",
    "log_likelihood",
    "sample",
]

Velocity = Callable[[Tensor, Tensor], Tensor]


def field_manifold(field: nn.Module) -> Manifold:
    """The manifold a field lives on: its ``manifold`` attribute, else the sphere S²."""
    manifold = getattr(field, "manifold", None)
    return SPHERE if manifold is None else manifold


def _euler(f: Velocity, x: Tensor, t: Tensor, h: float) -> Tensor:
    return x + h * f(x, t)


def _rk4(f: Velocity, x: Tensor, t: Tensor, h: float) -> Tensor:
    k1 = f(x, t)
    k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = f(x + h * k3, t + h)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


#: Fixed-step methods; each step is followed by a projection onto the manifold.
FIXED_STEP: dict[str, Callable[[Velocity, Tensor, Tensor, float], Tensor]] = {"euler": _euler, "rk4": _rk4}


@torch.no_grad()
def flow(
    field: nn.Module, x: Tensor, *, t0: float = 0.0, t1: float = 1.0, steps: int = 50,
    method: str = "rk4", keep: int | None = None,
) -> Tensor:
    """Push points ``x`` (``(B, D)``) along the field from ``t0`` to ``t1``.

    Returns the end points, or with ``keep=K`` a trajectory of shape ``(K, B, D)`` at ``K``
    evenly spaced times from ``t0`` to ``t1`` (``steps`` is then rounded up to a multiple of ``K - 1``).
    """
    if method not in FIXED_STEP:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(FIXED_STEP)}")
    step = FIXED_STEP[method]
    projx = field_manifold(field).projx
    every = 1
    if keep is not None:
        if keep < 2:
            raise ValueError("keep must be at least 2")
        every = -(-steps // (keep - 1))
        steps = every * (keep - 1)
    h = (t1 - t0) / steps
    out = [x] if keep is not None else None
    for i in range(steps):
        t = torch.full((x.shape[0],), t0 + i * h, dtype=x.dtype, device=x.device)
        x = projx(step(field, x, t, h))
        if out is not None and (i + 1) % every == 0:
            out.append(x)
    return torch.stack(out) if out is not None else x


def sample(
    field: nn.Module, n: int, *, generator: torch.Generator | None = None, steps: int = 50,
    method: str = "rk4",
) -> Tensor:
    """Draw ``n`` samples from the model: uniform points at ``t = 0`` pushed to ``t = 1``.

    The start points are drawn on the generator's device and moved to the field's, so a CPU generator gives the
    same start points whether the field is on the CPU or a GPU."""
    p = next(field.parameters())
    where = p.device if generator is None else generator.device
    x0 = field_manifold(field).random_uniform(n, generator=generator, dtype=p.dtype, device=where)
    return flow(field, x0.to(p.device), steps=steps, method=method)


@dataclass(frozen=True)
class LikelihoodResult:
    """Exact log-likelihoods (nats, w.r.t. the manifold's volume: area on S²), the points ``x0`` at
    ``t = 0`` they came from, and how they were computed."""

    log_prob: Tensor
    x0: Tensor
    nfe: int
    rtol: float
    atol: float
    method: str


@torch.no_grad()
def log_likelihood(
    field: nn.Module, x: Tensor, *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
    method: str = "dopri5", batch_size: int = 8192, options: dict | None = None, t: float = 1.0,
) -> LikelihoodResult:
    """``log q_t(x)`` (by default ``t = 1``, the model density) for points ``x`` of shape ``(B, D)``,
    by the augmented ODE integrated from ``t`` back to 0 (see module doc).

    ``method`` and ``options`` are passed to :func:`torchdiffeq.odeint` (for example
    ``method="rk4", options={"step_size": 0.02}`` for a fixed-step solve).
    """
    manifold = field_manifold(field)
    dim, log_volume = manifold.ambient_dim, manifold.log_volume
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"points must have shape (B, {dim}) on {manifold!r}, got {tuple(x.shape)}")
    if t == 0.0:
        return LikelihoodResult(torch.full_like(x[:, 0], -log_volume), x, 0, rtol, atol, method)
    times = torch.tensor([t, 0.0], dtype=x.dtype, device=x.device)
    nfe = 0

    def rhs(t: Tensor, state: Tensor) -> Tensor:
        nonlocal nfe
        nfe += 1
        v, div = field.velocity_and_divergence(state[:, :dim], t.expand(state.shape[0]))
        return torch.cat([v, div[:, None]], dim=1)

    logs, ends = [], []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size]
        z1 = torch.cat([xb, torch.zeros_like(xb[:, :1])], dim=1)
        z0 = odeint(rhs, z1, times, rtol=rtol, atol=atol, method=method,
                    options=options)[-1]
        logs.append(z0[:, dim] - log_volume)
        ends.append(manifold.projx(z0[:, :dim]))
    return LikelihoodResult(torch.cat(logs), torch.cat(ends), nfe, rtol, atol, method)


@dataclass(frozen=True)
class DensityGrid:
    """Model log-density on a regular grid of cell centres (degrees): ``log_prob[i, j]`` at ``(lat[i], lon[j])``."""

    lat: np.ndarray
    lon: np.ndarray
    log_prob: np.ndarray


def density_grid(
    field: nn.Module, *, n_lat: int = 90, n_lon: int = 180, rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> DensityGrid:
    """Exact model log-density at the centres of an ``n_lat x n_lon`` equirectangular grid (S² only:
    latitude and longitude are the sphere's; other manifolds raise ``ValueError``)."""
    manifold = field_manifold(field)
    if manifold.name != "sphere":
        raise ValueError(f"density_grid is a lat/lon grid on the sphere; the field lives on {manifold!r}")
    lat, lon = cell_centres(n_lat, n_lon)
    p = next(field.parameters())
    x = grid_points(lat, lon, dtype=p.dtype)
    lp = log_likelihood(field, x.to(p.device), rtol=rtol, atol=atol).log_prob
    return DensityGrid(lat, lon, lp.cpu().numpy().reshape(n_lat, n_lon))


def mean_sem(nll: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (``std(ddof=1) / sqrt(n)``; 0 for a single value)."""
    sem = float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1 else 0.0
    return float(nll.mean()), sem


@dataclass(frozen=True)
class NLLEstimate:
    """A test-set NLL (nats): the mean over ``n`` points and its standard error, how it was computed
    (``solver``, ``rtol``, ``atol``, ``nfe`` function evaluations) and how long it took (``seconds``)."""

    mean: float
    sem: float
    n: int
    solver: str
    rtol: float
    atol: float
    nfe: int
    seconds: float


def evaluate_nll(field: nn.Module, x: np.ndarray | Tensor, *, rtol: float = DEFAULT_RTOL,
                 atol: float = DEFAULT_ATOL) -> NLLEstimate:
    """The exact NLL ``-log q_1(x)`` of the points ``x`` (``(n, D)``, ``n >= 1``) under the field, on the
    device and in the precision of its parameters: mean and standard error (:func:`mean_sem`)."""
    if len(x) == 0:
        raise ValueError("evaluate_nll needs at least one point")
    p = next(field.parameters())
    if isinstance(x, Tensor):
        xt = x.to(device=p.device, dtype=p.dtype)
    else:  # a copy: arrays read from files may be read-only
        xt = torch.tensor(np.asarray(x), dtype=p.dtype, device=p.device)
    t0 = time.perf_counter()
    res = log_likelihood(field, xt, rtol=rtol, atol=atol)
    seconds = time.perf_counter() - t0
    mean, sem = mean_sem(-res.log_prob.cpu().double().numpy())
    return NLLEstimate(mean, sem, int(xt.shape[0]), res.method, res.rtol, res.atol, res.nfe, seconds)
