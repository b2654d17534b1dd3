"""Choose the product defaults on validation data: one-at-a-time variations around a base config.

    python bench/sweep_defaults.py --out out/sweep [--steps 3000] [--jobs 2] [--data-dir ../shared/data/earth]

Every run trains with the same step budget (so the machine's load does not bias the result)
and is scored by exact NLL on its **validation** split (never the test split). Each worker
process uses one torch thread. Prints a markdown table: validation NLL per data set and the
mean over data sets. Volcano is used with the deduplicated split (its standard split rewards
memorising repeated locations).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from cnfm_core.builders import load_field
from cnfm_core.integrate import log_likelihood
from cnfm_core.runs import RunDir

BASE: dict[str, str] = {"--objective": "ppd", "--ell": "1", "--kappa-max": "1000", "--hidden": "256",
                        "--lr": "1e-3", "--batch-size": "512", "--schedule": "exponential", "--floor": "0",
                        "--space-frequencies": "0"}
VARIANTS: dict[str, dict[str, str]] = {
    "base": {},
    "kappa_max=300": {"--kappa-max": "300"},
    "kappa_max=3000": {"--kappa-max": "3000"},
    "kappa_max=10000": {"--kappa-max": "10000"},
    "ell=2": {"--ell": "2"},
    "hidden=128": {"--hidden": "128"},
    "lr=3e-3": {"--lr": "3e-3"},
    "batch=256": {"--batch-size": "256"},
    "schedule=linear": {"--schedule": "linear"},
    "rfm": {"--objective": "rfm"},
    # Round 2, around the better learning rate found in round 1.
    "lr=1e-2": {"--lr": "1e-2"},
    "lr=3e-2": {"--lr": "3e-2"},
    "lr=1e-2,batch=1024": {"--lr": "1e-2", "--batch-size": "1024"},
    "lr=1e-2,kappa_max=3000": {"--lr": "1e-2", "--kappa-max": "3000"},
    "rfm,lr=1e-2": {"--objective": "rfm", "--lr": "1e-2"},
    # Round 3, around the chosen defaults: a uniform floor in the target path.
    "lr=1e-2,kappa_max=3000,floor=0.02": {"--lr": "1e-2", "--kappa-max": "3000", "--floor": "0.02"},
    "lr=1e-2,kappa_max=3000,floor=0.05": {"--lr": "1e-2", "--kappa-max": "3000", "--floor": "0.05"},
    "lr=1e-2,kappa_max=10000,floor=0.05": {"--lr": "1e-2", "--kappa-max": "10000", "--floor": "0.05"},
    "rfm,lr=1e-2,floor=0.05": {"--objective": "rfm", "--lr": "1e-2", "--floor": "0.05"},
    # Round 4, around round 3's choice: random Fourier features of the point.
    "chosen,space=32x10": {"--lr": "1e-2", "--kappa-max": "3000", "--floor": "0.02", "--space-frequencies": "32",
                           "--space-scale": "10"},
    "chosen,space=32x30": {"--lr": "1e-2", "--kappa-max": "3000", "--floor": "0.02", "--space-frequencies": "32",
                           "--space-scale": "30"},
    "chosen,space=32x5": {"--lr": "1e-2", "--kappa-max": "3000", "--floor": "0.02", "--space-frequencies": "32",
                          "--space-scale": "5"},
    "chosen,space=64x10": {"--lr": "1e-2", "--kappa-max": "3000", "--floor": "0.02", "--space-frequencies": "64",
                           "--space-scale": "10"},
}
SETS: dict[str, str] = {"earthquake": "standard", "flood": "standard", "volcano": "dedup"}


def run_one(name: str, variant: str, data_dir: Path, out: Path, steps: int) -> dict:
    run_dir = out / f"{name}-{variant}"
    result_file = run_dir / "sweep_result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    if run_dir.exists():  # an interrupted earlier attempt: start it again
        shutil.rmtree(run_dir)
    args = {**BASE, **VARIANTS[variant]}
    cmd = [sys.executable, "-m", "cnfm_core", "train", "--data", str(data_dir / f"{name}.csv"),
           "--run-dir", str(run_dir), "--steps", str(steps), "--split", SETS[name], "--threads", "1",
           "--eval-every", str(10 * steps), "--quiet"]
    for k, v in args.items():
        cmd += [k, v]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    torch.set_num_threads(1)
    field, _ = load_field(run_dir)
    val = torch.as_tensor(RunDir(run_dir).read_split()["val"], dtype=torch.float32)
    nll = float(-log_likelihood(field, val).log_prob.mean())
    rec = {"data": name, "variant": variant, "val_nll": nll}
    result_file.write_text(json.dumps(rec))
    print(json.dumps(rec), flush=True)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/earth")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = [(n, v) for v in a.variants for n in SETS]
    with ThreadPoolExecutor(a.jobs) as pool:
        recs = list(pool.map(lambda nv: run_one(nv[0], nv[1], a.data_dir, a.out, a.steps), jobs))
    table = {(r["data"], r["variant"]): r["val_nll"] for r in recs}
    print(f"\nValidation NLL (nats), {a.steps} steps, one thread per run\n")
    print("| variant | " + " | ".join(SETS) + " | mean |\n|---|" + "---:|" * (len(SETS) + 1))
    for v in a.variants:
        vals = [table[(n, v)] for n in SETS]
        print(f"| {v} | " + " | ".join(f"{x:.3f}" for x in vals) + f" | {sum(vals) / len(vals):.3f} |")


if __name__ == "__main__":
    main()
