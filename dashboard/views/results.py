"""Results page: the learned density (map and globe), samples against test points, NLL against baselines.

The learned density is drawn beside a reference on one colour scale: the true density where the data were drawn
from a known one (the bundled synthetic mixture; ``true_log_prob`` in density.npz), else the run's kernel-density
baseline (its κ and floor from report.json, its centres the training split; drawn here as cell means, cached),
else alone. The globe uses the same scale and shows it in an HTML colour bar. Samples and test points are shown
in equal numbers by default, each set with a toggle. One sentence reads the test NLL against the uniform density,
the kernel density and the truth (``dashboard/scores.py``); how the numbers are computed is in an expander.

After training, the worker writes the results in stages (cnfm_core/stages.py): a preview map within seconds,
then the exact test NLL, the path frames and the exact map. This page shows each as soon as its file exists,
with the stages' progress and a Cancel button while the run is reporting (a fragment polls every 2 s and redraws
the page when a file it shows changes). A message is shown only for the state it describes. Everyone may view a
run; its buttons (Cancel, Compute) are for its owner and the teacher (``dashboard/access.py``).

This page picks the run, follows its report and reads its files; ``dashboard/resultfiles.py`` holds the reads and
renders of those files, ``dashboard/resultviews.py`` draws the tabs and the score.
"""

import json

import numpy as np
import streamlit as st

from cnfm_core.data import PointSet
from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunError
from dashboard import access, figures, progress, resultfiles, resultviews, state
from dashboard.text import plain

store, runner = state.store(), state.runner()
st.title("Results")
st.markdown(
    "How well the trained model fits the data: its density beside the truth (or a simple baseline), its "
    "samples beside test points it never saw, and its score on those points."
)

infos = store.runs()
shown = [r for r in infos if r.state == "reporting" or resultfiles.has_results(store.run_dir(r.run_id))]
run_id = state.current_run_id()
if not shown and run_id is None:
    st.info(
        "No finished run yet. Start one on the **Train** page: its density appears here seconds after training ends."
    )
    st.stop()
ids = [r.run_id for r in shown]
if run_id is not None and run_id not in ids:
    ids.insert(0, run_id)
labels = {r.run_id: f"{r.run_id} · {r.data_name} · {r.objective} · {r.state}" for r in shown}
chosen = st.selectbox(
    "Run", ids, index=ids.index(run_id) if run_id in ids else 0, format_func=lambda i: labels.get(i, i)
)
if chosen != run_id:
    state.set_run_id(chosen)
run = store.run_dir(chosen)
info = store.info(chosen)
may = access.control(store, chosen)
off = access.why_not(may)  # why this session may not use the run's buttons (None: it may)
if info.demo:
    st.caption("Demo run (bundled, read-only)")
if (info.config or {}).get("manifold", "sphere") != "sphere":
    st.info(
        f"Run `{chosen}` is on the {info.config['manifold']}: this page shows sphere runs (lat/lon maps). "
        f"Score it with `python -m cnfm_core evaluate --run-dir {run.path}` and sample it with `sample`."
    )
    st.stop()
drawn = resultfiles.signature(run, info.state)


@st.fragment(run_every=2.0 if info.state in ACTIVE else None)
def watch() -> None:
    """The run's progress while it is busy; a full redraw when a result appears or the run ends."""
    now = store.info(chosen)
    if now.state == "reporting":
        stages = resultfiles.stages(run)
        head, button = st.columns([3, 1], vertical_alignment="center")
        head.markdown("**Computing the results**: each appears on this page as soon as it is ready.")
        if off:
            head.caption(off)
        for col, s in zip(st.columns(max(1, len(stages))), stages, strict=False):
            fraction = float(s.get("fraction") or 0.0) if s.get("state") in ("running", "done") else 0.0
            col.progress(min(1.0, max(0.0, fraction)), text=progress.stage_text(s))
        if (
            button.button(
                "Cancel",
                key="cancel_report",
                disabled=off is not None,
                help=off
                or "Keep what is ready and skip the rest; the exact test NLL can be computed "
                "later from this page, the path frames from the Path page.",
            )
            and may.allowed
        ):
            try:
                store.request_cancel(chosen)
                st.toast("Cancelling: the run keeps what is ready.")
            except RunError as e:
                st.toast(plain(e))
    elif now.state in ("queued", "running"):
        st.info(f"Run `{chosen}` is {now.state}; its density appears here seconds after training ends.")
    if resultfiles.signature(run, now.state) != drawn:
        st.rerun()


watch()
if not run.density.exists():
    if info.state not in ACTIVE and run.checkpoint.exists() and not info.demo:
        # e.g. after Step: its results were for an older model and were removed; compute them for this one
        st.info(
            f"Run `{chosen}` has no results for its current model (step {info.step:,}); Step trains without "
            "computing them."
        )
        if st.button(
            f"Compute the results for step {info.step:,}",
            key="compute_results",
            type="primary",
            disabled=off is not None,
            help=off
            or "Runs in the background: a preview map first, then the exact test NLL, the path "
            "frames and the exact map.",
        ):
            resultviews.request_report(store, runner, chosen, may)
        if off:
            st.caption(off)
    elif info.state not in ACTIVE:
        st.warning(f"Run `{chosen}` has no results ({info.state}). {plain(info.message)}".strip())
    st.stop()

try:
    report = run.read_json(run.report) if run.report.exists() else None
    split = run.read_split()
    with np.load(run.density, allow_pickle=False) as z:
        grid_lat, grid_lon, log_prob = z["lat"], z["lon"], z["log_prob"]
        true_log_prob = z["true_log_prob"] if "true_log_prob" in z.files else None
        kde_grid = z["kde_log_prob"] if "kde_log_prob" in z.files else None  # if a report stage wrote it
        preview = "preview" in z.files and bool(int(z["preview"]))
        grid_mass = float(z["grid_mass"]) if "grid_mass" in z.files else (report or {}).get("grid_mass")
        map_mass = float(z["map_mass"]) if "map_mass" in z.files else grid_mass  # older runs: the same map
        cell_mean_samples = int(z["cell_mean_samples"]) if "cell_means" in z.files and int(z["cell_means"]) else 0
except (RunError, OSError, ValueError, KeyError) as e:
    st.error(f"The results of this run cannot be read: {plain(e)}")
    st.stop()
try:
    samples = np.loadtxt(run.samples, delimiter=",", skiprows=1, ndmin=2)
except (OSError, ValueError):  # written just after the map; the next redraw has them
    samples = np.empty((0, 2))

land = figures.load_land()
coast = figures.land_lines(land)
test = PointSet(xyz=split["test"], lines=split["test_lines"], source="test split")
reference = resultfiles.reference(run, report, grid_lat, grid_lon, log_prob, true_log_prob, kde_grid)
results = resultviews.Shown(
    run_id=chosen, run=run, info=info, may=may, store=store, runner=runner, report=report,
    lat=grid_lat, lon=grid_lon, log_prob=log_prob, preview=preview, grid_mass=grid_mass, map_mass=map_mass,
    cell_mean_samples=cell_mean_samples,
    samples=samples, test_lat=test.lat, test_lon=test.lon, land=land, coast=coast, reference=reference,
    zrange=figures.shared_log_range(log_prob, *([reference.values] if reference else [])), unit=state.density_unit(),
)  # fmt: skip

# Only the open tab is drawn (switching tabs reruns the page), so the first paint waits for no globe (deck.gl).
tabs = st.tabs(["Density map", "Density on the globe", "Samples vs test points"], key="results_tab", on_change="rerun")
for tab, draw in zip(tabs, (resultviews.map_tab, resultviews.globe_tab, resultviews.points_tab), strict=True):
    if tab.open:
        with tab:
            draw(results)

resultviews.nll_section(results)

st.subheader("Downloads")
files = st.container(horizontal=True, gap="small")
# Files are read or built only when their button is clicked, not on every rerun of the page.
files.download_button(
    "Samples (CSV)", run.samples.read_bytes, file_name=f"{chosen}-samples.csv", mime="text/csv", on_click="ignore"
)
files.download_button(
    "Density grid (CSV)",
    lambda: resultfiles.density_csv(grid_lat, grid_lon, log_prob),
    file_name=f"{chosen}-density.csv",
    mime="text/csv",
    on_click="ignore",
)
files.download_button(
    "Checkpoint (.pt)", run.checkpoint.read_bytes, file_name=f"{chosen}-checkpoint.pt", on_click="ignore"
)
files.download_button(
    "Config (JSON)",
    lambda: json.dumps(run.read_json(run.config), indent=2),
    file_name=f"{chosen}-config.json",
    mime="application/json",
    on_click="ignore",
)
