"""The run directory: everything a training run writes, shared by the CLI, the worker and the app.

    DIR/config.json      the TrainConfig and facts about the run (data, sizes, device)
    DIR/split.npz        the train/val/test points (unit vectors) and their row numbers
    DIR/metrics.jsonl    one JSON object per line: training loss, validation NLL, events
    DIR/status.json      state (running, done, stopped, failed), step, elapsed time, message
    DIR/checkpoint.pt    model, EMA weights, optimiser, step and config; loads with weights_only=True
    DIR/checkpoint.json  the checkpoint's step, size and SHA-256, written with it (read without torch)
    DIR/train.lock       held (flock) by the process training the run (runlock.py); says its PID
    DIR/request.json     what a background worker was asked to do (jobs.py)
    DIR/report.json      test NLL beside the uniform and KDE baselines (report.py)
    DIR/density.npz      the model's log-density on a lat/lon grid; DIR/samples.csv: model samples
    DIR/frames.npz       target and model paths, PPD residual and samples over t (frames.py)
    DIR/stop.request     present when someone asked the run to stop (checked by the training loop)
    DIR/cancel.request   present when someone asked to cancel the rest of the report (checked by stages.py)
    DIR/live.npz         a coarse preview of the model density and samples, rewritten during training (live.py)

Files are replaced atomically by :func:`atomic_write` (write to a temporary file, then rename), so a
reader never sees half a file, and a failed write never destroys the previous version. A trainer killed
mid-write leaves a temporary file behind; :meth:`RunDir.remove_stale_temps` clears those of the files only the
trainer writes when a run is opened for training. A write that fails (a full disk, a read-only folder) is told
in one line by :func:`write_error`. This module does not import torch (pages read runs through it); only
checkpoint saving and loading import it, when called.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "RunDir",
    "RunError",
    "RunWriteError",
    "atomic_write",
    "write_error",
    "writing",
]

CHECKPOINT_FORMAT = "cnfm-checkpoint/1"


class RunError(ValueError):
    """A user-facing problem with a run directory (missing, incomplete, already used)."""


class CheckpointError(RunError):
    """A checkpoint that cannot be trusted: unreadable, tampered with, or of another format."""


class RunWriteError(OSError):
    """A file of a run that could not be written (disk full, read-only folder), said in one line (its ``str``);
    still an ``OSError`` with the errno of the cause."""

    def __str__(self) -> str:
        return str(self.strerror)


#: What a failed write means to a user, by errno.
_WRITE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def write_error(e: OSError, what: str) -> RunWriteError:
    """``e`` (a failed write of ``what``, e.g. "the checkpoint in DIR") as one line: which file, and why."""
    if isinstance(e, RunWriteError):
        return e
    reason = _WRITE_REASONS.get(e.errno or 0) or " ".join(str(e.strerror or e).split())
    return RunWriteError(e.errno or 0, f"could not write {what}: {reason}")


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside into a :class:`RunWriteError` about ``what`` (see :func:`write_error`)."""
    try:
        yield
    except OSError as e:
        raise write_error(e, what) from None


def _file_mode() -> int:
    """The mode ``open()`` gives a new file here: ``0o666`` less the process's umask (read without changing it
    where the platform allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: a reader sees the old file or the new one, never a part. The file
    gets the mode a plain ``open()`` would give it (not the temporary file's 0600), so a run folder copied or
    served to other users reads as theirs to read."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunDir:
    """Paths and readers/writers of one run directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.split = self.path / "split.npz"
        self.metrics = self.path / "metrics.jsonl"
        self.status = self.path / "status.json"
        self.checkpoint = self.path / "checkpoint.pt"
        self.request = self.path / "request.json"
        self.report = self.path / "report.json"
        self.density = self.path / "density.npz"
        self.samples = self.path / "samples.csv"
        self.worker_log = self.path / "worker.log"
        self.frames = self.path / "frames.npz"
        self.stop_request = self.path / "stop.request"
        self.live = self.path / "live.npz"
        self.cancel_request = self.path / "cancel.request"
        self.checkpoint_note = self.path / "checkpoint.json"
        self.train_lock = self.path / "train.lock"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- JSON files
    def write_json(self, path: Path, obj: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path}: no such file; is {self.path} a run directory?") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise RunError(f"{path}: expected a JSON object, found {type(obj).__name__}")
        return obj

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def truncate_metrics(self, step: int) -> int:
        """Drop the metric records past ``step`` (what a killed trainer logged after its last checkpoint, which
        a resumed run logs again) and any partly written line; returns how many lines went."""
        if not self.metrics.exists():
            return 0
        lines = self.metrics.read_text().splitlines()
        kept = []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):  # not JSON, or a step that is not a number
                rec = json.loads(line)
                if isinstance(rec, dict) and float(rec.get("step", 0)) <= step:
                    kept.append(line)
        if len(kept) < len(lines) or not self.metrics.read_bytes().endswith(b"\n"):
            atomic_write(self.metrics, "".join(f"{line}\n" for line in kept).encode())
        return len(lines) - len(kept)

    def remove_stale_temps(self) -> list[str]:
        """Remove the temporary files :func:`atomic_write` left behind when a trainer was killed mid-write (of the
        files only a trainer writes; call it holding the run's training lock); returns their names."""
        owned = [p.name for p in (self.checkpoint, self.checkpoint_note, self.config, self.split, self.live,
                                  self.metrics)]
        gone = []
        for name in owned:
            for tmp in self.path.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
                gone.append(tmp.name)
        return gone

    def read_metrics(self) -> list[dict[str, Any]]:
        """The metric records; a partly written last line (or any line that is not a JSON object) is skipped."""
        out: list[dict[str, Any]] = []
        if self.metrics.exists():
            for line in self.metrics.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    # -- arrays
    def write_npz(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Write an ``.npz`` of the run atomically (:func:`atomic_write`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(path, buf.getvalue())

    def read_npz(self, path: Path) -> dict[str, np.ndarray]:
        """All arrays of an ``.npz`` file of the run (no pickles)."""
        if not path.exists():
            raise RunError(f"{path}: no such file; is {self.path} a run directory?")
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise RunError(f"{path}: unreadable ({e})") from None

    def write_split(self, arrays: dict[str, np.ndarray]) -> None:
        self.write_npz(self.split, arrays)

    def read_split(self) -> dict[str, np.ndarray]:
        return self.read_npz(self.split)

    # -- checkpoints
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save ``state`` with the format tag, atomically (:func:`atomic_write`)."""
        import torch

        self.path.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
        data = buf.getvalue()
        entry = {"step": int(state["step"]), "elapsed": float(state.get("elapsed", 0.0)), "size": len(data),
                 "sha256": hashlib.sha256(data).hexdigest()}
        # The note names the new checkpoint and the one it replaces while the replacing goes on, so that a trainer
        # killed at any point leaves a note that knows the checkpoint on disk.
        self._write_note([entry, *self._note()[:1]])
        atomic_write(self.checkpoint, data)
        self._write_note([entry])

    def _note(self) -> list[dict[str, Any]]:
        try:
            entries = json.loads(self.checkpoint_note.read_text())["checkpoints"]
            return [e for e in entries if isinstance(e, dict)]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _write_note(self, entries: list[dict[str, Any]]) -> None:
        atomic_write(self.checkpoint_note, (json.dumps({"checkpoints": entries}, sort_keys=True) + "\n").encode())

    def checkpoint_step(self) -> int | None:
        """The step of ``checkpoint.pt``, read without torch from ``checkpoint.json``; None when there is no
        checkpoint or no note of it (a run from before notes). The note names the checkpoint by size and SHA-256,
        and while a checkpoint is being replaced it names both, so a trainer killed at any moment leaves a note
        that knows the file on disk."""
        entries = self._note()
        try:
            size = self.checkpoint.stat().st_size
            if not any(e.get("size") == size for e in entries):
                return None
            h = hashlib.sha256()
            with self.checkpoint.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return None
        return next((int(e["step"]) for e in entries if e.get("sha256") == h.hexdigest() and "step" in e), None)

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """Load with ``weights_only=True`` (no code runs) and check the format and required keys."""
        import torch

        if not self.checkpoint.exists():
            raise RunError(f"{self.checkpoint}: no such file; is {self.path} a run directory?")
        try:
            state = torch.load(self.checkpoint, map_location=map_location, weights_only=True)
        except Exception as e:  # unpickling, zip and storage errors all mean the same to a user
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{self.checkpoint}: not a readable checkpoint ({first[:200]})") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.checkpoint}: not a {CHECKPOINT_FORMAT} checkpoint")
        missing = {"config", "model", "ema", "optimizer", "step", "elapsed"} - set(state)
        if missing:
            raise CheckpointError(f"{self.checkpoint}: missing {', '.join(sorted(missing))}")
        return state
