"""Projector mode in headless Chromium: every page at 800 x 1000 (a projector's narrow window) with the sidebar
closed, the page using the window's width, and no label, button, tab or chart text cut off.

One browser session on a fresh server (the bundled demo runs show), with the checks of ``scripts/screenshots.py``,
which takes the screenshots of every page at all three sizes. Waits are on states, with generous limits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from screenshots import CHROMIUM, FLAGS, PAGES, clipped, errors, page_paths, serve, settle  # noqa: E402

WIDTH, HEIGHT = 800, 1000
#: The sidebar's state and the width of the page's main column.
LAYOUT_JS = """() => ({collapsed: document.querySelector('[data-testid="stSidebar"]')?.getAttribute('data-collapsed'),
  main: document.querySelector('[data-testid="stMainBlockContainer"]')?.getBoundingClientRect().width || 0})"""


@pytest.fixture
def url(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with serve(tmp_path / "runs", log=tmp_path / "server.log", timeout=180.0) as served:
        yield served


def test_every_page_fits_a_projector_window(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.goto(url + "/", wait_until="domcontentloaded")
        assert settle(page, timeout=180.0), "the Data page did not finish drawing"
        paths = page_paths(page)
        assert set(PAGES) <= set(paths), paths  # the navigation lists every page
        clips, narrow, failed = [], {}, {}
        for path in paths:
            if path != "/":
                page.goto(url + path, wait_until="domcontentloaded")
                assert settle(page, timeout=180.0), f"{path} did not finish drawing"
            layout = page.evaluate(LAYOUT_JS)
            if layout["collapsed"] != "true" or layout["main"] < WIDTH - 80:
                narrow[path] = layout
            clips += clipped(page, path, f"{WIDTH}x{HEIGHT}")
            failed.update({path: errors(page)} if errors(page) else {})
        browser.close()
    assert not failed, f"pages failed: {failed}"
    assert not narrow, f"the sidebar is open or the page is narrow: {narrow}"
    assert not clips, "\n".join(str(c) for c in clips)
