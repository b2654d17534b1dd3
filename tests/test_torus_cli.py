"""The torus through the command line and the dashboard: ``train --manifold torus``, ``evaluate`` (NLL w.r.t.
Lebesgue measure on [-π, π)^d, uniform = d log 2π), ``sample`` (the data's header, degrees in [-180, 180)),
one-line errors, an untrained field's exact NLL, and the Runs, Results and Path pages with a torus run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnfm_core.angles import read_angles, write_angles
from cnfm_core.builders import build_field
from cnfm_core.cli import main
from cnfm_core.config import TrainConfig
from cnfm_core.integrate import log_likelihood
from cnfm_core.torus_synthetic import TORUS_MIXTURES

REPO = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--layers", "2", "--batch-size", "64", "--threads", "1", "--quiet"]
NAMES = ("phi", "psi", "chi")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnfm_core", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO)


@pytest.fixture(scope="module")
def angle_csv(tmp_path_factory) -> Path:
    """300 points of a T³ mixture, with 10 values written outside [-180, 180) to check the wrap."""
    x = np.rad2deg(TORUS_MIXTURES["T7"].sample(300, seed=5).numpy()[:, :3])
    x[:10] += 360.0
    f = tmp_path_factory.mktemp("torus") / "angles.csv"
    f.write_text(",".join(NAMES) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in x) + "\n")
    return f


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def torus_run(angle_csv: Path, store: Path) -> Path:
    run = store / "torus-run"
    p = _cli("train", "--manifold", "torus", "--data", str(angle_csv), "--run-dir", str(run), "--steps", "20",
             "--eval-every", "1000", *TINY)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["state"] == "done" and out["step"] == 20 and math.isfinite(out["val_nll"])
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["manifold"] == "torus" and meta["config"]["manifold_dim"] == 3
    assert meta["columns"] == list(NAMES) and meta["config"]["space_frequencies"] == 0
    assert meta["config"]["kappa_max"] > 0 and "von Mises kernel density" in meta["auto"]["description"]
    return run


def test_split_holds_wrapped_radians(torus_run: Path, angle_csv: Path) -> None:
    with np.load(torus_run / "split.npz") as z:
        parts = {k: z[k] for k in ("train", "val", "test")}
    assert {k: len(v) for k, v in parts.items()} == {"train": 240, "val": 30, "test": 30}
    allx = np.concatenate(list(parts.values()))
    assert allx.shape == (300, 3) and bool(((allx >= -math.pi) & (allx < math.pi)).all())
    np.testing.assert_allclose(np.sort(allx, axis=0), np.sort(read_angles(angle_csv).radians, axis=0), rtol=0,
                               atol=1e-12)


def test_evaluate_reports_nats_and_uniform(torus_run: Path, angle_csv: Path, capsys: pytest.CaptureFixture[str],
                                           single_thread: None) -> None:
    p = _cli("evaluate", "--run-dir", str(torus_run), "--threads", "1")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["n"] == 30 and out["data"] == "test split" and out["solver"] == "dopri5"
    assert out["uniform_nll"] == pytest.approx(3 * math.log(2 * math.pi), rel=1e-15)
    assert math.isfinite(out["nll"]) and abs(out["nll"] - out["uniform_nll"]) < 2.0
    # a file of angles is scored row by row; one of the wrong dimension is a one-line error (the CLI's handler, in
    # this process)
    assert main(["evaluate", "--run-dir", str(torus_run), "--data", str(angle_csv), "--threads", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 300
    bad = angle_csv.parent / "two.csv"
    bad.write_text("a,b\n1,2\n3,4\n")
    assert main(["evaluate", "--run-dir", str(torus_run), "--data", str(bad), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cnfm: error: two.csv: 2 columns of angles, but the run's torus has dimension 3" in err


def test_sample_writes_the_data_columns(torus_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples.csv"
    p = _cli("sample", "--run-dir", str(torus_run), "-n", "40", "--out", str(out), "--steps", "5", "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert out.read_text().splitlines()[0] == "phi,psi,chi"
    pts = read_angles(out)
    assert pts.n == 40 and bool(((pts.degrees >= -180.0) & (pts.degrees < 180.0)).all())


def test_resume_keeps_the_torus(angle_csv: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    common = ["--eval-every", "1000", *TINY]
    assert main(["train", "--manifold", "torus", "--data", str(angle_csv), "--run-dir", str(run), "--steps", "3",
                 "--split", "dedup", *common]) == 0
    assert main(["train", "--resume", "--run-dir", str(run), "--steps", "6", *common]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["manifold"], config["manifold_dim"]) == ("torus", 3)
    assert json.loads((run / "status.json").read_text())["step"] == 6


def test_report_and_frames_say_sphere_only(torus_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _cli("report", "--run-dir", str(torus_run))  # the real command once
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1
    assert "a torus run has no density map; 'report' is for sphere runs" in p.stderr
    assert main(["frames", "--run-dir", str(torus_run)]) == 2  # its handler, in this process
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a torus run has no density map; 'frames' is for sphere runs" in err


def test_bad_angle_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("phi,psi\n1,2\n3,nan\n")
    assert main(["train", "--manifold", "torus", "--data", str(f), "--run-dir", str(tmp_path / "r"), *TINY]) == 2
    assert capsys.readouterr().err == "cnfm: error: bad.csv, line 3: column 'psi': 'nan' is not finite (NaN or " \
                                      "infinity)\n"
    # the sphere stays the default: the same file is not a lat/lon file
    assert main(["train", "--data", str(f), "--run-dir", str(tmp_path / "s"), *TINY]) == 2
    assert "no recognised header" in capsys.readouterr().err


@pytest.mark.parametrize("d", [1, 2, 7])
def test_untrained_field_scores_uniform(d: int) -> None:
    """A zero field leaves the uniform density: exact NLL d log 2π at any point, seam included."""
    field = build_field(TrainConfig(manifold="torus", manifold_dim=d, hidden=16, layers=2, space_frequencies=0))
    x = torch.rand(20, d, generator=torch.Generator().manual_seed(d)) * 2 * math.pi - math.pi
    x[0] = -math.pi
    res = log_likelihood(field, x)
    np.testing.assert_allclose(-res.log_prob.double().numpy(), d * math.log(2 * math.pi), rtol=1e-6)


# ----------------------------------------------------------------------------- dashboard pages
def _page(page: str, run_id: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    at.query_params["run"] = run_id
    at.query_params["a"] = run_id
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def test_pages_with_a_torus_run(torus_run: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNFM_RUNS", str(store))
    monkeypatch.setenv("CNFM_THREADS", "1")
    at = _page("views/runs.py", "torus-run")
    rows = {r["Run"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["torus-run"]["Manifold"] == "torus (T³)"
    for page, says in (("views/results.py", "this page shows sphere runs"),
                       ("views/path.py", "path frames are lat/lon maps")):
        at = _page(page, "torus-run")
        assert any("is on the torus" in i.value and says in i.value for i in at.info), page


def test_writer_and_reader_agree_on_a_sample_file(tmp_path: Path) -> None:
    rad = TORUS_MIXTURES["T2"].sample(10, seed=0).numpy()
    write_angles(tmp_path / "s.csv", ["a", "b"], rad)
    np.testing.assert_allclose(np.deg2rad(read_angles(tmp_path / "s.csv").degrees), rad, atol=1e-7)


def test_cpu_minutes_budget_through_the_cli(
    angle_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A CPU-time budget ends the run by the process's CPU time (states and counts only, never wall time), is saved
    # with the config, and cannot be combined with a wall-time budget on the command line.
    run = tmp_path / "cpu"
    assert main(["train", "--manifold", "torus", "--data", str(angle_csv), "--run-dir", str(run), "--cpu-minutes",
                 "0.002", "--eval-every", "1000", *TINY]) == 0
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["step"] >= 1 and status["cpu_elapsed"] >= 0.12
    assert "CPU-time budget" in status["message"]
    assert json.loads((run / "config.json").read_text())["config"]["cpu_minutes"] == 0.002
    with pytest.raises(SystemExit) as stop:
        main(["train", "--manifold", "torus", "--data", str(angle_csv), "--run-dir", str(tmp_path / "x"),
              "--minutes", "1", "--cpu-minutes", "1", *TINY])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
