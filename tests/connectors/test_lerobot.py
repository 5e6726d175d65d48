"""The LeRobot connector: v2.1 and v3.0 layouts written by the tests, damaged datasets, and the real samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.base import SourceOptions
from connectors.lerobot import LeRobotFormatError, feature_names, load_meta
from curate.ingest import ingest
from curate.lake import Lake
from curate.media import decode_frame, video_frames
from tests.connectors.conformance import ConnectorConformance, read_all
from tests.fixtures_teleop import demos_of, lerobot_v3, lerobot_v21
from tests.helpers import real_data


def _corrupt_image_of_episode(root: Path, episode: int) -> None:
    """Replace the images of one episode in a v3 image-mode dataset by bytes that are no image."""
    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        if row["episode_index"] == episode:
            row["observation.images.front"] = {"bytes": b"GARBAGE!" * 8, "path": None}
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


class TestLeRobotV3(ConnectorConformance):
    format = "lerobot"
    expected_episodes = 3
    expected_rejected = 1

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(lerobot_v3(tmp_path))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = lerobot_v3(tmp_path / "bad", visual="image")
        _corrupt_image_of_episode(root, 1)
        return str(root)


class TestLeRobotV21(ConnectorConformance):
    format = "lerobot"
    expected_episodes = 3
    expected_rejected = 1

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(lerobot_v21(tmp_path))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = lerobot_v21(tmp_path / "bad")
        video = root / "videos" / "chunk-000" / "observation.images.front" / "episode_000002.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 4)
        return str(root)


class TestLeRobotV3Images(ConnectorConformance):
    """Image features (JPEG bytes in the parquet) must survive the lake byte for byte."""

    format = "lerobot"
    expected_episodes = 3
    expected_rejected = 1
    check_lake_round_trip = True

    @pytest.fixture
    def sample(self, tmp_path: Path) -> str:
        return str(lerobot_v3(tmp_path, visual="image"))

    @pytest.fixture
    def corrupted_sample(self, tmp_path: Path) -> str:
        root = lerobot_v3(tmp_path / "bad", visual="image")
        _corrupt_image_of_episode(root, 2)
        return str(root)


def test_v3_episodes_match_what_was_written(tmp_path: Path) -> None:
    demos = demos_of("so101", 3)
    good, bad = read_all("lerobot", str(lerobot_v3(tmp_path)))
    assert bad == []
    assert [e.n_steps for e in good] == [d.n_steps for d in demos]
    for episode, demo in zip(good, demos, strict=True):
        assert np.allclose([s.action for s in episode.steps], demo.actions, atol=1e-6)
        assert np.allclose([s.state for s in episode.steps], demo.states, atol=1e-6)
        assert episode.instruction == (demo.instruction or None) or demo.instruction is None
        assert episode.action_space.names == list(demo.robot.action_names)
        assert episode.control_hz == demo.robot.hz
        assert [c.name for c in episode.cameras] == list(demo.robot.cameras)
        assert episode.split == "train"
        assert episode.embodiment.robot == "so101"


def test_v3_video_frames_are_references_into_the_concatenated_mp4(tmp_path: Path) -> None:
    demos = demos_of("so101", 3)
    good, _ = read_all("lerobot", str(lerobot_v3(tmp_path)))
    second = good[1]
    frame = second.steps[0].frames[0]
    assert frame.format == "video" and frame.data is None
    assert frame.video_uri.endswith("videos/observation.images.front/chunk-000/file-000.mp4")
    assert Path(frame.video_uri).is_absolute()
    assert frame.video_timestamp_s == pytest.approx(demos[0].n_steps / demos[0].robot.hz, abs=1e-4)
    # the referenced frame decodes to (nearly) the image that was encoded
    img = np.asarray(decode_frame(frame)).astype(int)
    import io

    from PIL import Image
    original = np.asarray(Image.open(io.BytesIO(demos[1].frames["front"][0])).convert("RGB")).astype(int)
    assert np.abs(img - original).mean() < 12


def test_v21_per_episode_mp4_frames_decode(tmp_path: Path) -> None:
    good, _ = read_all("lerobot", str(lerobot_v21(tmp_path)))
    frames = [s.frames[0] for s in good[0].steps]
    assert all(f.video_uri.endswith("episode_000000.mp4") for f in frames)
    images = video_frames(frames[0].video_uri, [f.video_timestamp_s for f in frames[:5]])
    assert len(images) == 5 and images[0].size == (96, 96)


def test_image_features_pass_their_bytes_through(tmp_path: Path) -> None:
    demos = demos_of("so101", 3)
    good, _ = read_all("lerobot", str(lerobot_v3(tmp_path, visual="image")))
    frame = next(f for f in good[0].steps[3].frames if f.camera == "wrist")
    assert frame.format == "jpeg"
    assert frame.data == demos[0].frames["wrist"][3]


def test_missing_mp4_keeps_the_episodes_and_flags_the_camera(tmp_path: Path) -> None:
    root = lerobot_v3(tmp_path)
    shutil.rmtree(root / "videos" / "observation.images.wrist")
    good, bad = read_all("lerobot", str(root))
    assert bad == [] and len(good) == 3
    for episode in good:
        assert "camera_missing:wrist" in episode.quality_flags
        wrist = next(c for c in episode.cameras if c.name == "wrist")
        assert wrist.missing
        assert {f.camera for f in episode.steps[0].frames} == {"front"}


def test_undecodable_video_rejects_only_its_episode(tmp_path: Path) -> None:
    root = lerobot_v21(tmp_path)
    (root / "videos" / "chunk-000" / "observation.images.wrist" / "episode_000001.mp4").write_bytes(b"junk" * 100)
    good, bad = read_all("lerobot", str(root))
    assert [e.source.key for e in good] == ["episode_000000", "episode_000002"]
    assert len(bad) == 1 and "undecodable" in bad[0].reason and "episode_000001.mp4" in bad[0].file


def test_info_json_without_features_is_rejected_with_a_clear_reason(tmp_path: Path) -> None:
    root = lerobot_v3(tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match="declares no `features`"):
        load_meta(str(root))
    good, bad = read_all("lerobot", str(root))
    assert good == [] and len(bad) == 1 and "declares no `features`" in bad[0].reason
    report = ingest([str(root)], lake=str(tmp_path / "lake"), format="lerobot")
    assert report.rejected == 1 and "info.json declares no `features`" in report.rejections[0].reason


def test_unsupported_codebase_version_names_the_conversion(tmp_path: Path) -> None:
    root = lerobot_v3(tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match=r"v1\.6.*convert"):
        load_meta(str(root))


def test_tasks_parquet_with_a_task_column_is_read_too(tmp_path: Path) -> None:
    root = lerobot_v3(tmp_path)
    path = root / "meta" / "tasks.parquet"
    table = pq.read_table(path)
    texts = table["__index_level_0__"].to_pylist()
    pq.write_table(pa.table({"task_index": table["task_index"], "task": texts}), path)
    meta = load_meta(str(root))
    assert sorted(meta.tasks.values()) == sorted(texts)


@pytest.mark.parametrize(("names", "shape", "expected"), [
    (["a", "b"], [2], ["a", "b"]),
    ([["a", "b", "c"]], [3], ["a", "b", "c"]),
    ({"motors": ["a", "b"]}, [2], ["a", "b"]),
    ({"left": ["a"], "right": ["b"]}, [2], ["a", "b"]),
    (None, [2], []),
    (["height", "width", "channel"], [480, 640, 3], []),
])
def test_feature_names_accept_every_form_found_in_the_wild(names, shape, expected) -> None:
    assert feature_names(names, tuple(shape)) == expected


def test_missing_data_files_can_be_reported(tmp_path: Path) -> None:
    root = lerobot_v21(tmp_path)
    (root / "data" / "chunk-000" / "episode_000001.parquet").unlink()
    good, bad = read_all("lerobot", str(root))
    assert len(good) == 2 and bad == []
    good, bad = read_all("lerobot", str(root), SourceOptions(extra={"missing_data": "report"}))
    assert len(good) == 2 and len(bad) == 1 and "missing" in bad[0].reason


def test_splits_option_filters_episodes(tmp_path: Path) -> None:
    root = lerobot_v3(tmp_path)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["splits"] = {"train": "0:2", "test": "2:3"}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    good, _ = read_all("lerobot", str(root), SourceOptions(splits=("test",)))
    assert [e.split for e in good] == ["test"]


def test_ingest_through_the_engine_keeps_video_references(tmp_path: Path) -> None:
    root = lerobot_v3(tmp_path)
    lake_uri = str(tmp_path / "lake")
    report = ingest([str(root)], lake=lake_uri)
    assert report.formats == {str(root): "lerobot"} and report.episodes == 3 and report.rejected == 0
    lake = Lake(lake_uri)
    episode_id = lake.episodes(columns=["episode_id"])["episode_id"].to_list()[0]
    loaded = lake.episode(episode_id)
    frame = loaded.steps[2].frames[0]
    assert frame.format == "video" and frame.video_uri and frame.video_timestamp_s is not None
    assert decode_frame(frame).size[0] > 0


def test_cli_ingest_of_a_lerobot_dataset(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    if run_cli("ingest", "--help").returncode != 0:
        pytest.skip("the `curate ingest` command is not registered in this checkout")
    root = lerobot_v21(tmp_path, episodes=2)
    result = run_cli("ingest", str(root), "--lake", str(tmp_path / "lake"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert Lake(str(tmp_path / "lake")).count() == 2


# -- real samples (../shared/real) ------------------------------------------------------------------------


def test_real_v21_unitree_g1_gives_the_two_episodes_with_data() -> None:
    root = real_data("lerobot", "v2.1_unitree_g1")
    good, bad = read_all("lerobot", str(root))
    assert bad == []
    assert [e.n_steps for e in good] == [221, 277]
    for episode in good:
        assert episode.action_space.dim == 26 and episode.state_space.dim == 26
        assert len(episode.action_space.names) == 26
        assert episode.instruction == "Pick up the yellow bottle on the table."
        assert [c.name for c in episode.cameras] == ["cam_high"] and not episode.cameras[0].missing
        assert episode.embodiment.kind == "humanoid"
    frames = [good[0].steps[i].frames[0] for i in (0, 110, 220)]
    images = video_frames(frames[0].video_uri, [f.video_timestamp_s for f in frames])
    assert [img.size for img in images] == [(640, 480)] * 3
    assert max(np.asarray(img).max() for img in images) > 50  # real pixels, not black


def test_real_v30_so101_gives_four_episodes_with_both_cameras_missing() -> None:
    root = real_data("lerobot", "v3.0_so101_record-test")
    good, bad = read_all("lerobot", str(root))
    assert bad == []
    assert len(good) == 4 and sum(e.n_steps for e in good) == 1492
    assert [e.n_steps for e in good] == [373, 374, 372, 373]
    for episode in good:
        assert {"camera_missing:front", "camera_missing:top"} <= set(episode.quality_flags)
        assert all(c.missing for c in episode.cameras)
        assert episode.instruction == "Pick the orange cube and place it in the box"
        assert episode.action_space.dim == 6


def test_real_samples_ingest_into_a_lake(tmp_path: Path) -> None:
    g1 = real_data("lerobot", "v2.1_unitree_g1")
    so101 = real_data("lerobot", "v3.0_so101_record-test")
    report = ingest([str(g1), str(so101)], lake=str(tmp_path / "lake"))
    assert report.episodes == 6 and report.rejected == 0
    assert report.steps == 221 + 277 + 1492


def test_a_video_shorter_than_its_episode_is_flagged(tmp_path: Path) -> None:
    from PIL import Image

    from curate.media import encode_video

    root = lerobot_v21(tmp_path, episodes=1)
    video = root / "videos" / "chunk-000" / "observation.images.wrist" / "episode_000000.mp4"
    encode_video([Image.new("RGB", (64, 64))] * 5, str(video), fps=10)
    good, _ = read_all("lerobot", str(root))
    assert "video_short:wrist" in good[0].quality_flags and "video_short:front" not in good[0].quality_flags


def test_a_dataset_on_an_fsspec_filesystem_is_read_and_its_video_decodes(tmp_path: Path) -> None:
    import fsspec

    root = lerobot_v21(tmp_path, episodes=2)
    fs = fsspec.filesystem("memory")
    for path in root.rglob("*"):
        if path.is_file():
            fs.pipe(f"/lerobot_mem/{path.relative_to(root)}", path.read_bytes())
    try:
        good, bad = read_all("lerobot", "memory://lerobot_mem")
        assert bad == [] and len(good) == 2
        frame = good[1].steps[3].frames[0]
        assert frame.video_uri.startswith("memory://")
        assert decode_frame(frame).size == (96, 96)
    finally:
        fs.rm("/lerobot_mem", recursive=True)


@pytest.mark.parametrize("visual", ["video", "image"])
def test_fast_steps_equal_validated_steps(tmp_path: Path, visual: str) -> None:
    from schemas import Episode, Step

    good, _ = read_all("lerobot", str(lerobot_v3(tmp_path, visual=visual)))
    for episode in good:
        for step in episode.steps:
            assert Step.model_validate(step.model_dump()) == step
        assert Episode.model_validate(episode.model_dump()) == episode


def test_av1_encoded_v3_dataset_frames_decode(tmp_path: Path) -> None:
    demos = demos_of("so101", 2)
    good, bad = read_all("lerobot", str(lerobot_v3(tmp_path, episodes=2, codec="av1")))
    assert bad == []
    from curate.media import video_info

    frame = good[1].steps[-1].frames[0]
    assert video_info(frame.video_uri)["codec"] in ("libdav1d", "av1")
    import io

    from PIL import Image

    original = np.asarray(Image.open(io.BytesIO(demos[1].frames["front"][-1])).convert("RGB")).astype(int)
    assert np.abs(np.asarray(decode_frame(frame)).astype(int) - original).mean() < 12


def test_a_directory_of_datasets_is_one_source(tmp_path: Path) -> None:
    from curate.demo import write_lerobot

    hub = tmp_path / "hub" / "lerobot"
    write_lerobot.write(demos_of("so101", 2), hub / "alice" / "so101_pick", visual="none")
    write_lerobot.write(demos_of("franka", 1), hub / "bob" / "franka_push", version="v2.1", visual="none")
    from connectors import registry

    assert registry.detect(str(hub)) == ["lerobot"]
    good, bad = read_all("lerobot", str(hub))
    assert bad == [] and sorted(e.dataset for e in good) == ["franka_push", "so101_pick", "so101_pick"]
    report = ingest([str(hub)], lake=str(tmp_path / "lake"))
    assert report.episodes == 3 and set(report.datasets) == {"franka_push", "so101_pick"}


def test_video_references_read_back_from_the_lake_equal_the_connectors(tmp_path: Path) -> None:
    root = str(lerobot_v3(tmp_path))
    good, _ = read_all("lerobot", root)
    ingest([root], lake=str(tmp_path / "lake"))
    lake = Lake(str(tmp_path / "lake"))
    skip = {"ingested_at", "quality_flags", "steps"}
    for episode in good:
        back = lake.episode(episode.episode_id, frames="eager")
        assert back.model_dump(exclude=skip) == episode.model_dump(exclude=skip)
        for a, b in zip(back.steps, episode.steps, strict=True):
            assert a.model_dump(exclude={"frames"}) == b.model_dump(exclude={"frames"})
            assert [(f.camera, f.format, f.video_uri, f.video_timestamp_s) for f in a.frames] == [
                (f.camera, f.format, f.video_uri, f.video_timestamp_s) for f in b.frames]
