"""Coverage: the audit's views (2D map, long tail, tag and language-style distributions, shift audit)."""

from __future__ import annotations

import importlib.util

import streamlit as st

from app import state

lake, _user = state.context()
st.title("Coverage")
if importlib.util.find_spec("curate.analytics") is None:
    st.warning("The audit engine (`curate.analytics`) is not part of this build yet, so there is nothing to show. "
               "Once it is, run `curate embed --lake LAKE` and then `curate audit --lake LAKE`.")
    st.stop()
