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

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.tables import FRAMES_SCHEMA, STEPS_SCHEMA

if TYPE_CHECKING:
    from schemas.episode import Episode

Table = Literal["steps", "frames"]
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
    origin: tuple[pa.Table, pa.Table, int, int] | None = field(default=None, compare=False, repr=False)
    """When `steps`/`frames` are slices of larger tables built for several episodes at once: (those tables, the
    first step row, the first frame row), so adjacent episodes are written as one slice instead of one chunk each."""
    shared: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Numpy views of `origin`'s columns, computed once for all the episodes sliced from it (pass the same dict to
    each), so per-episode readers (`numpy`, `lists`, `codes`) cost a numpy slice, not Arrow calls."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _conform(self.steps, STEP_COLUMNS, "step"))
        object.__setattr__(self, "frames", _conform(self.frames, FRAME_COLUMNS, "frame"))

    def __reduce__(self) -> tuple[type, tuple[pa.Table, pa.Table]]:
        return EpisodeColumns, (self.steps, self.frames)  # never ship the larger tables `origin` points into

    @property
    def n_steps(self) -> int:
        return self.steps.num_rows

    def _source(self, table: Table) -> tuple[pa.Table, int, int]:
        """(the table to read, first row, rows) of this episode's `table` ("steps" or "frames")."""
        rows = self.steps.num_rows if table == "steps" else self.frames.num_rows
        if self.origin is None:
            return (self.steps if table == "steps" else self.frames), 0, rows
        return (self.origin[0], self.origin[2], rows) if table == "steps" else (self.origin[1], self.origin[3], rows)

    def _whole(self, key: tuple[str, ...], compute: Any) -> Any:
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]

    def numpy(self, table: Table, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, validity or None when no value is null) of a primitive column of this episode, as numpy."""
        source, start, rows = self._source(table)

        def compute() -> tuple[np.ndarray, np.ndarray | None]:
            column = source.column(name)
            valid = column.is_valid().to_numpy(zero_copy_only=False) if column.null_count else None
            zero = pa.scalar(False if pa.types.is_boolean(column.type) else 0, column.type)
            filled = column.fill_null(zero) if column.null_count else column
            return filled.to_numpy(), valid

        values, valid = self._whole((table, name), compute)
        return values[start:start + rows], None if valid is None else valid[start:start + rows]

    def lists(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(length of each list, all values) of a list column of the steps (a null list has length 0)."""
        source, start, rows = self._source("steps")

        def compute() -> tuple[np.ndarray, np.ndarray]:
            column = source.column(name).combine_chunks()
            lengths = pc.list_value_length(column).fill_null(0).to_numpy()
            offsets = np.zeros(len(lengths) + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            return offsets, column.flatten().to_numpy(zero_copy_only=False)

        offsets, values = self._whole(("lists", name), compute)
        window = offsets[start:start + rows + 1]
        return np.diff(window), values[window[0]:window[-1]]

    def codes(self, table: Table, name: str) -> tuple[np.ndarray, list[str]]:
        """(code of each row, the distinct values) of a string column, e.g. the frames' `camera`."""
        source, start, rows = self._source(table)

        def compute() -> tuple[np.ndarray, list[str]]:
            encoded = source.column(name).combine_chunks().dictionary_encode()
            return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()

        codes, names = self._whole(("codes", table, name), compute)
        return codes[start:start + rows], names

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


def keyed_columns(keys: pa.Table, positions: list[int], columns: list[EpisodeColumns]) -> tuple[pa.Table, pa.Table]:
    """The steps and frames of several episodes as two tables with the key columns prepended: rows of the lake's
    steps and frames tables.

    Episodes that are adjacent slices of one larger table (`EpisodeColumns.origin`) become one zero-copy slice of it,
    so a table has a chunk per connector batch, not per episode (Lance writes many small chunks ~10x slower).

    Args:
        keys: `episode_id` and `revision` of the episodes (one row each).
        positions: for each entry of `columns`, the row of its episode in `keys`.
        columns: the episodes' columns.
    """
    step_parts: list[pa.Table] = []
    frame_parts: list[pa.Table] = []
    run: list[int] = []  # indices into `columns` of the current run of adjacent slices

    def close() -> None:
        if not run:
            return
        first, last = columns[run[0]], columns[run[-1]]
        if len(run) == 1 or first.origin is None or last.origin is None:
            step_parts.append(first.steps)
            frame_parts.append(first.frames)
        else:
            parent_steps, parent_frames, step_at, frame_at = first.origin
            step_parts.append(parent_steps.slice(step_at, last.origin[2] + last.n_steps - step_at))
            frame_parts.append(parent_frames.slice(frame_at, last.origin[3] + last.frames.num_rows - frame_at))
        run.clear()

    for i, item in enumerate(columns):
        if run and not _adjacent(columns[run[-1]], item):
            close()
        run.append(i)
    close()
    step_counts = [c.n_steps for c in columns]
    frame_counts = [c.frames.num_rows for c in columns]
    return (_keyed(keys, positions, step_counts, step_parts, STEPS_SCHEMA),
            _keyed(keys, positions, frame_counts, frame_parts, FRAMES_SCHEMA))


def _adjacent(before: EpisodeColumns, after: EpisodeColumns) -> bool:
    """True when `after` continues `before` in the same larger tables."""
    a, b = before.origin, after.origin
    return (a is not None and b is not None and a[0] is b[0] and a[1] is b[1]
            and b[2] == a[2] + before.n_steps and b[3] == a[3] + before.frames.num_rows)


def _keyed(keys: pa.Table, positions: list[int], counts: list[int], parts: list[pa.Table],
           schema: pa.Schema) -> pa.Table:
    body = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    picked = keys.take(pa.array(np.repeat(np.asarray(positions, dtype=np.int64), counts)))
    table = pa.Table.from_arrays([*picked.columns, *body.columns], schema=schema)
    return table.combine_chunks() if len(parts) > MAX_CHUNKS else table


MAX_CHUNKS = 128
"""A staged table with more chunks than this is made contiguous before it is written (a copy of its bytes)."""


def frame_bytes(episode: Episode) -> int:
    """Encoded frame bytes of an episode in either form (columns or Step objects)."""
    columns = episode.columns
    if columns is not None:
        return columns.frame_bytes
    return sum(len(f.data or b"") for s in episode.steps for f in s.frames)
