"""The torus benchmark: PPD against RFM at equal time on synthetic von Mises product mixtures on T² and T⁷.

    python bench/bench_torus.py [--minutes 10 | --cpu-minutes 10] [--rows 10000] [--sets T2 T7]
        [--methods ppd rfm] [--jobs 2] [--threads 1] [--seed 0] [--out out/torus] [-- EXTRA TRAIN OPTIONS]

(``-- --kernel adaptive`` trains PPD towards the per-point, per-coordinate kernel of docs/torus.md.)

For each mixture of :data:`cnfm_core.torus_synthetic.TORUS_MIXTURES`, ``--rows`` exact samples (seed 1)
are written as a CSV of angles in degrees; each method is trained on it by the CLI in a subprocess
(``python -m cnfm_core train --manifold torus ... --minutes M --threads T``, product defaults: PPD with
ℓ = 1, κ_max from the data's rule), at most ``--jobs`` at a time. ``--minutes`` is a wall-time budget (equal
wall time; on a busy machine each run gets less of a core); ``--cpu-minutes`` a budget of the training process's
CPU time (``train --cpu-minutes``), which with one thread does not depend on the machine's load. Each run's
validation NLL at the end (what settings are chosen on) is recorded; its exact test NLL on its own test split (the
augmented ODE with dopri5 at rtol = atol = 1e-5) is set beside:

* the true density's NLL on the same test points (the fair reference: the entropy estimated on those
  points), and the model's gap to it, mean ± standard error of the paired per-point difference;
* the entropy by Monte Carlo (400,000 exact samples) with its standard error;
* the von Mises product KDE fitted on the run's train/validation split, and the uniform ``d log 2π``.

Writes ``OUT/table.md`` (printed as well) and ``OUT/<set>/<method>/result.json``; a run folder with a
result is reused, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from cnfm_core.angles import write_angles
from cnfm_core.builders import load_field
from cnfm_core.config import DEFAULT_ATOL, DEFAULT_RTOL
from cnfm_core.integrate import log_likelihood, mean_sem
from cnfm_core.runs import RunDir
from cnfm_core.torus_kde import fit_torus_kde, torus_kde_log_prob
from cnfm_core.torus_synthetic import TORUS_MIXTURES

REPO = Path(__file__).resolve().parents[1]


def _train(data: Path, run_dir: Path, method: str, a: argparse.Namespace) -> tuple[float, str]:
    budget = ["--cpu-minutes", str(a.cpu_minutes)] if a.cpu_minutes is not None else ["--minutes", str(a.minutes)]
    cmd = [sys.executable, "-m", "cnfm_core", "train", "--manifold", "torus", "--data", str(data), "--run-dir",
           str(run_dir), "--objective", method, *budget, "--threads", str(a.threads),
           "--seed", str(a.seed), "--eval-every", str(10**9), "--quiet", *a.extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    return time.perf_counter() - t0, " ".join(cmd[1:])


def _score(name: str, run_dir: Path, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    run = RunDir(run_dir)
    field, config = load_field(run)
    test = torch.as_tensor(run.read_split()["test"], dtype=torch.float64)
    res = log_likelihood(field, test.float(), rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL)
    nll = -res.log_prob.double().numpy()
    true_nll = -TORUS_MIXTURES[name].log_prob(test).numpy()
    gap = nll - true_nll  # per point: the paired difference has a much smaller spread than either NLL
    mean, sem = mean_sem(nll)
    status, meta = run.read_json(run.status), run.read_json(run.config)
    val = [r["val_nll"] for r in run.read_metrics() if "val_nll" in r]
    return {
        "nll": mean, "nll_sem": sem, "n_test": len(nll), "nfe": res.nfe, "rtol": res.rtol, "atol": res.atol,
        "true_nll": float(true_nll.mean()), "gap": float(gap.mean()),
        "gap_sem": float(gap.std(ddof=1) / math.sqrt(len(gap))), "steps": int(status["step"]),
        "elapsed": float(status["elapsed"]), "cpu_elapsed": status.get("cpu_elapsed"), "kappa_max": config.kappa_max,
        "kernel": config.kernel, "kernel_neighbours": config.kernel_neighbours, "kernel_scale": config.kernel_scale,
        "val_nll": val[-1] if val else None, "auto": (meta.get("auto") or {}).get("description", ""),
    }


def _true_val_nll(name: str, run_dir: Path) -> float:
    """The true density's mean NLL on the validation points the run's validation NLL was taken on."""
    run = RunDir(run_dir)
    points = run.read_json(run.config)["config"]["eval_points"]
    val = torch.as_tensor(run.read_split()["val"][:points], dtype=torch.float64)
    return float(-TORUS_MIXTURES[name].log_prob(val).mean())


def _baselines(name: str, run_dir: Path) -> dict[str, float]:
    split = RunDir(run_dir).read_split()
    fit = fit_torus_kde(split["train"], split["val"])
    kde = -torus_kde_log_prob(split["test"], split["train"], fit.kappa, fit.weight)
    return {"kde_nll": float(kde.mean()), "kde_kappa": fit.kappa, "kde_weight": fit.weight}


def _kernel(r: dict[str, Any]) -> str:
    """The adaptive kernel's settings for a table label (empty for the fixed kernel or an older result)."""
    if r.get("kernel") != "adaptive":
        return ""
    return f"; adaptive, k {r['kernel_neighbours']}, a {r['kernel_scale']:.3g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=10.0, help="wall-time budget of each run")
    budget.add_argument("--cpu-minutes", type=float, help="CPU-time budget of each run (instead of --minutes)")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--sets", nargs="+", default=list(TORUS_MIXTURES), choices=list(TORUS_MIXTURES))
    p.add_argument("--methods", nargs="+", default=["ppd", "rfm"], choices=["ppd", "rfm"])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "out" / "torus")
    p.add_argument("extra", nargs="*", help="further train options, after --")
    a = p.parse_args(argv)
    jobs = []
    for name in a.sets:
        m = TORUS_MIXTURES[name]
        data = a.out / name / "data.csv"
        if not data.exists():
            data.parent.mkdir(parents=True, exist_ok=True)
            write_angles(data, [f"angle{i + 1}" for i in range(m.dim)], m.sample(a.rows, seed=1).numpy())
        for method in a.methods:
            run_dir = a.out / name / method
            if not (run_dir / "result.json").exists():
                shutil.rmtree(run_dir, ignore_errors=True)
                jobs.append((name, method, data, run_dir))
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = {pool.submit(_train, data, run_dir, method, a): (name, method, run_dir)
                   for name, method, data, run_dir in jobs}
        for future, (name, method, run_dir) in futures.items():
            wall, cmd = future.result()
            res = {"set": name, "method": method, "wall": wall, "command": cmd, **_score(name, run_dir, a.threads)}
            (run_dir / "result.json").write_text(json.dumps(res, indent=2) + "\n")
            print(f"{name} {method}: NLL {res['nll']:.4f}, gap {res['gap']:+.4f} ± {res['gap_sem']:.4f}",
                  file=sys.stderr, flush=True)
    lines = ["| set | d | method | steps | CPU / wall min | val NLL (true) | test NLL | true NLL (same points) "
             "| model − true | KDE | uniform d log 2π | entropy (MC) |", "|---" * 12 + "|"]
    for name in a.sets:
        m = TORUS_MIXTURES[name]
        h, h_se = m.entropy()
        base = _baselines(name, a.out / name / a.methods[0])
        for method in a.methods:
            r = json.loads((a.out / name / method / "result.json").read_text())
            cpu = f"{r['cpu_elapsed'] / 60:.1f}" if r.get("cpu_elapsed") is not None else "–"
            val = f"{r['val_nll']:.4f}" if r.get("val_nll") is not None else "–"
            val += f" ({_true_val_nll(name, a.out / name / method):.4f})"
            label = f"ppd (κ_max {r['kappa_max']:.3g}{_kernel(r)})" if method == "ppd" else method
            lines.append(f"| {name} | {m.dim} | {label} | {r['steps']} | "
                         f"{cpu} / {r['elapsed'] / 60:.1f} | {val} | "
                         f"{r['nll']:.4f} ± {r['nll_sem']:.4f} | {r['true_nll']:.4f} | "
                         f"{r['gap']:+.4f} ± {r['gap_sem']:.4f} | {base['kde_nll']:.4f} (κ {base['kde_kappa']:.3g}) | "
                         f"{m.dim * math.log(2 * math.pi):.4f} | {h:.4f} ± {h_se:.4f} |")
    table = "\n".join(lines)
    spent = f"{a.cpu_minutes:g} CPU minutes" if a.cpu_minutes is not None else f"{a.minutes:g} wall-clock minutes"
    note = (f"\n\n{spent} of training per run, --threads {a.threads}, {a.jobs} runs at a time, "
            f"{a.rows} rows (standard split: test = rows // 10); NLL in nats w.r.t. Lebesgue measure on [-π, π)^d "
            "by dopri5 at rtol = atol = 1e-5.")
    (a.out / "table.md").write_text(table + note + "\n")
    print(table + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
