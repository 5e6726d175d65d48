"""Fixtures of the UI tests: a small demo lake (built once per session) and the UI's environment."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.demo import build_demo

REPO = Path(__file__).resolve().parents[2]
APP_MAIN = REPO / "app" / "main.py"


@pytest.fixture(scope="session")
def demo_lake_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ui") / "demo-lake"
    build_demo(str(path), episodes=40)
    return path


@pytest.fixture
def demo_lake(demo_lake_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo lake, so a test's relabels never leak into another test."""
    path = tmp_path / "lake"
    shutil.copytree(demo_lake_template, path)
    return path


@pytest.fixture
def ui_env(demo_lake: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The environment `curate ui` gives the app, pointing at the demo lake (writable, no logins)."""
    monkeypatch.setenv("CURATE_UI_LAKES", str(demo_lake))
    monkeypatch.setenv("CURATE_UI_READ_ONLY", "0")
    monkeypatch.delenv("CURATE_UI_USERS", raising=False)
    monkeypatch.setenv("USER", "tester")
    yield demo_lake


@pytest.fixture(scope="session")
def embedded_lake_template(demo_lake_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo lake embedded with `curate-tiny` (random weights from a local checkpoint: no download)."""
    from curate.embed import embed_lake
    from curate.lake import Lake
    from curate.models import make_random_checkpoint

    root = tmp_path_factory.mktemp("ui-embedded")
    path = root / "lake"
    shutil.copytree(demo_lake_template, path)
    checkpoint = make_random_checkpoint(root / "tiny.pt")
    embed_lake(Lake(path), arch="curate-tiny", pretrained=str(checkpoint), workers=1)
    return path


@pytest.fixture
def embedded_env(embedded_lake_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Like `ui_env`, on a private copy of the embedded demo lake, with a private mixtures folder."""
    path = tmp_path / "lake"
    shutil.copytree(embedded_lake_template, path)
    monkeypatch.setenv("CURATE_UI_LAKES", str(path))
    monkeypatch.setenv("CURATE_UI_READ_ONLY", "0")
    monkeypatch.setenv("CURATE_UI_MIXTURES", str(tmp_path / "mixtures"))
    monkeypatch.delenv("CURATE_UI_USERS", raising=False)
    monkeypatch.setenv("USER", "tester")
    return path
