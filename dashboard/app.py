"""Entry point of the dashboard: ``streamlit run dashboard/app.py``. It only routes."""

import streamlit as st

st.set_page_config(page_title="Densities on the sphere", page_icon=":material/public:", layout="wide")
pages = [
    st.Page("views/data.py", title="Data", icon=":material/public:", default=True),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/results.py", title="Results", icon=":material/monitoring:"),
    st.Page("views/path.py", title="Path", icon=":material/timeline:"),
    st.Page("views/runs.py", title="Runs", icon=":material/table_rows:"),
]
st.navigation(pages).run()
