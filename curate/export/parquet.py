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
        buffer: list[dict] = []
        part = 0
        step_offset = 0

        # encoded images do not compress: store them plain, compress the rest
        images = [f"{IMAGE_PREFIX}{c}" for c in cameras]
        compression = {name: ("none" if name in images else "zstd") for name in schema.names}
        dictionary = [name for name in schema.names if name not in images]

        def flush() -> None:
            nonlocal buffer, part
            if buffer:
                pq.write_table(pa.Table.from_pylist(buffer, schema=schema), root / "steps" / f"part-{part:05d}.parquet",
                               compression=compression, use_dictionary=dictionary)
                part += 1
                buffer = []

        last_id = None
        payloads: dict[tuple[int, str], bytes] = {}
        for n, item in enumerate(iter_items(manifest, lake, repeats=repeats)):
            ep = item.episode
            if ep.episode_id != last_id:
                payloads, reenc = frame_payloads(ep)
                result.frames_reencoded += reenc
                norm.add(ep)
                last_id = ep.episode_id
            copy_weight = manifest.copy_weight(item.entry, copies=item.copies)
            episode_rows.append(_episode_row(item, n, step_offset, copy_weight))
            step_weight = copy_weight / max(1, ep.n_steps)
            for step in ep.steps:
                row = {"episode_id": ep.episode_id, "copy": item.copy, "episode_index": n, "dataset": ep.dataset,
                       "index": step.index, "timestamp_s": step.timestamp_s, "action": step.action,
                       "state": step.state, "reward": step.reward, "is_first": step.is_first,
                       "is_last": step.is_last, "is_terminal": step.is_terminal, "instruction": ep.instruction,
                       "language": step.language, "discrete_action": step.discrete_action, "weight": step_weight}
                for cam in cameras:
                    data = payloads.get((step.index, cam))
                    row[f"{IMAGE_PREFIX}{cam}"] = data
                    if data is not None:
                        result.frames += 1
                buffer.append(row)
                if len(buffer) >= rows_per_file:
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
