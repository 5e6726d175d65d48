"""A small mixed lake: three datasets of different sizes, some failures, a flagged and a near-copy episode."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.lake import Lake
from tests.helpers import make_episode


def build_mix_lake(path: Path) -> Lake:
    lake = Lake.create(path)
    eps = []
    for i in range(24):
        dataset = "bridge" if i < 12 else ("aloha" if i < 20 else "deploy")
        eps.append(make_episode(i, dataset=dataset, n_steps=3 + i % 4,
                                instruction=["pick up the cup", "open the drawer", "wipe the table"][i % 3],
                                success=i not in (3, 15),
                                quality_flags=["frozen_camera"] if i == 5 else [],
                                split="deploy" if dataset == "deploy" else "train"))
    lake.write_episodes(eps)
    return lake


@pytest.fixture
def mix_lake(tmp_path: Path) -> Lake:
    return build_mix_lake(tmp_path / "lake")
