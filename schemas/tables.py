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

FRAMES_SCHEMA: pa.Schema = pa.schema([*_KEY, pa.field("index", pa.int64(), nullable=False), *model_fields(Frame)])
"""One row per (step, camera): encoded bytes passed through, or a video reference. Read lazily."""

LABELS_SCHEMA: pa.Schema = model_schema(LabelEvent)
"""Append-only label events."""
