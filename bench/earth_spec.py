"""What the Earth table is made of (``bench/earth_table.py``): its learned rows, profiles, published numbers and
splits, and the records of a data set and of one learned run.

A learned row is a :class:`Method`: its label and the ``cnfm train`` options that define it, looked up by name in
:data:`METHODS` (in table order). A :class:`Profile` gives the defaults that explicit flags override.

>>> METHODS["ppd1"].label
'PPD ℓ=1'
>>> sorted(PROFILES)
['full', 'gpu-short', 'quick']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnfm_core.data import PointSet

__all__ = ["DASH", "DEFAULT_METHODS", "METHODS", "PROFILES", "PUBLISHED", "SPLIT_NOTES", "TARGET_LABEL", "DataSet",
           "Job", "Method", "Profile"]


@dataclass(frozen=True)
class Method:
    """A learned row: its label in the table and the ``cnfm train`` options that define it."""

    label: str
    args: tuple[str, ...]


#: Learned rows, in table order.
METHODS: dict[str, Method] = {
    "ppd2": Method("PPD ℓ=2", ("--objective", "ppd", "--ell", "2")),
    "ppd1": Method("PPD ℓ=1", ("--objective", "ppd", "--ell", "1")),
    "rfm": Method("RFM", ("--objective", "rfm")),
    "ppd1-fixed": Method("PPD ℓ=1, fixed settings (κ_max 3000, no Fourier features)",
                         ("--objective", "ppd", "--ell", "1", "--kappa-max", "3000", "--space-frequencies", "0")),
    "ppd1-adaptive": Method("PPD ℓ=1, adaptive kernel (a bandwidth per point; not a default)",
                            ("--objective", "ppd", "--ell", "1", "--kernel", "adaptive")),
}
#: The rows run unless ``--methods`` says otherwise (the adaptive kernel only on request).
DEFAULT_METHODS: tuple[str, ...] = ("ppd2", "ppd1", "rfm", "ppd1-fixed")


@dataclass(frozen=True)
class Profile:
    seeds: tuple[int, ...]
    steps: int | None
    minutes: float | None
    jobs: int
    threads: int | None  # None: the usable cores divided among the jobs


PROFILES: dict[str, Profile] = {
    "quick": Profile(seeds=(0,), steps=None, minutes=2.5, jobs=2, threads=1),
    "full": Profile(seeds=(0, 1, 2, 3, 4), steps=100_000, minutes=None, jobs=1, threads=None),
    # One GPU for about 10 minutes (a lent device's per-command limit): 8 runs share it at a time.
    "gpu-short": Profile(seeds=(0,), steps=None, minutes=1.5, jobs=8, threads=2),
}

#: Published test NLLs (nats), by data-set name; reference only, on the papers' own splits.
#: CNFM: as quoted in the project's developer guide; RFM: PROVENANCE.md of the shared data.
#: Anything not listed is printed as "–": no number is filled in from memory.
PUBLISHED: dict[str, dict[str, float]] = {
    "CNFM (published)": {"volcano": -2.38, "earthquake": -0.38, "flood": 0.25, "fire": -1.40},
    "RFM (published)": {"volcano": -7.93, "fire": -1.86},
}

SPLIT_NOTES: dict[str, str] = {
    "standard": "RFM protocol: N//10 validation, N//10 test, the rest train, torch.randperm seeded with the seed",
    "dedup": "exact duplicate (lat, lon) rows removed first, then the same protocol",
}

DASH = "–"
TARGET_LABEL = "PPD target p₁ (defaults)"


@dataclass(frozen=True)
class DataSet:
    name: str
    path: Path
    points: PointSet
    sha256: str


@dataclass(frozen=True)
class Job:
    """One learned run."""

    data: DataSet
    split: str
    method: str
    seed: int
    run_dir: Path

    @property
    def key(self) -> str:
        return f"{self.data.name}/{self.split}/{self.method}/seed{self.seed}"
