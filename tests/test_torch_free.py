"""The dashboard's pages never import torch: every page, with finished runs to show, in a fresh interpreter.

Torch takes seconds to import and hundreds of MB; a page needs none of it, since runs are read from files
(cnfm_core.runs, jobs, data, pathframes, devices and geo are torch-free). Training, reports and frames
happen in worker processes. The runs are made in a separate process too, so the check starts clean.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN, OTHER = "tiny-run", "tiny-copy"

MAKE_RUN = """
import sys
from cnfm_core.config import TrainConfig
from cnfm_core.frames import write_frames
from cnfm_core.report import write_report
from cnfm_core.runs import RunDir
from cnfm_core.train import train
run = RunDir(sys.argv[1])
train(TrainConfig(data=sys.argv[2], steps=5, hidden=16, layers=2, eval_every=10**6, threads=1), run.path)
write_report(run, n_lat=10, n_lon=20, n_samples=50)
write_frames(run, n_frames=3, n_lat=10, n_lon=20, n_samples=50, n_trajectories=10)
"""

#: Runs every page in AppTest and prints, per page, what it showed and whether torch was loaded after it.
PAGES = """
import json, sys
from streamlit.testing.v1 import AppTest

def show(page):
    at = AppTest.from_file(sys.argv[1], default_timeout=120)
    at.query_params["run"] = sys.argv[2]
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return {
        "exception": [str(e.value) for e in at.exception], "errors": [e.value for e in at.error],
        "titles": [t.value for t in at.title], "metrics": [m.label for m in at.metric],
        "captions": [c.value for c in at.caption], "sliders": len(at.select_slider),
        "charts": len(at.get("plotly_chart")) + len(at.get("deck_gl_json_chart")),
        "images": len(at.get("image")),
        "tables": len(at.dataframe), "torch": "torch" in sys.modules,
    }

out = {page: show(page) for page in (None, "views/target.py", "views/train.py", "views/results.py", "views/path.py",
                                    "views/runs.py")}
out["modules"] = sorted(m for m in sys.modules if m.startswith("cnfm_core"))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "CNFM_THREADS": "1", "CNFM_RUNS": str(root),
           "CNFM_DATA_DIR": str(root / "no-data"), "HOME": str(root), "CNFM_STANDBY": "0"}
    data = str(REPO / "assets" / "synthetic_mixture.csv")
    made = subprocess.run([sys.executable, "-c", MAKE_RUN, str(root / RUN), data], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)
    assert made.returncode == 0, made.stderr
    shutil.copytree(root / RUN, root / OTHER)  # a second finished run, so the Runs page compares two
    shown = subprocess.run([sys.executable, "-c", PAGES, str(REPO / "dashboard" / "app.py"), RUN],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("page", ["null", "views/target.py", "views/train.py", "views/results.py", "views/path.py",
                                  "views/runs.py"])
def test_a_page_renders_without_torch(pages, page):
    shown = pages[page]
    assert not shown["exception"] and not shown["errors"], shown
    assert shown["torch"] is False, f"{page} imported torch"


def test_the_pages_showed_their_full_content(pages):
    assert "Points" in pages["null"]["metrics"]
    train = pages["views/train.py"]
    assert any("Device: **CPU" in c or "Device: **GPU" in c for c in train["captions"])
    assert any("Device of this run: **" in c for c in train["captions"])  # the device its worker recorded
    assert "This model (exact likelihood)" in pages["views/results.py"]["metrics"]
    # the open tab only: the learned and the true density maps, as pictures
    assert pages["views/results.py"]["images"] == 2 and pages["views/results.py"]["charts"] == 0
    path = pages["views/path.py"]  # the animation, and the open tab at t: its samples as a picture
    assert path["sliders"] == 1 and path["charts"] == 1 and path["images"] == 1
    assert pages["views/target.py"]["sliders"] == 1 and pages["views/target.py"]["charts"] == 1  # κ_max, the map
    runs = pages["views/runs.py"]
    assert runs["tables"] == 1 and runs["metrics"].count("Test NLL (nats)") == 2
    assert runs["charts"] == 2 and runs["images"] == 2  # each run's curves, and its density as a picture
    assert "cnfm_core.train" not in pages["modules"] and "cnfm_core.frames" not in pages["modules"]


def test_the_page_layer_of_the_library_is_torch_free():
    modules = ["cnfm_core.config", "cnfm_core.data", "cnfm_core.devices", "cnfm_core.geo", "cnfm_core.grid",
               "cnfm_core.jobs", "cnfm_core.pathframes", "cnfm_core.pathmaps", "cnfm_core.pathpreview",
               "cnfm_core.procs", "cnfm_core.runs", "dashboard.state"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(REPO)})
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr
