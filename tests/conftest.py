"""Shared fixtures: seeded episodes, temporary lakes. Helpers live in tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from curate.lake import Lake
from schemas import Episode
from tests.helpers import make_episode


@pytest.fixture
def episode_factory() -> Callable[..., Episode]:
    return make_episode


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """An empty lake in a temporary directory."""
    return Lake.create(tmp_path / "lake")


@pytest.fixture
def filled_lake(tmp_path: Path) -> Lake:
    """A lake with 12 episodes over two datasets, some tagged, one without an instruction."""
    lake = Lake.create(tmp_path / "lake")
    eps = [make_episode(i, dataset="bridge" if i < 8 else "aloha", n_steps=3 + i,
                        instruction=None if i == 11 else ("put the cup on the plate" if i % 2 else "open the drawer"),
                        tags=["clutter"] if i % 3 == 0 else [], success=i % 4 != 0)
           for i in range(12)]
    lake.write_episodes(eps)
    return lake
