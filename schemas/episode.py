"""The unified episode/step model every connector emits and the lake stores.

An `Episode` carries its metadata and (when a connector yields it) its `steps`. The lake keeps the
metadata in the `episodes` table and the steps in the `steps` table; `Frame` is either encoded image
bytes passed through unchanged (JPEG/PNG) or a reference into a source video (uri + timestamp).
"""

from __future__ import annotations

import hashlib
from array import array
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from schemas.arrow import ArrowType, JsonField
from schemas.version import SCHEMA_VERSION

EmbodimentKind = Literal["arm", "bimanual", "mobile", "mobile_manipulator", "humanoid", "virtual", "other"]
SpaceKind = Literal["eef_delta", "eef_abs", "joint_pos", "joint_vel", "discrete", "other"]
CameraKind = Literal["rgb", "depth"]
FrameFormat = Literal["jpeg", "png", "video"]
SegmentKind = Literal["subgoal", "tag", "phase", "note"]

def _as_float32(values: list[float]) -> list[float]:
    """Vectors are stored as float32: round on the way in so a model equals what the lake returns."""
    return array("f", values).tolist()


Vector = Annotated[list[float], AfterValidator(_as_float32), ArrowType(pa.list_(pa.float32()))]
Json = Annotated[dict[str, Any], JsonField()]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Source(_Model):
    """Where an episode came from; `fingerprint` changes when the source content changes."""

    format: str
    uri: str
    key: str
    fingerprint: str


class Embodiment(_Model):
    robot: str
    kind: EmbodimentKind = "arm"
    is_sim: bool = False


class Space(_Model):
    """An action or state space: a kind and one name per dimension."""

    kind: SpaceKind
    dim: int = Field(ge=0)
    names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_match_dim(self) -> Space:
        if self.names and len(self.names) != self.dim:
            raise ValueError(f"names has {len(self.names)} entries but dim is {self.dim}: {self.names!r}")
        return self


class Segment(_Model):
    """A time range of an episode (step indices, end exclusive) with a text: a subgoal, a tag, a phase."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    kind: SegmentKind = "subgoal"

    @model_validator(mode="after")
    def _ordered(self) -> Segment:
        if self.end < self.start:
            raise ValueError(f"segment end ({self.end}) is before its start ({self.start})")
        return self


class Camera(_Model):
    name: str
    kind: CameraKind = "rgb"
    height: int = Field(ge=0)
    width: int = Field(ge=0)
    missing: bool = False


class Frame(_Model):
    """One camera image of one step.

    Encoded bytes are kept exactly as the source stored them (`format` jpeg/png). Video frames are a
    reference (`video_uri` + `video_timestamp_s`) decoded on demand. In a loaded episode `data` may be
    None until read: call `read_bytes()` (the lake substitutes a lazy subclass).
    """

    camera: str
    format: FrameFormat
    data: bytes | None = None
    video_uri: str | None = None
    video_timestamp_s: float | None = None

    @model_validator(mode="after")
    def _has_payload_kind(self) -> Frame:
        if self.format == "video" and self.video_uri is None:
            raise ValueError("a video frame needs video_uri")
        return self

    def read_bytes(self) -> bytes:
        """The encoded image bytes (JPEG/PNG) of this frame."""
        if self.data is None:
            raise ValueError(f"frame of camera {self.camera!r} has no bytes loaded ({self.format})")
        return self.data


class Step(_Model):
    index: int = Field(ge=0)
    timestamp_s: float
    action: Vector = Field(default_factory=list)
    state: Vector | None = None
    reward: float | None = None
    is_first: bool = False
    is_last: bool = False
    is_terminal: bool = False
    language: str | None = None
    discrete_action: str | None = None
    action_args: Json | None = None
    frames: list[Frame] = Field(default_factory=list)


class Episode(_Model):
    """One demonstration. `steps` is filled when a connector yields it or the lake loads it."""

    episode_id: str
    dataset: str = Field(min_length=1)
    source: Source
    embodiment: Embodiment
    action_space: Space
    state_space: Space | None = None
    control_hz: float = Field(gt=0)
    instruction: str | None = None
    instructions_alt: list[str] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    cameras: list[Camera] = Field(default_factory=list)
    n_steps: int = Field(ge=0)
    duration_s: float = Field(ge=0)
    success: bool | None = None
    scene: str | None = None
    task_type: str | None = None
    objects: list[str] = Field(default_factory=list)
    split: str | None = None
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None
    quality_flags: list[str] = Field(default_factory=list)
    metadata: Json = Field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    ingested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    steps: list[Step] = Field(default_factory=list)
    _columns: Any = PrivateAttr(default=None)

    @field_validator("ingested_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _consistent(self) -> Episode:
        if self.steps and len(self.steps) != self.n_steps:
            raise ValueError(f"n_steps is {self.n_steps} but {len(self.steps)} steps were given")
        for segment in self.segments:
            if self.n_steps and segment.end > self.n_steps:
                raise ValueError(f"segment {segment.text!r} ends at step {segment.end}, past n_steps={self.n_steps}")
        return self

    @property
    def columns(self) -> Any:
        """The steps and frames as `schemas.columns.EpisodeColumns` when a connector handed them over as Arrow
        columns (then `steps == []`), else None."""
        return self._columns

    def attach_columns(self, columns: Any) -> Episode:
        """Carry the steps and frames as columns (`schemas.columns.EpisodeColumns`) instead of Step objects.

        Returns:
            This episode, for chaining.

        Raises:
            ValueError: the episode also has Step objects, or `n_steps` is not the number of step rows.
        """
        if self.steps:
            raise ValueError("an episode carries its steps either as Step objects or as columns, not both")
        if columns.n_steps != self.n_steps:
            raise ValueError(f"n_steps is {self.n_steps} but the step columns hold {columns.n_steps} rows")
        self._columns = columns
        return self

    @property
    def revision(self) -> str:
        """Identifies this content of the episode: steps are stored under (episode_id, revision)."""
        return self.source.fingerprint


EPISODE_ROW_EXCLUDE = frozenset({"steps"})


def episode_id_for(dataset: str, source_key: str) -> str:
    """A stable id: the same dataset and source key always give the same id, so re-ingest never duplicates."""
    digest = hashlib.sha256(f"{dataset}\x00{source_key}".encode()).hexdigest()
    return f"ep_{digest[:20]}"


def fingerprint_of(*parts: bytes | str) -> str:
    """A content fingerprint over the given parts (bytes or text), for `Source.fingerprint`."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()[:32]
