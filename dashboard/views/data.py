"""Data page: pick a bundled data set, a CSV from the data folder, or upload one; preview it on a globe."""

import numpy as np
import streamlit as st

from cnfm_core.data import LAT_NAMES, LON_NAMES, DataError, csv_columns, parse_points, unique_rows
from dashboard import export, figures, state

st.title("Points on the globe")
st.caption("Pick a data set, or upload a CSV of points with latitude and longitude columns, then train a flow on it.")

sets = state.datasets()
current = state.current_dataset()
state.sync_widget("data_select", current.key)
st.selectbox("Data set", list(sets), format_func=lambda k: sets[k].label, key="data_select",
             on_change=state.select_dataset_from, args=("data_select",))

with st.expander("Upload a CSV", expanded=False):
    limit = state.settings().max_upload_mb
    st.markdown(
        f"One point per row, with a header. Columns named {'/'.join(f'`{n}`' for n in LAT_NAMES)} and "
        f"{'/'.join(f'`{n}`' for n in LON_NAMES)} "
        f"(degrees) are found automatically, or `x,y,z`. **Size limit: {limit} MB.**"
    )
    upload = st.file_uploader("CSV file", type=["csv", "txt"], key="upload")
    if upload is not None:
        data = upload.getvalue()
        try:
            columns = csv_columns(data)
            if not columns:
                parse_points(data, source=upload.name)  # raises the DataError that says what is wrong
        except DataError as e:
            st.error(f"Not loaded: {e}")
            columns = []
        if columns:
            lower = [c.strip().lower() for c in columns]
            lat_guess = next((i for i, c in enumerate(lower) if c in LAT_NAMES), 0)
            lon_guess = next((i for i, c in enumerate(lower) if c in LON_NAMES),
                             min(1, len(columns) - 1))
            c1, c2 = st.columns(2)
            lat_col = c1.selectbox("Latitude column", columns, index=lat_guess, key="lat_col")
            lon_col = c2.selectbox("Longitude column", columns, index=lon_guess, key="lon_col")
            if st.button("Use this file", type="primary", key="use_upload"):
                try:
                    ds, pts = state.save_upload(upload.name, data, lat_col, lon_col)
                except DataError as e:
                    st.error(f"Not loaded: {e}")
                else:
                    st.success(f"Loaded {pts.n:,} points from {upload.name}.")
                    st.rerun()

try:
    points = state.load_points(current)
except DataError as e:
    st.error(f"This data set cannot be read: {e}")
    st.stop()

n_unique = len(unique_rows(points.xyz))
c1, c2, c3 = st.columns(3)
c1.metric("Points", f"{points.n:,}")
c2.metric("Unique locations", f"{n_unique:,}")
c3.metric("Repeated points", f"{points.n - n_unique:,}")
if n_unique < points.n * 0.9:
    st.info("Many points repeat a location. On the standard split, test points then often sit exactly on "
            "training points, which rewards memorising; the deduplicated split (Train page) avoids that.")

land = figures.load_land()
layer = figures.PointLayer("data", np.asarray(points.lat), np.asarray(points.lon), figures.DATA_COLOR, 40_000)
st.pydeck_chart(figures.globe(land=land, point_layers=[layer]), height=520)
st.caption(f"{current.label}: {current.path.name}. Drag to turn the globe, scroll to zoom."
           + (" Showing a random subset of 20,000 points." if points.n > 20_000 else ""))


def _globe_png() -> bytes:
    lat, lon = np.asarray(points.lat), np.asarray(points.lon)
    c_lat, c_lon = figures.view_centre(lat, lon)
    return export.globe_png([export.GlobePoints(lat, lon, figures.DATA_COLOR, current.label)], land=land,
                            center_lat=c_lat, center_lon=c_lon, title=current.label)


st.download_button("Globe (PNG)", data=_globe_png, file_name=f"{current.path.stem}-globe.png", mime="image/png",
                   on_click="ignore", icon=":material/download:", key="data_globe_png")
