"""The mapping from ROS 2 topics to the episode schema: a small YAML file validated by pydantic.

A bag has no standard for "this topic is the action". The mapping says it, once per robot setup:

```yaml
rate_hz: 10                      # target rate; streams are aligned to it by timestamp (as-of join)
action: {topic: /joint_commands, fields: [position]}
state:
  - {topic: /joint_states, fields: [position, velocity]}
cameras:
  - {name: front, topic: /camera/front/image/compressed}      # sensor_msgs/(Compressed)Image
instruction: {source: topic, topic: /instruction}             # or metadata (key) / sidecar (file) / none
episodes: {mode: bag}                                          # or {mode: marker, marker_topic: /episode}
robot: so101
```

`load_mapping(path)` gives a clear error for a bad file (which key, what was wrong); `check_topics`
rejects a mapping that names a topic the bag does not have; `default_mapping(topics)` covers the common
JointState + CompressedImage + String layout without any file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
ACTION_HINTS = ("command", "action", "target", "leader", "cmd", "goal")
NUMERIC_ARRAY_TYPES = {"std_msgs/msg/Float64MultiArray": ["data"], "std_msgs/msg/Float32MultiArray": ["data"]}


class MappingError(ValueError):
    """A mapping that does not validate or does not fit the bag; the message says which key and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _topic(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"topic names start with '/', got {value!r}")
    return value


class StreamMap(_Strict):
    """A numeric stream: the topic and the message fields (dotted paths; arrays are flattened, concatenated)."""

    topic: str
    fields: list[str] = Field(default_factory=lambda: ["position"], min_length=1)
    names: list[str] | None = None

    _check_topic = field_validator("topic")(_topic)


class CameraMap(_Strict):
    name: str = Field(min_length=1)
    topic: str
    kind: Literal["rgb", "depth"] = "rgb"

    _check_topic = field_validator("topic")(_topic)


class InstructionMap(_Strict):
    """Where the instruction comes from: a String topic, the bag's metadata, a sidecar file, or nowhere."""

    source: Literal["topic", "metadata", "sidecar", "none"] = "none"
    topic: str | None = None
    key: str = "instruction"
    file: str = "instruction.txt"

    @model_validator(mode="after")
    def _topic_when_needed(self) -> InstructionMap:
        if self.source == "topic" and not self.topic:
            raise ValueError("instruction.source is 'topic' but instruction.topic is not set")
        if self.topic is not None:
            _topic(self.topic)
        return self


class EpisodeMap(_Strict):
    """How episodes are delimited: one per bag, or by a marker topic (each message starts one; "stop"/"end"/
    False ends the current one)."""

    mode: Literal["bag", "marker"] = "bag"
    marker_topic: str | None = None

    @model_validator(mode="after")
    def _marker_when_needed(self) -> EpisodeMap:
        if self.mode == "marker" and not self.marker_topic:
            raise ValueError("episodes.mode is 'marker' but episodes.marker_topic is not set")
        if self.marker_topic is not None:
            _topic(self.marker_topic)
        return self


class Mapping(_Strict):
    """Which topics are the action, the state, the cameras and the instruction; the rate; the episodes."""

    rate_hz: float | None = Field(default=None, gt=0, le=10_000)
    action: StreamMap | None = None
    state: list[StreamMap] = Field(default_factory=list)
    cameras: list[CameraMap] = Field(default_factory=list)
    instruction: InstructionMap = Field(default_factory=InstructionMap)
    episodes: EpisodeMap = Field(default_factory=EpisodeMap)
    clock: Literal["log", "header"] = "log"
    robot: str = "unknown"
    embodiment_kind: Literal["arm", "bimanual", "mobile", "mobile_manipulator", "humanoid", "virtual",
                             "other"] = "arm"
    action_kind: Literal["eef_delta", "eef_abs", "joint_pos", "joint_vel", "discrete", "other"] = "joint_pos"
    state_kind: Literal["eef_delta", "eef_abs", "joint_pos", "joint_vel", "discrete", "other"] = "joint_pos"

    @model_validator(mode="after")
    def _unique_cameras(self) -> Mapping:
        names = [c.name for c in self.cameras]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique, repeated: {duplicates}")
        return self

    def topics(self) -> dict[str, str]:
        """Every topic the mapping names -> the key that names it (for error messages)."""
        named: dict[str, str] = {}
        if self.action:
            named[self.action.topic] = "action.topic"
        for i, stream in enumerate(self.state):
            named.setdefault(stream.topic, f"state[{i}].topic")
        for i, cam in enumerate(self.cameras):
            named.setdefault(cam.topic, f"cameras[{i}].topic")
        if self.instruction.source == "topic" and self.instruction.topic:
            named.setdefault(self.instruction.topic, "instruction.topic")
        if self.episodes.mode == "marker" and self.episodes.marker_topic:
            named.setdefault(self.episodes.marker_topic, "episodes.marker_topic")
        return named


def _format_errors(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{loc}: {err['msg']}")
    return f"mapping {where} is invalid: " + "; ".join(lines)


def parse_mapping(data: Any, *, where: str = "(inline)") -> Mapping:
    """Validate a mapping given as a dict (or an existing `Mapping`).

    Raises:
        MappingError: unknown keys, wrong types, a topic without a leading '/', a missing marker topic, ...
    """
    if isinstance(data, Mapping):
        return data
    if not isinstance(data, dict):
        raise MappingError(f"mapping {where} must be a YAML mapping of keys, got {type(data).__name__}")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        raise MappingError(_format_errors(exc, where)) from None


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping YAML file.

    Raises:
        MappingError: the file is missing, is not YAML, or does not validate.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MappingError(f"mapping file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file {path} is not valid YAML: {exc}") from None
    return parse_mapping(data, where=str(path))


def resolve_mapping(value: Any) -> Mapping | None:
    """`options.extra["mapping"]`: a path, a dict, a `Mapping`, or None (use the default for each bag)."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return load_mapping(value)
    return parse_mapping(value)


def check_topics(mapping: Mapping, topics: dict[str, str], *, bag: str) -> None:
    """Reject a mapping that names a topic the bag lacks, or a camera topic that is not an image.

    Raises:
        MappingError: naming the mapping key, the topic and the topics the bag does have.
    """
    available = ", ".join(f"{t} ({m})" for t, m in sorted(topics.items())) or "(none)"
    for topic, key in mapping.topics().items():
        if topic not in topics:
            raise MappingError(f"mapping {key} names topic {topic!r}, which is not in bag {bag}; "
                               f"its topics are: {available}")
    for i, cam in enumerate(mapping.cameras):
        if topics[cam.topic] not in IMAGE_TYPES:
            raise MappingError(f"mapping cameras[{i}] topic {cam.topic!r} has type {topics[cam.topic]}; a camera "
                               f"must be {IMAGE} or {COMPRESSED_IMAGE}")
    if mapping.instruction.source == "topic" and topics.get(mapping.instruction.topic or "") != STRING:
        raise MappingError(f"mapping instruction.topic {mapping.instruction.topic!r} has type "
                           f"{topics.get(mapping.instruction.topic or '')}; it must be {STRING}")


def _camera_name(topic: str) -> str:
    parts = [p for p in topic.strip("/").split("/") if p not in ("compressed", "image", "image_raw", "image_rect",
                                                                  "color", "rgb", "camera", "cameras")]
    return "_".join(parts) or topic.strip("/").replace("/", "_")


def default_mapping(topics: dict[str, str]) -> Mapping:
    """The mapping for the common layout: JointState topics (commands -> action, the rest -> state),
    every Image/CompressedImage topic a camera, the first String topic the instruction."""
    joint = sorted(t for t, m in topics.items() if m == JOINT_STATE)
    arrays = sorted(t for t, m in topics.items() if m in NUMERIC_ARRAY_TYPES)
    commands = [t for t in joint + arrays if any(h in t.lower() for h in ACTION_HINTS)]
    action = None
    if commands:
        fields = NUMERIC_ARRAY_TYPES.get(topics[commands[0]], ["position"])
        action = StreamMap(topic=commands[0], fields=fields)
    state = [StreamMap(topic=t) for t in joint if t not in commands][:1]
    cameras = []
    for topic in sorted(t for t, m in topics.items() if m in IMAGE_TYPES):
        name = _camera_name(topic)
        if name in {c.name for c in cameras}:
            name = topic.strip("/").replace("/", "_")
        cameras.append(CameraMap(name=name, topic=topic, kind="depth" if "depth" in topic else "rgb"))
    strings = sorted(t for t, m in topics.items() if m == STRING)
    preferred = [t for t in strings if any(h in t.lower() for h in ("instruction", "task", "language", "prompt"))]
    instruction = (InstructionMap(source="topic", topic=(preferred or strings)[0]) if strings
                   else InstructionMap(source="metadata"))
    return Mapping(action=action, state=state, cameras=cameras, instruction=instruction)
