"""The demo world: deterministic, skewed on purpose, and built through the real formats."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from curate.demo import build_demo, build_world
from curate.demo.build import SOURCE_FORMATS
from curate.demo.world import NOVEL_OBJECTS, RARE_OBJECTS, STYLES
from curate.lake import Lake


def test_the_world_is_deterministic_for_a_seed():
    a, b = build_world(30, seed=3), build_world(30, seed=3)
    assert [e.key for e in a] == [e.key for e in b]
    assert all((x.actions == y.actions).all() and x.frames == y.frames for x, y in zip(a, b, strict=True))
    assert [e.instruction for e in build_world(30, seed=4)] != [e.instruction for e in a]


def test_the_world_has_the_skews_a_curation_tool_must_find():
    world = build_world(300, seed=7)
    truth = [e.truth for e in world]
    train = [t for t, e in zip(truth, world, strict=True) if e.dataset != "deploy_kitchen"]
    deploy = [t for t, e in zip(truth, world, strict=True) if e.dataset == "deploy_kitchen"]
    assert 0.02 < sum(t["rare"] for t in train) / len(train) < 0.3, "a long tail of rare objects"
    assert sum("duplicate_of" in t for t in train) >= 5, "near-duplicates"
    assert any(not e.success for e in world), "failures"
    assert any(e.instruction is None for e in world), "unlabelled episodes"
    assert deploy and all(t["novel"] for t in deploy), "a deployment set of novel objects"
    assert not any(t["novel"] for t in train)
    assert set(Counter(t["style"] for t in train)) == set(STYLES), "every phrasing style"
    assert len({e.robot.name for e in world}) == 4
    assert {o for o in RARE_OBJECTS} and {o for o in NOVEL_OBJECTS}.isdisjoint(RARE_OBJECTS)


@pytest.mark.slow
def test_demo_writes_real_formats_and_ingests_them(tmp_path):
    lake_uri = str(tmp_path / "lake")
    report = build_demo(lake_uri, episodes=30, seed=1)
    assert report.via == "formats"
    assert {"tabletop_franka", "tabletop_so101", "deploy_kitchen", "alfred_demo"} <= set(report.stages["ingest"])
    assert set(report.stages["ingest"]) <= {*SOURCE_FORMATS, "alfred_demo"}
    for dataset, info in report.stages["ingest"].items():
        assert info["format"] == SOURCE_FORMATS.get(dataset, "alfred")
    lake = Lake(lake_uri)
    formats = lake.episodes(columns=["dataset", "source"]).unnest("source").group_by("dataset").agg(
        formats=pl.col("format").unique())
    by_dataset = {r["dataset"]: set(r["formats"]) for r in formats.iter_rows(named=True)}
    assert by_dataset["tabletop_franka"] == {"rlds"}
    assert by_dataset["tabletop_so101"] == {"lerobot"}
    assert by_dataset["deploy_kitchen"] == {"rosbag"}
    assert lake.count() == report.episodes

    again = build_demo(lake_uri, episodes=30, seed=1)
    assert again.episodes == report.episodes
    assert Lake(lake_uri).count() == report.episodes, "a second demo run adds nothing"


def test_demo_through_the_schema_keeps_ground_truth(tmp_path):
    report = build_demo(str(tmp_path / "lake"), episodes=12, seed=2, via="schema")
    lake = Lake(report.lake)
    meta = lake.episodes(columns=["metadata"])["metadata"].str.json_decode()
    assert meta.struct.field("demo_truth").struct.field("target").null_count() == 0
    assert report.episodes == lake.count() >= 12
