"""Results page: the learned density (map and globe), samples against test points, NLL against baselines.

After training, the worker writes the results in stages (cnfm_core/stages.py): a preview map within seconds,
then the exact test NLL, the path frames and the exact map. This page shows each as soon as its file exists,
with the stages' progress and a Cancel button while the run is reporting (a fragment polls every 2 s and redraws
the page when a file it shows changes). A message is shown only for the state it describes. Everyone may view a
run; its buttons (Cancel, Compute) are for its owner and the teacher (``dashboard/access.py``).
"""

import io
import json
import math

import numpy as np
import streamlit as st

from cnfm_core.data import PointSet
from cnfm_core.geo import LOG_AREA
from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunDir, RunError
from dashboard import access, export, figures, progress, state
from dashboard.text import plain

store, runner = state.store(), state.runner()
st.title("Results")


def _has_results(run: RunDir) -> bool:
    return run.report.exists() or run.density.exists()


def _signature(run: RunDir, run_state: str) -> tuple[object, ...]:
    """What the page draws from: a change means a full redraw."""
    mtime = run.density.stat().st_mtime_ns if run.density.exists() else 0
    return run_state in ACTIVE, run.report.exists(), mtime


def _request_report() -> None:
    """Request the chosen run's report job (it runs in the background) and redraw; a refusal is shown."""
    if not may.allowed:
        return
    try:
        store.request_job(chosen, "report")
        runner.poll()
        st.rerun()
    except RunError as e:
        st.error(plain(e))


def _off() -> str | None:
    """Why this session may not use the chosen run's buttons (None: it may)."""
    return access.why_not(may)


def _offer_report(missing: str, label: str, *, key: str, hint: str) -> None:
    """Say that ``missing`` (a result) of the chosen run was not computed and, unless the run is a demo, offer a
    button that requests its report job."""
    st.info(f"{missing} of this run was not computed (its report was cancelled or did not finish).")
    if not info.demo and st.button(label, key=key, help=_off() or hint, disabled=_off() is not None):
        _request_report()
    if not info.demo and _off():
        st.caption(_off())


infos = store.runs()
shown = [r for r in infos if r.state == "reporting" or _has_results(store.run_dir(r.run_id))]
run_id = state.current_run_id()
if not shown and run_id is None:
    st.info("No finished run yet. Start one on the **Train** page: its density appears here seconds after "
            "training ends.")
    st.stop()
ids = [r.run_id for r in shown]
if run_id is not None and run_id not in ids:
    ids.insert(0, run_id)
labels = {r.run_id: f"{r.run_id} · {r.data_name} · {r.objective} · {r.state}" for r in shown}
chosen = st.selectbox("Run", ids, index=ids.index(run_id) if run_id in ids else 0,
                      format_func=lambda i: labels.get(i, i))
if chosen != run_id:
    state.set_run_id(chosen)
run = store.run_dir(chosen)
info = store.info(chosen)
may = access.control(store, chosen)
if info.demo:
    st.caption("Demo run (bundled, read-only)")
if (info.config or {}).get("manifold", "sphere") != "sphere":
    st.info(f"Run `{chosen}` is on the {info.config['manifold']}: this page shows sphere runs (lat/lon maps). "
            f"Score it with `python -m cnfm_core evaluate --run-dir {run.path}` and sample it with `sample`.")
    st.stop()
drawn = _signature(run, info.state)


def _stages(run: RunDir) -> list[dict]:
    try:
        stages = run.read_json(run.status).get("stages") if run.status.exists() else None
    except RunError:
        return []
    return [s for s in stages if isinstance(s, dict)] if isinstance(stages, list) else []


@st.fragment(run_every=2.0 if info.state in ACTIVE else None)
def watch() -> None:
    """The run's progress while it is busy; a full redraw when a result appears or the run ends."""
    now = store.info(chosen)
    if now.state == "reporting":
        stages = _stages(run)
        head, button = st.columns([3, 1], vertical_alignment="center")
        head.markdown("**Computing the results**: each appears on this page as soon as it is ready.")
        if _off():
            head.caption(_off())
        for col, s in zip(st.columns(max(1, len(stages))), stages, strict=False):
            fraction = float(s.get("fraction") or 0.0) if s.get("state") in ("running", "done") else 0.0
            col.progress(min(1.0, max(0.0, fraction)), text=progress.stage_text(s))
        if button.button("Cancel", key="cancel_report", disabled=_off() is not None,
                         help=_off() or "Keep what is ready and skip the rest; the exact test NLL can be computed "
                                        "later from this page, the path frames from the Path page.") and may.allowed:
            try:
                store.request_cancel(chosen)
                st.toast("Cancelling: the run keeps what is ready.")
            except RunError as e:
                st.toast(plain(e))
    elif now.state in ("queued", "running"):
        st.info(f"Run `{chosen}` is {now.state}; its density appears here seconds after training ends.")
    if _signature(run, now.state) != drawn:
        st.rerun()


watch()
if not run.density.exists():
    if info.state not in ACTIVE and run.checkpoint.exists() and not info.demo:
        # e.g. after Step: its results were for an older model and were removed; compute them for this one
        st.info(f"Run `{chosen}` has no results for its current model (step {info.step:,}); Step trains without "
                "computing them.")
        if st.button(f"Compute the results for step {info.step:,}", key="compute_results", type="primary",
                     disabled=_off() is not None,
                     help=_off() or "Runs in the background: a preview map first, then the exact test NLL, the path "
                                    "frames and the exact map."):
            _request_report()
        if _off():
            st.caption(_off())
    elif info.state not in ACTIVE:
        st.warning(f"Run `{chosen}` has no results ({info.state}). {plain(info.message)}".strip())
    st.stop()

try:
    report = run.read_json(run.report) if run.report.exists() else None
    split = run.read_split()
    with np.load(run.density, allow_pickle=False) as z:
        grid_lat, grid_lon, log_prob = z["lat"], z["lon"], z["log_prob"]
        true_log_prob = z["true_log_prob"] if "true_log_prob" in z.files else None
        preview = "preview" in z.files and bool(int(z["preview"]))
        grid_mass = float(z["grid_mass"]) if "grid_mass" in z.files else (report or {}).get("grid_mass")
except (RunError, OSError, ValueError, KeyError) as e:
    st.error(f"The results of this run cannot be read: {plain(e)}")
    st.stop()
try:
    samples = np.loadtxt(run.samples, delimiter=",", skiprows=1, ndmin=2)
except (OSError, ValueError):  # written just after the map; the next redraw has them
    samples = np.empty((0, 2))

land = figures.load_land()
test = PointSet(xyz=split["test"], lines=split["test_lines"], source="test split")
test_lat, test_lon = test.lat, test.lon


def _map_tab() -> None:
    active = info.state in ACTIVE
    title = f"Learned log-density: preview ({180 / len(grid_lat):.0f}° cells)" if preview else "Learned log-density"
    fig = figures.density_map(grid_lat, grid_lon, log_prob, land=land, title=title)
    st.plotly_chart(fig, use_container_width=True, key="density_map")
    if true_log_prob is not None:
        fig = figures.density_map(grid_lat, grid_lon, true_log_prob, land=land,
                                  title="True log-density (the synthetic data were drawn from it)")
        st.plotly_chart(fig, use_container_width=True, key="true_density_map")
    if grid_mass is not None and math.isfinite(grid_mass):
        st.caption(f"Total mass on the grid: {grid_mass:.3f} (a density integrates to 1)."
                   + (" A preview: coarse cells, likelihood by a fixed-step RK4 (within about 0.1 nats of the exact "
                      "value); the exact map replaces it when it is ready." if preview and active else ""))
    if preview and not active and report is not None:  # else the NLL's button above completes both
        _offer_report("The exact map", "Compute the exact map", key="compute_map",
                      hint="Runs in the background: the exact map, then the path frames if missing.")


def _globe_tab() -> None:
    deck = figures.globe(land=land, density=(grid_lat, grid_lon, log_prob))
    st.pydeck_chart(deck, height=520, key="density_globe")
    st.download_button("Density map (PNG)", on_click="ignore", icon=":material/download:", mime="image/png",
                       file_name=f"{chosen}-density.png", key="density_png",
                       data=lambda: export.density_png(grid_lat, grid_lon, log_prob, land=land,
                                                       title="Learned log-density", label="log density (nats)"))


def _points_tab() -> None:
    layers = [
        figures.PointLayer("generated samples", samples[:, 0], samples[:, 1], figures.SAMPLE_COLOR, 50_000),
        figures.PointLayer("test points", test_lat, test_lon, figures.TEST_COLOR, 50_000),
    ]
    st.markdown(figures.legend_html([("generated samples", figures.SAMPLE_COLOR),
                                     ("test points", figures.TEST_COLOR)]), unsafe_allow_html=True)
    st.pydeck_chart(figures.globe(land=land, point_layers=layers), height=520, key="points_globe")
    c_lat, c_lon = figures.view_centre(test_lat, test_lon) if len(test_lat) else (20.0, 0.0)
    st.download_button("Samples and test points (PNG)", on_click="ignore", icon=":material/download:",
                       mime="image/png", file_name=f"{chosen}-samples.png", key="points_png",
                       data=lambda: export.globe_png(
                           [export.GlobePoints(samples[:, 0], samples[:, 1], figures.SAMPLE_COLOR, "generated samples"),
                            export.GlobePoints(test_lat, test_lon, figures.TEST_COLOR, "test points")],
                           land=land, center_lat=c_lat, center_lon=c_lon, title="Samples against test points"))




def _nll_section() -> None:
    """The exact test NLL beside its baselines (or what stands in for it)."""
    st.subheader("Test NLL (nats; lower is better)")
    if report is None:
        nll_stage = next((s for s in _stages(run) if s.get("name") == "test_nll"), None)
        if info.state == "reporting" and nll_stage is not None and nll_stage.get("state") in ("pending", "running"):
            st.info("Computing the exact test NLL ... (its progress is shown above)")
        elif info.state not in ACTIVE:
            _offer_report("The exact test NLL", "Compute the exact test NLL", key="compute_report",
                          hint="Runs in the background: the exact NLL, then whatever else is missing.")
    else:
        rows = []
        if "test_nll" in report:
            rows.append(("This model (exact likelihood)", report["test_nll"], report.get("test_nll_sem")))
        if "kde_nll" in report:
            rows.append((f"vMF kernel density (κ = {report['kde_kappa']:.3g}, floor {report['kde_weight']})",
                         report["kde_nll"], report.get("kde_nll_sem")))
        if "true_nll" in report:
            rows.append(("True density (the best possible)", report["true_nll"], None))
        rows.append(("Uniform density (log 4π)", LOG_AREA, 0.0))
        cols = st.columns(len(rows))
        for col, (name, value, sem) in zip(cols, rows, strict=True):
            col.metric(name, f"{value:.3f}", help=f"± {sem:.3f} (standard error over test points)" if sem else None)
        if "test_nll" not in report:
            st.caption("This run has no test split (trained on every point).")
        else:
            st.caption(f"{report['n_test']} test points; likelihood by {report['solver']} with rtol "
                       f"{report['rtol']:g}, atol {report['atol']:g}. Objective {report['objective']}"
                       + (f" (ℓ = {report['ell']})" if report["objective"] == "ppd" else "")
                       + f", split {report['split']}.")


# Only the open tab is drawn (switching tabs reruns the page), so the first paint waits for no globe (deck.gl).
tabs = st.tabs(["Density map", "Density on the globe", "Samples vs test points"], key="results_tab",
               on_change="rerun")
for tab, draw in zip(tabs, (_map_tab, _globe_tab, _points_tab), strict=True):
    if tab.open:
        with tab:
            draw()

_nll_section()
chosen_from_data = state.auto_description(run)
if chosen_from_data:
    st.caption(f"Settings from the data: {chosen_from_data}")

def _density_csv() -> str:
    buf = io.StringIO()
    la, lo = np.meshgrid(grid_lat, grid_lon, indexing="ij")
    np.savetxt(buf, np.stack([la.ravel(), lo.ravel(), log_prob.ravel()], 1), fmt="%.4f", delimiter=",",
               header="lat,lon,log_density", comments="")
    return buf.getvalue()


st.subheader("Downloads")
c1, c2, c3, c4 = st.columns(4)
# Files are read or built only when their button is clicked, not on every rerun of the page.
c1.download_button("Samples (CSV)", run.samples.read_bytes, file_name=f"{chosen}-samples.csv", mime="text/csv",
                   on_click="ignore")
c2.download_button("Density grid (CSV)", _density_csv, file_name=f"{chosen}-density.csv", mime="text/csv",
                   on_click="ignore")
c3.download_button("Checkpoint (.pt)", run.checkpoint.read_bytes, file_name=f"{chosen}-checkpoint.pt",
                   on_click="ignore")
c4.download_button("Config (JSON)", lambda: json.dumps(run.read_json(run.config), indent=2),
                   file_name=f"{chosen}-config.json", mime="application/json", on_click="ignore")
