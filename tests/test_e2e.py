"""End to end in real headless Chromium: pick data, train a tiny run, see the globe and the density map.

Any request to a host other than 127.0.0.1 fails the test, and so does a WebGL error. Set
``CNFM_SCREENSHOTS=DIR`` to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from servers import CHROMIUM, FLAGS, REPO, guarded_page, serve_dashboard


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def server(tmp_path, runs_root):
    with serve_dashboard(runs_root, tmp_path / "server.log") as url:
        yield url


def test_pick_train_and_see_results(server, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    outside: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = guarded_page(browser, outside, console)
        page.goto(server + "/?data=synthetic", wait_until="domcontentloaded")
        page.get_by_text("Points on the globe").wait_for(timeout=60_000)
        page.locator("canvas").first.wait_for(timeout=60_000)  # the flat map's points (plotly scattergl)
        page.get_by_role("tab", name="3-D globe").click()
        page.locator('[data-testid="stDeckGlJsonChart"] canvas').wait_for(timeout=60_000)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(shots / "1-data.png"))

        page.locator('[data-testid="stSidebarNav"] a', has_text="Train").click()
        page.get_by_text("Train a flow").wait_for(timeout=30_000)
        minutes = page.get_by_role("spinbutton", name="Training time (minutes)")
        minutes.fill("0.15")
        page.get_by_role("button", name="Start training").click()
        # generous: a run trains at least 300 steps however short its time (the budget floor), then reports,
        # on a machine shared with other tests
        page.get_by_text("Done. See the Results page.").wait_for(timeout=480_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "2-train.png"))
        assert "run=" in page.url

        page.locator('[data-testid="stSidebarNav"] a', has_text="Results").click()
        page.get_by_text("Score on the test points").wait_for(timeout=60_000)
        page.locator(".st-key-density_map img").first.wait_for(timeout=60_000)  # the map, as a picture
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "3-results-map.png"), full_page=True)
        page.get_by_role("tab", name="Samples vs test points").click()
        page.locator("canvas").last.wait_for(timeout=60_000)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(shots / "4-results-points.png"), full_page=True)
        browser.close()

    keep = os.environ.get("CNFM_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not [m for m in console if "Failed to create WebGL context" in m], console


def test_shared_path_link_plays_to_the_end_and_exports(server, runs_root, tmp_path):
    from cnfm_core.config import TrainConfig
    from cnfm_core.frames import read_frames, write_frames
    from cnfm_core.report import write_report
    from cnfm_core.runs import RunDir
    from cnfm_core.train import train

    run_id = "shared-run"
    run = RunDir(runs_root / run_id)
    train(TrainConfig(data=str(REPO / "assets" / "synthetic_mixture.csv"), steps=60, hidden=32, layers=2,
                      eval_every=10**6, threads=1), run.path)
    write_report(run, n_lat=20, n_lon=40, n_samples=200)
    write_frames(run, n_frames=5, n_lat=16, n_lon=32, fine=(16, 32), n_samples=200, n_trajectories=30)
    times = read_frames(run).times
    nearest = times[abs(times - 0.25).argmin()]  # the link's t opens the nearest frame
    outside: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = guarded_page(browser, outside, console)
        page.goto(f"{server}/path?run={run_id}&t=0.25", wait_until="domcontentloaded")  # a link a teacher shared
        page.get_by_text("How noise becomes data").wait_for(timeout=60_000)
        page.get_by_text(f"t = {nearest:.2f}", exact=False).first.wait_for(timeout=60_000)
        page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=30_000)  # routed through app.py
        page.get_by_text("▶ Play").click()  # the animation's own control: it plays in the browser to t = 1
        page.locator(".st-key-path_animation").get_by_text("t = 1.00").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(tmp_path / "5-path.png"), full_page=True)
        # Generous: the GIF is rendered frame by frame on the server (matplotlib), seconds when idle but past 120 s
        # on a machine loaded with other test runs; the limit only stops a hang.
        with page.expect_download(timeout=600_000) as dl:
            page.get_by_role("button", name="p_t animation (GIF)").click()
        gif = Path(dl.value.path()).read_bytes()
        browser.close()
    keep = os.environ.get("CNFM_SCREENSHOTS")
    if keep:
        shutil.copy(tmp_path / "5-path.png", keep)
    assert gif[:6] in (b"GIF87a", b"GIF89a") and len(gif) > 1000
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not [m for m in console if "Failed to create WebGL context" in m], console
