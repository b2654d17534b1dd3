"""Density maps as PNG images: a learned density the browser shows at once, without a chart library.

A plotly chart costs the browser 2-5 s on a page's first view: it loads and starts plotly's 4.7 MB script
before it draws anything, whatever the figure holds (docs/benchmarks.md). An image is drawn as soon as it
arrives. Results opens on this image; its interactive map (hover values, zoom) is a click away.

The map is equirectangular: longitude ``lon`` in [-180, 180] left to right, latitude ``lat`` in
[-90, 90] bottom to top, one degree as wide as it is tall. A grid cell is drawn as a block of one
colour (as plotly's heat map draws it), coastlines as white lines, points as dots, and a colour bar
with its ticks and label on the right.

>>> lat, lon = np.array([-45.0, 45.0]), np.array([-90.0, 90.0])
>>> img = density_image(lat, lon, np.array([[0.0, 1.0], [2.0, 3.0]]), width=360, scale=1)
>>> (img.vmin, img.vmax, img.width, img.height)
(0.0, 3.0, 360, 135)
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .colours import value_colors
from .land import LandLines

__all__ = ["BLANK_COLOR", "MapImage", "density_image", "nice_ticks", "points_image"]

#: Cells whose value is not finite (no density there), and the space around the colour bar.
BLANK_COLOR: tuple[int, int, int] = (255, 255, 255)
_COAST_RGB = (255, 255, 255)
#: A points map's background and coastlines.
_SEA_RGB, _LINE_RGB = (246, 247, 250), (140, 146, 158)
_TEXT_RGB = (49, 51, 63)
#: Width of the colour bar's panel, in display pixels (the bar, its ticks and its label).
_BAR_PANEL = 90
_MAX_POINTS = 5_000


@dataclass(frozen=True)
class MapImage:
    """A PNG map: ``png`` is ``scale`` times ``width`` x ``height`` display pixels (sharp on dense screens and
    projectors); ``vmin``/``vmax`` are the colour bar's ends in the units shown, ``map_width`` the map's part of
    ``width`` (the rest is the colour bar)."""

    png: bytes
    width: int
    height: int
    map_width: int
    vmin: float
    vmax: float


def nice_ticks(vmin: float, vmax: float, n: int = 5) -> list[float]:
    """About ``n`` round numbers (steps of 1, 2 or 5 times a power of ten) inside ``[vmin, vmax]``.

    >>> nice_ticks(-4.3, 1.2, 6)
    [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0]
    >>> nice_ticks(0.0, 0.0)
    [0.0]
    """
    if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmax <= vmin:
        return [float(vmin)] if math.isfinite(vmin) else []
    raw = (vmax - vmin) / max(1, n)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    first = math.ceil(vmin / step - 1e-9)
    last = math.floor(vmax / step + 1e-9)
    return [round(k * step, 12) + 0.0 for k in range(first, last + 1)]


def _edges(centres: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Cell edges of sorted cell ``centres``: midpoints between neighbours, the outer edges half a cell out,
    clipped to ``[lo, hi]``."""
    if centres.size == 1:
        return np.array([lo, hi])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.clip(np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]]), lo, hi)


def _cell_index(pixel_values: np.ndarray, centres: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """For each pixel coordinate (degrees), the index of the cell (in ``centres``' own order) it lies in, or -1."""
    order = np.argsort(centres)
    edges = _edges(centres[order], lo, hi)
    k = np.searchsorted(edges, pixel_values, side="right") - 1
    inside = (k >= 0) & (k < centres.size)
    return np.where(inside, order[np.clip(k, 0, centres.size - 1)], -1)


def _font_file() -> str | None:
    """DejaVu Sans as matplotlib ships it (it has ×, − and superscript digits; Pillow's own default font lacks
    them), found without importing matplotlib; None where it is missing."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.exists(path):
            return path
    return None


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_file()
    return ImageFont.truetype(path, size=size) if path else ImageFont.load_default(size=size)


def _colour_bar(draw: ImageDraw.ImageDraw, canvas: Image.Image, x0: int, height: int, vmin: float, vmax: float,
                label: str, ticks: Sequence[tuple[float, str]] | None, s: int) -> None:
    """The colour bar in the panel starting at pixel column ``x0``: gradient from ``vmin`` (bottom) to ``vmax``
    (top), tick marks with their labels, and ``label`` written upwards along the panel's right edge."""
    top, bottom = int(0.06 * height), int(0.94 * height)
    bar_x, bar_w = x0 + 8 * s, 12 * s
    values = np.linspace(vmax, vmin, bottom - top)
    colours = value_colors(values, vmin=vmin, vmax=vmax)
    for i, c in enumerate(colours):
        draw.line([(bar_x, top + i), (bar_x + bar_w - 1, top + i)], fill=tuple(int(v) for v in c))
    draw.rectangle([bar_x, top, bar_x + bar_w - 1, bottom - 1], outline=_TEXT_RGB, width=max(1, s // 2))
    font = _font(11 * s)
    if ticks is None:
        ticks = [(v, f"{v:g}".replace("-", "\u2212")) for v in nice_ticks(vmin, vmax, 6)]
    span = vmax - vmin if vmax > vmin else 1.0
    for value, text in ticks:
        if not vmin - 1e-9 * span <= value <= vmax + 1e-9 * span:
            continue
        y = bottom - 1 - (value - vmin) / span * (bottom - 1 - top)
        draw.line([(bar_x + bar_w, y), (bar_x + bar_w + 4 * s, y)], fill=_TEXT_RGB, width=max(1, s // 2))
        draw.text((bar_x + bar_w + 6 * s, y), text, fill=_TEXT_RGB, font=font, anchor="lm")
    # the label, upwards, centred on the bar, at the panel's right edge
    box = draw.textbbox((0, 0), label, font=font)
    strip = Image.new("RGB", (box[2] - box[0] + 4 * s, box[3] - box[1] + 4 * s), BLANK_COLOR)
    ImageDraw.Draw(strip).text((2 * s - box[0], 2 * s - box[1]), label, fill=_TEXT_RGB, font=font)
    strip = strip.rotate(90, expand=True)
    x = x0 + _BAR_PANEL * s - strip.width - 2 * s
    canvas.paste(strip, (x, max(0, (top + bottom) // 2 - strip.height // 2)))


def density_image(
    lat: np.ndarray,
    lon: np.ndarray,
    log_prob: np.ndarray,
    *,
    coast: LandLines | None = None,
    log_scale: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    label: str = "log density (nats)",
    ticks: Sequence[tuple[float, str]] | None = None,
    points: tuple[np.ndarray, np.ndarray, Sequence[int]] | None = None,
    width: int = 900,
    scale: int = 2,
) -> MapImage:
    """The density on a lat/lon grid as a PNG map with coastlines and a colour bar.

    ``lat`` (n_lat,) and ``lon`` (n_lon,) are cell centres in degrees and ``log_prob[i, j]`` the log density at
    ``(lat[i], lon[j])`` (:func:`dashboard.figures.density_map` takes the same arrays). The colour shows
    ``log_prob`` when ``log_scale`` else ``exp(log_prob)``, from ``vmin`` to ``vmax`` (default: the finite
    range), clipped outside; cells without a finite value are left blank. ``ticks`` are the colour bar's
    ``(value, text)`` pairs (default: round numbers); ``points`` is ``(lat, lon, rgb)`` drawn as dots (at most
    5,000, evenly thinned). ``width`` is the display width in pixels (map and colour bar); the map is half
    as tall as it is wide; the PNG has ``scale`` pixels per display pixel.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    log_prob = np.asarray(log_prob, dtype=np.float64)
    if log_prob.shape != (lat.size, lon.size):
        raise ValueError(f"log_prob must have shape ({lat.size}, {lon.size}), got {log_prob.shape}")
    if width < _BAR_PANEL + 100 or scale < 1:
        raise ValueError(f"width must be at least {_BAR_PANEL + 100} and scale at least 1")
    z = log_prob if log_scale else np.exp(log_prob)
    finite = np.isfinite(z)
    lo = float(np.min(z[finite])) if vmin is None and finite.any() else float(vmin if vmin is not None else 0.0)
    hi = float(np.max(z[finite])) if vmax is None and finite.any() else float(vmax if vmax is not None else 1.0)
    map_w = (width - _BAR_PANEL) // 2 * 2
    height = map_w // 2
    s = int(scale)
    W, H = map_w * s, height * s

    # Pixel centres in degrees, north up; each takes the colour of the cell it lies in.
    px_lon = -180.0 + (np.arange(W) + 0.5) * 360.0 / W
    px_lat = 90.0 - (np.arange(H) + 0.5) * 180.0 / H
    cols = _cell_index(px_lon, lon, -180.0, 180.0)
    rows = _cell_index(px_lat, lat, -90.0, 90.0)
    cell_rgb = value_colors(np.where(finite, z, lo), vmin=lo, vmax=hi)
    cell_rgb[~finite] = BLANK_COLOR
    rgb = cell_rgb[np.clip(rows, 0, None)[:, None], np.clip(cols, 0, None)[None, :]]
    rgb[(rows[:, None] < 0) | (cols[None, :] < 0)] = BLANK_COLOR

    canvas = Image.new("RGB", (width * s, H), BLANK_COLOR)
    canvas.paste(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)

    _draw_coast(draw, coast, W, H, _COAST_RGB, s)
    if points is not None:
        _draw_points(draw, points, W, H, s)
    draw.rectangle([0, 0, W - 1, H - 1], outline=(200, 200, 200), width=1)
    _colour_bar(draw, canvas, W, H, lo, hi, label, ticks, s)

    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False, compress_level=6)
    return MapImage(buf.getvalue(), width, height, map_w, lo, hi)


def _xy(lon: np.ndarray, lat: np.ndarray, W: int, H: int) -> np.ndarray:
    """Pixel positions of points in degrees on a ``W x H`` world map (equirectangular, north up)."""
    return np.stack([(lon + 180.0) / 360.0 * W, (90.0 - lat) / 180.0 * H], axis=1)


def _draw_coast(draw: ImageDraw.ImageDraw, coast: LandLines | None, W: int, H: int, rgb: tuple[int, int, int],
                s: int) -> None:
    """Coastlines as lines of colour ``rgb`` (NaN-separated parts, each drawn on its own)."""
    if coast is None or not coast.lon.size:
        return
    breaks = np.flatnonzero(~np.isfinite(coast.lon) | ~np.isfinite(coast.lat))
    for part_lon, part_lat in zip(np.split(coast.lon, breaks), np.split(coast.lat, breaks), strict=True):
        ok = np.isfinite(part_lon) & np.isfinite(part_lat)
        if ok.sum() >= 2:
            draw.line([tuple(p) for p in _xy(part_lon[ok], part_lat[ok], W, H)], fill=rgb, width=max(1, s // 2 + 1))


def _draw_points(draw: ImageDraw.ImageDraw, points: tuple[np.ndarray, np.ndarray, Sequence[int]], W: int, H: int,
                 s: int, max_points: int = _MAX_POINTS) -> None:
    """Points ``(lat, lon, rgb)`` as dots with a white rim, at most ``max_points`` (evenly thinned)."""
    plat, plon, colour = points
    plat, plon = np.asarray(plat, dtype=np.float64).ravel(), np.asarray(plon, dtype=np.float64).ravel()
    ok = np.isfinite(plat) & np.isfinite(plon)
    plat, plon = plat[ok], plon[ok]
    keep = np.linspace(0, plat.size - 1, min(plat.size, max_points)).round().astype(int) if plat.size else []
    r = 2.2 * s
    fill = tuple(int(c) for c in colour[:3])
    for x, y in _xy(plon[keep], plat[keep], W, H):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=(255, 255, 255), width=max(1, s // 2))


def points_image(
    sets: Sequence[tuple[np.ndarray, np.ndarray, Sequence[int]]],
    *,
    coast: LandLines | None = None,
    width: int = 900,
    scale: int = 2,
) -> bytes:
    """Point sets ``(lat, lon, rgb)`` on a world map as a PNG: grey coastlines on a light background, each set
    as dots in its colour (at most 5,000 each, evenly thinned), drawn in order (the last on top). The map is
    ``width`` display pixels wide and half as tall; the PNG has ``scale`` pixels per display pixel.

    >>> png = points_image([(np.array([0.0]), np.array([0.0]), (255, 0, 0))], width=200, scale=1)
    >>> Image.open(io.BytesIO(png)).size
    (200, 100)
    """
    if width < 100 or scale < 1:
        raise ValueError("width must be at least 100 and scale at least 1")
    s = int(scale)
    W, H = (width // 2 * 2) * s, (width // 2) * s
    canvas = Image.new("RGB", (W, H), _SEA_RGB)
    draw = ImageDraw.Draw(canvas)
    _draw_coast(draw, coast, W, H, _LINE_RGB, s)
    for points in sets:
        _draw_points(draw, points, W, H, s)
    draw.rectangle([0, 0, W - 1, H - 1], outline=(200, 200, 200), width=1)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
