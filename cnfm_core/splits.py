"""Train/validation/test splits of a point set, as row indices.

Splits follow the protocol of RFM (Chen & Lipman, 2024): ``N // 10`` validation and ``N // 10``
test points, the rest for training, from ``torch.randperm(N)`` seeded with ``seed``
(identical to ``torch.utils.data.random_split(range(N), [N_train, N_val, N_test])``). Torch draws the
permutation so that splits stay identical to those of earlier runs and of the shared split files; pages
never import this module (:mod:`cnfm_core.data` loads it only when a split is asked for).

>>> from cnfm_core.data import parse_points
>>> split = make_split(parse_points("lat,lon\\n1,2\\n3,4\\n"), mode="none")
>>> split.train.tolist(), split.val.tolist()
([0, 1], [])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cnfm_core.data import PointSet, unique_rows

__all__ = ["SPLITS", "Split", "make_split"]


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices (int64, into the :class:`PointSet`) of the three parts of a split.

    Indices are in the order of the permutation that drew them (as ``random_split`` returns
    them), not sorted. ``mode`` and ``seed`` are the arguments of :func:`make_split`.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mode: str
    seed: int


_Parts = tuple[np.ndarray, np.ndarray, np.ndarray]


def _rfm_protocol(n: int, seed: int) -> _Parts:
    """Positions ``0..n-1`` split as RFM does: ``N // 10`` val, ``N // 10`` test, rest train.

    The chunks of ``randperm`` are taken in the order train, val, test, which is what
    ``random_split(range(n), [n_train, n_val, n_test], generator=Generator().manual_seed(seed))``
    does; this reproduces the shared ``splits/*_rfm_protocol_seeds0-4.csv`` files.
    """
    n_val = n_test = n // 10
    n_train = n - n_val - n_test
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy().astype(np.int64)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def _split_standard(points: PointSet, seed: int) -> _Parts:
    return _rfm_protocol(points.n, seed)


def _split_dedup(points: PointSet, seed: int) -> _Parts:
    keep = unique_rows(points.xyz)
    train, val, test = _rfm_protocol(len(keep), seed)
    return keep[train], keep[val], keep[test]


def _split_none(points: PointSet, seed: int) -> _Parts:
    empty = np.zeros(0, dtype=np.int64)
    return np.arange(points.n, dtype=np.int64), empty, empty.copy()


#: Split modes: ``"standard"`` (the RFM protocol over all rows, duplicates kept),
#: ``"dedup"`` (the same protocol over the first occurrence of each distinct point; the other
#: copies are in no part), ``"none"`` (every row in train; val and test empty).
SPLITS: dict[str, Callable[[PointSet, int], _Parts]] = {
    "standard": _split_standard,
    "dedup": _split_dedup,
    "none": _split_none,
}


def make_split(points: PointSet, *, mode: str = "standard", seed: int = 0) -> Split:
    """Split ``points`` into train/val/test row indices with the named ``mode`` (see :data:`SPLITS`).

    For ``"standard"`` and ``"dedup"``, val and test each get ``N // 10`` of the ``N`` rows
    used, so with fewer than 10 (distinct) points they are empty. Raises ``ValueError`` for an
    unknown mode, listing the known ones.
    """
    try:
        fn = SPLITS[mode]
    except KeyError:
        raise ValueError(f"unknown split mode {mode!r}; known modes: {', '.join(SPLITS)}") from None
    train, val, test = fn(points, seed)
    return Split(train=train, val=val, test=test, mode=mode, seed=seed)
