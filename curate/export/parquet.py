"""Parquet export: `episodes.parquet` + `steps/part-NNNNN.parquet`, images as binary columns.

Readable by DuckDB (`read_parquet('out/steps/*.parquet')`), Polars (`pl.scan_parquet`) and HF datasets
(`load_dataset("parquet", data_files=...)`). Each episode row carries its group, `repeats`, the manifest's
`sampling_weight` and `weight` (this written copy's share of the exported mixture); each step row carries
`weight` = its share (all rows sum to 1, groups get their achieved share) so a trainer can sample rows
directly. JPEG/PNG frames are copied byte for byte; frames stored as video references are
decoded and written as JPEG (counted in `frames_reencoded`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.export.columns import camera_data, with_encoded_frames
from curate.export.common import (
    Checksums,
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


STEP_COLUMNS = ("index", "timestamp_s", "action", "state", "reward", "is_first", "is_last", "is_terminal", "language",
                "discrete_action")
"""Step columns copied from the lake's steps table as they are."""


def _constant(value: object, type_: pa.DataType, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), n)


def _episode_row(item: Item, episode_index: int, first_step: int, weight: float) -> dict:
    """The episodes.parquet row of one written copy, from the lake row (current labels) without a model."""
    row, entry = item.episode.row, item.entry
    state = row["state_space"]
    return {
        "episode_id": row["episode_id"], "copy": item.copy, "episode_index": episode_index, "dataset": row["dataset"],
        "group": entry.group, "weight": weight, "repeats": entry.repeats, "sampling_weight": entry.weight,
        "instruction": row["instruction"], "instructions_alt": row["instructions_alt"] or [],
        "n_steps": row["n_steps"], "duration_s": row["duration_s"], "control_hz": row["control_hz"],
        "robot": row["embodiment"]["robot"], "embodiment_kind": row["embodiment"]["kind"],
        "action_kind": row["action_space"]["kind"], "action_names": row["action_space"]["names"] or [],
        "state_names": (state["names"] or []) if state else None,
        "cameras": [c["name"] for c in row["cameras"] or []], "success": row["success"], "scene": row["scene"],
        "task_type": row["task_type"], "split": row["split"], "tags": row["tags"] or [],
        "source_format": row["source"]["format"], "source_key": row["source"]["key"], "first_step": first_step,
        "metadata": json.dumps(json.loads(row["metadata"]) if row["metadata"] else {}, sort_keys=True),
    }


def export_parquet(manifest: Manifest, lake: Lake, out: str | Path, *, overwrite: Overwrite = "refuse",
                   repeats: Repeats = "materialize", progress: Progress | None = None,
                   rows_per_file: int = ROWS_PER_FILE) -> ExportResult:
    """Write the mixture as Parquet tables under `out` (atomically), straight from the lake's Arrow columns."""
    started = time.perf_counter()
    todo = plan(manifest, repeats=repeats)
    cameras = camera_columns(lake, manifest)
    schema = steps_schema(cameras)
    result = ExportResult(out=str(Path(out).absolute()), format="parquet")
    norm = NormStats(seed=manifest.spec.seed)
    with atomic_dir(out, overwrite=overwrite) as root, Checksums() as checksums:
        (root / "steps").mkdir()
        episode_rows: list[dict] = []
        pending: list[pa.Table] = []
        pending_rows = pending_bytes = 0
        part = 0
        step_offset = 0

        # encoded images do not compress and have no useful min/max: store them plain, without statistics
        images = [f"{IMAGE_PREFIX}{c}" for c in cameras]
        others = [name for name in schema.names if name not in images]
        compression = {name: ("none" if name in images else "zstd") for name in schema.names}

        def flush() -> None:
            nonlocal pending, pending_rows, pending_bytes, part
            if pending:
                path = root / "steps" / f"part-{part:05d}.parquet"
                pq.write_table(pa.concat_tables(pending), path, compression=compression, use_dictionary=others,
                               write_statistics=others)
                checksums.add(path)
                part += 1
                pending, pending_rows, pending_bytes = [], 0, 0

        last_id = None
        base: dict[str, pa.Array | pa.ChunkedArray] = {}
        frames_per_copy = 0
        for n, item in enumerate(iter_items(manifest, lake, repeats=repeats)):
            ep = item.episode
            k = ep.n_steps
            if ep.episode_id != last_id:
                ep = with_encoded_frames(ep)
                result.frames_reencoded += ep.reencoded
                norm.add(ep)
                last_id = ep.episode_id
                # the columns every copy of this episode shares: the lake's own arrays, no row is touched
                base = {name: ep.steps.column(name) for name in STEP_COLUMNS}
                for cam in cameras:
                    base[f"{IMAGE_PREFIX}{cam}"] = camera_data(ep, cam)
                frames_per_copy = sum(len(base[c]) - base[c].null_count for c in images)
            copy_weight = manifest.copy_weight(item.entry, copies=item.copies)
            episode_rows.append(_episode_row(item, n, step_offset, copy_weight))
            n_steps = item.episode.row["n_steps"]
            per_copy = {
                "episode_id": _constant(ep.episode_id, pa.string(), k),
                "copy": _constant(item.copy, pa.int32(), k),
                "episode_index": _constant(n, pa.int64(), k),
                "dataset": _constant(ep.dataset, pa.string(), k),
                "instruction": _constant(ep.row["instruction"], pa.string(), k),
                "weight": _constant(copy_weight / max(1, n_steps), pa.float64(), k),
            }
            if k:
                columns = {**base, **per_copy}
                pending.append(pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema))
                pending_rows += k
                pending_bytes += pending[-1].nbytes
            result.frames += frames_per_copy
            if pending_rows >= rows_per_file or pending_bytes >= BYTES_PER_FILE:
                flush()
            result.steps += n_steps
            step_offset += n_steps
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
            "image_columns": {c: f"{IMAGE_PREFIX}{c}" for c in cameras}}}, checksums=checksums)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
