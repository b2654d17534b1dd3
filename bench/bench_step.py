"""Step cost of PPD against RFM with the same model and batch (CPU by default).

    python bench/bench_step.py [--points 5000] [--batch 1024] [--hidden 256] [--layers 3] [--threads 2]

Prints a markdown table: milliseconds per optimisation step (median of repeats) and the
ratio to RFM, plus a breakdown of the PPD step (target path, field with divergence, backward),
for the default target and for the adaptive one (a bandwidth per point, ``kernel="adaptive"``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--kappa-max", type=float, default=1000.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
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
