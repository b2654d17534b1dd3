"""Entry point of the dashboard: ``streamlit run dashboard/app.py``. It only routes."""

import streamlit as st

st.set_page_config(page_title="Densities on the sphere", page_icon=":material/public:", layout="wide")
pages = [
    st.Page("pages/data.py", title="Data", icon=":material/public:", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/results.py", title="Results", icon=":material/monitoring:"),
    st.Page("pages/path.py", title="Path", icon=":material/timeline:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:"),
]
st.navigation(pages).run()
