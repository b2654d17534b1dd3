"""The Earth table, reproducible with one command: test NLL of every learned method and baseline.

    python bench/earth_table.py [--data-dir ../shared/data/earth] [--profile quick|full|gpu-short]
        [--seeds 0 1 2 3 4] [--steps N | --minutes M] [--jobs 2] [--threads T] [--out out/earth]
        [--device auto|cpu|cuda] [--splits standard dedup] [--hidden H]
        [--methods ppd2 ppd1 rfm ppd1-fixed [ppd1-adaptive]] [--ray ADDRESS]

Every ``*.csv`` in the data folder (any ``lat,lon`` file) is a data set, named by its file stem.
For each data set, split (``standard`` = the RFM protocol; ``dedup`` = the same after exact
duplicates are removed), seed and method, the flow is trained by the CLI in a subprocess
(``python -m cnfm_core train``, product defaults, the same budget for every learned row) into
``OUT/<set>/<split>/<method>/seed<k>``; its exact test NLL on the run's own test split is then
computed with :func:`load_field` and :func:`log_likelihood` and saved as ``result.json`` there.
A run folder with a ``result.json`` is reused, so an interrupted table resumes when the same
command is run again; a run folder without one is deleted and redone. A finished run made under
another budget, other product defaults, or other settings than the data's rule picks now (κ_max,
Fourier features) is refused with a message, not reused.

With ``--ray ADDRESS`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001`` or ``http://HOST:8265``) each learned run is
a Ray job instead (``cnfm_core/rayjobs.py``, ``requirements-ray.txt``): ``python bench/earth_table.py --run-one
SPEC`` on a node with ``--threads`` CPUs (and one GPU for ``--device cuda``) free, which trains and evaluates the
run as above and writes its ``result.json`` into the same folder; ``--jobs`` runs are submitted at a time. The data
folder, ``--out`` and this repository with its venv must be at the same paths on every node (a shared filesystem,
docs/scaling.md); the cache and the tables are the same as without ``--ray``, and a table begun on one resumes on
the other.

Baselines on the same split and seed: the uniform density, log(4 pi), and a vMF KDE with a
uniform floor (``fit_kde`` on train/val, scored on test). Published numbers are shown for
reference only, under the standard split: the papers' splits differ from ours. A second table per
split gives each learned row minus the KDE on the same split and seed: the split moves every row
together, so this paired difference is much more precise than either row's spread over seeds.

The product defaults are one rule, the same for every data set (:mod:`cnfm_core.auto`): κ_max and
the field's Fourier features are read off the validation KDE of the run's own split and seed. Two
rows explain the learned ones. "PPD target p_1" scores the end point of PPD's target path under
those defaults, which is itself a kernel density estimate: a perfect fit of the default target
would score that. "PPD ℓ=1, fixed settings" trains with the settings the rule replaced (κ_max 3000
and no Fourier features for every set), to show what the rule adds.

Profiles set defaults that explicit flags override:

* ``quick``: seed 0, 2.5 minutes per learned run, 2 parallel jobs with 1 torch thread each
  (3 data sets x 2 splits x 3 methods take about 25 minutes on 2 cores);
* ``full``: seeds 0-4, 100,000 steps per learned run, 1 job using every core (a GPU or a long CPU run);
* ``gpu-short``: seed 0, 1.5 minutes per learned run, 8 runs sharing one GPU at a time with 2 CPU
  threads each (24 runs in about 6-7 minutes: sized for a borrowed GPU's 10-minute command limit).

Writes ``OUT/table.md`` (printed as well) and ``OUT/results.json``. Exit status: 0 when every
learned run finished, 1 when some failed (the table marks them), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NoReturn

import torch

from cnfm_core import rayjobs
from cnfm_core.builders import resolve_device
from cnfm_core.runs import atomic_write
from cnfm_core.sphere import LOG_AREA

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The table's parts, one concept a module; this one is the command line. earth_spec: the rows, profiles and records;
# earth_baselines: the data sets and baselines; earth_cache: the settings, their fingerprint and when a finished run
# is reused; earth_runs: the learned runs, here or on Ray; earth_render: the summary and the markdown.
from bench.earth_baselines import baselines, find_data_sets  # noqa: E402
from bench.earth_cache import PRODUCT_DEFAULTS, Settings, cache_conflict, read_cached  # noqa: E402
from bench.earth_render import render, summarise  # noqa: E402
from bench.earth_runs import ON_RAY, RAY_ASKS_PER_S, RAY_POLL_S, run_job, run_job_on_ray, run_one  # noqa: E402
from bench.earth_spec import DEFAULT_METHODS, METHODS, PROFILES, PUBLISHED, SPLIT_NOTES, Job  # noqa: E402

#: ``main`` and the names tests and scripts have read from here since before the table was split into modules.
__all__ = ["METHODS", "PRODUCT_DEFAULTS", "PROFILES", "PUBLISHED", "Job", "Settings", "main"]

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared/data/earth"


# ---------------------------------------------------------------------------------------------
# Arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"earth_table: error: {message} (see --help)\n")


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s!r} must be at least 1")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{s!r} must be a positive number")
    return v


def _parser() -> argparse.ArgumentParser:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder of lat,lon CSV files")
    p.add_argument("--profile", choices=list(PROFILES), default="quick")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (profile default)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, help="step budget per learned run")
    budget.add_argument("--minutes", type=_positive_float, help="training-time budget per learned run")
    p.add_argument("--jobs", type=_positive_int, help="runs trained in parallel (profile default)")
    p.add_argument("--threads", type=_positive_int, help="torch threads per run (profile default)")
    p.add_argument("--out", type=Path, default=REPO / "out/earth", help="output folder (default out/earth)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--splits", nargs="+", choices=list(SPLIT_NOTES), default=list(SPLIT_NOTES))
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS))
    p.add_argument("--hidden", type=_positive_int, help="hidden width passed to training (tests only; "
                                                          "the table uses the product default)")
    p.add_argument("--ray", metavar="ADDRESS", help="train the learned runs as jobs on this Ray cluster "
                                                    "(docs/scaling.md); --jobs of them at a time")
    return p


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_settings(a: argparse.Namespace) -> tuple[Settings, tuple[int, ...], int]:
    """Settings, seeds and jobs: explicit flags over the profile's defaults."""
    prof = PROFILES[a.profile]
    seeds = tuple(dict.fromkeys(a.seeds)) if a.seeds else prof.seeds
    steps, minutes = prof.steps, prof.minutes
    if a.steps is not None or a.minutes is not None:
        steps, minutes = a.steps, a.minutes
    jobs = a.jobs or prof.jobs
    threads = a.threads or prof.threads or max(1, _cores() // jobs)
    return Settings(steps, minutes, a.hidden, threads, a.device), seeds, jobs


def _profile_label(a: argparse.Namespace, settings: Settings, seeds: tuple[int, ...]) -> str:
    """The profile's name, saying so when flags changed its budget or seeds (the table then is not that profile)."""
    prof = PROFILES[a.profile]
    changed = [what for what, differs in (("budget", (settings.steps, settings.minutes) != (prof.steps, prof.minutes)),
                                          ("seeds", seeds != prof.seeds)) if differs]
    return a.profile if not changed else f"{a.profile} with its {' and '.join(changed)} overridden"


# ---------------------------------------------------------------------------------------------
# Entry point


def _machine(device: torch.device | str, cluster: str | None = None) -> dict[str, Any]:
    """This machine and ``device``; with ``cluster``, ``device`` is what the learned runs asked for there."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if isinstance(device, torch.device) and device.type == "cuda" else None
    where = f"{device} on the nodes of the Ray cluster at {cluster}" if cluster else str(device)
    return {"cores": _cores(), "torch": torch.__version__, "device": where, "gpu": gpu, "cpu": cpu}


def _write(path: Path, text: str) -> None:
    atomic_write(path, text.encode())


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_result(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    rate = f", {r['steps_per_s']:.1f} steps/s" if r.get("steps_per_s") else ""
    return f"test NLL {r['test_nll']:.3f} ({r['steps']} steps{rate}{', cached' if r.get('cached') else ''})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--run-one":  # one learned run of a --ray table, on a node of the cluster
        return run_one(json.loads(argv[1]))
    a = _parser().parse_args(argv)
    t_start = time.perf_counter()
    settings, seeds, jobs = resolve_settings(a)
    try:  # with --ray the learned runs choose their device on their nodes (a GPU node for cuda)
        device = resolve_device(settings.device) if a.ray is None else None
    except ValueError as e:
        _say(f"earth_table: error: {e}")
        return 2
    if not a.data_dir.is_dir():
        _say(f"earth_table: error: data folder {a.data_dir} not found")
        return 2
    try:  # a cluster that is not there is said once, before anything is computed
        if a.ray:
            rayjobs.client(a.ray)
    except rayjobs.RayUnavailable as e:
        _say(f"earth_table: error: {e}")
        return 2
    data_sets, skipped = find_data_sets(a.data_dir)
    for s in skipped:
        _say(f"earth_table: skipped {s['file']}: {s['error']}")
    if not data_sets:
        _say(f"earth_table: error: no readable *.csv in {a.data_dir}")
        return 2
    methods = [m for m in METHODS if m in a.methods]
    splits = [s for s in SPLIT_NOTES if s in a.splits]
    out = a.out.resolve()
    torch.set_num_threads(settings.threads)
    names = [d.name for d in data_sets]

    base: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in data_sets:
        for split in splits:
            base[(d.name, split)] = [baselines(d.points, split, seed) for seed in seeds]

    work = [Job(d, split, m, seed, out / d.name / split / m / f"seed{seed}")
            for d in data_sets for split in splits for m in methods for seed in seeds]
    for job in work:
        cached = read_cached(job)
        seed_base = base[(job.data.name, job.split)][seeds.index(job.seed)]
        why = cache_conflict(job, cached, settings, seed_base) if cached is not None else None
        if why:
            _say(f"earth_table: error: {job.run_dir} holds a finished run that does not match: {why}; "
                 "choose another --out or delete it")
            return 2
    _say(f"earth_table: {len(names)} data set(s) ({', '.join(names)}), splits {' '.join(splits)}, seeds "
         f"{' '.join(map(str, seeds))}, {len(work)} learned run(s) of {settings.budget()}, {jobs} job(s) × "
         f"{settings.threads} thread(s), device {device or settings.device}"
         + (f", on the Ray cluster at {a.ray}" if a.ray else ""))

    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {
        (d.name, s, m): [] for d in data_sets for s in splits for m in methods}
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        poll_s = max(RAY_POLL_S, jobs / RAY_ASKS_PER_S)
        run = functools.partial(run_job_on_ray, address=a.ray, poll_s=poll_s) if a.ray else run_job
        futures = {pool.submit(run, job, settings): job for job in work}
        for i, fut in enumerate(as_completed(futures), 1):
            job = futures[fut]
            r = {**fut.result(), "seed": job.seed}
            runs[(job.data.name, job.split, job.method)].append(r)
            _say(f"[{i}/{len(work)}] {job.key}: {_fmt_result(r)}")
    except KeyboardInterrupt:
        for ray_job, address in list(ON_RAY.items()):  # their waiting threads then return
            rayjobs.stop(address, ray_job)
        pool.shutdown(wait=True, cancel_futures=True)
        _say("earth_table: interrupted; run the same command again to resume (finished runs are kept)")
        return 130
    pool.shutdown()
    for rs in runs.values():
        rs.sort(key=lambda r: r["seed"])

    info = {
        "command": "python " + shlex.join([sys.argv[0], *argv]), "profile": _profile_label(a, settings, seeds),
        "budget": settings.budget(),
        "steps": settings.steps, "minutes": settings.minutes, "hidden": settings.hidden, "jobs": jobs,
        "threads": settings.threads, "seeds": list(seeds), "splits": splits, "methods": methods,
        "machine": _machine(device or settings.device, a.ray), "ray": a.ray,
        "wall_seconds": time.perf_counter() - t_start,
        "learned_runs": len(work), "cached_runs": sum(bool(r.get("cached")) for rs in runs.values() for r in rs),
        "skipped": skipped, "std": "population (ddof=0)", "uniform_nll": LOG_AREA,
    }
    summary = summarise(names, splits, methods, base, runs)
    text = render(info, names, summary, seeds)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "table.md", text)
    results = {
        **info,
        "data_sets": [{"name": d.name, "file": str(d.path), "n_points": d.points.n, "sha256": d.sha256}
                      for d in data_sets],
        "table": summary,
        "baselines": {f"{k[0]}/{k[1]}": v for k, v in base.items()},
        "runs": [r for rs in runs.values() for r in rs],
        "published": {"note": "reference only; the papers' splits differ from ours", "rows": PUBLISHED},
    }
    _write(out / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(text)
    _say(f"earth_table: wrote {out / 'table.md'} and {out / 'results.json'}")
    failed = any("error" in r for rs in runs.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
