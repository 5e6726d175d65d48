"""A small demo lake embedded with the tiny random-weight CLIP (loaded from a checkpoint file, the real path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.models import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("clip") / "tiny.pt", seed=0)


@pytest.fixture(scope="session")
def demo_lake_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "lake"
    build_demo(str(path), episodes=24, seed=3, via="schema")
    return path


@pytest.fixture
def demo_lake(demo_lake_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, so writes never leak between tests."""
    dest = tmp_path / "lake"
    shutil.copytree(demo_lake_template, dest)
    return dest


@pytest.fixture(scope="session")
def embedded_template(demo_lake_template: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> Path:
    from curate.embed import embed_lake
    from curate.lake import Lake
    from curate.models import load_model

    dest = tmp_path_factory.mktemp("embedded") / "lake"
    shutil.copytree(demo_lake_template, dest)
    embed_lake(Lake(dest), model=load_model(pretrained=str(tiny_checkpoint), device="cpu"), batch=16)
    return dest


@pytest.fixture
def embedded_lake(embedded_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "embedded"
    shutil.copytree(embedded_template, dest)
    return dest
