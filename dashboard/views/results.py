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
"""

import io
import json
import math

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnfm_core.data import PointSet
from cnfm_core.geo import LOG_AREA
from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunDir, RunError
from dashboard import access, export, figures, progress, scores, state, units
from dashboard.figures import raster
from dashboard.figures.geometry import kde_cell_means, subsample
from dashboard.figures.globes import colorbar_html
from dashboard.figures.pointmaps import layers_map
from dashboard.text import plain

#: Two maps side by side while each gets at least this width (px), else one above the other.
MAP_MIN_WIDTH_PX = 440
#: Height of each of two maps side by side (px): a 2:1 map, its title and its colour bar.
PAIR_HEIGHT_PX = 290
#: The kernel-density map is drawn for training sets up to this size (its cost grows with it; about 1 s here
#: for 5,000 clustered points on the 90 x 180 grid).
KDE_MAP_MAX_POINTS = 20_000
#: Dots on the points globe: model samples, and test points (larger, with a white rim, drawn on top).
SAMPLE_RADIUS_M, TEST_RADIUS_M = 55_000.0, 70_000.0
#: The globes: height (px) and zoom (at the equator; :func:`figures.globe_zoom` keeps the size elsewhere); the
#: points globe and flat map side by side while each gets at least VIEW_MIN_WIDTH_PX, the flat map's likely width.
VIEW_HEIGHT_PX, GLOBE_ZOOM, VIEW_MIN_WIDTH_PX, VIEW_WIDTH_HINT_PX = 520, 1.6, 420, 470
WHITE = [255, 255, 255, 255]
#: Display widths (px) the map pictures are drawn for: one map across the page, or one of two side by side
#: (each is stretched to its column; drawn at twice the pixels, so they stay sharp on projectors).
SINGLE_IMAGE_WIDTH_PX, PAIR_IMAGE_WIDTH_PX = 940, 470
NLL_TEXT = """
The **test NLL** (negative log-likelihood) of a density $q$ is the average over the $n$ test points of
$-\\log q(x_i)$, in nats, with $q$ a density per steradian on the unit sphere. Lower is better: the test points
are more probable under $q$.

A difference of $\\Delta$ nats between two densities $q$ and $p$,
$\\Delta = \\mathrm{NLL}_p - \\mathrm{NLL}_q$, means the test points are
$e^{\\Delta} = \\left(\\prod_i q(x_i) / p(x_i)\\right)^{1/n}$ times as likely under $q$: a geometric mean over the
points. The uniform density gives every point $1 / 4\\pi$, so its NLL is $\\log 4\\pi \\approx 2.531$; a
model must beat it to have learned anything. The kernel density baseline is
$p(x) = (1 - w)\\,\\frac{1}{N} \\sum_j \\mathrm{vMF}(x; y_j, \\kappa) + w / 4\\pi$ over the $N$ training points
$y_j$. The model's likelihood is exact: the change of variables along the flow, solved by an adaptive ODE solver.
"""

store, runner = state.store(), state.runner()
st.title("Results")
st.markdown(
    "How well the trained model fits the data: its density beside the truth (or a simple baseline), its "
    "samples beside test points it never saw, and its score on those points."
)


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
if info.demo:
    st.caption("Demo run (bundled, read-only)")
if (info.config or {}).get("manifold", "sphere") != "sphere":
    st.info(
        f"Run `{chosen}` is on the {info.config['manifold']}: this page shows sphere runs (lat/lon maps). "
        f"Score it with `python -m cnfm_core evaluate --run-dir {run.path}` and sample it with `sample`."
    )
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
        if (
            button.button(
                "Cancel",
                key="cancel_report",
                disabled=_off() is not None,
                help=_off()
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
    if _signature(run, now.state) != drawn:
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
            disabled=_off() is not None,
            help=_off()
            or "Runs in the background: a preview map first, then the exact test NLL, the path "
            "frames and the exact map.",
        ):
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
        kde_grid = z["kde_log_prob"] if "kde_log_prob" in z.files else None  # if a report stage wrote it
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
coast = figures.land_lines(land)
test = PointSet(xyz=split["test"], lines=split["test_lines"], source="test split")
test_lat, test_lon = test.lat, test.lon


@st.cache_data(max_entries=8, show_spinner="Drawing the kernel density on the map ...")
def _kde_map(
    split_path: str, mtime: float, kappa: float, weight: float, lat: tuple[float, ...], lon: tuple[float, ...]
) -> np.ndarray:
    """The run's kernel-density baseline as cell means on the density grid (cached per split file)."""
    with np.load(split_path, allow_pickle=False) as z:
        train = np.asarray(z["train"], dtype=np.float64)
    return kde_cell_means(np.array(lat), np.array(lon), train, kappa, weight)


def _reference() -> tuple[str, str, np.ndarray] | None:
    """What the learned density is drawn beside: ``(title, element key, log density on the grid)``, the truth
    when the data have a known density, else the kernel-density baseline (from density.npz when a report stage
    wrote it there, else drawn here when the report has its κ and floor and the training set is not too large),
    else None."""
    if true_log_prob is not None:
        return "True density", "true_density_map", np.asarray(true_log_prob, dtype=np.float64)
    if kde_grid is not None and kde_grid.shape == log_prob.shape:
        return "Kernel density (the baseline)", "kde_density_map", np.asarray(kde_grid, dtype=np.float64)
    kappa, weight = (report or {}).get("kde_kappa"), (report or {}).get("kde_weight")
    if not (isinstance(kappa, int | float) and isinstance(weight, int | float) and kappa > 0 and 0 <= weight < 1):
        return None
    n_train = (report or {}).get("n_train")
    if not isinstance(n_train, int) or not 0 < n_train <= KDE_MAP_MAX_POINTS or not run.split.exists():
        return None
    try:
        values = _kde_map(
            str(run.split),
            run.split.stat().st_mtime,
            float(kappa),
            float(weight),
            tuple(grid_lat.tolist()),
            tuple(grid_lon.tolist()),
        )
    except (OSError, ValueError, KeyError):
        return None
    return "Kernel density (the baseline)", "kde_density_map", values


def _row(key: str, min_px: int) -> DeltaGenerator:
    """A row of containers that share the width, and wrap onto more rows when it is narrower than ``min_px``
    each (Streamlit stretches the children of a horizontal container without a lower bound)."""
    st.html(f"<style>.st-key-{key} > div {{ flex: 1 1 {min_px}px; min-width: {min_px}px; }}</style>")
    return st.container(horizontal=True, gap="medium", key=key)


@st.cache_data(max_entries=16, show_spinner=False)
def _map_png(path: str, mtime: float, which: str, unit: str, zrange: tuple[float, float], width: int,
             _values: np.ndarray) -> bytes:
    """The PNG of one density map of a run (cached per density file, map, unit, range and width)."""
    scale = units.colour_scale(unit, *zrange)
    ticks = list(zip(scale.tickvals, scale.ticktext, strict=True)) if scale.tickvals and scale.ticktext else None
    return raster.density_image(grid_lat, grid_lon, units.colour_values(_values, unit), coast=coast,
                                vmin=scale.zmin, vmax=scale.zmax, label=scale.title, ticks=ticks, width=width).png


def _map(values: np.ndarray, title: str, key: str, zrange: tuple[float, float], height: int | None,
         interactive: bool) -> None:
    """One density map: a picture (drawn by the browser at once), or with ``interactive`` a plotly chart (hover
    values, zoom; its first view loads plotly, 2-5 s)."""
    if not interactive:
        with st.container(key=key):
            st.markdown(f"**{title}**")
            png = _map_png(str(run.density), run.density.stat().st_mtime, key, unit, zrange,
                           PAIR_IMAGE_WIDTH_PX if height is not None else SINGLE_IMAGE_WIDTH_PX, values)
            st.image(png, width="stretch")
        return
    fig = figures.density_map(
        grid_lat, grid_lon, values, land=land, title=title, zmin=zrange[0], zmax=zrange[1], unit=unit
    )
    fig.update_traces(selector={"type": "heatmap"}, colorbar={"thickness": 14})
    if height is not None:
        fig.update_layout(height=height)
    st.plotly_chart(fig, width="stretch", key=key)


reference = _reference()
zrange = figures.shared_log_range(log_prob, *([reference[2]] if reference else []))
unit = state.density_unit()


def _colour_bar(name: str) -> str:
    """The globe's colour bar: the maps' range ``zrange`` in the session's unit."""
    if unit == "times":
        scale = units.colour_scale(unit, *zrange)
        return colorbar_html(
            scale.zmin,
            scale.zmax,
            f"{name}: density, times uniform (the colour scale of the maps)",
            ticks=(scale.tickvals or (), scale.ticktext or ()),
            ends=(units.ratio_label(scale.zmin), units.ratio_label(scale.zmax)),
        )
    return colorbar_html(*zrange, f"{name}: log density in nats (the colour scale of the maps)")


def _density_png(values: np.ndarray, title: str) -> bytes:
    """A PNG of a density map on the maps' range, in the session's unit."""
    lo, hi = (float(units.colour_values(np.array(v), unit)) for v in zrange)
    label = "density, log10 of × uniform (0: ×1, 1: ×10)" if unit == "times" else "log density (nats)"
    return export.density_png(
        grid_lat, grid_lon, units.colour_values(values, unit), land=land, title=title, vmin=lo, vmax=hi, label=label
    )


def _map_tab() -> None:
    active = info.state in ACTIVE
    interactive = st.toggle("Interactive maps", key="interactive_maps",
                            help="On: hover a map for its values, drag to zoom (the first time, the browser loads a "
                                 "chart library for a few seconds). Off: pictures, shown at once.")
    title = f"Learned density: preview ({180 / len(grid_lat):.0f}° cells)" if preview else "Learned density"
    if reference is None:
        _map(log_prob, title, "density_map", zrange, None, interactive)
    else:
        row = _row("results_maps", MAP_MIN_WIDTH_PX)
        with row.container(key="results_learned"):
            _map(log_prob, title, "density_map", zrange, PAIR_HEIGHT_PX, interactive)
        with row.container(key="results_reference"):
            _map(reference[2], reference[0], reference[1], zrange, PAIR_HEIGHT_PX, interactive)
    shared = (
        f"{'Both maps share' if reference else 'The map has'} one colour scale, from "
        f"{units.describe(zrange[0], unit)} (or less) to {units.describe(zrange[1], unit)}: a brighter colour "
        "means more crowded."
    )
    known = {
        "true_density_map": " The synthetic data were drawn from the true density.",
        "kde_density_map": " The baseline puts a small bump of probability on every training point; the map "
        "shows its mean over each cell, so that bumps narrower than a cell still show.",
    }
    st.caption(shared + (known[reference[1]] if reference else ""))
    if grid_mass is not None and math.isfinite(grid_mass):
        st.caption(
            f"Total mass on the grid: {grid_mass:.3f} (a density integrates to 1)."
            + (
                " A preview: coarse cells, likelihood by a fixed-step RK4 (within about 0.1 nats of the exact "
                "value); the exact map replaces it when it is ready."
                if preview and active
                else ""
            )
        )
    if preview and not active and report is not None:  # else the NLL's button above completes both
        _offer_report(
            "The exact map",
            "Compute the exact map",
            key="compute_map",
            hint="Runs in the background: the exact map, then the path frames if missing.",
        )


def _globe_tab() -> None:
    names = {"Learned": (log_prob, "Learned density")}
    if reference is not None:
        names[reference[0].split(" ")[0] if reference[1] == "true_density_map" else "Kernel density"] = (
            reference[2],
            reference[0],
        )
    shown = (
        st.radio(
            "Density on the globe", list(names), horizontal=True, key="globe_density", label_visibility="collapsed"
        )
        if len(names) > 1
        else "Learned"
    )
    values, label = names.get(shown or "Learned", names["Learned"])
    st.markdown(_colour_bar(label), unsafe_allow_html=True)
    c_lat, c_lon = figures.view_centre(test_lat, test_lon) if len(test_lat) else (20.0, 0.0)
    deck = figures.globe(
        land=land,
        density=(grid_lat, grid_lon, values),
        density_range=zrange,
        view_lat=c_lat,
        view_lon=c_lon,
        zoom=figures.globe_zoom(c_lat, GLOBE_ZOOM),
        height=VIEW_HEIGHT_PX,
    )
    st.pydeck_chart(deck, height=VIEW_HEIGHT_PX, key="density_globe")
    st.download_button(
        "Density map (PNG)",
        on_click="ignore",
        icon=":material/download:",
        mime="image/png",
        file_name=f"{chosen}-density.png",
        key="density_png",
        data=lambda: _density_png(values, label),
    )


def _points_tab() -> None:
    toggles = st.container(horizontal=True, gap="medium")
    show_samples = toggles.toggle("Model samples", value=True, key="show_samples")
    show_test = toggles.toggle("Test points", value=True, key="show_test")
    every = toggles.toggle(
        "Every point",
        value=False,
        key="every_point",
        help="Off: as many samples as test points (a random subset of the larger set), so that "
        "neither looks denser only because it has more points.",
    )
    equal = min(len(samples), len(test_lat)) if len(test_lat) and len(samples) else max(len(samples), len(test_lat))
    s_idx = subsample(len(samples), len(samples) if every else equal, seed=0)
    t_idx = subsample(len(test_lat), len(test_lat) if every else equal, seed=1)
    sets = []
    if show_samples:
        sets.append(
            figures.PointLayer(
                f"model samples ({len(s_idx):,} of {len(samples):,})",
                samples[s_idx, 0],
                samples[s_idx, 1],
                figures.SAMPLE_COLOR,
                SAMPLE_RADIUS_M,
                len(s_idx),
                min_pixels=2.0,
            )
        )
    if show_test:
        sets.append(
            figures.PointLayer(
                f"test points ({len(t_idx):,} of {len(test_lat):,})",
                test_lat[t_idx],
                test_lon[t_idx],
                figures.TEST_COLOR,
                TEST_RADIUS_M,
                len(t_idx),
                outline=WHITE,
                min_pixels=3.0,
            )
        )
    st.markdown(
        figures.legend_html([(p.name, p.color) for p in sets]) if sets else "Nothing shown: turn on a set above.",
        unsafe_allow_html=bool(sets),
    )
    c_lat, c_lon = figures.view_centre(test_lat, test_lon) if len(test_lat) else (20.0, 0.0)
    row = _row("results_points", VIEW_MIN_WIDTH_PX)
    with row.container(key="results_points_globe"):
        st.pydeck_chart(
            figures.globe(
                land=land,
                point_layers=sets,
                view_lat=c_lat,
                view_lon=c_lon,
                zoom=figures.globe_zoom(c_lat, GLOBE_ZOOM),
                height=VIEW_HEIGHT_PX,
            ),
            height=VIEW_HEIGHT_PX,
            key="points_globe",
        )
    with row.container(key="results_points_flat"):
        flat = layers_map(sets, land=land, height=VIEW_HEIGHT_PX, width_hint=VIEW_WIDTH_HINT_PX)
        st.plotly_chart(flat, key="points_map", config={"displaylogo": False})
    st.caption(
        "Where the model puts its samples should match where the test points lie. Test points are drawn on "
        "top, larger and rimmed in white. Drag to turn the globe, scroll to zoom; the flat map shows the "
        "whole world at once."
    )
    st.download_button(
        "Samples and test points (PNG)",
        on_click="ignore",
        icon=":material/download:",
        mime="image/png",
        file_name=f"{chosen}-samples.png",
        key="points_png",
        data=lambda: export.globe_png(
            [export.GlobePoints(p.lat, p.lon, p.color, p.name) for p in sets],
            land=land,
            center_lat=c_lat,
            center_lon=c_lon,
            title="Samples against test points",
        ),
    )


def _kappa_text(kappa: float) -> str:
    """``17782.79 -> "17,783"``, ``316.23 -> "316"``, ``2.5 -> "2.5"``."""
    return f"{kappa:,.0f}" if kappa >= 100 else f"{kappa:.3g}"


def _nll_section() -> None:
    """The exact test NLL beside its baselines (or what stands in for it), one sentence that reads it, and how
    the numbers are computed (an expander)."""
    st.subheader("Score on the test points (NLL in nats; lower is better)")
    if report is None:
        nll_stage = next((s for s in _stages(run) if s.get("name") == "test_nll"), None)
        if info.state == "reporting" and nll_stage is not None and nll_stage.get("state") in ("pending", "running"):
            st.info("Computing the exact test NLL ... (its progress is shown above)")
        elif info.state not in ACTIVE:
            _offer_report(
                "The exact test NLL",
                "Compute the exact test NLL",
                key="compute_report",
                hint="Runs in the background: the exact NLL, then whatever else is missing.",
            )
        return
    rows = []
    if "test_nll" in report:
        rows.append(("This model (exact likelihood)", report["test_nll"], report.get("test_nll_sem")))
    if "kde_nll" in report:
        rows.append(("Kernel density (baseline)", report["kde_nll"], report.get("kde_nll_sem")))
    if "true_nll" in report:
        rows.append(("True density (the best possible)", report["true_nll"], None))
    rows.append(("Uniform density (log 4π)", LOG_AREA, 0.0))
    tiles = _row("results_scores", 170)
    for name, value, sem in rows:
        tiles.container().metric(
            name,
            f"{value:.3f}".replace("-", "−"),
            help=f"± {sem:.3f} (standard error over the test points)" if sem else None,
        )
    sentence = scores.nll_sentence(report)
    if sentence:
        st.markdown(sentence)
    else:
        st.caption("This run has no test split (trained on every point).")
    with st.expander("How these numbers are computed"):
        st.markdown(NLL_TEXT)
        if "test_nll" in report:
            st.caption(
                f"{report['n_test']:,} test points; likelihood by {report['solver']} with rtol "
                f"{report['rtol']:g}, atol {report['atol']:g}. Objective {report['objective']}"
                + (f" (ℓ = {report['ell']})" if report["objective"] == "ppd" else "")
                + f", split {report['split']}."
            )
        if "kde_nll" in report:
            kappa = _kappa_text(report["kde_kappa"])
            st.caption(
                f"Kernel density: von Mises–Fisher kernels with κ = {kappa} and a uniform floor of weight "
                f"w = {report['kde_weight']:g}, both chosen on the validation points."
            )
        chosen_from_data = state.auto_description(run)
        if chosen_from_data:
            st.caption(f"Settings from the data: {chosen_from_data}")


# Only the open tab is drawn (switching tabs reruns the page), so the first paint waits for no globe (deck.gl).
tabs = st.tabs(["Density map", "Density on the globe", "Samples vs test points"], key="results_tab", on_change="rerun")
for tab, draw in zip(tabs, (_map_tab, _globe_tab, _points_tab), strict=True):
    if tab.open:
        with tab:
            draw()

_nll_section()


def _density_csv() -> str:
    buf = io.StringIO()
    la, lo = np.meshgrid(grid_lat, grid_lon, indexing="ij")
    np.savetxt(
        buf,
        np.stack([la.ravel(), lo.ravel(), log_prob.ravel()], 1),
        fmt="%.4f",
        delimiter=",",
        header="lat,lon,log_density",
        comments="",
    )
    return buf.getvalue()


st.subheader("Downloads")
files = st.container(horizontal=True, gap="small")
# Files are read or built only when their button is clicked, not on every rerun of the page.
files.download_button(
    "Samples (CSV)", run.samples.read_bytes, file_name=f"{chosen}-samples.csv", mime="text/csv", on_click="ignore"
)
files.download_button(
    "Density grid (CSV)", _density_csv, file_name=f"{chosen}-density.csv", mime="text/csv", on_click="ignore"
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
