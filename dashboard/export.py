"""Figures as files to download: PNG maps and globes, animated GIFs and ZIPs of PNG frames.

Pure functions from arrays to bytes, drawn with matplotlib's Agg canvas (no pyplot, no display, no
network) and, for GIFs, pillow. Coordinates are ``lat, lon`` in degrees, as in :mod:`dashboard.figures`;
the coastlines are its :func:`~dashboard.figures.land.land_lines`.

The globe is an orthographic projection computed here (:func:`orthographic`): the hemisphere facing
the viewer, land filled from a raster of the land polygons, coastlines and a 30 deg graticule.

>>> p = orthographic(np.array([0.0, 0.0]), np.array([0.0, 180.0]), center_lat=0.0, center_lon=0.0)
>>> p.x.round(6).tolist(), p.y.round(6).tolist(), p.visible.tolist()
([0.0, 0.0], [0.0, 0.0], [True, False])
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image

from dashboard.figures.colours import LAND_COLOR, OCEAN_COLOR
from dashboard.figures.land import land_lines, rings

if TYPE_CHECKING:  # matplotlib loads on the first download, not with the pages (0.7 s of a first page view)
    from matplotlib.figure import Figure

__all__ = [
    "GlobePoints",
    "Projected",
    "density_png",
    "frames_gif",
    "frames_zip",
    "globe_png",
    "orthographic",
]

#: Image resolution (dots per inch) of every export.
DPI: int = 120
#: Milliseconds each frame of an animated GIF is shown.
FRAME_MS: int = 400
_MAP_SIZE: tuple[float, float] = (8.0, 4.4)
_GLOBE_SIZE: tuple[float, float] = (6.0, 6.6)
#: Resolution of the land raster the globe is filled from, cells per degree.
_LAND_RASTER_PER_DEG: int = 4
_GLOBE_PIXELS: int = 600


class Projected(NamedTuple):
    """Orthographic coordinates on the unit disc and whether each point faces the viewer."""

    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray


class GlobePoints(NamedTuple):
    """One set of points for :func:`globe_png`: degrees, an RGB(A) 0-255 colour and a legend label."""

    lat: np.ndarray
    lon: np.ndarray
    color: Sequence[int]
    label: str


def orthographic(lat: np.ndarray, lon: np.ndarray, *, center_lat: float, center_lon: float) -> Projected:
    """The sphere seen from far away above ``(center_lat, center_lon)``: ``x`` east, ``y`` north.

    ``x = cos(lat) sin(lon - lon0)``, ``y = cos(lat0) sin(lat) - sin(lat0) cos(lat) cos(lon - lon0)``;
    a point is visible when its cosine of the angle to the centre,
    ``sin(lat0) sin(lat) + cos(lat0) cos(lat) cos(lon - lon0)``, is at least 0.
    """
    la = np.deg2rad(np.asarray(lat, dtype=np.float64))
    dlo = np.deg2rad(np.asarray(lon, dtype=np.float64) - center_lon)
    la0 = np.deg2rad(center_lat)
    x = np.cos(la) * np.sin(dlo)
    y = np.cos(la0) * np.sin(la) - np.sin(la0) * np.cos(la) * np.cos(dlo)
    cos_c = np.sin(la0) * np.sin(la) + np.cos(la0) * np.cos(la) * np.cos(dlo)
    return Projected(x, y, cos_c >= 0.0)


def _inverse_orthographic(x: np.ndarray, y: np.ndarray, center_lat: float, center_lon: float) -> tuple[np.ndarray, ...]:
    """``(lat, lon)`` in degrees of disc points ``x, y`` (``x**2 + y**2 <= 1``) of :func:`orthographic`."""
    la0 = np.deg2rad(center_lat)
    rho = np.hypot(x, y)
    c = np.arcsin(np.clip(rho, 0.0, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rho > 0, y * np.sin(c) * np.cos(la0) / np.where(rho > 0, rho, 1.0), 0.0)
    lat = np.arcsin(np.clip(np.cos(c) * np.sin(la0) + ratio, -1.0, 1.0))
    east = x * np.sin(c)
    north = rho * np.cos(c) * np.cos(la0) - y * np.sin(c) * np.sin(la0)
    lon = np.deg2rad(center_lon) + np.arctan2(east, north)
    return np.rad2deg(lat), (np.rad2deg(lon) + 180.0) % 360.0 - 180.0


_LAND_MASKS: dict[int, tuple[dict[str, Any], np.ndarray]] = {}


def _land_mask(land: dict[str, Any]) -> np.ndarray:
    """Boolean ``(180 n, 360 n)`` raster of ``land``, row 0 at 90 deg N, column 0 at 180 deg W (``n`` =
    :data:`_LAND_RASTER_PER_DEG`); drawn once per land object with the Agg rasteriser."""
    hit = _LAND_MASKS.get(id(land))
    if hit is not None and hit[0] is land:
        return hit[1]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = _LAND_RASTER_PER_DEG
    fig = Figure(figsize=(360 * n / 100, 180 * n / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    for ring in rings(land):
        xy = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        if len(xy) >= 3:
            ax.fill(xy[:, 0], xy[:, 1], color="black", linewidth=0, antialiased=False)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    mask = rgba[..., 0] < 128
    # Holes (lakes) are rings too; with ``fill`` they paint over as land, which is fine at this scale.
    if len(_LAND_MASKS) > 4:
        _LAND_MASKS.clear()
    _LAND_MASKS[id(land)] = (land, mask)
    return mask


def _rgba01(color: Sequence[int]) -> tuple[float, ...]:
    """An RGB or RGBA 0-255 colour as a matplotlib RGBA tuple of floats in [0, 1]."""
    r, g, b, *a = (int(v) for v in color)
    return (r / 255, g / 255, b / 255, (a[0] if a else 255) / 255)


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _edges(centres: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Cell edges of a regular grid of cell centres, clipped to ``[lo, hi]``."""
    c = np.asarray(centres, dtype=np.float64).ravel()
    if c.size == 1:
        return np.array([lo, hi])
    mid = (c[:-1] + c[1:]) / 2
    return np.clip(np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]]), lo, hi)


def _degree_ticks(ax: Any) -> None:
    lon_ticks = list(range(-180, 181, 60))
    lat_ticks = list(range(-90, 91, 30))
    ax.set_xticks(lon_ticks, [f"{abs(v)}°{'E' if v > 0 else 'W' if v < 0 else ''}" for v in lon_ticks])
    ax.set_yticks(lat_ticks, [f"{abs(v)}°{'N' if v > 0 else 'S' if v < 0 else ''}" for v in lat_ticks])
    ax.tick_params(labelsize=8)


def _cmap_name(cmap: str | None, diverging: bool) -> str:
    return cmap or ("RdBu_r" if diverging else "viridis")


def _gif_palette(cmap: str) -> Image.Image:
    """A ``P`` image holding one palette for every frame: 192 colours along ``cmap`` and 64 greys (text,
    axes, coastlines), so that colour bars and maps keep their colours instead of an adaptive palette's."""
    from matplotlib import colormaps

    colours = colormaps[cmap](np.linspace(0.0, 1.0, 192))[:, :3]
    greys = np.repeat(np.linspace(0.0, 1.0, 64)[:, None], 3, axis=1)
    table = np.rint(np.concatenate([colours, greys]) * 255).astype(np.uint8)
    pal = Image.new("P", (1, 1))
    pal.putpalette(table.ravel().tolist())
    return pal


def _map_figure(
    lat: np.ndarray, lon: np.ndarray, values: np.ndarray, *, land: dict[str, Any], title: str, cmap: str | None,
    vmin: float | None, vmax: float | None, diverging: bool, label: str,
) -> Figure:
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (lat.size, lon.size):
        raise ValueError(f"values must have shape ({lat.size}, {lon.size}), got {values.shape}")
    finite = values[np.isfinite(values)]
    if diverging:
        m = max(abs(vmin or 0.0), abs(vmax or 0.0))
        if m == 0.0:
            m = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
        vmin, vmax = -(m or 1.0), m or 1.0
    from matplotlib.figure import Figure

    cmap = _cmap_name(cmap, diverging)
    fig = Figure(figsize=_MAP_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(_edges(lon, -180, 180), _edges(lat, -90, 90), np.ma.masked_invalid(values), cmap=cmap,
                         vmin=vmin, vmax=vmax, shading="flat")
    coast = land_lines(land)
    ax.plot(coast.lon, coast.lat, color="0.35" if diverging else "white", linewidth=0.5)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_facecolor("0.92")
    _degree_ticks(ax)
    fig.colorbar(mesh, ax=ax, shrink=0.85, label=label)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def density_png(
    lat: np.ndarray,
    lon: np.ndarray,
    values: np.ndarray,
    *,
    land: dict[str, Any],
    title: str = "",
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    diverging: bool = False,
    label: str = "",
) -> bytes:
    """A PNG of an equirectangular map of ``values`` (``(n_lat, n_lon)`` on cell centres ``lat``,
    ``lon``) with coastlines and a colour bar labelled ``label``.

    The colour map is ``cmap``, by default viridis, or ``RdBu_r`` when ``diverging``; a diverging map
    is centred at 0 with limits ``+-max(|vmin|, |vmax|)``, or the 99th percentile of ``|values|`` when
    neither is given. Non-finite cells are grey.
    """
    fig = _map_figure(lat, lon, values, land=land, title=title, cmap=cmap, vmin=vmin, vmax=vmax,
                      diverging=diverging, label=label)
    return _png(fig)


def _graticule(center_lat: float, center_lon: float, step: float = 30.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Visible parts of the meridians and parallels every ``step`` deg, as ``(x, y)`` with NaN gaps."""
    t = np.linspace(-180.0, 180.0, 361)
    s = np.linspace(-90.0, 90.0, 181)
    lines = [(np.full_like(t, la), t) for la in np.arange(-90 + step, 90, step)]
    lines += [(s, np.full_like(s, lo)) for lo in np.arange(-180, 180, step)]
    out = []
    for la, lo in lines:
        p = orthographic(la, lo, center_lat=center_lat, center_lon=center_lon)
        out.append((np.where(p.visible, p.x, np.nan), np.where(p.visible, p.y, np.nan)))
    return out


def _globe_image(land: dict[str, Any], center_lat: float, center_lon: float, n: int = _GLOBE_PIXELS) -> np.ndarray:
    """``(n, n, 4)`` float RGBA of the visible hemisphere: land over ocean, transparent off the disc."""
    mask = _land_mask(land)
    per = _LAND_RASTER_PER_DEG
    u = (np.arange(n) + 0.5) / n * 2 - 1
    x, y = np.meshgrid(u, -u)  # row 0 at the top
    inside = x**2 + y**2 <= 1.0
    lat, lon = _inverse_orthographic(np.where(inside, x, 0.0), np.where(inside, y, 0.0), center_lat, center_lon)
    rows = np.clip(((90.0 - lat) * per).astype(np.int64), 0, mask.shape[0] - 1)
    cols = np.clip(((lon + 180.0) * per).astype(np.int64), 0, mask.shape[1] - 1)
    is_land = mask[rows, cols]
    img = np.zeros((n, n, 4))
    img[inside & is_land] = _rgba01(LAND_COLOR)
    img[inside & ~is_land] = _rgba01(OCEAN_COLOR)
    return img


def globe_png(
    points: Sequence[GlobePoints | tuple[np.ndarray, np.ndarray, Sequence[int], str]],
    *,
    land: dict[str, Any],
    center_lat: float = 20.0,
    center_lon: float = 0.0,
    title: str = "",
) -> bytes:
    """A PNG of the globe seen from above ``(center_lat, center_lon)`` (orthographic: only the near
    hemisphere), land, coastlines, a graticule and point sets ``(lat, lon, rgba 0-255, label)`` in a
    legend that says how many of each face the viewer."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    fig = Figure(figsize=_GLOBE_SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_xlim(-1.03, 1.03)
    ax.set_ylim(-1.03, 1.03)
    ax.imshow(_globe_image(land, center_lat, center_lon), extent=(-1, 1, -1, 1), interpolation="bilinear", zorder=0)
    for gx, gy in _graticule(center_lat, center_lon):
        ax.plot(gx, gy, color="0.55", linewidth=0.3, alpha=0.7, zorder=1)
    coast = land_lines(land)
    c = orthographic(coast.lat, coast.lon, center_lat=center_lat, center_lon=center_lon)
    ax.plot(np.where(c.visible, c.x, np.nan), np.where(c.visible, c.y, np.nan), color="0.45", linewidth=0.5,
            zorder=2)
    ax.add_patch(Circle((0, 0), 1.0, fill=False, edgecolor="0.4", linewidth=0.8, zorder=3))
    for lat, lon, color, label in points:
        lat = np.asarray(lat, dtype=np.float64).ravel()
        p = orthographic(lat, lon, center_lat=center_lat, center_lon=center_lon)
        ax.scatter(p.x[p.visible], p.y[p.visible], s=7, color=[_rgba01(color)], linewidths=0, zorder=4,
                   label=f"{label} ({int(p.visible.sum())} of {lat.size} on this side)")
    if points:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1, fontsize=9, frameon=False,
                  markerscale=2.0)
    if title:
        ax.set_title(title, fontsize=11)
    return _png(fig)


def _frame_figures(
    frames_values: np.ndarray, lat: np.ndarray, lon: np.ndarray, times: np.ndarray, *, land: dict[str, Any],
    title: str, vmin: float | None, vmax: float | None, cmap: str | None, diverging: bool, label: str,
) -> list[Figure]:
    values = np.asarray(frames_values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64).ravel()
    if values.ndim != 3 or values.shape[0] != times.size:
        raise ValueError(f"frames_values must have shape (K, n_lat, n_lon) with K = {times.size}, got {values.shape}")
    finite = values[np.isfinite(values)]
    if not diverging:  # one colour scale for every frame
        vmin = float(finite.min()) if vmin is None and finite.size else vmin
        vmax = float(finite.max()) if vmax is None and finite.size else vmax
    return [
        _map_figure(lat, lon, v, land=land, title=f"{title}   t = {t:.2f}" if title else f"t = {t:.2f}", cmap=cmap,
                    vmin=vmin, vmax=vmax, diverging=diverging, label=label)
        for v, t in zip(values, times, strict=True)
    ]


def frames_gif(
    frames_values: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    times: np.ndarray,
    *,
    land: dict[str, Any],
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | None = None,
    diverging: bool = False,
    label: str = "",
    frame_ms: int = FRAME_MS,
) -> bytes:
    """An animated GIF, looping, one map per frame (``frames_values`` is ``(K, n_lat, n_lon)``, one
    frame per time in ``times``), each shown ``frame_ms`` ms with its ``t`` in the title. All frames
    share one colour scale: ``vmin``/``vmax``, by default the finite extremes over all frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    palette = _gif_palette(_cmap_name(cmap, diverging))
    images = []
    for fig in _frame_figures(frames_values, lat, lon, times, land=land, title=title, vmin=vmin, vmax=vmax,
                              cmap=cmap, diverging=diverging, label=label):
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        images.append(rgb.quantize(palette=palette, dither=Image.Dither.NONE))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(frame_ms), loop=0,
                   optimize=False)
    return buf.getvalue()


def frames_zip(
    frames_values: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    times: np.ndarray,
    *,
    land: dict[str, Any],
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | None = None,
    diverging: bool = False,
    label: str = "",
    prefix: str = "frame",
) -> bytes:
    """A ZIP of PNG maps, one per frame, named ``{prefix}_{k:03d}_t{t:.2f}.png``; otherwise as :func:`frames_gif`."""
    figs = _frame_figures(frames_values, lat, lon, times, land=land, title=title, vmin=vmin, vmax=vmax, cmap=cmap,
                          diverging=diverging, label=label)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for k, (fig, t) in enumerate(zip(figs, np.asarray(times, dtype=np.float64).ravel(), strict=True)):
            zf.writestr(f"{prefix}_{k:03d}_t{t:.2f}.png", _png(fig))
    return buf.getvalue()
