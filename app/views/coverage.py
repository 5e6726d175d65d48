"""Coverage: the audit's views, interactive. A 2D map of episode embeddings (hover shows the episode, click opens
it), long-tail cluster bars, tag and language-style distributions, and the shift audit between two filters.

Every number comes from `curate.analytics` (the same functions `curate audit` runs), cached per lake version.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from app import state
from curate import ui_service as ui
from curate.analytics import EmbeddingsMissingError, coverage, language_audit, shift_audit
from curate.errors import CurateError

MAP_POINTS = 5000  # at most this many episodes are drawn on the map (a seeded sample); clusters use them all

lake, _user = state.context()
version, labels_version = state.versions(lake)
st.title("Coverage")


@st.cache_data(show_spinner=False, max_entries=16)
def _coverage(uri: str, version: int, labels_version: int, where: str | None, k: int | None) -> Any:
    return coverage(state.lake(), where=where, k=k)


@st.cache_data(show_spinner=False, max_entries=16)
def _language(uri: str, version: int, labels_version: int, where: str | None) -> Any:
    return language_audit(state.lake(), where=where)


@st.cache_data(show_spinner=False, max_entries=16)
def _shift(uri: str, version: int, labels_version: int, reference: str | None, target: str) -> Any:
    return shift_audit(state.lake(), reference=reference, target=target)


where = st.text_input("Slice to audit (filter)", key="cov_where", placeholder='e.g. split != "deploy"',
                      help="The filter language of `curate ls --where`; empty audits the whole lake.").strip() or None
k_choice = st.number_input("Clusters (0 = choose by silhouette)", min_value=0, max_value=512, value=0, step=1,
                           key="cov_k")
k = int(k_choice) or None
cli = f"curate audit --lake {lake.uri}" + (f" --where '{where}'" if where else "") + (f" --k {k}" if k else "")
st.caption(f"Same numbers: `{cli}`")

try:
    n = lake.count(where)
except CurateError as exc:
    st.error(f"Filter error: {exc}")
    st.stop()
if n == 0:
    st.info("The filter matches no episode.")
    st.stop()

map_tab, tail_tab, tags_tab, lang_tab, shift_tab = st.tabs(
    ["2D map", "Long tail", "Tags", "Language", "Shift audit"])

cov = None
missing_vectors = None
try:
    with st.spinner(f"Clustering {n:,} episode embeddings…"):
        cov = _coverage(lake.uri, version, labels_version, where, k)
except EmbeddingsMissingError as exc:
    missing_vectors = f"{exc} — run `curate embed --lake {lake.uri}` first, then reload this page."
except CurateError as exc:
    missing_vectors = str(exc)

with map_tab:
    if cov is None:
        st.warning(missing_vectors)
    else:
        s = cov.summary
        cols = st.columns(4)
        cols[0].metric("Episodes", f"{s['episodes']:,}")
        cols[1].metric("Clusters", s["k"], help="chosen by silhouette" if s.get("k_chosen_automatically") else None)
        cols[2].metric("Tail share", f"{s['tail_share']:.1%}", help="episodes in clusters smaller than "
                       f"{s['tail_threshold_episodes']} episodes (half the mean size)")
        cols[3].metric("Clusters from one dataset", s["clusters_covered_by_one_dataset"])
        points = cov.episodes
        if points.height > MAP_POINTS:
            points = points.sample(MAP_POINTS, seed=0)
            st.caption(f"Showing a sample of {MAP_POINTS:,} of {cov.episodes.height:,} episodes.")
        color_by = st.segmented_control("Colour by", ["cluster", "dataset", "embodiment"], default="cluster",
                                        key="cov_color") or "cluster"
        pick = alt.selection_point(name="pick", fields=["episode_id"], on="click")
        chart = alt.Chart(points.with_columns(pl.col("cluster").cast(pl.String)).to_pandas()).mark_circle(
            size=60, opacity=0.8).encode(
            x=alt.X("x:Q", title="PC 1"), y=alt.Y("y:Q", title="PC 2"),
            color=alt.Color(f"{color_by}:N", title=color_by),
            tooltip=["episode_id", "instruction", "dataset", "embodiment", "cluster"],
        ).add_params(pick).properties(height=480)
        event = st.altair_chart(chart, on_select="rerun", selection_mode="pick", key="cov_map", width="stretch")
        chosen = (event.selection.get("pick") or [{}]) if event else [{}]
        if chosen and chosen[0].get("episode_id"):
            st.switch_page("views/episode.py", query_params={"episode": chosen[0]["episode_id"]})
        st.caption("Hover a point to see its episode; click it to open the episode.")

with tail_tab:
    if cov is None:
        st.warning(missing_vectors)
    else:
        sizes = cov.clusters.with_columns(pl.col("cluster").cast(pl.String),
                                          pl.when(pl.col("tail")).then(pl.lit("tail")).otherwise(pl.lit("head"))
                                          .alias("part"))
        bars = alt.Chart(sizes.to_pandas()).mark_bar().encode(
            x=alt.X("cluster:N", sort="-y", title="cluster (largest first)"), y=alt.Y("episodes:Q"),
            color=alt.Color("part:N", scale=alt.Scale(domain=["head", "tail"], range=["#4c78a8", "#e45756"])),
            tooltip=["cluster", "episodes", alt.Tooltip("share:Q", format=".1%"), "datasets", "embodiments"],
        ).properties(height=320)
        st.altair_chart(bars, width="stretch")
        by_ds = cov.by_dataset.with_columns(pl.col("cluster").cast(pl.String))
        st.altair_chart(alt.Chart(by_ds.to_pandas(), title="Who covers each cluster").mark_bar().encode(
            x=alt.X("cluster:N"), y=alt.Y("episodes:Q", stack="normalize", title="share"),
            color="dataset:N", tooltip=["cluster", "dataset", "episodes"]).properties(height=260), width="stretch")
        tail_ids = sizes.filter(pl.col("part") == "tail")["cluster"].to_list()
        if tail_ids and "cluster" in lake.schema().names:
            st.page_link("views/browse.py", label="Browse tail clusters", icon=":material/grid_view:")
            st.caption(f"Filter: `cluster in [{', '.join(tail_ids)}]`")

with tags_tab:
    facets = state.facets(lake.uri, version, labels_version)
    human = pl.DataFrame(facets.values.get("tags", []), schema={"tag": pl.String, "episodes": pl.Int64}, orient="row")
    machine = pl.DataFrame(facets.values.get("machine_tags", []), schema={"tag": pl.String, "episodes": pl.Int64},
                           orient="row")
    left, right = st.columns(2)
    with left:
        st.subheader("Human tags")
        if human.height:
            st.bar_chart(human, x="tag", y="episodes", horizontal=True)
        else:
            st.caption("No episode is tagged yet; tag episodes on their page or in bulk from Browse.")
    with right:
        st.subheader("Machine tags")
        if machine.height:
            st.bar_chart(machine, x="tag", y="episodes", horizontal=True)
        else:
            st.caption(f"None stored: run `curate audit --lake {lake.uri} --derive` to compute zero-shot tags.")

with lang_tab:
    tables, summary = _language(lake.uri, version, labels_version, where)
    cols = st.columns(4)
    cols[0].metric("Unique instructions", f"{summary['unique_instructions']:,}")
    cols[1].metric("Vocabulary", f"{summary['vocabulary_size']:,}")
    cols[2].metric("Missing / placeholder", f"{summary['missing_or_placeholder_share']:.1%}")
    cols[3].metric("Mean words", summary["mean_words"])
    left, right = st.columns(2)
    if tables["styles"].height:
        left.altair_chart(alt.Chart(tables["styles"].to_pandas(), title="Phrasing styles").mark_arc(innerRadius=50)
                          .encode(theta="episodes:Q", color="style:N", tooltip=["style", "episodes"]),
                          width="stretch")
    if tables["verbs"].height:
        right.altair_chart(alt.Chart(tables["verbs"].head(15).drop_nulls().to_pandas(), title="Top verbs")
                           .mark_bar().encode(x="episodes:Q", y=alt.Y("verb:N", sort="-x"),
                                              tooltip=["verb", "episodes"]), width="stretch")
    if tables["near_duplicates"].height:
        st.subheader("Same instruction, different phrasings")
        st.dataframe(tables["near_duplicates"].with_columns(pl.col("phrasings").list.join(" | ")), hide_index=True)

with shift_tab:
    c1, c2 = st.columns(2)
    datasets = [d for d, _ in state.facets(lake.uri, version, labels_version).values.get("dataset", [])]
    deploy = next((d for d in datasets if "deploy" in d), None)  # the demo's deployment logs, if present
    reference = c1.text_input("Reference (e.g. training data)", key="shift_ref",
                              value=f"dataset != {ui.quote(deploy)}" if deploy else "",
                              placeholder='e.g. split == "train"')
    target = c2.text_input("Target (e.g. deployment logs)", key="shift_target",
                           value=f"dataset == {ui.quote(deploy)}" if deploy else "",
                           placeholder='e.g. dataset == "deploy_kitchen"')
    st.caption(f"Same numbers: `curate audit --lake {lake.uri} --reference '{reference}' --target '{target}'`")
    if st.button("Compare", key="shift_run", type="primary", disabled=not target.strip()):
        st.session_state["shift_args"] = (reference.strip() or None, target.strip())
    args = st.session_state.get("shift_args")
    if args:
        try:
            with st.spinner("Comparing the two slices…"):
                audit = _shift(lake.uri, version, labels_version, *args)
        except EmbeddingsMissingError as exc:
            st.warning(f"{exc} — run `curate embed --lake {lake.uri}` first.")
        except (CurateError, ValueError) as exc:
            st.error(str(exc))
        else:
            s = audit.summary
            cols = st.columns(4)
            cols[0].metric("Target covered", f"{s['target_covered_share']:.1%}")
            cols[1].metric("Median novelty", f"{s['novelty_median']:.4f}",
                           help=f"reference's own median: {s['reference_self_distance_median']:.4f}")
            cols[2].metric("Fréchet distance", f"{s['frechet_distance']:.4f}")
            cols[3].metric("Over / under-represented clusters", f"{s['over_represented']} / {s['under_represented']}")
            shares = audit.clusters.select("cluster", "reference_share", "target_share", "status").unpivot(
                index=["cluster", "status"], variable_name="set", value_name="share").with_columns(
                pl.col("cluster").cast(pl.String))
            st.altair_chart(alt.Chart(shares.to_pandas(), title="Cluster shares").mark_bar().encode(
                x=alt.X("cluster:N"), xOffset="set:N", y=alt.Y("share:Q", axis=alt.Axis(format="%")),
                color="set:N", tooltip=["cluster", "set", alt.Tooltip("share:Q", format=".1%"), "status"])
                .properties(height=260), width="stretch")
            st.subheader("Most novel target episodes")
            novel = audit.target.head(50)
            st.dataframe(novel.with_columns(pl.format("episode?episode={}", pl.col("episode_id")).alias("open")),
                         hide_index=True, column_config={"open": st.column_config.LinkColumn(
                             "open", display_text="open")}, key="shift_table")
