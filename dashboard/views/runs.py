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

import math
from datetime import datetime
from typing import Any

import numpy as np
import streamlit as st

from cnfm_core import owners
from cnfm_core.config import LEGACY_DEFAULTS
from cnfm_core.jobs import ACTIVE, RunInfo, RunStore
from cnfm_core.runs import RunError
from dashboard import access, figures, resultfiles, state, units
from dashboard.text import plain

_BROKEN = (RunError, OSError, ValueError, TypeError, AttributeError, KeyError)
_KEY_CONFIG = {
    "hidden": "Hidden",
    "kappa_max": "κ_max",
    "space_frequencies": "Fourier features",
    "kernel": "Kernel",
    "lr": "lr",
    "batch_size": "Batch",
    "split": "Split",
    "seed": "Seed",
}
_TEXT_CONFIG = ("split", "kernel")


def _filled(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config with the fields added since it was made at the values it was trained with."""
    return {**LEGACY_DEFAULTS, **config} if config else {}


def _report(store: RunStore, run_id: str) -> dict[str, Any]:
    """The run's report.json, or ``{}`` when it is missing or unreadable."""
    run = store.run_dir(run_id)
    try:
        report = run.read_json(run.report) if run.report.exists() else {}
    except _BROKEN:
        return {}
    return report if isinstance(report, dict) else {}


def _number(d: dict[str, Any], key: str) -> float | None:
    value = d.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _objective(config: dict[str, Any]) -> str | None:
    """``PPD ℓ=1``, ``PPD ℓ=2``, ``RFM`` (or the raw name) from a config dict."""
    name = str(config.get("objective") or "")
    if name == "ppd":
        return f"PPD ℓ={config.get('ell', 1)}"
    return name.upper() or None


def _manifold(config: dict[str, Any]) -> str | None:
    """``sphere``, or ``torus (T³)`` with the torus dimension, from a config dict (None when it has none)."""
    if not config:
        return None
    filled = _filled(config)
    name, dim = str(filled.get("manifold") or "sphere"), filled.get("manifold_dim")
    if name == "torus" and isinstance(dim, int):
        return f"torus (T{str(dim).translate(str.maketrans('0123456789', '⁰¹²³⁴⁵⁶⁷⁸⁹'))})"
    return name


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _status(info: RunInfo) -> str:
    """``done``, or for a run that trains towards a number of steps ``running · step 120 of 400``."""
    if info.state == "unreadable":
        return "unreadable"
    if info.state in ACTIVE and isinstance(info.steps, int) and info.steps > 0:
        return f"{info.state} · step {info.step:,} of {info.steps:,}"
    return info.state


def _rate(info: RunInfo) -> float | None:
    """Steps per second over the run's training time (evaluations included), None before it has both."""
    return info.step / info.elapsed if info.step > 0 and info.elapsed > 0 else None


def _rate_text(rate: float | None) -> str:
    """``5.906 -> "5.91"``, ``0.04213 -> "0.0421"``, ``1234.5 -> "1,234"``; "–" for None."""
    if rate is None:
        return "–"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


#: Compare shows the two runs side by side while each gets at least this width (px), else one above the other.
COMPARE_MIN_WIDTH_PX = 400
#: The table's columns: the key ones first (what a reader compares), then the settings and where a run comes from.
KEY_COLUMNS = ("Run", "Data set", "Objective", "Status", "Steps", "Test NLL", "Training time")


def _table(runs: list[RunInfo], reports: dict[str, dict[str, Any]], origins: dict[str, str]) -> dict[str, list[Any]]:
    """The runs table as columns, :data:`KEY_COLUMNS` first (None where a value is missing; the table shows "–")."""
    cols: dict[str, list[Any]] = {
        "Run": [r.run_id for r in runs],
        "Data set": [r.data_name or None for r in runs],
        "Objective": [_objective(r.config) for r in runs],
        "Status": [_status(r) for r in runs],
        "Steps": [r.step if r.state != "unreadable" else None for r in runs],
        "Test NLL": [_number(reports[r.run_id], "test_nll") for r in runs],
        "Training time": [_duration(r.elapsed) if r.elapsed else None for r in runs],
        "Steps/s": [_rate(r) for r in runs],
        "KDE NLL": [_number(reports[r.run_id], "kde_nll") for r in runs],
        "Manifold": [_manifold(r.config) for r in runs],
        "Source": [origins[r.run_id] for r in runs],
    }
    for key, label in _KEY_CONFIG.items():
        kind = str if key in _TEXT_CONFIG else int | float
        values = [_filled(r.config).get(key) for r in runs]
        cols[label] = [v if isinstance(v, kind) else None for v in values]
    cols["Created"] = [_when(r.created) for r in runs]
    return cols


def _when(timestamp: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(timestamp)
    except (OverflowError, OSError, ValueError):
        return None


def _value_text(value: object) -> str:
    """A config value as a reader writes it: ``2.2426314711333286 -> "2.243"``, ``17782.79 -> "17,783"``,
    ``3000.0 -> "3,000"``, ``None -> "–"``; text as it is."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and value == round(value) and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Config keys whose values differ between two runs, sorted (fields a run predates count at the value
    it was trained with)."""
    a, b = _filled(a), _filled(b)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _density(store: RunStore, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    run = store.run_dir(run_id)
    try:
        z = run.read_npz(run.density)
        return tuple(np.asarray(z[k], dtype=np.float64) for k in ("lat", "lon", "log_prob"))
    except _BROKEN:
        return None


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
reports = {r.run_id: _report(store, r.run_id) for r in runs}
n_demo = sum(r.demo for r in runs)
where = f"{len(runs) - n_demo} run(s) in `{store.root}`" + (f" and {n_demo} bundled demo run(s)" if n_demo else "")
st.caption(
    f"{where}."
    + (" Demo runs were trained with the default settings and ship with the app; they are read-only." if n_demo else "")
)
event = st.dataframe(
    _table(runs, reports, {r.run_id: access.origin(store, r) for r in runs}),
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
    return f"{run_id} · {r.data_name or '–'} · {_objective(r.config) or '–'} · {r.state}" + (
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
changed = _differences(infos["a"].config, infos["b"].config)
densities = {s: _density(store, pair[s]) for s in pair}
shown_maps = [d[2] for d in densities.values() if d is not None and np.isfinite(d[2]).any()]
zrange = figures.shared_log_range(*shown_maps) if len(shown_maps) == 2 else None
nll = {s: _number(reports[pair[s]], "test_nll") for s in pair}
coast = figures.land_lines(figures.load_land())
unit = state.density_unit()
st.html(
    f"<style>.st-key-compare_runs > div {{ flex: 1 1 {COMPARE_MIN_WIDTH_PX}px; "
    f"min-width: {COMPARE_MIN_WIDTH_PX}px; }}</style>"
)
row = st.container(horizontal=True, gap="medium", key="compare_runs")
for slot in pair:
    info, run = infos[slot], store.run_dir(pair[slot])
    with row.container(key=f"compare_{slot}"):
        st.markdown(
            f"**{slot.upper()}: `{info.run_id}`**  \n"
            f"Data set: {plain(info.data_name or '–')} · objective: {_objective(info.config) or '–'} · "
            f"{_status(info)}"
        )
        if changed:
            shown = {k: _filled(info.config).get(k) for k in changed}
            # a code span shows text as it is, except a backquote, which would end it
            st.markdown(
                "Differs: " + ", ".join(f"**{k}** = `{_value_text(v).replace('`', '′')}`" for k, v in shown.items())
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
        if info.elapsed and _rate(info) is not None:
            st.markdown(
                f"in **{_duration(info.elapsed)}**: **{_rate_text(_rate(info))}** steps a second",
                help="Steps per second over the training time (evaluations included)",
            )
        try:
            metrics = run.read_metrics()
        except _BROKEN:
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
trained = {s: infos[s] for s in pair if infos[s].state != "unreadable" and _rate(infos[s]) is not None}
if len(trained) == 2:
    a, b = trained["a"], trained["b"]
    budget = a.minutes if a.minutes and a.minutes == b.minutes else None
    st.caption(
        f"A trained {a.step:,} steps in {_duration(a.elapsed)} ({_rate_text(_rate(a))} a second), B "
        f"{b.step:,} steps in {_duration(b.elapsed)} ({_rate_text(_rate(b))} a second)."
        + (
            f" Both had a budget of {_value_text(budget)} min: the one with more steps a second trains more "
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
