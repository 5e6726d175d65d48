"""Episode: every camera on one step slider (play/pause), action/state series, timeline, labels and history.

Addressable as `?episode=ID&step=N`. Edits are LabelEvents saved with optimistic concurrency: the ids of the
latest events seen at load time go with the save, so a concurrent edit is reported, never silently lost.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from app import search_panel, state
from curate import ui_service as ui
from curate.errors import CurateError, EpisodeNotFoundError, LabelConflictError

lake, user = state.context()
version, labels_version = state.versions(lake)
editable = state.can_edit(user)

eid = st.query_params.get("episode")
if not eid:
    st.title("Episode")
    typed = st.text_input("Episode id", key="goto_episode", placeholder="ep_…")
    if typed:
        st.query_params["episode"] = typed.strip()
        st.rerun()
    st.page_link("views/browse.py", label="…or pick one in Browse", icon=":material/grid_view:")
    st.stop()

try:
    meta = lake.episode(eid, steps=False)
except EpisodeNotFoundError as exc:
    st.error(str(exc))
    st.page_link("views/browse.py", label="Back to Browse", icon=":material/grid_view:")
    st.stop()
with st.spinner("Loading steps…"):
    full = state.episode_steps(lake.uri, version, eid)
n = len(full.steps)

# ------------------------------------------------------------------------------------------------ header
st.title(meta.instruction or "(no instruction)")
badges = [f":blue-badge[{meta.dataset}]", f":gray-badge[{meta.embodiment.robot} · {meta.embodiment.kind}]",
          f":gray-badge[{meta.n_steps} steps · {meta.duration_s:.1f}s @ {meta.control_hz:g} Hz]"]
badges.append({True: ":green-badge[success]", False: ":red-badge[failure]"}.get(meta.success,
                                                                               ":orange-badge[success unknown]"))
badges += [f":violet-badge[{t}]" for t in meta.tags]
badges += [f":red-badge[⚑ {f}]" for f in meta.quality_flags]
st.markdown(" ".join(badges))
st.caption(f"`{eid}` · CLI: `curate show {eid} --lake {lake.uri}`")
if meta.instructions_alt:
    st.markdown("**Alternative instructions:** " + " · ".join(f"“{a}”" for a in meta.instructions_alt))

# ------------------------------------------------------------------------------------------------ player
if st.session_state.get("_episode_shown") not in (None, eid):
    st.session_state["step"] = 0
    st.session_state["play"] = False
st.session_state["_episode_shown"] = eid
if n and int(st.session_state.get("step", 0) or 0) > n - 1:
    st.session_state["step"] = n - 1

playing = st.toggle("Play", key="play", disabled=n < 2, help="Steps through the episode (loops at the end).")
interval = max(0.25, 1.0 / meta.control_hz)


def _marker(step: int) -> alt.Chart:
    """The dashed vertical line at the current step."""
    return alt.Chart(pl.DataFrame({"step": [step]}).to_pandas()).mark_rule(
        color="black", strokeDash=[4, 3], strokeWidth=2).encode(x="step:Q")


def _chart(frame: pl.DataFrame, step: int, title: str) -> alt.LayerChart:
    lines = alt.Chart(frame.to_pandas(), title=title).mark_line().encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("value:Q", title=None),
        color=alt.Color("dimension:N", sort=None), tooltip=["step", "dimension", alt.Tooltip("value", format=".3f")])
    rule = _marker(step)
    return (lines + rule).properties(height=200)


def _timeline(step: int) -> alt.LayerChart | None:
    if not meta.segments:
        return None
    seg = pl.DataFrame([{"start": s.start, "end": max(s.end, s.start + 1), "text": s.text, "kind": s.kind}
                        for s in meta.segments]).to_pandas()
    bars = alt.Chart(seg).mark_bar(height=18, cornerRadius=3).encode(
        x=alt.X("start:Q", title="step", scale=alt.Scale(domain=[0, max(n, 1)])), x2="end:Q",
        y=alt.Y("kind:N", title=None), color=alt.Color("text:N", legend=None), tooltip=["text", "kind", "start", "end"])
    labels = alt.Chart(seg).mark_text(align="left", dx=4, color="white").encode(x="start:Q", y="kind:N", text="text")
    rule = _marker(step)
    return (bars + labels + rule).properties(height=40 + 28 * seg["kind"].nunique())


@st.fragment(run_every=interval if playing else None)
def player() -> None:
    """Cameras, slider, timeline and series redraw together; while playing, only this part reruns."""
    if n == 0:
        st.info("This episode has no steps stored.")
        return
    if playing:
        st.session_state["step"] = (int(st.session_state.get("step", 0) or 0) + 1) % n
    step = st.slider("Step", 0, max(n - 1, 1), key="step", bind="query-params", disabled=n < 2)
    step = min(int(step), n - 1)
    s = full.steps[step]
    st.caption(f"t = {s.timestamp_s:.2f}s" + (f" · language: “{s.language}”" if s.language else "")
               + (f" · reward {s.reward:g}" if s.reward is not None else "")
               + (" · last step" if s.is_last else ""))
    images = ui.step_images(full, step)
    if images:
        cols = st.columns(max(len(images), 3))  # at most a third of the width each, so the charts stay in view
        for col, (camera, img) in zip(cols, images.items(), strict=False):
            scale = max(1, 320 // max(img.width, 1))
            shown = img.resize((img.width * scale, img.height * scale)) if scale > 1 else img
            col.image(shown, caption=camera, width="stretch")
    else:
        st.caption("No decodable camera frames at this step.")
    current = [sg.text for sg in meta.segments if sg.start <= step < sg.end]
    if current:
        st.markdown("**Now:** " + " · ".join(current))
    timeline = _timeline(step)
    if timeline is not None:
        st.altair_chart(timeline, width="stretch")
    left, right = st.columns(2)
    actions = ui.series(full, kind="action")
    if actions.height:
        left.altair_chart(_chart(actions, step, f"action ({full.action_space.kind})"), width="stretch")
    states = ui.series(full, kind="state")
    if states.height:
        right.altair_chart(_chart(states, step, f"state ({full.state_space.kind if full.state_space else ''})"),
                           width="stretch")


player()

# ------------------------------------------------------------------------------------------------ similar episodes
with st.expander("Similar episodes", icon=":material/join_inner:", expanded=False):
    if not search_panel.available():
        st.caption("Needs the search engine (`curate.search`), which this build lacks; run `curate embed` "
                   "once it is available.")
    else:
        try:
            similar = ui.similar_episodes(lake, eid, k=6)
        except (CurateError, ImportError) as exc:
            similar = []
            st.caption(str(exc))
        if similar:
            cols = st.columns(len(similar))
            for col, row in zip(cols, similar, strict=True):
                thumb = state.thumbnail(lake, row)
                if thumb:
                    col.image(thumb, width="stretch")
                col.caption(f"{row.get('instruction') or ''} ({row['score']:.2f})")
                col.page_link("views/episode.py", label="Open", query_params={"episode": row["episode_id"]})

# ------------------------------------------------------------------------------------------------ labels
gen_key, seen_key, base_key, conflict_key = f"gen_{eid}", f"seen_{eid}", f"base_{eid}", f"conflict_{eid}"


def _reload_labels() -> None:
    fresh = lake.refresh().episode(eid, steps=False)
    st.session_state[seen_key] = ui.label_state(lake, eid)
    st.session_state[base_key] = {f: _plain(getattr(fresh, f)) for f in ui.EDITABLE_FIELDS}
    st.session_state[gen_key] = st.session_state.get(gen_key, 0) + 1
    st.session_state.pop(conflict_key, None)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
    return value


if seen_key not in st.session_state:
    st.session_state[seen_key] = ui.label_state(lake, eid)
    st.session_state[base_key] = {f: _plain(getattr(meta, f)) for f in ui.EDITABLE_FIELDS}
gen = st.session_state.get(gen_key, 0)
base = st.session_state[base_key]

labels_tab, history_tab, details_tab = st.tabs(["Labels", "History", "Details"])

with labels_tab:
    if not editable:
        st.markdown(f"**Instruction:** {meta.instruction or '—'}  \n**Success:** {meta.success}  \n"
                    f"**Tags:** {', '.join(meta.tags) or '—'}  \n**Notes:** {meta.notes or '—'}")
        st.caption("Read-only: editing is disabled." if state.settings().read_only
                   else "Your role (viewer) cannot edit.")
    else:
        tag_options = sorted({*base["tags"], *(v for v, _ in state.facets(lake.uri, version, labels_version)
                                                .values.get("tags", []))})
        with st.form(f"labels_{eid}_{gen}"):
            instruction = st.text_input("Instruction", value=base["instruction"] or "", key=f"ed_instruction_{gen}")
            success_opts: list[bool | None] = [None, True, False]
            success = st.selectbox("Success", success_opts, index=success_opts.index(base["success"]),
                                   format_func=lambda v: {None: "unknown", True: "success", False: "failure"}[v],
                                   key=f"ed_success_{gen}")
            tags = st.multiselect("Tags", tag_options, default=base["tags"], accept_new_options=True,
                                  key=f"ed_tags_{gen}")
            notes = st.text_area("Notes", value=base["notes"] or "", key=f"ed_notes_{gen}")
            st.caption("Segments (step ranges, end exclusive)")
            seg_frame = pl.DataFrame(base["segments"] or [], schema={"start": pl.Int64, "end": pl.Int64,
                                                                     "text": pl.String, "kind": pl.String})
            segments = st.data_editor(
                seg_frame.to_pandas(), num_rows="dynamic", key=f"ed_segments_{gen}", width="stretch",
                column_config={"kind": st.column_config.SelectboxColumn(
                    options=["subgoal", "tag", "phase", "note"], default="subgoal"),
                    "start": st.column_config.NumberColumn(min_value=0, max_value=max(n, 0), step=1),
                    "end": st.column_config.NumberColumn(min_value=0, max_value=max(n, 0), step=1)})
            note = st.text_input("Why (optional, kept in history)", key=f"ed_note_{gen}")
            saved = st.form_submit_button("Save labels", type="primary")
        if saved:
            seg_rows = [{"start": int(r["start"]), "end": int(r["end"]), "text": str(r["text"]),
                         "kind": r["kind"] or "subgoal"}
                        for r in segments.to_dict("records")
                        if r.get("text") and r.get("start") == r.get("start") and r.get("end") == r.get("end")]
            edited = {"instruction": instruction.strip() or None, "success": success, "tags": list(tags),
                      "notes": notes.strip() or None, "segments": seg_rows}
            changes = {f: v for f, v in edited.items() if v != base[f]}
            if not changes:
                st.info("Nothing changed.")
            else:
                try:
                    events = ui.save_labels(lake, eid, changes, author=user.name, seen=st.session_state[seen_key],
                                            note=note or None)
                    _reload_labels()
                    st.toast(f"Saved {len(events)} change(s): {', '.join(changes)}", icon=":material/check:")
                    st.rerun()
                except LabelConflictError as exc:
                    st.session_state[conflict_key] = {"mine": changes, "theirs": exc.current or {}, "note": note}
                except (CurateError, ValueError) as exc:
                    st.error(f"Not saved: {exc}")
        conflict = st.session_state.get(conflict_key)
        if conflict:
            st.error("Someone else changed this episode since you opened it. Nothing was saved. "
                     "Compare, then keep yours, merge, or take theirs.", icon=":material/warning:")
            st.dataframe(pl.DataFrame([{"field": f, "yours": ui._show(v), "theirs now": ui._show(
                conflict["theirs"].get(f))} for f, v in conflict["mine"].items()]), hide_index=True,
                key=f"conflict_table_{gen}")
            c1, c2, c3 = st.columns(3)
            if c1.button("Save mine anyway", key=f"conflict_mine_{gen}"):
                ui.save_labels(lake, eid, conflict["mine"], author=user.name, seen=ui.label_state(lake, eid),
                               note=conflict.get("note") or "saved over a concurrent edit")
                _reload_labels()
                st.rerun()
            if "tags" in conflict["mine"] and c2.button("Merge tags (union)", key=f"conflict_merge_{gen}"):
                merged = list(dict.fromkeys([*(conflict["theirs"].get("tags") or []), *conflict["mine"]["tags"]]))
                mine = {**conflict["mine"], "tags": merged}
                ui.save_labels(lake, eid, mine, author=user.name, seen=ui.label_state(lake, eid),
                               note=conflict.get("note") or "merged with a concurrent edit")
                _reload_labels()
                st.rerun()
            if c3.button("Discard mine, load theirs", key=f"conflict_theirs_{gen}"):
                _reload_labels()
                st.rerun()

with history_tab:
    events = ui.history(lake, eid)
    if not events:
        st.caption("No label changes yet; values come from the source.")
    else:
        st.dataframe(pl.DataFrame(events), hide_index=True, key=f"history_{eid}",
                     column_order=["at", "author", "field", "before", "after", "note"])
        if editable:
            pick = st.selectbox("Undo a change", [e["event_id"] for e in events], key=f"undo_pick_{eid}",
                                format_func=lambda i: next(f"{e['at']:%H:%M:%S} {e['author']}: {e['field']} "
                                                           f"{e['before']} → {e['after']}"
                                                           for e in events if e["event_id"] == i))
            if st.button("Undo", key=f"undo_{eid}", icon=":material/undo:"):
                try:
                    lake.undo(pick, author=user.name)
                    _reload_labels()
                    st.rerun()
                except CurateError as exc:
                    st.error(str(exc))
    st.caption(f"CLI: `curate history {eid} --lake {lake.uri}`")

with details_tab:
    st.markdown(f"**Scene:** {meta.scene or '—'} · **Task type:** {meta.task_type or '—'} · "
                f"**Split:** {meta.split or '—'}  \n**Objects:** {', '.join(meta.objects) or '—'}  \n"
                f"**Source:** `{meta.source.format}` {meta.source.uri} (key `{meta.source.key}`)  \n"
                f"**Cameras:** " + ", ".join(f"{c.name} {c.width}×{c.height}" for c in meta.cameras))
    st.json(meta.metadata, expanded=False)
