"""The Results page compares fairly: learned and reference densities on one colour scale, the globe's colour bar,
samples and test points in equal numbers with toggles, the test NLL read in one sentence with the report's
numbers; and the kernel density drawn beside the map, against scipy, a closed form and the report."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from pages import open_page
from scipy.stats import vonmises_fisher
from streamlit.testing.v1 import AppTest

from cnfm_core.geo import latlon_to_xyz
from cnfm_core.grid import cell_areas, cell_centres
from cnfm_core.jobs import DEFAULT_DEMO_ROOT
from dashboard.figures import shared_log_range, value_colors
from dashboard.figures.geometry import kde_cell_means, kde_log_prob
from dashboard.scores import Comparison, comparisons, likelier, nll_sentence, times_text
from dashboard.units import LOG_UNIFORM, colour_values, ratio_label

PAGE = "views/results.py"


@pytest.fixture
def demos(tmp_path, monkeypatch):
    """An empty run store: the pages show the bundled demo runs."""
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_THREADS", "1")
    monkeypatch.delenv("CNFM_DEMO_RUNS", raising=False)


def _demo(name: str) -> tuple[dict, dict[str, np.ndarray], Path]:
    folder = DEFAULT_DEMO_ROOT / name
    with np.load(folder / "density.npz") as z:
        density = {k: z[k] for k in z.files}
    return json.loads((folder / "report.json").read_text()), density, folder


def _heatmaps(at: AppTest) -> list[dict]:
    """The plotly heat maps of the map tab, with its "Interactive maps" on (off, the maps are pictures)."""
    if not at.session_state["interactive_maps"]:
        at.session_state["interactive_maps"] = True
        at.run()
        assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [c for c in charts if c["data"] and c["data"][0].get("type") == "heatmap"]


def _array(value: object) -> np.ndarray:
    """An array of a plotly figure's JSON: a list, or plotly's typed array ``{"dtype", "bdata", "shape"}``."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", flat.size)).split(",")]).astype(np.float64)
    return np.asarray(value, dtype=np.float64)


def _in_log_units(at: AppTest) -> AppTest:
    """The page again with densities in log density (nats): the sidebar's other unit."""
    at.session_state["density_unit"] = "log"
    at.run()
    assert not at.exception, at.exception
    return at


def _tab(at: AppTest, name: str) -> AppTest:
    at.session_state["results_tab"] = name
    at.run()
    assert not at.exception, at.exception
    return at


def _deck(at: AppTest) -> dict:
    (chart,) = at.get("deck_gl_json_chart")
    return json.loads(chart.proto.json)


# ---------------------------------------------------------------------------------------------- the page


def test_learned_and_true_density_share_one_colour_scale(demos):
    report, density, _ = _demo("synthetic")
    at = open_page(PAGE)
    lo, hi = shared_log_range(density["log_prob"], density["true_log_prob"])
    assert hi == pytest.approx(max(np.nanmax(density["log_prob"]), np.nanmax(density["true_log_prob"])))
    maps = _heatmaps(at)  # in times uniform (the default unit): log10 of p / p_u on the colour axis
    assert [m["layout"]["title"]["text"] for m in maps] == ["Learned density", "True density"]
    for m in maps:
        assert (m["data"][0]["zmin"], m["data"][0]["zmax"]) == pytest.approx(
            ((lo - LOG_UNIFORM) / math.log(10), (hi - LOG_UNIFORM) / math.log(10))
        )
    assert any(c.value.startswith("Demo run (bundled, read-only)") for c in at.caption)
    assert any(c.value.startswith("Both maps share one colour scale") and "× uniform" in c.value for c in at.caption)
    for m in _heatmaps(_in_log_units(at)):
        assert (m["data"][0]["zmin"], m["data"][0]["zmax"]) == pytest.approx((lo, hi))
    assert any(f"{lo:.2f} nats (or less) to {hi:.2f} nats".replace("-", "−") in c.value for c in at.caption)


def test_an_earth_run_shows_the_kernel_density_beside_the_learned_map(demos):
    report, density, _ = _demo("cities")
    at = _in_log_units(open_page(PAGE, run="demo-cities"))
    learned, kde = _heatmaps(at)
    assert kde["layout"]["title"]["text"].startswith("Kernel density")
    assert (learned["data"][0]["zmin"], learned["data"][0]["zmax"]) == (kde["data"][0]["zmin"], kde["data"][0]["zmax"])
    z = _array(kde["data"][0]["z"])
    assert z.shape == density["log_prob"].shape and np.isfinite(z).all()
    # cell means of a density: they hold its whole mass (1), up to the grid's own area error (1e-4)
    assert (np.exp(z) * cell_areas(density["lat"], density["lon"])).sum() == pytest.approx(1.0, abs=2e-3)


def test_the_globe_has_a_colour_bar_on_the_maps_scale(demos):
    _, density, _ = _demo("synthetic")
    lo, hi = shared_log_range(density["log_prob"], density["true_log_prob"])
    at = _tab(open_page(PAGE), "Density on the globe")
    (bar,) = [m.value for m in at.markdown if "linear-gradient" in m.value]  # times uniform: ×0.01, ×1, ...
    decades = colour_values(np.array([lo, hi]), "times")
    assert f"≤ {ratio_label(decades[0])}" in bar and f"≥ {ratio_label(decades[1])}" in bar and ">×1<" in bar
    at = _in_log_units(at)
    bars = [m.value for m in at.markdown if "linear-gradient" in m.value]
    assert len(bars) == 1
    ends = re.findall(r"[≤≥] (−?[\d.]+)", bars[0])
    assert [float(v.replace("−", "-")) for v in ends] == pytest.approx([lo, hi], abs=0.006)
    # one disc a cell next to the equator, coloured on the maps' scale (not the globe's own minimum and maximum)
    density_layer = next(la for la in _deck(at)["layers"] if la["id"] == "density")
    discs = [row for row in density_layer["data"] if row["lat"] == 1.0]
    i = int(np.argmin(np.abs(density["lat"] - 1.0)))
    assert [row["c"] for row in discs] == value_colors(density["log_prob"][i], vmin=lo, vmax=hi).tolist()
    at.radio(key="globe_density").set_value("True").run()  # the truth on the same scale
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown if "linear-gradient" in m.value] == [bars[0].replace("Learned", "True")]


def test_samples_and_test_points_are_shown_in_equal_numbers_with_toggles(demos):
    at = _tab(open_page(PAGE), "Samples vs test points")
    n_test = int(_demo("synthetic")[0]["n_test"])

    def points() -> list[tuple[int, bool]]:
        """(points, rimmed?) of each set on the globe, after checking the flat map draws the same sets."""
        shown = [(len(la["data"]), bool(la["stroked"])) for la in _deck(at)["layers"] if la["id"].startswith("points")]
        (flat,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        on_map = [(len(_array(t["x"])), t["marker"]["line"]["width"] > 0) for t in flat["data"][1:]]
        assert on_map == shown
        return shown

    assert points() == [(n_test, False), (n_test, True)]  # as many samples as test points; test points rimmed
    at.toggle(key="every_point").set_value(True).run()
    n_samples = len(np.loadtxt(DEFAULT_DEMO_ROOT / "synthetic" / "samples.csv", delimiter=",", skiprows=1))
    assert points() == [(n_samples, False), (n_test, True)] and n_samples > n_test
    at.toggle(key="show_samples").set_value(False).run()
    assert points() == [(n_test, True)]
    at.toggle(key="show_test").set_value(False).run()
    assert points() == [] and any("Nothing shown" in m.value for m in at.markdown)


def test_the_nll_sentence_reads_the_reports_numbers(demos):
    report, _, _ = _demo("synthetic")
    at = open_page(PAGE)
    (sentence,) = [m.value for m in at.markdown if m.value.startswith("On the ")]
    model = report["test_nll"]
    for name, key in (("uniform density", "uniform_nll"), ("kernel density", "kde_nll"), ("true density", "true_nll")):
        times = math.exp(report[key] - model)  # how many times as likely the model makes the test points
        said = f"{times_text(times)} times as likely" if times >= 1 else f"{times_text(1 / times)} times less likely"
        assert re.search(
            f"{re.escape(said)} (under the model )?(as|than) under the {name} \\({report[key]:.3f}", sentence
        ), (said, sentence)
    assert "times less likely than under the true density" in sentence  # the truth fits better than the model
    assert f"{report['n_test']} test points" in sentence and f"{model:.3f} nats" in sentence
    assert {m.label: m.value for m in at.metric}["Kernel density (baseline)"] == f"{report['kde_nll']:.3f}"
    assert any("How these numbers" in e.proto.label for e in at.expander)


# ---------------------------------------------------------------------------------------------- the sentence


def test_comparisons_and_sentence_against_hand_computed_ratios():
    report = {"test_nll": 1.0, "uniform_nll": 1.0 + math.log(8.0), "kde_nll": 1.0 - math.log(2.0), "n_test": 1500}
    found = comparisons(report)
    assert [(c.name, round(c.times, 12)) for c in found] == [("the uniform density", 8.0), ("the kernel density", 0.5)]
    sentence = nll_sentence(report)
    assert sentence == (
        "On the 1,500 test points the model scores 1.000 nats (lower is better): on average a test "
        "point is 8 times as likely under the model as under the uniform density (3.079 nats) and 2 "
        "times less likely than under the kernel density (0.307)."
    )
    assert likelier(Comparison("the truth", 0.0, 1 / 1.25)) == "1.25 times less likely than under the truth"
    assert nll_sentence({"kde_nll": 0.2}) is None and comparisons({"test_nll": float("nan")}) == []
    huge = comparisons({"test_nll": -900.0})[0].times  # e^903 would overflow: capped at e^700
    assert huge == math.exp(700.0) and "," in times_text(huge)


# ---------------------------------------------------------------------------------------------- the kernel density


def test_kde_log_prob_against_scipy():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 3))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    x = rng.normal(size=(40, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for kappa, w in ((0.5, 0.0), (30.0, 0.1), (4000.0, 0.02)):
        p = np.mean([vonmises_fisher(mu, kappa).pdf(x) for mu in centers], axis=0)
        expected = np.log((1 - w) * p + w / (4 * np.pi))
        np.testing.assert_allclose(kde_log_prob(x, centers, kappa, w), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["synthetic", "cities"])
def test_kde_log_prob_reproduces_the_reports_kernel_density_nll(name):
    """The report's KDE NLL was computed by the torch target path (cnfm_core.kde): an independent implementation."""
    report, _, folder = _demo(name)
    with np.load(folder / "split.npz") as z:
        train, test = z["train"], z["test"]
    nll = -kde_log_prob(test, train, report["kde_kappa"], report["kde_weight"]).mean()
    assert nll == pytest.approx(report["kde_nll"], abs=1e-9)


def _polar_cell_means(kappa: float, lat: np.ndarray, n_lon: int) -> np.ndarray:
    """Closed form for one vMF kernel at the north pole, ``p = C exp(kappa z)`` with ``C = c(kappa) e^-kappa``:
    over a cell between latitudes a < b the mean is ``C (exp(kappa sin b) - exp(kappa sin a)) / (kappa (sin b -
    sin a))``, as ``cos(lat) d(lat) = d(sin lat)``."""
    half = 90.0 / lat.size
    sa, sb = np.sin(np.deg2rad(lat - half)), np.sin(np.deg2rad(lat + half))
    log_c = math.log(kappa) - math.log(2 * math.pi) - kappa - math.log(-math.expm1(-2 * kappa))
    log_mean = log_c + kappa * sb + np.log(-np.expm1(kappa * (sa - sb))) - math.log(kappa) - np.log(sb - sa)
    return np.repeat(log_mean[:, None], n_lon, axis=1)


@pytest.mark.parametrize("kappa", [5.0, 3000.0])
def test_kde_cell_means_against_the_closed_form(kappa):
    lat, lon = cell_centres(30, 60)
    pole = np.array([[0.0, 0.0, 1.0]])
    exact = _polar_cell_means(kappa, lat, lon.size)
    seen = exact > exact.max() - 15.0  # the cells that hold the mass
    np.testing.assert_allclose(kde_cell_means(lat, lon, pole, kappa, 0.0, sub=40)[seen], exact[seen], atol=2e-3)
    default = kde_cell_means(lat, lon, pole, kappa, 0.0)
    if kappa == 5.0:  # wide kernels: one point a cell (the default) is within 0.02 nats
        np.testing.assert_allclose(default[seen], exact[seen], atol=0.02)
    else:  # a kernel of 1 degree in 6-degree cells: the centre would miss it, 3 x 3 points do not
        assert abs(default[-1, 0] - exact[-1, 0]) < 0.3
        assert abs(kde_cell_means(lat, lon, pole, kappa, 0.0, sub=1)[-1, 0] - exact[-1, 0]) > 1.0
    # a floor w mixes in w / 4 pi: the mean of a mixture is the mixture of the means
    w = 0.1
    floored = np.log((1 - w) * np.exp(exact) + w / (4 * np.pi))
    np.testing.assert_allclose(kde_cell_means(lat, lon, pole, kappa, w, sub=40), floored, atol=2e-3)


def test_kde_cell_means_leave_out_only_kernels_that_do_not_reach_a_cell():
    """Sharp kernels on both sides of the antimeridian and near a pole: the blocked sum equals the full one."""
    lat, lon = cell_centres(18, 36)
    centers = latlon_to_xyz(np.array([10.0, -12.0, 84.0, 84.0, 0.0]), np.array([179.0, -178.5, 20.0, -160.0, 0.0]))
    kappa = 2000.0
    got = kde_cell_means(lat, lon, centers, kappa, 0.0, sub=2)
    offsets = (np.arange(2) + 0.5) / 2 - 0.5
    sub_lat = (lat[:, None] + offsets * 10.0).ravel()
    sub_lon = (lon[:, None] + offsets * 10.0).ravel()
    la, lo = np.meshgrid(sub_lat, sub_lon, indexing="ij")
    p = np.exp(kde_log_prob(latlon_to_xyz(la.ravel(), lo.ravel()), centers, kappa, 0.0)).reshape(18, 2, 36, 2)
    weights = np.cos(np.deg2rad(sub_lat)).reshape(18, 2, 1, 1)
    with np.errstate(divide="ignore"):  # cells that no kernel reaches in float64: log 0
        full = np.log((p * weights).sum(axis=(1, 3)) / (weights.sum(axis=1) * 2).reshape(18, 1))
    shown = full > full.max() - 40.0
    np.testing.assert_allclose(got[shown], full[shown], atol=1e-9)
    assert (got[~shown] <= full.max() - 40.0 + 1e-9).all()


def test_kernels_far_narrower_than_a_cell_are_counted_in_their_cells():
    """kappa = 1e8 (repeated locations): the kernels are 0.006 degrees wide, and each cell's mean is the mass of
    the kernels inside it over the cell's area, dlon (sin b - sin a) on the unit sphere."""
    lat, lon = cell_centres(30, 60)
    centers = latlon_to_xyz(np.array([3.0, 3.0, 45.0, 89.999]), np.array([-177.0, -177.0, 93.0, 10.0]))
    got = kde_cell_means(lat, lon, centers, 1e8, 0.2)
    dlon = np.deg2rad(6.0)

    def mean(i: int, share: float) -> float:
        area = dlon * (np.sin(np.deg2rad(lat[i] + 3.0)) - np.sin(np.deg2rad(lat[i] - 3.0)))
        return math.log(0.8 * share / area + 0.2 / (4 * math.pi))

    assert got[15, 0] == pytest.approx(mean(15, 0.5)) and got[22, 45] == pytest.approx(mean(22, 0.25))
    top = np.exp(got[-1]) - 0.2 / (4 * np.pi)  # the kernel at the pole: its whole mass in the top row
    assert (top * dlon * (1 - np.sin(np.deg2rad(84.0)))).sum() == pytest.approx(0.8 * 0.25)
    others = np.ones_like(got, dtype=bool)
    others[15, 0] = others[22, 45] = others[-1] = False
    np.testing.assert_allclose(got[others], math.log(0.2 / (4 * math.pi)))


def test_the_maps_open_as_pictures_and_turn_interactive_on_request(demos):
    """First view: two PNG maps (no plotly chart, which costs the browser seconds to load), titled, the learned
    one under the key the classroom benchmark watches; the toggle swaps them for plotly charts."""
    at = open_page(PAGE)
    assert at.toggle(key="interactive_maps").value is False
    assert len(at.get("plotly_chart")) == 0
    images = at.get("image")
    assert len(images) == 2
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    assert titles[:2] == ["**Learned density**", "**True density**"]
    at.toggle(key="interactive_maps").set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.get("image")) == 0 and len(_heatmaps(at)) == 2
