"""The dashboard served for browser tests: one fresh Streamlit server on a free port of 127.0.0.1, and Chromium
pages that may talk to that host only.

Every browser test starts its server here, so a change in how the dashboard is served is made once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from waiting import until

from cnfm_core.standby import STANDBY_DIR

__all__ = ["CHROMIUM", "FLAGS", "REPO", "free_port", "guarded_page", "require_chromium", "serve_dashboard"]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def require_chromium() -> None:
    """Skip where Debian's chromium is not installed, except in CI, where that is a failure (.ci/run installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve_dashboard(runs: Path, log: Path, *, standby: bool = False, **env: str) -> Iterator[str]:
    """The dashboard on run store ``runs`` (``standby``: with its warm worker, as the README serves it), its output
    in ``log``; yields its URL once it answers, and stops it (and a warm worker it started) afterwards."""
    require_chromium()
    port = free_port()
    environ = {**os.environ, "CNFM_RUNS": str(runs), "CNFM_THREADS": "1", "CNFM_STANDBY": "1" if standby else "0",
               **env}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _healthy(url) or proc.poll() is not None, "the dashboard to start", 120.0, every=0.25)
        if proc.poll() is not None:
            pytest.fail("the dashboard exited:\n" + log.read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        proc.kill()
        for path in (runs / STANDBY_DIR).glob("*.*"):  # a warm worker lives in its own session
            pid = path.stem.partition("-")[0]
            if pid.isdigit() and path.suffix in (".starting", ".ready", ".job"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
