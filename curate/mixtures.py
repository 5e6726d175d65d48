"""Resolve a MixtureSpec against a lake into a deterministic Manifest.

    spec = load_spec("examples/mixtures/demo_balanced.yaml")
    manifest = resolve(spec, Lake("./lake"))            # episodes, weights, repeats, per-group shares
    save_manifest(manifest, "mix.json")

The arithmetic lives in pure functions over a Polars frame (`resolve_frame`, `group_shares`,
`apply_caps`), so it is tested on hand-computed tables without a lake. Randomness (which episodes fill a
group's budget) comes from a generator seeded by (spec.seed, group name): the same spec on the same lake
version gives the same manifest, byte for byte, and adding a group never reshuffles the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.errors import ConfigError, CurateError
from curate.lake import Lake
from schemas.mixture import GroupShare, Manifest, ManifestEpisode, MixtureSpec

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called as resolution advances (stages: select, resolve)."""

NONE_GROUP = "(none)"
_EPS = 1e-9
CLUSTER_COLUMN = "cluster"
BASE_COLUMNS = ("episode_id", "dataset", "n_steps", "duration_s", "success", "tags", "quality_flags", "instruction",
                "source")


class MixtureError(ConfigError):
    """A spec that cannot be met on this lake: the message names the group and what to change."""


# ------------------------------------------------------------------------------------------------- spec files
def load_spec(path: str | Path) -> MixtureSpec:
    """Read a spec from YAML or JSON; a missing `name` defaults to the file stem.

    Raises:
        ConfigError: the file is missing or the spec is invalid (the message names the field).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read mixture spec {path}: {exc.strerror or exc}") from None
    try:
        return MixtureSpec.from_text(text, name_hint=path.stem)
    except ValueError as exc:
        raise ConfigError(f"invalid mixture spec {path}: {exc}") from None


def save_spec(spec: MixtureSpec, path: str | Path) -> Path:
    """Write a spec as YAML (`.yaml`/`.yml`) or JSON (anything else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".yaml", ".yml"):
        path.write_text(spec.to_yaml())
    else:
        path.write_text(spec.model_dump_json(indent=2) + "\n")
    return path


def save_manifest(manifest: Manifest, path: str | Path) -> Path:
    """Write the manifest's stable JSON (atomically: temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(manifest.to_json())
    tmp.replace(path)
    return path


def load_manifest(path: str | Path) -> Manifest:
    """Read a manifest written by `save_manifest` / `curate mix`."""
    path = Path(path)
    try:
        return Manifest.from_json(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a mixture manifest (write one with `curate mix`): {exc}") from None


# ------------------------------------------------------------------------------------------------- arithmetic
def group_shares(spec: MixtureSpec, sizes: dict[str, float], *, steps: dict[str, float] | None = None,
                 target: dict[str, float] | None = None) -> tuple[dict[str, float], list[str]]:
    """Requested share per group (summing to 1) before caps, and any warnings.

    Args:
        sizes: units available per group (only non-empty groups).
        steps: steps per group, for `balance_weights` (Octo multiplies by the number of transitions).
        target: units per group of the target slice, for `match`.

    Raises:
        MixtureError: a weight for a group that does not exist, all weights zero, or no overlap with the target.
    """
    groups = sorted(sizes)
    warnings: list[str] = []
    if not groups:
        raise MixtureError(f"mixture {spec.name!r} selects no episodes: loosen `where`/`exclude` or the quality gates")
    strategy = spec.strategy
    if strategy in ("natural", "capped"):
        raw = {g: sizes[g] for g in groups}
    elif strategy in ("uniform", "coverage"):
        raw = {g: 1.0 for g in groups}
    elif strategy == "temperature":
        raw = {g: sizes[g] ** spec.tau for g in groups}
    elif strategy == "weighted":
        unknown = sorted(set(spec.weights) - set(groups))
        if unknown and spec.missing_groups == "error":
            raise MixtureError(
                f"mixture {spec.name!r} weights group {unknown[0]!r} but no selected episode has "
                f"{spec.group_by} == {unknown[0]!r} (groups present: {', '.join(groups)}); fix the name or set "
                "`missing_groups: ignore`" + (f" ({len(unknown)} unknown groups)" if len(unknown) > 1 else ""))
        if unknown:
            warnings.append(f"{len(unknown)} weighted groups are not in the lake and were ignored: "
                            f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
        raw = {g: float(spec.weights.get(g, spec.default_weight)) for g in groups}
        if spec.balance_weights:
            per = steps if steps is not None else sizes
            raw = {g: raw[g] * per[g] for g in groups}
        unweighted = [g for g in groups if g not in spec.weights]
        if unweighted and spec.default_weight == 0:
            warnings.append(f"groups without a weight get 0 (default_weight): {', '.join(unweighted)}")
    elif strategy == "match":
        if not target:
            raise MixtureError(f"the target slice of mixture {spec.name!r} ({spec.target}) selects no episodes")
        total_t = sum(target.values())
        missing = {g: v / total_t for g, v in target.items() if g not in sizes}
        for g, share in sorted(missing.items(), key=lambda kv: -kv[1]):
            warnings.append(f"target {spec.group_by} {g!r} ({share:.1%} of the target) has no training episodes")
        raw = {g: target.get(g, 0.0) for g in groups}
        if sum(raw.values()) <= 0:
            raise MixtureError(f"no {spec.group_by} of the target slice ({spec.target}) has training episodes; "
                               "nothing to match")
    else:  # pragma: no cover - Literal guards this
        raise MixtureError(f"unknown strategy {strategy!r}")
    total = sum(raw.values())
    if total <= 0:
        raise MixtureError(f"every group of mixture {spec.name!r} has weight 0; give at least one group a weight "
                           f"(groups: {', '.join(groups)})")
    return {g: raw[g] / total for g in groups}, warnings


def apply_caps(shares: dict[str, float], budget: float, *, max_share: float | None = None,
               max_units: float | None = None) -> tuple[dict[str, float], set[str]]:
    """Cap each group's units at min(max_share * budget, max_units), giving the excess to uncapped groups
    in proportion to their shares (water-filling). Returns (units per group, capped groups).

    Raises:
        MixtureError: the caps cannot hold the budget (every group with a share is capped below it).
    """
    cap = math.inf
    if max_share is not None:
        cap = min(cap, max_share * budget)
    if max_units is not None:
        cap = min(cap, max_units)
    fixed: dict[str, float] = {}
    capped: set[str] = set()
    active = {g: s for g, s in shares.items() if s > 0}
    while True:
        free = {g: s for g, s in active.items() if g not in fixed}
        remaining = budget - sum(fixed.values())
        if not free:
            if remaining > _EPS * max(1.0, budget):
                limits = []
                if max_share is not None:
                    limits.append(f"max_share {max_share}")
                if max_units is not None:
                    limits.append(f"max_units {max_units:g}")
                raise MixtureError(
                    f"the caps ({', '.join(limits)}) allow at most {sum(fixed.values()):g} units over "
                    f"{len(fixed)} groups but the budget is {budget:g}; every group is capped "
                    f"(e.g. {sorted(fixed)[0]!r} at {cap:g}): raise the cap, lower the budget or add groups")
            break
        total_free = sum(free.values())
        alloc = {g: remaining * s / total_free for g, s in free.items()}
        over = [g for g, units in alloc.items() if units > cap + _EPS]
        if not over:
            fixed.update(alloc)
            break
        for g in over:
            fixed[g] = cap
            capped.add(g)
    units = {g: fixed.get(g, 0.0) for g in shares}
    return units, capped


def effective_groups(shares: list[float]) -> float:
    """exp(Shannon entropy) of a distribution: 1 for one group, G for G equal groups."""
    total = sum(shares)
    if total <= 0:
        return 0.0
    h = -sum((s / total) * math.log(s / total) for s in shares if s > 0)
    return math.exp(h)


def _apportion(targets: dict[str, float], total: int, *, no_round_up: set[str] | None = None) -> dict[str, int]:
    """Integers summing to `total`, each within 1 of its target (largest remainder; ties by name).

    Groups in `no_round_up` (capped ones) never get more than their target.
    """
    floors = {g: math.floor(t + _EPS) for g, t in targets.items()}
    left = total - sum(floors.values())
    blocked = no_round_up or set()
    order = sorted((g for g in targets if g not in blocked or left > len(targets) - len(blocked)),
                   key=lambda g: (g in blocked, -(targets[g] - floors[g]), g))
    for g in order[: max(0, left)]:
        floors[g] += 1
    return floors


def _rng(seed: int, group: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "little")
    return np.random.default_rng([seed & 0xFFFFFFFF, digest])


def _repeats_for_group(ids: list[str], units: np.ndarray, target: float, *, seed: int, group: str,
                       whole: bool) -> np.ndarray:
    """Integer copies per episode so that the group's units come closest to `target`.

    Every episode gets floor(target / available) copies; the remainder is filled by walking a seeded
    permutation (sorted ids first, so the result does not depend on row order). With `whole` (unit episodes)
    the remainder is an exact count of episodes.
    """
    n = len(ids)
    reps = np.zeros(n, dtype=np.int64)
    available = float(units.sum())
    if n == 0 or target <= 0 or available <= 0:
        return reps
    base = math.floor(target / available + _EPS)
    reps[:] = base
    remainder = target - base * available
    order = np.argsort(np.array(ids, dtype=object), kind="stable")
    perm = order[_rng(seed, group).permutation(n)]
    if whole:
        extra = round(remainder)
        reps[perm[:extra]] += 1
        return reps
    acc = 0.0
    for i in perm:
        u = float(units[i])
        if acc + u <= remainder + u / 2:
            reps[i] += 1
            acc += u
        if acc >= remainder - _EPS:
            break
    return reps


# ------------------------------------------------------------------------------------------------- selection
def units_of(frame: pl.DataFrame, unit: str) -> pl.Series:
    """Size of each episode in the mixture's unit."""
    if unit == "episodes":
        return pl.Series("units", [1.0] * frame.height, dtype=pl.Float64)
    if unit == "steps":
        return frame["n_steps"].cast(pl.Float64).alias("units")
    return (frame["duration_s"].cast(pl.Float64) / 3600.0).alias("units")


def group_keys(frame: pl.DataFrame, group_by: str) -> pl.Series:
    """The group of each row as a string: a column, a struct path (a.b) or a list column (its first sorted item)."""
    column = "tags" if group_by == "tag" else group_by
    head, *rest = column.split(".")
    if head not in frame.columns:
        raise MixtureError(f"cannot group by {group_by!r}: no such column (columns: {', '.join(frame.columns)})")
    expr = pl.col(head)
    for part in rest:
        expr = expr.struct.field(part)
    values = frame.select(expr.alias("g"))["g"]
    if isinstance(values.dtype, pl.List):
        values = values.list.sort().list.first()
    return values.cast(pl.String).fill_null(NONE_GROUP).alias("group")


def apply_gates(frame: pl.DataFrame, spec: MixtureSpec) -> tuple[pl.DataFrame, dict[str, int]]:
    """Drop episodes failing the quality gates and duplicates; return the rest and counts per reason."""
    dropped: dict[str, int] = {}

    def drop(reason: str, mask: pl.Series) -> None:
        nonlocal frame
        mask = mask.fill_null(False)
        n = int(mask.sum())
        if n:
            dropped[reason] = dropped.get(reason, 0) + n
            frame = frame.filter(~mask)

    gates = set(spec.quality)
    if "flagged" in gates and "quality_flags" in frame.columns:
        drop("gate:flagged", frame["quality_flags"].list.len() > 0)
    if "failed" in gates and "success" in frame.columns:
        drop("gate:failed", frame["success"] == False)  # noqa: E712 - null (unknown) passes
    if "bad_tags" in gates and "tags" in frame.columns and spec.bad_tags:
        bad = set(spec.bad_tags)
        drop("gate:bad_tags", pl.Series([bool(bad & set(t or [])) for t in frame["tags"].to_list()]))
    if "unlabelled" in gates and "instruction" in frame.columns:
        drop("gate:unlabelled", frame["instruction"].is_null() | (frame["instruction"].str.strip_chars() == ""))
    if spec.dedup == "source":
        if "source" not in frame.columns:
            raise MixtureError("dedup 'source' needs the source column")
        fp = frame.select(pl.col("source").struct.field("fingerprint"))["fingerprint"]
        frame = frame.with_columns(fp.alias("_fp")).sort("episode_id")
        keep = ~frame["_fp"].is_duplicated() | frame["_fp"].is_first_distinct()
        drop("dedup:source", ~keep)
        frame = frame.drop("_fp")
    elif spec.dedup == "near":
        if "dup_group" not in frame.columns:
            raise MixtureError("dedup 'near' needs near-duplicate groups: run `curate embed` and `curate audit` first")
        frame = frame.sort("episode_id")
        grp = frame["dup_group"]
        keep = grp.is_null() | grp.is_first_distinct()
        drop("dedup:near", ~keep)
    return frame, dropped


def resolve_frame(spec: MixtureSpec, frame: pl.DataFrame, *, target: pl.DataFrame | None = None,
                  lake_uri: str = "", lake_version: int = 0, labels_version: int = 0,
                  excluded: dict[str, int] | None = None) -> Manifest:
    """Resolve a spec over an episodes frame that is already filtered by `where`/`exclude`.

    The frame needs episode_id, dataset, n_steps, duration_s and the group column; gate columns
    (quality_flags, success, tags, instruction, source) are used when present. `target` is the target slice
    for `match` (with the group column).
    """
    excluded = dict(excluded or {})
    frame, dropped = apply_gates(frame, spec)
    for k, v in dropped.items():
        excluded[k] = excluded.get(k, 0) + v
    frame = frame.sort("episode_id")
    frame = frame.with_columns(units_of(frame, spec.unit), group_keys(frame, spec.group_by))
    frame = frame.with_columns(pl.col("n_steps").cast(pl.Float64).alias("_steps"))
    agg = frame.group_by("group").agg(pl.len().alias("n"), pl.col("units").sum().alias("u"),
                                      pl.col("_steps").sum().alias("s")).sort("group")
    sizes = {r["group"]: float(r["u"]) for r in agg.iter_rows(named=True) if r["u"] > 0}
    counts = {r["group"]: int(r["n"]) for r in agg.iter_rows(named=True)}
    steps = {r["group"]: float(r["s"]) for r in agg.iter_rows(named=True)}
    empty = sorted(g for g in counts if g not in sizes)
    tgt_units: dict[str, float] | None = None
    if spec.strategy == "match":
        if target is None or target.height == 0:
            raise MixtureError(f"the target slice ({spec.target}) selects no episodes")
        t = target.with_columns(units_of(target, spec.unit), group_keys(target, spec.group_by))
        tgt_units = {r["group"]: float(r["units"]) for r in
                     t.group_by("group").agg(pl.col("units").sum()).iter_rows(named=True)}
    shares, warnings = group_shares(spec, sizes, steps=steps, target=tgt_units)
    for g in empty:
        warnings.append(f"group {g!r} has episodes but 0 {spec.unit}; it gets nothing")
    available = sum(sizes.values())
    budget = float(spec.budget) if spec.budget is not None else available
    if spec.unit == "episodes":
        budget = float(round(budget))
    units_target, capped = apply_caps(shares, budget, max_share=spec.max_share, max_units=spec.max_units)
    if spec.unit == "episodes":
        units_target = {g: float(v) for g, v in _apportion(units_target, int(budget), no_round_up=capped).items()}
    requested_share = {g: (units_target[g] / budget if budget > 0 else 0.0) for g in shares}

    groups: list[GroupShare] = []
    rows: list[ManifestEpisode] = []
    by_group = frame.partition_by("group", as_dict=True, maintain_order=True)
    achieved: dict[str, float] = {}
    for (g,), part in sorted(by_group.items(), key=lambda kv: kv[0][0]):
        ids = part["episode_id"].to_list()
        units = part["units"].to_numpy().astype(np.float64)
        tgt = units_target.get(g, 0.0)
        reps = _repeats_for_group(ids, units, tgt, seed=spec.seed, group=g, whole=spec.unit == "episodes")
        achieved[g] = float((reps * units).sum())
        size = sizes.get(g, 0.0)
        for eid, ds, u, r in zip(ids, part["dataset"].to_list(), units.tolist(), reps.tolist(), strict=True):
            weight = requested_share.get(g, 0.0) * u / size if size > 0 else 0.0
            rows.append(ManifestEpisode(episode_id=eid, dataset=ds, group=g, units=_r(u), weight=_r(weight, 12),
                                        repeats=int(r)))
        note = None
        if requested_share.get(g, 0.0) == 0:
            note = "weight 0: not in the mixture"
        elif tgt > size + _EPS:
            note = f"upsampled x{tgt / size:.2f}"
        elif tgt < size - _EPS:
            note = f"subsampled to {tgt / size:.1%}"
        groups.append(GroupShare(group=g, episodes=counts.get(g, 0), units_available=_r(size),
                                 requested_share=_r(requested_share.get(g, 0.0)), requested_units=_r(tgt),
                                 achieved_units=_r(achieved[g]), achieved_share=0.0,
                                 selected_episodes=int((reps > 0).sum()), max_repeats=int(reps.max(initial=0)),
                                 capped=g in capped, note=note))
    total_achieved = sum(achieved.values())
    for share in groups:
        share.achieved_share = _r(share.achieved_units / total_achieved if total_achieved > 0 else 0.0)
    rows.sort(key=lambda e: e.episode_id)
    return Manifest(
        name=spec.name, spec=spec, spec_hash=spec.spec_hash(), lake_uri=lake_uri, lake_version=lake_version,
        labels_version=labels_version, unit=spec.unit, budget=_r(budget), total_units=_r(total_achieved),
        total_episodes=len(rows), selected_episodes=sum(1 for e in rows if e.repeats > 0),
        excluded=dict(sorted(excluded.items())), groups=groups,
        effective_groups_requested=_r(effective_groups(list(requested_share.values()))),
        effective_groups_achieved=_r(effective_groups([g.achieved_units for g in groups])),
        warnings=warnings, episodes=rows)


def _r(x: float, digits: int = 9) -> float:
    """Round floats so the JSON is stable across platforms' last-bit differences."""
    return float(round(x, digits))


# ------------------------------------------------------------------------------------------------- the lake
def _needed_columns(spec: MixtureSpec, lake: Lake) -> list[str]:
    cols = [c for c in BASE_COLUMNS if c in lake.schema().names]
    head = ("tags" if spec.group_by == "tag" else spec.group_by).split(".")[0]
    if head not in cols:
        cols.append(head)
    return cols


def _cluster_frame(lake: Lake, ids: list[str], column: str) -> pl.DataFrame | None:
    """Cluster assignments computed by `curate.analytics.clusters` when the lake has no stored `cluster`
    column; None when the analytics part is absent."""
    if column != CLUSTER_COLUMN:
        return None
    try:
        from curate import analytics
    except ImportError:
        return None
    fn = getattr(analytics, "clusters", None)
    if not callable(fn):
        return None
    try:
        out = fn(lake)
    except CurateError as exc:
        raise MixtureError(f"the mixture groups by semantic cluster but the lake has none: {exc}; then run "
                           "`curate audit` (which stores clusters)") from None
    return out.select("episode_id", pl.col(column).cast(pl.String)).filter(pl.col("episode_id").is_in(ids))


def _near_duplicate_groups(lake: Lake) -> pl.DataFrame:
    """episode_id -> dup_group (the group's representative) from the near-duplicate audit."""
    try:
        from curate.analytics import near_duplicates
    except ImportError:
        raise MixtureError("dedup 'near' needs the near-duplicate audit (curate.analytics); use `dedup: source`") \
            from None
    try:
        table, _ = near_duplicates(lake)
    except CurateError as exc:
        raise MixtureError(f"dedup 'near' needs image embeddings: {exc}") from None
    return table.select("episode_id", pl.col("representative").alias("dup_group"))


def select(spec: MixtureSpec, lake: Lake) -> tuple[pl.DataFrame, pl.DataFrame | None, dict[str, int]]:
    """The candidate episodes (current labels applied), the target slice for `match`, and exclusions by reason."""
    cols = _needed_columns(spec, lake)
    cluster_col = ("tags" if spec.group_by == "tag" else spec.group_by).split(".")[0]
    scan_cols = [c for c in cols if c in lake.schema().names]
    frame = lake.scan(where=spec.where, columns=scan_cols).collect()
    excluded: dict[str, int] = {}
    if spec.exclude:
        drop_ids = set(lake.scan(where=spec.exclude, columns=["episode_id"]).collect()["episode_id"].to_list())
        before = frame.height
        frame = frame.filter(~pl.col("episode_id").is_in(list(drop_ids)))
        if before - frame.height:
            excluded["exclude"] = before - frame.height
    target = None
    if spec.strategy == "match":
        target = lake.scan(where=spec.target, columns=scan_cols).collect()
        before = frame.height
        frame = frame.filter(~pl.col("episode_id").is_in(target["episode_id"].to_list()))
        if before - frame.height:
            excluded["target_slice"] = before - frame.height
    if cluster_col not in frame.columns:
        ids = frame["episode_id"].to_list() + ([] if target is None else target["episode_id"].to_list())
        clusters = _cluster_frame(lake, ids, cluster_col)
        if clusters is None:
            if cluster_col in ("cluster", "clusters") or spec.strategy in ("coverage", "match"):
                raise MixtureError(
                    f"strategy {spec.strategy!r} groups by {cluster_col!r} but the lake has no cluster assignments; "
                    "run `curate embed` and then `curate audit` to compute them")
            raise MixtureError(f"cannot group by {spec.group_by!r}: the lake has no such column "
                               f"(columns: {', '.join(lake.schema().names)})")
        frame = frame.join(clusters, on="episode_id", how="left")
        if target is not None:
            target = target.join(clusters, on="episode_id", how="left")
    if spec.dedup == "near":
        frame = frame.join(_near_duplicate_groups(lake), on="episode_id", how="left")
    return frame, target, excluded


def resolve(spec: MixtureSpec, lake: Lake, *, progress: Progress | None = None) -> Manifest:
    """Resolve `spec` on `lake` (at the lake's version and current labels) into a manifest.

    Raises:
        MixtureError: the spec cannot be met (unknown group, caps below the budget, nothing selected, ...).
        FilterError: `where`, `exclude` or `target` does not parse.
    """
    if progress:
        progress("select", 0, 2)
    frame, target, excluded = select(spec, lake)
    if progress:
        progress("resolve", 1, 2)
    manifest = resolve_frame(spec, frame, target=target, lake_uri=lake.uri, lake_version=lake.version,
                             labels_version=lake.labels_version, excluded=excluded)
    if progress:
        progress("resolve", 2, 2)
    return manifest


def preview(spec: MixtureSpec, lake: Lake) -> pl.DataFrame:
    """Per group: episodes, units available, natural share (before) and requested/achieved share (after).

    What the UI shows when a user edits a spec; `curate mix --dry-run --json` prints the same numbers.
    """
    manifest = resolve(spec, lake)
    total = sum(g.units_available for g in manifest.groups) or 1.0
    return pl.DataFrame([
        {"group": g.group, "episodes": g.episodes, "units_available": g.units_available,
         "share_before": g.units_available / total, "requested_share": g.requested_share,
         "achieved_share": g.achieved_share, "max_repeats": g.max_repeats, "capped": g.capped, "note": g.note}
        for g in manifest.groups
    ])


def lake_for(manifest: Manifest, *, lake: str | None = None) -> Lake:
    """Open the lake a manifest was drawn from, pinned to its version and label high-water mark."""
    uri = lake or manifest.lake_uri
    return Lake(uri, version=manifest.lake_version or None, labels_version=manifest.labels_version,
                read_only=True)


def describe(manifest: Manifest) -> dict[str, Any]:
    """Headline numbers of a manifest (no per-episode rows)."""
    return manifest.summary()
