"""The classroom loop end to end in headless Chromium, as the dashboard is served (with its warm worker):
first open shows the bundled demo run's density; Start shows a live density while the run is still training;
Step continues the same run and redraws it 50 steps on.

Waits are on states (files, the page's charts), with generous limits: the machine may be shared.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_classroom import painted, plot_steps, plots_on  # noqa: E402
from servers import CHROMIUM, FLAGS, guarded_page, serve_dashboard  # noqa: E402
from waiting import until  # noqa: E402

from cnfm_core.jobs import RunStore  # noqa: E402

#: Seconds to wait for a milestone: each needs a worker that trains and reports on a possibly busy 2-core machine.
WAIT = 600.0


def _until(what: Callable[[], Any], why: str, timeout: float = WAIT) -> Any:
    return until(what, why, timeout, every=0.25)


@pytest.fixture
def served(tmp_path):
    """The dashboard as the README serves it (warm worker on), on a fresh run store."""
    runs = tmp_path / "runs"
    with serve_dashboard(runs, tmp_path / "server.log", standby=True) as url:
        yield url, runs


def test_first_open_live_training_and_a_step(served):
    from playwright.sync_api import sync_playwright

    url, runs = served
    outside: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = guarded_page(browser, outside, console)

        # 1. First open: Results shows the bundled demo run's learned density.
        page.goto(url + "/results", wait_until="domcontentloaded")
        _until(lambda: painted(page, "density_map"), "the demo run's density map")
        assert page.get_by_text("Demo run (bundled, read-only)").count() == 1

        # 2. Start (a small model, a short time): a live density appears while the run is still training.
        page.goto(url + "/train?size=small&minutes=0.25", wait_until="domcontentloaded")
        start = page.get_by_role("button", name="Start training")
        start.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)  # let the page settle: a click during a rerun can be lost
        start.click()
        store = RunStore(runs, demo_root=None)
        run_id = _until(lambda: next((r.run_id for r in store.runs()), None), "the run to be created")
        _until(lambda: painted(page, "live_density"), "the live density")
        assert store.info(run_id).state in ("queued", "running")  # seen before training ended
        assert json.loads(store.run_dir(run_id).status.read_text())["state"] == "running"

        # 3. Step, once the run is done: the same run, 50 steps on, redrawn.
        _until(lambda: store.info(run_id).state == "done", "the run to finish its report")
        page.reload(wait_until="domcontentloaded")
        step_button = page.get_by_role("button", name="Step (+50 steps)")
        step_button.wait_for(timeout=120_000)
        _until(lambda: step_button.is_enabled(), "Step to be enabled")
        before = store.info(run_id).step
        _until(lambda: plot_steps(plots_on(page), "live_density"), "the run's picture")
        page.wait_for_timeout(1000)
        step_button.click()
        _until(lambda: any(s >= before + 50 for s in plot_steps(plots_on(page), "live_density")),
               f"the picture at step {before + 50}")
        assert f"run={run_id}" in page.url
        assert [r.run_id for r in store.runs()] == [run_id]  # Step made no new run
        assert store.info(run_id).step == before + 50
        browser.close()
    assert not outside, f"requests left the machine: {outside[:5]}"


#: Listens to the Path animation's frames in the browser: each frame's name and the colour range it was drawn with.
LISTEN_JS = """() => { window.shownFrames = [];
  const gd = document.querySelector('.st-key-path_animation .js-plotly-plot');
  const range = () => [gd.layout.coloraxis.cmin, gd.layout.coloraxis.cmax];
  gd.on('plotly_animatingframe', e => window.shownFrames.push([e.name, ...range()]));
}"""


def test_the_path_animation_plays_in_the_browser(served):
    from playwright.sync_api import sync_playwright

    url, _ = served
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = guarded_page(browser, outside, [])
        page.goto(url + "/path", wait_until="domcontentloaded")  # the bundled demo run and its frames
        _until(lambda: painted(page, "path_animation"), "the path animation")
        page.wait_for_timeout(1000)
        from_server: list[int] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda _: from_server.append(1)))
        page.evaluate(LISTEN_JS)
        page.get_by_text("▶ Play").click()
        shown = _until(lambda: (f := page.evaluate("() => window.shownFrames")) and f[-1][0] == "30" and f,
                       "the animation to reach its last frame")
        browser.close()
    assert len({name for name, _, _ in shown}) >= 30  # every frame, from t = 0 to t = 1
    assert len({(lo, hi) for _, lo, hi in shown}) == 1  # one colour range for all of them
    assert not from_server  # played by the browser: no message from the server while it played
    assert not outside
