"""The lake: writes are atomic commits, reads apply current labels, history stays readable."""

from __future__ import annotations

import json

import pytest

from curate.errors import (
    EpisodeNotFoundError,
    LabelConflictError,
    NotALakeError,
    ReadOnlyError,
    SchemaVersionError,
)
from curate.lake import Lake, LazyFrame, vacuum
from tests.helpers import make_episode


def test_model_to_lake_to_model_round_trip_is_field_for_field(lake):
    originals = [make_episode(i, n_steps=3 + i, cameras=("front", "wrist"), tags=["t"] if i else [],
                              success=bool(i % 2), metadata={"nested": {"k": [1, 2]}, "i": i}) for i in range(4)]
    lake.write_episodes(originals)
    for original in originals:
        assert lake.episode(original.episode_id, frames="eager") == original


def test_frames_load_lazily_and_byte_for_byte(lake):
    original = make_episode(0, n_steps=3, cameras=("front", "wrist"))
    lake.write_episodes([original])
    loaded = lake.episode(original.episode_id)
    frame = loaded.steps[2].frames[1]
    assert isinstance(frame, LazyFrame) and frame.data is None
    assert frame.read_bytes() == original.steps[2].frames[1].data
    assert lake.frame_bytes(original.episode_id, 1, "front") == original.steps[1].frames[0].data
    assert lake.episode(original.episode_id, frames="none").steps[0].frames == []


def test_rewriting_an_episode_replaces_it_and_keeps_the_old_version_readable(lake):
    first = make_episode(0, instruction="old text", seed=1)
    lake.write_episodes([first, make_episode(1)])
    v1 = lake.version
    changed = make_episode(0, instruction="new text", seed=2, n_steps=6)
    result = lake.write_episodes([changed])
    assert result.replaced == 1
    assert lake.count() == 2
    assert lake.episode(first.episode_id).instruction == "new text"
    assert len(lake.episode(first.episode_id).steps) == 6
    old = Lake(lake.uri, version=v1)
    assert old.episode(first.episode_id).instruction == "old text"
    assert len(old.episode(first.episode_id).steps) == 4
    assert old.read_only


def test_each_batch_is_one_commit_and_versions_are_listed(lake):
    lake.write_episodes([make_episode(i) for i in range(5)], batch_size=2)
    assert lake.version == 3
    assert [v["version"] for v in lake.versions()] == [1, 2, 3]


def test_a_directory_that_is_not_a_lake_gets_a_helpful_error(tmp_path):
    with pytest.raises(NotALakeError, match=r"is not a lake .*curate demo"):
        Lake(tmp_path)


def test_a_lake_of_a_newer_schema_version_is_refused(tmp_path):
    Lake.create(tmp_path / "l")
    marker = tmp_path / "l" / "lake.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "schema_version": 999}))
    with pytest.raises(SchemaVersionError, match="schema version 999, newer"):
        Lake(tmp_path / "l")


def test_unknown_and_malformed_episode_ids_are_clear_errors(filled_lake):
    with pytest.raises(EpisodeNotFoundError, match="is not in lake"):
        filled_lake.episode("ep_doesnotexist")
    with pytest.raises(EpisodeNotFoundError, match="not a valid episode id"):
        filled_lake.episode("x' OR '1'='1")


def test_paging_returns_total_and_the_requested_slice_in_order(filled_lake):
    total, page = filled_lake.page('dataset == "bridge"', limit=3, offset=2)
    everything = filled_lake.episodes('dataset == "bridge"', columns=["episode_id"])["episode_id"].to_list()
    assert total == 8
    assert page["episode_id"].to_list() == everything[2:5]
    total, empty = filled_lake.page('dataset == "bridge"', limit=3, offset=100)
    assert total == 8 and empty.height == 0


def test_relabel_is_an_event_and_the_current_view_applies_it(filled_lake):
    eid = filled_lake.episodes('instruction is null', columns=["episode_id"])["episode_id"][0]
    (event,) = filled_lake.relabel([eid], "instruction", "wipe the table", author="ana", note="was missing")
    assert event.previous is None and event.value == "wipe the table"
    assert filled_lake.episode(eid).instruction == "wipe the table"
    assert filled_lake.count('instruction ~ "wipe"') == 1
    assert filled_lake.count("instruction is null") == 0
    assert [e.event_id for e in filled_lake.label_events(episode_id=eid)] == [event.event_id]


def test_bulk_relabel_of_tags_and_success_over_a_filter(filled_lake):
    target = filled_lake.episodes('dataset == "aloha"', columns=["episode_id"])["episode_id"].to_list()
    filled_lake.relabel(target, "tags", ["reviewed"], author="bo")
    filled_lake.relabel(target, "success", False, author="bo")
    assert filled_lake.count('"reviewed" in tags') == 4
    assert filled_lake.count('dataset == "aloha" and success') == 0


def test_undo_is_a_new_event_restoring_the_previous_value(filled_lake):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    before = filled_lake.episode(eid).instruction
    (event,) = filled_lake.relabel([eid], "instruction", "changed", author="ana")
    undo = filled_lake.undo(event.event_id, author="ana")
    assert filled_lake.episode(eid).instruction == before
    assert undo.value == before and undo.previous == "changed"
    assert len(filled_lake.label_events(episode_id=eid)) == 2


def test_a_second_editor_sees_a_conflict_instead_of_overwriting(filled_lake):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    seen_by_both = filled_lake.latest_event_ids([eid], "instruction").get(eid)
    filled_lake.relabel([eid], "instruction", "first edit", author="ana", expected={eid: seen_by_both})
    with pytest.raises(LabelConflictError, match="changed by someone else") as err:
        filled_lake.relabel([eid], "instruction", "second edit", author="bo", expected={eid: seen_by_both})
    assert err.value.current == "first edit"
    assert filled_lake.episode(eid).instruction == "first edit"


def test_relabel_values_are_validated_against_the_field_type(filled_lake):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    with pytest.raises(ValueError):
        filled_lake.relabel([eid], "tags", "not-a-list", author="x")
    with pytest.raises(ValueError, match="cannot relabel 'n_steps'"):
        filled_lake.relabel([eid], "n_steps", 3, author="x")


def test_read_only_lake_refuses_every_write(filled_lake):
    ro = Lake(filled_lake.uri, read_only=True)
    eid = ro.episodes(columns=["episode_id"])["episode_id"][0]
    with pytest.raises(ReadOnlyError):
        ro.relabel([eid], "instruction", "x", author="x")
    with pytest.raises(ReadOnlyError):
        ro.write_episodes([make_episode(99)])
    with pytest.raises(ReadOnlyError):
        ro.delete_episodes([eid])


def test_stats_count_episodes_steps_and_datasets(filled_lake):
    stats = filled_lake.stats()
    assert stats["episodes"] == 12
    assert stats["steps"] == sum(3 + i for i in range(12))
    assert stats["datasets"] == {"aloha": 4, "bridge": 8}


def test_delete_removes_from_the_current_version_only(filled_lake):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    before = filled_lake.version
    assert filled_lake.delete_episodes([eid]) == 1
    assert filled_lake.count() == 11
    assert Lake(filled_lake.uri, version=before).count() == 12


def test_vacuum_keeps_every_step_a_version_still_points_to(filled_lake):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    filled_lake.write_episodes([make_episode(0, dataset="bridge", seed=5)])
    assert vacuum(filled_lake) == {"steps": 0, "frames": 0}
    assert len(filled_lake.episode(eid).steps) == filled_lake.episode(eid).n_steps


def test_optimize_builds_an_index_and_reads_still_work(filled_lake):
    filled_lake.optimize()
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][3]
    ep = filled_lake.episode(eid)
    assert len(ep.steps) == ep.n_steps


def test_labels_can_be_pinned_to_before_the_first_event(filled_lake):
    eid = filled_lake.episodes(columns=["episode_id"])["episode_id"][0]
    before = filled_lake.episode(eid).instruction
    filled_lake.relabel([eid], "instruction", "later edit", author="ana")
    pinned = Lake(filled_lake.uri, version=filled_lake.version, labels_version=0)
    assert pinned.episode(eid).instruction == before
    assert Lake(filled_lake.uri, labels_version=1).episode(eid).instruction == "later edit"


def test_revision_indexes_are_built_then_extended_and_lookups_return_the_same_rows(tmp_path) -> None:
    lake = Lake.create(tmp_path / "lake")
    lake.write_episodes([make_episode(i, n_steps=4) for i in range(6)])
    ids = lake.episodes(columns=["episode_id"])["episode_id"].to_list()
    keys = [(e, i) for e in ids for i in (0, 3)]
    before = lake.read_frames(keys).sort_by([("episode_id", "ascending"), ("index", "ascending")])
    version = lake.version
    assert lake.index_revisions(min_rows=10_000) == []  # a small table is scanned, not indexed
    assert lake.index_revisions(min_rows=1) == ["steps", "frames"]
    assert lake.index_revisions(min_rows=1) == []  # nothing new to index
    assert lake.version == version  # the episodes table is untouched, so the lake version stays
    indexed = lake.read_frames(keys).sort_by([("episode_id", "ascending"), ("index", "ascending")])
    assert indexed.num_rows == len(keys) and indexed.equals(before)
    revs = lake.scan(columns=["episode_id", "revision"], labels=False).collect()["revision"].to_list()
    assert lake.read_frames(keys, revisions=revs).sort_by(
        [("episode_id", "ascending"), ("index", "ascending")]).equals(before)
    assert lake.episode(ids[0]).steps[3].index == 3

    lake.write_episodes([make_episode(i, n_steps=4) for i in range(6, 9)])  # new fragments: indexed incrementally
    assert lake.index_revisions(min_rows=1) == ["steps", "frames"]
    import lance

    for table in ("steps", "frames"):
        ds = lance.dataset(str(tmp_path / "lake" / f"{table}.lance"))
        index = next(i.name for i in ds.describe_indices() if i.field_names == ["revision"])
        assert ds.stats.index_stats(index)["num_unindexed_rows"] == 0
    new_id = lake.refresh().episodes(columns=["episode_id"])["episode_id"].to_list()
    assert len(lake.read_frames([(e, 0) for e in new_id])) == 9
