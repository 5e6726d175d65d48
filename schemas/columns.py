"""The columnar form of an episode's steps and frames: Arrow tables in the lake's own column layout.

A connector that decodes whole episodes into arrays (RLDS, Parquet-based formats) can hand its steps over as
columns instead of building one `Step` and one `Frame` object per row and having the lake take them apart again.
`EpisodeColumns.steps` has the columns of `STEPS_SCHEMA` and `EpisodeColumns.frames` those of `FRAMES_SCHEMA`,
both without `episode_id` and `revision` (the lake prepends them when it stages the episode). Rows are what the
object path would store: one step row per step in index order, one frame row per (step, camera) in step order and,
within a step, camera order.

An `Episode` carries it with `episode.attach_columns(columns)` (then `steps == []`, `n_steps` set); every consumer
of ingest output reads `episode.columns` first and falls back to `episode.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from schemas.tables import FRAMES_SCHEMA, STEPS_SCHEMA

if TYPE_CHECKING:
    from schemas.episode import Episode

KEY_COLUMNS = ("episode_id", "revision")
STEP_COLUMNS: pa.Schema = pa.schema([f for f in STEPS_SCHEMA if f.name not in KEY_COLUMNS])
"""`STEPS_SCHEMA` without the key columns the lake adds."""
FRAME_COLUMNS: pa.Schema = pa.schema([f for f in FRAMES_SCHEMA if f.name not in KEY_COLUMNS])
"""`FRAMES_SCHEMA` without the key columns the lake adds (`index` stays: the step a frame belongs to)."""


class ColumnsError(ValueError):
    """Step or frame columns do not have the lake's column layout."""


def _conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    if table.schema.equals(schema):
        return table
    if table.schema.names != schema.names:
        raise ColumnsError(f"{what} columns are {table.schema.names}, expected {schema.names}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ColumnsError(f"{what} columns do not cast to the lake's types: {exc}") from None


@dataclass(frozen=True)
class EpisodeColumns:
    """The steps and frames of one episode as Arrow tables (`STEP_COLUMNS`, `FRAME_COLUMNS`).

    Raises:
        ColumnsError: the tables have other column names, or types that do not cast to the lake's.
    """

    steps: pa.Table
    frames: pa.Table

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _conform(self.steps, STEP_COLUMNS, "step"))
        object.__setattr__(self, "frames", _conform(self.frames, FRAME_COLUMNS, "frame"))

    @property
    def n_steps(self) -> int:
        return self.steps.num_rows

    @property
    def frame_bytes(self) -> int:
        """Total encoded bytes of the frames (what batching by size counts)."""
        return sum(_binary_size(chunk) for chunk in self.frames.column("data").chunks)


def _binary_size(array: pa.BinaryArray) -> int:
    """The bytes of the values of a binary array (its last offset minus its first; nulls hold none)."""
    if len(array) == 0:
        return 0
    offsets = np.frombuffer(array.buffers()[1], np.int32)
    return int(offsets[array.offset + len(array)] - offsets[array.offset])


def keyed_columns(keys: pa.Table, positions: list[int], tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """The step (or frame) tables of several episodes as one table with the key columns prepended.

    Args:
        keys: `episode_id` and `revision` of the episodes (one row each).
        positions: for each table, the row of its episode in `keys`.
        tables: `STEP_COLUMNS` (or `FRAME_COLUMNS`) tables, one per episode.
        schema: `STEPS_SCHEMA` (or `FRAMES_SCHEMA`): the result's schema.
    """
    body = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    rows = np.repeat(np.asarray(positions, dtype=np.int64), [t.num_rows for t in tables])
    picked = keys.take(pa.array(rows))
    return pa.Table.from_arrays([*picked.columns, *body.columns], schema=schema)


def frame_bytes(episode: Episode) -> int:
    """Encoded frame bytes of an episode in either form (columns or Step objects)."""
    columns = episode.columns
    if columns is not None:
        return columns.frame_bytes
    return sum(len(f.data or b"") for s in episode.steps for f in s.frames)
