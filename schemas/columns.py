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
import pyarrow.compute as pc

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
        if self.frames.num_rows == 0:
            return 0
        return int(pc.sum(pc.binary_length(self.frames.column("data"))).as_py() or 0)

    def keyed(self, episode_id: str, revision: str) -> tuple[pa.Table, pa.Table]:
        """(steps, frames) with `episode_id` and `revision` prepended: rows of the lake's steps and frames tables."""
        return (_prepend(self.steps, episode_id, revision, STEPS_SCHEMA),
                _prepend(self.frames, episode_id, revision, FRAMES_SCHEMA))


def _prepend(table: pa.Table, episode_id: str, revision: str, schema: pa.Schema) -> pa.Table:
    codes = pa.array(np.zeros(table.num_rows, dtype=np.int8))
    keys = [pa.DictionaryArray.from_arrays(codes, pa.array([value], pa.string())).cast(pa.string())
            for value in (episode_id, revision)]
    return pa.Table.from_arrays([*keys, *table.columns], schema=schema)


def frame_bytes(episode: Episode) -> int:
    """Encoded frame bytes of an episode in either form (columns or Step objects)."""
    columns = episode.columns
    if columns is not None:
        return columns.frame_bytes
    return sum(len(f.data or b"") for s in episode.steps for f in s.frames)
