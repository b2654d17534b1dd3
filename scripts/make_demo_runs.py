"""Make the bundled demo runs in ``assets/demo/``: ``python scripts/make_demo_runs.py``.

Each demo is a run of the product defaults (PPD ℓ = 1, the Train page's model and settings, κ_max and
Fourier features chosen from the data, seed 0, the standard split) on a bundled data set, trained for a fixed
number of steps on the CPU, with its report and path frames, exactly as the worker writes them. It is then
copied into ``assets/demo/<name>/`` small: the checkpoint keeps only what :func:`cnfm_core.builders.load_field`
needs (the config and the EMA weights, which also stand in for the raw weights; no optimizer state), the
config names its data file relative to the repository, and the worker's log and request are left out. The
dashboard shows them read-only (:class:`cnfm_core.jobs.RunStore` lists them as ``demo-<name>``) until the
user has a run of their own.

Demos are made in the order of :data:`DEMOS`, so the last one (the synthetic mixture, the dashboard's default
data set) is the newest, which the pages show first. Training is seeded and single-threaded, so a rerun gives
the same weights on the same machine and torch; timings in the files differ.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from cnfm_core.config import TrainConfig  # noqa: E402
from cnfm_core.frames import write_frames  # noqa: E402
from cnfm_core.report import write_report  # noqa: E402
from cnfm_core.runs import RunDir  # noqa: E402
from cnfm_core.train import train  # noqa: E402

__all__ = ["DEMOS", "Demo", "main", "make_demo"]

OUT = REPO / "assets" / "demo"
#: The files a demo keeps (the checkpoint is rewritten, see the module doc).
KEEP = ("split.npz", "metrics.jsonl", "report.json", "density.npz", "samples.csv", "frames.npz")


@dataclass(frozen=True)
class Demo:
    """A demo run: its folder name under ``assets/demo`` and the bundled CSV and step budget it is trained with."""

    name: str
    data: str
    steps: int


#: The demos, oldest first (the last is the newest, shown first). Budgets: see assets/README.md.
DEMOS: tuple[Demo, ...] = (
    Demo("cities", "cities.csv", 400),
    Demo("synthetic", "synthetic_mixture.csv", 400),
)


def demo_config(demo: Demo) -> TrainConfig:
    """The Train page's defaults (PPD ℓ = 1, large model, κ_max auto, seed 0, standard split) with a step budget."""
    return TrainConfig(data=str(REPO / "assets" / demo.data), objective="ppd", ell=1, hidden=256, kappa_max=None,
                       seed=0, split="standard", eval_every=500, steps=demo.steps, device="cpu", threads=1)


def _strip(src: RunDir, dest: RunDir, data: str) -> None:
    """Write the checkpoint load_field needs: config (data relative to the repository) and EMA weights."""
    state = src.load_checkpoint()
    config = {**state["config"], "data": data}
    ema = {k: v.detach().clone().contiguous() for k, v in state["ema"].items()}
    # "model" is the same tensors as "ema": torch.save stores them once.
    dest.save_checkpoint({"config": config, "model": ema, "ema": ema, "optimizer": {}, "step": state["step"],
                          "elapsed": state["elapsed"]})


def make_demo(demo: Demo, out: Path = OUT) -> dict[str, object]:
    """Train, report and draw the frames of one demo in a scratch folder, then store it in ``out/<name>``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"demo-{demo.name}-") as tmp:
        run = RunDir(Path(tmp) / "run")
        result = train(demo_config(demo), run.path)
        t_train = time.perf_counter() - t0
        report = write_report(run)
        frames_s = write_frames(run)
        dest = RunDir(out / demo.name)
        if dest.path.exists():
            shutil.rmtree(dest.path)
        dest.path.mkdir(parents=True)
        data = f"assets/{demo.data}"
        meta = run.read_json(run.config)
        meta["config"] = {**meta["config"], "data": data}
        dest.write_json(dest.config, meta)
        for name in KEEP:
            shutil.copyfile(run.path / name, dest.path / name)
        _strip(run, dest, data)
        dest.write_json(dest.status, {"state": "done", "step": result.step, "steps": demo.steps, "minutes": None,
                                      "elapsed": result.elapsed, "message": ""})
    for p in dest.path.iterdir():  # atomic writes make private files; these are committed, readable by all
        p.chmod(0o644)
    size = sum(p.stat().st_size for p in dest.path.iterdir())
    return {"name": demo.name, "steps": result.step, "train_s": round(t_train, 1),
            "report_s": report.get("seconds"), "frames_s": round(frames_s, 1), "test_nll": report.get("test_nll"),
            "true_nll": report.get("true_nll"), "kde_nll": report.get("kde_nll"), "bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[d.name for d in DEMOS], help="make only this demo (default: all, in order)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for demo in DEMOS:
        if args.only in (None, demo.name):
            print(make_demo(demo), flush=True)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"assets/demo: {total / 2**20:.2f} MB in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
