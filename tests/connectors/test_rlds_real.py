"""Conformance on the real Bridge V2 debug shards in ../shared/real (skipped with a reason when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from curate.ingest import ingest
from curate.lake import Lake
from tests.connectors.conformance import ConnectorConformance
from tests.connectors.rlds_fixtures import flip_byte_in_record, shards
from tests.helpers import real_data

INSTRUCTIONS = {"put carrot on plate", "flip pot upright which is in sink", "turn lever vertical to front",
                "put cup from counter or drying rack into sink"}


def _bridge() -> Path:
    return real_data("rlds", "bridge_dataset", "1.0.0")


class TestBridgeRealConformance(ConnectorConformance):
    format = "rlds"
    expected_episodes = 50
    expected_steps = 500
    expected_rejected = 1
    check_lake_round_trip = True

    @pytest.fixture
    def sample(self) -> str:
        return str(_bridge())

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        copy = tmp_path / "bridge_dataset" / "1.0.0"
        shutil.copytree(_bridge(), copy)
        flip_byte_in_record(shards(copy)[0], 7)
        return str(copy)


def test_bridge_debug_shards_ingest_exactly(tmp_path: Path) -> None:
    report = ingest([str(_bridge())], lake=str(tmp_path / "lake"), workers=2)
    assert (report.episodes, report.steps, report.rejected) == (50, 500, 0)
    lake = Lake(str(tmp_path / "lake"))
    frame = lake.scan(columns=["instruction", "split", "quality_flags", "cameras", "action_space", "state_space"]
                      ).collect()
    assert set(frame["instruction"].to_list()) == INSTRUCTIONS
    assert sorted(set(frame["split"].to_list())) == ["train", "val"]
    assert frame["split"].to_list().count("val") == 25
    for cams in frame["cameras"].to_list():
        assert [(c["name"], c["height"], c["width"]) for c in cams] == [(f"image_{i}", 64, 64) for i in range(4)]
    assert all(a["dim"] == 7 for a in frame["action_space"].to_list())
    assert all(s["dim"] == 7 for s in frame["state_space"].to_list())
    for flags in frame["quality_flags"].to_list():
        assert "black_camera:image_3" in flags and "no_is_last" in flags
        assert not any(f.startswith("black_camera:image_0") for f in flags)
    ep = lake.episode(lake.episodes(columns=["episode_id"])["episode_id"][0], frames="eager")
    assert ep.embodiment.robot == "WidowX" and ep.control_hz == 5.0
    assert len(ep.steps[0].frames) == 4 and ep.steps[0].frames[0].read_bytes()[:3] == b"\xff\xd8\xff"
    assert ep.metadata["episode_features"]["episode_metadata/file_path"].startswith("/")


def test_language_table_schema_parses_and_its_missing_shard_is_reported(tmp_path: Path) -> None:
    root = real_data("rlds", "language_table_schema_only", "0.0.1")
    import fsspec

    from connectors.rlds.reader import read_features

    tree = read_features(fsspec.filesystem("file"), str(root))
    assert tree.leaves["steps/observation/instruction"].shape == (512,)
    report = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert report.episodes == 0 and report.rejected == 1
    assert "missing" in report.rejections[0].reason
