"""Run ids never collide: many threads and processes creating runs at once all get their own folder, and a
collision (the same id drawn twice) is retried with a fresh id instead of failing."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cnfm_core.jobs as jobs
from cnfm_core.config import TrainConfig
from cnfm_core.jobs import RunStore

REPO = Path(__file__).resolve().parents[1]
DATA = str(REPO / "assets" / "synthetic_mixture.csv")


def _create_many(root: str, n: int) -> list[str]:
    store = RunStore(root, demo_root=None)
    return [store.create(TrainConfig(data=DATA, steps=10), name="clash") for _ in range(n)]


def test_a_drawn_id_that_is_taken_is_drawn_again(tmp_path, monkeypatch):
    """Each random part is drawn twice in a row, so every second create meets a taken id."""
    draws = itertools.chain.from_iterable((f"{i:04x}", f"{i:04x}") for i in itertools.count())
    monkeypatch.setattr(jobs.secrets, "token_hex", lambda n=None: next(draws))
    monkeypatch.setattr(jobs.time, "strftime", lambda fmt, *a: "20260101-000000")
    ids = _create_many(str(tmp_path), 6)
    assert len(set(ids)) == 6
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(ids)
    store = RunStore(tmp_path, demo_root=None)
    assert all(store.info(i).state == "queued" for i in ids)


def test_many_threads_creating_at_once_get_unique_ids(tmp_path):
    with ThreadPoolExecutor(16) as pool:
        batches = list(pool.map(lambda _: _create_many(str(tmp_path), 60), range(16)))
    ids = [i for batch in batches for i in batch]
    assert len(ids) == 960 and len(set(ids)) == 960
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 960


#: One process of the test below: creates runs in a store and prints their ids (JSON).
CREATE = """
import json, sys
from cnfm_core.config import TrainConfig
from cnfm_core.jobs import RunStore
store = RunStore(sys.argv[1], demo_root=None)
print(json.dumps([store.create(TrainConfig(data=sys.argv[2], steps=10), name="clash") for _ in range(150)]))
"""


def test_many_processes_creating_at_once_get_unique_ids(tmp_path):
    # Fresh interpreters, not forks of this one: a fork of a process with threads (torch's) can hang.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", CREATE, str(tmp_path), DATA], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(4)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]  # generous: four imports on a shared machine
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    ids = [i for out in outputs for i in json.loads(out)]
    assert len(ids) == 600 and len(set(ids)) == 600
