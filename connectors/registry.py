"""Connectors by name. Built-ins register through the same entry-point group third parties use."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from connectors.base import Connector

ENTRY_POINT_GROUP = "curate.connectors"

_BUILTIN_MODULES: tuple[str, ...] = (
    # one module per line; importing it registers its connector(s)
    "connectors.rlds",
    "connectors.alfred",
    "connectors.lerobot",
    "connectors.hdf5",
    "connectors.rosbag",
)
"""Modules whose import registers the built-in connectors."""

_registry: dict[str, type[Connector]] = {}
_loaded = False


class UnknownConnectorError(KeyError):
    """Raised when a format name is not registered."""


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: register a connector under `cls.name`; a second class with the same name is refused."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no `name`")
    existing = _registry.get(cls.name)
    if existing is not None and existing is not cls:
        taken_by = f"{existing.__module__}.{existing.__qualname__}"
        raise ValueError(f"connector name {cls.name!r} is already taken by {taken_by}")
    _registry[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        register(ep.load())


def names() -> list[str]:
    """Registered format names, sorted."""
    _load()
    return sorted(_registry)


def get(name: str) -> Connector:
    """An instance of the connector registered as `name`."""
    _load()
    try:
        return _registry[name]()
    except KeyError:
        known = ", ".join(sorted(_registry)) or "(none)"
        raise UnknownConnectorError(f"unknown format {name!r}; known formats: {known}") from None


def detect(uri: str) -> list[str]:
    """Names of the connectors whose probe accepts `uri`."""
    _load()
    return [name for name, cls in sorted(_registry.items()) if cls().probe(uri)]
