"""Shared fixtures: small data files and the location of the shared Earth data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
EARTH = REPO.parent / "shared" / "data" / "earth"


def earth_dir() -> Path:
    """The shared Earth data folder; missing is a failure in CI and a skip elsewhere."""
    if not EARTH.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared Earth data not found at {EARTH}")
        pytest.skip(f"shared Earth data not found at {EARTH}")
    return EARTH


@pytest.fixture
def synthetic_csv() -> Path:
    return ASSETS / "synthetic_mixture.csv"
