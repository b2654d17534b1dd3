"""Runs page: every run in the store as a table; open one, or compare two side by side.

The table leads with what a reader compares (data set, objective, status, steps, test NLL, training time), each
formatted for reading (``1,234`` steps, ``0.382`` nats, ``2.2 min``), and the settings after. Compare shows each
run's steps, steps per second and training time beside its test NLL: at an equal time budget a run that does more
steps a second trains more steps.

The store lists runs started here and runs started with ``python -m cnfm_core train --run-dir DIR``
when DIR lies inside the store's folder (``$CNFM_RUNS``). A run whose files cannot be read still
gets a row, with "–" where a value is missing. The bundled demo runs (``assets/demo``) are listed too, marked
"demo": they open like any run, read-only.

URL: the two compared runs are ``?a=<run id>&b=<run id>`` (kept by ``dashboard.state``).

Everyone sees every run; the Stop and Delete buttons of a selected run are for its owner and the teacher, who
signs in here with the server's admin key (``dashboard/access.py``, docs/reliability.md).
"""

import numpy as np
import streamlit as st

from cnfm_core import owners
from cnfm_core.jobs import ACTIVE, RunInfo
from cnfm_core.runs import RunError
from dashboard import access, figures, resultfiles, state, units
from dashboard import runtable as rt
from dashboard.text import plain


def _teacher() -> None:
    """Who may change which run, and the teacher's sign-in (on a server with an admin key)."""
    signed_in = access.is_admin()  # reads a ?admin= value first
    with st.expander("Who may stop or delete a run"):
        st.caption(
            owners.RULE
            + (
                " This server has no admin key: single-user mode, so runs started from the command "
                "line may be changed by everyone."
                if not access.admin_configured()
                else ""
            )
        )
    if not access.admin_configured():
        return
    if signed_in:
        st.caption("Signed in as the teacher: you may stop, resume and delete every run (except the demos).")
        if st.button("Sign out", key="admin_sign_out"):
            access.sign_out()
            st.rerun()
        return
    with st.expander("Teacher: sign in with the admin key"):
        with st.form("admin_form", border=False):
            given = st.text_input("Admin key", type="password", key="admin_input")
            if st.form_submit_button("Sign in"):
                if access.sign_in(given):
                    st.rerun()
                st.warning("That is not this server's admin key.")


def _manage(info: RunInfo) -> None:
    """Stop or delete the selected run: for its owner and the teacher (off, with the reason, for others)."""
    if info.demo:
        return
    may = access.control(store, info.run_id)
    off = access.why_not(may)
    c1, c2, _ = st.columns([1, 1, 4])
    if info.state in ACTIVE:
        if (
            c1.button(
                "Stop run",
                key="stop_run",
                disabled=off is not None,
                help=off or "Stop after the current step (a queued run is cancelled); the checkpoint is kept.",
            )
            and may.allowed
        ):
            state.runner().stop(info.run_id)
            st.toast(f"Stopping {info.run_id}.")
    else:
        sure = c2.checkbox("Delete for good", key=f"delete_sure_{info.run_id}", disabled=off is not None)
        if (
            c1.button(
                "Delete run",
                key="delete_run",
                disabled=off is not None or not sure,
                help=off or "Delete the run folder and every file in it (tick the box first).",
            )
            and may.allowed
        ):
            try:
                store.delete(info.run_id)
            except RunError as e:
                st.warning(plain(e))
            else:
                state.forget_widgets("runs_table")  # the rows moved: select nothing rather than another run
                st.rerun()
    if off:
        st.caption(off)


store = state.store()
st.title("Runs")
st.markdown(
    "Every run, newest first, with its score on the test points and how long it trained: select one row to "
    "open it, or two to compare them side by side."
)
_teacher()
runs = store.runs()
if not runs:
    st.info(
        "No runs yet. Start one on the **Train** page, or from a terminal with "
        f"`python -m cnfm_core train --run-dir {store.root}/NAME ...` (runs whose folder is inside the "
        "run store show up here)."
    )
    st.stop()

by_id = {r.run_id: r for r in runs}
ids = list(by_id)
reports = {r.run_id: rt.read_report(store, r.run_id) for r in runs}
n_demo = sum(r.demo for r in runs)
where = f"{len(runs) - n_demo} run(s) in `{store.root}`" + (f" and {n_demo} bundled demo run(s)" if n_demo else "")
st.caption(
    f"{where}."
    + (" Demo runs were trained with the default settings and ship with the app; they are read-only." if n_demo else "")
)
event = st.dataframe(
    rt.table_columns(runs, reports, {r.run_id: access.origin(store, r) for r in runs}),
    hide_index=True,
    placeholder="–",
    column_config={
        "Run": st.column_config.TextColumn(pinned=True),
        "Steps": st.column_config.NumberColumn(format="%,d", help="Training steps done"),
        "Training time": st.column_config.TextColumn(help="Wall-clock time spent training (evaluations included)"),
        "Steps/s": st.column_config.NumberColumn(format="%.3g", help="Steps per second over the training time"),
        "Source": st.column_config.TextColumn(
            help="yours: started by this browser session; another session; "
            "command line; demo: ships with the app (read-only)"
        ),
        "Hidden": st.column_config.NumberColumn(format="%,d"),
        "κ_max": st.column_config.NumberColumn(format="%,.0f"),
        "lr": st.column_config.NumberColumn(format="%g"),
        "Batch": st.column_config.NumberColumn(format="%d"),
        "Seed": st.column_config.NumberColumn(format="%d"),
        "Test NLL": st.column_config.NumberColumn(format="%.3f", help="Exact NLL of the test points (nats)"),
        "KDE NLL": st.column_config.NumberColumn(format="%.3f", help="vMF kernel density baseline (nats)"),
        "Created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
    },
    on_select="rerun",
    selection_mode="multi-row",
    key="runs_table",
)
selected = [ids[i] for i in event.selection.rows if 0 <= i < len(ids)]

if len(selected) == 1:
    c1, c2, c3, _ = st.columns([1, 1, 1, 3])
    if c1.button("Open in Results", key="open_results"):
        state.open_run(selected[0], "views/results.py")
    if c2.button("Open in Path", key="open_path"):
        state.open_run(selected[0], "views/path.py")
    if not by_id[selected[0]].demo and c3.button("Open in Train", key="open_train"):
        state.open_run(selected[0], "views/train.py")
    _manage(by_id[selected[0]])

st.subheader("Compare two runs")
with_results = [i for i in ids if reports[i]] + [i for i in ids if not reports[i]]
pair = state.compared_runs(ids, {"a": with_results[0], "b": with_results[min(1, len(ids) - 1)]})
from_table = len(selected) == 2
if from_table:
    pair = {"a": selected[0], "b": selected[1]}
state.set_compared_runs(pair)


def _label(run_id: str) -> str:
    r = by_id[run_id]
    return f"{run_id} · {r.data_name or '–'} · {rt.objective(r.config) or '–'} · {r.state}" + (
        " · demo" if r.demo else ""
    )


c1, c2 = st.columns(2)
for col, slot in zip((c1, c2), ("a", "b"), strict=True):
    col.selectbox(
        f"Run {slot.upper()}",
        ids,
        key=f"run_{slot}",
        format_func=_label,
        on_change=state.pick_compared,
        args=(slot,),
        disabled=from_table,
    )
if from_table:
    st.caption("Comparing the two rows selected in the table; clear the selection to choose with the boxes.")
if pair["a"] == pair["b"]:
    st.info("Choose two different runs to compare.")
    st.stop()

infos = {s: by_id[pair[s]] for s in pair}
changed = rt.differences(infos["a"].config, infos["b"].config)
densities = {s: rt.read_density(store, pair[s]) for s in pair}
shown_maps = [d[2] for d in densities.values() if d is not None and np.isfinite(d[2]).any()]
zrange = figures.shared_log_range(*shown_maps) if len(shown_maps) == 2 else None
nll = {s: rt.report_number(reports[pair[s]], "test_nll") for s in pair}
coast = figures.land_lines(figures.load_land())
unit = state.density_unit()
st.html(
    f"<style>.st-key-compare_runs > div {{ flex: 1 1 {rt.COMPARE_MIN_WIDTH_PX}px; "
    f"min-width: {rt.COMPARE_MIN_WIDTH_PX}px; }}</style>"
)
row = st.container(horizontal=True, gap="medium", key="compare_runs")
for slot in pair:
    info, run = infos[slot], store.run_dir(pair[slot])
    with row.container(key=f"compare_{slot}"):
        st.markdown(
            f"**{slot.upper()}: `{info.run_id}`**  \n"
            f"Data set: {plain(info.data_name or '–')} · objective: {rt.objective(info.config) or '–'} · "
            f"{rt.status_text(info)}"
        )
        if changed:
            shown = {k: rt.filled(info.config).get(k) for k in changed}
            # a code span shows text as it is, except a backquote, which would end it
            st.markdown(
                "Differs: " + ", ".join(f"**{k}** = `{rt.value_text(v).replace('`', '′')}`" for k, v in shown.items())
            )
        else:
            st.caption("Same config as the other run.")
        other = nll["b" if slot == "a" else "a"]
        delta = f"{nll[slot] - other:+.3f} vs {'B' if slot == 'a' else 'A'}" if None not in nll.values() else None
        tiles = st.container(horizontal=True, gap="small")
        tiles.metric(
            "Test NLL (nats)", f"{nll[slot]:.3f}" if nll[slot] is not None else "–", delta=delta, delta_color="inverse"
        )
        tiles.metric("Steps trained", f"{info.step:,}" if info.state != "unreadable" else "–")
        if info.elapsed and rt.rate(info) is not None:
            st.markdown(
                f"in **{rt.duration(info.elapsed)}**: **{rt.rate_text(rt.rate(info))}** steps a second",
                help="Steps per second over the training time (evaluations included)",
            )
        try:
            metrics = run.read_metrics()
        except rt.BROKEN:
            metrics = []
        st.plotly_chart(figures.curves(metrics), width="stretch", key=f"curves_{slot}")
        if densities[slot] is None:
            st.info("No density map: the run has no readable density.npz.")
            continue
        lat, lon, values = densities[slot]
        if not np.isfinite(values).any():
            st.info("No density map: the run's density has no finite value.")
            continue
        # A picture, not a chart: two plotly heat maps cost the browser seconds on every visit to the page.
        st.markdown(f"**{slot.upper()}: learned density**")
        shown = zrange or figures.shared_log_range(values)
        png = resultfiles.map_png(str(run.density), run.density.stat().st_mtime, "learned", unit, shown, 700,
                                  values, lat, lon, coast)
        st.image(png, width="stretch")
if zrange is not None:
    st.caption(
        f"Both density maps share one colour scale, from {units.describe(zrange[0], unit)} (or less) to "
        f"{units.describe(zrange[1], unit)}."
    )
trained = {s: infos[s] for s in pair if infos[s].state != "unreadable" and rt.rate(infos[s]) is not None}
if len(trained) == 2:
    a, b = trained["a"], trained["b"]
    budget = a.minutes if a.minutes and a.minutes == b.minutes else None
    st.caption(
        f"A trained {a.step:,} steps in {rt.duration(a.elapsed)} ({rt.rate_text(rt.rate(a))} a second), B "
        f"{b.step:,} steps in {rt.duration(b.elapsed)} ({rt.rate_text(rt.rate(b))} a second)."
        + (
            f" Both had a budget of {rt.value_text(budget)} min: the one with more steps a second trains more "
            "steps in it."
            if budget
            else ""
        )
    )
if None not in nll.values():
    st.caption(
        f"Test NLL difference B − A = {nll['b'] - nll['a']:+.3f} nats (negative: B fits the test points "
        "better). Note that runs on different data sets or splits are not comparable."
    )
