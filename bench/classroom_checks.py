"""What the classroom bench (``bench/bench_classroom.py``) measures and how it judges it, with no browser: the
milestones and their targets (issue 15), the six modes of a density grid, the step in a redrawn picture's title,
and the table of measurements beside their targets.

A density is recognisable when its test NLL is at most :data:`NLL_RECOGNISABLE` and each of the mixture's six
centres has a local maximum of the grid within :data:`MODE_RADIUS_DEG` (:func:`modes_found`). Tested in
``tests/test_bench_classroom.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LIVE_MODE_RADIUS_DEG", "MODE_RADIUS_DEG", "NLL_RECOGNISABLE", "TARGETS", "Milestones", "modes_found",
           "plot_steps", "table"]

#: milestone: (what it measures, target seconds idle, target seconds loaded); None: measured, no target.
TARGETS: dict[str, tuple[str, float | None, float | None]] = {
    "first_open": ("first open -> a learned density on Results", 5, 10),
    "reopen": ("second open (warm server, new tab) -> density on Results", None, None),
    "first_live": ("Start -> first live density on Train", 15, 30),
    "recognisable": ("Start -> recognisable density (test NLL <= 0.6, six modes)", 60, 120),
    "live_modes": ("Start -> six modes in the live preview (coarse; no NLL yet)", None, None),
    "results_density": ("end of training -> density on Results", 5, 10),
    "exact_nll": ("end of training -> exact test NLL on Results", 20, 40),
    "frames": ("end of training -> path frames written", 60, 120),
    "step": ("Step (+50) -> redrawn density on Train", 10, 20),
}
#: The recognisable-density criteria of the issue; the live preview's cells are 12 degrees, so a mode there may
#: be a cell from its centre.
NLL_RECOGNISABLE = 0.6
MODE_RADIUS_DEG = 10.0
LIVE_MODE_RADIUS_DEG = 12.0


def modes_found(lat: np.ndarray, lon: np.ndarray, log_prob: np.ndarray, centre_lat: np.ndarray,
                centre_lon: np.ndarray, *, radius_deg: float = MODE_RADIUS_DEG) -> list[bool]:
    """For each centre, whether the grid has a local maximum within ``radius_deg`` of it (great-circle), above
    the uniform density's level ``-log 4 pi``.

    A local maximum is a cell at least as high as its eight neighbours (longitude wraps around; beyond the poles
    there is nothing). ``log_prob[i, j]`` is at ``(lat[i], lon[j])``; non-finite cells never count.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    v = np.asarray(log_prob, dtype=np.float64)
    if v.shape != (lat.size, lon.size):
        raise ValueError(f"log_prob must have shape ({lat.size}, {lon.size}), got {v.shape}")
    v = np.where(np.isfinite(v), v, -np.inf)
    pad = np.pad(v, ((1, 1), (0, 0)), constant_values=-np.inf)
    pad = np.concatenate([pad[:, -1:], pad, pad[:, :1]], axis=1)
    peak = np.isfinite(v) & (v > -math.log(4 * math.pi))
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                peak &= v >= pad[1 + di : 1 + di + lat.size, 1 + dj : 1 + dj + lon.size]
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    la, lo = la[peak], lo[peak]
    found = []
    for a, b in zip(np.radians(np.asarray(centre_lat, dtype=np.float64)),
                    np.radians(np.asarray(centre_lon, dtype=np.float64)), strict=True):
        cos_d = np.sin(la) * math.sin(a) + np.cos(la) * math.cos(a) * np.cos(lo - b)
        found.append(bool(la.size) and bool(np.any(np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0))) <= radius_deg)))
    return found


def plot_steps(plots: list[dict[str, Any]], key: str) -> list[int]:
    """The step numbers in the titles of the painted heat maps of the charts with ``st-key-<key>``.

    >>> plot_steps([{"key": "st-key-live_density", "title": "The model at step 1,250 (preview)",
    ...              "types": ["heatmap"], "painted": True}], "live_density")
    [1250]
    """
    out = []
    for p in plots:
        if p.get("key") == f"st-key-{key}" and "heatmap" in p.get("types", []) and p.get("painted"):
            out += [int(m.replace(",", "")) for m in re.findall(r"step ([\d,]+)", str(p.get("title", "")))]
    return out


@dataclass
class Milestones:
    """Seconds of each milestone (None: not reached), with a note each."""

    seconds: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: float | None, note: str = "") -> None:
        self.seconds[name] = value
        if note:
            self.notes[name] = note


def table(m: Milestones, *, loaded: bool) -> str:
    """A markdown table: each milestone, its targets idle and loaded, the seconds measured, and whether it met the
    target of this condition (``loaded``)."""
    lines = [f"| milestone | target idle (s) | target loaded (s) | measured {'loaded' if loaded else 'idle'} (s) "
             "| met | note |", "|---|---:|---:|---:|---|---|"]
    for name, (what, idle, busy) in TARGETS.items():
        s = m.seconds.get(name)
        target = busy if loaded else idle
        shown = f"{s:.1f}" if s is not None else "not reached"
        met = "–" if s is None or target is None else ("yes" if s <= target else "no")
        targets = " | ".join(f"{t:g}" if t is not None else "–" for t in (idle, busy))
        lines.append(f"| {what} | {targets} | {shown} | {met} | {m.notes.get(name, '')} |")
    return "\n".join(lines)
