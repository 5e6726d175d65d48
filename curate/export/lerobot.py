"""LeRobot v3.0 export: one LeRobot dataset per source dataset under `<out>/<dataset>/`.

LeRobot needs one fps and one feature set per dataset, and a mixture usually spans robots with different
action spaces and cameras, so each dataset of the mixture becomes its own LeRobot dataset (load one with
`LeRobotDataset(repo_id, root=out/<dataset>)`, several with a weighted sampler over mixture_weights.json).

Layout written (as `lerobot` v3.0 writes it, see docs/export.md)::

    meta/info.json  meta/stats.json  meta/tasks.parquet  meta/episodes/chunk-000/file-000.parquet
    data/chunk-000/file-000.parquet                      packed frames, many episodes per file
    videos/observation.images.<cam>/chunk-000/file-000.mp4   concatenated episodes (cameras="video")

Cameras: "video" (default) encodes JPEG/PNG frames to H.264 (libx264, yuv420p) and passes a source video
through unchanged when an episode's frames are consecutive frames of one file; "image" stores the encoded
JPEG/PNG bytes in the parquet as `image` features (no re-encoding at all).
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from curate.export.columns import ExportEpisode, camera_data, with_encoded_frames
from curate.export.common import (
    Checksums,
    ExportError,
    ExportResult,
    Item,
    NormStats,
    Overwrite,
    Progress,
    Repeats,
    VectorStats,
    atomic_dir,
    finalize,
    iter_items,
    plan,
    safe_name,
    write_json,
)
from curate.lake import Lake
from curate.media import decode_image
from schemas import Frame
from schemas.mixture import Manifest

CameraMode = Literal["video", "image"]
CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 500
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CAMERA_PREFIX = "observation.images."
DISCRETE_KEY = "action.discrete"
"""Discrete (named) actions, e.g. ALFRED's `RotateLeft_90`, as a string feature."""
QUANTILES = (1, 10, 50, 90, 99)
IMAGE_STATS_FRAMES = 8
STATS_THREADS = 2
"""Threads decoding the frames sampled for image stats (image mode), alongside the writing thread."""
STATS_BEHIND = 32
"""Episode-camera stats in flight before the writer waits for the oldest (bounds the payloads held)."""


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
"""How HF datasets stores an `Image` feature: the encoded bytes (path unused)."""


def _chunk_file(n: int) -> tuple[int, int]:
    return n // CHUNKS_SIZE, n % CHUNKS_SIZE


def _action_width(episode: ExportEpisode) -> int:
    """Values in the first step's action (0 for an episode without steps)."""
    if episode.n_steps == 0:
        return 0
    offsets = episode.steps.column("action").chunk(0).offsets
    return int(offsets[1].as_py() - offsets[0].as_py())


def _camera_frames(episode: ExportEpisode, camera: str) -> list[Frame]:
    """One camera's frames in step order (video mode, where encoding each frame dominates anyway).

    Raises:
        ExportError: a step has no frame of this camera.
    """
    table = episode.frames.filter(pc.equal(episode.frames.column("camera"), camera))
    if table.num_rows != episode.n_steps:
        raise ExportError(f"episode {episode.episode_id}: camera {camera!r} is missing on some steps")
    return [Frame.model_construct(**{k: r.get(k) for k in Frame.model_fields}) for r in table.to_pylist()]


def _stats(values: np.ndarray) -> dict[str, Any]:
    """LeRobot's per-feature stats: per-dimension min, max, mean, std, count and q01..q99."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    out: dict[str, Any] = {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
                           "std": v.std(0).tolist(), "count": [int(v.shape[0])]}
    quantiles = np.quantile(v, [q / 100 for q in QUANTILES], axis=0)  # one partition for all five
    for q, values in zip(QUANTILES, quantiles, strict=True):
        out[f"q{q:02d}"] = values.tolist()
    return out


def _stats_columns(block: np.ndarray) -> list[dict[str, Any]]:
    """`_stats` of each column of a (T, K) block of scalar features, computed for all K at once (each column is
    reduced contiguously, so every figure equals `_stats(block[:, k])`)."""
    rows = np.ascontiguousarray(block.T, dtype=np.float64)
    mins, maxs, means, stds = rows.min(1).tolist(), rows.max(1).tolist(), rows.mean(1).tolist(), rows.std(1).tolist()
    quantiles = np.quantile(rows, [q / 100 for q in QUANTILES], axis=1).tolist()
    return [{"min": [mins[k]], "max": [maxs[k]], "mean": [means[k]], "std": [stds[k]], "count": [rows.shape[1]],
             **{f"q{q:02d}": [quantiles[i][k]] for i, q in enumerate(QUANTILES)}}
            for k in range(rows.shape[0])]


def _image_stats(images: list[np.ndarray]) -> dict[str, Any]:
    """Per-channel stats of sampled frames scaled to [0, 1], shaped [3][1][1] as LeRobot stores them.

    Pixels are uint8, so everything (quantiles included, with numpy's linear interpolation) comes exactly
    from a 256-bin histogram per channel instead of sorting every pixel.
    """
    px = np.concatenate([im.reshape(-1, im.shape[-1] if im.ndim == 3 else 1)[:, :3] for im in images])
    if px.shape[1] == 1:
        px = np.repeat(px, 3, axis=1)
    levels = np.arange(256, dtype=np.float64) / 255.0
    out: dict[str, list[Any]] = {k: [] for k in ("min", "max", "mean", "std", *(f"q{q:02d}" for q in QUANTILES))}
    for c in range(3):
        hist = np.bincount(px[:, c].astype(np.uint8), minlength=256).astype(np.float64)
        n = hist.sum()
        nz = np.flatnonzero(hist)
        mean = float((hist * levels).sum() / n)
        out["min"].append([[float(levels[nz[0]])]])
        out["max"].append([[float(levels[nz[-1]])]])
        out["mean"].append([[mean]])
        out["std"].append([[float(np.sqrt((hist * (levels - mean) ** 2).sum() / n))]])
        cdf = np.cumsum(hist)
        for q in QUANTILES:
            h = (n - 1) * q / 100
            lo, hi = int(np.floor(h)), int(np.ceil(h))
            v_lo = levels[np.searchsorted(cdf, lo, side="right")]
            v_hi = levels[np.searchsorted(cdf, hi, side="right")]
            out[f"q{q:02d}"].append([[float(v_lo + (v_hi - v_lo) * (h - lo))]])
    return {**out, "count": [len(images)]}


def _even(img: Image.Image) -> Image.Image:
    """H.264 in yuv420p needs even sides: pad odd ones by one edge pixel row/column."""
    w, h = img.size
    if w % 2 == 0 and h % 2 == 0:
        return img
    canvas = Image.new("RGB", (w + w % 2, h + h % 2))
    canvas.paste(img, (0, 0))
    return canvas


class _VideoFile:
    """One concatenated mp4 being encoded (H.264, pts in frames at 1/fps)."""

    def __init__(self, path: Path, *, fps: float, width: int, height: int, codec: str) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "18", "preset": "veryfast", "g": "10"} if codec == "libx264" else {}
        self.frames = 0
        self.size = (width, height)

    def add(self, img: Image.Image) -> None:
        import av

        if img.size != self.size:
            img = img.resize(self.size)
        frame = av.VideoFrame.from_image(img)
        frame.pts = self.frames
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _passthrough(frames: list[Frame], fps: float) -> tuple[str, float] | None:
    """(uri, first timestamp) when all frames are consecutive frames of one source video, else None."""
    if not frames or any(f.format != "video" for f in frames):
        return None
    uri = frames[0].video_uri
    t0 = float(frames[0].video_timestamp_s or 0.0)
    for i, f in enumerate(frames):
        if f.video_uri != uri or abs(float(f.video_timestamp_s or 0.0) - (t0 + i / fps)) > 0.5 / fps:
            return None
    return uri, t0


class _DatasetWriter:
    """Writes one LeRobot v3.0 dataset from the episodes of one source dataset."""

    def __init__(self, root: Path, episode: ExportEpisode, *, cameras: CameraMode, codec: str,
                 checksums: Checksums | None = None) -> None:
        first = episode.episode
        self.root = root
        self.dataset = first.dataset
        self.fps = first.control_hz
        self.robot_type = first.embodiment.robot
        self.action_names = list(first.action_space.names) or [f"action_{i}" for i in range(first.action_space.dim)]
        self.action_dim = first.action_space.dim or _action_width(episode)
        self.state_dim = first.state_space.dim if first.state_space else 0
        self.state_names = (list(first.state_space.names) if first.state_space and first.state_space.names
                            else [f"state_{i}" for i in range(self.state_dim)])
        self.cameras = [c.name for c in first.cameras if not c.missing]
        self.discrete = episode.steps.column("discrete_action").null_count < episode.n_steps
        self.camera_mode = cameras
        self.codec = codec
        self.sizes: dict[str, tuple[int, int]] = {}
        self.codecs: dict[str, str] = {}
        self.tasks: dict[str, int] = {}
        self.episode_rows: list[dict[str, Any]] = []
        self.global_index = 0
        self.data_file = 0
        self.data_writer: pq.ParquetWriter | None = None
        self.data_bytes = 0
        self.videos: dict[str, _VideoFile | None] = {c: None for c in self.cameras}
        self.video_file_index: dict[str, int] = {c: 0 for c in self.cameras}
        self.passed: dict[tuple[str, str], tuple[int, float]] = {}
        self.vector_stats = {"action": VectorStats(), "observation.state": VectorStats()}
        self.scalar_stats = {k: VectorStats() for k in ("timestamp", "frame_index", "episode_index", "index",
                                                        "task_index")}
        self.image_stats: dict[str, list[dict[str, Any]]] = {c: [] for c in self.cameras}
        self.frames = 0
        self.reencoded = 0
        self.checksums = checksums
        self.data_path: Path | None = None
        self.stats_pool = ThreadPoolExecutor(max_workers=STATS_THREADS, thread_name_prefix="lerobot-stats")
        self.pending_stats: deque[tuple[str, dict[str, Any], Future[Any]]] = deque()

    # -- schema --------------------------------------------------------------------------------------
    def _key(self, cam: str) -> str:
        return f"{CAMERA_PREFIX}{cam}"

    def data_schema(self) -> pa.Schema:
        fields: list[pa.Field] = []
        hf: dict[str, Any] = {}
        if self.action_dim:
            fields.append(pa.field("action", pa.list_(pa.float32(), self.action_dim)))
            hf["action"] = {"feature": {"dtype": "float32", "_type": "Value"}, "length": self.action_dim,
                            "_type": "List"}
        if self.discrete:
            fields.append(pa.field(DISCRETE_KEY, pa.string()))
            hf[DISCRETE_KEY] = {"dtype": "string", "_type": "Value"}
        if self.state_dim:
            fields.append(pa.field("observation.state", pa.list_(pa.float32(), self.state_dim)))
            hf["observation.state"] = {"feature": {"dtype": "float32", "_type": "Value"}, "length": self.state_dim,
                                       "_type": "List"}
        if self.camera_mode == "image":
            for cam in self.cameras:
                fields.append(pa.field(self._key(cam), pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
                hf[self._key(cam)] = {"_type": "Image"}
        fields += [pa.field("timestamp", pa.float32()), pa.field("frame_index", pa.int64()),
                   pa.field("episode_index", pa.int64()), pa.field("index", pa.int64()),
                   pa.field("task_index", pa.int64())]
        hf |= {"timestamp": {"dtype": "float32", "_type": "Value"}, "frame_index": {"dtype": "int64", "_type": "Value"},
               "episode_index": {"dtype": "int64", "_type": "Value"}, "index": {"dtype": "int64", "_type": "Value"},
               "task_index": {"dtype": "int64", "_type": "Value"}}
        return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})

    def features(self) -> dict[str, Any]:
        feats: dict[str, Any] = {}
        if self.action_dim:
            feats["action"] = {"dtype": "float32", "shape": [self.action_dim], "names": self.action_names}
        if self.discrete:
            feats[DISCRETE_KEY] = {"dtype": "string", "shape": [1], "names": None}
        if self.state_dim:
            feats["observation.state"] = {"dtype": "float32", "shape": [self.state_dim], "names": self.state_names}
        for cam in self.cameras:
            h, w = self.sizes.get(cam, (0, 0))
            feat: dict[str, Any] = {"dtype": self.camera_mode, "shape": [h, w, 3],
                                    "names": ["height", "width", "channels"]}
            if self.camera_mode == "video":
                feat["info"] = {"video.height": h, "video.width": w,
                                "video.codec": self.codecs.get(cam, "h264"), "video.pix_fmt": "yuv420p",
                                "video.is_depth_map": False, "video.fps": self._fps_value(),
                                "video.channels": 3, "has_audio": False}
            feats[self._key(cam)] = feat
        for key in ("timestamp",):
            feats[key] = {"dtype": "float32", "shape": [1], "names": None}
        for key in ("frame_index", "episode_index", "index", "task_index"):
            feats[key] = {"dtype": "int64", "shape": [1], "names": None}
        return feats

    def _fps_value(self) -> int | float:
        return int(self.fps) if float(self.fps).is_integer() else float(self.fps)

    # -- episodes ------------------------------------------------------------------------------------
    def check(self, columns: ExportEpisode) -> None:
        ep = columns.episode
        problems = []
        if ep.control_hz != self.fps:
            problems.append(f"control_hz {ep.control_hz} != {self.fps}")
        dim = _action_width(columns) if columns.n_steps else self.action_dim
        if dim != self.action_dim:
            problems.append(f"action dim {dim} != {self.action_dim}")
        cams = [c.name for c in ep.cameras if not c.missing]
        if cams != self.cameras:
            problems.append(f"cameras {cams} != {self.cameras}")
        if problems:
            raise ExportError(f"episode {ep.episode_id} of dataset {ep.dataset!r} does not fit the LeRobot dataset "
                              f"started by its first episode ({'; '.join(problems)}); LeRobot needs one fps and "
                              "one feature set per dataset: split it with `where` or export to parquet")

    def add(self, item: Item) -> None:
        """Append one episode copy: its data rows (columns taken from the lake's arrays), frames and stats."""
        ep = item.episode
        self.check(ep)
        n = ep.n_steps
        episode_index = len(self.episode_rows)
        task = ep.row["instruction"] or ""
        task_index = self.tasks.setdefault(task, len(self.tasks))
        ts = np.arange(n, dtype=np.float64) / self.fps
        actions, _ = ep.padded("action", self.action_dim, fill=0.0)
        states = None
        columns: dict[str, Any] = {}
        if self.action_dim:
            columns["action"] = pa.FixedSizeListArray.from_arrays(pa.array(actions.ravel()), self.action_dim)
        if self.discrete:
            columns[DISCRETE_KEY] = pc.fill_null(ep.steps.column("discrete_action"), "")
        if self.state_dim:
            states, bad = ep.padded("state", self.state_dim, fill=np.nan)
            if bad is not None:
                raise ExportError(f"episode {ep.episode_id} step {bad}: state width differs from {self.state_dim}")
            columns["observation.state"] = pa.FixedSizeListArray.from_arrays(pa.array(states.ravel()), self.state_dim)
        row: dict[str, Any] = {"episode_index": episode_index, "tasks": [task], "length": n}
        encoded = functools.cache(lambda: with_encoded_frames(item.episode, image_format="PNG"))
        if self.camera_mode == "image":
            ep = encoded()
            self.reencoded += ep.reencoded
        for cam in self.cameras:
            self.frames += n
            sample = np.linspace(0, n - 1, num=min(IMAGE_STATS_FRAMES, n)).astype(int) if n else []
            if self.camera_mode == "image":
                data = camera_data(ep, cam)
                if data.null_count:
                    raise ExportError(f"episode {ep.episode_id}: camera {cam!r} is missing on some steps")
                columns[self._key(cam)] = pa.chunked_array(
                    [pa.StructArray.from_arrays([chunk, pa.nulls(len(chunk), pa.string())], fields=list(IMAGE_STRUCT))
                     for chunk in data.chunks], IMAGE_STRUCT)
                # decoding the sampled frames is the costly part: done by the stats threads (PIL releases the GIL)
                payloads = [data[int(i)].as_py() for i in sample]
                self._stats_later(cam, row, self.stats_pool.submit(_decoded_stats, payloads) if payloads else None)
            else:
                images = self._video(cam, _camera_frames(ep, cam), row, encoded)
                images = [images[i] for i in sample] if images else []
                self._stats_later(cam, row, _done((images[0].shape[:2], _image_stats(images)) if images else None))
        scalars = {"timestamp": ts.astype(np.float32), "frame_index": np.arange(n, dtype=np.int64),
                   "episode_index": np.full(n, episode_index, dtype=np.int64),
                   "index": np.arange(self.global_index, self.global_index + n, dtype=np.int64),
                   "task_index": np.full(n, task_index, dtype=np.int64)}
        columns |= {key: pa.array(values) for key, values in scalars.items()}
        schema = self.data_schema()
        table = pa.table({f.name: columns[f.name] for f in schema}, schema=schema)
        chunk, file = _chunk_file(self.data_file)
        if self.data_writer is None:
            path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            images = {self._key(c) for c in self.cameras} if self.camera_mode == "image" else set()
            plain = [f.name for f in schema if f.name not in images]
            self.data_writer = pq.ParquetWriter(
                path, schema, compression={f.name: ("none" if f.name in images else "snappy") for f in schema},
                use_dictionary=plain, write_statistics=plain)
            self.data_path = path
        self.data_writer.write_table(table)
        self.data_bytes += table.nbytes
        row.update({"data/chunk_index": chunk, "data/file_index": file, "dataset_from_index": self.global_index,
                    "dataset_to_index": self.global_index + n})
        vectors = {"action": actions if self.action_dim else None,
                   "observation.state": states if self.state_dim else None}
        for key, arr in vectors.items():
            if arr is None:
                continue
            self.vector_stats[key].add(arr)
            row.update({f"stats/{key}/{k}": v for k, v in _stats(arr).items()})
        block = np.stack([values.astype(np.float64) for values in scalars.values()], axis=1)
        for k, (key, stats) in enumerate(zip(scalars, _stats_columns(block), strict=True)):
            self.scalar_stats[key].add(block[:, k])
            row.update({f"stats/{key}/{name}": value for name, value in stats.items()})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        row["curate/episode_id"] = ep.episode_id
        row["curate/copy"] = item.copy
        self.episode_rows.append(row)
        self.global_index += n
        if self.data_bytes >= DATA_FILES_SIZE_MB * 1024 * 1024:
            self._close_data()

    def _stats_later(self, cam: str, row: dict[str, Any], stats: Future[tuple[tuple[int, int], dict]] | None
                     ) -> None:
        """Queue one episode's image stats of `cam`; they are filed in episode order, a few episodes behind."""
        if stats is not None:
            self.pending_stats.append((cam, row, stats))
        while len(self.pending_stats) > STATS_BEHIND:
            self._file_stats()

    def _file_stats(self) -> None:
        cam, row, future = self.pending_stats.popleft()
        result = future.result()
        if result is None:
            return
        shape, stats = result
        self.sizes.setdefault(cam, shape)
        self.image_stats[cam].append(stats)
        row.update({f"stats/{self._key(cam)}/{k}": v for k, v in stats.items()})

    def _close_data(self) -> None:
        if self.data_writer is not None:
            self.data_writer.close()
            self.data_writer = None
            if self.checksums is not None:
                self.checksums.add(self.data_path)
            self.data_file += 1
            self.data_bytes = 0

    def _video(self, cam: str, frames: list[Frame], row: dict[str, Any], encoded: Callable[[], ExportEpisode]
               ) -> list[np.ndarray]:
        """Pass a compatible source video through, or encode this camera's frames into the open mp4; returns the
        frames' pixels (for image stats). `encoded()` is the episode with video references decoded to PNG."""
        key = self._key(cam)
        n = len(frames)
        through = _passthrough(frames, self.fps)
        if through is not None:
            uri, t0 = through
            if (cam, uri) not in self.passed:
                self._close_video(cam)
                index = self.video_file_index[cam]
                self.video_file_index[cam] += 1
                chunk, file = _chunk_file(index)
                dest = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
                dest.parent.mkdir(parents=True, exist_ok=True)
                import fsspec

                with fsspec.open(uri, "rb") as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                self.passed[(cam, uri)] = (index, 0.0)
                self._probe_codec(cam, dest)
            index, _ = self.passed[(cam, uri)]
            chunk, file = _chunk_file(index)
            row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                        f"videos/{key}/from_timestamp": t0, f"videos/{key}/to_timestamp": t0 + n / self.fps})
            from curate.media import video_frames

            return [np.asarray(im) for im in video_frames(uri, [t0 + i / self.fps for i in range(n)])]
        images = [_even(decode_image(b)) for b in camera_data(encoded(), cam).to_pylist()]
        self.reencoded += n
        video = self.videos[cam]
        if video is None or (video.path.exists() and video.path.stat().st_size >= VIDEO_FILES_SIZE_MB * 1024 * 1024):
            self._close_video(cam)
            index = self.video_file_index[cam]
            self.video_file_index[cam] += 1
            chunk, file = _chunk_file(index)
            w, h = images[0].size
            video = _VideoFile(self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file),
                               fps=self.fps, width=w, height=h, codec=self.codec)
            video.index = index  # type: ignore[attr-defined]
            self.videos[cam] = video
            self.codecs.setdefault(cam, "h264" if self.codec in ("libx264", "h264") else self.codec)
        start = video.frames
        for img in images:
            video.add(img)
        chunk, file = _chunk_file(video.index)  # type: ignore[attr-defined]
        row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": start / self.fps,
                    f"videos/{key}/to_timestamp": (start + n) / self.fps})
        return [np.asarray(im) for im in images]

    def _probe_codec(self, cam: str, path: Path) -> None:
        import av

        with av.open(str(path)) as container:
            self.codecs.setdefault(cam, container.streams.video[0].codec_context.name)

    def _close_video(self, cam: str) -> None:
        video = self.videos.get(cam)
        if video is not None:
            video.close()
            self.videos[cam] = None

    # -- finish --------------------------------------------------------------------------------------
    def close(self) -> dict[str, Any]:
        self._close_data()
        while self.pending_stats:
            self._file_stats()
        self.stats_pool.shutdown(wait=True, cancel_futures=True)
        for cam in self.cameras:
            self._close_video(cam)
        n_eps = len(self.episode_rows)
        tasks = sorted(self.tasks.items(), key=lambda kv: kv[1])
        import pandas as pd

        frame = pd.DataFrame({"task_index": [i for _, i in tasks]}, index=pd.Index([t for t, _ in tasks]))
        (self.root / "meta").mkdir(parents=True, exist_ok=True)
        frame.to_parquet(self.root / "meta" / "tasks.parquet")
        episodes = pa.Table.from_pylist(self.episode_rows)
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(episodes, path)
        stats: dict[str, Any] = {}
        for key, vs in {**self.vector_stats, **self.scalar_stats}.items():
            if vs.count:
                r = vs.result()
                stats[key] = {k: r[k] for k in ("min", "max", "mean", "std")} | {"count": [r["count"]]} | {
                    f"q{q:02d}": r[f"q{q:02d}"] for q in QUANTILES}
        for cam, parts in self.image_stats.items():
            if parts:
                stats[self._key(cam)] = _pool_image_stats(parts)
        write_json(self.root / "meta" / "stats.json", stats)
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type, "total_episodes": n_eps,
                "total_frames": self.global_index, "total_tasks": len(self.tasks), "chunks_size": CHUNKS_SIZE,
                "data_files_size_in_mb": DATA_FILES_SIZE_MB, "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
                "fps": self._fps_value(), "splits": {"train": f"0:{n_eps}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if self.camera_mode == "video" and self.cameras else None,
                "features": self.features()}
        write_json(self.root / "meta" / "info.json", info)
        return {"episodes": n_eps, "frames": self.global_index, "tasks": len(self.tasks)}


def _decoded_stats(payloads: list[bytes]) -> tuple[tuple[int, int], dict[str, Any]]:
    """(height, width) and `_image_stats` of encoded frames."""
    images = [np.asarray(decode_image(b)) for b in payloads]
    return images[0].shape[:2], _image_stats(images)


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _pool_image_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine per-episode image stats (LeRobot's aggregate: count-weighted mean/variance, extreme min/max)."""
    counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
    means = np.array([np.ravel(p["mean"]) for p in parts])
    stds = np.array([np.ravel(p["std"]) for p in parts])
    w = counts / counts.sum()
    mean = (means * w[:, None]).sum(0)
    var = ((stds**2 + (means - mean) ** 2) * w[:, None]).sum(0)
    out: dict[str, Any] = {"min": [[[float(x)]] for x in np.min([np.ravel(p["min"]) for p in parts], 0)],
                           "max": [[[float(x)]] for x in np.max([np.ravel(p["max"]) for p in parts], 0)],
                           "mean": [[[float(x)]] for x in mean], "std": [[[float(x)]] for x in np.sqrt(var)],
                           "count": [int(counts.sum())]}
    for q in QUANTILES:
        qs = np.array([np.ravel(p[f"q{q:02d}"]) for p in parts])
        out[f"q{q:02d}"] = [[[float(x)]] for x in (qs * w[:, None]).sum(0)]
    return out


def export_lerobot(manifest: Manifest, lake: Lake, out: str | Path, *, overwrite: Overwrite = "refuse",
                   repeats: Repeats = "materialize", progress: Progress | None = None,
                   cameras: CameraMode = "video", codec: str = "libx264") -> ExportResult:
    """Write the mixture as LeRobot v3.0 datasets, one per source dataset, under `out` (atomically)."""
    if cameras not in ("video", "image"):
        raise ExportError(f"cameras must be 'video' or 'image', got {cameras!r}")
    started = time.perf_counter()
    todo = plan(manifest, repeats=repeats)
    result = ExportResult(out=str(Path(out).absolute()), format="lerobot")
    norm = NormStats(seed=manifest.spec.seed)
    datasets: dict[str, dict[str, Any]] = {}
    with atomic_dir(out, overwrite=overwrite) as root, Checksums() as checksums:
        writers: dict[str, _DatasetWriter] = {}
        last = None
        try:
            for n, item in enumerate(iter_items(manifest, lake, repeats=repeats)):
                ep = item.episode
                if ep.n_steps == 0:
                    result.skipped["empty episode"] = result.skipped.get("empty episode", 0) + 1
                    continue
                if ep.episode_id != last:
                    norm.add(ep)
                    last = ep.episode_id
                writer = writers.get(ep.dataset)
                if writer is None:
                    writer = _DatasetWriter(root / safe_name(ep.dataset), ep, cameras=cameras, codec=codec,
                                            checksums=checksums)
                    writers[ep.dataset] = writer
                writer.add(item)
                result.episodes += 1
                result.steps += ep.n_steps
                if progress:
                    progress("episodes", n + 1, len(todo))
        finally:
            for name, writer in writers.items():
                datasets[name] = {"root": safe_name(name), **writer.close()}
        result.frames = sum(w.frames for w in writers.values())
        result.frames_reencoded = sum(w.reencoded for w in writers.values())
        if progress:
            progress("finalize", len(todo), len(todo))
        finalize(root, manifest, result, norm=norm, extra={"layout": {"codebase_version": CODEBASE_VERSION,
                                                                      "cameras": cameras, "datasets": datasets}},
                 checksums=checksums)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
