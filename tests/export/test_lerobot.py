"""LeRobot v3.0 export: the format checker passes, and the project's LeRobot reader reads it back.

The `lerobot` library itself is not installed: `pip install --dry-run lerobot` (0.4.4) would replace
torch 2.14.1 with torch 2.10.0 (and downgrade av and numpy), so the export is held to the format by
`curate.export.check.check_lerobot_v3`, which also passes on a dataset written by lerobot itself
(../shared/real/lerobot/v3.0_so101_record-test, when present).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from connectors.base import SourceOptions
from connectors.lerobot.connector import LeRobotConnector
from curate.export import export
from curate.export.check import check_lerobot_v3
from curate.lake import Lake
from curate.media import decode_frame, decode_image
from curate.mixtures import resolve
from schemas import Camera, Frame, Step
from schemas.mixture import Manifest, MixtureSpec
from tests.helpers import make_episode, real_data


def read_back(root: Path) -> list:
    c = LeRobotConnector()
    eps = [e for u in c.list_units(str(root), SourceOptions()) for e in c.episodes(u, SourceOptions())]
    assert all(type(e).__name__ == "Episode" for e in eps), eps
    return eps


def test_image_mode_round_trips_field_for_field_and_frames_byte_for_byte(export_lake: Lake, natural: Manifest,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "lr"
    result = export(natural, format="lerobot", out=out, cameras="image")
    assert result.frames_reencoded == 0
    for ds in ("bridge", "aloha"):
        assert check_lerobot_v3(out / ds) == []
        back = read_back(out / ds)
        episodes = pq.read_table(next((out / ds / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
        source_ids = [r["curate/episode_id"] for r in sorted(episodes, key=lambda r: r["episode_index"])]
        assert len(back) == len(source_ids)
        for eid, got in zip(source_ids, sorted(back, key=lambda e: int(e.source.key.split("_")[-1])), strict=True):
            want = export_lake.episode(eid, frames="eager")
            assert got.instruction == want.instruction and got.n_steps == want.n_steps
            assert got.control_hz == want.control_hz
            assert got.action_space.names == want.action_space.names
            for a, b in zip(got.steps, want.steps, strict=True):
                assert a.action == b.action and a.state == b.state
                assert {f.camera: f.read_bytes() for f in a.frames} == {f.camera: f.read_bytes() for f in b.frames}


def test_info_declares_one_dataset_per_source_dataset(natural: Manifest, tmp_path: Path) -> None:
    export(natural, format="lerobot", out=tmp_path / "lr", cameras="image")
    info = json.loads((tmp_path / "lr" / "aloha" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50 and info["total_episodes"] == 4
    assert info["features"]["action"]["names"] == ["j0", "j1", "j2"]
    assert info["features"]["observation.images.top"]["dtype"] == "image"
    tasks = pq.read_table(tmp_path / "lr" / "bridge" / "meta" / "tasks.parquet")
    assert "pick up the red cup" in tasks.column("__index_level_0__").to_pylist()


def test_video_mode_encodes_h264_that_decodes_to_the_same_pictures(export_lake: Lake, natural: Manifest,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "lr"
    export(natural, format="lerobot", out=out, cameras="video")
    assert check_lerobot_v3(out / "bridge") == []
    info = json.loads((out / "bridge" / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    back = read_back(out / "bridge")
    got = back[0]
    want = next(export_lake.episode(e.episode_id, frames="eager") for e in natural.episodes
                if export_lake.episode(e.episode_id, frames="none").instruction == got.instruction
                and e.dataset == "bridge")
    for a, b in zip(got.steps, want.steps, strict=True):
        for fa, fb in zip(sorted(a.frames, key=lambda f: f.camera), sorted(b.frames, key=lambda f: f.camera),
                          strict=True):
            assert fa.format == "video"
            diff = np.abs(np.asarray(decode_frame(fa), np.int16) - np.asarray(decode_frame(fb), np.int16))
            assert diff.mean() < 6.0


def test_repeats_become_extra_lerobot_episodes(upsampled: Manifest, tmp_path: Path) -> None:
    export(upsampled, format="lerobot", out=tmp_path / "lr", cameras="image")
    total = sum(json.loads((tmp_path / "lr" / d / "meta" / "info.json").read_text())["total_episodes"]
                for d in ("aloha", "bridge"))
    assert total == sum(e.repeats for e in upsampled.episodes) == 16
    assert check_lerobot_v3(tmp_path / "lr" / "aloha") == []


def _mp4(path: Path, colours: list[tuple[int, int, int]], fps: int = 10) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        for i, colour in enumerate(colours):
            frame = av.VideoFrame.from_image(Image.new("RGB", (16, 16), colour))
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_a_compatible_source_video_is_passed_through_unchanged(tmp_path: Path) -> None:
    video = tmp_path / "src.mp4"
    _mp4(video, [(20 * i, 100, 200) for i in range(8)])
    lake = Lake.create(tmp_path / "lake")
    eps = []
    for k, start in enumerate((0, 4)):
        ep = make_episode(k, dataset="cam", n_steps=4, cameras=())
        steps = [Step(**{**s.model_dump(exclude={"frames"}),
                         "frames": [Frame(camera="front", format="video", video_uri=str(video),
                                          video_timestamp_s=(start + t) / 10)]})
                 for t, s in enumerate(ep.steps)]
        eps.append(ep.model_copy(update={"steps": steps, "cameras": [Camera(name="front", height=16, width=16)]}))
    lake.write_episodes(eps)
    manifest = resolve(MixtureSpec(name="v", quality=[]), lake)
    result = export(manifest, format="lerobot", out=tmp_path / "lr")
    assert result.frames_reencoded == 0
    copied = list((tmp_path / "lr" / "cam" / "videos").rglob("*.mp4"))
    assert len(copied) == 1 and copied[0].read_bytes() == video.read_bytes()
    assert check_lerobot_v3(tmp_path / "lr" / "cam") == []
    rows = pq.read_table(next((tmp_path / "lr" / "cam" / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    assert sorted(r["videos/observation.images.front/from_timestamp"] for r in rows) == [0.0, 0.4]


def test_the_checker_accepts_a_dataset_written_by_lerobot_itself() -> None:
    root = real_data("lerobot", "v3.0_so101_record-test")
    problems = check_lerobot_v3(root, decode_videos=False)
    assert problems and all("mp4 is missing" in p for p in problems)  # the sample ships without its videos


def test_the_checker_finds_a_broken_export(natural: Manifest, tmp_path: Path) -> None:
    export(natural, format="lerobot", out=tmp_path / "lr", cameras="image")
    info_path = tmp_path / "lr" / "aloha" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] += 1
    info_path.write_text(json.dumps(info))
    assert any("total_frames" in p for p in check_lerobot_v3(tmp_path / "lr" / "aloha"))
    assert decode_image(_first_image(tmp_path / "lr" / "aloha")).size == (16, 16)


def _first_image(root: Path) -> bytes:
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    return table.column("observation.images.top")[0].as_py()["bytes"]
