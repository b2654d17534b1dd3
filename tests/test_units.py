"""Densities in the user's unit (dashboard/units.py) and the maps drawn in it, against values worked out by hand."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from dashboard import figures, units

#: log p of the uniform density on the unit sphere: p = 1 / (4 pi) per steradian.
LOG_U = -math.log(4 * math.pi)


def test_the_doctests() -> None:
    assert doctest.testmod(units).failed == 0


def test_times_uniform_and_the_colour_values_by_hand() -> None:
    # p = 1 per steradian is 4 pi = 12.566... times the uniform 1 / (4 pi); log10(4 pi) = 1.0992...
    assert units.times_uniform(0.0) == pytest.approx(12.566370614359172, rel=1e-12)
    assert units.colour_values(np.array([0.0]), "times")[0] == pytest.approx(1.0992098640220932, rel=1e-12)
    # a thousand times uniform is three powers of ten; a hundredth is minus two; uniform itself is 0
    values = units.colour_values(np.array([LOG_U + math.log(1000), LOG_U - math.log(100), LOG_U]), "times")
    np.testing.assert_allclose(values, [3.0, -2.0, 0.0], atol=1e-12)
    assert units.times_uniform(-np.inf) == 0.0 and np.isnan(units.times_uniform(np.nan))
    np.testing.assert_array_equal(units.colour_values(np.array([-3.0, 1.5]), "log"), [-3.0, 1.5])  # unchanged
    with pytest.raises(ValueError, match="times, log"):
        units.colour_values(np.zeros(1), "bits")


@pytest.mark.parametrize(
    ("lo", "hi", "ticks", "labels"),
    [
        # the live preview's range: 4 nats below uniform to 5 above = -1.737 to 2.171 powers of ten
        (-4 / math.log(10), 5 / math.log(10), (-1, 0, 1, 2), ("×0.1", "×1", "×10", "×100")),
        (-3.0, 0.5, (-3, -2, -1, 0), ("×0.001", "×0.01", "×0.1", "×1")),
        # 21 powers of ten: every third one
        (0.0, 20.0, (0, 3, 6, 9, 12, 15, 18), ("×1", "×1,000", "×1,000,000", "×10⁹", "×10¹²", "×10¹⁵", "×10¹⁸")),
        # under two powers of ten: 1, 2 and 5 of each (log10 2 = 0.30103, log10 5 = 0.69897)
        (-0.5, 0.8, (-math.log10(2), 0, math.log10(2), math.log10(5)), ("×0.5", "×1", "×2", "×5")),
        # within one of those steps: the ends, 10^0.05 = 1.122 and 10^0.25 = 1.778
        (0.05, 0.25, (0.05, 0.25), ("×1.1", "×1.8")),
    ],
)
def test_ratio_ticks(lo: float, hi: float, ticks: tuple[float, ...], labels: tuple[str, ...]) -> None:
    got_ticks, got_labels = units.ratio_ticks(lo, hi)
    np.testing.assert_allclose(got_ticks, ticks, atol=1e-12)
    assert got_labels == labels
    assert units.ratio_ticks(hi, lo)[1] == labels  # either order
    assert units.ratio_ticks(lo, math.inf) == ((), ())


def test_describe_by_hand() -> None:
    assert units.describe(LOG_U + math.log(25), "times") == "25 × uniform"
    assert units.describe(LOG_U + math.log(0.031), "times") == "0.031 × uniform"
    assert units.describe(LOG_U + math.log(123456), "times") == "120,000 × uniform"
    assert units.describe(LOG_U, "times") == "1 × uniform"
    assert units.describe(LOG_U, "log") == "−2.53 nats"
    assert units.describe(float("nan"), "log") == units.describe(float("-inf"), "times") == "–"


def test_colour_scale_converts_a_range_in_nats() -> None:
    scale = units.colour_scale("times", LOG_U - math.log(10), LOG_U + math.log(100))
    assert (scale.zmin, scale.zmax) == pytest.approx((-1.0, 2.0))
    assert scale.ticktext == ("×0.1", "×1", "×10", "×100") and scale.title == "density (× uniform)"
    bar = scale.colorbar(thickness=12)
    assert bar["tickmode"] == "array" and bar["ticktext"] == list(scale.ticktext) and bar["thickness"] == 12
    log = units.colour_scale("log", -7.0, 2.0)
    assert (log.zmin, log.zmax, log.tickvals, log.title) == (-7.0, 2.0, None, "log density (nats)")
    assert "tickvals" not in log.colorbar()


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
    return lat, lon, np.array([[LOG_U, LOG_U + math.log(10)], [LOG_U + math.log(100), -np.inf]])


def test_a_density_map_in_times_uniform() -> None:
    lat, lon, log_p = _grid()
    heat = figures.density_map(lat, lon, log_p, land=figures.load_land(), unit="times").data[0]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), [[0.0, 1.0], [2.0, np.nan]], atol=1e-12)
    np.testing.assert_allclose(np.asarray(heat.customdata, dtype=float), [[1.0, 10.0], [100.0, np.nan]])
    assert list(heat.colorbar.ticktext) == ["×1", "×10", "×100"] and heat.zmin is None  # plotly spans the values
    assert "× uniform" in heat.hovertemplate
    # a fixed range is given in nats whatever the unit, and drawn in powers of ten
    heat = figures.density_map(
        lat, lon, log_p, land=figures.load_land(), unit="times", zmin=LOG_U - math.log(10), zmax=LOG_U + math.log(1000)
    ).data[0]
    assert (heat.zmin, heat.zmax) == pytest.approx((-1.0, 3.0))
    # the default is the log density, as before, and so is unit="log"
    for unit in (None, "log"):
        heat = figures.density_map(lat, lon, log_p, land=figures.load_land(), unit=unit).data[0]
        assert heat.colorbar.title.text == "log density (nats)" and heat.z[0][0] == pytest.approx(LOG_U)
    with pytest.raises(ValueError, match="unknown density unit"):
        figures.density_map(lat, lon, log_p, land=figures.load_land(), unit="bits")


def test_the_live_preview_keeps_its_fixed_range_in_either_unit() -> None:
    lat, lon, log_p = _grid()
    heat = figures.live_density_map(lat, lon, log_p, None, land=figures.load_land(), unit="times").data[0]
    # LIVE_RANGE is 4 nats below uniform to 5 above: -4 / ln 10 = -1.737 to 5 / ln 10 = 2.171 powers of ten
    assert (heat.zmin, heat.zmax) == pytest.approx((-4 / math.log(10), 5 / math.log(10)))
    assert list(heat.colorbar.ticktext) == ["×0.1", "×1", "×10", "×100"] and heat.colorbar.thickness == 12
    heat = figures.live_density_map(lat, lon, log_p, None, land=figures.load_land()).data[0]
    assert (heat.zmin, heat.zmax) == pytest.approx(figures.LIVE_RANGE)


def test_the_path_animation_in_times_uniform() -> None:
    lat, lon, log_p = _grid()
    frames = np.stack([np.full((2, 2), LOG_U), log_p])  # t = 0 uniform, t = 1 up to 100 times uniform
    fig = figures.path_animation(np.array([0.0, 1.0]), (lat, lon, frames), (lat, lon, frames), land=None, unit="times")
    axis = fig.layout.coloraxis
    assert (axis.cmin, axis.cmax) == pytest.approx((0.0, 2.0))  # shared_log_range: uniform to 100 times uniform
    assert list(axis.colorbar.ticktext) == ["×1", "×10", "×100"]
    spec = json.loads(fig.to_json())
    last = spec["frames"][1]["data"][0]["z"]
    values = np.asarray(last if isinstance(last, list) else _decode(last), dtype=float).reshape(2, 2)
    np.testing.assert_allclose(values, [[0.0, 1.0], [2.0, np.nan]], atol=1e-6)
    assert "× uniform" in fig.data[0].hovertemplate


def _decode(typed: dict) -> np.ndarray:
    """A plotly typed array (``{"dtype": "f4", "bdata": base64}``) as numbers."""
    import base64

    return np.frombuffer(base64.b64decode(typed["bdata"]), dtype=np.dtype(typed["dtype"]))
