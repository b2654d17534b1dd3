"""The run directory: everything a training run writes, shared by the CLI, the worker and the app.

    DIR/config.json      the TrainConfig and facts about the run (data, sizes, device)
    DIR/split.npz        the train/val/test points (unit vectors) and their row numbers
    DIR/metrics.jsonl    one JSON object per line: training loss, validation NLL, events
    DIR/status.json      state (running, done, stopped, failed), step, elapsed time, message
    DIR/checkpoint.pt    model, EMA weights, optimiser, step and config; loads with weights_only=True
    DIR/request.json     what a background worker was asked to do (jobs.py)
    DIR/report.json      test NLL beside the uniform and KDE baselines (report.py)
    DIR/density.npz      the model's log-density on a lat/lon grid; DIR/samples.csv: model samples
    DIR/frames.npz       target and model paths, PPD residual and samples over t (frames.py)
    DIR/stop.request     present when someone asked the run to stop (checked by the training loop)
    DIR/cancel.request   present when someone asked to cancel the rest of the report (checked by stages.py)
    DIR/live.npz         a coarse preview of the model density and samples, rewritten during training (live.py)

Files are replaced atomically by :func:`atomic_write` (write to a temporary file, then rename), so a
reader never sees half a file, and a failed write never destroys the previous version. This module does
not import torch (pages read runs through it); only checkpoint saving and loading import it, when called.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
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
    "atomic_write",
]

CHECKPOINT_FORMAT = "cnfm-checkpoint/1"


class RunError(ValueError):
    """A user-facing problem with a run directory (missing, incomplete, already used)."""


class CheckpointError(RunError):
    """A checkpoint that cannot be trusted: unreadable, tampered with, or of another format."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: a reader sees the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
        atomic_write(self.checkpoint, buf.getvalue())

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
