"""Entry point of the dashboard: ``streamlit run dashboard/app.py``. It only routes."""

import streamlit as st

st.set_page_config(page_title="Densities on the sphere", page_icon="🌍", layout="wide")
pages = [
    st.Page("pages/data.py", title="Data", icon="🗺️", default=True),
    st.Page("pages/train.py", title="Train", icon="⚙️"),
    st.Page("pages/results.py", title="Results", icon="📊"),
]
st.navigation(pages).run()
