"""Target path page: the path a flow will be trained to follow, shown before any model exists.

For the chosen data set it draws the PPD target ``p_t`` (the mixture of von Mises-Fisher kernels over the training
points with the uniform floor, :mod:`cnfm_core.pathpreview`, drawn by :mod:`cnfm_core.pathmaps`) at 21 times from t
= 0 to t = 1, as one map that plays and scrubs in the browser, with exact samples of ``p_t`` over it. A change of t
never asks the server; a change of κ_max recomputes (cached per data set, split, seed and κ_max; the other values
are computed in the background at a lower priority while one is on screen, nearest first, so that dragging the
slider finds them ready: :mod:`dashboard.targetcache`). The training rows are those a run with the Train page's
split and seed would use; the schedule and the floor are the defaults of :class:`~cnfm_core.config.TrainConfig`.
"""

import streamlit as st

from cnfm_core.config import KAPPA_CAP, KAPPA_MIN, TrainConfig
from cnfm_core.data import DataError
from dashboard import state, units, uploads
from dashboard import targetcache as tc
from dashboard.figures.pathpreview import PLAY_MS
from dashboard.text import plain

#: κ_max choices: the Train page's (without "auto"), on a log scale.
KAPPAS = ["100", "300", "1000", "3000", "10000", "30000", "100000", "300000"]
#: The κ_max shown first when the Train page's setting is "auto": what training uses on smooth data.
DEFAULT_KAPPA = f"{KAPPA_MIN:.0f}"
SPLITS = ["standard", "dedup", "none"]
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
        preview = tc.preview(key, points)
except (DataError, OSError, ValueError) as e:
    st.error(f"The target path of this data set cannot be drawn: {plain(e)}")
    st.stop()

unit = state.density_unit()
st.plotly_chart(tc.figure(key, with_samples, unit, preview), key="target_map", config=PLOTLY_CONFIG)
tc.prefetch([key[:4] + (float(k),) for k in tc.prefetch_order(KAPPAS, kappa)], points, with_samples, unit)


floor = TrainConfig().floor
uniform = "×1" if unit == "times" else units.describe(units.LOG_UNIFORM, unit)
st.caption(
    f"**▶ Play** runs in your browser, about {1000 // PLAY_MS} frames a second, from t = 0 (uniform noise) to t = 1 "
    "(the data); drag the slider under the map to any t. Every frame shares one colour scale, so the same colour "
    f"always means the same density; probability spread evenly would read {uniform} on the colour bar. "
    f"Built from the **{preview.n_train:,} training points** ({preview.n_centres:,} distinct places) that a run with "
    f"the Train page's split ({plain(train['split'])}, seed {plain(train['seed'])}) trains on, with "
    f"{floor:.0%} of the probability spread evenly everywhere (the floor)."
    + (f" Orange dots: {tc.N_SAMPLES:,} samples of the path at each t." if with_samples else "")
)
if from_train:
    st.caption(f"κ_max started at the Train page's setting, {int(train['kappa']):,}.")
else:
    st.caption(
        f"κ_max starts at {KAPPA_MIN:,.0f}, what training uses on smooth data. With κ_max on **auto** (the "
        "Train page's default) a run reads κ_max off the data when it starts: clustered data such as the "
        f"Earth sets get a sharper one (above {KAPPA_CAP:,.0f}, as on the volcanoes, the flow draws the bumps "
        "with the target's own field)."
    )
with st.expander("The maths, in words"):
    st.markdown(MATHS.replace("FLOOR", f"{floor:g}"))
