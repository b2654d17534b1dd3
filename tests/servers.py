"""The dashboard served for browser tests: one fresh Streamlit server on a free port of 127.0.0.1, and Chromium
pages that may talk to that host only.

Every browser test starts its server here, on :func:`bench.browser.serve` (which the browser benches and
``scripts/screenshots.py`` share), so a change in how the dashboard is served is made once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from cnfm_core.standby import STANDBY_DIR

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
from bench.browser import CHROMIUM, FLAGS, NotServing, free_port, serve  # noqa: E402

__all__ = ["CHROMIUM", "FLAGS", "REPO", "free_port", "guarded_page", "require_chromium", "serve_dashboard"]


def require_chromium() -> None:
    """Skip where Debian's chromium is not installed, except in CI, where that is a failure (.ci/run installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def guarded_page(browser: Any, outside: list[str], console: list[str], *, width: int = 1400, height: int = 1000) -> Any:
    """A page whose requests to any host but 127.0.0.1 are refused and recorded, with console messages kept."""
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)

    def guard(route: Any) -> None:
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.on("console", lambda m: console.append(m.text))
    return page


def _stop_standby(runs: Path) -> None:
    """Kill the warm worker a dashboard on ``runs`` started (it lives in its own session)."""
    for path in (runs / STANDBY_DIR).glob("*.*"):
        pid = path.stem.partition("-")[0]
        if pid.isdigit() and path.suffix in (".starting", ".ready", ".job"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def serve_dashboard(runs: Path, log: Path, *, standby: bool = False, **env: str) -> Iterator[str]:
    """The dashboard on run store ``runs`` (``standby``: with its warm worker, as the README serves it), its output
    in ``log``; yields its URL once it answers, and stops it (and a warm worker it started) afterwards."""
    require_chromium()
    environ = {**os.environ, "CNFM_RUNS": str(runs), "CNFM_THREADS": "1", "CNFM_STANDBY": "1" if standby else "0",
               **env}
    with contextlib.ExitStack() as stack:
        stack.callback(_stop_standby, runs)  # after the server has stopped
        try:
            url = stack.enter_context(serve(REPO, environ, log, timeout=120.0))
        except NotServing as e:
            pytest.fail(f"{e}:\n" + log.read_text()[-2000:])
        yield url
