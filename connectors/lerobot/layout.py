"""The LeRobot dataset layout (v2.0, v2.1, v3.0): `meta/` parsed into typed records, without lerobot.

Current lerobot refuses v2.x datasets, and many datasets in the wild are v2.x, so this module reads every
layout itself. It only reads metadata (`info.json`, tasks, episodes); the data parquet is read by the
connector. Reference: formats.md section 3.1 and lerobot `src/lerobot/datasets/utils.py`.
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

INFO_PATH = "meta/info.json"
TASKS_JSONL = "meta/tasks.jsonl"
TASKS_PARQUET = "meta/tasks.parquet"
EPISODES_JSONL = "meta/episodes.jsonl"
EPISODES_DIR = "meta/episodes"
V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class LeRobotFormatError(ValueError):
    """A LeRobot dataset whose metadata is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Feature:
    """One entry of `info.json` `features`, with `names` flattened to one name per dimension (or none)."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: list[str]
    info: dict[str, Any]

    @property
    def dim(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def is_visual(self) -> bool:
        return self.dtype in ("image", "video")

    def image_size(self) -> tuple[int, int]:
        """(height, width) of an image/video feature, from `info` or from the shape and its axis names."""
        if "video.height" in self.info and "video.width" in self.info:
            return int(self.info["video.height"]), int(self.info["video.width"])
        axes = [n.lower() for n in self.names] if len(self.names) == len(self.shape) else []
        if "height" in axes and "width" in axes:
            return self.shape[axes.index("height")], self.shape[axes.index("width")]
        if len(self.shape) == 3:  # channels-first when the first axis is the small one
            return (self.shape[1], self.shape[2]) if self.shape[0] in (1, 3, 4) else (self.shape[0], self.shape[1])
        return 0, 0


@dataclass(frozen=True)
class EpisodeMeta:
    """What `meta/` says about one episode: its tasks, length, data file and video locations."""

    index: int
    tasks: tuple[str, ...]
    length: int | None
    data_file: str
    from_index: int | None = None
    to_index: int | None = None
    videos: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)  # key -> (file, from, to)


@dataclass
class DatasetMeta:
    """The parsed `meta/` of one dataset root."""

    root: str
    version: str
    info: dict[str, Any]
    fps: float
    robot_type: str | None
    features: dict[str, Feature]
    tasks: dict[int, str]
    episodes: dict[int, EpisodeMeta]
    splits: dict[str, tuple[int, int]]

    @property
    def is_v3(self) -> bool:
        return self.version.startswith("v3")

    def split_of(self, episode_index: int) -> str | None:
        for name, (start, stop) in self.splits.items():
            if start <= episode_index < stop:
                return name
        return None

    def data_files(self) -> list[str]:
        """Relative paths of the data parquet files, in episode order, each once."""
        seen: dict[str, None] = {}
        for ep in sorted(self.episodes.values(), key=lambda e: e.index):
            seen.setdefault(ep.data_file, None)
        return list(seen)

    def path(self, relative: str) -> str:
        return join(self.root, relative)


def join(root: str, relative: str) -> str:
    """Join a dataset root (local path or URI) with a relative path inside it."""
    return posixpath.join(root.rstrip("/"), relative)


def feature_names(raw: Any, shape: tuple[int, ...]) -> list[str]:
    """One name per dimension from every `names` form found in the wild, or [] when they do not fit.

    Forms: `["a", "b"]`; nested `[["a", "b"]]` (Unitree G1); `{"motors": ["a", "b"]}` (older datasets,
    several keys concatenated in order); `null`. Axis names of images (`["height", "width", "channel"]`)
    do not describe dimensions, so they are dropped by the length check.
    """
    flat: list[str] = []

    def walk(node: Any) -> None:
        if node is None:
            return
        if isinstance(node, str):
            flat.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        else:
            flat.append(str(node))

    walk(raw)
    dim = math.prod(shape) if shape else 1
    return flat if len(flat) == dim else []


def _parse_feature(key: str, raw: Any, where: str) -> Feature:
    if not isinstance(raw, dict) or "dtype" not in raw:
        raise LeRobotFormatError(f"{where}: feature {key!r} has no dtype (got {raw!r}); each feature needs "
                                 "{{dtype, shape, names}}")
    shape_raw = raw.get("shape") or []
    try:
        shape = tuple(int(s) for s in shape_raw)
    except (TypeError, ValueError):
        raise LeRobotFormatError(f"{where}: feature {key!r} has a non-integer shape {shape_raw!r}") from None
    info = raw.get("info") or {}
    return Feature(key=key, dtype=str(raw["dtype"]), shape=shape, names=feature_names(raw.get("names"), shape),
                   info=info if isinstance(info, dict) else {})


def _parse_splits(raw: Any) -> dict[str, tuple[int, int]]:
    splits: dict[str, tuple[int, int]] = {}
    if not isinstance(raw, dict):
        return splits
    for name, spec in raw.items():
        if isinstance(spec, str) and ":" in spec:
            start, _, stop = spec.partition(":")
            try:
                splits[str(name)] = (int(start or 0), int(stop) if stop else 1 << 62)
            except ValueError:
                continue
    return splits


def _read_json(fs: fsspec.AbstractFileSystem, path: str) -> Any:
    with fs.open(path, "rb") as fh:
        return json.loads(fh.read())


def _read_jsonl(fs: fsspec.AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    rows = []
    with fs.open(path, "rb") as fh:
        for n, line in enumerate(fh.read().decode().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LeRobotFormatError(f"{path} line {n} is not JSON ({exc.msg})") from None
    return rows


def _read_tasks(fs: fsspec.AbstractFileSystem, root: str) -> dict[int, str]:
    """Tasks from `tasks.jsonl` (v2.x) or `tasks.parquet` (v3.0, the string may be only the pandas index)."""
    jsonl, parquet = join(root, TASKS_JSONL), join(root, TASKS_PARQUET)
    if fs.exists(parquet):
        with fs.open(parquet, "rb") as fh:
            table = pq.read_table(fh)
        names = table.column_names
        text_col = "task" if "task" in names else next(
            (c for c in names if (c != "task_index" and pa.types.is_string(table.schema.field(c).type))
             or c == "__index_level_0__"), None)
        if "task_index" not in names or text_col is None:
            raise LeRobotFormatError(f"{parquet} has columns {names}; expected task_index and a task string "
                                     "(column `task` or the pandas index)")
        return {int(i): str(t) for i, t in zip(table["task_index"].to_pylist(), table[text_col].to_pylist(),
                                                strict=True)}
    if fs.exists(jsonl):
        return {int(row["task_index"]): str(row["task"]) for row in _read_jsonl(fs, jsonl)}
    return {}


_V3_EPISODE_COLUMNS = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                       "dataset_from_index", "dataset_to_index")


def _read_v3_episodes(fs: fsspec.AbstractFileSystem, root: str, info: dict[str, Any],
                      video_keys: list[str]) -> dict[int, EpisodeMeta]:
    directory = join(root, EPISODES_DIR)
    files = sorted(p for p in fs.find(directory) if p.endswith(".parquet")) if fs.exists(directory) else []
    if not files:
        raise LeRobotFormatError(f"{directory} holds no episodes parquet; a v3.0 dataset lists its episodes there "
                                 "(meta/episodes/chunk-000/file-000.parquet)")
    data_template = info.get("data_path") or V3_DATA_PATH
    video_template = info.get("video_path") or V3_VIDEO_PATH
    episodes: dict[int, EpisodeMeta] = {}
    for path in files:
        with fs.open(path, "rb") as fh:
            available = pq.read_schema(fh).names
            wanted = [c for c in available if c in _V3_EPISODE_COLUMNS
                      or (c.startswith("videos/") and not c.startswith("stats/"))]
            fh.seek(0)
            table = pq.read_table(fh, columns=wanted)
        missing = [c for c in ("episode_index", "data/chunk_index", "data/file_index") if c not in available]
        if missing:
            raise LeRobotFormatError(f"{path} lacks column(s) {missing}; is this a v3.0 episodes parquet?")
        for row in table.to_pylist():
            index = int(row["episode_index"])
            videos = {}
            for key in video_keys:
                chunk, file_ = row.get(f"videos/{key}/chunk_index"), row.get(f"videos/{key}/file_index")
                if chunk is None or file_ is None:
                    continue
                rel = video_template.format(video_key=key, chunk_index=int(chunk), file_index=int(file_))
                to_ts = row.get(f"videos/{key}/to_timestamp")
                videos[key] = (rel, float(row.get(f"videos/{key}/from_timestamp") or 0.0),
                               None if to_ts is None else float(to_ts))
            episodes[index] = EpisodeMeta(
                index=index, tasks=tuple(row.get("tasks") or ()),
                length=None if row.get("length") is None else int(row["length"]),
                data_file=data_template.format(chunk_index=int(row["data/chunk_index"]),
                                               file_index=int(row["data/file_index"])),
                from_index=row.get("dataset_from_index"), to_index=row.get("dataset_to_index"), videos=videos)
    return episodes


def _read_v2_episodes(fs: fsspec.AbstractFileSystem, root: str, info: dict[str, Any],
                      video_keys: list[str]) -> dict[int, EpisodeMeta]:
    path = join(root, EPISODES_JSONL)
    if not fs.exists(path):
        raise LeRobotFormatError(f"{path} is missing; a v2.x dataset lists its episodes there")
    chunks_size = int(info.get("chunks_size") or 1000)
    data_template = info.get("data_path") or V2_DATA_PATH
    video_template = info.get("video_path") or V2_VIDEO_PATH
    episodes: dict[int, EpisodeMeta] = {}
    for row in _read_jsonl(fs, path):
        if "episode_index" not in row:
            raise LeRobotFormatError(f"{path}: a line has no episode_index: {row!r}")
        index = int(row["episode_index"])
        chunk = index // chunks_size
        videos = {key: (video_template.format(episode_chunk=chunk, video_key=key, episode_index=index), 0.0, None)
                  for key in video_keys}
        episodes[index] = EpisodeMeta(
            index=index, tasks=tuple(row.get("tasks") or ()),
            length=None if row.get("length") is None else int(row["length"]),
            data_file=data_template.format(episode_chunk=chunk, episode_index=index), videos=videos)
    return episodes


def looks_like_dataset(uri: str) -> bool:
    """Cheap check used by `probe`: a root with `meta/info.json` naming a codebase_version."""
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        path = join(root, INFO_PATH)
        if not fs.isfile(path):
            return False
        info = _read_json(fs, path)
        return isinstance(info, dict) and str(info.get("codebase_version", "")).startswith("v")
    except Exception:
        return False


def find_datasets(uri: str, *, max_depth: int = 2) -> list[str]:
    """Dataset roots at `uri`: itself, or datasets up to `max_depth` directories below it (e.g. a Hugging Face
    cache `lerobot/<user>/<repo>`, or an export holding one dataset per source), sorted by path."""
    if looks_like_dataset(uri):
        return [uri]
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        if not fs.isdir(root):
            return []
        found: list[str] = []
        level = [uri.rstrip("/")]
        for _ in range(max_depth):
            nxt: list[str] = []
            for parent in level:
                _, path = fsspec.core.url_to_fs(parent)
                for child in sorted(fs.ls(path, detail=False)):
                    if not fs.isdir(child):
                        continue
                    child_uri = join(parent, posixpath.basename(child.rstrip("/")))
                    if looks_like_dataset(child_uri):
                        found.append(child_uri)
                    else:
                        nxt.append(child_uri)
            level = nxt[:500]
        return sorted(found)
    except Exception:  # used by probe, which must never raise on foreign input
        return []


def load_meta(uri: str) -> DatasetMeta:
    """Parse `meta/` of the dataset at `uri` (cached per content signature of info.json).

    Raises:
        LeRobotFormatError: info.json missing, unreadable or without features; unsupported version; no
            episodes metadata.
    """
    fs, root = fsspec.core.url_to_fs(uri)
    path = join(root, INFO_PATH)
    try:
        stat = fs.info(path)
    except FileNotFoundError:
        raise LeRobotFormatError(f"{uri} is not a LeRobot dataset: {INFO_PATH} is missing") from None
    signature = f"{stat.get('size')}:{stat.get('mtime') or stat.get('LastModified') or stat.get('created')}"
    return _load_meta(uri, signature)


@lru_cache(maxsize=16)
def _load_meta(uri: str, signature: str) -> DatasetMeta:
    fs, root = fsspec.core.url_to_fs(uri)
    path = join(root, INFO_PATH)
    try:
        info = _read_json(fs, path)
    except json.JSONDecodeError as exc:
        raise LeRobotFormatError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(info, dict):
        raise LeRobotFormatError(f"{path} must hold a JSON object")
    version = str(info.get("codebase_version") or "")
    if version not in SUPPORTED_VERSIONS:
        raise LeRobotFormatError(f"{path}: codebase_version {version or '(none)'!r} is not supported (supported: "
                                 f"{', '.join(SUPPORTED_VERSIONS)}); convert older datasets with lerobot's "
                                 "convert_dataset_v1_to_v2 script first")
    raw_features = info.get("features")
    if not isinstance(raw_features, dict) or not raw_features:
        raise LeRobotFormatError(f"{path} declares no `features`; without them the columns cannot be interpreted. "
                                 "Restore info.json from the dataset's original release")
    features = {key: _parse_feature(key, raw, path) for key, raw in raw_features.items()}
    try:
        fps = float(info.get("fps") or 0)
    except (TypeError, ValueError):
        fps = 0.0
    if fps <= 0:
        raise LeRobotFormatError(f"{path}: fps must be positive, got {info.get('fps')!r}")
    video_keys = [k for k, f in features.items() if f.dtype == "video"]
    if version.startswith("v3"):
        episodes = _read_v3_episodes(fs, root, info, video_keys)
    else:
        episodes = _read_v2_episodes(fs, root, info, video_keys)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    absolute_root = root if protocol in ("file", "local") else f"{protocol}://{root}"
    return DatasetMeta(root=absolute_root, version=version, info=info, fps=fps,
                       robot_type=info.get("robot_type"), features=features, tasks=_read_tasks(fs, root),
                       episodes=episodes, splits=_parse_splits(info.get("splits")))
