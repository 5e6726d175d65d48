"""The ALFRED connector on trials written by the demo virtual agent (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.alfred import ACTIONS, CAMERA, trial_key
from curate.demo.write_alfred import write
from curate.ingest import ingest
from curate.lake import Lake
from tests.connectors.conformance import ConnectorConformance, read_all


class TestALFREDConformance(ConnectorConformance):
    format = "alfred"
    expected_episodes = 5
    expected_rejected = 1
    check_lake_round_trip = True

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(write(tmp_path / "src", trials=4, seed=11))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = write(tmp_path / "bad", trials=4, seed=11)
        trial = sorted(root.glob("train/*/*/traj_data.json"))[0]
        trial.write_text(trial.read_text()[:-40])
        return str(root)


def test_trial_maps_to_steps_segments_frames_and_annotations(tmp_path: Path) -> None:
    root = write(tmp_path, trials=2, seed=5, test_trials=0)
    good, bad = read_all("alfred", str(root))
    assert bad == [] and len(good) == 2
    trial_file = sorted(root.glob("*/*/*/traj_data.json"))[0]
    data = json.loads(trial_file.read_text())
    ep = next(e for e in good if e.source.key == trial_key(str(trial_file)))
    low, high = data["plan"]["low_actions"], data["plan"]["high_pddl"]
    anns = data["turk_annotations"]["anns"]
    assert ep.n_steps == len(low)
    assert len(ep.segments) == len(high) - 1  # the final NoOp has no description
    assert [s.text for s in ep.segments] == [d.strip() for d in anns[0]["high_descs"]]
    assert ep.instruction == anns[0]["task_desc"].strip()
    assert set(ep.instructions_alt) <= {a["task_desc"].strip() for a in anns[1:]}
    assert ep.embodiment.robot == "AI2-THOR agent" and ep.embodiment.is_sim and ep.control_hz == 5.0
    assert ep.split == "train" and ep.scene == data["scene"]["floor_plan"]
    assert ep.objects[0] == data["pddl_params"]["object_target"]
    for i, step in enumerate(ep.steps):
        assert step.discrete_action == low[i]["discrete_action"]["action"] in ACTIONS
        assert step.action_args["high_idx"] == low[i]["high_idx"]
        if "mask" in low[i]["discrete_action"]["args"]:
            assert step.action_args["mask_rle"] == low[i]["discrete_action"]["args"]["mask"]
        first = next(img for img in data["images"] if img["low_idx"] == i)
        jpg = trial_file.parent / "raw_images" / first["image_name"].replace(".png", ".jpg")
        assert step.frames[0].camera == CAMERA and step.frames[0].data == jpg.read_bytes()
    for seg in ep.segments:
        assert all(ep.steps[t].action_args["high_idx"] == ep.segments.index(seg) for t in range(seg.start, seg.end))


def test_test_split_trials_are_language_only_episodes(tmp_path: Path) -> None:
    root = write(tmp_path, trials=1, seed=2, test_trials=2)
    report = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert report.episodes == 3
    lake = Lake(str(tmp_path / "lake"))
    assert lake.count('split == "tests_seen"') == 2
    frame = lake.scan(where='split == "tests_seen"', columns=["n_steps", "quality_flags", "instruction"]).collect()
    assert frame["n_steps"].to_list() == [0, 0]
    assert all("language_only" in flags for flags in frame["quality_flags"].to_list())
    assert all(frame["instruction"].to_list())


def test_missing_image_files_reject_the_trial_and_the_rest_ingests(tmp_path: Path) -> None:
    root = write(tmp_path, trials=3, seed=4, test_trials=0)
    images = sorted(sorted(root.glob("*/*/*/raw_images"))[0].glob("*.jpg"))
    images[1].unlink()
    report = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert report.episodes == 2 and report.rejected == 1
    assert "missing from raw_images/" in report.rejections[0].reason and images[1].stem in report.rejections[0].reason


def test_invalid_json_is_rejected_with_the_file_named(tmp_path: Path) -> None:
    root = write(tmp_path, trials=2, seed=4, test_trials=0)
    bad = sorted(root.glob("*/*/*/traj_data.json"))[0]
    bad.write_text("{ nope")
    report = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert report.episodes == 1
    assert report.rejections[0].file == str(bad) and "not valid JSON" in report.rejections[0].reason


def test_json_layout_without_raw_images_has_a_missing_camera(tmp_path: Path) -> None:
    import shutil

    root = write(tmp_path, trials=1, seed=4, test_trials=0)
    for d in root.glob("*/*/*/raw_images"):
        shutil.rmtree(d)
    good, bad = read_all("alfred", str(root))
    assert bad == [] and good[0].cameras[0].missing and not good[0].steps[0].frames
