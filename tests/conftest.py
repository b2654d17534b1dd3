"""Shared fixtures: small data files and the location of the shared Earth data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
EARTH = REPO.parent / "shared" / "data" / "earth"
# No warm worker (cnfm_core/standby.py) behind the dashboards that tests start: each would wait minutes for a
# job. tests/test_jobs.py starts its own, and ends them.
os.environ.setdefault("CNFM_STANDBY", "0")


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for modules of tiny tensors: intra-op threads only add synchronisation there,
    which is very slow when the cores are busy. The previous setting is restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_unit_vectors(n: int, seed: int, dtype=None):
    """``n`` seeded uniform points on the sphere (float64 unless ``dtype`` is given)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=dtype or torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="session")
def _ray_clusters():
    """The tests' one local Ray cluster (tests/ray_cluster.py), started on demand; ended at the latest here."""
    from ray_cluster import SharedCluster

    shared = SharedCluster()
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def ray_cluster(request, _ray_clusters) -> Iterator[str]:
    """The address of a local Ray cluster of two one-CPU nodes: started for the first module that asks, kept for the
    next module when it asks too, ended otherwise (tests/ray_cluster.py). No Ray: a failure in CI, a skip elsewhere."""
    from ray_cluster import needed_next

    yield _ray_clusters.address()
    if not needed_next(request):
        _ray_clusters.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules that use the ``ray_cluster`` fixture one after another (where the first of them would run),
    so that they share one cluster instead of starting one each (tests/ray_cluster.py); the rest keep their order."""
    from ray_cluster import FIXTURE

    uses = {item.path for item in items if FIXTURE in getattr(item, "fixturenames", ())}
    if len(uses) > 1:
        first = next(n for n, item in enumerate(items) if item.path in uses)
        rest = [item for item in items if item.path not in uses]
        items[:] = rest[:first] + [item for item in items if item.path in uses] + rest[first:]
