"""Path page: how uniform noise becomes the data, time step by time step.

It opens with one plain sentence; the maths (the target path's kernels, the continuity equation and the PPD
residual) is in expanders. Densities are drawn in the session's unit (``state.density_unit()``). For one run it
shows the target path ``p_t`` next to the model's path ``q_t`` as an animation that plays in
the browser (every frame on one colour scale), and at a time ``t`` chosen on a slider, samples of both,
particle trajectories and the PPD residual.
Everything comes from the run's ``frames.npz``; a run without it gets a button that queues a frames job
with the dashboard's job runner (a worker process, never the server). A bundled demo run (read-only, shown
until the user has a run of their own) brings its frames with it and is never given a job.
"""

import functools
import math
from collections.abc import Callable

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunError
from dashboard import figures, framesjob, state, units
from dashboard import pathfiles as pf
from dashboard.text import plain

#: Plotly's "download as PNG" button in the chart toolbar, at twice the screen resolution.
PLOTLY_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 2}}
#: The tabs at one time t. Only the open one is drawn (switching tabs reruns the fragment), so a visit to the
#: page draws no 3-D globe unless one is asked for: a globe costs the browser seconds without a GPU.
T_TABS = ("Samples", "Particle trajectories", "Where they disagree")

#: The residual map in plain words, beside the map.
RESIDUAL_PLAIN = """
As t moves on, the target path says how fast the density at each place should grow or shrink, and the
model's flow makes it grow or shrink by moving the dots. The map shows where the two disagree at this t:

* **Red:** the target grows faster than the flow brings dots there: the flow **under-supplies** this place.
* **Blue:** the flow brings **more** than the target wants there.
* **White:** they agree. Training pushes the whole map towards white, at every t.

Places where the target has almost nothing count little: the map is weighted by the target's density.
"""

#: The maths of the residual map, on demand.
RESIDUAL_TEXT = """
**What this map measures.** The target path $p_t$ says how much probability should be near each point
$x$ at time $t$, and the flow $v$ moves probability around. Probability is conserved, so the flow carries
the target path exactly when the *continuity equation* $\\partial_t p_t + \\operatorname{div}(p_t v) = 0$
holds. Divided by $p_t$, its left side is the **residual**

$$r(t, x) = \\partial_t \\log p_t(x) + \\langle \\nabla \\log p_t(x), v(t, x) \\rangle + \\operatorname{div} v(t, x).$$

The first term is the relative rate at which the target's density at $x$ grows; the other two, with the
opposite sign, are the relative rate at which the flow delivers mass to $x$. So $r$ is *the target's rate
minus the flow's rate*, and it is zero everywhere exactly when the flow moves mass the way the target
path changes.

Red is $r > 0$ (the flow under-supplies $x$), blue is $r < 0$ (it over-supplies $x$). The map shows
$p_t(x)\\,r(t, x)$: weighted by the target density, because the loss only looks where the
target has mass. The **PPD loss** (ℓ = 1) is the average of $|r|$ over points drawn from $p_t$, which is
the integral of $|p_t\\,r|$ over the sphere; training drives it towards zero at every $t$.
"""


# ---------------------------------------------------------------------------------------------
# The time control and everything that depends on t


def _download(col: DeltaGenerator, label: str, data: Callable[[], bytes], name: str, mime: str) -> None:
    """A download button whose file is rendered only when clicked (``data`` is a function)."""
    col.download_button(
        label,
        data=data,
        file_name=name,
        mime=mime,
        on_click="ignore",
        icon=":material/download:",
        key=f"path_dl_{label}",
    )


def _animation(path: str, mtime: float, start: int, objective: str, kernel: str, floor: float) -> None:
    """Both paths over every frame as one figure that plays in the browser (no rerun of the page per frame)."""
    f = pf.frames(path, mtime)
    unit = state.density_unit()
    fig = pf.animation_figure(path, mtime, start, objective, unit)
    st.plotly_chart(fig, key="path_animation", config=PLOTLY_CONFIG)
    lo, hi = pf.scale(f)
    st.caption(
        f"**Play** runs in your browser ({1000 // figures.FRAME_MS} frames a second) from t = 0, the "
        "noise, to t = 1, the data; drag the slider to go to any time. Both maps and every frame share one "
        f"colour scale, from {units.describe(lo, unit)} (or less) to {units.describe(hi, unit)}: a "
        "brighter colour always means more crowded."
    )
    with st.expander("How the target path is made (the maths)"):
        kernel_text = (
            "an adaptive kernel: each point's bump is κ(t) times its own factor, sharper where the data "
            "are dense and wider where they are sparse"
            if kernel == "adaptive"
            else "every bump has the same concentration κ(t)"
        )
        floor_text = (
            f" A share w = {floor:.0%} of the uniform density is mixed in at every t (the floor): "
            "p_t = (1 − w) · mixture + w / 4π."
            if floor > 0
            else ""
        )
        st.markdown(
            f"The target path p_t is a **kernel density**: a vMF bump (the sphere's bell curve) on every "
            f"training point, averaged, with {kernel_text}. The concentration grows from κ(0) = 0, where "
            f"every bump is flat and p_0 is uniform, to κ(1) = κ_max = {_number(f.kappa[-1])} at "
            f"t = 1.{floor_text} The {len(f.times)} frames are closer together in t where the target "
            "changes fastest. The target is drawn on a finer grid than the model: each of its cells shows "
            "the mean density over the cell. Words in bold are in the glossary (sidebar)."
        )


def _number(x: float) -> str:
    """A concentration or loss for a reader: 3,000 or 0.0123 (three significant digits); "–" when not finite."""
    x = float(x)
    if not math.isfinite(x):
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _view(f: pf.Frames) -> dict[str, float]:
    """Where a globe of the path faces: the target's samples at t = 1 (the data)."""
    view_lat, view_lon = figures.view_centre(f.target_samples[-1, :, 0], f.target_samples[-1, :, 1])
    return {"view_lat": view_lat, "view_lon": view_lon, "zoom": figures.globe_zoom(view_lat, 1.6)}


def _samples_tab(f: pf.Frames, k: int, path: str, mtime: float, land: dict) -> None:
    """Target and model samples at t: a flat world map (an image), or a globe on request."""
    st.markdown(
        figures.legend_html(
            [
                (f"target samples, p_t ({f.target_samples.shape[1]})", pf.TARGET_COLOR),
                (f"model samples, q_t ({f.model_samples.shape[1]})", pf.MODEL_COLOR),
            ]
        ),
        unsafe_allow_html=True,
    )
    on_globe = st.toggle("On the 3-D globe", key=state.PATH_SAMPLES_GLOBE,
                         help="A globe you can turn and zoom (it takes longer to draw than the flat map).")
    if on_globe:
        layers = [
            figures.PointLayer(
                "target samples", f.target_samples[k, :, 0], f.target_samples[k, :, 1], pf.TARGET_COLOR, 60_000
            ),
            figures.PointLayer(
                "model samples", f.model_samples[k, :, 0], f.model_samples[k, :, 1], pf.MODEL_COLOR, 60_000
            ),
        ]
        st.pydeck_chart(figures.globe(land=land, point_layers=layers, **_view(f)), height=460,
                        key="path_samples_globe")
        st.caption("Drag to turn the globe, scroll to zoom.")
    else:
        st.image(pf.samples_map_png(path, mtime, k), width="stretch")
        st.caption("The whole world on a flat map (longitude across, latitude up). Where the two colours "
                   "cover the same places, the model's dots are where the target's are.")


def _trajectories_tab(f: pf.Frames, k: int, land: dict) -> None:
    """Particles of the model's flow, each with its track from t = 0 to t, on a globe."""
    st.markdown(
        figures.legend_html([(f"{f.trajectories.shape[1]} particles of the model's flow at t", figures.SAMPLE_COLOR)]),
        unsafe_allow_html=True,
    )
    deck = figures.trajectories_globe(land, f.trajectories, k, **_view(f))
    st.pydeck_chart(deck, height=460, key="path_trajectories_globe")
    st.caption("Each line is one particle's track from t = 0 to this t. Drag to turn the globe, scroll to zoom.")


def _residual_tab(f: pf.Frames, k: int, land: dict, objective: str) -> None:
    """The PPD residual weighted by the target at t, as a map, in plain words, and its maths on demand."""
    t = float(f.times[k])
    if objective == "rfm":
        st.markdown("**What PPD would measure: its residual for this RFM model.** RFM did not train on this "
                    "residual; it shows where this flow and PPD's kernel path disagree.")
    else:
        st.markdown("**Where the flow and the target disagree: the PPD residual.**")
    st.markdown("Where the model's dots lag behind the target at this t (red) or run ahead of it (blue).")
    w = figures.weighted_residual(f.lat, f.lon, f.target_log_prob[k], f.residual[k])
    left, right = st.columns([3, 2])
    with left:
        fig = figures.residual_map(
            f.lat, f.lon, w.values, land=land, label="p_t · r", title=f"p_t(x) · r(t, x) at t = {t:.2f}"
        )
        st.plotly_chart(fig, key="path_residual_map", config=PLOTLY_CONFIG)
    with right:
        st.markdown(RESIDUAL_PLAIN)
        st.metric(
            "Mismatch at this t (PPD loss)",
            _number(w.mean_abs),
            help="The mean of |r| over the target p_t, which is the ℓ = 1 PPD loss at this t: "
            "Σ p_t |r| ΔA / Σ p_t ΔA over the grid cells, ΔA = Δlat · Δlon · cos(lat) in radians. "
            f"The target's mass on this grid is {w.mass:.3f} (1 for an exact quadrature).",
        )
    with st.expander("The maths: the continuity equation and the PPD residual"):
        st.markdown(RESIDUAL_TEXT)


def _path_view(run_id: str, path: str, mtime: float, floor: float, kernel: str, objective: str) -> None:
    """Everything at one time t: samples, trajectories, the residual and the downloads (a fragment)."""
    f = pf.frames(path, mtime)
    options = pf.times(f)
    k = state.current_frame(options)  # a shared link's ?t= picks the first frame shown; then the session's
    state.set_frame(k, options)  # the session's frame and the URL's ?t=
    t = options[k]
    key = state.PATH_SLIDER
    state.sync_widget(key, t)
    st.select_slider(
        "t",
        options,
        key=key,
        format_func=lambda v: f"{v:.2f}",
        on_change=state.slider_moved,
        args=(key, options),
        help="t = 0 is uniform noise, t = 1 the data.",
    )
    floor_text = (
        f" A share of {floor:.0%} of the target stays uniform at every t (its floor), so no place is "
        "left with zero density."
        if floor > 0
        else ""
    )
    st.caption(
        f"**t = {t:.2f}**: at t = 0 both paths are spread evenly over the sphere (noise); as t grows, the "
        "target gathers around the data points, and the model's flow has to carry its dots along."
        f"{floor_text}"
    )
    kappa_text = (
        f"The bumps of the target have concentration κ(t) = {_number(f.kappa[k])} at this t (a vMF "
        "kernel; the glossary says what κ means)."
        if kernel != "adaptive"
        else f"At this t the target's reference concentration κ(t) = {_number(f.kappa[k])} (adaptive "
        "kernel: each point's kernel is κ(t) times its own factor, sharper where the data are dense and "
        "wider where they are sparse)."
    )

    st.caption(kappa_text)

    land = figures.load_land()
    tabs = st.tabs(T_TABS, key=state.PATH_TAB, on_change="rerun")
    draw = (functools.partial(_samples_tab, f, k, path, mtime, land), functools.partial(_trajectories_tab, f, k, land),
            functools.partial(_residual_tab, f, k, land, objective))
    for tab, tab_draw in zip(tabs, draw, strict=True):
        if tab.open:
            with tab:
                tab_draw()

    st.subheader("Downloads")
    unit = state.density_unit()
    row = st.container(horizontal=True, key="path_downloads")  # the buttons wrap to the window's width
    at = f"t{t:.2f}"
    _download(
        row,
        "Target map (PNG)",
        functools.partial(pf.map_png, path, mtime, k, "target", unit),
        f"{run_id}-target-{at}.png",
        "image/png",
    )
    _download(
        row,
        "Model map (PNG)",
        functools.partial(pf.map_png, path, mtime, k, "model", unit),
        f"{run_id}-model-{at}.png",
        "image/png",
    )
    _download(
        row,
        "Residual map (PNG)",
        functools.partial(pf.map_png, path, mtime, k, "residual"),
        f"{run_id}-residual-{at}.png",
        "image/png",
    )
    _download(
        row,
        "Samples globe (PNG)",
        functools.partial(pf.samples_png, path, mtime, k),
        f"{run_id}-samples-{at}.png",
        "image/png",
    )
    _download(
        row,
        "p_t animation (GIF)",
        functools.partial(pf.path_gif, path, mtime, "target", unit),
        f"{run_id}-target-path.gif",
        "image/gif",
    )
    _download(
        row,
        "q_t animation (GIF)",
        functools.partial(pf.path_gif, path, mtime, "model", unit),
        f"{run_id}-model-path.gif",
        "image/gif",
    )
    st.caption(
        "Images are drawn when you click. The maps above also have a camera button (top right) for a PNG "
        "of the chart as shown."
    )


# ---------------------------------------------------------------------------------------------
# The page

st.title("How noise becomes data")
st.markdown("Watch dots scattered evenly over the globe (t = 0) flow, as time t runs to 1, into the shape of the data.")
with st.expander("What am I looking at?"):
    st.markdown(
        "Training asks the model's **flow** to follow a **target path** p_t: a film of densities that "
        "starts uniform and ends at the data. Here you see the target beside the model's own path q_t, "
        "the dots (particles) the flow moves, and where the two paths disagree (the **residual**). The "
        "words in bold are in the glossary in the sidebar."
    )

store = state.store()
runs = store.runs()
with_frames = [r.run_id for r in runs if store.run_dir(r.run_id).frames.exists()]
computable = [
    r.run_id
    for r in runs
    if r.run_id not in with_frames
    and r.state not in ACTIVE
    and not r.demo
    and store.run_dir(r.run_id).checkpoint.exists()
    and (r.config or {}).get("manifold", "sphere") == "sphere"
]
run_id = state.current_run_id()
ids = with_frames + computable
if run_id is not None and run_id not in ids:
    ids.insert(0, run_id)
if not with_frames:
    st.info(
        "No run has path frames yet. Train a run on the **Train** page: its frames are computed when it "
        "finishes. A run trained before that gets a **Compute frames** button here once it is chosen."
    )
if not ids:
    st.stop()
labels = {
    r.run_id: f"{r.run_id} · {r.data_name} · {r.objective}"
    + (" · demo" if r.demo else "")
    + ("" if r.run_id in with_frames else " · no frames yet")
    for r in runs
}
if run_id in ids:
    state.sync_widget("path_run", run_id)
chosen = st.selectbox("Run", ids, format_func=lambda i: labels.get(i, i), key="path_run")
if chosen != run_id:
    state.set_run_id(chosen)
run = store.run_dir(chosen)
chosen_info = store.info(chosen)
if chosen_info.demo:
    st.caption(
        "Demo run (bundled, read-only): trained with the default settings on "
        f"{chosen_info.data_name or 'bundled data'}. Train a run of your own on the **Train** page to see its "
        "path here." + (" Data: GeoNames, geonames.org (CC BY 4.0)." if chosen_info.data_name == "cities.csv" else "")
    )
manifold = (chosen_info.config or {}).get("manifold", "sphere")
if manifold != "sphere":
    st.info(f"Run `{chosen}` is on the {manifold}: path frames are lat/lon maps, drawn for sphere runs only.")
    st.stop()
if not run.frames.exists():
    framesjob.offer_frames(chosen, run)
    st.stop()
try:
    path, mtime = pf.frames_of(run)
    pf.frames(path, mtime)
except (RunError, OSError, ValueError, TypeError) as e:
    st.error(f"The path frames of this run cannot be read: {plain(e)}")
    st.stop()

floor, kernel, objective = pf.target(path)
st.subheader("The two paths from noise to data")
if objective == "rfm":
    st.info(pf.RFM_NOTE)
_animation(path, mtime, state.current_frame(pf.times(pf.frames(path, mtime))), objective, kernel, floor)
st.subheader("At one time t: samples, particles and the residual")
st.fragment(_path_view)(chosen, path, mtime, floor, kernel, objective)
