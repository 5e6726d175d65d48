"""The RLDS connector on fixtures written by our own TFDS-compatible writer (no ../shared needed)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from connectors.base import SourceOptions
from connectors.rlds.features import features_json, parse_features
from connectors.rlds.oxe import OXE_MAGIC_SOUP_PLUS, REGISTRY, lookup
from connectors.rlds.writer import SHARD_INDEX, write_dataset
from curate.ingest import ingest
from curate.lake import Lake
from schemas import Episode
from tests.connectors.conformance import ConnectorConformance, read_all
from tests.connectors.rlds_fixtures import (
    FIXTURE_NAME,
    flip_byte_in_record,
    shards,
    truncate_last_record,
    write_rlds_fixture,
)
from tests.helpers import jpeg_bytes, make_episode


def _only_episode(uri: Path) -> Episode:
    lake = Lake(str(uri))
    ids = lake.episodes(columns=["episode_id"])["episode_id"].to_list()
    assert len(ids) == 1
    return lake.episode(ids[0], frames="eager")


class TestRLDSConformance(ConnectorConformance):
    format = "rlds"
    expected_episodes = 6
    expected_steps = 30
    expected_rejected = 1
    check_lake_round_trip = True

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(write_rlds_fixture(tmp_path / "src"))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = write_rlds_fixture(tmp_path / "bad")
        flip_byte_in_record(shards(root)[0], 1)
        return str(root)


def test_written_episodes_read_back_field_for_field(tmp_path: Path) -> None:
    originals = {f"{FIXTURE_NAME}/ep{i}": make_episode(
        i, dataset=FIXTURE_NAME, n_steps=5, cameras=("front", "wrist"), seed=0, split="val" if i % 3 == 2 else "train",
        instructions_alt=[f"alt {i}"], task_type="pick", scene=f"scene_{i % 2}", objects=["cup"], success=i % 2 == 0)
        for i in range(6)}
    root = write_rlds_fixture(tmp_path)
    good, bad = read_all("rlds", str(root))
    assert bad == [] and len(good) == 6
    skip = {"episode_id", "source", "metadata", "ingested_at", "steps", "quality_flags"}
    for episode in good:
        original = originals[episode.metadata["original"]["source"]["key"]]
        assert episode.model_dump(exclude=skip) == original.model_dump(exclude=skip)
        assert episode.metadata["i"] == original.metadata["i"]
        assert [s.model_dump() for s in episode.steps] == [s.model_dump() for s in original.steps]


def test_writer_output_is_a_valid_tfds_directory(tmp_path: Path) -> None:
    root = write_rlds_fixture(tmp_path, n=4, per_shard=2)
    info = json.loads((root / "dataset_info.json").read_text())
    train = next(s for s in info["splits"] if s["name"] == "train")
    assert train["filepathTemplate"] == "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    assert [int(n) for n in train["shardLengths"]] == [2, 1]
    files = sorted(p.name for p in root.glob("*train*"))
    assert files == [f"{FIXTURE_NAME}-train.tfrecord-00000-of-00002", f"{FIXTURE_NAME}-train.tfrecord-00001-of-00002"]
    size = sum((root / f).stat().st_size for f in files)
    assert size == int(train["numBytes"]) + 16 * 3
    parse_features((root / "features.json").read_text())


def _google_format_features() -> dict:
    return features_json({
        "steps": ("steps", {
            "observation": {"image": ("image", [8, 8, 3], "jpeg"),
                            "natural_language_instruction": ("tensor", "string", []),
                            "base_pose_tool_reached": ("tensor", "float32", [7]),
                            "gripper_closed": ("tensor", "float32", [1]),
                            "task_code": ("tensor", "int32", [2], "zlib"),
                            "raw_depth": ("tensor", "uint16", [2, 2], "bytes")},
            "action": {"world_vector": ("tensor", "float32", [3]), "rotation_delta": ("tensor", "float32", [3]),
                       "gripper_closedness_action": ("tensor", "float32", [1]),
                       "terminate_episode": ("tensor", "int32", [3])},
            "reward": ("scalar", "float32"), "is_first": ("scalar", "bool"), "is_last": ("scalar", "bool"),
            "is_terminal": ("scalar", "bool"),
        }),
        "aspects": {"success": ("scalar", "bool")},
        "episode_id": ("scalar", "int64"),
    })


def _google_example(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "steps/observation/image": [jpeg_bytes((10 * t, 100, 50), size=8) for t in range(n)],
        "steps/observation/natural_language_instruction": ["pick coke can"] * n,
        "steps/observation/base_pose_tool_reached": rng.normal(size=(n, 7)),
        "steps/observation/gripper_closed": rng.random((n, 1)),
        "steps/observation/task_code": np.arange(2 * n, dtype=np.int32).reshape(n, 2),
        "steps/observation/raw_depth": np.arange(4 * n, dtype=np.uint16).reshape(n, 2, 2) * 1000,
        "steps/action/world_vector": rng.normal(size=(n, 3)),
        "steps/action/rotation_delta": rng.normal(size=(n, 3)),
        "steps/action/gripper_closedness_action": rng.normal(size=(n, 1)),
        "steps/action/terminate_episode": np.tile([1, 0, 0], (n, 1)),
        "steps/reward": np.zeros(n), "steps/is_first": np.arange(n) == 0, "steps/is_last": np.arange(n) == n - 1,
        "steps/is_terminal": np.arange(n) == n - 1,
        "aspects/success": seed % 2 == 0, "episode_id": -seed - 1,
    }


def test_google_format_dataset_decodes_every_leaf_kind(tmp_path: Path) -> None:
    root = tmp_path / "fractal20220817_data" / "0.1.0"
    examples = [("train", _google_example(4, s)) for s in range(3)]
    write_dataset(root, examples, name="fractal20220817_data", features=_google_format_features(), version="0.1.0")
    good, bad = read_all("rlds", str(tmp_path))
    assert bad == [] and len(good) == 3
    ep = good[0]
    source = examples[0][1]
    assert ep.embodiment.robot == "Google Robot"
    assert ep.control_hz == 3.0
    assert ep.instruction == "pick coke can"
    assert ep.action_space.names == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper",
                                     "terminate_episode_0", "terminate_episode_1", "terminate_episode_2"]
    assert ep.state_space is not None and ep.state_space.dim == 8 and ep.state_space.names[-1] == "gripper"
    expected = np.concatenate([source["steps/action/world_vector"], source["steps/action/rotation_delta"],
                               source["steps/action/gripper_closedness_action"],
                               source["steps/action/terminate_episode"]], axis=1).astype(np.float32)
    assert np.allclose([s.action for s in ep.steps], expected)
    assert ep.steps[0].frames[0].data == source["steps/observation/image"][0]
    assert ep.metadata["episode_features"] == {"aspects/success": True, "episode_id": -1}
    assert ep.success is None  # `aspects/success` is metadata; only a top-level `success` maps
    assert "observation/task_code" in ep.metadata["unmapped_step_features"]


def test_zlib_and_bytes_tensors_decode_to_their_arrays(tmp_path: Path) -> None:
    from connectors.rlds.reader import decode_record
    from connectors.rlds.writer import TFDSWriter

    features = _google_format_features()
    writer = TFDSWriter(tmp_path / "d", name="d", features=features)
    example = _google_example(3, 0)
    data = writer.encode(example)
    raw = decode_record(data, parse_features(features), index=0)
    assert np.array_equal(raw.steps["observation/task_code"], example["steps/observation/task_code"])
    assert raw.steps["observation/raw_depth"].dtype == np.uint16
    assert np.array_equal(raw.steps["observation/raw_depth"], example["steps/observation/raw_depth"])
    assert zlib.decompress(zlib.compress(b"x")) == b"x"


def test_language_table_code_points_and_shard_index_template(tmp_path: Path) -> None:
    features = features_json({
        "steps": ("steps", {"observation": {"rgb": ("image", [8, 8, 3], "jpeg"),
                                            "instruction": ("tensor", "int32", [512]),
                                            "effector_translation": ("tensor", "float32", [2])},
                            "action": ("tensor", "float32", [2]), "reward": ("scalar", "float32"),
                            "is_first": ("tensor", "bool", []), "is_last": ("tensor", "bool", []),
                            "is_terminal": ("tensor", "bool", [])}),
        "episode_id": ("tensor", "string", []),
    })
    text = "push the red star to the blue cube"
    codes = np.zeros(512, np.int32)
    codes[: len(text)] = [ord(c) for c in text]
    n = 3
    example = {"steps/observation/rgb": [jpeg_bytes((0, 0, 200), 8)] * n,
               "steps/observation/instruction": np.tile(codes, (n, 1)),
               "steps/observation/effector_translation": np.ones((n, 2)), "steps/action": np.full((n, 2), 0.5),
               "steps/reward": np.zeros(n), "steps/is_first": np.arange(n) == 0, "steps/is_last": np.arange(n) == n - 1,
               "steps/is_terminal": np.zeros(n, bool), "episode_id": "lt_0"}
    root = tmp_path / "language_table" / "0.0.1"
    write_dataset(root, [("train", example)], name="language_table", features=features, version="0.0.1",
                  template=SHARD_INDEX)
    assert (root / "language_table-train.tfrecord-00000").exists()
    good, bad = read_all("rlds", str(root))
    assert bad == []
    ep = good[0]
    assert ep.instruction == text
    assert ep.action_space.names == ["dx", "dy"]
    assert ep.embodiment.robot == "xArm" and ep.control_hz == 10.0
    assert ep.metadata["episode_features"]["episode_id"] == "lt_0"


def test_unknown_dataset_ingests_with_generic_mapping_and_a_warning(tmp_path: Path) -> None:
    features = features_json({"steps": ("steps", {
        "observation": {"cam_a": ("image", [8, 8, 3], "png"), "cam_b": ("image", [8, 8, 3], "jpeg")},
        "action": ("tensor", "float32", [4]), "task": ("text",), "is_first": ("scalar", "bool"),
        "is_last": ("scalar", "bool")})})
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, format="PNG")
    ex = {"steps/observation/cam_a": [buf.getvalue()] * 2, "steps/observation/cam_b": [jpeg_bytes((1, 2, 3), 8)] * 2,
          "steps/action": np.ones((2, 4)), "steps/task": ["stack blocks"] * 2, "steps/is_first": [True, False],
          "steps/is_last": [False, True]}
    write_dataset(tmp_path / "my_lab_data" / "1.0.0", [("train", ex)], name="my_lab_data", features=features)
    report = ingest([str(tmp_path)], lake=str(tmp_path / "lake"))
    assert report.episodes == 1
    assert any("not in the OXE registry" in w for w in report.warnings)
    ep = _only_episode(tmp_path / "lake")
    assert ep.instruction == "stack blocks"
    assert [c.name for c in ep.cameras] == ["cam_a", "cam_b"]
    assert ep.embodiment.robot == "unknown"
    assert any("generic mapping" in w for w in ep.metadata["warnings"])


def test_registry_covers_magic_soup_droid_language_table_and_bridge_variants() -> None:
    for name in (*OXE_MAGIC_SOUP_PLUS, "droid", "language_table", "bridge", "bridge_orig", "bridge_dataset"):
        spec = lookup(name)
        assert spec is not None, name
        assert spec.robot and (spec.primary or spec.wrist)
    assert lookup("language_table").instruction_kind == "codepoints"
    assert lookup("droid").wrist == "wrist_image_left"
    assert len(REGISTRY) >= 60


def test_malformed_features_json_rejects_that_dataset_and_ingests_the_rest(tmp_path: Path) -> None:
    good_dir = write_rlds_fixture(tmp_path / "src", name="good_data")
    bad_dir = write_rlds_fixture(tmp_path / "src", name="bad_data")
    (bad_dir / "features.json").write_text('{"pythonClassName": "x", "featuresDict": {"features": {"a": 3}}}')
    report = ingest([str(tmp_path / "src")], lake=str(tmp_path / "lake"))
    assert report.episodes == 6
    assert report.rejected >= 1
    assert all("features.json" in r.file for r in report.rejections)
    assert any("is not a JSON object" in r.reason for r in report.rejections)
    del good_dir


def test_invalid_json_in_dataset_info_is_rejected_with_its_path(tmp_path: Path) -> None:
    root = write_rlds_fixture(tmp_path / "src", name="broken_info")
    write_rlds_fixture(tmp_path / "src", name="fine")
    (root / "dataset_info.json").write_text("{not json")
    report = ingest([str(tmp_path / "src")], lake=str(tmp_path / "lake"))
    assert report.episodes == 6
    assert len(report.rejections) == 1
    assert "dataset_info.json is not valid JSON" in report.rejections[0].reason


def test_truncated_record_is_rejected_and_earlier_records_ingest(tmp_path: Path) -> None:
    root = write_rlds_fixture(tmp_path / "src", n=6, per_shard=3)
    truncate_last_record(shards(root)[0])
    report = ingest([str(root)], lake=str(tmp_path / "lake"))
    assert report.episodes == 5
    assert len(report.rejections) == 1
    assert "truncated record" in report.rejections[0].reason
    assert report.rejections[0].record == "2"


def test_splits_and_limit_select_what_is_read(tmp_path: Path) -> None:
    root = write_rlds_fixture(tmp_path / "src", n=6)
    good, _ = read_all("rlds", str(root), SourceOptions(splits=("val",)))
    assert {e.split for e in good} == {"val"} and len(good) == 2
    report = ingest([str(root)], lake=str(tmp_path / "lake"), limit=3)
    assert report.episodes == 3


def test_bridge_fixture_maps_to_named_dimensions(tmp_path: Path) -> None:
    """A bridge_dataset-shaped fixture (4 cameras, flat action, language_instruction) uses the registry entry."""
    features = features_json({"steps": ("steps", {
        "observation": {f"image_{i}": ("image", [8, 8, 3], "jpeg") for i in range(4)} | {
            "state": ("tensor", "float32", [7])},
        "action": ("tensor", "float32", [7]), "language_instruction": ("text",),
        "is_first": ("scalar", "bool"), "is_last": ("scalar", "bool"), "is_terminal": ("scalar", "bool"),
        "reward": ("scalar", "float32"), "discount": ("scalar", "float32")}),
        "episode_metadata": {"file_path": ("text",)}})
    n = 3
    ex = {f"steps/observation/image_{i}": [jpeg_bytes((0, 0, 0) if i == 3 else (200, 100, 50), 8)] * n
          for i in range(4)}
    ex |= {"steps/observation/state": np.ones((n, 7)), "steps/action": np.zeros((n, 7)),
           "steps/language_instruction": ["put carrot on plate"] * n, "steps/is_first": np.arange(n) == 0,
           "steps/is_last": np.zeros(n, bool), "steps/is_terminal": np.zeros(n, bool), "steps/reward": np.zeros(n),
           "steps/discount": np.ones(n), "episode_metadata/file_path": "/nfs/x"}
    write_dataset(tmp_path / "bridge_dataset" / "1.0.0", [("train", ex)], name="bridge_dataset", features=features)
    report = ingest([str(tmp_path)], lake=str(tmp_path / "lake"))
    assert report.episodes == 1
    ep = _only_episode(tmp_path / "lake")
    assert ep.embodiment.robot == "WidowX" and ep.control_hz == 5.0
    assert ep.metadata["camera_roles"] == {"image_0": "primary", "image_1": "secondary"}
    assert {"black_camera:image_3", "no_is_last", "zero_first_action"} <= set(ep.quality_flags)


def _assert_equals_validated(episode: Episode) -> None:
    """Every step and frame equals the validated model built from the same values, field types included."""
    from schemas import Frame, Step

    for step in episode.steps:
        validated = Step.model_validate(step.model_dump())
        assert validated == step
        assert {k: type(v) for k, v in step.__dict__.items() if k != "frames"} == {
            k: type(v) for k, v in validated.__dict__.items() if k != "frames"}
        for frame in step.frames:
            again = Frame.model_validate(frame.model_dump())
            assert again == frame and {k: type(v) for k, v in frame.__dict__.items()} == {
                k: type(v) for k, v in again.__dict__.items()}
    assert Episode.model_validate(episode.model_dump()) == episode


def test_trusted_steps_equal_validated_steps(tmp_path: Path) -> None:
    restored, bad = read_all("rlds", str(write_rlds_fixture(tmp_path / "ours")))  # the `curate_episode` path
    assert bad == [] and restored
    root = tmp_path / "g" / "fractal20220817_data" / "0.1.0"
    write_dataset(root, [("train", _google_example(4, s)) for s in range(2)], name="fractal20220817_data",
                  features=_google_format_features(), version="0.1.0")
    mapped, bad = read_all("rlds", str(tmp_path / "g"))  # the OXE-registry path
    assert bad == [] and mapped
    for episode in [*restored, *mapped]:
        _assert_equals_validated(episode)
    ep = make_episode(0, dataset="discrete", n_steps=3, cameras=("front",), seed=1)
    ep.steps[1].discrete_action, ep.steps[1].action_args, ep.steps[2].language = "pick", {"object": "cup"}, None
    from connectors.rlds.writer import write_episodes
    (one,), bad = read_all("rlds", str(write_episodes([ep], tmp_path / "d" / "1.0.0", name="discrete")))
    assert bad == [] and one.steps[1].discrete_action == "pick" and one.steps[1].action_args == {"object": "cup"}
    _assert_equals_validated(one)
