"""LeRobot datasets (v2.0, v2.1, v3.0) -> `schemas.Episode`, one data parquet file per work unit.

Video features stay in their mp4 files: each step carries a reference (`video_uri` + `from_timestamp +
timestamp`), decoded on demand by `curate.media`. A camera whose mp4 is missing keeps the episode, marked
`Camera(missing=True)` with the quality flag `camera_missing:<name>`; an mp4 that cannot be opened rejects
the episode (a `BadEpisode` that names the file).

Options (`SourceOptions.extra`):
- `missing_data`: "skip" (default; partial downloads are common) or "report" (a `BadEpisode` per episode
  listed in meta/ whose data parquet is absent).
- `video_check`: "open" (default: open each mp4 once and check its codec has a decoder), "first_frame"
  (also decode its first frame), "none".
- `action_kind`: the `Space.kind` of the action (default "joint_pos", what LeRobot recorders write).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, ClassVar

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.base import BadEpisode, Connector, SourceOptions
from connectors.lerobot.layout import (
    FRAME_COLUMNS,
    DatasetMeta,
    EpisodeMeta,
    LeRobotFormatError,
    find_datasets,
    load_meta,
    looks_like_dataset,
)
from connectors.registry import register
from schemas import Camera, Embodiment, Episode, Frame, Source, Space, Step, episode_id_for, fingerprint_of
from schemas.arrow import construct_trusted

UNIT_SEP = "::"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
CAMERA_PREFIX = "observation.images."
MISSING_DATA_POLICIES = ("skip", "report")
VIDEO_CHECKS = ("open", "first_frame", "none")


def camera_name(key: str) -> str:
    """`observation.images.cam_high` -> `cam_high` (other visual keys keep their full name)."""
    return key[len(CAMERA_PREFIX):] if key.startswith(CAMERA_PREFIX) else key


def embodiment_kind(robot_type: str | None) -> str:
    """A best guess of the embodiment kind from lerobot's `robot_type`."""
    name = (robot_type or "").lower()
    if any(k in name for k in ("g1", "h1", "humanoid", "unitree", "gr1")):
        return "humanoid"
    if any(k in name for k in ("lekiwi", "stretch", "mobile")):
        return "mobile_manipulator"
    if any(k in name for k in ("aloha", "bimanual", "bi_")):
        return "bimanual"
    return "arm" if name else "other"




def _image_format(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"\x89PNG":
        return "png"
    return None


def _vectors(table: pa.Table, key: str, dim: int) -> np.ndarray | None:
    """A (rows, dim) float32 array of a vector column (fixed_size_list, list, or scalar)."""
    if key not in table.column_names:
        return None
    column = table[key].combine_chunks()
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type) or pa.types.is_large_list(
            column.type):
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        width = values.size // max(1, len(column)) if len(column) else dim
        return values.reshape(len(column), width)
    return column.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)


@register
class LeRobotConnector(Connector):
    """Reads LeRobot v2.0/v2.1 (per-episode parquet + mp4) and v3.0 (packed parquet + concatenated mp4)."""

    name: ClassVar[str] = "lerobot"
    description: ClassVar[str] = "LeRobot datasets v2.0, v2.1 and v3.0 (parquet + mp4 video references)"
    version: ClassVar[str] = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {"1.0.0": "v2.0, v2.1 and v3.0 layouts; video frames by reference."}

    def probe(self, uri: str) -> bool:
        return bool(find_datasets(uri.split(UNIT_SEP)[0]))

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        """One unit per data parquet file that exists (v2.x: one per episode; v3.0: many episodes per file), over
        the dataset at `uri` or every dataset below it.

        A dataset whose meta/ cannot be read is one unit, which reports why as a `BadEpisode`.
        """
        units: list[str] = []
        for root in find_datasets(uri) or [uri]:
            try:
                meta = load_meta(root)
            except LeRobotFormatError:
                units.append(root)
                continue
            fs, _ = fsspec.core.url_to_fs(meta.root)
            present = [rel for rel in meta.data_files() if fs.exists(meta.path(rel))]
            units += [f"{root}{UNIT_SEP}{rel}" for rel in present]
            if _policy(options, "missing_data", MISSING_DATA_POLICIES) == "report":
                units += [f"{root}{UNIT_SEP}{rel}" for rel in meta.data_files() if rel not in present]
        return units

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        root, _, relative = unit.partition(UNIT_SEP)
        if not relative and not looks_like_dataset(root) and find_datasets(root):
            for sub_unit in self.list_units(root, options):  # a directory of datasets, read whole
                yield from self.episodes(sub_unit, options)
            return
        try:
            meta = load_meta(root)
        except LeRobotFormatError as exc:
            yield BadEpisode(file=root, record="*", reason=str(exc))
            return
        files = [relative] if relative else meta.data_files()
        emitted = 0
        video_status: dict[str, str | None] = {}
        for rel in files:
            for item in self._episodes_of_file(meta, rel, options, video_status):
                yield item
                emitted += 1
                if options.limit is not None and emitted >= options.limit:
                    return

    # -- one data file --------------------------------------------------------------------------------

    def _episodes_of_file(self, meta: DatasetMeta, rel: str, options: SourceOptions,
                          video_status: dict[str, str | None]) -> Iterator[Episode | BadEpisode]:
        path = meta.path(rel)
        listed = sorted((e for e in meta.episodes.values() if e.data_file == rel), key=lambda e: e.index)
        fs, _ = fsspec.core.url_to_fs(path)
        if not fs.exists(path):
            if _policy(options, "missing_data", MISSING_DATA_POLICIES) == "report":
                for ep in listed:
                    yield BadEpisode(file=path, record=f"episode_{ep.index:06d}",
                                     reason="data parquet is missing (listed in meta/ but not downloaded)")
            return
        try:
            table = self._read_table(fs, path, meta)
        except (OSError, pa.ArrowException, LeRobotFormatError) as exc:
            for ep in listed or [EpisodeMeta(index=-1, tasks=(), length=None, data_file=rel)]:
                yield BadEpisode(file=path, record=f"episode_{ep.index:06d}",
                                 reason=f"data parquet cannot be read: {exc}")
            return
        if "episode_index" not in table.column_names:
            yield BadEpisode(file=path, record="*", reason="data parquet has no episode_index column")
            return
        ep_col = table["episode_index"].to_numpy()
        order = np.argsort(ep_col, kind="stable")
        if not np.all(order == np.arange(len(order))):
            table, ep_col = table.take(pa.array(order)), ep_col[order]
        boundaries = np.flatnonzero(np.diff(ep_col)) + 1
        starts = np.concatenate([[0], boundaries]) if len(ep_col) else np.array([], dtype=np.int64)
        ends = np.concatenate([boundaries, [len(ep_col)]]) if len(ep_col) else np.array([], dtype=np.int64)
        wanted = set(options.splits)
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            index = int(ep_col[start])
            ep_meta = meta.episodes.get(index) or EpisodeMeta(index=index, tasks=(), length=None, data_file=rel)
            split = meta.split_of(index)
            if wanted and split not in wanted:
                continue
            try:
                yield self._episode(meta, ep_meta, table.slice(start, end - start), path, split, options,
                                    video_status)
            except (ValueError, LeRobotFormatError) as exc:
                yield BadEpisode(file=path, record=f"episode_{index:06d}", reason=str(exc))

    def _read_table(self, fs: fsspec.AbstractFileSystem, path: str, meta: DatasetMeta) -> pa.Table:
        with fs.open(path, "rb") as fh:
            schema = pq.read_schema(fh)
            fh.seek(0)
            wanted = [name for name in schema.names
                      if name in FRAME_COLUMNS or name in meta.features or name in ("next.reward", "next.done")]
            return pq.read_table(fh, columns=wanted)

    def _episode(self, meta: DatasetMeta, ep_meta: EpisodeMeta, table: pa.Table, path: str, split: str | None,
                 options: SourceOptions, video_status: dict[str, str | None]) -> Episode | BadEpisode:
        n = table.num_rows
        key = f"episode_{ep_meta.index:06d}"
        flags: list[str] = []
        features = meta.features
        action_feature = features.get(ACTION_KEY)
        actions = _vectors(table, ACTION_KEY, action_feature.dim if action_feature else 0)
        if actions is None:
            flags.append("no_actions")
        state_feature = features.get(STATE_KEY)
        states = _vectors(table, STATE_KEY, state_feature.dim if state_feature else 0)
        if ep_meta.length is not None and ep_meta.length != n:
            flags.append("length_mismatch")
        timestamps = (table["timestamp"].to_numpy().astype(np.float64) if "timestamp" in table.column_names
                      else np.arange(n, dtype=np.float64) / meta.fps)
        task_idx = table["task_index"].to_numpy() if "task_index" in table.column_names else None
        rewards = table["next.reward"].to_numpy(zero_copy_only=False) if "next.reward" in table.column_names \
            else None
        dones = table["next.done"].to_numpy(zero_copy_only=False) if "next.done" in table.column_names else None

        cameras: list[Camera] = []
        video_refs: list[tuple[str, str, float]] = []  # (camera, uri, from_timestamp)
        image_columns: list[tuple[str, list[Any]]] = []
        for fkey, feature in features.items():
            if not feature.is_visual:
                continue
            cam = camera_name(fkey)
            height, width = feature.image_size()
            kind = "depth" if feature.info.get("video.is_depth_map") else "rgb"
            if feature.dtype == "video":
                ref = ep_meta.videos.get(fkey)
                uri = meta.path(ref[0]) if ref else None
                status = self._video_status(uri, options, video_status) if uri else "missing"
                if status == "missing":
                    cameras.append(Camera(name=cam, kind=kind, height=height, width=width, missing=True))
                    flags.append(f"camera_missing:{cam}")
                    continue
                if status is not None:
                    return BadEpisode(file=uri or path, record=key,
                                      reason=f"video of camera {cam!r} is undecodable: {status}; re-download or "
                                             "re-encode this mp4 (other episodes are unaffected)")
                cameras.append(Camera(name=cam, kind=kind, height=height, width=width))
                video_refs.append((cam, uri, ref[1]))
                duration = video_status.get(f"{uri}#duration")
                if duration and n and ref[1] + float(timestamps[-1]) > float(duration) + 1.5 / meta.fps:
                    flags.append(f"video_short:{cam}")
            elif fkey in table.column_names:
                cameras.append(Camera(name=cam, kind=kind, height=height, width=width))
                image_columns.append((cam, table[fkey].to_pylist()))
            else:
                cameras.append(Camera(name=cam, kind=kind, height=height, width=width, missing=True))
                flags.append(f"camera_missing:{cam}")

        action_rows = actions.tolist() if actions is not None else None
        state_rows = states.tolist() if states is not None else None
        ts_rows = timestamps.tolist()
        tasks = meta.tasks
        episode_tasks: list[str] = []
        step_tasks: list[str | None] = [None] * n
        if task_idx is not None:
            for i, t in enumerate(task_idx.tolist()):
                text = tasks.get(int(t))
                step_tasks[i] = text
                if text is not None and text not in episode_tasks:
                    episode_tasks.append(text)
        for text in ep_meta.tasks:
            if text not in episode_tasks:
                episode_tasks.append(text)
        digest = hashlib.sha256()
        steps: list[Step] = []
        # Steps and video frames are built without re-validation: every value comes from typed Arrow columns
        # (float32 vectors, float timestamps) and video frames always carry their uri, which is what the
        # validators check. This is most of the connector's speed (see bench/bench_teleop_ingest.py).
        video_times = [(cam, uri, np.round(from_ts + timestamps, 6).tolist()) for cam, uri, from_ts in video_refs]
        for i in range(n):
            frames = [construct_trusted(Frame, {"camera": cam, "format": "video", "data": None,
                                                      "video_uri": uri, "video_timestamp_s": times[i]})
                      for cam, uri, times in video_times]
            for cam, column in image_columns:
                frame = self._image_frame(meta, cam, column[i], digest)
                if frame is not None:
                    frames.append(frame)
            steps.append(construct_trusted(Step, {
                "index": i, "timestamp_s": ts_rows[i],
                "action": action_rows[i] if action_rows is not None else [],
                "state": state_rows[i] if state_rows is not None else None,
                "reward": None if rewards is None else float(rewards[i]),
                "is_first": i == 0, "is_last": i == n - 1,
                "is_terminal": bool(dones[i]) if dones is not None else False,
                "language": step_tasks[i], "discrete_action": None, "action_args": None, "frames": frames}))
        for array in (actions, states, timestamps):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
        fingerprint = fingerprint_of(meta.version, key, digest.hexdigest(),
                                     *(f"{c}|{u}|{f}" for c, u, f in video_refs), *flags)
        dataset = options.dataset or meta.root.rstrip("/").rsplit("/", 1)[-1]
        action_dim = actions.shape[1] if actions is not None else 0
        action_names = action_feature.names if action_feature and len(action_feature.names) == action_dim else []
        state_space = None
        if states is not None:
            names = state_feature.names if state_feature and len(state_feature.names) == states.shape[1] else []
            state_space = Space(kind="joint_pos", dim=int(states.shape[1]), names=names)
        duration = float(ts_rows[-1] - ts_rows[0]) + 1.0 / meta.fps if n else 0.0
        return Episode(
            episode_id=episode_id_for(dataset, key),
            dataset=dataset,
            source=Source(format=self.name, uri=meta.root, key=key, fingerprint=fingerprint),
            embodiment=Embodiment(robot=meta.robot_type or "unknown", kind=embodiment_kind(meta.robot_type),
                                  is_sim=bool(options.extra.get("is_sim", False))),
            action_space=Space(kind=str(options.extra.get("action_kind", "joint_pos")), dim=int(action_dim),
                               names=action_names),
            state_space=state_space,
            control_hz=meta.fps,
            instruction=episode_tasks[0] if episode_tasks else None,
            instructions_alt=episode_tasks[1:],
            cameras=cameras,
            n_steps=n,
            duration_s=max(0.0, duration),
            split=split,
            quality_flags=flags,
            metadata={"lerobot": {"codebase_version": meta.version, "episode_index": ep_meta.index,
                                  "robot_type": meta.robot_type, "data_file": path,
                                  "length_in_meta": ep_meta.length,
                                  "videos": {camera_name(k): {"file": v[0], "from_timestamp": v[1],
                                                              "to_timestamp": v[2]}
                                             for k, v in ep_meta.videos.items()},
                                  "other_features": sorted(k for k, f in features.items()
                                                           if k not in (ACTION_KEY, STATE_KEY, *FRAME_COLUMNS)
                                                           and not f.is_visual)}},
            steps=steps,
        )

    def _image_frame(self, meta: DatasetMeta, cam: str, cell: Any, digest: Any) -> Frame | None:
        """An `image` feature cell (HF `datasets.Image`: struct{bytes, path}) as a pass-through Frame."""
        if cell is None:
            return None
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data and isinstance(cell, dict) and cell.get("path"):
            rel = str(cell["path"])
            with fsspec.open(rel if "://" in rel or rel.startswith("/") else meta.path(rel), "rb") as fh:
                data = fh.read()
        if not data:
            return None
        fmt = _image_format(data)
        if fmt is None:
            raise ValueError(f"image of camera {cam!r} is neither JPEG nor PNG (starts with {data[:8]!r})")
        digest.update(data)
        return Frame(camera=cam, format=fmt, data=data)

    def _video_status(self, uri: str, options: SourceOptions, cache: dict[str, str | None]) -> str | None:
        """None when the mp4 is usable, "missing" when absent, else the reason it cannot be decoded."""
        if uri in cache:
            return cache[uri]
        fs, path = fsspec.core.url_to_fs(uri)
        check = _policy(options, "video_check", VIDEO_CHECKS)
        if not fs.exists(path):
            status: str | None = "missing"
        elif check == "none":
            status = None
        else:
            status, duration = _check_video(uri, decode_first=check == "first_frame")
            cache[f"{uri}#duration"] = None if duration is None else str(duration)
        cache[uri] = status
        return status


def _check_video(uri: str, *, decode_first: bool) -> tuple[str | None, float | None]:
    """(None, duration in s) for a usable mp4, else (the reason it cannot be decoded, None). Headers only,
    plus one frame when `decode_first`."""
    import av

    try:
        with fsspec.open(uri, "rb") as fh, av.open(fh) as container:
            if not container.streams.video:
                return "the file has no video stream", None
            stream = container.streams.video[0]
            if stream.codec_context is None:
                return f"no decoder for codec {stream.codec.name!r} in this PyAV build", None
            if decode_first:
                for _ in container.decode(stream):
                    break
                else:
                    return "no frame could be decoded", None
            if stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = container.duration / 1e6 if container.duration else None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}", None
    return None, duration


def _policy(options: SourceOptions, name: str, allowed: tuple[str, ...]) -> str:
    value = str(options.extra.get(name, allowed[0]))
    if value not in allowed:
        raise ValueError(f"option {name}={value!r} is not one of {', '.join(allowed)}")
    return value
