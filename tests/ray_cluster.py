"""The local Ray cluster of the tests that need one, shared by consecutive test modules that ask for it.

``tests/test_ray.py`` (the dashboard's jobs on Ray) and the Earth table's ``--ray`` test in
``tests/test_earth_table.py`` run against a real cluster on this machine: a head with the job server and a second
node, one CPU each (:func:`bench_ray.local_cluster`, ended by its process groups, never ``ray stop``). Starting one
takes 8-9 s and about 13 CPU s on the 2-core machine, and an idle one uses about 0.1 CPU (docs/scaling.md), so the
``ray_cluster`` fixture of ``tests/conftest.py`` starts it when the first module that needs it runs, keeps it for
the next module when that one needs it too (``pytest tests/test_ray.py tests/test_earth_table.py``, ``-k ray``), and
ends it otherwise: a cluster is never left idle while other modules run, and another is started when a later
module asks. Ray is installed by the test command (scripts/test.sh): missing is a failure in CI and a skip elsewhere.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

__all__ = ["FIXTURE", "SharedCluster", "bench_ray", "need_ray", "needed_next"]

REPO = Path(__file__).resolve().parents[1]
#: The name of the fixture that yields the cluster's address.
FIXTURE = "ray_cluster"


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # registered: its dataclasses need it
    spec.loader.exec_module(module)
    return module


bench_ray = _bench("bench_ray")  # its local_cluster starts and ends the cluster


def need_ray() -> None:
    """Ray is installed by the test command (scripts/test.sh): missing is a failure in CI and a skip elsewhere."""
    if not bench_ray.RAY.exists():
        if os.environ.get("CI"):
            pytest.fail("ray is not installed: bash scripts/setup.sh --ray")
        pytest.skip("ray is not installed (bash scripts/setup.sh --ray)")


class SharedCluster:
    """A local cluster of nodes with ``cpus`` CPUs each, started by the first :meth:`address` after a
    :meth:`close` (or ever); waits at most ``timeout`` s for it to answer."""

    def __init__(self, cpus: tuple[int, ...] = (1, 1), *, timeout: float = 240.0) -> None:
        self.cpus, self.timeout = cpus, timeout
        self._stack: contextlib.ExitStack | None = None
        self._address = ""

    def address(self) -> str:
        """The running cluster's address (``127.0.0.1:PORT``), starting one if there is none."""
        if self._stack is None:
            need_ray()
            stack = contextlib.ExitStack()
            self._address = stack.enter_context(bench_ray.local_cluster(self.cpus, timeout=self.timeout))
            self._stack = stack
        return self._address

    def close(self) -> None:
        """End the cluster, if one runs."""
        if self._stack is not None:
            stack, self._stack, self._address = self._stack, None, ""
            stack.close()


def needed_next(request: pytest.FixtureRequest) -> bool:
    """Whether the module that runs right after the one of ``request`` (a module-scoped fixture's) has a test that
    uses the ``ray_cluster`` fixture, directly or through another fixture."""
    items = request.session.items
    mine = [i for i, item in enumerate(items) if item.path == request.path]
    later = items[mine[-1] + 1:] if mine else []
    following = [item for item in later if item.path == later[0].path]
    return any(FIXTURE in getattr(item, "fixturenames", ()) for item in following)
