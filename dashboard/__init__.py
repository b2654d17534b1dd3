"""Streamlit dashboard over :mod:`cnfm_core`: pages, their state, and pure figure builders."""
