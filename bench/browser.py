"""The dashboard served to a headless browser: Debian's Chromium and the flags it runs with, a free port, and one
Streamlit server on 127.0.0.1 for a ``with`` block.

    with serve(REPO, {**os.environ, "CNFM_RUNS": str(runs)}, log=tmp / "server.log") as url:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)

The browser benches (``bench_pages``, ``bench_explore``, ``bench_classroom``), ``scripts/screenshots.py`` and the
browser tests (``tests/servers.py``) all serve the dashboard here, so a change in how it is served is made once.
The benches end alike too: :func:`finish` prints their table, writes it to ``--out`` and removes their temporary
folder.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["CHROMIUM", "FLAGS", "NotServing", "finish", "free_port", "healthy", "serve"]

#: Debian's chromium, and flags that let it draw WebGL (deck.gl globes) without a GPU and fetch nothing by itself.
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--no-first-run"]


class NotServing(RuntimeError):
    """The dashboard did not answer: its process exited, or it took longer than allowed."""


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    """Whether the Streamlit server at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve(repo: Path, env: Mapping[str, str], log: Path | None = None, *, port: int = 0,
          timeout: float = 120.0) -> Iterator[str]:
    """``repo``'s dashboard (``streamlit run dashboard/app.py`` in ``repo``, with the environment ``env``) on
    127.0.0.1 for the ``with`` block, its output in ``log`` (None: discarded); yields its URL once it answers its
    health check. ``port`` 0 takes a free one. Raises :class:`NotServing` when the server exits first or does not
    answer within ``timeout`` s. At exit the server is terminated, and killed if it has not ended 10 s later."""
    port = port or free_port()
    with (open(log, "w") if log else contextlib.nullcontext(subprocess.DEVNULL)) as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(Path(repo) / "dashboard" / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            cwd=repo, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while not healthy(url):
            if proc.poll() is not None:
                raise NotServing(f"the dashboard exited (status {proc.returncode}) before it answered on {url}")
            if time.monotonic() - t0 > timeout:
                raise NotServing(f"the dashboard did not start on {url} within {timeout:.0f} s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def finish(text: str, out: Path | None, tmp: Path) -> None:
    """A browser bench's last step: ``text`` (its table) printed, and written to ``out`` with a final newline when
    ``out`` is given; then its temporary folder ``tmp`` (the run store and the server's log) removed."""
    print(text)
    if out:
        out.write_text(text + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
