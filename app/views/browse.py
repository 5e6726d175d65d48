"""Browse: facets and the filter language narrow the lake; a paged grid of keyframes; bulk relabel.

Filtering and paging run in the engine (`curate.ui_service.browse_page` -> `Lake.page`), so only one page of
rows and thumbnails ever reaches the browser. The filter shown under the grid reproduces the page in the CLI.
"""

from __future__ import annotations

import streamlit as st

from app import search_panel, state
from curate import ui_service as ui
from curate.errors import CurateError, FilterError

PAGE_SIZE = 24
GRID = 4

lake, user = state.context()
version, labels_version = state.versions(lake)
editable = state.can_edit(user)
selected: set[str] = st.session_state.setdefault("selected", set())

st.title("Browse")
with st.spinner("Reading facets…"):
    facets = state.facets(lake.uri, version, labels_version)
if facets.total == 0:
    st.info(f"This lake is empty. Add data with `curate ingest SOURCE --lake {lake.uri}`.")
    st.stop()


def _options(name: str) -> list[str]:
    return [v for v, _ in facets.values.get(name, [])]


def _label(name: str):
    counts = dict(facets.values.get(name, []))
    return lambda v: f"{v} ({counts.get(v, 0):,})"


# ------------------------------------------------------------------------------------------------ sidebar facets
with st.sidebar:
    st.header("Filter")
    datasets = st.multiselect("Dataset", _options("dataset"), format_func=_label("dataset"), key="f_dataset")
    embodiments = st.multiselect("Embodiment", _options("embodiment"), format_func=_label("embodiment"),
                                 key="f_embodiment")
    task_types = st.multiselect("Task type", _options("task_type"), format_func=_label("task_type"), key="f_task")
    splits = st.multiselect("Split", _options("split"), format_func=_label("split"), key="f_split")
    success = st.radio("Success", ["any", "success", "failure", "unlabelled"], horizontal=True, key="f_success")
    tags = st.multiselect("Tags (all of)", _options("tags"), format_func=_label("tags"), key="f_tags")
    flags = st.multiselect("Quality flags (any of)", _options("quality_flags"), format_func=_label("quality_flags"),
                           key="f_flags", placeholder="none flagged yet" if not _options("quality_flags") else None)
    clusters = st.multiselect("Cluster", [int(v) for v in _options("cluster")], key="f_cluster",
                              format_func=lambda c: _label("cluster")(str(c)),
                              placeholder="Choose options" if _options("cluster") else "none: run the audit first")
    machine_tags = st.multiselect("Machine tags (all of)", _options("machine_tags"), key="f_machine_tags",
                                  format_func=_label("machine_tags"),
                                  placeholder=None if _options("machine_tags") else "none: run the audit first")
    lo, hi = facets.n_steps
    n_steps = st.slider("Length (steps)", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="f_len") if hi > lo else None
    instruction = st.text_input("Instruction contains", key="f_instruction")

where_text = st.text_input(
    "Filter", key="where", placeholder='e.g. dataset == "tabletop_franka" and n_steps > 20 and "clutter" in tags',
    help="The filter language of `curate ls --where`: == != < <= > >= ~ (contains), in, is null, and/or/not.")
selection = ui.FacetSelection(
    datasets=datasets, embodiments=embodiments, task_types=task_types, splits=splits, success=success, tags=tags,
    quality_flags=flags, clusters=clusters, machine_tags=machine_tags,
    n_steps=None if n_steps is None or tuple(n_steps) == (lo, hi) else tuple(n_steps),
    instruction=instruction, where=where_text)
where = ui.facet_filter(selection)

hits = search_panel.render(lake, where)  # semantic search (None when not searching)

if st.session_state.get("_last_where") != (where, hits is not None):
    st.session_state["_last_where"] = (where, hits is not None)
    st.session_state.pop("browse_page", None)  # a new filter starts on page 1

# ------------------------------------------------------------------------------------------------ results
try:
    if hits is not None:
        rows, total = hits, len(hits)
        n_pages = 1
    else:
        probe = state.browse_page(lake.uri, version, labels_version, where, 0, PAGE_SIZE)
        total = probe.total
        n_pages = probe.pages
except FilterError as exc:
    st.error(f"Filter error: {exc}")
    st.stop()

head = st.columns([3, 2])
head[0].markdown(f"**{total:,}** episodes match" + (f" · {len(selected)} selected" if selected else ""))
if where:
    head[0].caption(f"CLI: `curate ls --lake {lake.uri} --where '{where}'`")
if hits is None:
    with head[1]:
        current = st.pagination(n_pages, key="browse_page", max_visible_pages=7) if n_pages > 1 else 1
    page = state.browse_page(lake.uri, version, labels_version, where, int(current) - 1, PAGE_SIZE)
    rows = page.rows


def _toggle(episode_id: str) -> None:
    if st.session_state.get(f"sel_{episode_id}"):
        selected.add(episode_id)
    else:
        selected.discard(episode_id)


def _badges(row: dict) -> str:
    out = [f":blue-badge[{row['dataset']}]", f":gray-badge[{(row.get('embodiment') or {}).get('robot', '?')}]",
           f":gray-badge[{row['n_steps']} steps]"]
    if row.get("success") is True:
        out.append(":green-badge[success]")
    elif row.get("success") is False:
        out.append(":red-badge[failure]")
    else:
        out.append(":orange-badge[unlabelled]")
    out += [f":violet-badge[{t}]" for t in (row.get("tags") or [])[:3]]
    out += [f":red-badge[⚑ {f}]" for f in (row.get("quality_flags") or [])[:2]]
    if "score" in row:
        out.append(f":blue-badge[score {row['score']:.3f}]")
    return " ".join(out)


if not rows:
    st.info("No episode matches. Loosen a facet or the filter.")
for start in range(0, len(rows), GRID):
    cols = st.columns(GRID)
    for col, row in zip(cols, rows[start:start + GRID], strict=False):
        eid = row["episode_id"]
        with col.container(border=True):
            thumb = state.thumbnail(lake, row)
            if thumb is not None:
                st.image(thumb, width="stretch")
            else:
                st.caption("(no image)")
            st.markdown(f"**{row.get('instruction') or '(no instruction)'}**")
            st.markdown(_badges(row))
            c1, c2 = st.columns(2)
            if editable:
                st.session_state[f"sel_{eid}"] = eid in selected
                c1.checkbox("select", key=f"sel_{eid}", on_change=_toggle, args=(eid,))
            c2.page_link("views/episode.py", label="Open", icon=":material/open_in_new:",
                         query_params={"episode": eid})

# ------------------------------------------------------------------------------------------------ bulk relabel
if editable:
    st.divider()
    with st.expander("Bulk relabel", icon=":material/edit_note:"):
        scope = st.radio("Apply to", ["selected", "matching"], horizontal=True, key="bulk_scope",
                         format_func=lambda s: f"selected episodes ({len(selected)})" if s == "selected"
                         else f"everything matching the filter ({total:,})")
        action = st.selectbox("Change", ["add_tag", "remove_tag", "set_success", "set_instruction", "set_notes"],
                              key="bulk_action", format_func=lambda a: a.replace("_", " "))
        if action in ("add_tag", "remove_tag"):
            known = ", ".join(_options("tags")[:8])
            value = st.text_input("Tag", key="bulk_tag", placeholder=f"e.g. {known}" if known else "e.g. needs-review")
        elif action == "set_success":
            value = st.radio("Success", [True, False, None], horizontal=True, key="bulk_success",
                             format_func=lambda v: {True: "success", False: "failure", None: "unknown"}[v])
        else:
            value = st.text_input("New text", key="bulk_text")
        note = st.text_input("Note (why)", key="bulk_note")
        if st.button("Apply", type="primary", key="bulk_apply"):
            try:
                if scope == "selected":
                    ids = sorted(selected)
                elif hits is not None:
                    ids = [r["episode_id"] for r in hits]
                else:
                    ids = ui.matching_ids(lake, where)
                if not ids:
                    st.warning("Nothing to change: select episodes first.")
                else:
                    bar = st.progress(0.0, text=f"Relabelling {len(ids):,} episodes…")
                    kind = "set" if action.startswith("set_") else action
                    fld = action.removeprefix("set_") if kind == "set" else "tags"
                    n = ui.bulk_relabel(lake, ids, action=kind, field=fld, value=value, author=user.name,
                                        note=note or None,
                                        progress=lambda d, t: bar.progress(d / t, text=f"{d:,}/{t:,} episodes"))
                    bar.progress(1.0, text="Done")
                    st.success(f"Changed {n:,} of {len(ids):,} episodes; see Overview → recent label activity.")
                    selected.clear()
            except CurateError as exc:
                st.error(str(exc))
            except ValueError as exc:
                st.error(f"Invalid value: {exc}")
