"""bench/earth_table.py end to end on two tiny synthetic data sets: the table, the JSON, the cache.

One table is made with a 5-step budget (24 learned runs, each a `cnfm train` subprocess); the
rerun must come entirely from the cache, and a broken CSV added to the folder must be skipped. One more, of a
single run, is made on the tests' local Ray cluster (``--ray``, tests/ray_cluster.py) and then read back by the
local path. The first table and its rerun run the script as a process; the tests that only need its ``main``
(a refused cache, the adaptive row, the Ray table) call it in this process, which has imported torch already.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from cnfm_core.auto import KAPPA_CAP, KAPPA_MIN
from cnfm_core.config import TrainConfig
from cnfm_core.data import read_points
from cnfm_core.sphere import xyz_to_latlon
from cnfm_core.splits import make_split
from cnfm_core.synthetic import DEFAULT_MIXTURE

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "earth_table.py"
# --jobs 2 rather than 1: the 16 subprocesses start torch in about 3 s each, so one at a time would
# take most of a minute on a loaded 2-core machine.
ARGS = ["--steps", "5", "--seeds", "0", "1", "--jobs", "2", "--threads", "1", "--methods", "ppd1", "rfm", "ppd1-fixed",
        "--splits", "standard", "dedup", "--hidden", "16", "--device", "cpu"]
FIXED = "PPD ℓ=1, fixed settings (κ_max 3000, no Fourier features)"
ROWS = ["uniform", "vMF KDE", "PPD target p₁ (defaults)", "PPD ℓ=1", "RFM", FIXED, "CNFM (published)",
        "RFM (published)"]


def _write_csv(path: Path, n: int, seed: int, duplicates: int) -> None:
    lat, lon = xyz_to_latlon(DEFAULT_MIXTURE.sample(n, seed=seed))
    rows = [f"{a:.6f},{b:.6f}" for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]
    rows += rows[:duplicates]
    path.write_text("lat,lon\n" + "\n".join(rows) + "\n")


# The subprocess timeouts below are generous (1800 s): the script trains and evaluates several tiny runs, a minute or
# two on an idle machine, but past 300 s with the cores shared by other test runs (5 processes per core was seen).
# They only stop a hang; the tests check what the script wrote, never how long it took.
def _run(data: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(data), "--out", str(out), *ARGS],
                       capture_output=True, text=True, timeout=1800)
    return p, time.perf_counter() - t0


def _load(name: str):
    """A script of bench/ as a module (registered, as its dataclasses need), to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT.parent / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def earth_table():
    """bench/earth_table.py as a module, loaded once for the tests that call it in this process."""
    return _load("earth_table")


def _main(earth_table, args: list[str]) -> int:
    """``earth_table.main(args)`` in this process, torch's thread count (the script sets its own) restored after."""
    threads = torch.get_num_threads()
    try:
        return earth_table.main(args)
    finally:
        torch.set_num_threads(threads)


MINUS_KDE = "| test NLL minus the vMF KDE's"


def _tables(md: str, first: str = "| test NLL (nats)") -> dict[str, dict[str, list[str]]]:
    """``{split: {row label: cells}}`` of the table whose header starts with ``first`` (default: the
    test NLLs), with the header row under the key ``"header"``."""
    out = {}
    for section in md.split("## Split: ")[1:]:
        split = section.split()[0]
        lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
        start = next(i for i, ln in enumerate(lines) if ln.startswith(first))
        table = {}
        for i, ln in enumerate(lines[start:]):
            if i > 0 and ln.startswith(("| test NLL", "| training steps/s")):
                break
            label, *cells = [c.strip() for c in ln.strip("|").split("|")]
            table["header" if ln.startswith(first) else label] = cells
        out[split] = table
    return out


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("earth_table")
    data = root / "data"
    data.mkdir()
    _write_csv(data / "alpha.csv", 120, seed=1, duplicates=0)
    _write_csv(data / "beta.csv", 120, seed=2, duplicates=20)
    p, seconds = _run(data, root / "out")
    assert p.returncode == 0, p.stderr
    return data, root / "out", p, seconds


def test_table_per_split(table):
    _, out, p, _ = table
    md = (out / "table.md").read_text()
    assert md in p.stdout
    tables = _tables(md)
    assert list(tables) == ["standard", "dedup"]
    for split, t in tables.items():
        assert t["header"] == ["alpha", "beta"]
        rows = [r for r in t if r != "header"]
        assert rows == (ROWS if split == "standard" else ROWS[:6])  # published rows only under standard
        assert t["uniform"] == ["2.531", "2.531"]
        for label in ("vMF KDE", "PPD target p₁ (defaults)", "PPD ℓ=1", "RFM", FIXED):
            for c in t[label]:
                mean, std = c.split(" ± ")  # two seeds: mean ± std
                float(mean), float(std)
        assert t.get("CNFM (published)", ["–", "–"]) == ["–", "–"]  # no published numbers for unknown sets
    assert "5 steps" in md and "ddof=0" in md and "torch" in md
    assert "profile quick with its budget and seeds overridden" in md  # not passed off as the quick profile


def test_learned_rows_against_the_kde_paired_by_seed(table):
    # Second table per split: each learned run's test NLL minus the KDE's on the same split and seed.
    _, out, _, _ = table
    res = json.loads((out / "results.json").read_text())
    paired = _tables((out / "table.md").read_text(), first=MINUS_KDE)
    for split in ("standard", "dedup"):
        assert [r for r in paired[split] if r != "header"] == ["PPD ℓ=1", "RFM", FIXED]
        for j, name in enumerate(("alpha", "beta")):
            entry = res["table"][split][name]
            kde = dict(zip(entry["kde"]["seeds"], entry["kde"]["values"], strict=True))
            for method, label in (("ppd1", "PPD ℓ=1"), ("rfm", "RFM"), ("ppd1-fixed", FIXED)):
                diffs = [v - kde[s] for s, v in zip(entry[method]["seeds"], entry[method]["values"], strict=True)]
                assert entry[method]["minus_kde"] == pytest.approx(diffs, abs=1e-12)
                assert paired[split][label][j] == f"{np.mean(diffs):.3f} ± {np.std(diffs):.3f}"


def test_results_json(table):
    _, out, _, _ = table
    res = json.loads((out / "results.json").read_text())
    assert res["cached_runs"] == 0 and res["learned_runs"] == 24
    for split in ("standard", "dedup"):
        for name in ("alpha", "beta"):
            cell = res["table"][split][name]
            for method in ("ppd1", "rfm", "ppd1-fixed"):
                assert cell[method]["seeds"] == [0, 1] and len(cell[method]["values"]) == 2
                assert all(s > 0 for s in cell[method]["steps_per_s"])
            assert len(cell["kde"]["values"]) == 2
    # each learned run was scored on the very split its baselines used
    for r in res["runs"]:
        base = {b["seed"]: b for b in res["baselines"][f"{r['data']}/{r['split']}"]}
        assert r["n_test"] == base[r["seed"]]["n_test"] and r["steps"] == 5
    assert res["baselines"]["beta/standard"][0]["n_test"] == 14  # 140 rows
    # the default rows trained with the settings the rule chose on their own split (the same the table
    # reports); the fixed row with its fixed ones
    for r in res["runs"]:
        base = {b["seed"]: b for b in res["baselines"][f"{r['data']}/{r['split']}"]}[r["seed"]]
        meta = json.loads((out / r["data"] / r["split"] / r["method"] / f"seed{r['seed']}" / "config.json")
                          .read_text())
        config = meta["config"]
        assert config["floor"] == TrainConfig().floor
        if r["method"] == "ppd1-fixed":  # the kernel and field base are still the rule's (fixed and none here)
            assert (config["kappa_max"], config["space_frequencies"]) == (3000, 0)
            assert meta["auto"]["fields"] == ["kernel", "field_base"]
            assert (config["kernel"], config["field_base"]) == ("fixed", "none")
        else:
            assert (config["kappa_max"], config["space_frequencies"]) == (base["auto_kappa_max"],
                                                                        base["auto_space_frequencies"])
            assert meta["auto"]["fields"] == ["kappa_max", "space_frequencies", "kernel", "field_base"]
            assert (config["kernel"], config["field_base"]) == (base["auto_kernel"], base["auto_field_base"])


def test_target_row_is_the_default_kernel_estimate(table):
    # PPD's target at t = 1 is the vMF mixture over the training points at kappa_max (plus the default floor):
    # scored here with scipy on the test split the table used
    data, out, _, _ = table
    res = json.loads((out / "results.json").read_text())
    d = TrainConfig()
    points = read_points(data / "beta.csv")
    for seed in (0, 1):
        s = make_split(points, mode="standard", seed=seed)
        train, test = points.xyz[s.train], points.xyz[s.test]
        kappa = res["baselines"]["beta/standard"][seed]["auto_kappa_max"]
        assert KAPPA_MIN <= kappa <= KAPPA_CAP
        logs = np.stack([stats.vonmises_fisher(c, kappa).logpdf(test) for c in train])
        p = (1 - d.floor) * np.exp(logsumexp(logs, axis=0) - np.log(len(train))) + d.floor / (4 * np.pi)
        assert res["baselines"]["beta/standard"][seed]["target"] == pytest.approx(float(-np.mean(np.log(p))),
                                                                                    rel=1e-9, abs=1e-9)
    assert res["baselines"]["beta/dedup"][0]["n_test"] == 12  # 120 distinct rows


def test_rerun_uses_cache_and_skips_broken_csv(table):
    data, out, _, first_seconds = table
    before = json.loads((out / "results.json").read_text())
    (data / "broken.csv").write_text("lat,lon\n95,10\n1,2\n")
    p, seconds = _run(data, out)
    assert p.returncode == 0, p.stderr
    assert "broken.csv" in p.stderr and "Traceback" not in p.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["cached_runs"] == 24
    assert after["table"] == before["table"]
    assert seconds < first_seconds / 3
    md = (out / "table.md").read_text()
    assert "Skipped broken.csv" in md
    assert _tables(md)["standard"]["header"] == ["alpha", "beta"]


def test_cached_run_under_other_settings_is_refused(table, earth_table, capsys):
    data, out, _, _ = table
    before = (out / "results.json").read_text()
    capsys.readouterr()
    code = _main(earth_table, ["--data-dir", str(data), "--out", str(out), *[a if a != "5" else "6" for a in ARGS]])
    stderr = capsys.readouterr().err
    assert code == 2 and "Traceback" not in stderr
    assert "does not match" in stderr and "steps: 5 there, 6 here" in stderr
    assert (out / "results.json").read_text() == before  # nothing overwritten


def test_cached_run_from_an_older_data_rule_is_refused(table, earth_table, capsys, tmp_path):
    # The budget fingerprint says "auto" for kappa_max; a run trained when the rule picked another value
    # (as before a change to cnfm_core.auto) must not be reused as if it were made with today's.
    data, out, _, _ = table
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    config_path = copy / "beta" / "standard" / "ppd1" / "seed1" / "config.json"
    config = json.loads(config_path.read_text())
    picked = config["config"]["kappa_max"]
    config["config"]["kappa_max"] = picked / 2
    config_path.write_text(json.dumps(config))
    before = (copy / "results.json").read_text()
    capsys.readouterr()
    code = _main(earth_table, ["--data-dir", str(data), "--out", str(copy), *ARGS])
    stderr = capsys.readouterr().err
    assert code == 2 and "Traceback" not in stderr
    assert "beta/standard/ppd1/seed1" in stderr
    assert f"kappa_max: {picked / 2!r} there, the data's rule picks {picked!r} now" in stderr
    assert (copy / "results.json").read_text() == before


def test_adaptive_row_on_request(earth_table, capsys, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _write_csv(data / "gamma.csv", 150, seed=7, duplicates=0)
    code = _main(earth_table, ["--data-dir", str(data), "--out", str(out), "--steps", "3", "--seeds", "0", "--jobs",
                               "1", "--threads", "1", "--methods", "ppd1-adaptive", "--splits", "standard", "--hidden",
                               "16", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "gamma" / "standard" / "ppd1-adaptive" / "seed0" / "config.json").read_text())
    assert config["config"]["kernel"] == "adaptive" and config["config"]["kernel_neighbours"] >= 1
    label = "PPD ℓ=1, adaptive kernel (a bandwidth per point; not a default)"
    assert label in _tables((out / "table.md").read_text())["standard"]


def test_the_table_on_a_ray_cluster_is_the_table_of_the_local_path(earth_table, ray_cluster, tmp_path):
    """``--ray ADDRESS``: each learned run is a Ray job (on the tests' local cluster here); the local path then finds
    every run in the cache the cluster wrote and makes the same table of it. Both tables are made in this process
    (it has imported torch already), the learned run on the cluster."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _write_csv(data / "alpha.csv", 120, seed=1, duplicates=0)
    args = ["--data-dir", str(data), "--out", str(out), "--steps", "5", "--seeds", "0", "--threads", "1",
            "--methods", "ppd1", "--splits", "standard", "--hidden", "16", "--device", "cpu"]
    assert _main(earth_table, [*args, "--ray", ray_cluster]) == 0
    on_ray, table_on_ray = json.loads((out / "results.json").read_text()), (out / "table.md").read_text()
    assert _main(earth_table, args) == 0
    assert on_ray["ray"] == ray_cluster and on_ray["cached_runs"] == 0 and on_ray["runs"][0]["steps"] == 5
    local = json.loads((out / "results.json").read_text())
    assert local["cached_runs"] == local["learned_runs"] == 1 and local["table"] == on_ray["table"]
    assert _tables((out / "table.md").read_text()) == _tables(table_on_ray)
    rows = [r for r in _tables(table_on_ray)["standard"] if r != "header"]
    assert rows == [r for r in ROWS if r not in ("RFM", FIXED)]  # the local path's rows for the methods run


def test_a_default_only_the_adaptive_kernel_reads_counts_for_adaptive_rows_only(earth_table):
    """A cached run of a fixed-kernel row stays valid when only the adaptive kernel's cap changes."""
    settings = earth_table.Settings(steps=5, minutes=None, hidden=16, threads=1, device="cpu")

    def defaults(method: str) -> dict:
        job = earth_table.Job(data=None, split="standard", method=method, seed=0, run_dir=Path("."))
        return settings.fingerprint(job)["defaults"]

    assert "kernel_cap" in earth_table.PRODUCT_DEFAULTS  # it differs from what older runs had
    assert "kernel_cap" in defaults("ppd1-adaptive")
    for method in ("ppd1", "ppd2", "rfm", "ppd1-fixed"):
        assert "kernel_cap" not in defaults(method)
        assert defaults(method) == {k: v for k, v in earth_table.PRODUCT_DEFAULTS.items() if k != "kernel_cap"}
