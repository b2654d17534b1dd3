"""Train page: choose the objective and a few knobs, start/stop/resume/step a background run, watch it learn.

It opens with one plain sentence; what the settings mean in the maths is in an expander, and every term has a
help text from the glossary (``dashboard/glossary.py``). The live picture is drawn in the session's density
unit (``state.density_unit()``).

Anyone may start a run; stopping, resuming and stepping one is for its owner and the teacher
(``dashboard/access.py``); a button this session may not use is off, with the reason. What the page shows of the run
below the form (its buttons, its state in words, the live picture) is drawn by ``dashboard/trainrun.py``.

While a run trains, the page redraws every 2 s: the loss and validation curves beside the live picture of the
model (``live.npz``, written by the worker every few seconds), so a class watches the blobs form.
"""

import dataclasses
import math

import streamlit as st

from cnfm_core import owners
from cnfm_core.config import KAPPA_CAP, KAPPA_MIN, TrainConfig
from cnfm_core.geo import LOG_AREA
from cnfm_core.jobs import ACTIVE, RunInfo
from cnfm_core.runs import RunDir, RunError
from dashboard import access, figures, glossary, progress, state, trainrun
from dashboard.text import plain
from dashboard.trainrun import STEP

OBJECTIVES = {
    "ppd1": ("PPD, ℓ = 1", "ppd", 1),
    "ppd2": ("PPD, ℓ = 2", "ppd", 2),
    "rfm": ("RFM (flow matching baseline)", "rfm", 1),
}
SIZES = {"small": 64, "medium": 128, "large": 256}
KAPPAS = ["auto", "100", "300", "1000", "3000", "10000", "30000", "100000", "300000"]
SPLITS = {"standard": "standard", "dedup": "deduplicated", "none": "none (all points)"}
#: The settings in the maths, on demand below the form.
SETTINGS_MATHS = f"""
* **Objective.** The model is a *flow*: a velocity field $v(t, x)$ on the sphere that carries uniform noise at
  $t = 0$ to the data at $t = 1$. **PPD** (Probability Path Divergence) asks the flow to follow a target path
  $p_t$ of kernel densities by making the continuity-equation residual
  $r = \\partial_t \\log p_t + \\langle \\nabla \\log p_t, v \\rangle + \\operatorname{{div}} v$ small:
  the loss is the mean of $|r|^\\ell$ over $t$ and $x \\sim p_t$, with $\\ell = 1$ or $2$ (the Path page shows
  $r$). No ODE is solved while training. **RFM** (Riemannian flow matching, the baseline) regresses $v$ onto
  the velocity of great-circle paths from uniform noise to the data.
* **Model size.** The hidden width of the network (3 layers): small 64, medium 128, large 256.
* **Target sharpness κ_max.** The target at $t = 1$ puts a von Mises–Fisher (vMF) bump
  $\\propto e^{{\\kappa\\, \\mu \\cdot x}}$ on every training point; κ grows from 0 at $t = 0$ (uniform) to
  κ_max, and a bump's width is about $1/\\sqrt{{\\kappa}}$ radians. **auto** reads κ_max off the kernel density that
  best fits the validation points (the highest validation likelihood): clustered data get a sharper target and
  Fourier features of the point as the network's input; smooth data get {KAPPA_MIN:,.0f}. Bumps sharper than
  {KAPPA_CAP:,.0f} (narrower than about 10 km on the Earth) are more than a network can draw: the flow then adds
  the network to the target's own field, which moves every bump to its point exactly. Where clusters differ in
  width by orders of magnitude, each point gets its own bump width (from its nearest neighbours).
* **Split.** *standard*: a random 80 % of the points train, 10 % validate and 10 % test, as in the RFM
  benchmarks (the seed draws them); *deduplicated*: the same over the distinct points, each repeated point counted
  once, so no test point is also a training point; *none*: every point trains (no validation or test score).
* **Scores.** The validation and test NLL (negative log-likelihood, in nats) is the mean of $-\\log q(x)$ over
  held-out points; the uniform density scores $\\log 4\\pi \\approx {LOG_AREA:.2f}$.
"""
#: Every run started here trains at least this many steps, even past its time (see docs/defaults.md: on the
#: bundled mixture, 300 steps of the defaults reach test NLL 0.42 with all six blobs; the truth scores 0.33).
MIN_STEPS = 300


def step_blocked(info: RunInfo | None, run: RunDir | None, may: owners.Access | None = None) -> str | None:
    """Why Step cannot continue the selected run now (None: it can, or there is no run and Step makes one)."""
    if info is None or run is None:
        return None
    if getattr(info, "demo", False):
        return "Step is off for a bundled demo run (read-only): start a run of your own first."
    if may is not None and not may.allowed:
        return "Step is off: only this run's owner or the teacher may change it (see below)."
    if info.state in ACTIVE:
        return (
            f"Step is off while this run is busy ({info.state} when this page was drawn): it continues the "
            "run once it has finished."
        )
    if not run.checkpoint.exists():
        return "Step continues the selected run, and this one has no trained model: press Start training."
    return None


ds = state.current_dataset()
store, runner = state.store(), state.runner()
st.title("Train a flow")
st.markdown(
    "Teach a model to turn dots scattered evenly over the globe into the shape of your data: choose a few "
    "settings, press **Start training**, and watch its map fill in."
)
st.caption(f"Data set: **{ds.label}** (change it on the Data page). Device: **{state.device_label()}**.")

current = state.current_run_id(demo=False)
current_info = store.info(current) if current else None
blocked = step_blocked(
    current_info, store.run_dir(current) if current else None, access.control(store, current) if current else None
)

choice = state.train_settings({"obj": list(OBJECTIVES), "size": list(SIZES), "kappa": KAPPAS, "split": list(SPLITS)})
with st.form("settings"):
    c1, c2, c3 = st.columns(3)
    objective = c1.radio(
        "Objective",
        list(OBJECTIVES),
        index=list(OBJECTIVES).index(choice["obj"]),
        format_func=lambda k: OBJECTIVES[k][0],
        help=f"How the model is taught. **PPD**: {glossary.explain('PPD')} **ℓ**: {glossary.explain('ℓ')} "
        f"**RFM**: {glossary.explain('RFM')}",
    )
    size = c2.select_slider(
        "Model size",
        list(SIZES),
        value=choice["size"],
        help="How big the network is: larger models can learn finer shapes but take longer per step.",
    )
    kappa = c3.select_slider(
        "Target sharpness (κ_max)",
        KAPPAS,
        value=choice["kappa"],
        format_func=lambda k: k if k == "auto" else f"{int(k):,}",
        help="How tightly the target hugs each data point at the end: larger shows finer "
        "detail and is harder to learn. **auto** picks it from your data.",
    )
    c1, c2, c3 = st.columns(3)
    minutes_default, seed_default = float(choice["minutes"]), int(choice["seed"])  # checked by train_settings
    minutes = c1.number_input(
        "Training time (minutes)",
        min_value=0.1,
        max_value=600.0,
        value=minutes_default,
        step=0.25,
        help=f"The run trains this long, and on past it until at least "
        f"{MIN_STEPS} steps are done. The default, 45 s, is where the "
        "bundled mixture stops improving; real data sets keep improving "
        "for many minutes.",
    )
    seed = c2.number_input(
        "Seed",
        min_value=0,
        max_value=2**31 - 1,
        value=seed_default,
        step=1,
        help="The starting point of the random numbers: the same seed and settings give the same run.",
    )
    split = c3.selectbox(
        "Split",
        list(SPLITS),
        index=list(SPLITS).index(choice["split"]),
        format_func=lambda k: SPLITS[k],
        help=glossary.explain("split"),
    )
    st.caption(
        f"**Budget:** a run trains for the time you choose, and keeps going past it until it has done at "
        f"least {MIN_STEPS} steps, so a busy machine still ends with a recognisable density (it then "
        f"takes longer, and the page says how much)."
    )
    b1, b2, _ = st.columns([2, 2, 1])
    start = b1.form_submit_button("Start training", type="primary")
    step = b2.form_submit_button(
        f"Step (+{STEP} steps)",
        disabled=blocked is not None,
        help=blocked
        or f"Train the selected run {STEP} steps more and redraw its picture "
        "(with no run selected, the first Step starts one).",
    )
    if blocked:
        st.caption(blocked)
with st.expander("What the settings mean (the maths)"):
    st.markdown(SETTINGS_MATHS)

if start or step:
    state.set_train_settings(
        {"obj": objective, "size": size, "kappa": kappa, "minutes": minutes, "seed": seed, "split": split}
    )
    _, obj, ell = OBJECTIVES[objective]
    config = TrainConfig(
        data=str(ds.path),
        objective=obj,
        ell=ell,
        hidden=SIZES[size],
        kappa_max=None if kappa == "auto" else float(kappa),
        minutes=float(minutes),
        min_steps=MIN_STEPS,
        seed=int(seed),
        split=split,
        eval_every=500,
    )
    run_id, key, pending = current, owners.new_key(), access.pending_start(store)
    try:
        if (start or current is None) and pending:  # a repeated Start: the last one has not begun yet
            raise RunError(
                f"your last run {pending} has not begun training yet, so this Start made no second "
                "run (stop that one first to start again with other settings)"
            )
        if start:
            run_id = store.create(config, name=ds.path.stem, owner_key=key)
            access.remember(run_id, key)
        elif current is None:  # the very first Step makes the run
            config.minutes, config.min_steps, config.steps = None, None, STEP
            run_id = store.create(config, name=ds.path.stem, quick=True, owner_key=key)
            access.remember(run_id, key)
        elif blocked:  # the form was sent before the run became busy or was someone else's
            raise RunError(blocked)
        else:
            info = store.info(current)
            store.request_resume(current, steps=info.step + STEP, quick=True)
        runner.poll()
        state.set_run_id(run_id)
        st.rerun()  # draw the form again for the run's new state (Step is off while it is busy)
    except (RunError, ValueError, OSError) as e:  # OSError: the run folder could not be written (disk full?)
        st.error(f"Could not {'start' if start else 'step'}: {plain(e)}")

run_id = state.current_run_id(demo=False)
if run_id is None:
    st.info(
        "No run yet: choose settings and press **Start training** (or **Step** to train 50 steps at a time). "
        "Runs started here keep going in the background; the link in your address bar brings you back."
    )
    st.stop()

was_active = store.info(run_id).state in ACTIVE


@st.fragment(run_every=2.0 if was_active else None)
def live() -> None:
    runner.poll()
    info = store.info(run_id)
    run = store.run_dir(run_id)
    st.subheader(f"Run `{run_id}`")
    if getattr(info, "demo", False):
        st.caption("Demo run (bundled, read-only)")
    elif access.run_key(run_id):
        st.caption(
            "Your run: the address in your browser is its **control link** (it holds `key=`); keep it to "
            "stop or resume the run after a reload, and share only the run id to let others watch."
        )
    snapshot = trainrun.read_live(run)
    if info.state == "running" and snapshot is not None and "step" in snapshot:  # newer than the status file
        info = dataclasses.replace(info, step=max(info.step, int(snapshot["step"])))
    metrics = run.read_metrics()
    rate = progress.steps_per_s(metrics)
    val_nll = progress.latest_val_nll(metrics)
    cols = st.columns(4)
    trainrun.controls(info, run, cols[0], run_id=run_id, store=store, runner=runner)
    cols[1].metric("Step", f"{info.step:,}")
    cols[2].metric("Steps / s", f"{rate:.1f}" if rate and info.state == "running" else "–")
    cols[3].metric(
        "Validation NLL",
        f"{val_nll:.2f}" if val_nll is not None and math.isfinite(val_nll) else "–",
        help=glossary.explain("NLL"),
    )
    trainrun.status_line(info, run, rate, st.container(), run_id=run_id, runner=runner)
    if info.state in ("done", "stopped") and progress.near_uniform(val_nll):
        st.warning(
            f"The model is still close to uniform (validation NLL {val_nll:.2f}; uniform scores "
            f"{LOG_AREA:.2f}): train it longer with **Resume**, or try a smaller κ_max."
        )
    chosen, used = state.auto_description(run), state.run_device(run)
    if chosen or used:
        with st.expander("Settings of this run" + (" (some read off the data)" if chosen else "")):
            if chosen:
                st.caption(f"Settings from the data: {plain(chosen)}")
            if used:
                st.caption(f"Device of this run: **{used}**.")
    left, right = st.columns([2, 3])  # the picture gets the room: a map is twice as wide as tall
    with left:
        st.plotly_chart(figures.curves(metrics), use_container_width=True, key="curves")
    with right:
        trainrun.picture(info, run, snapshot)
    if was_active and info.state not in ACTIVE:
        st.rerun()  # the run ended: a full rerun turns polling off and lets Step in again


live()

others = [r for r in store.runs() if r.state in ACTIVE and r.run_id != run_id]
if others:
    st.caption("Other runs in progress or waiting: " + ", ".join(f"`{r.run_id}` ({r.state})" for r in others))
