"""How fast the Target path page answers its controls in headless Chromium: a κ_max change and a t change.

    python bench/bench_explore.py [--data ../shared/data/earth/earthquake.csv] [--n 10] [--port 0] [--out FILE.md]
    python bench/bench_explore.py --mode server [--data ...]

Starts this checkout's dashboard on 127.0.0.1 with an empty run store and the data file's folder as its data
folder, opens the Target path page on that data set in Debian's chromium (1440 x 900), and times, from the
key press or click until the new map is on screen (the map's title names the new frame, its heat map image
has changed, and two animation frames have been painted since):

* **κ_max, computed**: after ``--dwell`` seconds on the map shown (default 0), one step along the κ_max slider
  to a value not asked for before for this data set, split and seed (the server computes the 21 maps and
  samples, sends the figure, and plotly draws it; the page computes the other values in the background at a
  lower priority while one is shown, nearest first, so the step finds it ready if that was done in time:
  :mod:`dashboard.targetcache`). The walk goes up the slider from 100; each
  further pass opens the page with another seed (``?seed=``: another split, so nothing is cached) until ``--n``
  changes are timed;
* **κ_max, cached**: the walk back down (the figure is cached on the server; it is sent and drawn again);
* **t**: a click on the map's own t slider (plotly swaps the frame in the browser; no server round trip),
  ``--n`` times at steps drawn with a fixed seed.

Prints a markdown table of the median and 95th percentile of each, and the page's first open.

``--mode server`` times the server's share of a computed κ_max change without a browser, for each κ_max: the
training rows, the 21 maps (:func:`cnfm_core.pathmaps.path_map`), the samples, the figure and its JSON (what
``st.plotly_chart`` sends), in wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.browser import CHROMIUM, FLAGS, NotServing, finish, serve  # noqa: E402
from cnfm_core.data import read_points  # noqa: E402
from cnfm_core.geo import xyz_to_latlon  # noqa: E402
from cnfm_core.pathmaps import path_map  # noqa: E402
from cnfm_core.pathpreview import preview_path, schedule_kappa, training_rows  # noqa: E402
from dashboard.figures.land import load_land  # noqa: E402
from dashboard.figures.pathpreview import frame_title, target_path_figure  # noqa: E402

__all__ = ["main"]

KAPPAS = [100, 300, 1000, 3000, 10000, 30000, 100000, 300000]
TIMES = np.linspace(0.0, 1.0, 21)
#: The map's title and a fingerprint of its heat map image (plotly draws the heat map as one <image>).
SHOWN = """() => {
  const title = document.querySelector('.js-plotly-plot .gtitle');
  const image = document.querySelector('.js-plotly-plot .hm image');
  const href = image ? (image.getAttribute('href') || image.getAttribute('xlink:href') || '') : '';
  let h = 0;
  for (let i = 0; i < href.length; i += 97) h = (h * 31 + href.charCodeAt(i)) | 0;
  return [title ? title.textContent : '', href.length + ':' + h];
}"""
#: Resolves after two animation frames: what was drawn before has been painted.
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def _title(t: float, kappa_max: float) -> str:
    return frame_title(t, float(schedule_kappa("exponential", kappa_max, t)))


def _wait_for(page: Page, title: str, old_image: str, timeout_ms: float = 120_000) -> None:
    """Until the map's title is ``title`` and its image is no longer ``old_image``, then two painted frames."""
    page.wait_for_function(
        f"""() => {{ const [t, i] = ({SHOWN})(); return t === {title!r} && i !== {old_image!r}; }}""",
        timeout=timeout_ms,
        polling="raf",
    )
    page.evaluate(PAINTED)


def _open(page: Page, url: str, kappa_max: int) -> float:
    t0 = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    _wait_for(page, _title(1.0, kappa_max), "")
    return time.perf_counter() - t0


def _kappa_step(page: Page, key: str, kappa_max: int, dwell: float = 0.0) -> float:
    """After ``dwell`` seconds on the map shown (a class looking at it), press ``key`` on the κ_max slider;
    seconds until the map of ``kappa_max`` (shown at t = 1) is drawn."""
    time.sleep(dwell)
    old = page.evaluate(SHOWN)[1]
    thumb = page.get_by_role("slider").first
    thumb.focus()
    t0 = time.perf_counter()
    thumb.press(key)
    _wait_for(page, _title(1.0, kappa_max), old)
    return time.perf_counter() - t0


def _t_click(page: Page, k: int, kappa_max: int) -> float:
    """Click step ``k`` of the map's t slider; seconds until that frame is drawn."""
    old = page.evaluate(SHOWN)[1]
    rail = page.locator(".js-plotly-plot .slider-rail-rect").first.bounding_box()
    ticks = page.locator(".js-plotly-plot .slider-tick-rect")
    first, last = ticks.nth(0).bounding_box(), ticks.nth(TIMES.size - 1).bounding_box()
    x = first["x"] + (last["x"] - first["x"]) * k / (TIMES.size - 1) + first["width"] / 2
    t0 = time.perf_counter()
    page.mouse.click(x, rail["y"] + rail["height"] / 2)
    _wait_for(page, _title(float(TIMES[k]), kappa_max), old)
    return time.perf_counter() - t0


def _row(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {len(values)} | {np.percentile(values, 50):.2f} | {np.percentile(values, 95):.2f} | "
        f"{max(values):.2f} |"
    )


def _server(data: Path) -> str:
    """The server's share of a computed κ_max change, for each κ_max (``--mode server``)."""
    import plotly.io

    points = read_points(data)
    land = load_land()
    rows = ["| κ_max | server share, wall (s) | CPU (s) | figure sent (MB) |", "|---:|---:|---:|---:|"]
    for kappa_max in KAPPAS:
        t0, c0 = time.perf_counter(), time.process_time()
        path = preview_path(points.xyz[training_rows(points.xyz)], kappa_max=kappa_max)
        maps = [path_map(path, float(t)) for t in TIMES]
        rng = np.random.default_rng(0)
        samples = [xyz_to_latlon(path.sample(float(t), 500, rng)) for t in TIMES]
        fig = target_path_figure(
            TIMES,
            np.array([m.kappa for m in maps]),
            [(m.lat, m.lon, m.log_density) for m in maps],
            samples,
            land=land,
            unit="times",
            start=TIMES.size - 1,
        )
        spec = plotly.io.to_json(fig.to_dict(), validate=False)
        rows.append(
            f"| {kappa_max:,} | {time.perf_counter() - t0:.2f} | {time.process_time() - c0:.2f} | "
            f"{len(spec) / 1e6:.2f} |"
        )
    return "\n".join(rows) + f"\n\nData: {data.name}, {points.n:,} points."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "earth" / "earthquake.csv")
    ap.add_argument(
        "--mode",
        choices=("browser", "server"),
        default="browser",
        help="browser: changes timed in Chromium (default); server: the server's share alone",
    )
    ap.add_argument("--n", type=int, default=10, help="changes timed of each kind (at least)")
    ap.add_argument("--dwell", type=float, default=0.0,
                    help="seconds on each κ_max before the next step (the page computes the next values meanwhile)")
    ap.add_argument("--port", type=int, default=0, help="the dashboard's port (0: a free one)")
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    a = ap.parse_args()
    data = a.data.resolve()
    if a.mode == "server":
        text = _server(data)
        print(text)
        if a.out:
            a.out.write_text(text + "\n")
        return
    if not Path(CHROMIUM).exists():
        sys.exit(f"bench_explore: {CHROMIUM} is missing (apt-get install chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-explore-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CNFM_RUNS": str(tmp / "runs"),
        "CNFM_DATA_DIR": str(data.parent),
        "CNFM_STANDBY": "0",
    }
    computed: list[float] = []
    cached: list[float] = []
    clicks: list[float] = []
    try:
        with serve(REPO, env, tmp / "server.log", port=a.port) as url, sync_playwright() as p:
            base = f"{url}/target?data=dir:{data.stem}"
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            first_open = _open(page, f"{base}&kmax={KAPPAS[0]}", KAPPAS[0])
            seed = 0
            while len(computed) < a.n:
                if seed:
                    _open(page, f"{base}&kmax={KAPPAS[0]}&seed={seed}", KAPPAS[0])
                for kappa_max in KAPPAS[1:]:
                    computed.append(_kappa_step(page, "ArrowRight", kappa_max, a.dwell))
                for kappa_max in reversed(KAPPAS[:-1]):
                    cached.append(_kappa_step(page, "ArrowLeft", kappa_max, a.dwell))
                seed += 1
            steps = np.random.default_rng(0).permutation(np.arange(TIMES.size - 1))
            for k in steps[: max(a.n, 1)]:
                clicks.append(_t_click(page, int(k), KAPPAS[0]))
            browser.close()
    except NotServing:
        sys.exit(f"bench_explore: the dashboard did not start; see {tmp / 'server.log'}")
    rows = [
        "| change on the Target path page | n | p50 (s) | p95 (s) | max (s) |",
        "|---|---:|---:|---:|---:|",
        _row("κ_max, computed (first time for this data, split, κ_max)", computed),
        _row("κ_max, cached on the server", cached),
        _row("t (the map's own slider, in the browser)", clicks),
    ]
    text = "\n".join(rows) + f"\n\nData: {data.name}. First open of the page (server just started): {first_open:.2f} s."
    finish(text, a.out, tmp)


if __name__ == "__main__":
    main()
