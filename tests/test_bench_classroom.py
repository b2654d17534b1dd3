"""The detection logic of bench/bench_classroom.py (bench/classroom_checks.py, read through the bench's module):
six modes on a density grid, the step in a redrawn picture's title, the files of a run seen as they appear, and the
table against the targets."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cnfm_core.synthetic import DEFAULT_MIXTURE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_classroom", ROOT / "bench" / "bench_classroom.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_classroom"] = module
    spec.loader.exec_module(module)
    return module


def _grid(n_lat: int = 30, n_lon: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lat = (np.arange(n_lat) + 0.5) * 180.0 / n_lat - 90.0
    lon = (np.arange(n_lon) + 0.5) * 360.0 / n_lon - 180.0
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    return lat, lon, la, xyz


def _mixture_log_prob(xyz: np.ndarray, keep: list[int] | None = None) -> np.ndarray:
    """The bundled mixture's exact log-density (numpy), optionally with only some of its components."""
    m = DEFAULT_MIXTURE
    idx = list(range(6)) if keep is None else keep
    c_lat, c_lon = np.radians(m.lat[idx]), np.radians(m.lon[idx])
    mu = np.stack([np.cos(c_lat) * np.cos(c_lon), np.cos(c_lat) * np.sin(c_lon), np.sin(c_lat)], axis=-1)
    k, w = m.kappa[idx], m.weights[idx] / m.weights[idx].sum()
    log_c = np.log(k) - np.log(2 * np.pi) - np.log1p(-np.exp(-2 * k))
    comp = log_c + k * (xyz @ mu.T - 1.0) + np.log(w)  # vMF on S2: C(k) exp(k (mu.x - 1)) with the shift
    top = comp.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(comp - top).sum(axis=-1, keepdims=True)))[..., 0]


def test_all_six_modes_of_the_true_density_are_found(bench: ModuleType) -> None:
    lat, lon, _, xyz = _grid()
    found = bench.modes_found(lat, lon, _mixture_log_prob(xyz), DEFAULT_MIXTURE.lat, DEFAULT_MIXTURE.lon)
    assert found == [True] * 6


def test_a_missing_mode_and_a_blur_are_not_recognisable(bench: ModuleType) -> None:
    lat, lon, la, xyz = _grid()
    five = bench.modes_found(lat, lon, _mixture_log_prob(xyz, keep=[0, 1, 2, 3, 5]), DEFAULT_MIXTURE.lat,
                             DEFAULT_MIXTURE.lon)
    assert five[4] is False and sum(five) == 5  # the component at (5N, 20E) is gone
    uniform = np.full((lat.size, lon.size), -math.log(4 * math.pi))
    assert bench.modes_found(lat, lon, uniform, DEFAULT_MIXTURE.lat, DEFAULT_MIXTURE.lon) == [False] * 6
    blur = -math.log(4 * math.pi) + 0.3 * np.sin(la)  # one broad bump at the north pole
    assert sum(bench.modes_found(lat, lon, blur, DEFAULT_MIXTURE.lat, DEFAULT_MIXTURE.lon)) == 0


def test_modes_wrap_around_the_antimeridian_and_check_shapes(bench: ModuleType) -> None:
    lat, lon, _, xyz = _grid()
    centre = np.array([np.cos(np.radians(10)) * -1.0, 0.0, np.sin(np.radians(10))])  # (10N, 180)
    lp = 50.0 * (xyz @ centre)
    assert bench.modes_found(lat, lon, lp, np.array([10.0]), np.array([179.0])) == [True]
    assert bench.modes_found(lat, lon, lp, np.array([10.0]), np.array([150.0])) == [False]
    with pytest.raises(ValueError, match="shape"):
        bench.modes_found(lat, lon, lp[:, :10], np.array([0.0]), np.array([0.0]))


def test_plot_steps_reads_painted_pictures_only(bench: ModuleType) -> None:
    plots = [
        {"key": "st-key-live_density", "title": "<b>The model at step 1,300 (preview)</b>", "types": ["heatmap"],
         "painted": True},
        {"key": "st-key-live_density", "title": "The model at step 9,999 (preview)", "types": ["heatmap"],
         "painted": False},
        {"key": "st-key-curves", "title": "step 5,000", "types": ["scatter"], "painted": False},
    ]
    assert bench.plot_steps(plots, "live_density") == [1300]
    assert bench.plot_steps(plots, "density_map") == []


def test_file_watch_sees_each_file_and_the_state_changes(bench: ModuleType, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "uploads").mkdir(parents=True)
    watch = bench.FileWatch(runs)
    watch.poll()
    assert watch.run_path is None and watch.first == {}
    run = runs / "r1"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    watch.poll()
    assert watch.run_path == run and watch.first == {}
    np.savez(run / "live.npz", lat=np.zeros(1))
    (run / "status.json").write_text(json.dumps({"state": "reporting", "stages": []}))
    watch.poll()
    assert set(watch.first) == {"live", "reporting"}
    lat, lon, _, xyz = _grid(6, 12)
    np.savez(run / "density.npz", lat=lat, lon=lon, log_prob=_mixture_log_prob(xyz), preview=1)
    (run / "report.json").write_text(json.dumps({"test_nll": 0.4}))
    first_live = watch.first["live"]
    watch.poll()
    assert {"density", "report"} <= set(watch.first) and watch.first["live"] == first_live
    assert watch.density_at_report is not None and int(watch.density_at_report["preview"]) == 1
    (run / "status.json").write_text(json.dumps({"state": "done"}))
    np.savez(run / "frames.npz", t=np.zeros(2))
    watch.poll()
    assert {"frames", "finished"} <= set(watch.first)
    assert watch.first["reporting"] <= watch.first["report"] <= watch.first["finished"]


def test_table_puts_targets_beside_measurements(bench: ModuleType) -> None:
    m = bench.Milestones()
    m.set("first_open", 3.2, "demo run")
    m.set("first_live", 40.0)
    m.set("step", None, "the run did not finish in time")
    idle = bench.table(m, loaded=False)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in idle.splitlines()[2:]}
    assert len(rows) == len(bench.TARGETS)
    assert "| 5 | 10 | 3.2 | yes | demo run |" in rows["first open -> a learned density on Results"]
    assert "| 15 | 30 | 40.0 | no |" in rows["Start -> first live density on Train"]
    assert "not reached | – | the run did not finish in time" in rows["Step (+50) -> redrawn density on Train"]
    assert "measured loaded" in bench.table(m, loaded=True).splitlines()[0]
    assert "nan" not in idle


def test_file_watch_times_the_first_live_preview_with_all_six_modes(bench: ModuleType, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "status.json").write_text(json.dumps({"state": "running"}))
    watch = bench.FileWatch(tmp_path / "runs", (DEFAULT_MIXTURE.lat, DEFAULT_MIXTURE.lon))
    lat, lon, _, xyz = _grid(15, 30)  # the live preview's 12-degree cells
    np.savez(run / "live.npz", lat=lat, lon=lon, log_prob=_mixture_log_prob(xyz, keep=[0, 1, 2]), step=50)
    watch.poll()
    assert "live" in watch.first and "live_modes" not in watch.first  # three of six: not yet
    np.savez(run / "live.npz", lat=lat, lon=lon, log_prob=_mixture_log_prob(xyz), step=250)
    os.utime(run / "live.npz", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new mtime, however coarse
    watch.poll()
    assert "live_modes" in watch.first and watch.live_modes_step == 250
    m = bench.Milestones()
    m.set("live_modes", 12.0, "step 250")
    row = next(line for line in bench.table(m, loaded=True).splitlines() if "live preview" in line)
    assert "| – | – | 12.0 | – | step 250 |" in row
