"""Overview: totals, a per-dataset table, episodes per embodiment, and recent label activity."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import state
from curate import ui_service as ui

lake, _user = state.context()
version, labels_version = state.versions(lake)

st.title("Overview")
with st.spinner("Counting the lake…"):
    stats = lake.stats()

cols = st.columns(5)
cols[0].metric("Datasets", len(stats["datasets"]))
cols[1].metric("Embodiments", len(stats["embodiments"]))
cols[2].metric("Episodes", f"{stats['episodes']:,}")
cols[3].metric("Steps", f"{stats['steps']:,}")
cols[4].metric("Hours", f"{stats['hours']:.2f}")
st.caption(f"Lake version {version}, label version {labels_version}. Same figures: "
           f"`curate stats --lake {lake.uri} --json`")

if stats["episodes"] == 0:
    st.info(f"This lake is empty. Add data with `curate ingest SOURCE --lake {lake.uri}` "
            f"or `curate demo --lake {lake.uri}`.")
    st.stop()

left, right = st.columns([3, 2])
with left:
    st.subheader("Datasets")
    st.dataframe(pl.DataFrame(stats["per_dataset"]), hide_index=True, key="per_dataset",
                 column_config={"hours": st.column_config.NumberColumn(format="%.3f")})
with right:
    st.subheader("Embodiments")
    emb = pl.DataFrame({"embodiment": list(stats["embodiments"]), "episodes": list(stats["embodiments"].values())})
    st.bar_chart(emb, x="embodiment", y="episodes", horizontal=True, height=220)

st.subheader("Recent label activity")
recent = ui.history(lake, limit=25)
if not recent:
    st.caption("No relabels yet. Edit labels on an episode's page, or in bulk from Browse.")
else:
    st.dataframe(pl.DataFrame(recent), hide_index=True, key="recent_labels",
                 column_order=["at", "author", "episode_id", "field", "before", "after", "note"])
    st.caption(f"Full history: `curate history --lake {lake.uri}` (Python: `Lake(...).label_events()`).")
