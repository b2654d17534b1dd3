"""Target path page: the path a flow will be trained to follow, shown before any model exists.

For the chosen data set it draws the PPD target ``p_t`` (the mixture of von Mises-Fisher kernels over the training
points with the uniform floor, :mod:`cnfm_core.pathpreview`, drawn by :mod:`cnfm_core.pathmaps`) at 21 times from
t = 0 to t = 1, as one map that plays and scrubs in the browser, with exact samples of ``p_t`` over it. A change of
t never asks the server; a change of κ_max recomputes (cached per data set, split, seed and κ_max; the two values
next to the shown one are computed in the background while it is on screen, so a one-step move finds them). The training
rows are those a run with the Train page's split and seed would use; the schedule and the floor are the defaults
of :class:`~cnfm_core.config.TrainConfig`.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx

from cnfm_core.config import KAPPA_CAP, KAPPA_MIN, TrainConfig
from cnfm_core.data import DataError, PointSet
from cnfm_core.geo import xyz_to_latlon
from cnfm_core.pathmaps import path_map
from cnfm_core.pathpreview import preview_path, training_rows
from dashboard import figures, state, units, uploads
from dashboard.figures.pathpreview import PLAY_MS, target_path_figure
from dashboard.text import plain

#: κ_max choices: the Train page's (without "auto"), on a log scale.
KAPPAS = ["100", "300", "1000", "3000", "10000", "30000", "100000", "300000"]
#: The κ_max shown first when the Train page's setting is "auto": what training uses on smooth data.
DEFAULT_KAPPA = f"{KAPPA_MIN:.0f}"
#: The times of the frames: t = 0, 0.05, ..., 1.
TIMES = np.linspace(0.0, 1.0, 21)
#: Samples of p_t drawn at each time (more cost the browser time at every frame: measured in bench_explore.py).
N_SAMPLES = 500
SPLITS = ["standard", "dedup", "none"]
#: Seconds the background computation of the neighbouring κ_max values waits, so that the browser draws first.
PREFETCH_DELAY_S = 1.5
PLOTLY_CONFIG = {"toImageButtonOptions": {"format": "png", "scale": 2}, "displaylogo": False}

MATHS = r"""
**The path is a mixture.** Put a small bump of probability on each training point $y_1, \dots, y_N$, and spread a
thin layer evenly over the whole sphere (the *floor*, a share $w = FLOOR$ of the probability). At time $t$ the
density at a place $x$ is

$$p_t(x) = (1 - w)\,\frac{1}{N}\sum_{i=1}^{N} \mathrm{vMF}\big(x;\, y_i,\, \kappa(t)\big) + \frac{w}{4\pi}.$$

The sphere's area is $4\pi$, so $\frac{1}{4\pi}$ is the *uniform* density: probability spread evenly everywhere
(×1 on the colour bar).

**Each bump is a von Mises-Fisher (vMF) kernel**, the sphere's bell curve around a point $y$:

$$\mathrm{vMF}(x;\, y,\, \kappa) = \frac{\kappa}{4\pi \sinh \kappa}\, e^{\kappa \langle x, y\rangle}.$$

$\langle x, y\rangle$ is the cosine of the angle between $x$ and $y$ (1 where they meet). The *concentration*
$\kappa$ sets how narrow the bump is, about $1/\sqrt{\kappa}$ radians wide ($57°/\sqrt{\kappa}$): $\kappa = 0$ is
flat (uniform), and a large $\kappa$ is a sharp spike on the point. The fraction in front makes each bump hold
exactly its share of probability, whatever its width.

**The schedule** moves $\kappa$ from 0 to $\kappa_{\max}$ as $t$ goes from 0 to 1:

$$\kappa(t) = (1 + \kappa_{\max})^{t} - 1.$$

It grows slowly at first, so probability leaves the uniform noise gradually, and fastest near $t = 1$.

**The floor** keeps a share $w$ of the probability uniform at every $t$, so no place is ever left with zero
density: a test point far from every training point would otherwise cost the model a huge penalty.

**The map** colours the density averaged over each small cell of the map (kernels narrower than a cell fill it
instead of slipping between cell centres). **The dots** are samples of $p_t$, drawn exactly: pick a training
point (or, with probability $w$, the floor), then a place around it from its vMF kernel.
"""


@dataclass(frozen=True, eq=False)
class Preview:
    """The path of one data set, split, seed and κ_max: its maps at :data:`TIMES` (``(lat, lon, log density)``,
    float32), their concentrations, samples (lat, lon) at each time, and what it was built from."""

    grids: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    kappas: np.ndarray
    samples: np.ndarray  # (K, S, 2) float32
    n_train: int
    n_centres: int


@st.cache_resource(max_entries=16, show_spinner=False)
def _preview(key: tuple[str, float, str, int, float], _points: PointSet) -> Preview:
    """Maps and samples of the target path (``key``: the data file, its mtime, split, seed, κ_max). Read-only."""
    _, _, split, seed, kappa_max = key
    rows = training_rows(_points.xyz, split=split, seed=seed)
    if rows.size < 1:
        raise DataError(f"no training points after the {split} split")
    path = preview_path(_points.xyz[rows], kappa_max=kappa_max)
    maps = [path_map(path, float(t)) for t in TIMES]
    rng = np.random.default_rng(seed)
    samples = np.empty((TIMES.size, N_SAMPLES, 2), np.float32)
    for k, t in enumerate(TIMES):
        lat, lon = xyz_to_latlon(path.sample(float(t), N_SAMPLES, rng))
        samples[k, :, 0], samples[k, :, 1] = lat, lon
    grids = [(m.lat, m.lon, m.log_density.astype(np.float32)) for m in maps]
    return Preview(grids, np.array([m.kappa for m in maps]), samples, int(rows.size), int(path.centres.shape[0]))


@st.cache_resource(max_entries=16, show_spinner=False)
def _figure(key: tuple[str, float, str, int, float], with_samples: bool, unit: str, _data: Preview) -> go.Figure:
    """The animated map of a preview (built once per preview, sample toggle and unit; never changed)."""
    dots = [(_data.samples[k, :, 0], _data.samples[k, :, 1]) for k in range(TIMES.size)] if with_samples else None
    return target_path_figure(
        TIMES, _data.kappas, _data.grids, dots, land=figures.load_land(), unit=unit, start=TIMES.size - 1, height=480
    )


st.title("Target path")
st.markdown(
    "**Before any model is trained: the path the flow will learn to follow, from uniform noise at t = 0 to "
    "the data at t = 1.**"
)
ds = state.current_dataset()
st.caption(
    f"Data set: **{plain(ds.label)}** (change it on the Data page). Press **▶ Play** under the map to watch "
    "noise become data."
)
try:
    points = uploads.recent(ds) or state.load_points(ds)
except (DataError, OSError) as e:  # OSError: deleted in another session since the list was read
    st.error(f"This data set cannot be read: {plain(e)}")
    st.stop()

train = state.train_settings({"split": SPLITS, "kappa": ["auto", *KAPPAS]})
from_train = train["kappa"] in KAPPAS
kappa = state.preview_kappa(KAPPAS, train["kappa"] if from_train else DEFAULT_KAPPA)
left, right = st.columns([2, 1], vertical_alignment="bottom")
left.select_slider(
    "κ_max (kappa max): how sharp the path ends at t = 1, on a log scale",
    KAPPAS,
    key=state.PREVIEW_KAPPA,
    format_func=lambda v: f"{int(v):,}",
    on_change=state.preview_kappa_moved,
    args=(KAPPAS,),
    help="The concentration of the bumps at the end of the path. Larger: narrower "
    "bumps, finer detail, and a path that is harder to learn.",
)
with_samples = right.toggle(
    "Show samples", value=True, key="target_samples", help="Dots drawn at random from the path at each time t."
)

try:
    key = (str(ds.path), ds.path.stat().st_mtime, train["split"], int(train["seed"]), float(kappa))
    with st.spinner("Drawing the path…"):
        preview = _preview(key, points)
except (DataError, OSError, ValueError) as e:
    st.error(f"The target path of this data set cannot be drawn: {plain(e)}")
    st.stop()

unit = state.density_unit()
st.plotly_chart(_figure(key, with_samples, unit, preview), key="target_map", config=PLOTLY_CONFIG)


def _prefetch(keys: list[tuple[str, float, str, int, float]], points: PointSet, with_samples: bool, unit: str) -> None:
    """Compute the paths (and figures) of the κ_max values next to the shown one while the class looks at it, so
    that moving the slider by one step finds them cached. Best effort: a failure shows when that value is chosen.

    It waits :data:`PREFETCH_DELAY_S` first: on a machine with two cores, computing at once would take a core
    from the browser while it draws the map just sent (bench_explore.py: a step to a value whose neighbours were
    already cached took 0.68 s at p50, one that set off their computation 0.98 s)."""
    time.sleep(PREFETCH_DELAY_S)
    for k in keys:
        try:
            _figure(k, with_samples, unit, _preview(k, points))
        except (DataError, OSError, ValueError):
            return


i = KAPPAS.index(kappa)
nearby = [key[:4] + (float(KAPPAS[j]),) for j in (i + 1, i - 1) if 0 <= j < len(KAPPAS)]
worker = threading.Thread(target=_prefetch, args=(nearby, points, with_samples, unit), daemon=True,
                          name="target-path-prefetch")
add_script_run_ctx(worker)  # the caches are the server's; the context keeps Streamlit's own checks quiet
worker.start()
floor = TrainConfig().floor
uniform = "×1" if unit == "times" else units.describe(units.LOG_UNIFORM, unit)
st.caption(
    f"**▶ Play** runs in your browser, about {1000 // PLAY_MS} frames a second, from t = 0 (uniform noise) to t = 1 "
    "(the data); drag the slider under the map to any t. Every frame shares one colour scale, so the same colour "
    f"always means the same density; probability spread evenly would read {uniform} on the colour bar. "
    f"Built from the **{preview.n_train:,} training points** ({preview.n_centres:,} distinct places) that a run with "
    f"the Train page's split ({plain(train['split'])}, seed {plain(train['seed'])}) trains on, with "
    f"{floor:.0%} of the probability spread evenly everywhere (the floor)."
    + (f" Orange dots: {N_SAMPLES:,} samples of the path at each t." if with_samples else "")
)
if from_train:
    st.caption(f"κ_max started at the Train page's setting, {int(train['kappa']):,}.")
else:
    st.caption(
        f"κ_max starts at {KAPPA_MIN:,.0f}, what training uses on smooth data. With κ_max on **auto** (the "
        "Train page's default) a run reads κ_max off the data when it starts: clustered data such as the "
        f"Earth sets get a sharper one, up to {KAPPA_CAP:,.0f}."
    )
with st.expander("The maths, in words"):
    st.markdown(MATHS.replace("FLOOR", f"{floor:g}"))
