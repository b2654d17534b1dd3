"""Train page: choose the objective and a few knobs, start/stop/resume a background run, watch it learn."""

import math

import streamlit as st

from cnfm_core.config import KAPPA_CAP, KAPPA_MIN, TrainConfig
from cnfm_core.jobs import ACTIVE
from cnfm_core.runs import RunError
from dashboard import figures, state

OBJECTIVES = {"ppd1": ("PPD, ℓ = 1", "ppd", 1), "ppd2": ("PPD, ℓ = 2", "ppd", 2),
              "rfm": ("RFM (flow matching baseline)", "rfm", 1)}
SIZES = {"small": 64, "medium": 128, "large": 256}
KAPPAS = ["auto", "100", "300", "1000", "3000", "10000", "30000", "100000", "300000"]
SPLITS = {"standard": "standard (RFM protocol)", "dedup": "deduplicated", "none": "none (train on every point)"}
STEP = 50


ds = state.current_dataset()
store, runner = state.store(), state.runner()
st.title("Train a flow")
st.caption(f"Data set: **{ds.label}** (change it on the Data page). Device: **{state.device_label()}**.")

choice = state.train_settings({"obj": list(OBJECTIVES), "size": list(SIZES), "kappa": KAPPAS,
                               "split": list(SPLITS)})
with st.form("settings"):
    c1, c2, c3 = st.columns(3)
    objective = c1.radio("Objective", list(OBJECTIVES), index=list(OBJECTIVES).index(choice["obj"]),
                         format_func=lambda k: OBJECTIVES[k][0],
                         help="PPD matches the flow to a path of kernel densities without solving an ODE; "
                              "RFM regresses onto geodesics from uniform noise.")
    size = c2.select_slider("Model size", list(SIZES), value=choice["size"],
                            help="Hidden width of the 3-layer network: 64, 128 or 256.")
    kappa = c3.select_slider("κ_max (sharpness of the target at t = 1)", KAPPAS, value=choice["kappa"],
                             help="Concentration of the kernels around the data at the end of the path. "
                                  "Larger means finer detail, and harder to learn. **auto** reads it off the "
                                  "kernel density that best fits the validation points: clustered data get a "
                                  f"sharper target (up to {KAPPA_CAP:,.0f}) and Fourier features of the point; "
                                  f"smooth data get {KAPPA_MIN:,.0f}.")
    c1, c2, c3 = st.columns(3)
    try:
        minutes_default, seed_default = min(600.0, max(0.1, float(choice["minutes"]))), int(choice["seed"])
    except ValueError:
        minutes_default, seed_default = 1.0, 0
    minutes = c1.number_input("Training time (minutes)", min_value=0.1, max_value=600.0, value=minutes_default,
                              step=0.5)
    seed = c2.number_input("Seed", min_value=0, max_value=2**31 - 1, value=seed_default, step=1)
    split = c3.selectbox("Split", list(SPLITS), index=list(SPLITS).index(choice["split"]),
                         format_func=lambda k: SPLITS[k])
    b1, b2, _ = st.columns([1, 1, 3])
    start = b1.form_submit_button("Start training", type="primary")
    step = b2.form_submit_button(f"Step (+{STEP} steps)", help="Train a few steps and redraw, one click at a time. "
                                 "Continues the current run when it is idle, else starts a new one.")

if start or step:
    state.set_train_settings({"obj": objective, "size": size, "kappa": kappa, "minutes": minutes, "seed": seed,
                              "split": split})
    _, obj, ell = OBJECTIVES[objective]
    config = TrainConfig(data=str(ds.path), objective=obj, ell=ell, hidden=SIZES[size],
                         kappa_max=None if kappa == "auto" else float(kappa),
                         minutes=float(minutes), seed=int(seed), split=split, eval_every=500)
    current = state.current_run_id()
    info = store.info(current) if current else None
    if step and info is not None and info.state in ("done", "stopped") and store.run_dir(current).checkpoint.exists():
        store.request_resume(current, steps=info.step + STEP, quick=True)
        run_id = current
    elif step:
        config.minutes, config.steps = None, STEP
        run_id = store.create(config, name=ds.path.stem, quick=True)
    else:
        run_id = store.create(config, name=ds.path.stem)
    runner.poll()
    state.set_run_id(run_id)

run_id = state.current_run_id()
if run_id is None:
    st.info("No run yet: choose settings and press **Start training**. Runs started here keep going in the "
            "background; the link in your address bar brings you back to the run.")
    st.stop()

info = store.info(run_id)
was_active = info.state in ACTIVE


@st.fragment(run_every=2.0 if was_active else None)
def live() -> None:
    runner.poll()
    info = store.info(run_id)
    run = store.run_dir(run_id)
    st.subheader(f"Run `{run_id}`")
    cols = st.columns([1, 1, 1, 3])
    if info.state in ("queued", "running"):  # while reporting, training is over: nothing to stop
        if cols[0].button("Stop", key="stop"):
            runner.stop(run_id)
            st.toast("Stopping after the current step; the checkpoint is kept.")
    elif info.state in ("done", "stopped") and run.checkpoint.exists():
        if cols[0].button("Resume", key="resume", help="Train for the same time again, from the checkpoint."):
            extra = float(info.minutes or 1.0)
            store.request_resume(run_id, minutes=info.elapsed / 60.0 + extra)
            runner.poll()
            st.rerun()
    metrics = run.read_metrics()
    losses = [m for m in metrics if "loss" in m]
    rate = losses[-1]["steps_per_s"] if losses else None
    cols[1].metric("Step", f"{info.step:,}")
    cols[2].metric("Steps / s", f"{rate:.1f}" if rate else "–")
    budget_s = 60.0 * info.minutes if info.minutes else None
    if info.state == "queued":
        queue = runner.queue()
        pos = queue.index(run_id) + 1 if run_id in queue else None
        cols[3].info(f"Queued{f' (position {pos} of {len(queue)})' if pos else ''}: "
                     f"{state.settings().max_concurrent} run(s) train at a time.")
    elif info.state == "running" and budget_s:
        frac = min(1.0, info.elapsed / budget_s)
        eta = max(0.0, budget_s - info.elapsed)
        cols[3].progress(frac, text=f"training: {info.elapsed:.0f} s of {budget_s:.0f} s, "
                                    f"about {math.ceil(eta)} s left")
    elif info.state == "running" and info.steps:
        frac = min(1.0, info.step / info.steps)
        eta = (info.steps - info.step) / rate if rate else float("nan")
        cols[3].progress(frac, text=f"training: step {info.step} of {info.steps}, ETA {eta:.0f} s")
    elif info.state == "reporting" and run.report.exists():
        cols[3].progress(1.0, text="Results are ready on the Results page; computing the path frames over t ...")
    elif info.state == "reporting":
        cols[3].progress(1.0, text="computing the density map, samples and test NLL ...")
    elif info.state == "done":
        cols[3].success("Done. See the **Results** page.")
    elif info.state == "stopped":
        cols[3].warning(f"Stopped at step {info.step}. {info.message}".strip())
    elif info.state == "failed":
        cols[3].error(f"Failed: {info.message}")
    chosen, used = state.auto_description(run), state.run_device(run)
    if chosen:
        st.caption(f"Settings from the data: {chosen}")
    if used:
        st.caption(f"Device of this run: **{used}**.")
    st.plotly_chart(figures.curves(metrics), use_container_width=True, key="curves")
    if info.state not in ACTIVE and run.density.exists():
        try:
            grid = run.read_npz(run.density)
        except RunError:
            grid = None
        if grid is not None:
            st.plotly_chart(figures.density_map(grid["lat"], grid["lon"], grid["log_prob"], land=figures.load_land(),
                                                title=f"Learned log-density at step {info.step}"),
                            use_container_width=True, key="step_density")
    if was_active and info.state not in ACTIVE:
        st.rerun()  # the run ended: a full rerun turns polling off


live()

others = [r for r in store.runs() if r.state in ACTIVE and r.run_id != run_id]
if others:
    st.caption("Other runs in progress or waiting: " + ", ".join(f"`{r.run_id}` ({r.state})" for r in others))
