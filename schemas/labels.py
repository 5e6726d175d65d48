"""Relabel events: append-only. The current view of an episode = its source values + the latest events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.arrow import JsonField

LabelField = Literal["instruction", "instructions_alt", "success", "tags", "notes", "segments", "split", "scene",
                     "task_type", "objects"]
LABEL_FIELDS: tuple[str, ...] = LabelField.__args__  # type: ignore[attr-defined]

JsonValue = Annotated[Any, JsonField()]


class LabelEvent(BaseModel):
    """One change to one field of one episode. Never updated in place: undo is another event."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(default_factory=lambda: f"lbl_{uuid.uuid4().hex}")
    episode_id: str
    field: LabelField
    value: JsonValue = None
    previous: JsonValue = None
    author: str = Field(min_length=1)
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    note: str | None = None
    step_start: int | None = None
    step_end: int | None = None
    undoes: str | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)
