"""Benchmark the teleop connectors: LeRobot metadata ingest, HDF5 steps, keyframe extraction from video.

    .venv/bin/python bench/bench_teleop_ingest.py            # default sizes (about a minute)
    .venv/bin/python bench/bench_teleop_ingest.py --quick    # small sizes, for a smoke run

Figures (medians of `--repeats` runs, one process, this machine):
- LeRobot v3.0 ingest without video decoding: frames/s through the connector alone, and through the whole
  engine into a fresh lake (goal: >= 20,000 frames/s). Video frames are references (uri + timestamp).
- ALOHA HDF5 (JPEG + compress_len, 2 cameras): steps/s through the connector and into a lake.
- Keyframe extraction from AV1 and H.264 mp4 (640x480): keyframes/s (3 per episode-sized window, one
  seek each) and sequential decoded frames/s.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import SourceOptions
from connectors.registry import get
from curate.ingest import ingest
from curate.media import encode_video, keyframe_indices, video_frames


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of `fn` over `repeats` runs."""
    return median_times(fn, repeats)[0]


def median_times(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall-clock, CPU) seconds of `fn`; CPU time shows the rate a dedicated core would give when the
    machine is shared (this one runs several jobs on 2 cores)."""
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def synthetic_lerobot_v3(root: Path, *, episodes: int, length: int, dim: int = 14, fps: int = 30) -> int:
    """A v3.0 dataset with `episodes` x `length` frames, two video cameras; returns the frame count."""
    rng = np.random.default_rng(0)
    total = episodes * length
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    (root / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    video_dir = {}
    cams = ("front", "wrist")
    for cam in cams:
        video_dir[cam] = root / "videos" / f"observation.images.{cam}" / "chunk-000"
        video_dir[cam].mkdir(parents=True, exist_ok=True)
        # a short real mp4: the connector opens it once (headers) but never decodes it at ingest
        encode_video([Image.new("RGB", (64, 64), (i, 0, 0)) for i in range(8)], str(video_dir[cam] / "file-000.mp4"),
                     fps=fps)
    ep_index = np.repeat(np.arange(episodes), length)
    frame_index = np.tile(np.arange(length), episodes)
    table = pa.table({
        "action": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=total * dim).astype(np.float32)), dim),
        "observation.state": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.normal(size=total * dim).astype(np.float32)), dim),
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "frame_index": pa.array(frame_index.astype(np.int64)),
        "episode_index": pa.array(ep_index.astype(np.int64)),
        "index": pa.array(np.arange(total, dtype=np.int64)),
        "task_index": pa.array(np.zeros(total, dtype=np.int64)),
    })
    pq.write_table(table, root / "data" / "chunk-000" / "file-000.parquet")
    rows = []
    for e in range(episodes):
        row = {"episode_index": e, "tasks": ["pick the cube"], "length": length, "data/chunk_index": 0,
               "data/file_index": 0, "dataset_from_index": e * length, "dataset_to_index": (e + 1) * length}
        for cam in cams:
            key = f"videos/observation.images.{cam}"
            row.update({f"{key}/chunk_index": 0, f"{key}/file_index": 0, f"{key}/from_timestamp": e * length / fps,
                        f"{key}/to_timestamp": (e + 1) * length / fps})
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["pick the cube"]}), root / "meta" / "tasks.parquet")
    features = {
        "action": {"dtype": "float32", "shape": [dim], "names": [f"j{i}" for i in range(dim)]},
        "observation.state": {"dtype": "float32", "shape": [dim], "names": [f"j{i}" for i in range(dim)]},
        **{f"observation.images.{cam}": {"dtype": "video", "shape": [64, 64, 3],
                                         "names": ["height", "width", "channels"],
                                         "info": {"video.height": 64, "video.width": 64, "video.codec": "h264"}}
           for cam in cams},
        **{k: {"dtype": "int64" if k != "timestamp" else "float32", "shape": [1], "names": None}
           for k in ("timestamp", "frame_index", "episode_index", "index", "task_index")},
    }
    info = {"codebase_version": "v3.0", "robot_type": "bench_arm", "total_episodes": episodes, "total_frames": total,
            "total_tasks": 1, "chunks_size": 1000, "fps": fps, "splits": {"train": f"0:{episodes}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": features}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return total


def synthetic_aloha(root: Path, *, episodes: int, length: int) -> int:
    import h5py

    rng = np.random.default_rng(0)
    jpegs = []
    for level in range(0, 250, 25):
        buf = io.BytesIO()
        Image.new("RGB", (96, 72), (level, 90, 40)).save(buf, format="JPEG", quality=85)
        jpegs.append(buf.getvalue())
    padded = max(len(j) for j in jpegs)
    task = root / "bench_task"
    task.mkdir(parents=True, exist_ok=True)
    for e in range(episodes):
        with h5py.File(task / f"episode_{e}.hdf5", "w") as h5:
            h5.attrs["sim"] = False
            h5.attrs["compress"] = True
            obs = h5.create_group("observations")
            obs.create_dataset("qpos", data=rng.normal(size=(length, 14)))
            obs.create_dataset("qvel", data=rng.normal(size=(length, 14)))
            images = obs.create_group("images")
            lengths = np.zeros((2, length), dtype=np.int64)
            for c, cam in enumerate(("cam_high", "cam_left_wrist")):
                buf = np.zeros((length, padded), dtype=np.uint8)
                for t in range(length):
                    data = jpegs[(t + c) % len(jpegs)]
                    buf[t, : len(data)] = np.frombuffer(data, dtype=np.uint8)
                    lengths[c, t] = len(data)
                images.create_dataset(cam, data=buf)
            h5.create_dataset("compress_len", data=lengths)
            h5.create_dataset("action", data=rng.normal(size=(length, 14)))
    return episodes * length


def consume(fmt: str, uri: str, options: SourceOptions | None = None) -> int:
    connector = get(fmt)
    options = options or SourceOptions()
    steps = 0
    for unit in connector.list_units(uri, options):
        for episode in connector.episodes(unit, options):
            steps += getattr(episode, "n_steps", 0)
    return steps


def bench_keyframes(tmp: Path, *, frames: int, repeats: int) -> list[str]:
    lines = []
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    images = [Image.fromarray(np.roll(base, 4 * i, axis=1)) for i in range(frames)]
    for codec in ("h264", "av1"):
        path = tmp / f"bench_{codec}.mp4"
        encode_video(images, str(path), fps=30, codec=codec)
        episode_len = 150
        windows = max(1, frames // episode_len)
        stamps = [[(w * episode_len + i) / 30 for i in keyframe_indices(episode_len, count=3)] for w in range(windows)]

        def keyframes(path: Path = path, stamps: list[list[float]] = stamps) -> None:
            from curate.media import _video_frames

            _video_frames.cache_clear()
            for window in stamps:
                video_frames(str(path), window)

        def sequential(path: Path = path) -> None:
            import av

            with av.open(str(path)) as container:
                for _ in container.decode(video=0):
                    pass

        t_key = median_time(keyframes, repeats)
        t_seq = median_time(sequential, repeats)
        lines.append(f"keyframes {codec:>5}: {3 * windows / t_key:8.1f} keyframes/s ({windows} windows x 3, 640x480); "
                     f"sequential decode {frames / t_seq:8.1f} frames/s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-keyframes", action="store_true", help="skip the video keyframe figures")
    parser.add_argument("--workers", type=int, default=1, help="ingest worker processes (CPU rates then cover "
                                                                 "only the parent)")
    args = parser.parse_args()
    lr_episodes, lr_len = (20, 300) if args.quick else (100, 600)
    al_episodes, al_len = (4, 100) if args.quick else (10, 400)
    video_frames_n = 150 if args.quick else 600
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        total = synthetic_lerobot_v3(tmp / "lerobot", episodes=lr_episodes, length=lr_len)
        t_conn = median_times(lambda: consume("lerobot", str(tmp / "lerobot")), args.repeats)
        runs = iter(range(args.repeats))
        t_lake = median_times(lambda: ingest([str(tmp / "lerobot")], lake=str(tmp / f"lake_lr{next(runs)}"),
                                                      workers=args.workers),
                              args.repeats)
        print(f"lerobot v3.0 ({lr_episodes} episodes x {lr_len} frames, 2 video cameras, 14-dim), wall | per CPU-s:")
        print(f"  connector only      {total / t_conn[0]:10.0f} | {total / t_conn[1]:8.0f} frames/s")
        print(f"  ingest into a lake  {total / t_lake[0]:10.0f} | {total / t_lake[1]:8.0f} frames/s   (goal >= 20,000)")
        steps = synthetic_aloha(tmp / "aloha", episodes=al_episodes, length=al_len)
        t_conn = median_times(lambda: consume("aloha", str(tmp / "aloha")), args.repeats)
        runs = iter(range(args.repeats))
        t_lake = median_times(lambda: ingest([str(tmp / "aloha")], lake=str(tmp / f"lake_al{next(runs)}"),
                                                      workers=args.workers),
                              args.repeats)
        print(f"aloha hdf5 ({al_episodes} episodes x {al_len} steps, 2 JPEG cameras), wall | per CPU-s:")
        print(f"  connector only      {steps / t_conn[0]:10.0f} | {steps / t_conn[1]:8.0f} steps/s")
        print(f"  ingest into a lake  {steps / t_lake[0]:10.0f} | {steps / t_lake[1]:8.0f} steps/s")
        if not args.no_keyframes:
            for line in bench_keyframes(tmp, frames=video_frames_n, repeats=args.repeats):
                print(line)


if __name__ == "__main__":
    main()
