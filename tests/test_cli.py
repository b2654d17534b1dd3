"""The command line contract: train / evaluate / sample, and one clear line for every user error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnfm_core.cli import main
from cnfm_core.data import read_points

TINY = ["--hidden", "32", "--layers", "2", "--batch-size", "64", "--threads", "2", "--quiet"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnfm_core", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    synthetic_csv_path = Path(__file__).resolve().parents[1] / "assets/synthetic_mixture.csv"
    run = tmp_path_factory.mktemp("cli") / "run"
    p = _cli("train", "--data", str(synthetic_csv_path), "--run-dir", str(run), "--steps", "30", "--eval-every", "1000",
             *TINY)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["state"] == "done" and out["step"] == 30
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt"):
        assert (run / name).is_file()
    return run


def test_evaluate_test_split(trained_run):
    p = _cli("evaluate", "--run-dir", str(trained_run))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["n"] == 200 and out["data"] == "test split"
    assert out["rtol"] > 0 and out["atol"] > 0 and out["solver"] == "dopri5"
    assert 0.0 < out["nll"] < 3.5


@pytest.mark.filterwarnings("error::UserWarning")  # the points read from a file are read-only
def test_evaluate_file_scores_every_row(trained_run, tmp_path):
    f = tmp_path / "pts.csv"
    f.write_text("Latitude,Longitude\n10,20\n-45.5,300\n90,0\n")
    assert main(["evaluate", "--run-dir", str(trained_run), "--data", str(f)]) == 0


def test_evaluate_file_output(trained_run, tmp_path, capsys):
    f = tmp_path / "pts.csv"
    f.write_text("lat,lon\n10,20\n-45.5,300\n90,0\n")
    main(["evaluate", "--run-dir", str(trained_run), "--data", str(f), "--rtol", "1e-6", "--atol", "1e-6"])
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 3 and out["rtol"] == 1e-6 and out["atol"] == 1e-6


def test_sample_writes_latlon_csv(trained_run, tmp_path):
    out = tmp_path / "s.csv"
    p = _cli("sample", "--run-dir", str(trained_run), "-n", "123", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_text().splitlines()[0] == "lat,lon"
    pts = read_points(out)
    assert pts.n == 123


def test_resume_from_cli(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    p = _cli("train", "--run-dir", str(run), "--resume", "--steps", "40", "--quiet")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["step"] == 40


def _one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("cnfm: error:") and "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "content, needles",
    [
        ("lat,lon\n10,20\n95,0\n", ["bad.csv", "line 3", "lat"]),
        ("lat,lon\n10,20\nnan,0\n", ["bad.csv", "line 3", "NaN"]),
        ("lat,lon\n10,20\nabc,0\n", ["bad.csv", "line 3", "abc"]),
        ("", ["bad.csv", "empty"]),
        ("lat,lon\n10,20\n", ["bad.csv", "only 1 data point", "at least 2"]),
        ("a,b\n1,2\n3,4\n", ["bad.csv", "lat"]),
    ],
)
def test_train_bad_data(tmp_path, content, needles):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    p = _cli("train", "--data", str(f), "--run-dir", str(tmp_path / "run"), "--steps", "5", *TINY)
    _one_line_error(p, *needles)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["train", "--data", "x.csv", "--run-dir", "r", "--objective", "nope"], ["objective", "ppd"]),
        (["train", "--data", "x.csv", "--run-dir", "r", "--steps", "5", "--minutes", "1"], ["not allowed"]),
        (["train", "--data", "x.csv", "--run-dir", "r", "--steps", "-3"], ["--steps"]),
        (["train", "--data", "missing.csv", "--run-dir", "r"], ["missing.csv"]),
        (["train", "--run-dir", "r"], ["--data"]),
        (["train", "--data", "x.csv", "--run-dir", "r", "--kappa-max", "sharp"], ["--kappa-max", "sharp"]),
        (["train", "--data", "x.csv", "--run-dir", "r", "--space-frequencies", "-1"], ["--space-frequencies"]),
        (["evaluate", "--run-dir", "no-such-run"], ["no-such-run"]),
        (["sample", "--run-dir", "no-such-run", "-n", "3", "--out", "s.csv"], ["no-such-run"]),
        (["bogus"], ["invalid choice"]),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, needles):
    p = subprocess.run([sys.executable, "-m", "cnfm_core", *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    _one_line_error(p, *needles)


def test_tampered_checkpoint_cli(trained_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    (run / "checkpoint.pt").write_bytes(b"\x00garbage")
    _one_line_error(_cli("evaluate", "--run-dir", str(run)), "checkpoint.pt", "not a readable checkpoint")


def test_split_none_needs_data_for_evaluate(tmp_path, synthetic_csv, capsys, single_thread):
    run = tmp_path / "run"  # in this process: the CLI's own parser and handlers
    assert main(["train", "--data", str(synthetic_csv), "--run-dir", str(run), "--steps", "3", "--split", "none",
                 "--quiet", *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["n_train"] == 2000
    capsys.readouterr()
    assert main(["evaluate", "--run-dir", str(run)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnfm: error:") and "no test split" in lines[0]
    assert "--data" in lines[0]


def test_auto_settings_are_said_and_saved(tmp_path, capsys, single_thread):
    data = Path(__file__).resolve().parents[1] / "assets/synthetic_mixture.csv"
    args = ["train", "--data", str(data), "--steps", "2", "--hidden", "16", "--layers", "2", "--threads", "1"]
    p = _cli(*args, "--run-dir", str(tmp_path / "a"), "--kappa-max", "AUTO", "--space-frequencies", "8")
    assert p.returncode == 0, p.stderr
    assert "smooth data): κ_max = 3,000." in p.stderr.splitlines()[0]  # only what was left to choose is named
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    assert meta["config"]["kappa_max"] == 3000 and meta["config"]["space_frequencies"] == 8
    assert meta["auto"]["fields"] == ["kappa_max", "kernel", "field_base"]
    assert (meta["config"]["kernel"], meta["config"]["field_base"]) == ("fixed", "none")  # smooth data
    # the rest in this process (the same parser and handler as above, without a second interpreter's start-up)
    code = main([*args, "--quiet", "--run-dir", str(tmp_path / "b"), "--kappa-max", "700", "--space-frequencies", "0",
                 "--kernel", "fixed", "--field-base", "none"])
    assert code == 0 and "kernel density" not in capsys.readouterr().err
    assert json.loads((tmp_path / "b" / "config.json").read_text())["auto"] is None
    with pytest.raises(SystemExit) as e:
        main([*args, "--run-dir", str(tmp_path / "c"), "--field-base", "score"])
    assert e.value.code == 2 and "choose from none, kernel or auto" in capsys.readouterr().err
