"""Arrow schemas of the lake tables, derived from the models (one source of truth)."""

from __future__ import annotations

import pyarrow as pa

from schemas.arrow import model_fields, model_schema
from schemas.episode import EPISODE_ROW_EXCLUDE, Episode, Frame, Step
from schemas.labels import LabelEvent

EPISODES_SCHEMA: pa.Schema = model_schema(Episode, exclude=EPISODE_ROW_EXCLUDE)
"""One row per episode (its current revision)."""

_KEY = [pa.field("episode_id", pa.string(), nullable=False), pa.field("revision", pa.string(), nullable=False)]

STEPS_SCHEMA: pa.Schema = pa.schema([*_KEY, *model_fields(Step, exclude=frozenset({"frames"}))])
"""One row per step, keyed by (episode_id, revision, index)."""

UNCOMPRESSED = {"lance-encoding:compression": "none"}
"""Lance field metadata: store the values as they are. Frame bytes are JPEG/PNG, already compressed: Lance's default
general-purpose compression of large binary values gains nothing on them and halves write speed (measured: 50 KB
JPEG-like values 330 MB/CPU-s compressed, 640 uncompressed; the same bytes on disk)."""


def _frame_field(field: pa.Field) -> pa.Field:
    return field.with_metadata(UNCOMPRESSED) if field.name == "data" else field


FRAMES_SCHEMA: pa.Schema = pa.schema([*_KEY, pa.field("index", pa.int64(), nullable=False),
                                      *map(_frame_field, model_fields(Frame))])
"""One row per (step, camera): encoded bytes passed through (uncompressed by Lance), or a video reference. Read
lazily."""

LABELS_SCHEMA: pa.Schema = model_schema(LabelEvent)
"""Append-only label events."""
