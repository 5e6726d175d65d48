"""Source connectors: one module per format, each turning a source into `schemas.Episode`s."""

from connectors.base import BadEpisode, Connector, SourceOptions
from connectors.registry import UnknownConnectorError, detect, get, names, register

__all__ = ["BadEpisode", "Connector", "SourceOptions", "UnknownConnectorError", "detect", "get", "names", "register"]
