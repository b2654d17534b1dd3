"""Figures from arrays: flat density maps and training curves (plotly), an interactive globe (pydeck).

One module per concept, every public name re-exported here as ``figures.NAME``:

- :mod:`~dashboard.figures.land`: the bundled land polygons and their coastlines;
- :mod:`~dashboard.figures.colours`: colour constants, colour scales and their ranges, the HTML legend;
- :mod:`~dashboard.figures.geometry`: pure numpy on points, paths and grids (view centre, great-circle
  paths cut at the antimeridian, the weighted PPD residual);
- :mod:`~dashboard.figures.maps`: plotly flat maps and training curves;
- :mod:`~dashboard.figures.pointmaps`: a plotly flat map of a point set, framed on the points;
- :mod:`~dashboard.figures.globes`: pydeck globes;
- :mod:`~dashboard.figures.colorbar`: the HTML colour bar of a density on a globe.

Every figure works offline: no map tiles, no basemap style, no topojson fetched from a CDN. Coastlines
come from the bundled ``assets/land.geojson`` (see :func:`load_land`); the globe is an ocean polygon
and that land on a deck.gl ``_GlobeView`` with ``map_provider=None``. Nothing here imports torch.

The coordinate order is named once: arguments are ``lat, lon`` in degrees; GeoJSON positions and
deck.gl accessors are ``[lon, lat]``, and plotly maps put longitude on x.
"""

from __future__ import annotations

from dashboard.figures.animation import FRAME_MS, path_animation
from dashboard.figures.colorbar import colorbar_html, colorbar_ticks
from dashboard.figures.colours import (
    COAST_COLOR,
    COLORSCALE,
    DATA_COLOR,
    DIVERGING_COLORSCALE,
    LAND_COLOR,
    OCEAN_COLOR,
    SAMPLE_COLOR,
    TEST_COLOR,
    TRAJECTORY_COLOR,
    legend_html,
    shared_log_range,
    symmetric_limit,
    value_colors,
)
from dashboard.figures.geometry import (
    WeightedResidual,
    cell_areas,
    split_antimeridian,
    trajectory_paths,
    view_centre,
    weighted_residual,
)
from dashboard.figures.globes import (
    EARTH_RADIUS_M,
    PointLayer,
    globe,
    globe_zoom,
    points_payload,
    trajectories_globe,
)
from dashboard.figures.land import LAND_PATH, LandLines, land_lines, load_land
from dashboard.figures.maps import LIVE_RANGE, UNIFORM_NLL, curves, density_map, live_density_map, residual_map
from dashboard.figures.pointmaps import lon_window, points_map

__all__ = [
    "COAST_COLOR",
    "COLORSCALE",
    "DATA_COLOR",
    "DIVERGING_COLORSCALE",
    "EARTH_RADIUS_M",
    "FRAME_MS",
    "LAND_COLOR",
    "LAND_PATH",
    "LIVE_RANGE",
    "OCEAN_COLOR",
    "SAMPLE_COLOR",
    "TEST_COLOR",
    "TRAJECTORY_COLOR",
    "UNIFORM_NLL",
    "LandLines",
    "PointLayer",
    "WeightedResidual",
    "cell_areas",
    "colorbar_html",
    "colorbar_ticks",
    "curves",
    "density_map",
    "globe",
    "globe_zoom",
    "land_lines",
    "live_density_map",
    "legend_html",
    "load_land",
    "lon_window",
    "path_animation",
    "points_map",
    "points_payload",
    "residual_map",
    "shared_log_range",
    "split_antimeridian",
    "symmetric_limit",
    "trajectories_globe",
    "trajectory_paths",
    "value_colors",
    "view_centre",
    "weighted_residual",
]
