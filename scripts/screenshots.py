"""Screenshots of every dashboard page at a desktop and two projector sizes, and the text each one clips.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--sizes 1440x900,1024x768,800x1000]

Starts the dashboard on an empty run store (so the bundled demo run shows), opens every page of its
navigation in headless Chromium (Debian's ``/usr/bin/chromium``) at each size, waits until the page has
finished drawing, and writes one PNG per page and size (``PAGE-WIDTHxHEIGHT.png``, the whole page,
reduced to 256 colours so that a picture stays small). Then it lists every piece of text the page cuts off:
a label, button, tab, metric or link whose text is wider than its box (``scrollWidth > clientWidth`` where
the box hides its overflow or ends it with an ellipsis), any text of a chart that lies outside the chart,
and a chart's Play/Pause button lying over its slider. It exits with status 1 when it found any, and says
which pages showed an error instead of their content.

``tests/test_e2e_layout.py`` runs the same check on every page at 800 x 1000.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.browser import CHROMIUM, FLAGS  # noqa: E402
from bench.browser import serve as serve_dashboard  # noqa: E402

__all__ = [
    "CHROMIUM",
    "CLIPPED_JS",
    "FLAGS",
    "PAGES",
    "SIZES",
    "Clip",
    "clipped",
    "errors",
    "main",
    "page_paths",
    "serve",
    "settle",
    "small_png",
]

#: (width, height) in CSS pixels: a desktop, a classroom projector, a narrow window (a projector's half screen).
SIZES: tuple[tuple[int, int], ...] = ((1440, 900), (1024, 768), (800, 1000))
#: The pages when the navigation cannot be read (the Data page is the root).
PAGES: tuple[str, ...] = ("/", "/train", "/results", "/path", "/runs")

#: Every text the page cuts off: elements a reader needs whole (labels, buttons, tabs, metrics, links, headings)
#: and the elements inside them, whose text is wider or taller than a box that hides its overflow; and plotly
#: texts (titles, ticks, colour bars, buttons, slider labels) that stick out of their chart.
CLIPPED_JS = """() => {
  const out = [];
  const seen = new Set();
  const shown = el => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > 0 && r.left < window.innerWidth; };
  const name = el => (el.getAttribute('data-testid') || el.getAttribute('role') || el.tagName.toLowerCase());
  const sel = 'label, button, [role="tab"], [data-testid="stMetricLabel"], [data-testid="stMetricValue"], '
    + '[data-testid="stWidgetLabel"], [data-testid="stSidebarNavLink"], [data-testid="stTopNavLink"], a, '
    + 'summary, h1, h2, h3, [data-testid="stMarkdownContainer"] p';
  for (const el of document.querySelectorAll(sel)) {
    for (const c of [el, ...el.querySelectorAll('*')]) {
      if (seen.has(c) || !shown(c)) continue;
      seen.add(c);
      const text = (c.innerText || '').trim();
      if (!text) continue;
      const cs = getComputedStyle(c);
      const hidesX = cs.overflowX !== 'visible' || cs.textOverflow === 'ellipsis';
      if (c.clientWidth <= 1 || cs.clip !== 'auto' || cs.clipPath !== 'none') continue;  // read by screen readers only
      const wide = hidesX && c.scrollWidth > c.clientWidth + 1;
      const tall = cs.webkitLineClamp !== 'none' && c.scrollHeight > c.clientHeight + 2;
      if (wide || tall) out.push({what: name(c), text: text.slice(0, 80), box: Math.round(c.clientWidth),
                                   needs: Math.round(c.scrollWidth)});
    }
  }
  const meets = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const box = gd.getBoundingClientRect();
    if (!box.width) continue;
    const buttons = [...gd.querySelectorAll('.updatemenu-button')];
    const slider = [...gd.querySelectorAll('.slider-rail-rect, .slider-grip-rect, .slider-label')];
    for (const b of buttons) {
      const r = b.getBoundingClientRect();
      const hit = slider.map(x => x.getBoundingClientRect()).find(x => meets(r, x));
      if (hit) out.push({what: 'chart button over its slider', text: (b.textContent || '').trim(),
                         box: Math.round(r.width),
                         needs: Math.round(Math.min(r.right, hit.right) - Math.max(r.left, hit.left))});
    }
    for (const t of gd.querySelectorAll('svg text')) {
      const text = (t.textContent || '').trim();
      const r = t.getBoundingClientRect();
      if (!text || !r.width) continue;
      if (r.left < box.left - 2 || r.right > box.right + 2 || r.top < box.top - 2 || r.bottom > box.bottom + 2)
        out.push({what: 'chart text', text: text.slice(0, 80), box: Math.round(box.width),
                  needs: Math.round(r.right - box.left)});
    }
  }
  return out;
}"""

#: Whether Streamlit is still drawing: its script runs, an element is still a placeholder (a chart's code loads
#: lazily), a chart lacks its picture, slider or buttons, or there is no title yet (a page that failed shows its
#: error instead, and is drawn).
BUSY_JS = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState !== 'notRunning'
  || !!document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')
  || [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].some(el => !el.querySelector('.js-plotly-plot'))
  || ![...document.querySelectorAll('.js-plotly-plot')].every(gd => gd.querySelector('.main-svg')
       && (!(gd.layout?.sliders || []).length || gd.querySelector('.slider-rail-rect'))
       && (!(gd.layout?.updatemenus || []).length || gd.querySelector('.updatemenu-button')))
  || !document.querySelector('h1, [data-testid="stException"]')"""
#: The first line of each error a page shows in place of its content.
ERRORS_JS = """() => [...document.querySelectorAll('[data-testid="stException"]')]
  .map(e => (e.innerText || '').trim().split('\\n')[0])"""

#: The height the whole page needs (Streamlit scrolls inside its main area, so a "full page" screenshot of the
#: browser would show the window only).
HEIGHT_JS = """() => { const main = document.querySelector('[data-testid="stMain"]');
  const block = document.querySelector('[data-testid="stMainBlockContainer"]');
  if (main) main.scrollTo(0, 0);
  return block ? Math.ceil(block.getBoundingClientRect().top + block.scrollHeight) : 0; }"""

#: The pages of the app's navigation (sidebar or top), as paths.
NAV_JS = """() => [...document.querySelectorAll('[data-testid="stSidebarNav"] a, [data-testid="stTopNavLink"], '
  + 'header a[href]')].map(a => new URL(a.href).pathname).filter((p, i, all) => all.indexOf(p) === i)"""


@dataclass(frozen=True)
class Clip:
    """A text the page cuts off: on which page and size, the kind of element, its text, and its box and need (px);
    for a chart button over its slider, the button's width and by how much it covers the slider."""

    page: str
    size: str
    what: str
    text: str
    box: int
    needs: int

    def __str__(self) -> str:
        if self.what == "chart button over its slider":
            return f"{self.page} at {self.size}: the chart button {self.text!r} covers its slider by {self.needs} px"
        return f"{self.page} at {self.size}: {self.what} {self.text!r} needs {self.needs} px in {self.box} px"


@contextlib.contextmanager
def serve(runs: Path, *, port: int = 0, log: Path | None = None, timeout: float = 120.0) -> Iterator[str]:
    """The dashboard served on 127.0.0.1 with the run store ``runs`` (no warm worker), for the ``with`` block;
    yields its URL. ``port`` 0 takes a free one. Raises ``RuntimeError`` when it does not answer in ``timeout`` s
    (:func:`bench.browser.serve`)."""
    env = {**os.environ, "CNFM_RUNS": str(runs), "CNFM_THREADS": "1", "CNFM_STANDBY": "0"}
    with serve_dashboard(REPO, env, log, port=port, timeout=timeout) as url:
        yield url


def settle(page: Any, *, quiet: float = 1.5, timeout: float = 90.0) -> bool:
    """Wait until the page has drawn: not busy (:data:`BUSY_JS`) for ``quiet`` seconds in a row; False after
    ``timeout`` seconds. A globe (deck.gl) draws a moment after its element appears, hence the quiet time."""
    t0 = time.monotonic()
    calm_since: float | None = None
    while time.monotonic() - t0 < timeout:
        try:
            busy = page.evaluate(BUSY_JS)
        except Exception:  # noqa: BLE001 - a page in the middle of a rerun or a navigation: ask again
            busy = True
        now = time.monotonic()
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = now
        elif now - calm_since >= quiet:
            return True
        time.sleep(0.25)
    return False


def clipped(page: Any, path: str, size: str) -> list[Clip]:
    """Every text cut off on the page shown (:data:`CLIPPED_JS`)."""
    return [Clip(path, size, **c) for c in page.evaluate(CLIPPED_JS)]


def errors(page: Any) -> list[str]:
    """The errors (exceptions) the page shows, a line each."""
    return list(page.evaluate(ERRORS_JS))


def page_paths(page: Any) -> list[str]:
    """The pages of the app's navigation, as seen on ``page`` (:data:`PAGES` when there is none to read)."""
    found = [p for p in page.evaluate(NAV_JS) if not p.startswith("/_")]
    return found or list(PAGES)


def small_png(png: bytes) -> bytes:
    """``png`` reduced to 256 colours (a screenshot of flat colours and a few colour scales loses little)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _file_name(path: str, width: int, height: int) -> str:
    return f"{path.strip('/') or 'data'}-{width}x{height}.png"


def _whole_page(page: Any, width: int, height: int) -> bytes:
    """A screenshot of the whole page at ``width``: the window is made as tall as the page for it (then put back)."""
    tall = max(height, min(int(page.evaluate(HEIGHT_JS)), 12_000))
    if tall > height:
        page.set_viewport_size({"width": width, "height": tall})
        globes = page.evaluate("() => !!document.querySelector('[data-testid=\"stDeckGlJsonChart\"] canvas')")
        settle(page, quiet=8.0 if globes else 1.0, timeout=30.0)  # deck.gl redraws a resized globe slowly
    png = page.screenshot()
    page.set_viewport_size({"width": width, "height": height})
    return png


def shoot(url: str, out: Path, sizes: tuple[tuple[int, int], ...], pages: list[str] | None = None) -> list[Clip]:
    """Screenshot every page at every size into ``out``; the clipped texts found."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for width, height in sizes:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            if pages is None:
                page.goto(url + "/", wait_until="domcontentloaded")
                settle(page)
                pages = page_paths(page)
            for path in pages:
                page.goto(url + path, wait_until="domcontentloaded")
                if not settle(page):
                    print(f"{path} at {width}x{height}: still drawing after 90 s", file=sys.stderr)
                name = _file_name(path, width, height)
                found = clipped(page, path, f"{width}x{height}")
                for error in errors(page):
                    print(f"{path} at {width}x{height} shows an error: {error}", file=sys.stderr)
                (out / name).write_bytes(small_png(_whole_page(page, width, height)))
                clips += found
                print(f"{name}: {len(found)} clipped", flush=True)
            context.close()
        browser.close()
    return clips


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple((int(w), int(h)) for w, h in (s.lower().split("x") for s in text.split(",") if s))
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are WIDTHxHEIGHT separated by commas, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots", help="folder of the PNGs")
    parser.add_argument("--sizes", type=_sizes, default=SIZES, help="WIDTHxHEIGHT,... (default: the three sizes)")
    parser.add_argument("--pages", default="", help="paths to visit, e.g. /,/path (default: the navigation's)")
    parser.add_argument("--port", type=int, default=0, help="port of the dashboard (default: a free one)")
    parser.add_argument("--url", default="", help="shoot a dashboard already served there instead")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    pages = [p if p.startswith("/") else "/" + p for p in args.pages.split(",") if p] or None
    if args.url:
        clips = shoot(args.url.rstrip("/"), args.out, args.sizes, pages)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            with serve(Path(tmp) / "runs", port=args.port, log=Path(tmp) / "log") as url:
                clips = shoot(url, args.out, args.sizes, pages)
    for clip in clips:
        print(clip)
    print(f"{len(clips)} clipped text(s); screenshots in {args.out}")
    return 1 if clips else 0


if __name__ == "__main__":
    sys.exit(main())
