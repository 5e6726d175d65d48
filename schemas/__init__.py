"""The contract between connectors, the engine and the UI: pydantic models and their Arrow schemas. No I/O."""

from schemas.episode import (
    Camera,
    Embodiment,
    Episode,
    Frame,
    Segment,
    Source,
    Space,
    Step,
    episode_id_for,
    fingerprint_of,
)
from schemas.labels import LABEL_FIELDS, LabelEvent
from schemas.mixture import GroupShare, Manifest, ManifestEpisode, MixtureSpec
from schemas.tables import EPISODES_SCHEMA, FRAMES_SCHEMA, LABELS_SCHEMA, STEPS_SCHEMA
from schemas.version import SCHEMA_VERSION

ActionSpace = Space
"""Alias: the action space and the state space share one model."""

__all__ = [
    "EPISODES_SCHEMA",
    "FRAMES_SCHEMA",
    "LABELS_SCHEMA",
    "LABEL_FIELDS",
    "SCHEMA_VERSION",
    "STEPS_SCHEMA",
    "ActionSpace",
    "Camera",
    "Embodiment",
    "Episode",
    "Frame",
    "GroupShare",
    "LabelEvent",
    "Manifest",
    "ManifestEpisode",
    "MixtureSpec",
    "Segment",
    "Source",
    "Space",
    "Step",
    "episode_id_for",
    "fingerprint_of",
]
