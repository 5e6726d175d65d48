"""The semantic search box of Browse: a text query or an uploaded image, ranked within the current filter."""

from __future__ import annotations

import importlib.util
from typing import Any

import streamlit as st

from curate import ui_service as ui
from curate.errors import CurateError
from curate.lake import Lake


def available() -> bool:
    """Whether this build has the search engine (curate.search)."""
    return importlib.util.find_spec("curate.search") is not None


def render(lake: Lake, where: str | None) -> list[dict[str, Any]] | None:
    """Draw the search inputs; return ranked result rows when a search is active, else None."""
    with st.expander("Semantic search (text or image)", icon=":material/image_search:",
                     expanded=bool(st.session_state.get("q_text"))):
        text = st.text_input("Describe what you look for", key="q_text",
                             placeholder="e.g. a robot putting a red cube in a bowl")
        upload = st.file_uploader("…or find episodes that look like an image", type=["jpg", "jpeg", "png", "webp"],
                                  key="q_image", max_upload_size=ui.MAX_UPLOAD_BYTES // (1024 * 1024))
        k = st.number_input("Results", min_value=1, max_value=200, value=24, step=1, key="q_k")
        if not text.strip() and upload is None:
            return None
        if not available():
            st.warning("Semantic search is not part of this build yet (module `curate.search` is missing). "
                       "Filters and facets work; for search run `curate embed` then `curate search` once available.")
            return None
        image = None
        if upload is not None:
            try:
                image = ui.check_upload(upload.getvalue())
            except CurateError as exc:
                st.error(str(exc))
                return None
        try:
            with st.spinner("Searching…"):
                return ui.semantic_search(lake, text=None if image is not None else text.strip(), image=image,
                                          where=where, k=int(k))
        except (CurateError, ImportError) as exc:
            st.error(str(exc))
            return None
