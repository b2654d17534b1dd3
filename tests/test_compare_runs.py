"""bench/compare_runs.py: the paired difference of two runs equals the difference of their own NLLs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnfm_core.cli import main as cli_main
from cnfm_core.config import TrainConfig
from cnfm_core.train import train

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "compare_runs.py"
DATA = str(REPO / "assets" / "synthetic_mixture.csv")
TINY = dict(data=DATA, hidden=16, layers=2, eval_every=10**6, threads=1)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def _script():
    spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_difference_matches_each_runs_evaluation(tmp_path, single_thread, capsys):
    train(TrainConfig(steps=10, **TINY), tmp_path / "a")
    train(TrainConfig(steps=10, kernel="adaptive", **TINY), tmp_path / "b")
    train(TrainConfig(steps=3, seed=1, **TINY), tmp_path / "other-split")
    p = _cli(str(tmp_path / "a"), str(tmp_path / "b"))
    assert p.returncode == 0, p.stderr
    row = [c.strip() for c in p.stdout.splitlines()[2].split("|")[1:-1]]
    n, nll_a, nll_b = int(row[0]), float(row[1]), float(row[2])
    diff, se = (float(v) for v in row[3].split("±"))
    own = []
    for run in ("a", "b"):  # each run's own evaluation, through the CLI's handler in this process
        assert cli_main(["evaluate", "--run-dir", str(tmp_path / run), "--threads", "1"]) == 0
        own.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert n == own[0]["n"] == own[1]["n"]
    assert nll_a == pytest.approx(own[0]["nll"], abs=2e-4) and nll_b == pytest.approx(own[1]["nll"], abs=2e-4)
    assert diff == pytest.approx(nll_b - nll_a, abs=3e-4) and se > 0
    # another split is refused with a message, not compared (the script's main, in this process)
    compare = _script()
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "other-split")]) == 2
    assert "splits differ" in capsys.readouterr().err
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "compare_runs:" in capsys.readouterr().err
