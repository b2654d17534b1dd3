"""What defines a run, torch-free: :class:`TrainConfig`, the names of objectives, schedules, kernels and
manifolds, and the solver tolerances. Pages, the run store and the job runner read configs through this
module without importing torch; the modules that implement the names check that they agree
(tests/test_config.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ADAPTIVE_FIELDS",
    "AUTO_FIELDS",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "FIELD_BASES",
    "KAPPA_CAP",
    "KAPPA_MIN",
    "KERNEL_CAP",
    "KERNELS",
    "LEGACY_DEFAULTS",
    "MANIFOLD_NAMES",
    "OBJECTIVE_NAMES",
    "OPENMP_ENV",
    "SCHEDULE_NAMES",
    "TrainConfig",
    "choose_threads",
]

#: Default tolerances of the adaptive likelihood solver (see bench/bench_likelihood.py for their accuracy).
DEFAULT_RTOL: float = 1e-5
DEFAULT_ATOL: float = 1e-5
#: Objective names (:data:`cnfm_core.objectives.OBJECTIVES` implements them).
OBJECTIVE_NAMES: tuple[str, ...] = ("ppd", "rfm")
#: Schedule names (:data:`cnfm_core.paths.SCHEDULES` implements them).
SCHEDULE_NAMES: tuple[str, ...] = ("exponential", "linear")
#: Manifold names (:data:`cnfm_core.manifolds.MANIFOLDS` implements them).
MANIFOLD_NAMES: tuple[str, ...] = ("sphere", "torus")
#: The fixed target sharpness (the default before the data's rule in :mod:`cnfm_core.auto`, and its lower bound).
KAPPA_MIN: float = 3000.0
#: The sharpest fixed-kernel target used (chosen on validation, docs/defaults.md round 6: on volcano's standard
#: split, whose KDE wants 1e8, 3e5 beat 3e4, 1e5 and 1e6). It is a limit of training, not of float32: the
#: path's logits are exact to 1e-6 nats up to 1e8 since round 10 (chord distances in float64), and with them
#: 1e6 only ties 3e5 while 1e7 and 1e8 train far worse (docs/clustered.md).
KAPPA_CAP: float = 3e5
#: The adaptive kernel's sharpest per-point concentration (``TrainConfig.kernel_cap``): 1e8, the top of the
#: KDE's grid, a kernel 0.6 km wide on the Earth (docs/clustered.md); runs made before it clipped at 3e5.
KERNEL_CAP: float = 1e8
#: OpenMP settings for every process that trains or evaluates (:func:`cnfm_core.procs.launch` and
#: ``python -m cnfm_core`` set them unless the environment already does). Waiting threads sleep instead of
#: spinning: when the cores are busy with other processes (a shared classroom server), a spinning thread
#: waits for a peer that is not scheduled, and a 2-thread PPD step took 0.3-4.8 s instead of 0.05-0.13 s
#: with one thread (bench/bench_step.py --compare, docs/benchmarks.md). Results are the same: only how
#: idle threads wait changes, not the work or its order.
OPENMP_ENV: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
#: Fields that, left at None, are chosen from the data when a run starts.
AUTO_FIELDS: tuple[str, ...] = ("kappa_max", "space_frequencies", "kernel", "kernel_neighbours", "kernel_scale",
                                 "field_base")
#: Config fields added after the first runs were made, with the values those runs were trained with.
LEGACY_DEFAULTS: dict[str, Any] = {"floor": 0.0, "space_frequencies": 0, "space_scale": 10.0, "space_scale_max": None,
                                   "kernel": "fixed",
                                   "kernel_neighbours": None, "kernel_scale": None, "kernel_cap": 3e5,
                                   "field_base": "none",
                                   "manifold": "sphere", "manifold_dim": None, "cpu_minutes": None}
#: Fields read from the data only for the adaptive kernel.
ADAPTIVE_FIELDS: tuple[str, ...] = ("kernel_neighbours", "kernel_scale")
#: The target's kernels: one bandwidth for every point, or one per point (:func:`cnfm_core.kde.adaptive_kappas`).
KERNELS: tuple[str, ...] = ("fixed", "adaptive")
#: What the network's output is added to: nothing, or the target's own contraction field (``kernel``,
#: :mod:`cnfm_core.kernelbase`, the sphere's), with the network's output scaled to a kernel's width.
FIELD_BASES: tuple[str, ...] = ("none", "kernel")


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` and inside every checkpoint.

    Defaults were chosen on validation data (see docs/defaults.md) and are the same for every
    data set. The fields in :data:`AUTO_FIELDS` left at None (``kappa_max``, ``space_frequencies``,
    and with the adaptive kernel its ``kernel_neighbours`` and ``kernel_scale``) are set when the run
    starts by one rule that reads the data's sharpness off validation kernel densities
    (:mod:`cnfm_core.auto`); the saved config holds the values chosen. ``kernel="adaptive"`` (not the
    default, docs/defaults.md round 7) gives the target's centre ``i`` the concentration
    ``kappa_i / kappa_max * kappa(t)``, with ``kappa_i`` from the distance to its ``kernel_neighbours``-th
    nearest neighbour (:func:`cnfm_core.kde.adaptive_kappas`); on the torus one per centre and coordinate,
    from its neighbours' spread in each coordinate (:func:`cnfm_core.torus_kde.torus_adaptive_kappas`).
    """

    data: str = ""
    manifold: str = "sphere"
    #: The manifold's dimension where it has one: on the torus, the data's number of columns (set when the
    #: run reads its data); None on the sphere.
    manifold_dim: int | None = None
    objective: str = "ppd"
    ell: int = 1
    schedule: str = "exponential"
    kappa_max: float | None = None
    floor: float = 0.02
    hidden: int = 256
    layers: int = 3
    frequencies: int = 4
    space_frequencies: int | None = None
    space_scale: float = 10.0
    #: With Fourier features, the largest of their scales, log-spaced from ``space_scale`` (None: one scale).
    space_scale_max: float | None = None
    #: The target's kernels (:data:`KERNELS`); None: chosen from the data (:mod:`cnfm_core.auto`).
    kernel: str | None = None
    kernel_neighbours: int | None = None
    kernel_scale: float | None = None
    #: The adaptive kernel's largest per-point concentration (:data:`KERNEL_CAP`).
    kernel_cap: float = KERNEL_CAP
    #: What the network's output is added to (:data:`FIELD_BASES`); None: chosen from the data (:mod:`cnfm_core.auto`).
    field_base: str | None = None
    lr: float = 1e-2
    batch_size: int = 512
    steps: int | None = None
    minutes: float | None = None
    #: With a time budget (``minutes``), train on past it until this many steps are done (None: no minimum),
    #: so that a busy machine still reaches a recognisable density (the Train page's default).
    min_steps: int | None = None
    #: A budget of process CPU time in minutes (``time.process_time()`` of the training process, counting what
    #: ``minutes`` counts: steps, validation, the live picture); the run ends at whichever budget is used first.
    #: Unlike wall time it does not depend on how busy the machine is (with one thread it is the time the run
    #: had a core).
    cpu_minutes: float | None = None
    warmup_steps: int = 100
    grad_clip: float = 10.0
    ema_decay: float = 0.999
    seed: int = 0
    split: str = "standard"
    device: str = "auto"
    threads: int | None = None
    log_every: int = 50
    eval_every: int = 1000
    eval_points: int = 512
    checkpoint_every: int = 500
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.manifold not in MANIFOLD_NAMES:
            raise ValueError(f"unknown manifold {self.manifold!r}; known: {', '.join(MANIFOLD_NAMES)}")
        if self.manifold_dim is not None and self.manifold_dim < 1:
            raise ValueError(f"manifold_dim must be at least 1, got {self.manifold_dim}")
        if self.manifold not in ("sphere", "torus") and self.kernel == "adaptive":
            raise ValueError(f"the {self.kernel} kernel is available on the sphere and the torus only, "
                             f"not on {self.manifold!r}")
        if self.objective not in OBJECTIVE_NAMES:
            raise ValueError(f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVE_NAMES)}")
        if self.schedule not in SCHEDULE_NAMES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULE_NAMES)}")
        if self.ell not in (1, 2):
            raise ValueError(f"ell must be 1 or 2, got {self.ell}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("hidden", "layers", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.min_steps is not None and self.min_steps < 0:
            raise ValueError(f"min_steps must be >= 0, got {self.min_steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.cpu_minutes is not None and not (self.cpu_minutes > 0 and math.isfinite(self.cpu_minutes)):
            raise ValueError(f"cpu_minutes must be > 0, got {self.cpu_minutes}")
        if self.kappa_max is not None and not (self.kappa_max > 0 and math.isfinite(self.kappa_max)):
            raise ValueError(f"kappa_max must be positive, got {self.kappa_max}")
        if (self.space_frequencies is not None and self.space_frequencies < 0) or not self.space_scale > 0:
            raise ValueError(f"space_frequencies must be >= 0 and space_scale > 0, got {self.space_frequencies}"
                             f" and {self.space_scale}")
        if self.space_scale_max is not None and not (self.space_scale_max > 0 and math.isfinite(self.space_scale_max)):
            raise ValueError(f"space_scale_max must be positive, got {self.space_scale_max}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        if self.kernel is not None and self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; known: {', '.join(KERNELS)}")
        if self.kernel_neighbours is not None and self.kernel_neighbours < 1:
            raise ValueError(f"kernel_neighbours must be at least 1, got {self.kernel_neighbours}")
        if self.kernel_scale is not None and not (self.kernel_scale > 0 and math.isfinite(self.kernel_scale)):
            raise ValueError(f"kernel_scale must be positive, got {self.kernel_scale}")
        if self.field_base is not None and self.field_base not in FIELD_BASES:
            raise ValueError(f"unknown field base {self.field_base!r}; known: {', '.join(FIELD_BASES)}")
        if self.field_base == "kernel" and (self.manifold != "sphere" or self.objective != "ppd"):
            raise ValueError("the kernel field base is for PPD on the sphere")
        if not (self.kernel_cap >= 10.0 and math.isfinite(self.kernel_cap)):
            raise ValueError(f"kernel_cap must be at least 10, got {self.kernel_cap}")
        if not (self.lr > 0 and 0 <= self.ema_decay < 1):
            raise ValueError("lr must be > 0 and ema_decay in [0, 1)")

    def budget(self) -> tuple[int | None, float | None]:
        """(steps, wall seconds); with no budget given (steps, minutes or CPU minutes), 2,000 steps."""
        if self.steps is None and self.minutes is None and self.cpu_minutes is None:
            return 2000, None
        return self.steps, None if self.minutes is None else 60.0 * self.minutes

    def cpu_budget(self) -> float | None:
        """The CPU-time budget in seconds (None: none)."""
        return None if self.cpu_minutes is None else 60.0 * self.cpu_minutes

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        # Fields added later, with the value that reproduces runs whose configs predate them.
        d = {**LEGACY_DEFAULTS, **d}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return cls(**d)


def choose_threads(requested: int | None) -> int:
    """Torch CPU threads: as requested, else ``$CNFM_THREADS``, else the usable cores (at most 8)."""
    if requested:
        return int(requested)
    env = os.environ.get("CNFM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))
