"""A run's data before training: the points read and split (the split saved in the run folder, so evaluation never
needs the data file again), the facts recorded about them, and the settings left to ``auto`` read off them.

    facts = prepare_data(config, run)                   # writes split.npz; returns what config.json records
    split = run.read_split()
    config, facts["auto"] = resolve_auto(config, split["train"], split["val"])

Used by the training loop (:func:`cnfm_core.train.train`) for a new run; a resumed run reads its saved split.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .angles import read_angles
from .auto import choose_settings
from .config import ADAPTIVE_FIELDS, AUTO_FIELDS, TrainConfig
from .data import read_points
from .runs import RunDir, writing
from .splits import make_split
from .torus_auto import choose_torus_settings

__all__ = ["prepare_data", "resolve_auto"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class _AngleRows:
    """What a split reads of a point set (its number of rows ``n``, and ``xyz``, the rows compared to drop
    repeated points): for the torus, the angles in radians ``(n, d)``."""

    n: int
    xyz: Any
    lines: Any


def prepare_data(config: TrainConfig, run: RunDir) -> dict[str, Any]:
    """Read and split the data, write split.npz; return the facts recorded (in config.json, by the caller).

    On the sphere the split holds unit vectors; on the torus angles in radians in ``[-π, π)``, and the facts
    hold the data's column names (``columns``, which ``sample`` writes back) and their number (``manifold_dim``).
    """
    facts: dict[str, Any] = {}
    if config.manifold == "torus":
        angles = read_angles(config.data)
        points: Any = _AngleRows(angles.n, angles.radians, angles.lines)
        facts.update(columns=list(angles.names), manifold_dim=angles.dim)
    else:
        points = read_points(config.data)
    split = make_split(points, mode=config.split, seed=config.seed)
    if split.train.size < 1:
        raise ValueError(f"{config.data}: no training points after the {config.split} split")
    arrays = {}
    for part in ("train", "val", "test"):
        idx = getattr(split, part)
        arrays[part] = points.xyz[idx]
        arrays[f"{part}_lines"] = points.lines[idx]
    with writing(f"split.npz in {run.path}"):
        run.write_split(arrays)
    facts.update({
        "data_name": Path(config.data).name,
        "data_sha256": _sha256(Path(config.data)),
        "n_points": int(points.n),
        "n_train": int(split.train.size),
        "n_val": int(split.val.size),
        "n_test": int(split.test.size),
    })
    return facts


def resolve_auto(config: TrainConfig, train_xyz: Any, val_xyz: Any) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Fill the fields left at None from the data (:func:`cnfm_core.auto.choose_settings`).

    Returns the concrete config and a record of the choice (None when nothing was left to choose).
    """
    left = [name for name in AUTO_FIELDS if getattr(config, name) is None]
    if not left:
        return config, None
    asked = None if config.kernel is None else config.kernel == "adaptive"
    choice: Any
    if config.manifold == "torus":  # the torus's kernel is the one asked for (fixed unless asked)
        choice = choose_torus_settings(train_xyz, val_xyz, seed=config.seed, adaptive=bool(asked))
    else:
        choice = choose_settings(train_xyz, val_xyz, seed=config.seed, adaptive=asked, kernel_cap=config.kernel_cap,
                                 kappa_max=config.kappa_max)
    kernel = config.kernel or choice.kernel
    fields = [name for name in left if kernel == "adaptive" or name not in ADAPTIVE_FIELDS]
    if not fields:
        return config, None
    chosen = {name: getattr(choice, name) for name in fields}
    if "field_base" in fields and config.objective != "ppd":  # the base is the PPD target's; RFM has none
        chosen["field_base"] = "none"
        choice = dataclasses.replace(choice, field_base="none")
    config = dataclasses.replace(config, **chosen)
    return config, {"fields": fields, "description": choice.describe(tuple(fields)), **dataclasses.asdict(choice)}
