"""The PNG density map (dashboard/figures/raster.py): each pixel shows its own cell's value in the colour scale,
north up, blank where there is no density, coastlines and points where they are, a colour bar from vmin to vmax."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from plotly.colors import sample_colorscale, unlabel_rgb

from dashboard.figures.colours import COLORSCALE
from dashboard.figures.land import LandLines
from dashboard.figures.raster import BLANK_COLOR, density_image, nice_ticks


def _pixels(img) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(img.png)).convert("RGB")).astype(int)


def _viridis(fraction: float) -> np.ndarray:
    """The colour scale at ``fraction`` from plotly itself (an independent path from the module's lookup table)."""
    return np.array(unlabel_rgb(sample_colorscale(COLORSCALE, [fraction], colortype="rgb")[0]), dtype=float)


def _grid(n_lat: int = 18, n_lon: int = 36) -> tuple[np.ndarray, np.ndarray]:
    return -90 + (np.arange(n_lat) + 0.5) * 180 / n_lat, -180 + (np.arange(n_lon) + 0.5) * 360 / n_lon


def test_each_cell_has_its_value_colour_north_up_and_east_right():
    lat, lon = _grid()
    rng = np.random.default_rng(0)
    z = rng.uniform(-3.0, 2.0, (lat.size, lon.size))
    img = density_image(lat, lon, z, width=512, scale=2)
    px = _pixels(img)
    H, W = img.height * 2, img.map_width * 2
    assert px.shape[0] == H and px.shape[1] == img.width * 2
    for i, j in [(0, 0), (17, 35), (5, 20), (12, 3)]:
        # the pixel at the cell's centre: row from the top (north), column from the left (west)
        y = int((90 - lat[i]) / 180 * H)
        x = int((lon[j] + 180) / 360 * W)
        expected = _viridis((z[i, j] - z.min()) / (z.max() - z.min()))
        assert np.abs(px[y, x] - expected).max() <= 3, (i, j)
    assert img.vmin == pytest.approx(z.min()) and img.vmax == pytest.approx(z.max())


def test_blank_cells_fixed_range_and_linear_scale():
    lat, lon = _grid(2, 2)
    z = np.array([[np.nan, 0.0], [-np.inf, np.log(3.0)]])
    img = density_image(lat, lon, z, vmin=0.0, vmax=2.0, log_scale=False, width=400, scale=1)
    px = _pixels(img)
    H, W = img.height, img.map_width
    # south-west cell NaN and north-west exp(-inf) = 0 on the linear scale: the low end, not blank
    assert tuple(px[3 * H // 4, W // 4]) == BLANK_COLOR
    assert np.abs(px[H // 4, W // 4] - _viridis(0.0)).max() <= 3
    # exp(0) = 1 is half way from 0 to 2; exp(log 3) = 3 is clipped to the top
    assert np.abs(px[3 * H // 4, 3 * W // 4] - _viridis(0.5)).max() <= 3
    assert np.abs(px[H // 4, 3 * W // 4] - _viridis(1.0)).max() <= 3
    assert (img.vmin, img.vmax) == (0.0, 2.0)


def test_coastlines_and_points_are_drawn_where_they_are():
    lat, lon = _grid()
    z = np.zeros((lat.size, lon.size))
    coast = LandLines(np.array([-90.0, 90.0, np.nan]), np.array([0.0, 0.0, np.nan]))  # the equator, 90W to 90E
    img = density_image(lat, lon, z, coast=coast, points=(np.array([45.0]), np.array([-135.0]), [230, 97, 1]),
                        width=600, scale=1)
    px = _pixels(img)
    H, W = img.height, img.map_width
    assert tuple(px[H // 2, W // 2]) == (255, 255, 255)  # on the line
    assert tuple(px[H // 2, W // 16]) != (255, 255, 255)  # 170W: off the line
    y, x = int((90 - 45) / 180 * H), int((-135 + 180) / 360 * W)
    assert tuple(px[y, x]) == (230, 97, 1)


def test_colour_bar_runs_from_vmin_at_the_bottom_to_vmax_at_the_top():
    lat, lon = _grid()
    img = density_image(lat, lon, np.zeros((lat.size, lon.size)), vmin=-4.0, vmax=1.0, width=600, scale=1)
    px = _pixels(img)
    bar = px[:, img.map_width + 14]  # the middle of the bar (8 px in, 12 px wide)
    # the bar is the longest run of rows that are not blank in that column (the label above is short text)
    inked = np.concatenate([[0], (bar != 255).any(axis=1).astype(int), [0]])
    starts, ends = np.flatnonzero(np.diff(inked) == 1), np.flatnonzero(np.diff(inked) == -1)
    longest = int(np.argmax(ends - starts))
    top, bottom = starts[longest] + 2, ends[longest] - 3
    assert bottom - top > img.height // 2
    assert np.abs(bar[top] - _viridis(1.0)).max() <= 12
    assert np.abs(bar[bottom] - _viridis(0.0)).max() <= 12


@pytest.mark.parametrize(("lo", "hi"), [(-4.3, 1.2), (0.001, 0.0042), (-17.0, 2.5), (3.0, 3.0)])
def test_nice_ticks_are_round_and_inside(lo, hi):
    ticks = nice_ticks(lo, hi, 6)
    assert ticks and all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    if hi > lo:
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0])
        mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
        assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-9
        assert 3 <= len(ticks) <= 12


def test_bad_shape_is_one_clear_error():
    lat, lon = _grid()
    with pytest.raises(ValueError, match="log_prob must have shape"):
        density_image(lat, lon, np.zeros((3, 3)))
