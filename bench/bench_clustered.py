"""The clustered benchmark: a vMF mixture with bandwidths from 6 degrees to 2 km and a known density
(:func:`cnfm_core.clustered.clustered_mixture`), learned by PPD under the product defaults (and other
settings), against its entropy, the validation-tuned KDE and the uniform density.

    python bench/bench_clustered.py --out /tmp/clustered --n 2000 --seeds 0 --steps 5000 \\
        --variants default "kappa_max=3e5,space_frequencies=32"

For each seed: ``n`` exact samples of the mixture (seed ``1000 + seed``) are written as a lat/lon file and
trained on through ``cnfm_core.train.train`` exactly as the CLI does (the standard split with that seed,
settings left to the data's rule unless a variant sets them). Every NLL is on the same test split:

* **truth**: ``-log p(x)`` under the mixture itself (what the best model scores on these points), and the
  entropy by Monte Carlo (400,000 samples, with its standard error) and in closed form for separated
  components (:func:`cnfm_core.clustered.separated_entropy`);
* **vMF KDE**: ``fit_kde`` on train/validation, scored on test; **PPD target p1**: the end point of the
  target the rule chose (a KDE with its kernel, at its ``kappa_max``, with the floor); the **adaptive KDE** (a
  bandwidth per point, ``fit_adaptive_kde``) with today's per-point cap and the previous one (3e5);
* each variant's flow: exact test NLL (``evaluate_nll``) and its gap to the truth on the same points, with
  the paired standard error.

A variant is ``default`` (the product defaults) or ``key=value,key=value`` overrides of ``TrainConfig``
(values read as JSON where they parse). Runs already in ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnfm_core.auto import choose_settings
from cnfm_core.builders import load_field
from cnfm_core.clustered import clustered_mixture, separated_entropy
from cnfm_core.config import KERNEL_CAP, TrainConfig
from cnfm_core.kde import adaptive_kappas, fit_adaptive_kde, fit_kde, kde_log_prob
from cnfm_core.runs import RunDir
from cnfm_core.sphere import LOG_AREA, xyz_to_latlon
from cnfm_core.train import train

__all__ = ["main", "parse_variant"]


def parse_variant(text: str) -> dict[str, Any]:
    """``default`` -> {}; ``a=1,b=x`` -> {"a": 1, "b": "x"} (JSON values where they parse)."""
    if text == "default":
        return {}
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _write_sample(path: Path, n: int, seed: int) -> None:
    x = clustered_mixture().sample(n, seed=1000 + seed)
    lat, lon = xyz_to_latlon(x)
    rows = "\n".join(f"{a:.10f},{b:.10f}" for a, b in zip(lat.tolist(), lon.tolist(), strict=True))
    path.write_text("lat,lon\n" + rows + "\n")


def _mean_se(v: np.ndarray) -> tuple[float, float]:
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def run_seed(out: Path, seed: int, n: int, steps: int | None, minutes: float | None, variants: list[str],
             threads: int) -> dict[str, Any]:
    """Train every variant on one seed's sample and score it (module doc)."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"clustered_n{n}_seed{seed}.csv"
    if not data.exists():
        _write_sample(data, n, seed)
    mixture = clustered_mixture()
    rows: dict[str, Any] = {}
    split = None
    for variant in variants:
        run_dir = out / f"seed{seed}" / variant.replace("=", "-").replace(",", "_")
        if not (run_dir / "checkpoint.pt").exists():
            config = TrainConfig(data=str(data), steps=steps, minutes=minutes, seed=seed, threads=threads,
                                 eval_every=10**9, **parse_variant(variant))
            t0 = time.perf_counter()
            train(config, run_dir)
            print(f"seed {seed} {variant}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
        run = RunDir(run_dir)
        split = run.read_split()
        field, config = load_field(run_dir)
        test = torch.as_tensor(split["test"], dtype=torch.float64)
        truth = -mixture.log_prob(test).numpy()
        flow = -_flow_log_prob(field, split["test"])
        rows[variant] = dict(nll=_mean_se(flow), gap=_mean_se(flow - truth), per_point=flow,
                             kappa_max=config.kappa_max, space_frequencies=config.space_frequencies, steps=_steps(run),
                             kernel=config.kernel, field_base=config.field_base)
    assert split is not None
    train_x, val, test = split["train"], split["val"], split["test"]
    truth = -mixture.log_prob(torch.as_tensor(test, dtype=torch.float64)).numpy()
    fit = fit_kde(train_x, val)
    kde = -kde_log_prob(test, train_x, fit.kappa, fit.weight)
    adaptive = {}
    for cap in (KERNEL_CAP, 3e5):  # today's per-point cap and the one before it
        a = fit_adaptive_kde(train_x, val, cap=cap)
        nll = -kde_log_prob(test, train_x, adaptive_kappas(train_x, a.neighbours, a.scale, cap=cap), a.weight)
        adaptive[f"{cap:.0e}"] = _mean_se(nll - truth)
    choice = choose_settings(train_x, val, seed=seed, adaptive=None)  # the product defaults' rule
    target = -kde_log_prob(test, train_x, choice.target_kappas(train_x), TrainConfig().floor)
    for row in rows.values():
        row["minus_kde"] = _mean_se(row.pop("per_point") - kde)
    return dict(seed=seed, truth=_mean_se(truth), kde=_mean_se(kde), kde_gap=_mean_se(kde - truth),
                kde_kappa=fit.kappa, kde_weight=fit.weight, target=_mean_se(target),
                target_gap=_mean_se(target - truth),
                rule_kappa=choice.kappa_max, rule_kernel=choice.kernel, rule_field_base=choice.field_base,
                adaptive_kde_gap=adaptive, flows=rows, n_test=len(test))


def _flow_log_prob(field: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    from cnfm_core.integrate import log_likelihood

    p = next(field.parameters())
    return log_likelihood(field, torch.as_tensor(x, dtype=p.dtype)).log_prob.double().numpy()


def _steps(run: RunDir) -> int:
    return int(run.read_json(run.status).get("step", 0))


def _fmt(m: tuple[float, float]) -> str:
    return f"{m[0]:.3f} ± {m[1]:.3f}"


def _row(label: str, cells: list[tuple[float, float]]) -> str:
    """A table row: each seed's mean ± standard error, then (several seeds) mean ± std over the seeds."""
    text = [_fmt(c) for c in cells]
    if len(cells) > 1:
        means = np.array([c[0] for c in cells])
        text.append(f"**{means.mean():.3f} ± {means.std():.3f}**")
    return f"| {label} | " + " | ".join(text) + " |"


def table(results: list[dict[str, Any]], variants: list[str], entropy: tuple[float, float], closed: float) -> str:
    """The markdown table (one column per seed, and their mean ± std when there are several)."""
    seeds = [r["seed"] for r in results]
    cols = [f"seed {s}" for s in seeds] + (["mean ± std over seeds"] if len(seeds) > 1 else [])
    lines = ["| test NLL (nats; gap = minus the truth on the same points, paired) | " + " | ".join(cols) + " |",
             "|---|" + "---:|" * len(cols)]
    lines.append(f"| entropy: Monte Carlo (400,000 samples) {entropy[0]:.3f} ± {entropy[1]:.3f}; separated closed "
                 f"form {closed:.3f} |" + " |" * len(cols))
    lines.append(_row("truth on the test points", [r["truth"] for r in results]))
    lines.append("| uniform | " + " | ".join(f"{LOG_AREA:.3f}" for _ in cols) + " |")
    lines.append(_row("vMF KDE (validation-tuned)", [r["kde"] for r in results]))
    lines.append(_row("vMF KDE: gap", [r["kde_gap"] for r in results]))
    lines.append(_row("PPD target p1 (the rule's kernel, floor 0.02): gap", [r["target_gap"] for r in results]))
    for cap in results[0]["adaptive_kde_gap"]:
        lines.append(_row(f"adaptive KDE (validation-tuned, per-point cap {float(cap):.0e}): gap",
                          [r["adaptive_kde_gap"][cap] for r in results]))
    for v in variants:
        lines.append(_row(f"flow `{v}`", [r["flows"][v]["nll"] for r in results]))
        lines.append(_row(f"flow `{v}`: gap", [r["flows"][v]["gap"] for r in results]))
        lines.append(_row(f"flow `{v}` minus the KDE", [r["flows"][v]["minus_kde"] for r in results]))
    notes = []
    for r in results:
        flows = "; ".join(f"`{v}` κ_max {r['flows'][v]['kappa_max']:.3g}, {r['flows'][v]['space_frequencies']} "
                          f"features, {r['flows'][v].get('kernel')} kernel, field base "
                          f"{r['flows'][v].get('field_base')}, {r['flows'][v]['steps']} steps" for v in variants)
        notes.append(f"seed {r['seed']}: {r['n_test']} test points; KDE κ {r['kde_kappa']:.3g}, floor "
                     f"{r['kde_weight']:g}; rule κ_max {r['rule_kappa']:.3g}, {r.get('rule_kernel')} kernel, field "
                     f"base {r.get('rule_field_base')}; {flows}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2000, help="points drawn per seed (default 2000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None)
    budget.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--variants", nargs="+", default=["default"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    mixture = clustered_mixture()
    entropy = mixture.entropy()
    results = [run_seed(a.out, s, a.n, a.steps, a.minutes, a.variants, a.threads) for s in a.seeds]
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"python bench/bench_clustered.py --out {a.out} --n {a.n} --seeds {' '.join(map(str, a.seeds))} "
          f"{'--steps ' + str(a.steps) if a.steps else '--minutes ' + str(a.minutes)} --variants "
          + " ".join(f'"{v}"' for v in a.variants))
    print(table(results, a.variants, entropy, separated_entropy(mixture)))


if __name__ == "__main__":
    main()
