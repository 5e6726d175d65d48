"""Connectors that crash on purpose, to test retries and resume; registered in the driver and in Ray workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from connectors.base import BadEpisode, SourceOptions
from connectors.lerobot.connector import LeRobotConnector
from connectors.registry import _registry, register
from schemas import Episode

MARKS_ENV = "CURATE_TEST_CRASH_MARKS"


class CrashOnceConnector(LeRobotConnector):
    """LeRobot, except the first attempt at each unit kills its worker process after the first episode."""

    name: ClassVar[str] = "test-crash-once"

    def probe(self, uri: str) -> bool:
        return False

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        mark = Path(os.environ[MARKS_ENV]) / (unit.rsplit("/", 1)[-1] + ".tried")
        for episode in super().episodes(unit, options):
            yield episode
            if not mark.exists():
                mark.touch()
                os._exit(17)  # a dead worker, as after an OOM kill or a lost node


def register_all() -> None:
    """Register the test connectors (idempotent); also the Ray worker setup hook."""
    if CrashOnceConnector.name not in _registry:
        register(CrashOnceConnector)
