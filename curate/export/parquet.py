"""Parquet export: `episodes.parquet` + `steps/part-NNNNN.parquet`, images as binary columns.

Readable by DuckDB (`read_parquet('out/steps/*.parquet')`), Polars (`pl.scan_parquet`) and HF datasets
(`load_dataset("parquet", data_files=...)`). Each episode row carries its group, `repeats`, the manifest's
`sampling_weight` and `weight` (this written copy's share of the exported mixture); each step row carries
`weight` = its share (all rows sum to 1, groups get their achieved share) so a trainer can sample rows
directly. JPEG/PNG frames are copied byte for byte; frames stored as video references are
decoded and written as JPEG (counted in `frames_reencoded`).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.export.common import (
    ExportResult,
    Item,
    NormStats,
    Overwrite,
    Progress,
    Repeats,
    atomic_dir,
    finalize,
    iter_items,
    plan,
)
from curate.lake import Lake
from schemas import Episode
from schemas.mixture import Manifest

ROWS_PER_FILE = 50_000
BYTES_PER_FILE = 256 * 1024 * 1024
"""A steps file is written once it holds this many rows or bytes (memory stays bounded)."""
IMAGE_PREFIX = "image."


def camera_columns(lake: Lake, manifest: Manifest) -> list[str]:
    """Union of camera names over the selected episodes (one binary column each)."""
    ids = [e.episode_id for e in manifest.selected()]
    if not ids:
        return []
    frame = lake.scan(columns=["episode_id", "cameras"]).collect()
    import polars as pl

    cams = frame.filter(pl.col("episode_id").is_in(ids))["cameras"].to_list()
    return sorted({c["name"] for row in cams for c in (row or [])})


def steps_schema(cameras: list[str]) -> pa.Schema:
    fields = [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("copy", pa.int32(), nullable=False),
        pa.field("episode_index", pa.int64(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("index", pa.int64(), nullable=False),
        pa.field("timestamp_s", pa.float64()),
        pa.field("action", pa.list_(pa.float32())),
        pa.field("state", pa.list_(pa.float32())),
        pa.field("reward", pa.float64()),
        pa.field("is_first", pa.bool_()),
        pa.field("is_last", pa.bool_()),
        pa.field("is_terminal", pa.bool_()),
        pa.field("instruction", pa.string()),
        pa.field("language", pa.string()),
        pa.field("discrete_action", pa.string()),
        pa.field("weight", pa.float64()),
    ]
    fields += [pa.field(f"{IMAGE_PREFIX}{c}", pa.binary()) for c in cameras]
    return pa.schema(fields)


EPISODES_SCHEMA = pa.schema([
    pa.field("episode_id", pa.string(), nullable=False),
    pa.field("copy", pa.int32(), nullable=False),
    pa.field("episode_index", pa.int64(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("group", pa.string()),
    pa.field("weight", pa.float64()),
    pa.field("repeats", pa.int64()),
    pa.field("sampling_weight", pa.float64()),
    pa.field("instruction", pa.string()),
    pa.field("instructions_alt", pa.list_(pa.string())),
    pa.field("n_steps", pa.int64()),
    pa.field("duration_s", pa.float64()),
    pa.field("control_hz", pa.float64()),
    pa.field("robot", pa.string()),
    pa.field("embodiment_kind", pa.string()),
    pa.field("action_kind", pa.string()),
    pa.field("action_names", pa.list_(pa.string())),
    pa.field("state_names", pa.list_(pa.string())),
    pa.field("cameras", pa.list_(pa.string())),
    pa.field("success", pa.bool_()),
    pa.field("scene", pa.string()),
    pa.field("task_type", pa.string()),
    pa.field("split", pa.string()),
    pa.field("tags", pa.list_(pa.string())),
    pa.field("source_format", pa.string()),
    pa.field("source_key", pa.string()),
    pa.field("first_step", pa.int64()),
    pa.field("metadata", pa.string()),
])


def frame_payloads(episode: Episode) -> tuple[dict[tuple[int, str], bytes], int]:
    """(step, camera) -> encoded image bytes; video references are decoded and re-encoded as JPEG.

    Returns the payloads and how many frames were re-encoded.
    """
    from curate.media import video_frames

    out: dict[tuple[int, str], bytes] = {}
    videos: dict[str, list[tuple[int, str, float]]] = {}
    for step in episode.steps:
        for frame in step.frames:
            if frame.format == "video":
                videos.setdefault(frame.video_uri or "", []).append((step.index, frame.camera,
                                                                     float(frame.video_timestamp_s or 0.0)))
            else:
                out[(step.index, frame.camera)] = frame.read_bytes()
    reencoded = 0
    for uri, refs in videos.items():
        images = video_frames(uri, [t for _, _, t in refs])
        for (index, camera, _), img in zip(refs, images, strict=True):
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=95)
            out[(index, camera)] = buf.getvalue()
            reencoded += 1
    return out, reencoded


def _episode_row(item: Item, episode_index: int, first_step: int, weight: float) -> dict:
    ep, entry = item.episode, item.entry
    return {
        "episode_id": ep.episode_id, "copy": item.copy, "episode_index": episode_index, "dataset": ep.dataset,
        "group": entry.group, "weight": weight, "repeats": entry.repeats, "sampling_weight": entry.weight,
        "instruction": ep.instruction,
        "instructions_alt": ep.instructions_alt, "n_steps": ep.n_steps, "duration_s": ep.duration_s,
        "control_hz": ep.control_hz, "robot": ep.embodiment.robot, "embodiment_kind": ep.embodiment.kind,
        "action_kind": ep.action_space.kind, "action_names": ep.action_space.names,
        "state_names": ep.state_space.names if ep.state_space else None,
        "cameras": [c.name for c in ep.cameras], "success": ep.success, "scene": ep.scene,
        "task_type": ep.task_type, "split": ep.split, "tags": ep.tags, "source_format": ep.source.format,
        "source_key": ep.source.key, "first_step": first_step,
        "metadata": json.dumps(ep.metadata, sort_keys=True),
    }


def export_parquet(manifest: Manifest, lake: Lake, out: str | Path, *, overwrite: Overwrite = "refuse",
                   repeats: Repeats = "materialize", progress: Progress | None = None,
                   rows_per_file: int = ROWS_PER_FILE) -> ExportResult:
    """Write the mixture as Parquet tables under `out` (atomically)."""
    started = time.perf_counter()
    todo = plan(manifest, repeats=repeats)
    cameras = camera_columns(lake, manifest)
    schema = steps_schema(cameras)
    result = ExportResult(out=str(Path(out).absolute()), format="parquet")
    norm = NormStats(seed=manifest.spec.seed)
    with atomic_dir(out, overwrite=overwrite) as root:
        (root / "steps").mkdir()
        episode_rows: list[dict] = []
        pending: list[pa.Table] = []
        pending_rows = pending_bytes = 0
        part = 0
        step_offset = 0

        # encoded images do not compress: store them plain, compress the rest
        images = [f"{IMAGE_PREFIX}{c}" for c in cameras]
        compression = {name: ("none" if name in images else "zstd") for name in schema.names}
        dictionary = [name for name in schema.names if name not in images]

        def flush() -> None:
            nonlocal pending, pending_rows, pending_bytes, part
            if pending:
                pq.write_table(pa.concat_tables(pending), root / "steps" / f"part-{part:05d}.parquet",
                               compression=compression, use_dictionary=dictionary)
                part += 1
                pending, pending_rows, pending_bytes = [], 0, 0

        last_id = None
        base: dict[str, pa.Array] = {}
        for n, item in enumerate(iter_items(manifest, lake, repeats=repeats)):
            ep = item.episode
            steps = ep.steps
            if ep.episode_id != last_id:
                payloads, reenc = frame_payloads(ep)
                result.frames_reencoded += reenc
                norm.add(ep)
                last_id = ep.episode_id
                # the columns every copy of this episode shares, built once, column by column
                base = {
                    "index": pa.array([st.index for st in steps], pa.int64()),
                    "timestamp_s": pa.array([st.timestamp_s for st in steps], pa.float64()),
                    "action": pa.array([st.action for st in steps], pa.list_(pa.float32())),
                    "state": pa.array([st.state for st in steps], pa.list_(pa.float32())),
                    "reward": pa.array([st.reward for st in steps], pa.float64()),
                    "is_first": pa.array([st.is_first for st in steps], pa.bool_()),
                    "is_last": pa.array([st.is_last for st in steps], pa.bool_()),
                    "is_terminal": pa.array([st.is_terminal for st in steps], pa.bool_()),
                    "language": pa.array([st.language for st in steps], pa.string()),
                    "discrete_action": pa.array([st.discrete_action for st in steps], pa.string()),
                }
                for cam in cameras:
                    column = [payloads.get((st.index, cam)) for st in steps]
                    base[f"{IMAGE_PREFIX}{cam}"] = pa.array(column, pa.binary())
                frames_per_copy = sum(1 for st in steps for cam in cameras if (st.index, cam) in payloads)
            copy_weight = manifest.copy_weight(item.entry, copies=item.copies)
            episode_rows.append(_episode_row(item, n, step_offset, copy_weight))
            k = len(steps)
            per_copy = {
                "episode_id": pa.array([ep.episode_id] * k, pa.string()),
                "copy": pa.array([item.copy] * k, pa.int32()),
                "episode_index": pa.array([n] * k, pa.int64()),
                "dataset": pa.array([ep.dataset] * k, pa.string()),
                "instruction": pa.array([ep.instruction] * k, pa.string()),
                "weight": pa.array([copy_weight / max(1, ep.n_steps)] * k, pa.float64()),
            }
            if k:
                pending.append(pa.table({f.name: ({**base, **per_copy})[f.name] for f in schema}, schema=schema))
                pending_rows += k
                pending_bytes += pending[-1].nbytes
            result.frames += frames_per_copy
            if pending_rows >= rows_per_file or pending_bytes >= BYTES_PER_FILE:
                flush()
            result.steps += ep.n_steps
            step_offset += ep.n_steps
            result.episodes += 1
            if progress:
                progress("episodes", n + 1, len(todo))
        flush()
        if part == 0:  # an empty mixture still gets a readable, typed steps table
            pq.write_table(schema.empty_table(), root / "steps" / "part-00000.parquet")
        pq.write_table(pa.Table.from_pylist(episode_rows, schema=EPISODES_SCHEMA), root / "episodes.parquet",
                       compression="zstd")
        if progress:
            progress("finalize", len(todo), len(todo))
        finalize(root, manifest, result, norm=norm, extra={"layout": {
            "episodes": "episodes.parquet", "steps": "steps/part-*.parquet",
            "image_columns": {c: f"{IMAGE_PREFIX}{c}" for c in cameras}}})
    result.seconds = round(time.perf_counter() - started, 3)
    return result
