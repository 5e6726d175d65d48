"""Mixtures: build a spec interactively, preview each group's share before and after, save it, export it.

The page edits a `schemas.mixture.MixtureSpec`; `curate.mixtures.resolve` computes the shares (exactly what
`curate mix SPEC --dry-run` prints) and `curate.export.export` writes the result with a progress bar. Specs and
exports go under the mixtures folder `curate ui --mixtures-dir` names (default ./mixtures); names are validated,
so no user text becomes a path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import streamlit as st
from pydantic import ValidationError

from app import state
from curate.errors import CurateError
from curate.export import FORMATS, export
from curate.mixtures import load_spec, resolve, save_manifest, save_spec
from schemas.mixture import MixtureSpec

MIXTURES_ENV = "CURATE_UI_MIXTURES"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mixtures"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
STRATEGIES = ["natural", "uniform", "temperature", "weighted", "capped", "coverage", "match"]
GROUP_BY = ["dataset", "embodiment.robot", "task_type", "scene", "split", "success", "cluster"]

lake, user = state.context()
version, labels_version = state.versions(lake)
editable = state.can_edit(user)
folder = Path(os.environ.get(MIXTURES_ENV) or "mixtures").resolve()

st.title("Mixtures")

# ------------------------------------------------------------------------------------------------ start from
choices: dict[str, Path] = {}
for base, label in ((folder, "saved"), (EXAMPLES, "example")):
    if base.is_dir():
        for p in sorted(base.glob("*.yaml")):
            choices[f"{p.stem} ({label})"] = p
start = st.selectbox("Start from", ["(new spec)", *choices], key="mix_start")
if st.session_state.get("_mix_loaded") != start:
    st.session_state["_mix_loaded"] = start
    loaded = MixtureSpec(name="my_mixture") if start == "(new spec)" else None
    if loaded is None:
        try:
            loaded = load_spec(choices[start])
        except CurateError as exc:
            st.error(str(exc))
            loaded = MixtureSpec(name="my_mixture")
    for key, value in {"mix_name": loaded.name, "mix_where": loaded.where or "", "mix_exclude": loaded.exclude or "",
                       "mix_group_by": loaded.group_by, "mix_strategy": loaded.strategy, "mix_tau": loaded.tau,
                       "mix_unit": loaded.unit, "mix_budget": float(loaded.budget or 0.0),
                       "mix_max_share": float(loaded.max_share or 0.0), "mix_max_units": float(loaded.max_units or 0.0),
                       "mix_target": loaded.target or "", "mix_dedup": loaded.dedup,
                       "mix_quality": list(loaded.quality), "mix_seed": loaded.seed,
                       "mix_description": loaded.description or "",
                       "mix_weights": dict(loaded.weights)}.items():
        st.session_state[key] = value

# ------------------------------------------------------------------------------------------------ the spec
left, right = st.columns(2)
with left:
    name = st.text_input("Name", key="mix_name", help="Letters, digits, _ and -; also the file name.")
    description = st.text_input("Description", key="mix_description")
    where = st.text_input("Include (filter)", key="mix_where", placeholder='e.g. split == "train"')
    exclude = st.text_input("Exclude (filter)", key="mix_exclude", placeholder='e.g. dataset == "deploy_kitchen"')
    group_options = GROUP_BY if st.session_state["mix_group_by"] in GROUP_BY else [st.session_state["mix_group_by"],
                                                                                    *GROUP_BY]
    group_by = st.selectbox("Group by", group_options, key="mix_group_by")
    dedup = st.segmented_control("Deduplicate", ["none", "source", "near"], key="mix_dedup") or "none"
    quality = st.multiselect("Quality gates (drop)", ["flagged", "failed", "bad_tags", "unlabelled"],
                             key="mix_quality")
with right:
    strategy = st.selectbox("Strategy", STRATEGIES, key="mix_strategy",
                            help="natural: as is · uniform: equal · temperature: size^tau · weighted: your weights · "
                                 "capped: natural with caps · coverage: by cluster · match: a target's distribution")
    tau = st.slider("Temperature tau", 0.0, 1.0, key="mix_tau", step=0.05, disabled=strategy != "temperature")
    target = st.text_input("Target slice (match)", key="mix_target", disabled=strategy != "match",
                           placeholder='e.g. split == "deploy"')
    unit = st.segmented_control("Unit", ["episodes", "steps", "hours"], key="mix_unit") or "episodes"
    budget = st.number_input("Budget (0 = everything selected)", min_value=0.0, key="mix_budget", step=100.0)
    max_share = st.number_input("Cap: max share per group (0 = none)", min_value=0.0, max_value=1.0,
                                key="mix_max_share", step=0.05)
    max_units = st.number_input("Cap: max units per group (0 = none)", min_value=0.0, key="mix_max_units", step=100.0)
    seed = st.number_input("Seed", min_value=0, step=1, key="mix_seed")

weights: dict[str, float] = dict(st.session_state.get("mix_weights") or {})
if strategy == "weighted":
    st.caption("Weights per group (groups not listed get weight 0)")
    edited = st.data_editor(pl.DataFrame({"group": list(weights), "weight": list(weights.values())},
                                         schema={"group": pl.String, "weight": pl.Float64}).to_pandas(),
                            num_rows="dynamic", key="mix_weights_editor")
    weights = {str(r["group"]): float(r["weight"]) for r in edited.to_dict("records")
               if r.get("group") and r.get("weight") == r.get("weight") and r.get("weight") is not None}


def _spec() -> MixtureSpec:
    data: dict[str, Any] = {
        "name": name.strip(), "description": description.strip() or None, "where": where.strip() or None,
        "exclude": exclude.strip() or None, "group_by": group_by, "strategy": strategy, "tau": tau, "unit": unit,
        "budget": budget or None, "max_share": max_share or None, "max_units": max_units or None,
        "target": target.strip() or None if strategy == "match" else None, "dedup": dedup, "quality": quality,
        "seed": int(seed), "weights": weights if strategy == "weighted" else {},
    }
    return MixtureSpec.model_validate(data)


try:
    spec = _spec()
except ValidationError as exc:
    st.error("The spec is not valid: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                   for e in exc.errors()))
    st.stop()

with st.expander("Spec (YAML)", icon=":material/description:"):
    st.code(spec.to_yaml(), language="yaml")
    st.caption(f"Same result: save it, then `curate mix {folder / (spec.name + '.yaml')} --lake {lake.uri} --dry-run`")

# ------------------------------------------------------------------------------------------------ preview


@st.cache_data(show_spinner=False, max_entries=32)
def _resolve(uri: str, version: int, labels_version: int, spec_json: str) -> Any:
    return resolve(MixtureSpec.model_validate_json(spec_json), state.lake())


try:
    with st.spinner("Resolving the mixture…"):
        manifest = _resolve(lake.uri, version, labels_version, spec.model_dump_json())
except CurateError as exc:
    st.error(str(exc))
    st.stop()

cols = st.columns(4)
cols[0].metric("Episodes selected", f"{manifest.selected_episodes:,}", help=f"of {manifest.total_episodes:,} matching")
cols[1].metric(f"Total {manifest.unit}", f"{manifest.total_units:,.1f}")
cols[2].metric("Effective groups (after)", f"{manifest.effective_groups_achieved:.2f}",
               help=f"requested {manifest.effective_groups_requested:.2f}; exp(entropy) of the shares")
cols[3].metric("Excluded", f"{sum(manifest.excluded.values()):,}",
               help=", ".join(f"{k}: {v}" for k, v in manifest.excluded.items()) or None)
for warning in manifest.warnings:
    st.warning(warning)

total_available = sum(g.units_available for g in manifest.groups) or 1.0
groups = pl.DataFrame([{"group": g.group, "episodes": g.episodes, "units_available": g.units_available,
                        "before": g.units_available / total_available, "requested": g.requested_share,
                        "after": g.achieved_share, "max_repeats": g.max_repeats, "capped": g.capped,
                        "note": g.note or ""} for g in manifest.groups])
long = groups.select("group", "before", "after").unpivot(index="group", variable_name="share of", value_name="share")
st.altair_chart(alt.Chart(long.to_pandas(), title="Group shares before and after").mark_bar().encode(
    y=alt.Y("group:N", sort="-x", title=None), x=alt.X("share:Q", axis=alt.Axis(format="%")),
    yOffset=alt.YOffset("share of:N", sort=["before", "after"]),
    color=alt.Color("share of:N", sort=["before", "after"], scale=alt.Scale(range=["#9ecae9", "#1f77b4"])),
    tooltip=["group", "share of", alt.Tooltip("share:Q", format=".2%")],
).properties(height=max(160, 44 * groups.height)), width="stretch")
st.dataframe(groups, hide_index=True, key="mix_groups", column_config={
    c: st.column_config.NumberColumn(format="percent") for c in ("before", "requested", "after")})

# ------------------------------------------------------------------------------------------------ save & export
if not editable:
    st.caption("Saving and exporting are disabled (read-only or viewer).")
    st.stop()

name_ok = bool(_NAME.match(spec.name))
if not name_ok:
    st.warning("To save or export, give a name of letters, digits, _ and - (starting with a letter or digit).")
c1, c2 = st.columns(2)
with c1:
    st.subheader("Save")
    if st.button("Save spec", key="mix_save", disabled=not name_ok, icon=":material/save:"):
        path = save_spec(spec, folder / f"{spec.name}.yaml")
        save_manifest(manifest, folder / f"{spec.name}.manifest.json")
        st.success(f"Saved {path} and its manifest (lake version {manifest.lake_version}).")
with c2:
    st.subheader("Export")
    fmt = st.selectbox("Format", FORMATS, key="mix_format")
    repeats = st.segmented_control("Repeats", ["materialize", "once"], default="materialize", key="mix_repeats",
                                   help="materialize: write each episode as many times as it repeats; "
                                        "once: write it once and rely on the weights") or "materialize"
    replace = st.checkbox("Replace an existing export", key="mix_replace")
    out = folder / "exports" / f"{spec.name}-{fmt}"
    st.caption(f"Writes to `{out}` · CLI: `curate export {folder / (spec.name + '.manifest.json')} --format {fmt} "
               f"--out {out}`")
    if st.button("Export", key="mix_export", type="primary", disabled=not name_ok, icon=":material/download:"):
        bar = st.progress(0.0, text="Starting export…")

        def progress(stage: str, done: int, total: int) -> None:
            bar.progress(min(1.0, done / total) if total else 0.0, text=f"{stage}: {done:,}/{total:,}")

        try:
            save_manifest(manifest, folder / f"{spec.name}.manifest.json")
            result = export(manifest, format=fmt, out=out, lake=lake.uri, repeats=repeats,
                            overwrite="replace" if replace else "refuse", progress=progress)
        except CurateError as exc:
            st.error(str(exc))
        else:
            bar.progress(1.0, text="Done")
            st.success(f"Exported {result.episodes:,} episodes ({result.steps:,} steps, {result.bytes / 1e6:.1f} MB) "
                       f"to {result.out} in {result.seconds:.1f}s.")
