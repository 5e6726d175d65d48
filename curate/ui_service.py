"""What the Streamlit UI computes, as plain functions over a Lake, so every figure it shows is one Python call away.

The UI (app/) only reads widgets, calls these functions and renders what they return; it never opens tables or
files itself. Facet choices become filter-language text (never SQL); uploads are size-checked and decoded here.

    from curate.lake import Lake
    from curate import ui_service as ui
    lake = Lake("./lake")
    where = ui.facet_filter(ui.FacetSelection(datasets=["tabletop_franka"], success="failure"))
    page = ui.browse_page(lake, where, page=0, page_size=24)
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from curate.errors import ConfigError, LabelConflictError
from curate.lake import Lake
from curate.media import decode_frame, decode_image
from schemas import Episode, LabelEvent

SuccessChoice = Literal["any", "success", "failure", "unlabelled"]
BulkAction = Literal["set", "add_tag", "remove_tag"]
EDITABLE_FIELDS: tuple[str, ...] = ("instruction", "success", "tags", "notes", "segments")
GRID_COLUMNS = ("episode_id", "dataset", "embodiment", "instruction", "n_steps", "duration_s", "success", "tags",
                "quality_flags", "task_type", "cameras")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP")


# ------------------------------------------------------------------------------------------------ facets & filters
@dataclass
class Facets:
    """The values a Browse sidebar offers, with counts (most frequent first), and the episode length range."""

    values: dict[str, list[tuple[str, int]]]
    n_steps: tuple[int, int]
    total: int


def facets(lake: Lake) -> Facets:
    """Distinct values and counts of the facet columns over the whole lake (labels applied)."""
    derived = [c for c in ("cluster", "machine_tags") if c in lake.schema().names]
    frame = lake.episodes(columns=["dataset", "embodiment", "task_type", "split", "tags", "quality_flags", "n_steps",
                                   *derived])
    values: dict[str, list[tuple[str, int]]] = {}

    def counts(series: pl.Series) -> list[tuple[str, int]]:
        vc = series.drop_nulls().value_counts(sort=True)
        return [(str(v), int(n)) for v, n in vc.iter_rows()]

    if frame.height:
        values["dataset"] = counts(frame["dataset"])
        values["embodiment"] = counts(frame["embodiment"].struct.field("robot"))
        values["task_type"] = counts(frame["task_type"])
        values["split"] = counts(frame["split"])
        values["tags"] = counts(frame["tags"].explode())
        values["quality_flags"] = counts(frame["quality_flags"].explode())
        if "cluster" in frame.columns:
            values["cluster"] = sorted(counts(frame["cluster"]), key=lambda vc: int(vc[0]))
        if "machine_tags" in frame.columns:
            values["machine_tags"] = counts(frame["machine_tags"].explode())
        lo, hi = int(frame["n_steps"].min() or 0), int(frame["n_steps"].max() or 0)
    else:
        values = {k: [] for k in ("dataset", "embodiment", "task_type", "split", "tags", "quality_flags")}
        lo, hi = 0, 0
    return Facets(values=values, n_steps=(lo, hi), total=frame.height)


def quote(value: str) -> str:
    """A filter-language string literal for any text (backslashes and quotes escaped)."""
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


@dataclass
class FacetSelection:
    """What a user picked in the Browse sidebar. Empty lists mean "no constraint"."""

    datasets: list[str] = field(default_factory=list)
    embodiments: list[str] = field(default_factory=list)
    task_types: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    success: SuccessChoice = "any"
    tags: list[str] = field(default_factory=list)
    quality_flags: list[str] = field(default_factory=list)
    clusters: list[int] = field(default_factory=list)
    machine_tags: list[str] = field(default_factory=list)
    n_steps: tuple[int, int] | None = None
    instruction: str = ""
    where: str = ""


def _one_of(field_name: str, values: Sequence[str]) -> str:
    return f"{field_name} in [{', '.join(quote(v) for v in values)}]"


def facet_filter(selection: FacetSelection) -> str | None:
    """The filter-language expression for a facet selection (None when nothing is selected).

    Tags must all be present; quality flags match if any is present; the free `where` text is ANDed in
    parentheses, so `curate ls --where "<this>"` lists exactly what the UI shows.
    """
    clauses: list[str] = []
    if selection.datasets:
        clauses.append(_one_of("dataset", selection.datasets))
    if selection.embodiments:
        clauses.append(_one_of("embodiment.robot", selection.embodiments))
    if selection.task_types:
        clauses.append(_one_of("task_type", selection.task_types))
    if selection.splits:
        clauses.append(_one_of("split", selection.splits))
    if selection.success == "success":
        clauses.append("success == true")
    elif selection.success == "failure":
        clauses.append("success == false")
    elif selection.success == "unlabelled":
        clauses.append("success is null")
    clauses.extend(f"{quote(tag)} in tags" for tag in selection.tags)
    if selection.quality_flags:
        clauses.append("(" + " or ".join(f"{quote(flag)} in quality_flags" for flag in selection.quality_flags) + ")")
    if selection.clusters:
        clauses.append(f"cluster in [{', '.join(str(int(c)) for c in selection.clusters)}]")
    clauses.extend(f"{quote(tag)} in machine_tags" for tag in selection.machine_tags)
    if selection.n_steps is not None:
        lo, hi = selection.n_steps
        clauses.append(f"n_steps >= {int(lo)} and n_steps <= {int(hi)}")
    if selection.instruction.strip():
        clauses.append(f"instruction ~ {quote(selection.instruction.strip())}")
    if selection.where.strip():
        clauses.append(f"({selection.where.strip()})")
    return " and ".join(clauses) if clauses else None


def and_filters(*filters: str | None) -> str | None:
    """AND together optional filter expressions, each parenthesised."""
    parts = [f"({f})" for f in filters if f and f.strip()]
    return " and ".join(parts) if parts else None


# ------------------------------------------------------------------------------------------------ browse
@dataclass
class BrowsePage:
    """One page of matching episodes: `rows` are dicts of GRID_COLUMNS."""

    total: int
    page: int
    page_size: int
    rows: list[dict[str, Any]]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def browse_page(lake: Lake, where: str | None, *, page: int = 0, page_size: int = 24) -> BrowsePage:
    """One page of the episodes matching `where`; filtering and paging run in the engine, never in the UI.

    Raises:
        FilterError: `where` does not parse (the message points at the position).
    """
    page = max(0, int(page))
    page_size = max(1, min(int(page_size), 500))
    total, frame = lake.page(where, limit=page_size, offset=page * page_size, columns=list(GRID_COLUMNS))
    return BrowsePage(total=total, page=page, page_size=page_size, rows=frame.to_dicts())


def matching_ids(lake: Lake, where: str | None) -> list[str]:
    """Every episode id matching `where` (for "select everything matching the filter")."""
    return lake.scan(where=where, columns=["episode_id"]).collect()["episode_id"].to_list()


def _main_camera(cameras: Iterable[dict[str, Any]] | Iterable[Any]) -> str | None:
    best, area = None, -1
    for cam in cameras:
        c = cam if isinstance(cam, dict) else cam.model_dump()
        if c.get("missing") or c.get("kind") == "depth":
            continue
        a = int(c.get("height") or 0) * int(c.get("width") or 0)
        if a > area:
            best, area = c["name"], a
    return best


def keyframe_step(n_steps: int) -> int:
    """The step shown as an episode's thumbnail: the middle one (the object is usually in hand)."""
    return max(0, int(n_steps) // 2)


def keyframe(row: dict[str, Any]) -> tuple[int, str | None]:
    """(step, camera) of an episode row's thumbnail: the middle step of its largest RGB camera."""
    return keyframe_step(row.get("n_steps") or 0), _main_camera(row.get("cameras") or [])


def thumbnail_jpeg(lake: Lake, episode_id: str, *, step: int, camera: str, size: int = 192) -> bytes | None:
    """A JPEG thumbnail of one camera at one step of an episode (see `keyframe` for the usual choice).

    Returns None when that step and camera hold no decodable image.
    """
    data = lake.frame_bytes(episode_id, step, camera)
    if data is None:
        episode = lake.episode(episode_id, frames="lazy")
        frames = [f for f in episode.steps[step].frames if f.camera == camera] if step < len(episode.steps) else []
        if not frames:
            return None
        try:
            img = decode_frame(frames[0])
        except (ValueError, OSError):
            return None
    else:
        img = decode_image(data)
    img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ episode view
def series(episode: Episode, *, kind: Literal["action", "state"] = "action") -> pl.DataFrame:
    """Long-form time series (step, dimension, value) of an episode's actions or states, by named dimension."""
    space = episode.action_space if kind == "action" else episode.state_space
    rows: dict[str, list[Any]] = {"step": [], "dimension": [], "value": []}
    for step in episode.steps:
        vec = step.action if kind == "action" else (step.state or [])
        names = space.names if space and len(space.names) == len(vec) else [f"{kind}[{i}]" for i in range(len(vec))]
        for name, value in zip(names, vec, strict=True):
            rows["step"].append(step.index)
            rows["dimension"].append(name)
            rows["value"].append(float(value))
    return pl.DataFrame(rows, schema={"step": pl.Int64, "dimension": pl.String, "value": pl.Float64})


def step_images(episode: Episode, step: int) -> dict[str, Any]:
    """camera -> PIL image of one step (cameras without a decodable frame are left out)."""
    if not episode.steps:
        return {}
    step = min(max(0, int(step)), len(episode.steps) - 1)
    out = {}
    for frame in episode.steps[step].frames:
        try:
            out[frame.camera] = decode_frame(frame)
        except (ValueError, OSError):
            continue
    return out


def label_state(lake: Lake, episode_id: str) -> dict[str, str | None]:
    """field -> id of the latest label event an editor has seen (None: never relabelled), for `save_labels`."""
    return {f: lake.latest_event_ids([episode_id], f).get(episode_id) for f in EDITABLE_FIELDS}


def save_labels(lake: Lake, episode_id: str, changes: dict[str, Any], *, author: str,
                seen: dict[str, str | None] | None, note: str | None = None) -> list[LabelEvent]:
    """Save an editor's changes to one episode: one LabelEvent per changed field.

    Args:
        changes: field -> new value (only fields the editor changed).
        seen: field -> latest event id when the editor loaded the episode (from `label_state`); None to force.

    Raises:
        LabelConflictError: someone saved one of these fields since; nothing is written. Its `current` holds
            {field: value now} of every conflicting field so the editor can merge.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ConfigError(f"cannot edit {sorted(unknown)}; editable fields: {', '.join(EDITABLE_FIELDS)}")
    if seen is not None:
        now = label_state(lake, episode_id)
        conflicts = [f for f in changes if now.get(f) != seen.get(f)]
        if conflicts:
            current = lake.episodes(where=f"episode_id == {quote(episode_id)}", columns=conflicts).to_dicts()[0]
            raise LabelConflictError(
                f"{', '.join(conflicts)} of {episode_id} changed since you loaded it; review the current values, "
                "merge your edit and save again",
                current=current, latest_event_id=now.get(conflicts[0]))
    events: list[LabelEvent] = []
    for fld, value in changes.items():
        expected = None if seen is None else {episode_id: seen.get(fld)}
        events.extend(lake.relabel([episode_id], fld, value, author=author, note=note, expected=expected))
    return events


def history(lake: Lake, episode_id: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Label events, newest first, as rows with before/after (of one episode or the whole lake)."""
    events = lake.label_events(episode_id=episode_id)
    events.reverse()
    if limit is not None:
        events = events[:limit]
    return [{"at": e.at, "author": e.author, "episode_id": e.episode_id, "field": e.field,
             "before": _show(e.previous), "after": _show(e.value), "note": e.note, "event_id": e.event_id}
            for e in events]


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def bulk_relabel(lake: Lake, episode_ids: Sequence[str], *, action: BulkAction, field: str, value: Any,
                 author: str, note: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Apply one change to many episodes: set a field, or add/remove a tag. Returns episodes changed.

    Episodes are grouped by their current value so each group is a single commit of LabelEvents.
    """
    ids = list(dict.fromkeys(episode_ids))
    if not ids:
        return 0
    if action == "set":
        if field not in EDITABLE_FIELDS:
            raise ConfigError(f"cannot bulk-set {field!r}; editable fields: {', '.join(EDITABLE_FIELDS)}")
        done = 0
        for chunk_start in range(0, len(ids), 1000):
            chunk = ids[chunk_start:chunk_start + 1000]
            lake.relabel(chunk, field, value, author=author, note=note)
            done += len(chunk)
            if progress is not None:
                progress(done, len(ids))
        return done
    if action not in ("add_tag", "remove_tag"):
        raise ConfigError(f"unknown bulk action {action!r}; use set, add_tag or remove_tag")
    tag = value.strip() if isinstance(value, str) else ""
    if not tag:
        raise ConfigError("a tag cannot be empty")
    groups: dict[tuple[str, ...], list[str]] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        current = lake.episodes(where=f"episode_id in [{', '.join(quote(i) for i in chunk)}]",
                                columns=["episode_id", "tags"])
        for row in current.iter_rows(named=True):
            groups.setdefault(tuple(row["tags"] or []), []).append(row["episode_id"])
    changed, seen_count = 0, 0
    for tags, members in groups.items():
        seen_count += len(members)
        if action == "add_tag" and tag not in tags:
            lake.relabel(members, "tags", [*tags, tag], author=author, note=note)
            changed += len(members)
        elif action == "remove_tag" and tag in tags:
            lake.relabel(members, "tags", [t for t in tags if t != tag], author=author, note=note)
            changed += len(members)
        if progress is not None:
            progress(seen_count, len(ids))
    return changed


# ------------------------------------------------------------------------------------------------ uploads
def check_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> Any:
    """Validate an uploaded query image (size, format, pixel count) and return it as an RGB PIL image.

    Raises:
        ConfigError: too large, not an image, or a format other than JPEG/PNG/WebP.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise ConfigError(f"upload is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            width, height = probe.size
            probe.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ConfigError(f"upload is not a readable image ({exc}); use a JPEG, PNG or WebP file") from None
    if fmt not in UPLOAD_FORMATS:
        raise ConfigError(f"upload is {fmt}; use a JPEG, PNG or WebP file")
    if width * height > MAX_UPLOAD_PIXELS:
        raise ConfigError(f"upload is {width}x{height} pixels; the limit is {MAX_UPLOAD_PIXELS // 1_000_000} MP")
    return Image.open(io.BytesIO(data)).convert("RGB")


# ------------------------------------------------------------------------------------------------ semantic search
def _with_grid_rows(lake: Lake, hits: pl.DataFrame) -> list[dict[str, Any]]:
    """Search hits (episode_id, score, camera, step) joined with the grid columns, best first."""
    if hits.height == 0:
        return []
    ids = hits["episode_id"].to_list()
    rows = lake.episodes(f"episode_id in [{', '.join(quote(i) for i in ids)}]", columns=list(GRID_COLUMNS))
    by_id = {r["episode_id"]: r for r in rows.to_dicts()}
    out = []
    for hit in hits.iter_rows(named=True):
        row = by_id.get(hit["episode_id"])
        if row is None:
            continue
        row["score"] = float(hit["score"])
        if hit.get("camera") is not None and hit.get("step") is not None:
            row["match_camera"], row["match_step"] = hit["camera"], int(hit["step"])
        out.append(row)
    return out


def semantic_search(lake: Lake, *, text: str | None = None, image: Any = None, where: str | None = None,
                    k: int = 24) -> list[dict[str, Any]]:
    """Episodes best matching a text or an image (PIL) within the `where` slice, as grid rows with `score`
    and the matching keyframe (`match_camera`, `match_step`). Same ranking as `curate search`.

    Raises:
        EmbeddingsMissingError: the lake has no vectors yet (run `curate embed`).
    """
    from curate.search import search, warm

    if text is not None and image is not None:
        raise ConfigError("search by text or by image, not both")
    warm(lake, background=True)  # a long-lived process: load the vector index once, without making this search wait
    hits = search(lake, text, image=image, where=where, k=k) if text is not None else search(
        lake, image=image, where=where, k=k)
    return _with_grid_rows(lake, hits)


def similar_episodes(lake: Lake, episode_id: str, *, k: int = 6) -> list[dict[str, Any]]:
    """The episodes most similar to one episode (`curate search --like ID`), as grid rows with `score`."""
    from curate.search import search

    return _with_grid_rows(lake, search(lake, like=episode_id, k=k))
