"""Entry point of the dashboard: ``streamlit run dashboard/app.py``. It only routes."""

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import shell


def _favicon() -> Image.Image:
    """A small blue disc, drawn here: a Material or emoji page icon would be fetched from a CDN."""
    yy, xx = np.mgrid[-1:1:32j, -1:1:32j]
    inside = (xx**2 + yy**2) <= 0.9
    img = np.zeros((32, 32, 4), dtype=np.uint8)
    img[inside] = (40, 110, 190, 255)
    return Image.fromarray(img, mode="RGBA")


st.set_page_config(page_title="Densities on the sphere", page_icon=_favicon(), layout="wide")
pages = [
    st.Page("views/data.py", title="Data", icon=":material/public:", default=True),
    st.Page("views/target.py", title="Target path", icon=":material/blur_on:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/results.py", title="Results", icon=":material/monitoring:"),
    st.Page("views/path.py", title="Path", icon=":material/timeline:"),
    st.Page("views/runs.py", title="Runs", icon=":material/table_rows:"),
]
page = st.navigation(pages)
shell.sidebar()  # the density unit, the glossary and the projector layout, on every page
page.run()
