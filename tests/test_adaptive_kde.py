"""bench/adaptive_kde.py prints its rows (the adaptive KDE itself is tested in test_kde.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "adaptive_kde.py"
_spec = importlib.util.spec_from_file_location("adaptive_kde", SCRIPT)
adaptive_kde = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(adaptive_kde)


def test_probe_prints_a_row_per_set_and_split(tmp_path):
    lat = np.degrees(np.arcsin(stats.uniform_direction(3).rvs(400, random_state=4)[:, 2]))
    lon = np.linspace(-179.0, 179.0, 400)
    rows = "".join(f"{a:.5f},{b:.5f}\n" for a, b in zip(lat, lon, strict=True))
    (tmp_path / "gamma.csv").write_text("lat,lon\n" + rows)
    out = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("| gamma")]
    assert [r.split("|")[1].strip() for r in rows] == ["gamma (standard)", "gamma (dedup)"]
    for r in rows:  # the NLLs are finite numbers
        assert all(np.isfinite(float(c)) for c in r.split("|")[2:6])
