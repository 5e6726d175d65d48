"""The UI's entrypoint (`curate ui`): a router over the pages plus the shared frame (lake picker, login).

`?episode=ID&step=N` on the start URL opens that episode directly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the project
    sys.path.insert(0, str(_ROOT))

from app import state  # noqa: E402

PAGES = Path(__file__).resolve().parent / "views"  # not "pages/", which turns on the legacy router

st.set_page_config(page_title="curate", page_icon=":material/smart_toy:", layout="wide")

wants_episode = "episode" in st.query_params
pages = {
    "Data": [
        st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", url_path="overview",
                default=not wants_episode),
        st.Page(PAGES / "browse.py", title="Browse", icon=":material/grid_view:", url_path="browse"),
        st.Page(PAGES / "episode.py", title="Episode", icon=":material/movie:", url_path="episode",
                default=wants_episode),
    ],
    "Analysis": [
        st.Page(PAGES / "coverage.py", title="Coverage", icon=":material/scatter_plot:", url_path="coverage"),
        st.Page(PAGES / "mixtures.py", title="Mixtures", icon=":material/tune:", url_path="mixtures"),
    ],
}
page = st.navigation(pages)
state.frame()
page.run()
