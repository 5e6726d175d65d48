"""The HDF5 connectors: ALOHA episode files, robomimic / LIBERO / robosuite raw demo files, damaged files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from connectors.base import SourceOptions
from curate.ingest import ingest
from tests.connectors.conformance import ConnectorConformance, read_all
from tests.fixtures_teleop import aloha, demos_of, robomimic_file, robosuite_raw
from tests.helpers import real_data


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


class TestAloha(ConnectorConformance):
    format = "aloha"
    check_lake_round_trip = True
    expected_episodes = 3
    expected_rejected = 1

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(aloha(tmp_path))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = aloha(tmp_path / "bad")
        _truncate(sorted(root.rglob("*.hdf5"))[1])
        return str(root)


class TestRobomimic(ConnectorConformance):
    format = "robomimic"
    check_lake_round_trip = True
    expected_episodes = 6
    expected_rejected = 1

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        robomimic_file(tmp_path / "robomimic" / "image.hdf5")
        robomimic_file(tmp_path / "robomimic" / "libero.hdf5", libero=True)
        return str(tmp_path / "robomimic")

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        robomimic_file(tmp_path / "bad" / "a.hdf5")
        robomimic_file(tmp_path / "bad" / "b.hdf5", demos=2, libero=True)
        _truncate(robomimic_file(tmp_path / "bad" / "c.hdf5", demos=1, images=False), keep=0.3)
        return str(tmp_path / "bad")


def test_aloha_jpeg_frames_are_cut_at_compress_len_and_passed_through(tmp_path: Path) -> None:
    demos = demos_of("aloha", 3)
    good, bad = read_all("aloha", str(aloha(tmp_path)))
    assert bad == []
    by_key = {e.source.key: e for e in good}
    first = by_key[sorted(by_key)[0]]
    demo = next(d for d in demos if np.allclose([s.action for s in first.steps], d.actions, atol=1e-6))
    for t in (0, first.n_steps - 1):
        frame = next(f for f in first.steps[t].frames if f.camera == "cam_high")
        assert frame.format == "jpeg" and frame.data == demo.frames["cam_high"][t]
    assert first.action_space.dim == 14 and len(first.action_space.names) == 14
    assert first.embodiment.kind == "bimanual" and first.control_hz == 50.0


def test_aloha_task_comes_from_the_directory_name(tmp_path: Path) -> None:
    good, _ = read_all("aloha", str(aloha(tmp_path)))
    for episode in good:
        task_dir = Path(episode.source.key).parent.name
        assert episode.task_type == task_dir
        assert episode.instruction == task_dir.replace("_", " ")


def test_aloha_uncompressed_images_are_encoded_losslessly(tmp_path: Path) -> None:
    good, _ = read_all("aloha", str(aloha(tmp_path, episodes=1, images="raw")))
    frame = good[0].steps[0].frames[0]
    assert frame.format == "png"
    assert Image.open(io.BytesIO(frame.data)).size == (good[0].cameras[0].width, good[0].cameras[0].height)
    jpeg, _ = read_all("aloha", str(aloha(tmp_path / "j", episodes=1, images="raw")),
                       SourceOptions(extra={"raw_image_encoding": "jpeg"}))
    assert jpeg[0].steps[0].frames[0].format == "jpeg"


def test_truncated_hdf5_is_rejected_with_a_clear_reason(tmp_path: Path) -> None:
    root = aloha(tmp_path)
    victim = sorted(root.rglob("*.hdf5"))[0]
    _truncate(victim)
    good, bad = read_all("aloha", str(root))
    assert len(good) == 2 and len(bad) == 1
    assert "cannot be opened as HDF5" in bad[0].reason and bad[0].file == str(victim)


def test_robomimic_masks_become_splits_and_tags(tmp_path: Path) -> None:
    good, bad = read_all("robomimic", str(robomimic_file(tmp_path / "image.hdf5")))
    assert bad == []
    assert [e.split for e in good] == ["train", "train", "valid"]
    assert good[0].tags == ["mask:train"] and good[2].tags == ["mask:valid"]
    only_valid, _ = read_all("robomimic", str(tmp_path / "image.hdf5"), SourceOptions(splits=("valid",)))
    assert [e.source.key for e in only_valid] == ["image.hdf5/demo_2"]


def test_robomimic_low_dim_obs_become_the_state_and_images_the_cameras(tmp_path: Path) -> None:
    good, _ = read_all("robomimic", str(robomimic_file(tmp_path / "image.hdf5")))
    episode = good[0]
    assert episode.state_space.dim == 3 + 4 + 2
    assert episode.state_space.names[0] == "robot0_eef_pos_0"
    assert [c.name for c in episode.cameras] == ["agentview"]
    assert episode.action_space.kind == "eef_delta" and episode.action_space.dim == 7
    assert episode.embodiment.robot == "Panda" and episode.embodiment.is_sim
    assert episode.success is True and episode.steps[-1].is_terminal
    assert episode.metadata["hdf5"]["env_args"]["env_name"] == "Lift"


def test_libero_language_and_images_are_fixed_upright(tmp_path: Path) -> None:
    good, _ = read_all("robomimic", str(robomimic_file(tmp_path / "libero.hdf5", libero=True)))
    episode = good[0]
    assert episode.instruction == "put the bowl on the plate"
    assert episode.steps[0].language == "put the bowl on the plate"
    img = np.asarray(Image.open(io.BytesIO(episode.steps[0].frames[0].data)).convert("RGB"))
    assert img[0, 0, 0] == 255 and img[0, 0, 2] == 0   # red on top, as rendered
    assert img[-1, 0, 2] == 255 and img[-1, 0, 0] == 0  # blue at the bottom
    assert episode.metadata["hdf5"]["variant"] == "libero"


def test_robosuite_raw_file_uses_sim_states(tmp_path: Path) -> None:
    good, bad = read_all("robomimic", str(robosuite_raw(tmp_path / "demo.hdf5")))
    assert bad == [] and [e.source.key for e in good] == ["demo.hdf5/demo_1", "demo.hdf5/demo_2"]
    assert good[0].state_space.dim == 32 and good[0].cameras == []


def test_robosuite_0_1_without_actions_is_flagged_or_rejected_by_policy(tmp_path: Path) -> None:
    path = robosuite_raw(tmp_path / "v01.hdf5", with_actions=False)
    good, bad = read_all("robomimic", str(path))
    assert bad == [] and len(good) == 2
    assert "no_actions" in good[0].quality_flags
    assert "actions_from:joint_velocities+gripper_actuations" in good[0].quality_flags
    assert good[0].action_space.kind == "joint_vel" and good[0].action_space.dim == 8
    good, bad = read_all("robomimic", str(path), SourceOptions(extra={"missing_actions": "reject"}))
    assert good == [] and len(bad) == 2 and "no `actions` dataset" in bad[0].reason


def test_hdf5_formats_are_told_apart(tmp_path: Path) -> None:
    from connectors import registry

    assert registry.detect(str(aloha(tmp_path))) == ["aloha"]
    assert registry.detect(str(robomimic_file(tmp_path / "x.hdf5"))) == ["robomimic"]
    assert registry.detect(str(robosuite_raw(tmp_path / "raw.hdf5"))) == ["robomimic"]


def test_aloha_ingest_through_the_engine_is_idempotent(tmp_path: Path) -> None:
    root = aloha(tmp_path)
    first = ingest([str(root)], lake=str(tmp_path / "lake"))
    again = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert first.episodes == 3 and again.episodes == 0 and again.unchanged == 3


# -- real samples (../shared/real) ------------------------------------------------------------------------


def test_real_robosuite_1_0_lift_file() -> None:
    path = real_data("hdf5", "robosuite_raw", "lift_panda_demo.hdf5")
    good, bad = read_all("robomimic", str(path))
    assert bad == [] and len(good) == 1
    episode = good[0]
    assert episode.n_steps == 412 and episode.action_space.dim == 7 and episode.state_space.dim == 32
    assert episode.embodiment.robot == "Panda" and episode.task_type == "Lift"
    assert episode.action_space.kind == "eef_delta" and episode.quality_flags == []


def test_real_robosuite_0_1_sawyer_file_is_ingested_with_a_flag() -> None:
    path = real_data("hdf5", "robosuite_raw", "SawyerLift_demo_v0.1.hdf5")
    good, bad = read_all("robomimic", str(path))
    assert bad == [] and [e.n_steps for e in good] == [1058, 837]
    assert all("no_actions" in e.quality_flags for e in good)
    assert good[0].embodiment.robot == "Sawyer" and good[0].state_space.dim == 34


def test_real_robosuite_directory_ingests_both_files(tmp_path: Path) -> None:
    root = real_data("hdf5", "robosuite_raw")
    report = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert report.formats == {str(root): "robomimic"}
    assert report.episodes == 3 and report.steps == 412 + 1058 + 837 and report.rejected == 0


def test_cli_ingest_of_aloha_and_robomimic_files(tmp_path: Path) -> None:
    from curate.lake import Lake
    from tests.helpers import run_cli

    lake = str(tmp_path / "lake")
    result = run_cli("ingest", str(aloha(tmp_path, episodes=2)), str(robomimic_file(tmp_path / "rm.hdf5")),
                     "--lake", lake)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Lake(lake).count() == 2 + 3


def test_a_big_robomimic_file_is_split_into_units_of_demos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors import registry
    from connectors.hdf5 import robomimic

    monkeypatch.setattr(robomimic, "DEMOS_PER_UNIT", 2)
    path = robomimic_file(tmp_path / "big.hdf5", demos=5, images=False)
    connector = registry.get("robomimic")
    units = connector.list_units(str(path), SourceOptions())
    assert len(units) == 3 and units[0].endswith("::demo_0,demo_1")
    keys = [e.source.key for u in units for e in connector.episodes(u, SourceOptions())]
    assert keys == [f"big.hdf5/demo_{i}" for i in range(5)]
    report = ingest([str(path)], lake=str(tmp_path / "lake"), workers=2)
    assert report.episodes == 5 and report.units == 3
