"""A manifest's episodes as Arrow columns: what every export reads, without per-step Python objects.

The lake's steps and frames tables are read for a batch of episodes at a time (one filtered Lance query
each, batches bounded by frame rows so memory stays bounded), kept to each episode's current revision and
cut into zero-copy per-episode slices in manifest order. An export writes from these slices directly:
Parquet and LeRobot tables take the columns as they are, RLDS serialises them with the wire-format writer.

    for entry, ep in iter_columns(manifest, lake):
        ep.row["instruction"], ep.steps.column("action"), camera_data(ep, "front")

Current labels apply: `row` is the episode row with label events applied, and per-step language that only
repeats the source instruction follows a relabelled instruction (see `current_language`).
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.lake import FRAMES, LAKE_EPISODES_SCHEMA, STEPS, Lake, id_predicate
from schemas import Episode
from schemas.mixture import Manifest, ManifestEpisode

BATCH_EPISODES = 256
"""Episode rows read per query of the episodes table."""
BATCH_FRAMES = 2048
"""Frame rows (steps x cameras) per query of the steps and frames tables: ~100 MB of 50 KB frames."""
READERS = 2
"""Batches read ahead, each by its own thread."""
FRAME_COLUMNS = ["episode_id", "revision", "index", "camera", "format", "data", "video_uri", "video_timestamp_s"]


@dataclass
class ExportEpisode:
    """One episode as Arrow: its lake row (current labels), its steps and its frames, both by step index."""

    row: dict[str, Any]
    """The episodes-table row, label events applied (no `revision`)."""
    steps: pa.Table
    """One row per step, ascending `index`: the lake's steps columns without `episode_id` and `revision`."""
    frames: pa.Table
    """One row per (step, camera), ascending `index`: index, camera, format, data, video_uri, video_timestamp_s."""
    reencoded: int = field(default=0)
    """Video-reference frames decoded and re-encoded into `frames` by `with_encoded_frames`."""

    @property
    def episode_id(self) -> str:
        return self.row["episode_id"]

    @property
    def dataset(self) -> str:
        return self.row["dataset"]

    @property
    def n_steps(self) -> int:
        return self.steps.num_rows

    @cached_property
    def episode(self) -> Episode:
        """The episode model without steps (spaces, cameras, embodiment, metadata), built once."""
        from schemas.arrow import row_to_model

        return row_to_model(Episode, dict(self.row), steps=[])

    def vectors(self, column: str) -> np.ndarray | None:
        """The (n_steps, width) float32 array of a list column (`action`, `state`); None when any step lacks it or
        the steps' lengths differ."""
        arr = _combined(self.steps.column(column))
        n = self.n_steps
        if arr.null_count:
            return None
        offsets = arr.offsets.to_numpy()
        width = int(offsets[1] - offsets[0]) if n else 0
        if n and not (np.diff(offsets) == width).all():
            return None
        values = arr.values.slice(int(offsets[0]), n * width)
        return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, width)

    def padded(self, column: str, dim: int, *, fill: float) -> tuple[np.ndarray, int | None]:
        """(n_steps, dim) float32 of a list column with `fill` on steps where it is null or empty, and the index
        of the first step whose vector has another non-zero length (None when all fit)."""
        arr = _combined(self.steps.column(column))
        n = self.n_steps
        out = np.full((n, dim), fill, dtype=np.float32)
        if n == 0:
            return out, None
        offsets = arr.offsets.to_numpy()
        lengths = np.diff(offsets)
        present = lengths > 0
        if arr.null_count:
            present &= arr.is_valid().to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(present & (lengths != dim))
        if len(wrong):
            return out, int(wrong[0])
        if present.any():
            values = arr.values.to_numpy(zero_copy_only=False)
            out[present] = values[offsets[:-1][present][:, None] + np.arange(dim)]
        return out, None


def _combined(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def current_language(steps: pa.Table, instruction: str | None) -> pa.Table:
    """Per-step language that only repeats the source instruction follows a relabelled instruction.

    Many sources copy the episode instruction into every step (RLDS `language_instruction`); after a relabel
    those copies still say the old text, so they become the current instruction. Language that varies per step
    (ALFRED subgoals), is missing on some step, or already says the instruction is kept.
    """
    lang = steps.column("language")
    if instruction is None or steps.num_rows == 0 or lang.null_count:
        return steps
    unique = pc.unique(lang)
    if len(unique) != 1 or unique[0].as_py() == instruction:
        return steps
    i = steps.schema.get_field_index("language")
    return steps.set_column(i, steps.schema.field(i), pa.repeat(pa.scalar(instruction, pa.string()), steps.num_rows))


def _runs(table: pa.Table) -> tuple[pa.Table, dict[str, tuple[int, int]]]:
    """The table with each episode's rows contiguous and by `index`, and episode_id -> (offset, length).

    Lance returns rows in storage order, where each episode's rows already sit together by index (they are
    written episode by episode), so usually no row is moved; otherwise the table is sorted once.
    """
    if table.num_rows == 0:
        return table, {}
    ids = table.column("episode_id").combine_chunks()
    ree = pc.run_end_encode(ids)
    ends = ree.run_ends.to_numpy()
    values = ree.values.to_pylist()
    index = table.column("index").to_numpy()
    starts = np.concatenate([[0], ends[:-1]])
    steps_back = np.flatnonzero(np.diff(index) < 0) + 1
    if len(set(values)) != len(values) or not np.isin(steps_back, starts).all():
        order = pc.sort_indices(table, sort_keys=[("episode_id", "ascending"), ("index", "ascending")])
        return _runs(table.take(order))
    return table, {eid: (int(s), int(e - s)) for eid, s, e in zip(values, starts, ends, strict=True)}


def _current(table: pa.Table, revisions: dict[str, str]) -> pa.Table:
    """Rows of the wanted (episode_id, revision) pairs only (older revisions stay in the lake until vacuum)."""
    if table.num_rows == 0:
        return table
    keys = pc.binary_join_element_wise(table.column("episode_id"), table.column("revision"), "\x00")
    wanted = pa.array([f"{e}\x00{r}" for e, r in revisions.items()], pa.string())
    mask = pc.is_in(keys, value_set=wanted)
    if pc.all(mask).as_py():
        return table
    return table.filter(mask)


def _read(lake: Lake, name: str, revisions: dict[str, str], columns: list[str] | None) -> pa.Table | None:
    ds = lake.table(name)
    if ds is None:
        return None
    revs = sorted(set(revisions.values()))
    flt = f"{id_predicate('episode_id', list(revisions))} AND {id_predicate('revision', revs)}"
    return _current(ds.to_table(columns=columns, filter=flt), revisions)


def _empty_steps() -> pa.Table:
    from curate.lake import STEPS_SCHEMA

    return STEPS_SCHEMA.empty_table()


def _empty_frames() -> pa.Table:
    from curate.lake import FRAMES_SCHEMA

    return FRAMES_SCHEMA.empty_table().select(FRAME_COLUMNS)


def _frame_batches(entries: list[ManifestEpisode], rows: dict[str, dict[str, Any]]
                   ) -> Iterator[list[ManifestEpisode]]:
    """Consecutive runs of entries holding at most BATCH_FRAMES frame rows (at least one episode each)."""
    chunk: list[ManifestEpisode] = []
    frames = 0
    for entry in entries:
        row = rows[entry.episode_id]
        size = max(1, int(row["n_steps"] or 0)) * max(1, len(row["cameras"] or []))
        if chunk and frames + size > BATCH_FRAMES:
            yield chunk
            chunk, frames = [], 0
        chunk.append(entry)
        frames += size
    if chunk:
        yield chunk


def episode_rows(lake: Lake, ids: list[str]) -> dict[str, dict[str, Any]]:
    """episode_id -> episodes-table row (current labels, with `revision`) for many ids in one query.

    Raises:
        EpisodeNotFoundError: an id is not in the lake at its version.
    """
    unique = list(dict.fromkeys(ids))
    rows = lake.rows(unique, columns=LAKE_EPISODES_SCHEMA.names)
    if rows.height != len(unique):
        from curate.errors import EpisodeNotFoundError

        missing = sorted(set(unique) - set(rows["episode_id"].to_list()))
        raise EpisodeNotFoundError(f"episode {missing[0]!r} of the manifest is not in lake {lake.uri} at version "
                                   f"{lake.version}; re-run `curate mix` on this lake")
    return {r["episode_id"]: r for r in rows.iter_rows(named=True)}


def load_columns(lake: Lake, rows: list[dict[str, Any]]) -> dict[str, ExportEpisode]:
    """The ExportEpisodes of the episodes of these rows (from `episode_rows`), one query per table."""
    revisions = {r["episode_id"]: r["revision"] for r in rows}
    steps = _read(lake, STEPS, revisions, None)
    frames = _read(lake, FRAMES, revisions, FRAME_COLUMNS)
    steps, step_runs = _runs(steps) if steps is not None else (_empty_steps(), {})
    frames, frame_runs = _runs(frames) if frames is not None else (_empty_frames(), {})
    steps = steps.drop_columns(["episode_id", "revision"])
    frames = frames.drop_columns(["episode_id", "revision"])
    out: dict[str, ExportEpisode] = {}
    for full in rows:
        row = {k: v for k, v in full.items() if k != "revision"}
        eid = row["episode_id"]
        s = steps.slice(*step_runs.get(eid, (0, 0)))
        f = frames.slice(*frame_runs.get(eid, (0, 0)))
        out[eid] = ExportEpisode(row=row, steps=current_language(s, row["instruction"]), frames=f)
    return out


def _plans(manifest: Manifest, lake: Lake, datasets: set[str] | None
           ) -> Iterator[tuple[list[ManifestEpisode], list[dict[str, Any]]]]:
    """(entries, their distinct episode rows) per read batch, in manifest order."""
    entries = [e for e in manifest.selected() if datasets is None or e.dataset in datasets]
    for start in range(0, len(entries), BATCH_EPISODES):
        chunk = entries[start:start + BATCH_EPISODES]
        rows = episode_rows(lake, [e.episode_id for e in chunk])
        for group in _frame_batches(chunk, rows):
            yield group, [rows[eid] for eid in dict.fromkeys(e.episode_id for e in group)]


def iter_columns(manifest: Manifest, lake: Lake, *, datasets: set[str] | None = None
                 ) -> Iterator[tuple[ManifestEpisode, ExportEpisode]]:
    """Each selected episode (optionally of some datasets) once, in manifest order, read in bounded batches.

    A batch holds at most BATCH_FRAMES frame rows (one episode at least). READERS threads read the next batches
    while the caller writes this one: Lance decodes and Arrow slices without the GIL, so reading (the costly part
    of every export) runs on every core, and at most READERS + 1 batches are in memory.
    """
    pool = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="export-read")
    ahead: deque[tuple[list[ManifestEpisode], Future[dict[str, ExportEpisode]]]] = deque()
    plans = _plans(manifest, lake, datasets)
    try:
        while True:
            while len(ahead) < READERS:
                plan = next(plans, None)
                if plan is None:
                    break
                ahead.append((plan[0], pool.submit(load_columns, lake, plan[1])))
            if not ahead:
                return
            group, future = ahead.popleft()
            loaded = future.result()
            for entry in group:
                yield entry, loaded[entry.episode_id]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def with_encoded_frames(ep: ExportEpisode, *, image_format: str = "JPEG") -> ExportEpisode:
    """The episode with video-reference frames decoded and re-encoded as `image_format` ("JPEG" at quality 95,
    or "PNG"), one decoding pass per source video; episodes without video frames come back as they are."""
    if ep.frames.num_rows == 0 or not pc.any(pc.equal(ep.frames.column("format"), "video")).as_py():
        return ep
    from curate.media import video_frames

    rows = ep.frames.to_pylist()  # the slow path: decoding and encoding pixels dominates
    by_uri: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["format"] == "video":
            by_uri.setdefault(r["video_uri"] or "", []).append(i)
    for uri, idx in by_uri.items():
        for i, img in zip(idx, video_frames(uri, [float(rows[i]["video_timestamp_s"] or 0.0) for i in idx]),
                          strict=True):
            buf = io.BytesIO()
            img.save(buf, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
            rows[i] = {**rows[i], "format": image_format.lower(), "data": buf.getvalue(), "video_uri": None,
                       "video_timestamp_s": None}
    frames = pa.Table.from_pylist(rows, schema=ep.frames.schema)
    return ExportEpisode(row=ep.row, steps=ep.steps, frames=frames,
                          reencoded=ep.reencoded + sum(len(v) for v in by_uri.values()))


def cameras_of(ep: ExportEpisode) -> list[str]:
    """Camera names with frames in this episode, in first-seen order."""
    return pc.unique(ep.frames.column("camera")).to_pylist() if ep.frames.num_rows else []


def camera_data(ep: ExportEpisode, camera: str) -> pa.ChunkedArray:
    """The `data` (encoded bytes) of one camera aligned with the steps: one value per step, null where the step
    has no frame of that camera (or the frame is a video reference). Zero-copy when the episode has one frame of
    this camera per step and no other camera."""
    frames = ep.frames
    n = ep.n_steps
    if frames.num_rows == 0:
        return pa.chunked_array([pa.nulls(n, pa.binary())])
    cams = frames.column("camera")
    if frames.num_rows != n or pc.any(pc.not_equal(cams, camera)).as_py():
        frames = frames.filter(pc.equal(cams, camera))
    data = frames.column("data")
    index = frames.column("index").to_numpy()
    steps = ep.steps.column("index").to_numpy()
    if len(index) == n and np.array_equal(index, steps):
        return data
    pos = np.searchsorted(index, steps)
    pos_ok = pos < len(index)
    found = np.zeros(n, dtype=bool)
    found[pos_ok] = index[pos[pos_ok]] == steps[pos_ok]
    take = pa.array(np.where(found, pos, 0), mask=~found)
    return pa.chunked_array([data.combine_chunks().take(take)], pa.binary())
