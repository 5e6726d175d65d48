"""A thorough checker of the LeRobot v3.0 layout, for exports and for datasets from elsewhere.

`check_lerobot_v3(root)` returns a list of problems (empty = the dataset is consistent): meta/info.json
fields and totals, tasks.parquet (task string as the pandas index or a `task` column), the episodes parquet
(contiguous episode and frame indices, data and video locations, per-episode stats), the packed data parquet
(feature columns, fixed-size vectors, timestamps = frame_index / fps, global index), the mp4 files (they open,
hold enough frames, have the declared size) and meta/stats.json. It is what tests use to hold our export to
the format `lerobot`'s LeRobotDataset reads (see ../shared/formats.md section 3.1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

INFO_KEYS = ("codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
             "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path",
             "features")
DTYPES = ("float32", "float64", "int64", "int32", "bool", "string", "image", "video")
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
STAT_KEYS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
VIDEO_INFO = ("video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map", "video.fps",
              "video.channels", "has_audio")


def check_lerobot_v3(root: str | Path, *, decode_videos: bool = True) -> list[str]:
    """Every inconsistency found in the LeRobot v3.0 dataset at `root` (empty list = valid)."""
    root = Path(root)
    problems: list[str] = []
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        return [f"{info_path} is missing"]
    info: dict[str, Any] = json.loads(info_path.read_text())
    problems += [f"info.json lacks {k!r}" for k in INFO_KEYS if k not in info]
    if problems:
        return problems
    if info["codebase_version"] != "v3.0":
        problems.append(f"codebase_version is {info['codebase_version']!r}, not 'v3.0'")
    fps = float(info["fps"])
    if fps <= 0:
        problems.append(f"fps must be positive, got {fps}")
    features: dict[str, dict[str, Any]] = info["features"]
    for key, feat in features.items():
        if feat.get("dtype") not in DTYPES:
            problems.append(f"feature {key!r} has dtype {feat.get('dtype')!r}")
        if not isinstance(feat.get("shape"), list):
            problems.append(f"feature {key!r} has no shape list")
        if feat.get("dtype") == "video":
            problems += [f"video feature {key!r} info lacks {k!r}" for k in VIDEO_INFO if k not in feat.get("info", {})]
    for col in FRAME_COLUMNS:
        if col not in features:
            problems.append(f"features lack {col!r}")
    videos = [k for k, f in features.items() if f.get("dtype") == "video"]
    if videos and not info["video_path"]:
        problems.append("video features exist but video_path is null")
    n_eps, n_frames = int(info["total_episodes"]), int(info["total_frames"])
    if info["splits"].get("train") != f"0:{n_eps}":
        problems.append(f"splits.train is {info['splits'].get('train')!r}, expected '0:{n_eps}'")

    # tasks
    tasks_path = root / "meta" / "tasks.parquet"
    tasks: dict[int, str] = {}
    if not tasks_path.exists():
        problems.append("meta/tasks.parquet is missing")
    else:
        t = pq.read_table(tasks_path)
        names = t.column("task").to_pylist() if "task" in t.column_names else (
            t.column("__index_level_0__").to_pylist() if "__index_level_0__" in t.column_names else None)
        if names is None or "task_index" not in t.column_names:
            problems.append("tasks.parquet needs task_index and the task string (pandas index or `task` column)")
        else:
            tasks = dict(zip(t.column("task_index").to_pylist(), names, strict=True))
            if sorted(tasks) != list(range(len(tasks))):
                problems.append(f"task_index values are not 0..{len(tasks) - 1}")
        if len(tasks) != int(info["total_tasks"]):
            problems.append(f"total_tasks is {info['total_tasks']} but tasks.parquet has {len(tasks)}")

    # episodes
    ep_files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not ep_files:
        return [*problems, "meta/episodes/chunk-*/file-*.parquet is missing"]
    episodes = pa.concat_tables([pq.read_table(p) for p in ep_files]).to_pylist()
    episodes.sort(key=lambda r: r["episode_index"])
    if [r["episode_index"] for r in episodes] != list(range(n_eps)):
        problems.append(f"episode_index is not 0..{n_eps - 1} (total_episodes)")
    expected_from = 0
    for r in episodes:
        e = r["episode_index"]
        for col in ("tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                    "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"):
            if col not in r:
                problems.append(f"episode {e}: column {col!r} missing")
        if r.get("dataset_from_index") != expected_from:
            problems.append(f"episode {e}: dataset_from_index {r.get('dataset_from_index')} != {expected_from}")
        if r.get("dataset_to_index", 0) - r.get("dataset_from_index", 0) != r.get("length"):
            problems.append(f"episode {e}: to - from != length {r.get('length')}")
        expected_from = r.get("dataset_to_index", expected_from)
        if any(task not in tasks.values() for task in r.get("tasks") or []):
            problems.append(f"episode {e}: a task is not in tasks.parquet")
        data_file = root / info["data_path"].format(chunk_index=r.get("data/chunk_index"),
                                                    file_index=r.get("data/file_index"))
        if not data_file.exists():
            problems.append(f"episode {e}: data file {data_file.relative_to(root)} is missing")
        for key in videos:
            cols = [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
            if any(c not in r for c in cols):
                problems.append(f"episode {e}: video columns of {key!r} missing")
                continue
            span = r[cols[3]] - r[cols[2]]
            if abs(span - r["length"] / fps) > 1.5 / fps:
                problems.append(f"episode {e}: {key} spans {span:.3f}s but has {r['length']} frames at {fps} fps")
            path = root / info["video_path"].format(video_key=key, chunk_index=r[cols[0]], file_index=r[cols[1]])
            if not path.exists():
                problems.append(f"episode {e}: video {path.relative_to(root)} is missing")
        for key, feat in features.items():
            if feat["dtype"] in ("string",):
                continue
            for stat in STAT_KEYS:
                if f"stats/{key}/{stat}" not in r:
                    problems.append(f"episode {e}: stats/{key}/{stat} missing")
                    break
    if expected_from != n_frames:
        problems.append(f"episodes cover {expected_from} frames but total_frames is {n_frames}")

    # data
    data_files = sorted((root / "data").glob("chunk-*/file-*.parquet"))
    tables = [pq.read_table(p) for p in data_files]
    for p, t in zip(data_files, tables, strict=True):
        if b"huggingface" not in (t.schema.metadata or {}):
            problems.append(f"{p.relative_to(root)} lacks the `huggingface` features metadata")
        for key, feat in features.items():
            if feat["dtype"] == "video":
                if key in t.column_names:
                    problems.append(f"{p.relative_to(root)}: video feature {key!r} must not be a parquet column")
                continue
            if key not in t.column_names:
                problems.append(f"{p.relative_to(root)}: column {key!r} missing")
                continue
            typ = t.schema.field(key).type
            vector = feat["dtype"] in ("float32", "float64") and feat["shape"] != [1]
            if vector and (not pa.types.is_fixed_size_list(typ) or typ.list_size != feat["shape"][0]):
                problems.append(f"{p.relative_to(root)}: {key!r} is {typ}, expected fixed_size_list{feat['shape']}")
            if feat["dtype"] == "image" and not (pa.types.is_struct(typ) and typ.get_field_index("bytes") >= 0):
                problems.append(f"{p.relative_to(root)}: image {key!r} must be struct{{bytes, path}}, got {typ}")
    if tables:
        data = pa.concat_tables(tables)
        if data.num_rows != n_frames:
            problems.append(f"data has {data.num_rows} rows but total_frames is {n_frames}")
        index = data.column("index").to_numpy()
        if not np.array_equal(np.sort(index), np.arange(n_frames)):
            problems.append("index is not 0..total_frames-1")
        fi = data.column("frame_index").to_numpy()
        ts = data.column("timestamp").to_numpy()
        if not np.allclose(ts, fi / fps, atol=1e-4):
            problems.append("timestamp != frame_index / fps")
        if data.schema.field("timestamp").type != pa.float32():
            problems.append("timestamp must be float32")
        ep = data.column("episode_index").to_numpy()
        for r in episodes[:100000]:
            rows = np.flatnonzero(ep == r["episode_index"])
            if len(rows) != r["length"] or not np.array_equal(fi[rows], np.arange(r["length"])):
                problems.append(f"episode {r['episode_index']}: frame_index rows are not 0..{r['length'] - 1}")
                break
        if tasks and not set(data.column("task_index").to_pylist()) <= set(tasks):
            problems.append("task_index in data refers to a task not in tasks.parquet")
    elif n_frames:
        problems.append("no data/chunk-*/file-*.parquet files")

    # videos
    if decode_videos and videos:
        import av

        for key in videos:
            need: dict[Path, float] = {}
            for r in episodes:
                path = root / info["video_path"].format(video_key=key, chunk_index=r[f"videos/{key}/chunk_index"],
                                                        file_index=r[f"videos/{key}/file_index"])
                need[path] = max(need.get(path, 0.0), r[f"videos/{key}/to_timestamp"])
            for path, to_ts in need.items():
                if not path.exists():
                    continue
                try:
                    with av.open(str(path)) as c:
                        s = c.streams.video[0]
                        frames = sum(1 for _ in c.decode(s))
                        h, w = s.codec_context.height, s.codec_context.width
                except Exception as exc:
                    problems.append(f"{path.relative_to(root)} does not decode: {exc}")
                    continue
                if frames + 1 < round(to_ts * fps):
                    problems.append(f"{path.relative_to(root)} has {frames} frames but episodes reach {to_ts:.3f}s")
                declared = features[key]["info"]
                if (h, w) != (declared["video.height"], declared["video.width"]):
                    problems.append(f"{path.relative_to(root)} is {w}x{h}, info says "
                                    f"{declared['video.width']}x{declared['video.height']}")

    # global stats
    stats_path = root / "meta" / "stats.json"
    if not stats_path.exists():
        problems.append("meta/stats.json is missing")
    else:
        stats = json.loads(stats_path.read_text())
        for key, feat in features.items():
            if feat["dtype"] == "string":
                continue
            if key not in stats:
                problems.append(f"stats.json lacks {key!r}")
            else:
                problems += [f"stats.json {key!r} lacks {s!r}" for s in STAT_KEYS if s not in stats[key]]
    return problems
