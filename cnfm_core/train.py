"""One readable training loop: a flow on S^2 trained with PPD or RFM, logged to a run directory.

    config = TrainConfig(data="volcano.csv", steps=2000)
    result = train(config, "runs/volcano")          # or train(None, "runs/volcano", resume=True)

What happens, in order: read and split the data (the split is saved, so evaluation never
needs the file again); set the settings left to ``auto`` from the data (:mod:`cnfm_core.auto`);
build the target path, the field and the objective; then loop: a
minibatch loss, a gradient step, an EMA update; every ``log_every`` steps a metrics line,
every ``eval_every`` steps the exact validation NLL of the EMA weights, every
``checkpoint_every`` steps a checkpoint. The run ends at the step or time budget, or early
when :func:`request_stop` was called (SIGTERM does this in the CLI), always with a final
checkpoint and status.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .auto import choose_settings
from .data import make_split, read_points
from .field import VectorField
from .integrate import DEFAULT_ATOL, DEFAULT_RTOL, log_likelihood
from .kde import adaptive_kappas
from .objectives import OBJECTIVES, make_objective
from .paths import SCHEDULES, VMFMixturePath, make_schedule
from .runs import RunDir, RunError

__all__ = [
    "KERNELS",
    "TrainConfig",
    "TrainResult",
    "build_field",
    "build_path",
    "choose_threads",
    "load_field",
    "request_stop",
    "resolve_auto",
    "resolve_device",
    "train",
]

_STOP = {"requested": False}
#: Fields that, left at None, are chosen from the data when a run starts.
AUTO_FIELDS: tuple[str, ...] = ("kappa_max", "space_frequencies", "kernel_neighbours", "kernel_scale")
#: Config fields added after the first runs were made, with the values those runs were trained with.
LEGACY_DEFAULTS: dict[str, Any] = {"floor": 0.0, "space_frequencies": 0, "space_scale": 10.0, "kernel": "fixed",
                                   "kernel_neighbours": None, "kernel_scale": None}
#: Fields read from the data only for the adaptive kernel.
ADAPTIVE_FIELDS: tuple[str, ...] = ("kernel_neighbours", "kernel_scale")
#: The target's kernels: one bandwidth for every point, or one per point (:func:`cnfm_core.kde.adaptive_kappas`).
KERNELS: tuple[str, ...] = ("fixed", "adaptive")


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
    nearest neighbour (:func:`cnfm_core.kde.adaptive_kappas`).
    """

    data: str = ""
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
    kernel: str = "fixed"
    kernel_neighbours: int | None = None
    kernel_scale: float | None = None
    lr: float = 1e-2
    batch_size: int = 512
    steps: int | None = None
    minutes: float | None = None
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
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; known: {', '.join(OBJECTIVES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.ell not in (1, 2):
            raise ValueError(f"ell must be 1 or 2, got {self.ell}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("hidden", "layers", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.kappa_max is not None and not (self.kappa_max > 0 and math.isfinite(self.kappa_max)):
            raise ValueError(f"kappa_max must be positive, got {self.kappa_max}")
        if (self.space_frequencies is not None and self.space_frequencies < 0) or not self.space_scale > 0:
            raise ValueError(f"space_frequencies must be >= 0 and space_scale > 0, got {self.space_frequencies}"
                             f" and {self.space_scale}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; known: {', '.join(KERNELS)}")
        if self.kernel_neighbours is not None and self.kernel_neighbours < 1:
            raise ValueError(f"kernel_neighbours must be at least 1, got {self.kernel_neighbours}")
        if self.kernel_scale is not None and not (self.kernel_scale > 0 and math.isfinite(self.kernel_scale)):
            raise ValueError(f"kernel_scale must be positive, got {self.kernel_scale}")
        if not (self.lr > 0 and 0 <= self.ema_decay < 1):
            raise ValueError("lr must be > 0 and ema_decay in [0, 1)")

    def budget(self) -> tuple[int | None, float | None]:
        """(steps, seconds); with neither given, 2,000 steps."""
        if self.steps is None and self.minutes is None:
            return 2000, None
        return self.steps, None if self.minutes is None else 60.0 * self.minutes

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        # Fields added later, with the value that reproduces runs whose configs predate them.
        d = {**LEGACY_DEFAULTS, **d}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass(frozen=True)
class TrainResult:
    """How a run ended."""

    run_dir: Path
    state: str
    step: int
    elapsed: float
    final_loss: float
    val_nll: float | None


def request_stop() -> None:
    """Ask a running :func:`train` to stop after the current step (it saves a checkpoint first)."""
    _STOP["requested"] = True


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was requested but no CUDA GPU is available")
    return torch.device(name)


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


def build_field(config: TrainConfig) -> VectorField:
    if config.space_frequencies is None:
        raise ValueError("space_frequencies is still to be chosen from the data (resolve_auto)")
    return VectorField(hidden=config.hidden, layers=config.layers, frequencies=config.frequencies,
                       space_frequencies=config.space_frequencies, space_scale=config.space_scale)


def build_path(config: TrainConfig, train_x: torch.Tensor) -> VMFMixturePath:
    """The PPD target over the training points ``train_x`` (``(N, 3)``, on the device to use)."""
    if config.kappa_max is None or (config.kernel == "adaptive" and None in (config.kernel_neighbours,
                                                                              config.kernel_scale)):
        raise ValueError("the target's settings are still to be chosen from the data (resolve_auto)")
    scales = None
    if config.kernel == "adaptive":
        kappas = adaptive_kappas(train_x.detach().cpu().double().numpy(), config.kernel_neighbours,
                                 config.kernel_scale)
        scales = torch.as_tensor(kappas / config.kappa_max, dtype=train_x.dtype, device=train_x.device)
    schedule = make_schedule(config.schedule, config.kappa_max)
    return VMFMixturePath(train_x, schedule, floor=config.floor, scales=scales)


def load_field(run: RunDir | str | os.PathLike[str], *, ema: bool = True,
               device: str | torch.device = "cpu") -> tuple[VectorField, TrainConfig]:
    """Rebuild the trained field (EMA weights by default) and its config from a checkpoint alone."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    state = run.load_checkpoint()
    try:
        config = TrainConfig.from_dict(state["config"])
        model = build_field(config)
        model.load_state_dict(state["ema" if ema else "model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise RunError(f"{run.checkpoint}: does not match its config ({str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), config


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _prepare(config: TrainConfig, run: RunDir) -> dict[str, Any]:
    """Read and split the data, write config.json and split.npz; return the facts recorded."""
    points = read_points(config.data)
    split = make_split(points, mode=config.split, seed=config.seed)
    if split.train.size < 1:
        raise ValueError(f"{config.data}: no training points after the {config.split} split")
    arrays = {}
    for part in ("train", "val", "test"):
        idx = getattr(split, part)
        arrays[part] = points.xyz[idx]
        arrays[f"{part}_lines"] = points.lines[idx]
    run.write_split(arrays)
    facts = {
        "data_name": Path(config.data).name,
        "data_sha256": _sha256(Path(config.data)),
        "n_points": int(points.n),
        "n_train": int(split.train.size),
        "n_val": int(split.val.size),
        "n_test": int(split.test.size),
    }
    return facts


def resolve_auto(config: TrainConfig, train_xyz: Any, val_xyz: Any) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Fill the fields left at None from the data (:func:`cnfm_core.auto.choose_settings`).

    Returns the concrete config and a record of the choice (None when nothing was left to choose).
    """
    fields = [name for name in AUTO_FIELDS if getattr(config, name) is None
              and (config.kernel == "adaptive" or name not in ADAPTIVE_FIELDS)]
    if not fields:
        return config, None
    choice = choose_settings(train_xyz, val_xyz, seed=config.seed, adaptive=config.kernel == "adaptive")
    config = dataclasses.replace(config, **{name: getattr(choice, name) for name in fields})
    return config, {"fields": fields, "description": choice.describe(tuple(fields)), **dataclasses.asdict(choice)}


def _lr_factor(config: TrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    return warm * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def _ema_update(ema: VectorField, model: VectorField, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1.0 - decay)


def _val_nll(ema: VectorField, val: torch.Tensor, config: TrainConfig) -> float | None:
    if val.shape[0] == 0:
        return None
    lp = log_likelihood(ema, val[: config.eval_points], rtol=config.rtol, atol=config.atol).log_prob
    return float(-lp.mean())


def train(
    config: TrainConfig | None,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    final_status: bool = True,
    stop_file: bool = False,
) -> TrainResult:
    """Train a flow and write the run directory (see the module doc).

    With ``resume=True`` the run continues from ``checkpoint.pt`` with the saved config; a
    ``config`` given alongside may only change the budget (``steps``/``minutes``). Without it,
    a directory that already holds a run is refused, so nothing is overwritten. With
    ``final_status=False`` the closing ``status.json`` is left to the caller (a worker that
    writes a report afterwards). With ``stop_file=True`` the run also stops when
    ``DIR/stop.request`` appears (how the dashboard stops a worker, free of signal races).
    """
    run = RunDir(run_dir)
    state: dict[str, Any] | None = None
    if resume:
        state = run.load_checkpoint()
        saved = TrainConfig.from_dict(state["config"])
        if config is not None:
            saved.steps, saved.minutes = config.steps, config.minutes
        config = saved
    elif config is None:
        raise ValueError("train() needs a config unless resume=True")
    elif run.checkpoint.exists() or run.config.exists():
        raise RunError(f"{run.path} already holds a run; resume it or choose another run directory")
    config.validate()

    device = resolve_device(config.device)
    threads = choose_threads(config.threads)
    torch.set_num_threads(threads)
    if state is None:
        facts = _prepare(config, run)
        split = run.read_split()
        config, facts["auto"] = resolve_auto(config, split["train"], split["val"])
        config.validate()
        meta = {"config": dataclasses.asdict(config), **facts, "created": time.time()}
        run.write_json(run.config, meta)
    meta = run.read_json(run.config)
    meta.update(device=str(device), device_name=_device_name(device), threads=threads, torch=torch.__version__)
    meta["config"] = dataclasses.asdict(config)
    run.write_json(run.config, meta)
    if state is not None:  # a new run read its split above
        split = run.read_split()
    train_x = torch.as_tensor(split["train"], dtype=torch.float32, device=device)
    val_x = torch.as_tensor(split["val"], dtype=torch.float32, device=device)

    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    model = build_field(config).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, elapsed, last_loss = 0, 0.0, float("nan")
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        if "generator" in state and device.type == "cpu":
            generator.set_state(state["generator"])
    path = build_path(config, train_x) if config.objective == "ppd" else None
    objective = make_objective(config.objective, data=train_x, path=path, ell=config.ell, floor=config.floor)
    max_steps, max_seconds = config.budget()

    def checkpoint() -> None:
        run.save_checkpoint({
            "config": dataclasses.asdict(config), "model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed,
            "generator": generator.get_state() if device.type == "cpu" else torch.zeros(0, dtype=torch.uint8),
        })

    def status(state_name: str, message: str = "") -> None:
        run.write_json(run.status, {
            "state": state_name, "step": step, "steps": max_steps, "minutes": config.minutes,
            "elapsed": elapsed, "pid": os.getpid(), "message": message, "updated": time.time(),
        })

    def done() -> bool:
        return (max_steps is not None and step >= max_steps) or (max_seconds is not None and elapsed >= max_seconds)

    def progress() -> float:
        parts = [step / max_steps if max_steps else 0.0, elapsed / max_seconds if max_seconds else 0.0]
        return max(parts)

    run.append_metrics({"event": "resume" if state is not None else "start", "step": step, "time": time.time()})
    if state is None and meta.get("auto") and on_log:
        on_log({"event": "auto", "step": 0, "message": meta["auto"]["description"]})
    status("running")
    val_nll: float | None = None
    t_last, steps_since, loss_sum = time.perf_counter(), 0, 0.0
    try:
        while not done() and not _STOP["requested"] and not (stop_file and run.stop_request.exists()):
            t0 = time.perf_counter()
            lr = config.lr * _lr_factor(config, step, progress())
            for group in opt.param_groups:
                group["lr"] = lr
            value = objective(model, config.batch_size, generator=generator)
            opt.zero_grad(set_to_none=True)
            value.loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            if not math.isfinite(value.loss.item()):
                raise FloatingPointError(f"the loss became {value.loss.item()} at step {step}; try a lower lr")
            opt.step()
            # EMA whose averaging window grows with the run (about step/10 steps, at most 1/(1-decay)),
            # so that short runs are not dominated by their first, untrained weights.
            _ema_update(ema, model, min(config.ema_decay, (1.0 + step) / (10.0 + step)))
            step += 1
            elapsed += time.perf_counter() - t0
            last_loss = float(value.loss.detach())
            loss_sum += last_loss
            steps_since += 1
            if step % config.log_every == 0 or done():
                now = time.perf_counter()
                rec = {"step": step, "loss": loss_sum / steps_since, "lr": lr, "grad_norm": grad_norm,
                       "elapsed": elapsed, "steps_per_s": steps_since / max(now - t_last, 1e-9)}
                run.append_metrics(rec)
                if on_log:
                    on_log(rec)
                t_last, steps_since, loss_sum = now, 0, 0.0
                status("running")
            if step % config.eval_every == 0 or done():
                t0 = time.perf_counter()
                val_nll = _val_nll(ema, val_x, config)
                elapsed += time.perf_counter() - t0
                if val_nll is not None:
                    rec = {"step": step, "val_nll": val_nll, "elapsed": elapsed}
                    run.append_metrics(rec)
                    if on_log:
                        on_log(rec)
                t_last = time.perf_counter()
            if step % config.checkpoint_every == 0:
                checkpoint()
    except BaseException as e:
        checkpoint()
        status("failed" if not isinstance(e, KeyboardInterrupt) else "stopped", f"{type(e).__name__}: {e}")
        run.append_metrics({"event": "failed", "step": step, "error": str(e), "time": time.time()})
        raise
    finally:
        _STOP["requested"] = False  # a stop request applies to one run only
    checkpoint()
    final = "done" if done() else "stopped"
    if final_status:
        status(final)
    run.append_metrics({"event": final, "step": step, "elapsed": elapsed, "time": time.time()})
    return TrainResult(run.path, final, step, elapsed, last_loss, val_nll)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"

