"""Mixtures: build a mixture spec, preview group shares before and after, save it, export it."""

from __future__ import annotations

import importlib.util

import streamlit as st

from app import state

lake, _user = state.context()
st.title("Mixtures")
if importlib.util.find_spec("curate.mixtures") is None:
    st.warning("The mixture engine (`curate.mixtures`) is not part of this build yet. Once it is, build specs with "
               "`curate mix` and export them with `curate export`.")
    st.stop()
