"""Contracts of dashboard.export: valid PNG, GIF and ZIP bytes, and the hand-made orthographic projection."""

from __future__ import annotations

import io
import math
import zipfile
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dashboard.export import (
    DPI,
    FRAME_MS,
    GlobePoints,
    _inverse_orthographic,
    density_png,
    frames_gif,
    frames_zip,
    globe_png,
    orthographic,
)
from dashboard.figures import load_land

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def land() -> dict[str, Any]:
    return load_land()


def grid(n_lat: int = 6, n_lon: int = 12, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lat = (np.arange(n_lat) + 0.5) * (180.0 / n_lat) - 90.0
    lon = (np.arange(n_lon) + 0.5) * (360.0 / n_lon) - 180.0
    times = np.linspace(0.0, 1.0, k)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    values = np.stack([-t * 0.01 * ((la - 20.0) ** 2 + (lo - 30.0) ** 2) - math.log(4 * math.pi) for t in times])
    return lat, lon, times, values


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# ---------------------------------------------------------------------------------------------
# Projection


def test_orthographic_centre_limb_and_far_side() -> None:
    lat = np.array([30.0, -30.0, -59.0, 90.0, 30.0])
    lon = np.array([40.0, -140.0, 40.0, 0.0, 70.0])
    p = orthographic(lat, lon, center_lat=30.0, center_lon=40.0)
    assert (p.x[0], p.y[0]) == pytest.approx((0.0, 0.0), abs=1e-12)  # the centre of the view
    assert p.visible.tolist() == [True, False, True, True, True]  # the antipode is hidden
    assert (p.x[2], p.y[2]) == pytest.approx((0.0, -math.sin(math.radians(89.0))))  # 89 deg south: near the rim
    assert p.x[3] == pytest.approx(0.0) and p.y[3] > 0  # the north pole straight up
    assert p.x[4] > 0  # east of the centre is to the right


def test_orthographic_stays_on_the_disc_and_inverts() -> None:
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(500, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    lat, lon = np.rad2deg(np.arcsin(xyz[:, 2])), np.rad2deg(np.arctan2(xyz[:, 1], xyz[:, 0]))
    c_lat, c_lon = -35.0, 160.0
    p = orthographic(lat, lon, center_lat=c_lat, center_lon=c_lon)
    assert np.all(p.x**2 + p.y**2 <= 1.0 + 1e-12)
    centre = np.array([math.cos(math.radians(c_lat)) * math.cos(math.radians(c_lon)),
                       math.cos(math.radians(c_lat)) * math.sin(math.radians(c_lon)), math.sin(math.radians(c_lat))])
    np.testing.assert_array_equal(p.visible, xyz @ centre >= 0)
    back_lat, back_lon = _inverse_orthographic(p.x[p.visible], p.y[p.visible], c_lat, c_lon)
    np.testing.assert_allclose(back_lat, lat[p.visible], atol=1e-6)
    dlon = (back_lon - lon[p.visible] + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(dlon * np.cos(np.deg2rad(lat[p.visible])), 0.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# PNG


def test_density_png(land: dict[str, Any]) -> None:
    lat, lon, _, values = grid()
    data = density_png(lat, lon, values[-1], land=land, title="log density", label="nats")
    assert data[:8] == PNG_MAGIC
    im = decode(data)
    assert im.format == "PNG" and im.size == (8 * DPI, round(4.4 * DPI))


def test_density_png_diverging_with_nonfinite_cells(land: dict[str, Any]) -> None:
    lat, lon, _, values = grid()
    signed = values[-1] - values[-1].mean()
    signed[0, 0] = np.nan
    signed[1, 1] = np.inf
    a = density_png(lat, lon, signed, land=land, diverging=True)
    b = density_png(lat, lon, signed, land=land, diverging=True, vmin=-1.0, vmax=3.0, cmap="coolwarm")
    assert a[:8] == PNG_MAGIC and b[:8] == PNG_MAGIC and a != b


def test_density_png_rejects_bad_shape(land: dict[str, Any]) -> None:
    lat, lon, _, values = grid()
    with pytest.raises(ValueError, match="shape"):
        density_png(lat, lon, values[-1].T, land=land)


def _count(im: Image.Image, rgb: tuple[int, int, int], box: tuple[int, int, int, int]) -> int:
    a = np.asarray(im.convert("RGB").crop(box)).astype(int)
    return int((np.abs(a - np.array(rgb)).sum(axis=-1) < 60).sum())


def test_globe_png_draws_the_near_side_only(land: dict[str, Any]) -> None:
    red, blue = (220, 0, 0), (0, 0, 220)
    points = [
        GlobePoints(np.array([10.0]), np.array([20.0]), red, "centre"),
        (np.array([-10.0]), np.array([-160.0]), blue, "antipode"),  # plain tuples work too
    ]
    data = globe_png(points, land=land, center_lat=10.0, center_lon=20.0, title="globe")
    assert data[:8] == PNG_MAGIC
    im = decode(data)
    w, h = im.size
    assert (w, h) == (6 * DPI, round(6.6 * DPI))
    # The point at the view centre is drawn in the middle of the image; the far one nowhere on the disc
    # (the legend below the disc shows a marker of each colour).
    middle = (int(w * 0.4), int(h * 0.35), int(w * 0.6), int(h * 0.6))
    assert _count(im, red, middle) > 0
    assert _count(im, blue, (0, 0, w, int(h * 0.8))) == 0


def test_globe_png_without_points(land: dict[str, Any]) -> None:
    assert globe_png([], land=land, center_lat=-90.0, center_lon=0.0)[:8] == PNG_MAGIC


# ---------------------------------------------------------------------------------------------
# Animations


def test_frames_gif(land: dict[str, Any]) -> None:
    lat, lon, times, values = grid(k=3)
    data = frames_gif(values, lat, lon, times, land=land, title="p_t", vmin=-10.0, vmax=0.0)
    assert data[:6] == b"GIF89a"
    im = decode(data)
    assert im.n_frames == len(times)
    assert im.info["duration"] == FRAME_MS and im.info["loop"] == 0
    sizes = set()
    for k in range(im.n_frames):
        im.seek(k)
        sizes.add(im.size)
    assert sizes == {(8 * DPI, round(4.4 * DPI))}


def test_frames_gif_rejects_mismatched_times(land: dict[str, Any]) -> None:
    lat, lon, times, values = grid(k=3)
    with pytest.raises(ValueError, match="K = 2"):
        frames_gif(values, lat, lon, times[:2], land=land)


def test_frames_zip(land: dict[str, Any]) -> None:
    lat, lon, times, values = grid(k=3)
    data = frames_zip(values, lat, lon, times, land=land, title="q_t", prefix="model")
    assert data[:4] == b"PK\x03\x04"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert names == ["model_000_t0.00.png", "model_001_t0.50.png", "model_002_t1.00.png"]
        for name in names:
            assert decode(zf.read(name)).format == "PNG"
