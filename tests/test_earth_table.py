"""bench/earth_table.py end to end on two tiny synthetic data sets: the table, the JSON, the cache.

One table is made with a 5-step budget (16 learned runs, each a `cnfm train` subprocess); the
rerun must come entirely from the cache, and a broken CSV added to the folder must be skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnfm_core.sphere import xyz_to_latlon
from cnfm_core.synthetic import DEFAULT_MIXTURE

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "earth_table.py"
# --jobs 2 rather than 1: the 16 subprocesses start torch in about 3 s each, so one at a time would
# take most of a minute on a loaded 2-core machine.
ARGS = ["--steps", "5", "--seeds", "0", "1", "--jobs", "2", "--threads", "1", "--methods", "ppd1", "rfm",
        "--splits", "standard", "dedup", "--hidden", "16", "--device", "cpu"]
ROWS = ["uniform", "vMF KDE", "PPD ℓ=1", "RFM", "CNFM (published)", "RFM (published)"]


def _write_csv(path: Path, n: int, seed: int, duplicates: int) -> None:
    lat, lon = xyz_to_latlon(DEFAULT_MIXTURE.sample(n, seed=seed))
    rows = [f"{a:.6f},{b:.6f}" for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]
    rows += rows[:duplicates]
    path.write_text("lat,lon\n" + "\n".join(rows) + "\n")


def _run(data: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(data), "--out", str(out), *ARGS],
                       capture_output=True, text=True, timeout=300)
    return p, time.perf_counter() - t0


def _tables(md: str) -> dict[str, dict[str, list[str]]]:
    """``{split: {row label: cells}}`` with the header row under the key ``"header"``."""
    out = {}
    for section in md.split("## Split: ")[1:]:
        split = section.split()[0]
        lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
        start = next(i for i, ln in enumerate(lines) if ln.startswith("| test NLL"))
        table = {}
        for ln in lines[start:]:
            if ln.startswith("| training steps/s"):
                break
            label, *cells = [c.strip() for c in ln.strip("|").split("|")]
            table["header" if label.startswith("test NLL") else label] = cells
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
        assert rows == (ROWS if split == "standard" else ROWS[:4])  # published rows only under standard
        assert t["uniform"] == ["2.531", "2.531"]
        for label in ("vMF KDE", "PPD ℓ=1", "RFM"):
            for c in t[label]:
                mean, std = c.split(" ± ")  # two seeds: mean ± std
                float(mean), float(std)
        assert t.get("CNFM (published)", ["–", "–"]) == ["–", "–"]  # no published numbers for unknown sets
    assert "5 steps" in md and "ddof=0" in md and "torch" in md


def test_results_json(table):
    _, out, _, _ = table
    res = json.loads((out / "results.json").read_text())
    assert res["cached_runs"] == 0 and res["learned_runs"] == 16
    for split in ("standard", "dedup"):
        for name in ("alpha", "beta"):
            cell = res["table"][split][name]
            for method in ("ppd1", "rfm"):
                assert cell[method]["seeds"] == [0, 1] and len(cell[method]["values"]) == 2
                assert all(s > 0 for s in cell[method]["steps_per_s"])
            assert len(cell["kde"]["values"]) == 2
    # each learned run was scored on the very split its baselines used
    for r in res["runs"]:
        base = {b["seed"]: b for b in res["baselines"][f"{r['data']}/{r['split']}"]}
        assert r["n_test"] == base[r["seed"]]["n_test"] and r["steps"] == 5
    assert res["baselines"]["beta/standard"][0]["n_test"] == 14  # 140 rows
    assert res["baselines"]["beta/dedup"][0]["n_test"] == 12  # 120 distinct rows


def test_rerun_uses_cache_and_skips_broken_csv(table):
    data, out, _, first_seconds = table
    before = json.loads((out / "results.json").read_text())
    (data / "broken.csv").write_text("lat,lon\n95,10\n1,2\n")
    p, seconds = _run(data, out)
    assert p.returncode == 0, p.stderr
    assert "broken.csv" in p.stderr and "Traceback" not in p.stderr
    after = json.loads((out / "results.json").read_text())
    assert after["cached_runs"] == 16
    assert after["table"] == before["table"]
    assert seconds < first_seconds / 3
    md = (out / "table.md").read_text()
    assert "Skipped broken.csv" in md
    assert _tables(md)["standard"]["header"] == ["alpha", "beta"]
