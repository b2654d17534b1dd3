"""Page-switch times of the dashboard in headless Chromium: how long each page takes to show after a click.

    python bench/bench_pages.py [--n 10] [--repo DIR] [--mode browser|script] [--out FILE.md]

Makes two small finished runs (a report and path frames each) in a temporary run store with the code of
``--repo`` (default: this checkout), starts that checkout's dashboard on 127.0.0.1, opens it in Debian's
chromium, and switches between the six pages through the sidebar ``--n`` times each, in a fixed cycle. A
switch is timed from the click until the page's main content is on screen, Streamlit is idle (no script
running) and the browser has drawn it (:func:`_drawn`: a WebGL globe draws after it appears). Prints a
markdown table per page: the first visit after the server started (imports and empty caches; for Results, the
first page load, which opens the run), then the median and 95th percentile of the ``--n`` visits after it.
``--mode script`` times the page scripts alone in Streamlit's AppTest (the server's share of a switch, without
a browser). To measure another commit, clone it and point ``--repo`` at the clone; this interpreter runs its
code (``PYTHONPATH``):

    git clone /work/main /tmp/before && git -C /tmp/before checkout 7872ddd
    .venv/bin/python bench/bench_pages.py --repo /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.browser import CHROMIUM, FLAGS, NotServing, finish, serve  # noqa: E402
from bench.browser import free_port as _free_port  # noqa: E402, F401 - kept importable here

__all__ = ["PAGES", "main"]

RUN = "bench-run"
#: Sidebar link text and a text that only the page's main content shows, drawn near its end.
PAGES: dict[str, str] = {
    "Data": "a globe you can turn",
    "Target path": "The maths, in words",
    "Train": "Done. See the",
    "Results": "Total mass on the grid",
    "Path": "Images are drawn when you click",
    "Runs": "Both density maps share one colour scale",
}
#: Makes a finished run with the code on PYTHONPATH (the same calls in every commit measured).
MAKE_RUN = """
import sys
from cnfm_core.frames import write_frames
from cnfm_core.report import write_report
from cnfm_core.runs import RunDir
from cnfm_core.train import TrainConfig, train
run = RunDir(sys.argv[1])
train(TrainConfig(data=sys.argv[2], steps=50, hidden=32, layers=3, eval_every=10**6, threads=2), run.path)
write_report(run, n_lat=45, n_lon=90, n_samples=1000)
write_frames(run, n_frames=11, n_lat=45, n_lon=90, n_samples=1000, n_trajectories=200)
"""
#: ``--mode script``: each page's script run by Streamlit's AppTest, without a browser (server-side time only).
SCRIPT_TIMES = """
import json, sys, time
from streamlit.testing.v1 import AppTest
app, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = {"Data": "views/data.py", "Train": "views/train.py", "Results": "views/results.py", "Path": "views/path.py",
         "Runs": "views/runs.py"}
at = AppTest.from_file(app, default_timeout=300)
at.query_params["run"] = run_id
t0 = time.perf_counter()
at.switch_page(files["Results"])
at.run()
first, times = {"Results": time.perf_counter() - t0}, {name: [] for name in files}
for k in range(n + 1):
    for name, page in files.items():
        if k == 0 and name == "Results":
            continue
        t0 = time.perf_counter()
        at.switch_page(page)
        at.run()
        if at.exception:
            sys.exit(f"{page}: {at.exception[0].value}")
        seconds = time.perf_counter() - t0
        if k:
            times[name].append(seconds)
        else:
            first[name] = seconds
print(json.dumps({"first": first, "times": times}))
"""
#: Resolves after two animation frames (the second starts after the first was drawn).
TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))"
#: Seconds :func:`_drawn` waits before it checks that the frames come at once, and what counts as at once.
SETTLE_S, QUIET_S = 0.2, 0.1
#: True while Streamlit runs a script (its status widget shows "Running...").
IDLE = "() => !(document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText || '').includes('Running')"


def _make_runs(repo: Path, root: Path, env: dict[str, str]) -> None:
    data = repo / "assets" / "synthetic_mixture.csv"
    p = subprocess.run([sys.executable, "-c", MAKE_RUN, str(root / RUN), str(data)], cwd=repo, env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit status {p.returncode}"]
        sys.exit(f"bench_pages: making the run failed: {lines[-1]}")
    shutil.copytree(root / RUN, root / f"{RUN}-copy")  # a second run, so the Runs page compares two


def _switch(page: Page, name: str, timeout_ms: float = 120_000) -> float:
    """Click the sidebar link ``name``; seconds until its marker is visible, Streamlit is idle and the page is
    drawn (:func:`_drawn`)."""
    link = page.locator('[data-testid="stSidebarNav"] a').get_by_text(name, exact=True)
    t0 = time.perf_counter()
    link.click()
    page.get_by_text(PAGES[name], exact=False).first.wait_for(state="visible", timeout=timeout_ms)
    page.wait_for_function(IDLE, timeout=timeout_ms, polling=20)
    return _drawn(page) - t0


def _drawn(page: Page) -> float:
    """``time.perf_counter()`` when the page has drawn what it shows: two animation frames have passed, and
    two more :data:`SETTLE_S` later pass at once (within :data:`QUIET_S`). A WebGL view (a deck.gl globe, a plotly
    ``scattergl``) draws after its element appears, and without a GPU the browser's main thread is busy for
    seconds with it (a page switch that ended at "idle" measured a globe as 1 s that took 3.7 s to draw); its
    drawing then delays the later frames, and the time is taken after them."""
    page.evaluate(TWO_FRAMES)
    done = time.perf_counter()
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    page.evaluate(TWO_FRAMES)
    return time.perf_counter() if time.perf_counter() - start > QUIET_S else done


def _table(first: dict[str, float], times: dict[str, list[float]], label: str) -> str:
    rows = [f"| page ({label}) | first visit (s) | n | p50 (s) | p95 (s) |", "|---|---:|---:|---:|---:|"]
    for name, ts in times.items():
        rows.append(f"| {name} | {first[name]:.2f} | {len(ts)} | {np.percentile(ts, 50):.2f} | "
                    f"{np.percentile(ts, 95):.2f} |")
    return "\n".join(rows)


def _script_times(repo: Path, env: dict[str, str], n: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """First-visit and later times of each page's script in AppTest (``--mode script``)."""
    p = subprocess.run([sys.executable, "-c", SCRIPT_TIMES, str(repo / "dashboard" / "app.py"), RUN, str(n)],
                       cwd=repo, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines() or [f"exit status {p.returncode}"]
        sys.exit(f"bench_pages: the pages failed: {lines[-1]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["first"], out["times"]


def _browser_times(repo: Path, env: dict[str, str], tmp: Path,
                   n: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """First-visit and later page-switch times in headless Chromium against a real server."""
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    first: dict[str, float] = {}
    try:
        with serve(repo, env, tmp / "server.log") as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()  # the first load opens the run, so the session keeps it for every page
            page.goto(f"{url}/results?run={RUN}", wait_until="domcontentloaded")
            page.get_by_text(PAGES["Results"], exact=False).first.wait_for(timeout=120_000)
            page.wait_for_function(IDLE, timeout=120_000, polling=20)
            first["Results"] = time.perf_counter() - t0
            for name in [n for n in PAGES if n != "Results"]:  # first visits: imports and empty caches
                first[name] = _switch(page, name)
            for _ in range(n):
                for name in PAGES:
                    times[name].append(_switch(page, name))
            browser.close()
    except NotServing:
        sys.exit("bench_pages: the dashboard did not start; see " + str(tmp / "server.log"))
    return first, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="switches to each page")
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose dashboard is measured")
    ap.add_argument("--mode", choices=("browser", "script"), default="browser",
                    help="browser: clicks in Chromium (default); script: the page scripts alone, in AppTest")
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    a = ap.parse_args()
    repo = a.repo.resolve()
    if not (repo / "dashboard" / "app.py").is_file():
        sys.exit(f"bench_pages: {repo} has no dashboard/app.py")
    if a.mode == "browser" and not Path(CHROMIUM).exists():
        sys.exit(f"bench_pages: {CHROMIUM} is missing (apt-get install chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    root = tmp / "runs"
    env = {**os.environ, "PYTHONPATH": str(repo), "CNFM_RUNS": str(root), "CNFM_THREADS": "1",
           "CNFM_DATA_DIR": str(tmp / "no-data")}
    _make_runs(repo, root, env)
    if a.mode == "script":
        first, times = _script_times(repo, env, a.n)
    else:
        first, times = _browser_times(repo, env, tmp, a.n)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    commit += " + uncommitted changes" if dirty else ""
    text = _table(first, times, f"{a.mode}, {repo.name} @ {commit}")
    text += ("\n\nFirst visit: the first visit of the page after the server started; for Results, the first page "
             f"load (`/results?run={RUN}`, which opens the run for the session).")
    finish(text, a.out, tmp)


if __name__ == "__main__":
    main()
