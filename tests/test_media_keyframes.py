"""Keyframes and video helpers in curate.media: real H.264 and AV1 files encoded by the tests."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from curate.media import (
    decode_frame,
    encode_video,
    keyframe_indices,
    keyframes,
    thumbnail,
    video_frame,
    video_frames,
    video_info,
)
from schemas import Frame
from tests.connectors.conformance import read_all
from tests.fixtures_teleop import lerobot_v3, lerobot_v21
from tests.helpers import make_episode, real_data


def _ramp(n: int, size: tuple[int, int] = (64, 48)) -> list[Image.Image]:
    """Frame i is a flat grey of level 8*i, so a decoded frame tells which one it is."""
    return [Image.new("RGB", size, (8 * i, 8 * i, 8 * i)) for i in range(n)]


@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_encoded_video_frames_decode_at_their_timestamps(tmp_path, codec: str) -> None:
    path = tmp_path / f"ramp_{codec}.mp4"
    assert encode_video(_ramp(30), str(path), fps=10, codec=codec) == 30
    info = video_info(str(path))
    assert info["frames"] == 30 and (info["width"], info["height"]) == (64, 48)
    assert info["duration_s"] == pytest.approx(3.0, abs=0.05)
    for t in (0, 7, 29):
        level = np.asarray(video_frame(str(path), t / 10)).mean()
        assert abs(level - 8 * t) < 6, (codec, t, level)
    batch = video_frames(str(path), [2.9, 0.0, 1.5])
    assert [round(float(np.asarray(img).mean()) / 8) for img in batch] == [29, 0, 15]


def test_a_timestamp_past_the_end_gives_the_last_frame(tmp_path) -> None:
    path = tmp_path / "short.mp4"
    encode_video(_ramp(5), str(path), fps=10)
    assert round(float(np.asarray(video_frame(str(path), 9.0)).mean()) / 8) == 4


@pytest.mark.parametrize(("n", "count", "expected"), [
    (10, 3, [0, 4, 9]), (1, 3, [0]), (0, 3, []), (5, 1, [2]), (4, 10, [0, 1, 2, 3]),
])
def test_keyframe_indices_spread_over_the_episode(n: int, count: int, expected: list[int]) -> None:
    assert keyframe_indices(n, count=count) == expected


def test_keyframes_of_a_video_episode_come_from_one_pass(tmp_path) -> None:
    good, _ = read_all("lerobot", str(lerobot_v3(tmp_path)))
    episode = good[1]
    picked = keyframes(episode, camera="wrist", count=3, size=32)
    assert [i for i, _ in picked] == keyframe_indices(episode.n_steps, count=3)
    assert all(max(img.size) <= 32 for _, img in picked)
    full = keyframes(episode, count=2)
    assert full[0][1].size == (96, 96)  # default camera: the first usable one (front)


def test_keyframes_of_jpeg_frames_and_a_missing_camera(tmp_path) -> None:
    episode = make_episode(0, n_steps=6, cameras=("front",))
    assert [i for i, _ in keyframes(episode, count=3)] == [0, 2, 5]
    with pytest.raises(ValueError, match="no usable camera"):
        keyframes(episode, camera="side")


def test_decode_frame_and_thumbnail_of_a_video_reference(tmp_path) -> None:
    good, _ = read_all("lerobot", str(lerobot_v21(tmp_path, episodes=1)))
    frame = good[0].steps[4].frames[0]
    assert decode_frame(frame).size == (96, 96)
    assert max(thumbnail(frame, size=40).size) == 40
    with pytest.raises(ValueError, match="lacks its uri or timestamp"):
        decode_frame(Frame(camera="x", format="video", video_uri="/nowhere.mp4"))


def test_real_av1_keyframes_of_the_g1_sample() -> None:
    root = real_data("lerobot", "v2.1_unitree_g1")
    good, _ = read_all("lerobot", str(root))
    picked = keyframes(good[0], count=4)
    assert len(picked) == 4 and all(img.size == (640, 480) for _, img in picked)
    assert video_info(good[0].steps[0].frames[0].video_uri)["codec"] in ("libdav1d", "av1")
