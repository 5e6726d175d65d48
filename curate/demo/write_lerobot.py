"""Write demo episodes as a real LeRobot dataset (v3.0 packed, or v2.1 per episode), with PyAV-encoded mp4.

The files follow formats.md section 3.1 exactly (the layout lerobot itself writes), so the `lerobot`
connector, lerobot users and the LeRobot exporter's round-trip tests can all read them.

    from curate.demo.world import build_world
    from curate.demo import write_lerobot
    so101 = [d for d in build_world(40, seed=7) if d.robot.name == "so101"]
    write_lerobot.write(so101, "/tmp/so101_v3")                       # v3.0, H.264 video
    write_lerobot.write(so101, "/tmp/so101_v21", version="v2.1")      # v2.1, one mp4 per episode
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from curate.demo.world import DemoEpisode
from curate.media import encode_video

CHUNKS_SIZE = 1000
Version = Literal["v3.0", "v2.1"]
VisualMode = Literal["video", "image", "none"]


def _vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


def _features(demo: DemoEpisode, *, visual: VisualMode, codec: str, fps: float) -> dict[str, Any]:
    robot = demo.robot
    features: dict[str, Any] = {
        "action": {"dtype": "float32", "shape": [len(robot.action_names)], "names": list(robot.action_names)},
        "observation.state": {"dtype": "float32", "shape": [len(robot.state_names)],
                              "names": list(robot.state_names)},
    }
    for cam in robot.cameras if visual != "none" else ():
        width, height = Image.open(io.BytesIO(demo.frames[cam][0])).size
        feature: dict[str, Any] = {"dtype": visual, "shape": [height, width, 3],
                                   "names": ["height", "width", "channels"]}
        if visual == "video":
            feature["info"] = {"video.height": height, "video.width": width, "video.codec": codec,
                               "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                               "video.channels": 3, "has_audio": False}
        features[f"observation.images.{cam}"] = feature
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                       ("index", "int64"), ("task_index", "int64")):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    return features


def _frame_table(demo: DemoEpisode, *, episode_index: int, first_index: int, task_index: int, fps: float,
                 visual: VisualMode) -> pa.Table:
    n = demo.n_steps
    columns: dict[str, pa.Array] = {
        "action": pa.FixedSizeListArray.from_arrays(pa.array(demo.actions.astype(np.float32).ravel()),
                                                    demo.actions.shape[1]),
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(demo.states.astype(np.float32).ravel()),
                                                               demo.states.shape[1]),
    }
    if visual == "image":
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        for cam in demo.robot.cameras:
            columns[f"observation.images.{cam}"] = pa.array(
                [{"bytes": b, "path": f"frame_{i:06d}.jpg"} for i, b in enumerate(demo.frames[cam])],
                type=image_type)
    columns["timestamp"] = pa.array((np.arange(n) / fps).astype(np.float32))
    columns["frame_index"] = pa.array(np.arange(n, dtype=np.int64))
    columns["episode_index"] = pa.array(np.full(n, episode_index, dtype=np.int64))
    columns["index"] = pa.array(np.arange(first_index, first_index + n, dtype=np.int64))
    columns["task_index"] = pa.array(np.full(n, task_index, dtype=np.int64))
    return pa.table(columns)


def _stats(values: np.ndarray) -> dict[str, list[float]]:
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "count": [int(values.shape[0])]}


def _images(demo: DemoEpisode, cam: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(b)).convert("RGB") for b in demo.frames[cam]]


def _check(demos: Sequence[DemoEpisode]) -> None:
    if not demos:
        raise ValueError("no demo episodes to write")
    robots = {d.robot.name for d in demos}
    if len(robots) > 1:
        raise ValueError(f"a LeRobot dataset holds one robot, got {sorted(robots)}; filter by robot first "
                         "(e.g. [d for d in world if d.robot.name == 'so101'])")


def write(demo_episodes: Sequence[DemoEpisode], root: str | Path, *, version: Version = "v3.0",
          visual: VisualMode = "video", codec: str = "h264") -> Path:
    """Write `demo_episodes` (one robot) as a LeRobot dataset at `root` and return `root`.

    Args:
        version: "v3.0" (packed data file, one concatenated mp4 per camera) or "v2.1" (per episode).
        visual: "video" (mp4 per camera), "image" (JPEG bytes in the parquet, HF Image struct), "none".
        codec: PyAV encoder for the mp4 ("h264" or "av1").
    """
    demos = list(demo_episodes)
    _check(demos)
    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    first = demos[0]
    fps = float(first.robot.hz)
    features = _features(first, visual=visual, codec=codec, fps=fps)
    tasks: dict[str, int] = {}
    for demo in demos:
        tasks.setdefault(demo.instruction or "", len(tasks))
    total_frames = sum(d.n_steps for d in demos)
    info: dict[str, Any] = {
        "codebase_version": version, "robot_type": first.robot.name, "total_episodes": len(demos),
        "total_frames": total_frames, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "fps": int(fps) if fps.is_integer() else fps, "splits": {"train": f"0:{len(demos)}"},
    }
    if version == "v3.0":
        info.update(data_files_size_in_mb=100, video_files_size_in_mb=500,
                    data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                    video_path=("videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
                                if visual == "video" else None))
        _write_v3(demos, root, tasks=tasks, fps=fps, visual=visual, codec=codec)
    else:
        info.update(total_videos=len(demos) * len(first.robot.cameras) if visual == "video" else 0,
                    total_chunks=1, data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                    video_path=("videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
                                if visual == "video" else None))
        _write_v21(demos, root, tasks=tasks, fps=fps, visual=visual, codec=codec)
    info["features"] = features
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return root


def _write_v3(demos: list[DemoEpisode], root: Path, *, tasks: dict[str, int], fps: float, visual: VisualMode,
              codec: str) -> None:
    import pandas as pd

    tables, rows, offset = [], [], 0
    video_offset = 0.0
    for i, demo in enumerate(demos):
        tables.append(_frame_table(demo, episode_index=i, first_index=offset, task_index=tasks[demo.instruction or ""],
                                   fps=fps, visual=visual))
        row: dict[str, Any] = {"episode_index": i, "tasks": [demo.instruction or ""], "length": demo.n_steps,
                               "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": offset,
                               "dataset_to_index": offset + demo.n_steps}
        if visual == "video":
            for cam in demo.robot.cameras:
                key = f"videos/observation.images.{cam}"
                row.update({f"{key}/chunk_index": 0, f"{key}/file_index": 0,
                            f"{key}/from_timestamp": video_offset,
                            f"{key}/to_timestamp": video_offset + demo.n_steps / fps})
        for name, values in (("action", demo.actions), ("observation.state", demo.states)):
            for stat, value in _stats(np.asarray(values, dtype=np.float64)).items():
                row[f"stats/{name}/{stat}"] = value
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        rows.append(row)
        offset += demo.n_steps
        video_offset += demo.n_steps / fps
    data_dir = root / "data" / "chunk-000"
    data_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(tables), data_dir / "file-000.parquet")
    episodes_dir = root / "meta" / "episodes" / "chunk-000"
    episodes_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes_dir / "file-000.parquet")
    pd.DataFrame({"task_index": list(tasks.values())}, index=list(tasks)).to_parquet(root / "meta" / "tasks.parquet")
    all_actions = np.concatenate([d.actions for d in demos]).astype(np.float64)
    all_states = np.concatenate([d.states for d in demos]).astype(np.float64)
    (root / "meta" / "stats.json").write_text(json.dumps({"action": _stats(all_actions),
                                                          "observation.state": _stats(all_states)}))
    if visual == "video":
        for cam in demos[0].robot.cameras:
            video_dir = root / "videos" / f"observation.images.{cam}" / "chunk-000"
            video_dir.mkdir(parents=True, exist_ok=True)
            encode_video([img for d in demos for img in _images(d, cam)], str(video_dir / "file-000.mp4"), fps=fps,
                         codec=codec)


def _write_v21(demos: list[DemoEpisode], root: Path, *, tasks: dict[str, int], fps: float, visual: VisualMode,
               codec: str) -> None:
    offset = 0
    episodes_lines, stats_lines = [], []
    for i, demo in enumerate(demos):
        data_dir = root / "data" / "chunk-000"
        data_dir.mkdir(parents=True, exist_ok=True)
        pq.write_table(_frame_table(demo, episode_index=i, first_index=offset,
                                    task_index=tasks[demo.instruction or ""], fps=fps, visual=visual),
                       data_dir / f"episode_{i:06d}.parquet")
        if visual == "video":
            for cam in demo.robot.cameras:
                video_dir = root / "videos" / "chunk-000" / f"observation.images.{cam}"
                video_dir.mkdir(parents=True, exist_ok=True)
                encode_video(_images(demo, cam), str(video_dir / f"episode_{i:06d}.mp4"), fps=fps, codec=codec)
        episodes_lines.append(json.dumps({"episode_index": i, "tasks": [demo.instruction or ""],
                                          "length": demo.n_steps}))
        stats_lines.append(json.dumps({"episode_index": i, "stats": {
            "action": _stats(np.asarray(demo.actions, dtype=np.float64)),
            "observation.state": _stats(np.asarray(demo.states, dtype=np.float64))}}))
        offset += demo.n_steps
    (root / "meta" / "episodes.jsonl").write_text("\n".join(episodes_lines) + "\n")
    (root / "meta" / "episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")
    (root / "meta" / "tasks.jsonl").write_text(
        "\n".join(json.dumps({"task_index": idx, "task": text}) for text, idx in tasks.items()) + "\n")
