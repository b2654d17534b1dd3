"""A learned time-dependent tangent vector field on a manifold with an exact, cheap divergence.

The network ``f(t, x): [0, 1] x M -> R^D`` (``D`` the manifold's ambient dimension) is an MLP on the
manifold's features of the point. It is wrapped so that the field is tangent and intrinsic:

    v(t, x) = P(x_hat) f(t, x_hat),   x_hat = projx(x),   P(x) = proju(x, .).

With ``J`` the Jacobian of ``f`` in ``x`` and ``e_1..e_d`` an orthonormal tangent frame at ``x``
(:meth:`~cnfm_core.manifolds.base.Manifold.tangent_frame`), the Riemannian divergence is

    div v = sum_i <e_i, J e_i> + projection_divergence(x, f),

where the last term is the manifold's (``-2 <x, f>`` on the unit sphere S², where ``P = I - x x^T``;
0 on a flat manifold). On S² that is ``tr(P J) - 2 <x, f>``, and the ambient divergence equals the
Riemannian one.

Optionally the features enter through random Fourier features ``[phi, sin(B phi), cos(B phi)]`` of the
manifold's features ``phi(x)`` (on S² the unit vector itself) with a fixed Gaussian matrix ``B``
(``space_frequencies`` rows, scale ``space_scale``), which lets a small MLP represent the sharp structure
of a concentrated target in fewer steps. With ``space_scale_max`` the rows' scales are log-spaced from
``space_scale`` to ``space_scale_max`` (row ``j`` of ``F`` has standard deviation
``space_scale (space_scale_max / space_scale)^(j / (F - 1))``): features at several scales at once, for data
clustered from continents down to kilometres.

So the exact divergence needs ``d`` Jacobian-vector products (two on S²), not ``D`` backward passes.
They are pushed forward through the MLP together with the values (forward-mode differentiation written
out for a SiLU MLP: all tangents share one matrix product per layer), and everything stays
differentiable for training.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .kernelbase import KernelBase
from .manifolds.base import Manifold
from .manifolds.sphere import Sphere

__all__ = ["VectorField"]


def _silu_and_slope(z: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(z)
    return z * s, s * (1.0 + z * (1.0 - s))


def _frequency_scales(n: int, low: float, high: float | None) -> Tensor:
    """The standard deviations of the ``n`` random frequencies: all ``low``, or log-spaced from ``low`` to ``high``."""
    if high is None or high <= low or n < 2:
        return torch.full((n,), float(low))
    return torch.logspace(math.log10(low), math.log10(high), n, dtype=torch.float64).float()


class VectorField(nn.Module):
    """Tangent vector field ``v(t, x)`` on a manifold: an MLP with SiLU activations and a time embedding.

    Args:
        hidden: width of each hidden layer.
        layers: number of hidden layers (at least 1).
        frequencies: number of Fourier frequencies in the time embedding ``[t, sin(pi j t), cos(pi j t)]``.
        space_frequencies: number of random Fourier features of the point (0: the manifold's features
            enter as they are).
        space_scale: standard deviation of the random frequencies (radians^-1).
        space_scale_max: if given (and above ``space_scale``), the rows' standard deviations are log-spaced
            from ``space_scale`` to it (module doc); None: all ``space_scale``.
        manifold: the manifold (default the sphere S²); it is not saved in the state dict, so a
            checkpoint is rebuilt with the manifold named in its config.

    The output layer starts at zero, so an untrained field is ``v = 0`` (the model density is
    then exactly uniform).

    >>> import torch
    >>> field = VectorField(hidden=16, layers=2)
    >>> x = torch.tensor([[0.0, 0.0, 1.0]])
    >>> v, div = field.velocity_and_divergence(x, torch.tensor([0.5]))
    >>> v.shape, div.shape
    (torch.Size([1, 3]), torch.Size([1]))
    """

    def __init__(self, hidden: int = 256, layers: int = 3, frequencies: int = 4, space_frequencies: int = 0,
                 space_scale: float = 10.0, *, space_scale_max: float | None = None,
                 manifold: Manifold | None = None, base: KernelBase | None = None) -> None:
        super().__init__()
        self.manifold = Sphere() if manifold is None else manifold
        if base is not None and self.manifold.name != "sphere":
            raise ValueError(f"the kernel base field is the sphere's, not {self.manifold!r}'s")
        #: The target's own contraction field (:mod:`cnfm_core.kernelbase`), or None: with it the field is
        #: ``v_b + gate(t) P f`` (the network learns the correction, at the scale of a kernel's width).
        self.base = base
        if layers < 1 or hidden < 1:
            raise ValueError(f"need hidden >= 1 and layers >= 1, got hidden={hidden}, layers={layers}")
        if space_frequencies < 0 or not space_scale > 0:
            raise ValueError(f"need space_frequencies >= 0 and space_scale > 0, got {space_frequencies}, {space_scale}")
        if space_scale_max is not None and not (space_scale_max > 0 and math.isfinite(space_scale_max)):
            raise ValueError(f"need space_scale_max > 0, got {space_scale_max}")
        self.hidden, self.layers, self.frequencies = hidden, layers, frequencies
        self.space_frequencies = space_frequencies
        self.register_buffer("_freqs", math.pi * torch.arange(1, frequencies + 1, dtype=torch.float32))
        # Fixed random frequencies, saved with the weights (a checkpoint restores them exactly); without
        # them nothing is saved, so checkpoints made before they existed still load.
        n_feat = self.manifold.feature_dim
        self.register_buffer("_space_b", _frequency_scales(space_frequencies, space_scale, space_scale_max)[:, None]
                             * torch.randn(space_frequencies, n_feat), persistent=space_frequencies > 0)
        self.input_x = nn.Linear(n_feat + 2 * space_frequencies, hidden)
        self.input_t = nn.Linear(1 + 2 * frequencies, hidden, bias=False)
        self.hidden_layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.output = nn.Linear(hidden, self.manifold.ambient_dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def _time_embedding(self, t: Tensor, like: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device).expand(like.shape[0])[:, None]
        ft = t * self._freqs.to(like.dtype)
        return torch.cat([t, torch.sin(ft), torch.cos(ft)], dim=1)

    def _space(self, x: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The point's features and, for tangents ``(T, B, D)``, their directional derivatives."""
        phi = self.manifold.features(x)
        dphi = None if tangents is None else self.manifold.feature_tangents(x, tangents)
        if self.space_frequencies == 0:
            return phi, dphi
        b = self._space_b.to(x.dtype)
        phase = phi @ b.T
        sin, cos = torch.sin(phase), torch.cos(phase)
        feats = torch.cat([phi, sin, cos], dim=-1)
        if dphi is None:
            return feats, None
        dphase = dphi @ b.T  # (T, B, F)
        return feats, torch.cat([dphi, cos * dphase, -sin * dphase], dim=-1)

    def _network(self, x_hat: Tensor, t: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``f(t, x_hat)`` and, if given tangents ``(T, B, D)``, the JVPs ``J e`` of shape ``(T, B, D)``."""
        feats, tangents = self._space(x_hat, tangents)
        z = self.input_x(feats) + self.input_t(self._time_embedding(t, x_hat))
        if tangents is None:
            h = nn.functional.silu(z)
            for layer in self.hidden_layers:
                h = nn.functional.silu(layer(h))
            return self.output(h), None
        # Values and directional derivatives travel side by side: z' = W (sigma'(z) * z_prev').
        zt = tangents @ self.input_x.weight.T
        for layer in [*self.hidden_layers, self.output]:
            h, slope = _silu_and_slope(z)
            z = nn.functional.linear(h, layer.weight, layer.bias)
            zt = (slope * zt) @ layer.weight.T
        return z, zt

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        """The tangent velocity ``v(t, x)`` at points ``x`` of shape ``(B, D)``."""
        x_hat = self.manifold.projx(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        f, _ = self._network(x_hat, t, None)
        v = self.manifold.proju(x_hat, f)
        if self.base is None:
            return v
        t = t.expand(x.shape[0])
        return self.base.velocity(x_hat, t) + self.base.gate(t)[:, None] * v

    def velocity_and_divergence(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``v(t, x)`` and its exact Riemannian divergence (shapes ``(B, D)`` and ``(B,)``)."""
        m = self.manifold
        x_hat = m.projx(x)
        frame = m.tangent_frame(x_hat.detach())  # (d, B, D)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)  # a Python float must not pass through float32
        f, jvp = self._network(x_hat, t, frame)
        v = m.proju(x_hat, f)
        trace = (frame[0] * jvp[0]).sum(-1)
        for i in range(1, frame.shape[0]):
            trace = trace + (frame[i] * jvp[i]).sum(-1)
        div = trace + m.projection_divergence(x_hat, f)
        if self.base is None:
            return v, div
        t = t.expand(x.shape[0])
        vb, divb = self.base(x_hat, t)
        g = self.base.gate(t)
        return vb + g[:, None] * v, divb + g * div
