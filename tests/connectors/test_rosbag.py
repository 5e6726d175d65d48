"""The rosbag connector: mappings, as-of alignment of streams at different rates, episodes, storage formats."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from connectors.base import SourceOptions
from connectors.rosbag import MappingError, default_mapping, load_mapping, parse_mapping
from curate.ingest import ingest
from tests.connectors.conformance import ConnectorConformance, read_all
from tests.fixtures_teleop import demos_of, rosbags
from tests.fixtures_teleop.bags import marker_bag, multirate_bag
from tests.helpers import real_data

MULTIRATE_MAPPING = {
    "rate_hz": 10,
    "action": {"topic": "/joint_commands"},
    "state": [{"topic": "/joint_states"}],
    "cameras": [{"name": "front", "topic": "/camera/front/image/compressed"}],
    "instruction": {"source": "topic", "topic": "/instruction"},
    "robot": "test_arm",
}


class TestRosbag(ConnectorConformance):
    format = "rosbag"
    check_lake_round_trip = True
    expected_episodes = 3
    expected_rejected = 1

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(rosbags(tmp_path))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = rosbags(tmp_path / "bad")
        victim = sorted(root.rglob("*.mcap"))[1]
        victim.write_bytes(victim.read_bytes()[:200])
        return str(root)


def test_demo_bags_give_back_the_demo_actions_and_frames(tmp_path: Path) -> None:
    demos = demos_of("franka", 3)
    good, bad = read_all("rosbag", str(rosbags(tmp_path)))
    assert bad == []
    for episode, demo in zip(good, demos, strict=True):
        assert episode.n_steps == demo.n_steps and episode.control_hz == demo.robot.hz
        assert np.allclose([s.action for s in episode.steps], demo.actions, atol=1e-6)
        assert np.allclose([s.state for s in episode.steps], demo.states, atol=1e-6)
        assert episode.action_space.names == list(demo.robot.action_names)
        assert episode.instruction == demo.instruction
        # cameras publish every other step; the as-of join holds the last frame
        front = [next(f for f in s.frames if f.camera == "front") for s in episode.steps]
        assert front[0].data == demo.frames["front"][0] and front[1].data == demo.frames["front"][0]
        assert front[2].data == demo.frames["front"][2]


def test_streams_at_different_rates_are_aligned_as_of(tmp_path: Path) -> None:
    bag = multirate_bag(tmp_path / "multi")
    good, bad = read_all("rosbag", str(bag), SourceOptions(extra={"mapping": MULTIRATE_MAPPING}))
    assert bad == [] and len(good) == 1
    episode = good[0]
    assert episode.control_hz == 10 and episode.n_steps == 30
    for k, step in enumerate(episode.steps):
        assert step.timestamp_s == pytest.approx(k / 10)
        assert step.state == pytest.approx([k / 10, -k / 10], abs=1e-6)       # 10 Hz: exact match
        assert step.action == pytest.approx([100 + k / 10], abs=1e-4)         # 30 Hz: latest at or before
        level = np.asarray(Image.open(io.BytesIO(step.frames[0].data)))[0, 0, 0]
        assert abs(int(level) - (15 * (k // 2) + 10)) <= 3                    # 5 Hz: held for two ticks
        assert step.language == "stack the cups"
    assert episode.instruction == "stack the cups"
    assert episode.embodiment.robot == "test_arm"


def test_rate_defaults_to_the_action_stream_rate(tmp_path: Path) -> None:
    mapping = {**MULTIRATE_MAPPING, "rate_hz": None}
    good, _ = read_all("rosbag", str(multirate_bag(tmp_path / "m")), SourceOptions(extra={"mapping": mapping}))
    assert good[0].control_hz == pytest.approx(30, rel=1e-3)


def test_sqlite3_storage_gives_the_same_episode_as_mcap(tmp_path: Path) -> None:
    options = SourceOptions(extra={"mapping": MULTIRATE_MAPPING})
    mcap, _ = read_all("rosbag", str(multirate_bag(tmp_path / "a" / "bag")), options)
    db3, _ = read_all("rosbag", str(multirate_bag(tmp_path / "b" / "bag", storage="sqlite3")), options)
    assert mcap[0].source.fingerprint == db3[0].source.fingerprint
    assert [s.action for s in mcap[0].steps] == [s.action for s in db3[0].steps]
    assert mcap[0].metadata["rosbag"]["storage"] == "mcap" and db3[0].metadata["rosbag"]["storage"] == "sqlite3"


def test_raw_images_are_encoded_in_rgb_order(tmp_path: Path) -> None:
    bag = multirate_bag(tmp_path / "raw", raw=True)
    mapping = {**MULTIRATE_MAPPING, "cameras": [{"name": "front", "topic": "/camera/front/image_raw"}]}
    good, _ = read_all("rosbag", str(bag), SourceOptions(extra={"mapping": mapping}))
    frame = good[0].steps[0].frames[0]
    assert frame.format == "png"
    pixel = np.asarray(Image.open(io.BytesIO(frame.data)))[0, 0]
    assert pixel.tolist() == [10, 10, 0]


def test_marker_topic_delimits_episodes(tmp_path: Path) -> None:
    mapping = {"rate_hz": 10, "action": {"topic": "/joint_commands"}, "state": [{"topic": "/joint_states"}],
               "instruction": {"source": "topic", "topic": "/task"},
               "episodes": {"mode": "marker", "marker_topic": "/episode"}}
    good, bad = read_all("rosbag", str(marker_bag(tmp_path / "markers")), SourceOptions(extra={"mapping": mapping}))
    assert bad == [] and len(good) == 2
    first, second = good
    assert first.source.key.endswith("#0") and second.source.key.endswith("#1")
    assert first.n_steps == 20 and first.steps[0].state == [0.0] and first.steps[-1].state == [19.0]
    assert second.steps[0].state == [30.0] and second.steps[-1].state == [59.0]
    assert first.instruction == second.instruction == "wipe the table"
    assert first.episode_id != second.episode_id


def test_instruction_from_bag_metadata_and_sidecar(tmp_path: Path) -> None:
    bags = rosbags(tmp_path, episodes=1)
    bag = next(p for p in bags.iterdir() if p.is_dir())
    demo = demos_of("franka", 1)[0]
    from_meta, _ = read_all("rosbag", str(bag), SourceOptions(extra={"mapping": {
        "action": {"topic": "/joint_commands"}, "instruction": {"source": "metadata", "key": "instruction"}}}))
    assert from_meta[0].instruction == demo.instruction
    (bag / "task.json").write_text('{"instruction": "fold the towel"}')
    from_file, _ = read_all("rosbag", str(bag), SourceOptions(extra={"mapping": {
        "action": {"topic": "/joint_commands"}, "instruction": {"source": "sidecar", "file": "task.json"}}}))
    assert from_file[0].instruction == "fold the towel" and from_file[0].steps[0].language == "fold the towel"


def test_unknown_topic_in_a_mapping_is_rejected_with_the_topics_listed(tmp_path: Path) -> None:
    mapping = {**MULTIRATE_MAPPING, "action": {"topic": "/arm/command"}}
    good, bad = read_all("rosbag", str(multirate_bag(tmp_path / "m")), SourceOptions(extra={"mapping": mapping}))
    assert good == [] and len(bad) == 1
    assert "action.topic" in bad[0].reason and "/arm/command" in bad[0].reason and "/joint_states" in bad[0].reason


def test_a_camera_mapped_to_a_non_image_topic_is_rejected(tmp_path: Path) -> None:
    mapping = {**MULTIRATE_MAPPING, "cameras": [{"name": "front", "topic": "/joint_states"}]}
    _, bad = read_all("rosbag", str(multirate_bag(tmp_path / "m")), SourceOptions(extra={"mapping": mapping}))
    assert "cameras[0]" in bad[0].reason and "CompressedImage" in bad[0].reason


@pytest.mark.parametrize(("data", "message"), [
    ({"rate_hz": -5}, "rate_hz"),
    ({"action": {"topic": "joint_commands"}}, "start with '/'"),
    ({"episodes": {"mode": "marker"}}, "marker_topic is not set"),
    ({"instruction": {"source": "topic"}}, "instruction.topic is not set"),
    ({"actoin": {"topic": "/a"}}, "actoin"),
    ({"cameras": [{"name": "a", "topic": "/x"}, {"name": "a", "topic": "/y"}]}, "unique"),
    (["not", "a", "mapping"], "must be a YAML mapping"),
])
def test_bad_mappings_get_a_clear_error(data: object, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(data)


def test_mapping_yaml_file_is_loaded_and_a_bad_one_fails_before_any_work(tmp_path: Path) -> None:
    good_file = tmp_path / "mapping.yaml"
    good_file.write_text(yaml.safe_dump(MULTIRATE_MAPPING))
    assert load_mapping(good_file).action.topic == "/joint_commands"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("rate_hz: fast\n")
    from connectors import registry

    bags = rosbags(tmp_path, episodes=2)
    options = SourceOptions(extra={"mapping": str(bad_file)})
    units = registry.get("rosbag").list_units(str(bags), options)
    assert units == [str(bags)]  # one unit that reports the mapping, no bag is read
    bad = list(registry.get("rosbag").episodes(units[0], options))
    assert len(bad) == 1 and re.search(r"bad\.yaml is invalid: rate_hz", bad[0].reason)
    (tmp_path / "broken.yaml").write_text("action: [\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(tmp_path / "broken.yaml")


def test_default_mapping_covers_the_common_layout() -> None:
    mapping = default_mapping({"/joint_states": "sensor_msgs/msg/JointState",
                               "/leader/joint_states": "sensor_msgs/msg/JointState",
                               "/camera/wrist/image/compressed": "sensor_msgs/msg/CompressedImage",
                               "/camera/top/image_raw": "sensor_msgs/msg/Image",
                               "/rosout": "rcl_interfaces/msg/Log",
                               "/task_instruction": "std_msgs/msg/String",
                               "/chatter": "std_msgs/msg/String"})
    assert mapping.action.topic == "/leader/joint_states"
    assert [s.topic for s in mapping.state] == ["/joint_states"]
    assert sorted(c.name for c in mapping.cameras) == ["top", "wrist"]
    assert mapping.instruction.topic == "/task_instruction"


def test_bag_directory_ingests_through_the_engine_and_reingest_adds_nothing(tmp_path: Path) -> None:
    root = rosbags(tmp_path, storage="sqlite3")
    first = ingest([str(root)], lake=str(tmp_path / "lake"))
    again = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert first.formats == {str(root): "rosbag"} and first.episodes == 3 and first.rejected == 0
    assert again.episodes == 0 and again.unchanged == 3


# -- real samples (../shared/real) ------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_real_talker_bag_in_both_storage_formats(storage: str) -> None:
    bag = real_data("ros2", storage, "talker")
    good, bad = read_all("rosbag", str(bag))
    assert bad == [] and len(good) == 1
    episode = good[0]
    assert episode.instruction == "Hello, world! 0"
    assert episode.metadata["rosbag"]["topics"]["/topic"] == {"type": "std_msgs/msg/String", "count": 10}
    assert episode.quality_flags == ["no_actions"]
    assert episode.steps[-1].language.startswith("Hello, world! ")
    assert episode.n_steps == 46  # 4.53 s at the default 10 Hz


def test_real_talker_is_the_same_in_mcap_sqlite3_and_bare_mcap() -> None:
    mcap = real_data("ros2", "mcap", "talker")
    db3 = real_data("ros2", "sqlite3", "talker")
    fingerprints = set()
    languages = []
    for bag in (mcap, db3, mcap / "talker.mcap"):
        good, _ = read_all("rosbag", str(bag))
        fingerprints.add(good[0].source.fingerprint)
        languages.append([s.language for s in good[0].steps])
    assert len(fingerprints) == 1 and languages[0] == languages[1] == languages[2]


def test_real_cdr_test_bag_decodes_custom_types_from_the_bag() -> None:
    bag = real_data("ros2", "mcap", "cdr_test")
    mapping = {"action": {"topic": "/array_topic", "fields": ["float64_values"]}, "rate_hz": 20}
    good, bad = read_all("rosbag", str(bag), SourceOptions(extra={"mapping": mapping}))
    assert bad == [] and good[0].action_space.dim == 3
    assert good[0].n_steps == 3 and all(len(s.action) == 3 for s in good[0].steps)
    assert good[0].metadata["rosbag"]["topics"]["/array_topic"] == {"type": "test_msgs/msg/Arrays", "count": 4}


def test_cli_ingest_of_bags_with_a_mapping_file(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    bag = multirate_bag(tmp_path / "bags" / "run1")
    mapping = tmp_path / "robot.yaml"
    mapping.write_text(yaml.safe_dump(MULTIRATE_MAPPING))
    lake = str(tmp_path / "lake")
    result = run_cli("ingest", str(bag.parent), "--lake", lake, "-o", f"mapping={mapping}")
    assert result.returncode == 0, result.stdout + result.stderr
    from curate.lake import Lake

    assert Lake(lake).count() == 1
    mapping.write_text("rate_hz: fast\n")
    result = run_cli("ingest", str(bag.parent), "--lake", lake, "-o", f"mapping={mapping}")
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "rate_hz" in output and "Traceback" not in output


def test_16bit_depth_images_stay_lossless_png(tmp_path: Path) -> None:
    from tests.fixtures_teleop.bags import depth_bag

    good, bad = read_all("rosbag", str(depth_bag(tmp_path / "depth")),
                         SourceOptions(extra={"raw_image_encoding": "jpeg"}))
    assert bad == []
    episode = good[0]
    assert [(c.name, c.kind) for c in episode.cameras] == [("depth", "depth")]
    assert "no_actions" in episode.quality_flags and episode.state_space.dim == 1
    frame = episode.steps[3].frames[0]
    assert frame.format == "png"
    pixels = np.asarray(Image.open(io.BytesIO(frame.data)))
    assert pixels.dtype == np.uint16 or pixels.max() > 255
    assert int(pixels[0, 0]) == 1030
