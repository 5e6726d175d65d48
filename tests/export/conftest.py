"""An export-ready lake: two datasets with different spaces and cameras, a relabelled instruction."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.lake import Lake
from curate.mixtures import resolve
from schemas import Space
from schemas.mixture import Manifest, MixtureSpec
from tests.helpers import make_episode


def build_export_lake(path: Path) -> Lake:
    lake = Lake.create(path)
    eps = [make_episode(i, dataset="bridge", n_steps=4 + i % 3, cameras=("front", "wrist"), seed=1,
                        instruction=["pick up the cup", "open the drawer"][i % 2]) for i in range(6)]
    eps += [make_episode(i, dataset="aloha", n_steps=5, cameras=("top",), seed=2, control_hz=50.0,
                         action_space=Space(kind="joint_pos", dim=3, names=["j0", "j1", "j2"]),
                         instruction="fold the towel") for i in range(10, 14)]
    eps = [e.model_copy(update={"steps": [s.model_copy(update={"language": e.instruction}) for s in e.steps]})
           if e.dataset == "bridge" else e for e in eps]
    lake.write_episodes(eps)
    first = sorted(e.episode_id for e in eps if e.dataset == "bridge")[0]
    lake.relabel([first], "instruction", "pick up the red cup", author="qa")
    return Lake(lake.uri)


@pytest.fixture
def export_lake(tmp_path: Path) -> Lake:
    return build_export_lake(tmp_path / "lake")


@pytest.fixture
def natural(export_lake: Lake) -> Manifest:
    """Every episode once."""
    return resolve(MixtureSpec(name="natural", quality=[]), export_lake)


@pytest.fixture
def upsampled(export_lake: Lake) -> Manifest:
    """Uniform over datasets with a budget that repeats the smaller dataset's episodes."""
    return resolve(MixtureSpec(name="uniform", strategy="uniform", budget=16, quality=[], seed=5), export_lake)
