"""The glossary (dashboard/glossary.py): every term a page uses, in one or two sentences whose numbers are right,
and the sidebar that shows it with the choice of density unit on every page."""

from __future__ import annotations

import doctest
import math
import re

import numpy as np
import pytest
from pages import open_page

from dashboard import glossary, shell, units

#: The terms the pages rely on (issue 16): the plain words and the jargon left on Train and Path.
TERMS = [
    "density",
    "log density",
    "nats",
    "NLL",
    "uniform",
    "kernel density",
    "κ",
    "ℓ",
    "ODE tolerance",
    "PPD",
    "RFM",
    "vMF",
    "path",
    "residual",
    "step",
    "times uniform",
    "flow",
    "split",
]
EARTH_RADIUS_KM = 6371.0


def test_the_doctests() -> None:
    assert doctest.testmod(glossary).failed == 0


@pytest.mark.parametrize("term", TERMS)
def test_every_term_is_explained_in_one_or_two_sentences(term: str) -> None:
    meaning = glossary.explain(term)
    sentences = re.findall(r"[.!?](?:\s|$)", meaning)
    assert 1 <= len(sentences) <= 2 and meaning.endswith("."), meaning
    assert len(meaning) < 300


def test_an_unknown_term_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: density, uniform"):
        glossary.explain("entropy")


def test_the_numbers_in_the_glossary() -> None:
    # the sphere's area by quadrature (sum of cos(lat) dlat dlon), 4 pi = 12.57 steradians
    lat = np.deg2rad(np.linspace(-90, 90, 20_001))
    area = 2 * math.pi * np.trapezoid(np.cos(lat), lat)
    assert f"{area:.2f}" in glossary.explain("density")
    assert f"{1 / area:.3f}" in glossary.explain("uniform")  # the uniform density, per steradian
    assert f"{math.log(area):.2f}" in glossary.explain("NLL") and f"−{math.log(area):.2f}" in glossary.explain(
        "log density"
    )
    assert f"{1 / math.log(2):.2f} bits" in glossary.explain("nats")
    assert "e ≈ 2.7 times" in glossary.explain("log density") and f"{math.e:.1f}" == "2.7"


@pytest.mark.parametrize(("kappa", "degrees", "km"), [(100, "6°", "640 km"), (10_000, "0.6°", "64 km")])
def test_the_width_of_a_vmf_bump(kappa: float, degrees: str, km: str) -> None:
    """The width the glossary gives, against the vMF on the sphere by quadrature: the standard deviation of one
    coordinate of the tangent plane, sqrt(E[sin^2 theta] / 2), under the density ~ exp(kappa cos theta) sin theta."""
    theta = np.linspace(0.0, math.pi, 400_001)
    weight = np.exp(kappa * (np.cos(theta) - 1.0)) * np.sin(theta)
    width = math.sqrt(np.trapezoid(np.sin(theta) ** 2 * weight, theta) / np.trapezoid(weight, theta) / 2)
    assert width == pytest.approx(1 / math.sqrt(kappa), rel=0.02)  # "about 1/√κ radians"
    meaning = glossary.explain("κ")
    assert f"κ = {kappa:,}" in meaning and f"about {degrees}" in meaning and f"({km}" in meaning
    assert float(degrees.rstrip("°")) == pytest.approx(math.degrees(width), rel=0.06)
    assert float(km.split()[0]) == pytest.approx(EARTH_RADIUS_KM * width, rel=0.02)


def test_the_sidebar_shows_the_unit_choice_and_the_glossary_on_every_page(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")
    at = open_page("views/train.py")
    picker = at.sidebar.radio[0]
    assert picker.label == "Show density as" and picker.options == list(units.UNITS.values())
    assert picker.value == units.DEFAULT_UNIT
    assert any(e.label.startswith("Glossary") for e in at.sidebar.expander)
    text = " ".join(m.value for m in at.sidebar.markdown)
    assert all(f"**{e.term}**" in text for e in glossary.GLOSSARY.values())
    assert {shell.PROJECTOR_CSS, shell.CLOSE_SIDEBAR_JS} <= {h.proto.body for h in at.get("html")}
    picker.set_value("log").run()  # one choice for the whole app: it stays on the next page
    at.switch_page("views/path.py").run()
    assert not at.exception and at.sidebar.radio[0].value == "log"
    assert at.session_state["density_unit"] == "log"
