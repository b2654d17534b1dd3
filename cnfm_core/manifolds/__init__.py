"""Manifolds the flows live on, by name: :data:`MANIFOLDS` and :func:`make_manifold`.

Each entry builds a :class:`~cnfm_core.manifolds.base.Manifold` from keyword options (the sphere takes none;
a manifold with a dimension takes ``dim``). The names agree with :data:`cnfm_core.config.MANIFOLD_NAMES`
(tests/test_manifolds.py).

>>> make_manifold("sphere")
Sphere()
>>> make_manifold("torus", dim=7)
Torus(7)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Manifold
from .sphere import Sphere
from .torus import Torus

__all__ = ["MANIFOLDS", "Manifold", "Sphere", "Torus", "make_manifold"]

#: Manifold names for configs and UIs, each with the factory that builds one from keyword options.
MANIFOLDS: dict[str, Callable[..., Manifold]] = {
    "sphere": Sphere,
    "torus": Torus,
}


def make_manifold(name: str, **options: Any) -> Manifold:
    """Build a manifold by name; unknown names raise ``ValueError`` listing the known ones."""
    if name not in MANIFOLDS:
        raise ValueError(f"unknown manifold {name!r}; known: {', '.join(MANIFOLDS)}")
    return MANIFOLDS[name](**options)
