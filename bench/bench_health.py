"""Server responsiveness while a run trains: latency of the dashboard's ``/_stcore/health``.

    python bench/bench_health.py [--seconds 40] [--minutes 1.0]

Starts the dashboard (streamlit) on a free local port, measures health-check latency while idle,
then starts a training run through the same run store and worker the Train page uses, and
measures again while it trains. Prints a markdown table of percentiles (milliseconds).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cnfm_core.config import TrainConfig
from cnfm_core.jobs import JobRunner, RunStore

REPO = Path(__file__).resolve().parents[1]


def _latencies(url: str, seconds: float, every: float = 0.1) -> list[float]:
    out = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
        out.append(1000.0 * (time.perf_counter() - t0))
        time.sleep(every)
    return out


def _row(name: str, xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=100)
    return f"| {name} | {len(xs)} | {statistics.median(xs):.1f} | {q[94]:.1f} | {q[98]:.1f} | {max(xs):.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--minutes", type=float, default=1.0, help="training budget of the run")
    a = ap.parse_args()
    runs = Path(tempfile.mkdtemp()) / "runs"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CNFM_RUNS": str(runs)}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard/app.py"),
                               "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.3)
        idle = _latencies(url, 10.0)
        store = RunStore(runs)
        run_id = store.create(TrainConfig(data=str(REPO / "assets/synthetic_mixture.csv"), minutes=a.minutes))
        JobRunner(store).poll()
        time.sleep(5.0)  # past the worker's start-up
        busy = _latencies(url, a.seconds)
        state = store.info(run_id)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"cores={os.cpu_count()} run state at the end: {state.state}, step {state.step}\n")
    print("| server | requests | p50 ms | p95 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|")
    print(_row("idle", idle))
    print(_row("while a run trains", busy))


if __name__ == "__main__":
    main()
