"""Step cost of PPD against RFM with the same model and batch (CPU by default).

    python bench/bench_step.py [--points 5000] [--batch 1024] [--hidden 256] [--layers 3] [--threads 2]
    python bench/bench_step.py --compare [--data FILE ...] [--busy K] [--rounds 3] [--steps 8]

Prints a markdown table: milliseconds per optimisation step (median of repeats) and the
ratio to RFM, plus a breakdown of the PPD step (target path, field with divergence, backward),
for the default target and for the adaptive one (a bandwidth per point, ``kernel="adaptive"``).

``--compare`` measures the real training step (the default config, settings read off each data file as a
run would, PPD l=1, batch 512, Adam, gradient clipping) before and after the OpenMP change of
:data:`cnfm_core.config.OPENMP_ENV`, side by side in one run: each variant is a fresh process (OpenMP reads
its settings when torch loads), and the variants take turns for ``--rounds`` rounds so that a changing load
hits them alike. ``--busy K`` starts K busy-looping processes for the duration (K = cores: one per core, the
loaded case of bench/bench_classroom.py). Default data: the bundled mixture and the Earth sets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from cnfm_core.field import VectorField
from cnfm_core.kde import adaptive_kappas
from cnfm_core.objectives import PPD, RFM
from cnfm_core.paths import ExponentialSchedule, VMFMixturePath, vmf_log_prob
from cnfm_core.sphere import sample_uniform


def _time(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(out)


def naive_quantities(path: VMFMixturePath, data: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> tuple:
    """The straightforward target: log-sum-exp over all points, derivatives by autograd (for comparison)."""
    x = x.detach().requires_grad_(True)
    t = t.detach().requires_grad_(True)
    k = path.schedule.kappa(t)
    comp = vmf_log_prob(x[:, None, :], data[None], k[:, None])
    log_p = torch.logsumexp(comp, dim=1) - math.log(data.shape[0])
    gx, gt = torch.autograd.grad(log_p.sum(), (x, t))
    return log_p.detach(), gt, gx - (gx * x).sum(-1, keepdim=True) * x


REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = [REPO / "assets" / "synthetic_mixture.csv",
                *(REPO.parent / "shared" / "data" / "earth" / f"{n}.csv" for n in ("volcano", "earthquake", "flood"))]
#: The variants --compare runs: label -> (torch threads, OMP_WAIT_POLICY or None for OpenMP's default).
VARIANTS: dict[str, tuple[int, str | None]] = {
    "before: 2 threads, OpenMP default wait (spin)": (2, None),
    "after: 2 threads, OMP_WAIT_POLICY=PASSIVE": (2, "PASSIVE"),
    "1 thread": (1, None),
}


def child_step_ms(data: str, threads: int, steps: int) -> dict:
    """ms per training step (median of ``steps`` after two warm-up steps) as a run of the default config on
    ``data`` takes it: the real objective, backward, clipping, Adam."""
    from cnfm_core.builders import build_field, build_path
    from cnfm_core.config import TrainConfig
    from cnfm_core.data import read_points
    from cnfm_core.objectives import make_objective
    from cnfm_core.splits import make_split
    from cnfm_core.train import resolve_auto

    torch.set_num_threads(threads)
    pts = read_points(data)
    split = make_split(pts, mode="standard", seed=0)
    config, _ = resolve_auto(TrainConfig(data=data), pts.xyz[split.train], pts.xyz[split.val])
    train_x = torch.as_tensor(pts.xyz[split.train], dtype=torch.float32)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = build_field(config)
    torch.nn.init.normal_(model.output.weight, std=0.05)  # a trained-looking field, not v = 0
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    path = build_path(config, train_x)
    obj = make_objective("ppd", data=train_x, path=path, ell=config.ell, floor=config.floor, manifold=model.manifold)

    def step() -> None:
        value = obj(model, config.batch_size, generator=g)
        opt.zero_grad(set_to_none=True)
        value.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()

    return {"ms": _time(step, steps), "n_train": int(split.train.size), "kappa_max": config.kappa_max,
            "space_frequencies": config.space_frequencies}


def compare(files: list[str], rounds: int, steps: int, busy: int) -> None:
    """Run every variant on every file, in turns, and print the before/after table (see the module doc)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        results: dict[tuple[str, str], list[float]] = {}
        facts: dict[str, dict] = {}
        for _ in range(rounds):
            for f in files:
                for label, (threads, wait) in VARIANTS.items():
                    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                    env.update(OMP_NUM_THREADS=str(threads), **({"OMP_WAIT_POLICY": wait} if wait else {}))
                    out = subprocess.run([sys.executable, __file__, "--child", f, "--threads", str(threads),
                                          "--steps", str(steps)], env=env, capture_output=True, text=True, check=True)
                    rec = json.loads(out.stdout.strip().splitlines()[-1])
                    results.setdefault((f, label), []).append(rec["ms"])
                    facts[f] = rec
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    load = os.getloadavg()[0]
    print(f"training step, default config, PPD l=1; {rounds} rounds x {steps} steps; busy processes={busy}; "
          f"cores={os.cpu_count()}; load at end={load:.1f}; torch={torch.__version__}")
    before = next(iter(VARIANTS))
    print("| data | N train | variant | ms/step (median of rounds) | rounds | / before |\n|---|---:|---|---:|---|---:|")
    for f in files:
        ref = statistics.median(results[(f, before)])
        for label in VARIANTS:
            ms = results[(f, label)]
            med = statistics.median(ms)
            print(f"| {Path(f).stem} | {facts[f]['n_train']} | {label} | {med:.0f} | "
                  f"{', '.join(f'{m:.0f}' for m in ms)} | {med / ref:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--kappa-max", type=float, default=1000.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--compare", action="store_true", help="before/after of the OpenMP change (module doc)")
    ap.add_argument("--data", nargs="+", default=[str(p) for p in DEFAULT_DATA])
    ap.add_argument("--busy", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_step_ms(a.child, a.threads, a.steps)))
        return
    if a.compare:
        compare(a.data, a.rounds, a.steps, a.busy)
        return
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    data = sample_uniform(a.points, generator=g)
    path = VMFMixturePath(data, ExponentialSchedule(a.kappa_max))
    kappas = torch.as_tensor(adaptive_kappas(data.double().numpy(), 3, 3.0), dtype=data.dtype)
    adaptive = VMFMixturePath(data, ExponentialSchedule(a.kappa_max), scales=kappas / a.kappa_max)
    field = VectorField(hidden=a.hidden, layers=a.layers)
    for p in field.output.parameters():
        torch.nn.init.normal_(p, std=0.1)
    opt = torch.optim.Adam(field.parameters(), lr=1e-4)

    def step(obj):
        def run() -> None:
            opt.zero_grad(set_to_none=True)
            obj(field, a.batch, generator=g).loss.backward()
            opt.step()
        return run

    ppd, rfm = PPD(path, ell=2), RFM(data)
    t = torch.rand(a.batch, generator=g)
    x = path.sample(t, generator=g)
    rows = {
        "RFM step": _time(step(rfm), a.repeats),
        "PPD step (l=2)": _time(step(ppd), a.repeats),
        "PPD step (l=1)": _time(step(PPD(path, ell=1)), a.repeats),
        "PPD step (l=1), adaptive kernel": _time(step(PPD(adaptive, ell=1)), a.repeats),
        "  target sample x ~ p_t": _time(lambda: path.sample(t, generator=g), a.repeats),
        "  target log p_t, d/dt, grad": _time(lambda: path.quantities(x, t), a.repeats),
        "  adaptive target log p_t, d/dt, grad": _time(lambda: adaptive.quantities(x, t), a.repeats),
        "  (straightforward target: log-sum-exp + autograd)": _time(lambda: naive_quantities(path, data, x, t),
                                                                    a.repeats),
        "  field v and div v (forward)": _time(lambda: field.velocity_and_divergence(x, t), a.repeats),
        "  field v only (forward)": _time(lambda: field(x, t), a.repeats),
    }
    print(f"points={a.points} batch={a.batch} hidden={a.hidden} layers={a.layers} threads={a.threads} "
          f"kappa_max={a.kappa_max} torch={torch.__version__}")
    print("| what | ms | / RFM step |\n|---|---:|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v:.2f} | {v / rows['RFM step']:.2f} |")


if __name__ == "__main__":
    main()
