"""What the Results page draws of one run's results: the three tabs (the density maps, the density on the globe,
samples against test points) and the score on the test points, each from a :class:`Shown` that the page reads once
per run of its script; and the button that requests what a run's report did not compute.

Only the open tab is drawn (the page reruns when the tab changes), so the first paint waits for no globe. A button
this session may not use is off, with the reason (``dashboard/access.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnfm_core import owners
from cnfm_core.geo import LOG_AREA
from cnfm_core.jobs import ACTIVE, JobRunner, RunInfo, RunStore
from cnfm_core.runs import RunDir, RunError
from dashboard import access, export, figures, resultfiles, scores, state, units
from dashboard.figures.geometry import subsample
from dashboard.figures.pointmaps import layers_map
from dashboard.text import plain

__all__ = ["Shown", "globe_tab", "map_tab", "mass_text", "nll_section", "offer_report", "points_tab",
           "request_report"]

#: Two maps side by side while each gets at least this width (px), else one above the other.
MAP_MIN_WIDTH_PX = 440
#: Height of each of two maps side by side (px): a 2:1 map, its title and its colour bar.
PAIR_HEIGHT_PX = 290
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


@dataclass(frozen=True, eq=False)
class Shown:
    """What the Results page shows of its run: the run and who may change it, its report, its density on the grid
    ``lat`` x ``lon`` (``preview`` while it is the coarse first map; ``cell_mean_samples`` > 0 where it is drawn as
    cell means from that many samples, :func:`cnfm_core.report.sample_cell_means`), the mass of its values at the
    cell centres (``grid_mass``) and of the map (``map_mass``), its samples and test points, what it is drawn beside,
    and the one colour range ``zrange`` and ``unit`` of every map."""

    run_id: str
    run: RunDir
    info: RunInfo
    may: owners.Access
    store: RunStore
    runner: JobRunner
    report: dict[str, Any] | None
    lat: np.ndarray
    lon: np.ndarray
    log_prob: np.ndarray
    preview: bool
    grid_mass: float | None
    map_mass: float | None
    cell_mean_samples: int
    samples: np.ndarray
    test_lat: np.ndarray
    test_lon: np.ndarray
    land: dict[str, Any]
    coast: figures.LandLines
    reference: resultfiles.Reference | None
    zrange: tuple[float, float]
    unit: str

    @property
    def off(self) -> str | None:
        """Why this session may not use the run's buttons (None: it may)."""
        return access.why_not(self.may)


def request_report(store: RunStore, runner: JobRunner, run_id: str, may: owners.Access) -> None:
    """Request run ``run_id``'s report job (it runs in the background) and redraw; a refusal is shown."""
    if not may.allowed:
        return
    try:
        store.request_job(run_id, "report")
        runner.poll()
        st.rerun()
    except RunError as e:
        st.error(plain(e))


def offer_report(s: Shown, missing: str, label: str, *, key: str, hint: str) -> None:
    """Say that ``missing`` (a result) of the run was not computed and, unless the run is a demo, offer a button
    that requests its report job."""
    st.info(f"{missing} of this run was not computed (its report was cancelled or did not finish).")
    if not s.info.demo and st.button(label, key=key, help=s.off or hint, disabled=s.off is not None):
        request_report(s.store, s.runner, s.run_id, s.may)
    if not s.info.demo and s.off:
        st.caption(s.off)


def _row(key: str, min_px: int) -> DeltaGenerator:
    """A row of containers that share the width, and wrap onto more rows when it is narrower than ``min_px``
    each (Streamlit stretches the children of a horizontal container without a lower bound)."""
    st.html(f"<style>.st-key-{key} > div {{ flex: 1 1 {min_px}px; min-width: {min_px}px; }}</style>")
    return st.container(horizontal=True, gap="medium", key=key)


def _map(s: Shown, values: np.ndarray, title: str, key: str, height: int | None, interactive: bool) -> None:
    """One density map: a picture (drawn by the browser at once), or with ``interactive`` a plotly chart (hover
    values, zoom; its first view loads plotly, 2-5 s)."""
    if not interactive:
        with st.container(key=key):
            st.markdown(f"**{title}**")
            width = PAIR_IMAGE_WIDTH_PX if height is not None else SINGLE_IMAGE_WIDTH_PX
            png = resultfiles.map_png(str(s.run.density), s.run.density.stat().st_mtime, key, s.unit, s.zrange, width,
                                      values, s.lat, s.lon, s.coast)
            st.image(png, width="stretch")
        return
    fig = figures.density_map(
        s.lat, s.lon, values, land=s.land, title=title, zmin=s.zrange[0], zmax=s.zrange[1], unit=s.unit
    )
    fig.update_traces(selector={"type": "heatmap"}, colorbar={"thickness": 14})
    if height is not None:
        fig.update_layout(height=height)
    st.plotly_chart(fig, width="stretch", key=key)


def map_tab(s: Shown) -> None:
    """The learned density beside its reference on one colour scale, as pictures or (on request) plotly charts."""
    active = s.info.state in ACTIVE
    interactive = st.toggle("Interactive maps", key="interactive_maps",
                            help="On: hover a map for its values, drag to zoom (the first time, the browser loads a "
                                 "chart library for a few seconds). Off: pictures, shown at once.")
    title = f"Learned density: preview ({180 / len(s.lat):.0f}° cells)" if s.preview else "Learned density"
    ref = s.reference
    if ref is None:
        _map(s, s.log_prob, title, "density_map", None, interactive)
    else:
        row = _row("results_maps", MAP_MIN_WIDTH_PX)
        with row.container(key="results_learned"):
            _map(s, s.log_prob, title, "density_map", PAIR_HEIGHT_PX, interactive)
        with row.container(key="results_reference"):
            _map(s, ref.values, ref.title, ref.key, PAIR_HEIGHT_PX, interactive)
    shared = (
        f"{'Both maps share' if ref else 'The map has'} one colour scale, from "
        f"{units.describe(s.zrange[0], s.unit)} (or less) to {units.describe(s.zrange[1], s.unit)}: a brighter colour "
        "means more crowded."
    )
    known = {
        "true_density_map": " The synthetic data were drawn from the true density.",
        "kde_density_map": " The baseline puts a small bump of probability on every training point; the map "
        "shows its mean over each cell, so that bumps narrower than a cell still show.",
    }
    st.caption(shared + (known[ref.key] if ref else ""))
    if s.cell_mean_samples > 0:
        st.caption(mass_text(s.grid_mass, s.map_mass, s.cell_mean_samples))
    elif s.grid_mass is not None and math.isfinite(s.grid_mass):
        st.caption(
            f"Total mass on the grid: {s.grid_mass:.3f} (a density integrates to 1)."
            + (
                " A preview: coarse cells, likelihood by a fixed-step RK4 (within about 0.1 nats of the exact "
                "value); the exact map replaces it when it is ready."
                if s.preview and active
                else ""
            )
        )
    if s.preview and not active and s.report is not None:  # else the NLL's button above completes both
        offer_report(
            s,
            "The exact map",
            "Compute the exact map",
            key="compute_map",
            hint="Runs in the background: the exact map, then the path frames if missing.",
        )


def mass_text(grid_mass: float | None, map_mass: float | None, samples: int) -> str:
    """The caption of a map drawn as cell means from ``samples`` samples (``cell_means`` in density.npz): why and
    how, the share of the mass that the values at the cell centres hold (``grid_mass``), and the map's mass."""
    held = (f" (its values at the cell centres hold only {100 * grid_mass:.2g}% of it)"
            if grid_mass is not None and math.isfinite(grid_mass) else "")
    total = (f" Total mass of the map: {map_mass:.3f} (a density integrates to 1)."
             if map_mass is not None and math.isfinite(map_mass) else "")
    return (
        f"This flow puts most of its mass in bumps narrower than a map cell{held}, so the map shows each cell's "
        f"share of {samples:,} samples from the flow, over the cell's area; where that share is within chance of "
        f"the value at the cell's centre (a smooth density there, or no sample), it shows that value.{total}"
    )


def globe_tab(s: Shown) -> None:
    """The learned density (or, by choice, its reference) on a globe, with the maps' colour bar and a PNG."""
    names = {"Learned": (s.log_prob, "Learned density")}
    ref = s.reference
    if ref is not None:
        names[ref.title.split(" ")[0] if ref.key == "true_density_map" else "Kernel density"] = (ref.values, ref.title)
    shown = (
        st.radio(
            "Density on the globe", list(names), horizontal=True, key="globe_density", label_visibility="collapsed"
        )
        if len(names) > 1
        else "Learned"
    )
    values, label = names.get(shown or "Learned", names["Learned"])
    st.markdown(resultfiles.colour_bar(label, s.zrange, s.unit), unsafe_allow_html=True)
    c_lat, c_lon = figures.view_centre(s.test_lat, s.test_lon) if len(s.test_lat) else (20.0, 0.0)
    deck = figures.globe(
        land=s.land,
        density=(s.lat, s.lon, values),
        density_range=s.zrange,
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
        file_name=f"{s.run_id}-density.png",
        key="density_png",
        data=lambda: resultfiles.density_png(s.lat, s.lon, values, label, land=s.land, zrange=s.zrange, unit=s.unit),
    )


def points_tab(s: Shown) -> None:
    """Model samples against test points, in equal numbers by default, on a globe beside a flat map."""
    samples, test_lat, test_lon = s.samples, s.test_lat, s.test_lon
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
                land=s.land,
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
        flat = layers_map(sets, land=s.land, height=VIEW_HEIGHT_PX, width_hint=VIEW_WIDTH_HINT_PX)
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
        file_name=f"{s.run_id}-samples.png",
        key="points_png",
        data=lambda: export.globe_png(
            [export.GlobePoints(p.lat, p.lon, p.color, p.name) for p in sets],
            land=s.land,
            center_lat=c_lat,
            center_lon=c_lon,
            title="Samples against test points",
        ),
    )


def _kappa_text(kappa: float) -> str:
    """``17782.79 -> "17,783"``, ``316.23 -> "316"``, ``2.5 -> "2.5"``."""
    return f"{kappa:,.0f}" if kappa >= 100 else f"{kappa:.3g}"


def nll_section(s: Shown) -> None:
    """The exact test NLL beside its baselines (or what stands in for it), one sentence that reads it, and how
    the numbers are computed (an expander)."""
    report = s.report
    st.subheader("Score on the test points (NLL in nats; lower is better)")
    if report is None:
        nll_stage = next((x for x in resultfiles.stages(s.run) if x.get("name") == "test_nll"), None)
        if s.info.state == "reporting" and nll_stage is not None and nll_stage.get("state") in ("pending", "running"):
            st.info("Computing the exact test NLL ... (its progress is shown above)")
        elif s.info.state not in ACTIVE:
            offer_report(
                s,
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
        chosen_from_data = state.auto_description(s.run)
        if chosen_from_data:
            st.caption(f"Settings from the data: {chosen_from_data}")
