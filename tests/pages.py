"""Opening a dashboard page in Streamlit's AppTest the way a browser does: the app, then the page."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def open_page(page: str, *, timeout: float = 60, **query: str) -> AppTest:
    """``page`` (e.g. ``"views/runs.py"``) with the URL values ``query``, after the app's first run; the test
    fails on any exception the page raised."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at
