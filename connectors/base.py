"""The connector protocol: one module per source format, registered by name.

A connector knows its format and the schema, nothing else (no lake, no engine):

- `probe(uri) -> bool`: a cheap look; True when `uri` is something this connector reads.
- `list_units(uri, options) -> list[str]`: the independent work units (shards, files, bags) of a
  source, so the ingest engine can parallelise and resume across them.
- `episodes(unit, options) -> Iterator[Episode | BadEpisode]`: streams one episode at a time,
  never all at once. A damaged episode is yielded as a `BadEpisode` (file, record, reason) so one bad
  record does not stop an ingest of a million.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from schemas import Episode

StepLayout = Literal["objects", "columns"]


@dataclass(frozen=True)
class BadEpisode:
    """A record that could not be converted: where it is and what was wrong with it."""

    file: str
    record: str
    reason: str


@dataclass
class SourceOptions:
    """Options every connector receives; connector-specific extras go in `extra`."""

    dataset: str | None = None
    splits: tuple[str, ...] = ()
    limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    layout: StepLayout = "objects"
    """What the caller accepts: "objects" (every episode has `steps`) or "columns" (an episode may instead carry
    its steps and frames as Arrow columns, `episode.columns`; see schemas/columns.py). A connector that cannot
    build columns ignores it and yields objects."""


class Connector(abc.ABC):
    """Base class of every connector. Subclasses set `name` and implement `probe` and `episodes`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {}

    @abc.abstractmethod
    def probe(self, uri: str) -> bool:
        """True when `uri` is a source this connector reads. Must be cheap and never raise on foreign input."""

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        """Work units of a source; by default the source itself is one unit."""
        return [uri]

    @abc.abstractmethod
    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        """Stream the episodes of one work unit, yielding a `BadEpisode` for each damaged record."""
