"""Data page: pick a bundled data set, a CSV from the data folder, or upload one; see it on a flat map framed on
it or, one tab away, on a globe turned to face it; then go on to the path a flow will follow to it (Target path),
and train one."""

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from cnfm_core.data import LAT_NAMES, LON_NAMES, ColumnError, DataError, csv_columns, point_columns, unique_rows
from dashboard import export, figures, state, uploads
from dashboard.text import plain

st.title("Points on the globe")
st.markdown(
    "**Each point is one place on the globe, such as an earthquake or a city; a flow learns where such points "
    "are likely to be.**"
)
st.caption(
    "Pick a data set, or upload a CSV of points with latitude and longitude columns. Then see the path a flow "
    "will follow to these points (**Target path**), and train one."
)

#: The two views of the points, one tab each; the flat map opens first (drawn without WebGL).
DATA_TABS = ("Flat map", "3-D globe")
#: The height of either view in pixels, and the width the flat map likely gets (the wide layout's column in a
#: 1440 px window), from which it is framed: a map of the world needs less height than a view of one region.
_VIEW_HEIGHT_PX = 540
_VIEW_WIDTH_HINT_PX = 900
#: The globe view's width: a little wider than the globe. Without a GPU the browser draws every pixel of a 3-D
#: view in software, so a view as wide as the page (980 px) took about twice as long to draw (bench_pages.py).
_GLOBE_WIDTH_PX = 560
#: The globe's zoom at the equator: a globe about 450 px across (measured: 379 px at zoom 1.55).
_GLOBE_ZOOM = 1.8


def _dot_radius_m(n: int) -> float:
    """Dots on the globe: large enough to find a handful of points, small enough not to blot out thousands."""
    return 150_000.0 if n <= 100 else 70_000.0 if n <= 3_000 else 40_000.0


def _pick(where: DeltaGenerator, label: str, options: list[str], found: str | None, key: str) -> str | None:
    """A column picker: the column the reader found by name, or no choice (the user must make one)."""
    index = options.index(found) if found in options else None
    return where.selectbox(label, options, index=index, key=key, placeholder="Choose a column")


def _upload_form(name: str, data: bytes, file_id: str) -> None:
    """What the reader makes of an upload (the CLI reads the same file the same way), its columns where the user
    may or must choose them, and the button that keeps it. Every text from the file is shown as plain text."""
    choose: ColumnError | None = None
    try:
        uploads.check_size(name, data)
        found = point_columns(data, source=name, max_bytes=uploads.limit_bytes())
    except ColumnError as e:
        found, choose = (), e
    except DataError as e:
        st.error(f"Not loaded: {plain(e)}")
        return
    lat_col = lon_col = None
    if len(found) == 3:
        st.caption(f"Cartesian columns {plain(', '.join(found))}: each row is a direction, scaled to unit length.")
    else:
        if choose is not None:
            st.info(f"Choose the columns: {plain(choose)}")
        options = list(choose.columns) if choose is not None else [c for c in csv_columns(data) if c]
        c1, c2 = st.columns(2)
        # Pickers of columns the user must choose are new for each file: no choice carries over from another.
        fresh = "" if found else f"_{file_id}"
        lat_col = _pick(c1, "Latitude column", options, found[0] if found else None, f"lat_col{fresh}")
        lon_col = _pick(c2, "Longitude column", options, found[1] if found else None, f"lon_col{fresh}")
        if lat_col is None or lon_col is None:
            st.button("Use this file", type="primary", key="use_upload", disabled=True)
            return
        if found and (lat_col, lon_col) == found:
            lat_col = lon_col = None  # as found from the header, which is how the CLI reads the file
    try:
        pts = uploads.check(name, data, lat_col, lon_col)
    except DataError as e:
        st.error(f"Not loaded: {plain(e)}")
        return
    st.caption(f"{pts.n:,} points read.")
    if st.button("Use this file", type="primary", key="use_upload"):
        try:
            uploads.save_upload(name, data, lat_col, lon_col)
        except DataError as e:
            st.error(f"Not loaded: {plain(e)}")
        else:
            st.rerun()


sets = state.datasets()
current = state.current_dataset()
state.sync_widget("data_select", current.key)
st.selectbox(
    "Data set",
    list(sets),
    format_func=lambda k: sets[k].label,
    key="data_select",
    on_change=state.select_dataset_from,
    args=("data_select",),
)

with st.expander("Upload a CSV", expanded=False):
    limit = state.settings().max_upload_mb
    st.markdown(
        f"One point per row, with a header. Columns named {'/'.join(f'`{n}`' for n in LAT_NAMES)} and "
        f"{'/'.join(f'`{n}`' for n in LON_NAMES)} "
        f"(degrees) are found automatically, or `x,y,z`. **Size limit: {limit} MB.**"
    )
    upload = st.file_uploader("CSV file", type=["csv", "txt"], key="upload")
    if upload is not None:
        _upload_form(upload.name, upload.getvalue(), upload.file_id)

if current.kind == "upload":
    with st.expander("Delete this upload", expanded=False):
        st.caption(
            f"Removes {plain(current.path.name)} from this server's data sets. Runs trained on it keep their points."
        )
        why = uploads.why_not_delete(current)
        if why:
            st.caption(f"Not yours to delete: {why}.")
        sure = st.checkbox("Yes, delete it", key="delete_upload_sure", disabled=why is not None)
        if st.button(
            "Delete", key="delete_upload", disabled=not sure or why is not None, icon=":material/delete:", help=why
        ):
            try:
                uploads.delete(current)
            except PermissionError as e:
                st.error(f"Not deleted: {plain(e)}.")
            else:
                st.rerun()

try:
    points = uploads.recent(current) or state.load_points(current)
except (DataError, OSError) as e:  # OSError: deleted in another session since the list was read
    st.error(f"This data set cannot be read: {plain(e)}")
    st.stop()

n_unique = len(unique_rows(points.xyz))
c1, c2, c3 = st.columns(3)
c1.metric("Points", f"{points.n:,}")
c2.metric("Unique locations", f"{n_unique:,}")
c3.metric("Repeated points", f"{points.n - n_unique:,}")
if n_unique < points.n * 0.9:
    st.info(
        "Many points repeat a location. On the standard split, test points then often sit exactly on "
        "training points, which rewards memorising; the deduplicated split (Train page) avoids that."
    )

# The next steps, above the fold: the path a flow will follow (no model needed), then training one. Both pages
# keep the URL's data set and any settings already in it.
with st.container(horizontal=True, gap="small", key="data_next"):
    if st.button("See the path a flow will follow", icon=":material/blur_on:", key="to_target"):
        st.switch_page("views/target.py", query_params={**st.query_params.to_dict(), "data": current.key})
    if st.button("Train a flow on these points", type="primary", icon=":material/model_training:", key="to_train"):
        st.switch_page("views/train.py", query_params={**st.query_params.to_dict(), "data": current.key})

land = figures.load_land()
lat, lon = np.asarray(points.lat), np.asarray(points.lon)
c_lat, c_lon = figures.view_centre(lat, lon)
subset = " Showing a random subset of 20,000 points." if points.n > 20_000 else ""
# Only the open tab is drawn (switching tabs reruns the page): the globe is WebGL, which costs a browser without
# a GPU seconds of drawing (3.7 s here, measured in bench_pages.py), so a visit shows the flat map first.
flat_tab, globe_tab = st.tabs(DATA_TABS, key=state.DATA_TAB, on_change="rerun")
if flat_tab.open:
    with flat_tab:
        flat = figures.points_map(lat, lon, land=land, height=_VIEW_HEIGHT_PX, width_hint=_VIEW_WIDTH_HINT_PX)
        st.plotly_chart(flat, key="data_points_map", config={"displaylogo": False})
        st.caption(
            f"A flat map framed on the points: {plain(current.label)} ({plain(current.path.name)}). Drag to zoom "
            f"in, double-click to zoom out; the **3-D globe** tab shows them on a globe you can turn.{subset}"
        )
if globe_tab.open:
    with globe_tab:
        layer = figures.PointLayer("data", lat, lon, figures.DATA_COLOR, _dot_radius_m(points.n))
        deck = figures.globe(
            land=land,
            point_layers=[layer],
            view_lat=c_lat,
            view_lon=c_lon,
            zoom=figures.globe_zoom(c_lat, _GLOBE_ZOOM),
            height=_VIEW_HEIGHT_PX,
        )
        st.pydeck_chart(deck, width=_GLOBE_WIDTH_PX, height=_VIEW_HEIGHT_PX, key="data_globe_chart")
        st.caption(f"Turned to face the points. Drag to turn the globe, scroll to zoom.{subset}")


def _globe_png() -> bytes:
    return export.globe_png(
        [export.GlobePoints(lat, lon, figures.DATA_COLOR, current.label)],
        land=land,
        center_lat=c_lat,
        center_lon=c_lon,
        title=current.label,
    )


st.download_button(
    "Globe (PNG)",
    data=_globe_png,
    file_name=f"{current.path.stem}-globe.png",
    mime="image/png",
    on_click="ignore",
    icon=":material/download:",
    key="data_globe_png",
)
