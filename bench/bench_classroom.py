"""The classroom loop, timed in a real browser against the targets of issue 15.

    python bench/bench_classroom.py [--load N] [--out out/classroom]

Starts the dashboard on a fresh run store, opens it in headless Chromium (Debian's chromium) and times what a
teacher does with the default settings (bundled synthetic mixture, PPD l = 1, 45 s, trained on to at least 300 steps):

1. first open: the Results page of a fresh server and browser, until a learned density (the bundled demo run)
   is drawn;
2. Start training on the Train page, until the first live density (``live.npz``, drawn as a preview map);
3. Start until a recognisable density: the run's test NLL <= 0.6 (its ``report.json``) and all six modes of
   the mixture (each true centre has a local maximum of the density grid, above the uniform level, within
   10 degrees);
4. end of training (``status.json`` turns ``reporting``) until the density is drawn on the Results page, the
   exact test NLL is shown there, and the path frames are written (``frames.npz``);
5. once the run is done, Step (+50 steps) until the Train page redraws the model 50 steps on.

``--load N`` starts N busy-loop processes (one per core: ``--load 2`` on the 2-core machine) for the whole
measurement and ends them at the end. Prints the machine's load average, the run's numbers and a markdown table
of each milestone's seconds beside its targets. Screenshots go to ``--out``. Timeouts are generous (minutes),
since the machine may be shared: a milestone that does not come in time is reported as not reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TARGETS", "FileWatch", "Milestones", "main", "modes_found", "painted", "plot_steps", "plots_on", "table"]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# bench.browser serves the dashboard; bench.classroom_checks holds what is measured and how it is judged.
from bench.browser import CHROMIUM, FLAGS, NotServing, serve  # noqa: E402
from bench.classroom_checks import (  # noqa: E402
    LIVE_MODE_RADIUS_DEG,
    NLL_RECOGNISABLE,
    TARGETS,
    Milestones,
    modes_found,
    plot_steps,
    table,
)

#: Every plotly chart on the page: the ``st-key-*`` class of its element, its title, its trace types, and whether
#: a heat map has been painted (plotly draws it as an image in the heatmap layer).
PLOTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
  const holder = gd.closest('[class*="st-key-"]');
  const key = holder ? [...holder.classList].find(c => c.startsWith('st-key-')) : '';
  const t = gd.layout && gd.layout.title;
  return {key: key || '', title: String((t && (t.text !== undefined ? t.text : t)) || ''),
          types: (gd.data || []).map(d => d.type), painted: !!gd.querySelector('.heatmaplayer image')};
}).concat([...document.querySelectorAll('[class*="st-key-"] [data-testid="stImage"] img')].map(img => {
  const holder = img.closest('[class*="st-key-"]');
  const key = [...holder.classList].find(c => c.startsWith('st-key-'));
  return {key: key, title: img.alt || '', types: ['image'], painted: img.complete && img.naturalWidth > 0};
}))"""


# ------------------------------------------------------------------------------------------------------------
# The run directory, watched from the side


class FileWatch(threading.Thread):
    """Polls the run store every 0.2 s and records when each file of the (single) new run first appears and when
    its state first is ``reporting`` and first is finished (``time.perf_counter`` clock). Given ``centres``
    (lat, lon), it also reads every new ``live.npz`` and records when its preview first has a mode near each
    (``live_modes``, with the step in ``live_modes_step``)."""

    FILES = ("live", "density", "report", "frames")

    def __init__(self, runs: Path, centres: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__(daemon=True)
        self.runs, self.centres, self.first = runs, centres, {}
        self.run_path: Path | None = None
        self.density_at_report: dict[str, np.ndarray] | None = None
        self.live_modes_step: int | None = None
        self._live_mtime = 0
        self._stop = threading.Event()

    def _check_live(self, now: float) -> None:
        live = self.run_path / "live.npz"  # type: ignore[operator]
        try:
            mtime = live.stat().st_mtime_ns
            if mtime == self._live_mtime:
                return
            self._live_mtime = mtime
            with np.load(live, allow_pickle=False) as z:
                lat, lon, lp, step = z["lat"], z["lon"], z["log_prob"], int(z["step"]) if "step" in z.files else -1
        except (OSError, ValueError, KeyError):
            return
        if all(modes_found(lat, lon, lp, *self.centres, radius_deg=LIVE_MODE_RADIUS_DEG)):  # type: ignore[misc]
            self.first["live_modes"], self.live_modes_step = now, step

    def state(self) -> str:
        try:
            return str(json.loads((self.run_path / "status.json").read_text()).get("state", ""))  # type: ignore[operator]
        except (OSError, ValueError, TypeError):
            return ""

    def poll(self) -> None:
        now = time.perf_counter()
        if self.run_path is None:
            found = [p for p in self.runs.iterdir() if (p / "config.json").exists()] if self.runs.is_dir() else []
            if not found:
                return
            self.run_path = found[0]
        for name, file in zip(self.FILES, ("live.npz", "density.npz", "report.json", "frames.npz"), strict=True):
            if name not in self.first and (self.run_path / file).exists():
                self.first[name] = now
                if name == "report":  # the density a reader saw when the exact NLL came
                    self.density_at_report = _read_density(self.run_path)
        if self.centres is not None and "live_modes" not in self.first and "live" in self.first:
            self._check_live(now)
        s = self.state()
        if s == "reporting" and "reporting" not in self.first:
            self.first["reporting"] = now
        if s in ("done", "stopped", "failed") and "finished" not in self.first:
            self.first["finished"] = now

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except OSError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


def _read_density(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path / "density.npz", allow_pickle=False) as z:
            return {k: np.array(z[k]) for k in z.files}
    except (OSError, ValueError, KeyError):
        return None


# ------------------------------------------------------------------------------------------------------------
# The browser side


def _wait_until(what: Callable[[], Any], timeout_s: float, every_s: float = 0.25) -> Any:
    """``what()`` once it is truthy, polled every ``every_s`` seconds; None after ``timeout_s``."""
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        value = what()
        if value:
            return value
        time.sleep(every_s)
    return None


def plots_on(page: Any) -> list[dict[str, Any]]:
    try:
        return page.evaluate(PLOTS_JS)
    except Exception:  # noqa: BLE001 - a page in the middle of a rerun or a navigation: ask again
        return []


def _shows(page: Any, text: str) -> bool:
    """Whether the page shows ``text``: in its visible text or as the value of an input (a selectbox's choice)."""
    try:
        return bool(page.evaluate("""t => document.body.innerText.includes(t)
            || [...document.querySelectorAll('input')].some(i => (i.value || '').includes(t))""", text))
    except Exception:  # noqa: BLE001 - a page in the middle of a rerun or a navigation: ask again
        return False


def painted(page: Any, key: str, title_has: str = "") -> bool:
    """Whether the element ``st-key-<key>`` shows a drawn density: a plotly heat map or a map image (PNG)."""
    return any(p["key"] == f"st-key-{key}" and ({"heatmap", "image"} & set(p["types"])) and p["painted"]
               and title_has in p["title"] for p in plots_on(page))


def _shot(page: Any, path: Path, key: str = "") -> None:
    """A screenshot of the window, scrolled to the element ``st-key-<key>`` when there is one."""
    if key:
        try:
            page.locator(f".st-key-{key}").first.scroll_into_view_if_needed(timeout=5_000)
        except Exception:  # noqa: BLE001 - not on the page: the window as it is
            pass
    page.screenshot(path=str(path))


def _busy(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _measure(url: str, runs: Path, out: Path, m: Milestones, info: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    from cnfm_core.synthetic import DEFAULT_MIXTURE

    watch = FileWatch(runs, (DEFAULT_MIXTURE.lat, DEFAULT_MIXTURE.lon))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})

        # 1. First open: Results of a fresh server, the bundled demo run
        t0 = time.perf_counter()
        page.goto(url + "/results", wait_until="domcontentloaded")
        ok = _wait_until(lambda: painted(page, "density_map"), 120.0)
        demo = page.get_by_text("Demo run (bundled, read-only)").count() > 0
        m.set("first_open", time.perf_counter() - t0 if ok else None, "demo run" if demo else "no demo caption")
        _shot(page, out / "1-first-open.png", "density_map")
        second = browser.new_page(viewport={"width": 1440, "height": 900})  # what a fresh server adds to it
        t0 = time.perf_counter()
        second.goto(url + "/results", wait_until="domcontentloaded")
        ok = _wait_until(lambda: painted(second, "density_map"), 120.0)
        m.set("reopen", time.perf_counter() - t0 if ok else None)
        second.close()

        # 2. Start with the defaults; the first live density
        page.goto(url + "/train", wait_until="domcontentloaded")
        start = page.get_by_role("button", name="Start training")
        start.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)  # let the page settle: a click during a rerun can be lost
        watch.start()
        t_start = time.perf_counter()
        start.click(no_wait_after=True)
        ok = _wait_until(lambda: painted(page, "live_density", "preview"), 300.0)
        m.set("first_live", time.perf_counter() - t_start if ok else None)
        _shot(page, out / "2-first-live.png", "live_density")
        found = re.search(r"[?&]run=([^&#]+)", page.url)
        run_id = found.group(1) if found else None
        key = re.search(r"[?&]key=([^&#]+)", page.url)  # the run's control link: only its owner may Step it
        info["run_id"] = run_id

        # 3-4. End of training: go to Results as a teacher would, and wait there. Generous: a run trains its
        # 45 s and on to at least 300 steps, which takes several minutes on a loaded machine.
        ended = _wait_until(lambda: watch.first.get("reporting") or watch.first.get("finished"), 1200.0, 0.2)
        if ended:
            page.locator('[data-testid="stSidebarNav"] a', has_text="Results").click(no_wait_after=True)
            ok = _wait_until(lambda: bool(run_id) and painted(page, "density_map") and _shows(page, run_id)
                             and not _shows(page, "Demo run (bundled, read-only)"), 300.0)
            m.set("results_density", time.perf_counter() - ended if ok else None)
            _shot(page, out / "3-results-density.png", "density_map")
            ok = _wait_until(lambda: page.get_by_text("This model (exact likelihood)").count(), 600.0)
            m.set("exact_nll", time.perf_counter() - ended if ok else None,
                  "" if ok else "not shown within 600 s")
            page.screenshot(path=str(out / "4-results-nll.png"))
            frames = _wait_until(lambda: watch.first.get("frames"), 900.0, 0.5)
            m.set("frames", frames - ended if frames else None, "frames.npz written" if frames else "")
        info["train_seconds"] = (ended - t_start) if ended else None

        # 3. Recognisable: the exact test NLL and the modes of the density a reader had when it came
        report = json.loads((watch.run_path / "report.json").read_text()) if watch.run_path and \
            (watch.run_path / "report.json").exists() else {}
        nll = report.get("test_nll")
        grid = watch.density_at_report
        modes = (modes_found(grid["lat"], grid["lon"], grid["log_prob"], DEFAULT_MIXTURE.lat, DEFAULT_MIXTURE.lon)
                 if grid is not None else [])
        info.update(test_nll=nll, modes=modes, preview=bool(grid is not None and int(grid.get("preview", 0))))
        good = nll is not None and nll <= NLL_RECOGNISABLE and len(modes) == 6 and all(modes)
        note = (f"test NLL {nll:.3f}, {sum(modes)} of 6 modes" if nll is not None else "no test NLL")
        m.set("recognisable", watch.first.get("report", time.perf_counter()) - t_start if good else None, note)
        live_modes = watch.first.get("live_modes")
        m.set("live_modes", live_modes - t_start if live_modes else None,
              f"step {watch.live_modes_step}, a mode within {LIVE_MODE_RADIUS_DEG:g}° of each centre"
              if live_modes else "")

        # 5. Step, once the run is done (its report and frames may take minutes: generous)
        finished = _wait_until(lambda: watch.first.get("finished"), 1200.0, 0.5)
        if finished and run_id:
            page.goto(url + f"/train?run={run_id}" + (f"&key={key.group(1)}" if key else ""),
                      wait_until="domcontentloaded")
            step_button = page.get_by_role("button", name=re.compile(r"^Step \(\+\d+ steps\)"))
            step_button.wait_for(timeout=120_000)
            _wait_until(lambda: step_button.is_enabled(), 60.0)
            page.wait_for_timeout(1000)
            before = int(json.loads((watch.run_path / "status.json").read_text()).get("step", 0))
            t_step = time.perf_counter()
            step_button.click(no_wait_after=True)
            ok = _wait_until(lambda: any(s >= before + 50 for s in plot_steps(plots_on(page), "live_density")), 600.0)
            m.set("step", time.perf_counter() - t_step if ok else None, f"step {before} -> {before + 50}")
            _shot(page, out / "5-step.png", "live_density")
        else:
            m.set("step", None, "the run did not finish in time")
        browser.close()
    watch.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", type=int, default=0, help="busy-loop processes to run meanwhile (one per core: 2)")
    ap.add_argument("--out", type=Path, default=Path("out/classroom"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="cnfm-classroom-")) / "runs"
    load_start = os.getloadavg()
    busy = _busy(a.load)
    m, info = Milestones(), {}
    try:
        # generous: the server imports numpy, plotly and pydeck first, on a loaded machine
        with serve(REPO, {**os.environ, "CNFM_RUNS": str(runs)}) as url:
            _measure(url, runs, a.out, m, info)
    except NotServing:
        raise SystemExit("the dashboard did not start within 120 s") from None
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    load_end = os.getloadavg()
    nll = info.get("test_nll")
    print(f"cores={os.cpu_count()} busy processes={a.load} load average at start "
          f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, at end {load_end[0]:.2f} {load_end[1]:.2f} "
          f"{load_end[2]:.2f}; run {info.get('run_id')}: trained {info.get('train_seconds') or 0:.0f} s, test NLL "
          f"{f'{nll:.3f}' if nll is not None else 'not computed'}, modes {info.get('modes')}\n")
    print(table(m, loaded=a.load > 0))


if __name__ == "__main__":
    main()
