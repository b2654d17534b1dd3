"""Results page: the learned density (map and globe), samples against test points, NLL against baselines."""

import io
import json

import numpy as np
import streamlit as st

from cnfm_core.data import PointSet
from cnfm_core.geo import LOG_AREA
from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunError
from dashboard import export, figures, state

store = state.store()
st.title("Results")
finished = [r for r in store.runs() if store.run_dir(r.run_id).report.exists()]
run_id = state.current_run_id()
if not finished and run_id is None:
    st.info("No finished run yet. Start one on the **Train** page.")
    st.stop()
ids = [r.run_id for r in finished]
if run_id is not None and run_id not in ids:
    ids.insert(0, run_id)
labels = {r.run_id: f"{r.run_id} · {r.data_name} · {r.objective} · {r.state}" for r in finished}
chosen = st.selectbox("Run", ids, index=ids.index(run_id) if run_id in ids else 0,
                      format_func=lambda i: labels.get(i, i))
if chosen != run_id:
    state.set_run_id(chosen)
run = store.run_dir(chosen)
info = store.info(chosen)
if (info.config or {}).get("manifold", "sphere") != "sphere":
    st.info(f"Run `{chosen}` is on the {info.config['manifold']}: this page shows sphere runs (lat/lon maps). "
            f"Score it with `python -m cnfm_core evaluate --run-dir {run.path}` and sample it with `sample`.")
    st.stop()
if not run.report.exists():
    if info.state in ACTIVE:
        st.info(f"Run `{chosen}` is {info.state}; results appear here when it finishes.")
    else:
        st.warning(f"Run `{chosen}` has no results ({info.state}). {info.message}")
    st.stop()

try:
    report = run.read_json(run.report)
    split = run.read_split()
    with np.load(run.density, allow_pickle=False) as z:
        grid_lat, grid_lon, log_prob = z["lat"], z["lon"], z["log_prob"]
        true_log_prob = z["true_log_prob"] if "true_log_prob" in z.files else None
except (RunError, OSError, ValueError, KeyError) as e:
    st.error(f"The results of this run cannot be read: {e}")
    st.stop()
samples = np.loadtxt(run.samples, delimiter=",", skiprows=1, ndmin=2)

st.subheader("Test NLL (nats; lower is better)")
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
    st.caption(f"{report['n_test']} test points; likelihood by {report['solver']} with rtol {report['rtol']:g}, "
               f"atol {report['atol']:g}. Objective {report['objective']}"
               + (f" (ℓ = {report['ell']})" if report["objective"] == "ppd" else "") + f", split {report['split']}.")
chosen_from_data = state.auto_description(run)
if chosen_from_data:
    st.caption(f"Settings from the data: {chosen_from_data}")

land = figures.load_land()
test = PointSet(xyz=split["test"], lines=split["test_lines"], source="test split")
test_lat, test_lon = test.lat, test.lon
tab_map, tab_globe, tab_points = st.tabs(["Density map", "Density on the globe", "Samples vs test points"])
with tab_map:
    fig = figures.density_map(grid_lat, grid_lon, log_prob, land=land, title="Learned log-density")
    st.plotly_chart(fig, use_container_width=True, key="density_map")
    if true_log_prob is not None:
        fig = figures.density_map(grid_lat, grid_lon, true_log_prob, land=land,
                                  title="True log-density (the synthetic data were drawn from it)")
        st.plotly_chart(fig, use_container_width=True, key="true_density_map")
    st.caption(f"Total mass on the grid: {report.get('grid_mass', float('nan')):.3f} (a density integrates to 1).")
with tab_globe:
    deck = figures.globe(land=land, density=(grid_lat, grid_lon, log_prob))
    st.pydeck_chart(deck, height=520, key="density_globe")
    st.download_button("Density map (PNG)", on_click="ignore", icon=":material/download:", mime="image/png",
                       file_name=f"{chosen}-density.png", key="density_png",
                       data=lambda: export.density_png(grid_lat, grid_lon, log_prob, land=land,
                                                       title="Learned log-density", label="log density (nats)"))
with tab_points:
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
