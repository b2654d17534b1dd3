"""One readable training loop: a flow on S² or the torus Tᵈ trained with PPD or RFM, logged to a run
directory.

    config = TrainConfig(data="volcano.csv", steps=2000)
    result = train(config, "runs/volcano")          # or train(None, "runs/volcano", resume=True)

What happens, in order: read and split the data (the split is saved, so evaluation never
needs the file again); set the settings left to ``auto`` from the data (both in :mod:`cnfm_core.prepare`);
build the target path, the field and the objective; then loop: a
minibatch loss, a gradient step, an EMA update; every ``log_every`` steps (or :data:`LOG_SECONDS` of
wall time, whichever comes first) a metrics line, every :data:`STATUS_SECONDS` a ``status.json`` (so a page
never looks frozen), every ``eval_every`` steps the exact validation NLL of the EMA weights, every
``checkpoint_every`` steps (and at least every :data:`CHECKPOINT_SECONDS` of wall time) a checkpoint, and, with a
``live`` hook (:class:`cnfm_core.live.LiveSnapshots`),
a coarse picture of the EMA model now and then and always at the end. The run ends at the step, wall-time or
CPU-time budget, whichever is used first (a time budget with ``min_steps`` runs on until that many steps are done,
so that a busy machine still gets a recognisable density; the closing status says which budget ended it), or early
when :func:`request_stop` was called (SIGTERM does this in the CLI), always with a final checkpoint and status.

Faults: the run folder is held by one trainer at a time (:func:`cnfm_core.runlock.training_lock`); a resumed run
drops the metrics a killed trainer logged past its checkpoint. A step whose loss is not finite or explodes is
undone with a halved learning rate (:mod:`cnfm_core.guard`, a ``diverged`` event in the metrics), and after a few
the run ends ``failed``. A write that fails (a full disk, a read-only folder) ends the run ``failed`` with one line
saying which file and why, where the status can still be written, and leaves the last checkpoint as it was.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .builders import build_field, build_path, device_name, resolve_device
from .config import TrainConfig, choose_threads
from .field import VectorField
from .guard import DivergenceGuard
from .integrate import log_likelihood
from .objectives import make_objective
from .prepare import prepare_data, resolve_auto
from .procs import start_time
from .runlock import training_lock
from .runs import RunDir, RunError, write_error, writing

__all__ = ["CHECKPOINT_SECONDS", "LOG_SECONDS", "STATUS_SECONDS", "LiveHook", "TrainResult", "request_stop",
           "resolve_auto", "train"]

_STOP = {"requested": False}
#: Longest wall time between two ``status.json`` writes while training, and between two metrics lines.
STATUS_SECONDS: float = 2.0
LOG_SECONDS: float = 5.0
#: Longest wall time between two checkpoints while training (besides every ``checkpoint_every`` steps), so that a
#: fault (a kill, a full disk) loses at most this much work.
CHECKPOINT_SECONDS: float = 60.0
#: The live-picture hook: ``hook(ema_field, step, elapsed, final)``, called every step and once at the end
#: with ``final=True``; it decides itself when to do its (bounded) work.
LiveHook = Callable[[VectorField, int, float, bool], object]


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``elapsed`` is the wall time the budget counts, ``cpu_elapsed`` the process CPU time of
    the same work (``time.process_time()``), in seconds."""

    run_dir: Path
    state: str
    step: int
    elapsed: float
    final_loss: float
    val_nll: float | None
    cpu_elapsed: float = 0.0


def request_stop() -> None:
    """Ask a running :func:`train` to stop after the current step (it saves a checkpoint first)."""
    _STOP["requested"] = True


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
    live: LiveHook | None = None,
) -> TrainResult:
    """Train a flow and write the run directory (see the module doc).

    With ``resume=True`` the run continues from ``checkpoint.pt`` with the saved config; a
    ``config`` given alongside may only change the budget (``steps``/``minutes``). Without it,
    a directory that already holds a run is refused, so nothing is overwritten. With
    ``final_status=False`` the closing ``status.json`` is left to the caller (a worker that
    writes a report afterwards). With ``stop_file=True`` the run also stops when
    ``DIR/stop.request`` appears (how the dashboard stops a worker, free of signal races). ``live`` is
    called every step with the EMA field (see :data:`LiveHook`); its time counts as training time.
    """
    run = RunDir(run_dir)
    if resume and not run.checkpoint.exists() and not run.train_lock.exists():
        run.load_checkpoint()  # the one-line "no such file", before a lock file is made
    elif not resume:
        if config is None:
            raise ValueError("train() needs a config unless resume=True")
        if run.checkpoint.exists() or run.config.exists():
            raise RunError(f"{run.path} already holds a run; resume it or choose another run directory")
        config.validate()
    # A folder with a lock file is left to the lock: a trainer that holds it but has not written its first
    # checkpoint yet is named; a free one without a checkpoint gets the same "no such file" from _train.
    with training_lock(run):
        return _train(config, run, resume=resume, on_log=on_log, final_status=final_status, stop_file=stop_file,
                      live=live)


def _train(config: TrainConfig | None, run: RunDir, *, resume: bool, on_log: Callable[[dict[str, Any]], None] | None,
           final_status: bool, stop_file: bool, live: LiveHook | None) -> TrainResult:
    """:func:`train`, holding the run's training lock."""
    state: dict[str, Any] | None = None
    dropped = 0
    if resume:
        state = run.load_checkpoint()
        with writing(f"metrics.jsonl in {run.path}"):
            dropped = run.truncate_metrics(int(state["step"]))  # logged by a trainer killed after the checkpoint
        saved = TrainConfig.from_dict(state["config"])
        if config is not None:
            saved.steps, saved.minutes, saved.cpu_minutes = config.steps, config.minutes, config.cpu_minutes
        config = saved
    assert config is not None
    config.validate()

    device = resolve_device(config.device)
    threads = choose_threads(config.threads)
    torch.set_num_threads(threads)
    if state is None:
        facts = prepare_data(config, run)
        if "manifold_dim" in facts:
            if config.manifold_dim not in (None, facts["manifold_dim"]):
                raise ValueError(f"{config.data}: {facts['manifold_dim']} columns of angles, but the config asks "
                                 f"for a torus of dimension {config.manifold_dim}")
            config = dataclasses.replace(config, manifold_dim=facts["manifold_dim"])
        split = run.read_split()
        config, facts["auto"] = resolve_auto(config, split["train"], split["val"])
        config.validate()
        meta = {"config": dataclasses.asdict(config), **facts, "created": time.time()}
    meta = meta if state is None else run.read_json(run.config)
    meta.update(device=str(device), device_name=device_name(device), threads=threads, torch=torch.__version__)
    meta["config"] = dataclasses.asdict(config)
    with writing(f"config.json in {run.path}"):
        run.write_json(run.config, meta)
    if state is not None:  # a new run read its split above
        split = run.read_split()
    train_x = torch.as_tensor(split["train"], dtype=torch.float32, device=device)
    val_x = torch.as_tensor(split["val"], dtype=torch.float32, device=device)

    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    path = build_path(config, train_x) if config.objective == "ppd" else None
    model = build_field(config, path).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, elapsed, cpu_elapsed, last_loss = 0, 0.0, 0.0, float("nan")
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        # A checkpoint from before the CPU budget: its wall time stands in (one thread: CPU time <= wall time).
        cpu_elapsed = float(state.get("cpu_elapsed", elapsed))
        # the random stream continues where it stopped, on the device it was saved from (a CPU and a CUDA
        # generator's states are not interchangeable; older checkpoints saved none for CUDA)
        saved = state.get("generator")
        if saved is not None and saved.numel() and state.get("generator_device", "cpu") == device.type:
            generator.set_state(saved)
    guard = DivergenceGuard(model, opt, ema, lr_scale=float(state.get("lr_scale", 1.0)) if state else 1.0)
    saved_step = int(state["step"]) if state is not None else None
    objective = make_objective(config.objective, data=train_x, path=path, ell=config.ell, floor=config.floor,
                               manifold=model.manifold)
    max_steps, max_seconds = config.budget()
    max_cpu = config.cpu_budget()
    min_steps = (config.min_steps or 0) if max_seconds is not None or max_cpu is not None else 0

    def checkpoint() -> None:
        nonlocal saved_step, t_checkpoint
        with writing(f"the checkpoint in {run.path}"):
            run.save_checkpoint({
                "config": dataclasses.asdict(config), "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed, "cpu_elapsed": cpu_elapsed,
                "lr_scale": guard.lr_scale,
                "generator": generator.get_state(), "generator_device": device.type,
            })
        saved_step, t_checkpoint = step, time.perf_counter()

    def status(state_name: str, message: str = "") -> None:
        with writing(f"status.json in {run.path}"):
            run.write_json(run.status, {
                "state": state_name, "step": step, "steps": max_steps, "minutes": config.minutes,
                "cpu_minutes": config.cpu_minutes, "min_steps": min_steps, "elapsed": elapsed,
                "cpu_elapsed": cpu_elapsed, "pid": os.getpid(), "pid_start": start_time(os.getpid()),
                "message": message, "updated": time.time(),
            })

    def log(rec: dict[str, Any]) -> None:
        with writing(f"metrics.jsonl in {run.path}"):
            run.append_metrics(rec)
        if on_log:
            on_log(rec)

    def fail(e: BaseException) -> BaseException:
        """End the run after ``e``: a checkpoint where writing is not what failed, then the status and an event,
        each as far as the folder still takes writes. Returns what to raise: a failed write as one line
        (:func:`cnfm_core.runs.write_error`) that says what was kept, anything else as it was."""
        if isinstance(e, OSError):  # a write failed: the last checkpoint stays as it was
            e = write_error(e, str(e.filename) if e.filename else f"a file in {run.path}")
            e.strerror = f"{e.strerror}; " + (f"the last checkpoint, at step {saved_step}, is kept"
                                              if saved_step is not None else "no checkpoint had been saved yet")
        else:
            with contextlib.suppress(OSError):
                checkpoint()
        reason = " ".join(str(e).split()) or type(e).__name__
        with contextlib.suppress(OSError):
            status("stopped" if isinstance(e, KeyboardInterrupt) else "failed", reason)
        with contextlib.suppress(OSError):
            run.append_metrics({"event": "failed", "step": step, "error": reason, "time": time.time()})
        return e

    def why_done() -> str:
        """Which budget is used up ("" while none is)."""
        if max_steps is not None and step >= max_steps:
            return f"the step budget ({max_steps} steps) is used"
        if step < min_steps:
            return ""
        if max_seconds is not None and elapsed >= max_seconds:
            return f"the time budget ({config.minutes:g} minutes) is used: {elapsed:.1f} s"
        if max_cpu is not None and cpu_elapsed >= max_cpu:
            return f"the CPU-time budget ({config.cpu_minutes:g} CPU minutes) is used: {cpu_elapsed:.1f} CPU s"
        return ""

    def done() -> bool:
        return bool(why_done())

    def charge(mark: tuple[float, float]) -> None:
        """Count the wall and CPU time since ``mark = (time.perf_counter(), time.process_time())``."""
        nonlocal elapsed, cpu_elapsed
        elapsed += time.perf_counter() - mark[0]
        cpu_elapsed += time.process_time() - mark[1]

    def progress() -> float:
        """How far the budget is used (drives the learning-rate schedule); with ``min_steps``, the time and
        the step count must both be used up, so the schedule ends when training does."""
        by_time = max(elapsed / max_seconds if max_seconds else 0.0, cpu_elapsed / max_cpu if max_cpu else 0.0)
        if min_steps:
            by_time = min(by_time, step / min_steps)
        return max(step / max_steps if max_steps else 0.0, by_time)

    val_nll: float | None = None
    t_last, steps_since, loss_sum = time.perf_counter(), 0, 0.0
    t_status = t_checkpoint = t_last
    try:
        log({"event": "resume" if state is not None else "start", "step": step, "time": time.time(),
             **({"dropped_metrics": dropped} if dropped else {})})
        if state is None and meta.get("auto") and on_log:
            on_log({"event": "auto", "step": 0, "message": meta["auto"]["description"]})
        status("running")
        while not done() and not _STOP["requested"] and not (stop_file and run.stop_request.exists()):
            mark = time.perf_counter(), time.process_time()
            lr = config.lr * _lr_factor(config, step, progress()) * guard.lr_scale
            for group in opt.param_groups:
                group["lr"] = lr
            value = objective(model, config.batch_size, generator=generator)
            opt.zero_grad(set_to_none=True)
            value.loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            bad = guard.check(value.loss.item(), grad_norm)
            if bad is not None:  # undone, with a halved learning rate; the guard gives up after a few
                log(guard.roll_back(bad, step))
                guard.give_up_if_exhausted(bad, step)
                charge(mark)
                continue
            guard.keep(step)
            opt.step()
            # EMA whose averaging window grows with the run (about step/10 steps, at most 1/(1-decay)),
            # so that short runs are not dominated by their first, untrained weights.
            _ema_update(ema, model, min(config.ema_decay, (1.0 + step) / (10.0 + step)))
            step += 1
            charge(mark)
            last_loss = float(value.loss.detach())
            loss_sum += last_loss
            steps_since += 1
            now = time.perf_counter()
            logged = step % config.log_every == 0 or done() or now - t_last >= LOG_SECONDS
            if logged:
                rec = {"step": step, "loss": loss_sum / steps_since, "lr": lr, "grad_norm": grad_norm,
                       "elapsed": elapsed, "cpu_elapsed": cpu_elapsed,
                       "steps_per_s": steps_since / max(now - t_last, 1e-9)}
                log(rec)
                t_last, steps_since, loss_sum = now, 0, 0.0
            if logged or now - t_status >= STATUS_SECONDS:
                status("running")
                t_status = now
            if step % config.eval_every == 0 or done():
                mark = time.perf_counter(), time.process_time()
                val_nll = _val_nll(ema, val_x, config)
                charge(mark)
                if val_nll is not None:
                    log({"step": step, "val_nll": val_nll, "elapsed": elapsed})
                t_last = time.perf_counter()
            if step % config.checkpoint_every == 0 or time.perf_counter() - t_checkpoint >= CHECKPOINT_SECONDS:
                checkpoint()
            if live is not None:  # its time counts, so steps/s and the time budget stay honest
                mark = time.perf_counter(), time.process_time()
                live(ema, step, elapsed, False)
                charge(mark)
        if live is not None:
            live(ema, step, elapsed, True)
        checkpoint()
        why = why_done()
        final = "done" if why else "stopped"
        if final_status:
            status(final, f"Done: {why}." if why else "")
        log({"event": final, "step": step, "elapsed": elapsed, "cpu_elapsed": cpu_elapsed, "time": time.time()})
    except BaseException as e:
        raised = fail(e)
        if raised is e:
            raise
        raise raised from None
    finally:
        _STOP["requested"] = False  # a stop request applies to one run only
    return TrainResult(run.path, final, step, elapsed, last_loss, val_nll, cpu_elapsed)

