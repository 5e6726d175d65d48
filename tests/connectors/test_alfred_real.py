"""Conformance on the 11 real ALFRED trials in ../shared/real (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.ingest import ingest
from curate.lake import Lake
from tests.connectors.conformance import ConnectorConformance, read_all
from tests.helpers import real_data

EXPECTED = {  # trial dir prefix -> (task_type, steps, segments)
    "look_at_obj_in_light-Pencil": ("look_at_obj_in_light", 5, 3),
    "pick_and_place_simple-ToiletPaper": ("pick_and_place_simple", 14, 3),
    "pick_and_place_with_movable_recep-Fork": ("pick_and_place_with_movable_recep", 17, 4),
    "pick_clean_then_place_in_recep-SoapBar": ("pick_clean_then_place_in_recep", 21, 6),
    "pick_cool_then_place_in_recep-Egg": ("pick_cool_then_place_in_recep", 53, 6),
    "pick_heat_then_place_in_recep-Plate": ("pick_heat_then_place_in_recep", 27, 6),
    "pick_two_obj_and_place-SoapBar": ("pick_two_obj_and_place", 34, 8),
    "pick_and_place_simple-SprayBottle": ("pick_and_place_simple", 19, 4),
    "look_at_obj_in_light-CD": ("look_at_obj_in_light", 13, 4),
}


def _root() -> Path:
    return real_data("alfred", "json_2.1.0")


class TestALFREDRealConformance(ConnectorConformance):
    format = "alfred"
    expected_episodes = 11
    expected_steps = sum(s for _, s, _ in EXPECTED.values())
    expected_rejected = 1
    check_lake_round_trip = True

    @pytest.fixture
    def sample(self) -> str:
        return str(_root())

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        import shutil

        copy = tmp_path / "json_2.1.0"
        shutil.copytree(_root(), copy)
        victim = sorted(copy.glob("train/*/*/traj_data.json"))[0]
        victim.write_bytes(victim.read_bytes()[:1000])
        return str(copy)


def test_real_trials_give_the_right_task_types_steps_and_segments() -> None:
    good, bad = read_all("alfred", str(_root()))
    assert bad == [] and len(good) == 11
    seen = 0
    for ep in good:
        task_dir = ep.source.key.split("/")[1]
        match = [v for k, v in EXPECTED.items() if task_dir.startswith(k)]
        if ep.split and ep.split.startswith("tests"):
            assert ep.n_steps == 0 and "language_only" in ep.quality_flags and ep.instruction
            continue
        assert len(match) == 1, task_dir
        task_type, steps, segments = match[0]
        assert (ep.task_type, ep.n_steps, len(ep.segments)) == (task_type, steps, segments)
        assert len(ep.instructions_alt) >= 1
        seen += 1
    assert seen == 9


def test_real_trials_ingest_into_a_lake(tmp_path: Path) -> None:
    report = ingest([str(_root())], lake=str(tmp_path / "lake"))
    assert report.episodes == 11 and report.rejected == 0
    lake = Lake(str(tmp_path / "lake"))
    assert lake.count('split == "tests_unseen"') == 1
