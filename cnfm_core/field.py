"""A learned time-dependent tangent vector field on S^2 with an exact, cheap divergence.

The network ``f(t, x): [0, 1] x R^3 -> R^3`` is an MLP. It is wrapped so that the field is
tangent and intrinsic:

    v(t, x) = P(x_hat) f(t, x_hat),   x_hat = x / |x|,   P(x) = I - x x^T.

For this wrapping the ambient divergence on the sphere equals the Riemannian one, and it has
the closed form (``J`` the Jacobian of ``f`` in ``x``, ``e_1, e_2`` any orthonormal tangent
basis at ``x``)

    div v = tr(P J) - 2 <x, f> = <e_1, J e_1> + <e_2, J e_2> - 2 <x, f>.

Optionally the point enters through random Fourier features ``[x, sin(B x), cos(B x)]`` with a
fixed Gaussian matrix ``B`` (``space_frequencies`` rows, scale ``space_scale``), which lets a small
MLP represent the sharp structure of a concentrated target in fewer steps.

So the exact divergence needs two Jacobian-vector products, not three backward passes. They
are pushed forward through the MLP together with the values (forward-mode differentiation
written out for a SiLU MLP: both tangents share one matrix product per layer), and everything
stays differentiable for training.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .sphere import tangent_frame

__all__ = ["VectorField"]


def _silu_and_slope(z: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(z)
    return z * s, s * (1.0 + z * (1.0 - s))


class VectorField(nn.Module):
    """Tangent vector field ``v(t, x)`` on S^2: an MLP with SiLU activations and a time embedding.

    Args:
        hidden: width of each hidden layer.
        layers: number of hidden layers (at least 1).
        frequencies: number of Fourier frequencies in the time embedding ``[t, sin(pi j t), cos(pi j t)]``.
        space_frequencies: number of random Fourier features of the point (0: the point enters as is).
        space_scale: standard deviation of the random frequencies (radians^-1).

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
                 space_scale: float = 10.0) -> None:
        super().__init__()
        if layers < 1 or hidden < 1:
            raise ValueError(f"need hidden >= 1 and layers >= 1, got hidden={hidden}, layers={layers}")
        if space_frequencies < 0 or not space_scale > 0:
            raise ValueError(f"need space_frequencies >= 0 and space_scale > 0, got {space_frequencies}, {space_scale}")
        self.hidden, self.layers, self.frequencies = hidden, layers, frequencies
        self.space_frequencies = space_frequencies
        self.register_buffer("_freqs", math.pi * torch.arange(1, frequencies + 1, dtype=torch.float32))
        # Fixed random frequencies, saved with the weights (a checkpoint restores them exactly); without
        # them nothing is saved, so checkpoints made before they existed still load.
        self.register_buffer("_space_b", space_scale * torch.randn(space_frequencies, 3),
                             persistent=space_frequencies > 0)
        self.input_x = nn.Linear(3 + 2 * space_frequencies, hidden)
        self.input_t = nn.Linear(1 + 2 * frequencies, hidden, bias=False)
        self.hidden_layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.output = nn.Linear(hidden, 3)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def _time_embedding(self, t: Tensor, like: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device).expand(like.shape[0])[:, None]
        ft = t * self._freqs.to(like.dtype)
        return torch.cat([t, torch.sin(ft), torch.cos(ft)], dim=1)

    def _space(self, x: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The point's features and, for tangents ``(T, B, 3)``, their directional derivatives."""
        if self.space_frequencies == 0:
            return x, tangents
        b = self._space_b.to(x.dtype)
        phase = x @ b.T
        sin, cos = torch.sin(phase), torch.cos(phase)
        feats = torch.cat([x, sin, cos], dim=-1)
        if tangents is None:
            return feats, None
        dphase = tangents @ b.T  # (T, B, F)
        return feats, torch.cat([tangents, cos * dphase, -sin * dphase], dim=-1)

    def _network(self, x_hat: Tensor, t: Tensor, tangents: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``f(t, x_hat)`` and, if given tangents ``(T, B, 3)``, the JVPs ``J e`` of shape ``(T, B, 3)``."""
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
        """The tangent velocity ``v(t, x)`` at points ``x`` of shape ``(B, 3)``."""
        x_hat = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        f, _ = self._network(x_hat, torch.as_tensor(t, dtype=x.dtype, device=x.device), None)
        return f - (x_hat * f).sum(-1, keepdim=True) * x_hat

    def velocity_and_divergence(self, x: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``v(t, x)`` and its exact Riemannian divergence (shapes ``(B, 3)`` and ``(B,)``)."""
        x_hat = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        e1, e2 = tangent_frame(x_hat.detach())
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)  # a Python float must not pass through float32
        f, jvp = self._network(x_hat, t, torch.stack([e1, e2]))
        xf = (x_hat * f).sum(-1)
        v = f - xf[:, None] * x_hat
        div = (e1 * jvp[0]).sum(-1) + (e2 * jvp[1]).sum(-1) - 2.0 * xf
        return v, div
