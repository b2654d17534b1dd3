"""Waiting in tests on a state, never on wall time: poll until a condition holds, with a generous limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def until(what: Callable[[], Any], why: str, timeout: float, every: float = 0.1) -> Any:
    """``what()`` once it is truthy, polled every ``every`` seconds; the test fails after ``timeout`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = what()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"waited {timeout:.0f} s for {why}")
