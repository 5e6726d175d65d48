"""RLDS export: TFDS directory with correct CRCs, read back with the project's RLDS reader field for field."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.base import SourceOptions
from connectors.rlds.connector import RLDSConnector
from connectors.tfrecord import read_records
from curate.export import export
from curate.lake import Lake
from schemas.mixture import Manifest


def read_back(root: Path) -> list:
    c = RLDSConnector()
    assert c.probe(str(root))
    eps = [e for u in c.list_units(str(root), SourceOptions()) for e in c.episodes(u, SourceOptions())]
    assert all(type(e).__name__ == "Episode" for e in eps), eps
    return eps


def test_rlds_round_trip_matches_the_lake_field_for_field(export_lake: Lake, natural: Manifest,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "rlds"
    result = export(natural, format="rlds", out=out)
    assert result.episodes == 10 and result.frames_reencoded == 0
    for ds in ("aloha", "bridge"):
        back = read_back(out / ds / "1.0.0")
        assert len(back) == sum(1 for e in natural.episodes if e.dataset == ds)
        for got in back:
            eid = got.metadata["original"]["episode_id"]
            want = export_lake.episode(eid, frames="eager")
            assert got.instruction == want.instruction and got.n_steps == want.n_steps
            assert got.control_hz == want.control_hz and got.action_space == want.action_space
            assert got.embodiment == want.embodiment and got.segments == want.segments
            assert got.metadata["mixture"]["name"] == "natural"
            for a, b in zip(got.steps, want.steps, strict=True):
                assert (a.action, a.state, a.is_first, a.is_last, a.reward) == (
                    b.action, b.state, b.is_first, b.is_last, b.reward)
                assert a.language == (want.instruction if b.language is not None else None)
                assert {f.camera: f.read_bytes() for f in a.frames} == {f.camera: f.read_bytes() for f in b.frames}


def test_tfds_files_are_consistent_and_every_crc_checks(natural: Manifest, tmp_path: Path) -> None:
    out = tmp_path / "rlds"
    export(natural, format="rlds", out=out)
    root = out / "bridge" / "1.0.0"
    info = json.loads((root / "dataset_info.json").read_text())
    assert json.loads((root / "features.json").read_text())["pythonClassName"].endswith("FeaturesDict")
    (split,) = info["splits"]
    assert split["name"] == "train" and sum(int(n) for n in split["shardLengths"]) == 6
    shards = sorted(root.glob("bridge-train.tfrecord-*"))
    records = [r for p in shards for r in read_records(p.open("rb"), check_crc=True)]
    assert len(records) == 6 and all(r.error is None for r in records)
    assert int(split["numBytes"]) == sum(len(r.data) for r in records)
    assert sum(p.stat().st_size for p in shards) == int(split["numBytes"]) + 16 * len(records)


def test_the_relabelled_instruction_is_in_the_steps(natural: Manifest, tmp_path: Path) -> None:
    export(natural, format="rlds", out=tmp_path / "rlds")
    back = read_back(tmp_path / "rlds" / "bridge" / "1.0.0")
    relabelled = [e for e in back if e.instruction == "pick up the red cup"]
    assert len(relabelled) == 1
    assert [s.language for s in relabelled[0].steps] == ["pick up the red cup"] * relabelled[0].n_steps
