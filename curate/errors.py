"""Every error a user can cause, in one place. Each message says what is wrong and what to do.

The CLI turns any `CurateError` into a one-line message and a non-zero exit code, no traceback.
Subclasses also derive from the matching built-in so callers may catch either.
"""

from __future__ import annotations


class CurateError(Exception):
    """Base class of every error the platform raises on purpose."""

    exit_code: int = 1


class NotALakeError(CurateError, FileNotFoundError):
    """The path holds no lake, e.g. `curate stats --lake /tmp` on an empty directory."""

    exit_code = 3


class SchemaVersionError(CurateError):
    """The lake was written by a newer version of the platform than this one."""

    exit_code = 3


class EpisodeNotFoundError(CurateError, KeyError):
    """An episode id that is not in the lake, e.g. `curate show ep_doesnotexist`."""

    exit_code = 4

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FilterError(CurateError, ValueError):
    """A filter expression that does not parse or names an unknown field.

    The message points at the position and says what was expected, e.g.
    `dataset == ` -> "expected a value at position 11".
    """

    exit_code = 2

    def __init__(self, message: str, *, text: str = "", position: int | None = None) -> None:
        self.text = text
        self.position = position
        if position is not None and text:
            pointer = " " * position + "^"
            message = f"{message} (at position {position})\n  {text}\n  {pointer}"
        super().__init__(message)


class LabelConflictError(CurateError):
    """Someone else changed the field since it was read: reload, merge, and save again."""

    exit_code = 5

    def __init__(self, message: str, *, current: object = None, latest_event_id: str | None = None) -> None:
        super().__init__(message)
        self.current = current
        self.latest_event_id = latest_event_id


class ReadOnlyError(CurateError, PermissionError):
    """A write was attempted on a lake opened read-only (e.g. `curate ui --read-only`)."""

    exit_code = 6


class IngestError(CurateError):
    """An ingest stopped: with --strict the first bad episode, or a source that cannot be read at all."""

    exit_code = 7


class ConfigError(CurateError, ValueError):
    """A bad option, spec or mapping file."""

    exit_code = 2
