"""The classroom check: from pressing Start with the default settings to a learned density on screen.

    python bench/bench_classroom.py [--out out/classroom]

Starts the dashboard on a fresh run store, opens it in headless Chromium (Debian's chromium),
presses *Start training* on the Train page with every setting at its default (bundled synthetic
data), waits until the Train page says the results are ready, opens the Results page, and prints the
seconds from the click to each milestone and the run's test NLL. Screenshots go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/classroom"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp()) / "runs"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard/app.py"),
                               "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=REPO, env={**os.environ, "CNFM_RUNS": str(runs)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    marks: dict[str, float] = {}
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/train", wait_until="domcontentloaded")
            page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
            t0 = time.perf_counter()
            page.get_by_role("button", name="Start training").click()
            page.get_by_text("training:", exact=False).first.wait_for(timeout=60_000)
            marks["training started"] = time.perf_counter() - t0
            page.get_by_text("Results are ready", exact=False).or_(page.get_by_text("Done. See the Results page.")) \
                .first.wait_for(timeout=600_000)
            marks["results ready"] = time.perf_counter() - t0
            page.screenshot(path=str(a.out / "train.png"), full_page=True)
            page.locator('[data-testid="stSidebarNav"] a', has_text="Results").click()
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            marks["density map on screen"] = time.perf_counter() - t0
            page.screenshot(path=str(a.out / "results.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    run_dir = next(p for p in runs.iterdir() if (p / "report.json").exists())
    report = json.loads((run_dir / "report.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    print(f"cores={os.cpu_count()} steps={status.get('step')} test NLL={report.get('test_nll'):.3f} "
          f"(true density {report.get('true_nll', float('nan')):.3f}, KDE {report.get('kde_nll'):.3f}, "
          f"uniform {report['uniform_nll']:.3f})\n")
    print("| milestone after pressing Start | seconds |\n|---|---:|")
    for k, v in marks.items():
        print(f"| {k} | {v:.0f} |")


if __name__ == "__main__":
    main()
