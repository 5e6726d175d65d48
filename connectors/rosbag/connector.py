"""ROS 2 bags (rosbag2 directories with .mcap or .db3, or bare .mcap) -> `schemas.Episode`, one bag per unit.

A mapping (see `connectors.rosbag.mapping`) names the action, state, camera and instruction topics, the
target rate and how episodes are delimited; without one, `default_mapping` fits the common JointState +
CompressedImage + String layout. Streams arrive at their own rates; each is aligned to the target clock
by timestamp with an as-of join (the latest message at or before each tick, held until the next).

Options (`SourceOptions.extra`): `mapping` (path to YAML, a dict or a `Mapping`), `ros_distro` (typestore
for bags without embedded definitions; default the bag's own, else humble), `raw_image_encoding`
("png" | "jpeg") for sensor_msgs/Image.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from connectors.base import BadEpisode, Connector, SourceOptions
from connectors.registry import register
from connectors.rosbag.bag import (
    BagError,
    BagInfo,
    BagReader,
    bag_info,
    find_bags,
    has_bag,
    is_bag,
    mcap_metadata,
)
from connectors.rosbag.mapping import (
    COMPRESSED_IMAGE,
    JOINT_STATE,
    Mapping,
    MappingError,
    StreamMap,
    check_topics,
    default_mapping,
    resolve_mapping,
)
from schemas import Camera, Embodiment, Episode, Frame, Source, Space, Step, episode_id_for, fingerprint_of

DEFAULT_RATE_HZ = 10.0
END_MARKERS = ("stop", "end", "false", "done")


@dataclass
class Stream:
    """One topic's messages: log times (ns) and per-message values (vectors, frames or text)."""

    times: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def at(self, ticks: np.ndarray) -> np.ndarray:
        """Index of the latest message at or before each tick (-1 before the first): the as-of join."""
        return np.searchsorted(np.asarray(self.times, dtype=np.int64), ticks, side="right") - 1


def _field(message: Any, path: str) -> Any:
    value = message
    for part in path.split("."):
        if not hasattr(value, part):
            raise MappingError(f"message type {getattr(message, '__msgtype__', type(message).__name__)} has no "
                               f"field {path!r}")
        value = getattr(value, part)
    return value


def _vector(message: Any, stream: StreamMap) -> list[float]:
    values: list[float] = []
    for path in stream.fields:
        value = _field(message, path)
        if isinstance(value, (np.ndarray, list, tuple)):
            values.extend(float(v) for v in np.asarray(value, dtype=np.float64).ravel())
        elif isinstance(value, (int, float, bool, np.number)):
            values.append(float(value))
        else:
            raise MappingError(f"field {path!r} of {stream.topic} is not numeric ({type(value).__name__})")
    return values


def _stream_names(message: Any, stream: StreamMap, width: int) -> list[str]:
    if stream.names:
        return list(stream.names) if len(stream.names) == width else []
    joint_names = list(getattr(message, "name", []) or [])
    if joint_names:
        names = [n if len(stream.fields) == 1 else f"{n}.{f}" for f in stream.fields for n in joint_names]
        return names if len(names) == width else []
    return []


def _image(message: Any, msgtype: str, encoding: str) -> tuple[str, bytes, int, int]:
    """(format, bytes, height, width) of an image message; compressed bytes pass through unchanged."""
    from PIL import Image

    data = bytes(np.asarray(message.data, dtype=np.uint8).tobytes())
    if msgtype == COMPRESSED_IMAGE:
        fmt = "png" if data[:4] == b"\x89PNG" else "jpeg" if data[:3] == b"\xff\xd8\xff" else None
        if fmt is None:
            raise MappingError(f"CompressedImage with format {message.format!r} is neither JPEG nor PNG")
        with Image.open(io.BytesIO(data)) as img:
            return fmt, data, img.height, img.width
    height, width, enc = int(message.height), int(message.width), str(message.encoding).lower()
    step = int(message.step)
    if enc in ("rgb8", "bgr8"):
        pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, step)[:, : width * 3].reshape(height, width, 3)
        img = Image.fromarray(pixels[..., ::-1] if enc == "bgr8" else pixels, "RGB")
    elif enc in ("mono8", "8uc1"):
        img = Image.fromarray(np.frombuffer(data, dtype=np.uint8).reshape(height, step)[:, :width], "L")
    elif enc in ("mono16", "16uc1"):
        dtype = ">u2" if message.is_bigendian else "<u2"
        pixels = np.frombuffer(data, dtype=dtype).reshape(height, step // 2)[:, :width].astype(np.uint16)
        img = Image.fromarray(pixels)
        encoding = "png"  # depth must stay lossless
    else:
        raise MappingError(f"sensor_msgs/Image encoding {message.encoding!r} is not supported (rgb8, bgr8, mono8, "
                           "mono16/16UC1 are)")
    buf = io.BytesIO()
    if encoding == "jpeg" and img.mode in ("RGB", "L"):
        img.save(buf, format="JPEG", quality=95)
        return "jpeg", buf.getvalue(), height, width
    img.save(buf, format="PNG", compress_level=1)
    return "png", buf.getvalue(), height, width


def _text(message: Any) -> str:
    if hasattr(message, "data"):
        return str(message.data)
    return str(message)


def _sidecar(bag: Path, name: str) -> str | None:
    base = bag if bag.is_dir() else bag.parent
    path = base / name
    if not path.is_file():
        return None
    text = path.read_text().strip()
    if path.suffix == ".json":
        value = json.loads(text)
        return str(value.get("instruction") or value.get("task") or "") or None if isinstance(value, dict) else None
    return text or None


def _episode_windows(mapping: Mapping, markers: Stream | None, start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) windows in ns: the whole bag, or the spans opened by marker messages."""
    if mapping.episodes.mode == "bag" or markers is None:
        return [(start, end + 1)]
    windows: list[tuple[int, int]] = []
    open_at: int | None = None
    for t, value in zip(markers.times, markers.values, strict=True):
        if open_at is not None:
            windows.append((open_at, t))
            open_at = None
        if str(value).strip().lower() not in END_MARKERS:
            open_at = t
    if open_at is not None:
        windows.append((open_at, end + 1))
    return [(a, b) for a, b in windows if b > a]


@register
class RosbagConnector(Connector):
    """rosbag2 directories (mcap or sqlite3 storage) and bare .mcap files, aligned to a target rate."""

    name: ClassVar[str] = "rosbag"
    description: ClassVar[str] = "ROS 2 bags (rosbag2 mcap/sqlite3, bare .mcap) via a topic mapping, without ROS"
    version: ClassVar[str] = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {"1.0.0": "As-of alignment, marker episodes, YAML mappings."}

    def probe(self, uri: str) -> bool:
        return has_bag(uri)

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        """One unit per bag. With a mapping that does not validate, the source is one unit that reports why
        (one rejection, no bag is read)."""
        try:
            resolve_mapping(options.extra.get("mapping"))
        except MappingError:
            return [uri]
        return [str(p) for p in find_bags(uri)]

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        try:
            resolve_mapping(options.extra.get("mapping"))
        except MappingError as exc:
            yield BadEpisode(file=str(options.extra.get("mapping")), record="*", reason=str(exc))
            return
        bags = [Path(unit)] if is_bag(Path(unit)) else find_bags(unit)
        emitted = 0
        for bag in bags:
            for item in self._bag(bag, options):
                yield item
                emitted += 1
                if options.limit is not None and emitted >= options.limit:
                    return

    def _bag(self, bag: Path, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        try:
            info = bag_info(bag)
            with BagReader(info, distro=options.extra.get("ros_distro")) as reader:
                topics = reader.topics()
                mapping = resolve_mapping(options.extra.get("mapping")) or default_mapping(topics)
                check_topics(mapping, topics, bag=str(bag))
                streams, digest = self._read_streams(reader, mapping, options)
                start, end, counts = reader.start_ns, reader.end_ns, reader.counts()
        except (BagError, MappingError) as exc:
            yield BadEpisode(file=str(bag), record="*", reason=str(exc))
            return
        markers = streams.get(mapping.episodes.marker_topic or "") if mapping.episodes.mode == "marker" else None
        windows = _episode_windows(mapping, markers, start, end)
        if mapping.episodes.mode == "marker" and not windows:
            yield BadEpisode(file=str(bag), record="*", reason=f"marker topic {mapping.episodes.marker_topic} "
                                                               "opens no episode in this bag")
            return
        for i, (a, b) in enumerate(windows):
            try:
                yield self._episode(bag, info, mapping, streams, topics, counts, digest, a, b,
                                    index=i if len(windows) > 1 or mapping.episodes.mode == "marker" else None,
                                    options=options)
            except (MappingError, ValueError) as exc:
                yield BadEpisode(file=str(bag), record=f"episode {i}", reason=str(exc))

    def _read_streams(self, reader: BagReader, mapping: Mapping, options: SourceOptions,
                      ) -> tuple[dict[str, Stream], str]:
        encoding = str(options.extra.get("raw_image_encoding", "png"))
        numeric = ([mapping.action] if mapping.action else []) + list(mapping.state)
        by_topic: dict[str, list[StreamMap]] = {}
        for stream in numeric:
            by_topic.setdefault(stream.topic, []).append(stream)
        cameras = {c.topic: c for c in mapping.cameras}
        text_topics = {t for t in (mapping.instruction.topic if mapping.instruction.source == "topic" else None,
                                   mapping.episodes.marker_topic if mapping.episodes.mode == "marker" else None) if t}
        streams: dict[str, Stream] = {}
        topics = reader.topics()
        digest = hashlib.sha256(mapping.model_dump_json().encode())
        for topic, t_ns, message, raw in reader.messages(set(by_topic) | set(cameras) | text_topics):
            if mapping.clock == "header" and hasattr(message, "header"):
                t_ns = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
            digest.update(raw)
            for stream in by_topic.get(topic, []):
                key = f"{topic}#{','.join(stream.fields)}"
                values = _vector(message, stream)
                target = streams.setdefault(key, Stream())
                if not target.times:
                    target.names = _stream_names(message, stream, len(values))
                target.times.append(t_ns)
                target.values.append(values)
            if topic in cameras:
                target = streams.setdefault(topic, Stream())
                target.times.append(t_ns)
                target.values.append(_image(message, topics[topic], encoding))
            if topic in text_topics:
                target = streams.setdefault(topic, Stream())
                target.times.append(t_ns)
                target.values.append(_text(message))
        for stream in streams.values():  # header clocks may be out of order
            if any(b < a for a, b in zip(stream.times, stream.times[1:], strict=False)):
                order = np.argsort(np.asarray(stream.times), kind="stable")
                stream.times = [stream.times[i] for i in order]
                stream.values = [stream.values[i] for i in order]
        return streams, digest.hexdigest()

    def _rate(self, mapping: Mapping, streams: dict[str, Stream], primary: list[str]) -> float:
        if mapping.rate_hz:
            return float(mapping.rate_hz)
        for key in primary:  # the rate of the action (else state) stream, from its median interval
            times = streams.get(key, Stream()).times
            if len(times) > 2:
                median = float(np.median(np.diff(np.asarray(times, dtype=np.int64))))
                if median > 0:
                    return round(1e9 / median, 3)
        return DEFAULT_RATE_HZ

    def _episode(self, bag: Path, info: BagInfo, mapping: Mapping, streams: dict[str, Stream],
                 topics: dict[str, str], counts: dict[str, int], digest: str, window_start: int, window_end: int,
                 *, index: int | None, options: SourceOptions) -> Episode:
        action_key = f"{mapping.action.topic}#{','.join(mapping.action.fields)}" if mapping.action else None
        state_keys = [f"{s.topic}#{','.join(s.fields)}" for s in mapping.state]
        hz = self._rate(mapping, streams, [k for k in [action_key, *state_keys] if k])
        flags: list[str] = []

        def window(key: str | None) -> Stream:
            stream = streams.get(key or "", Stream())
            lo = int(np.searchsorted(np.asarray(stream.times, dtype=np.int64), window_start, side="left"))
            hi = int(np.searchsorted(np.asarray(stream.times, dtype=np.int64), window_end, side="left"))
            return Stream(times=stream.times[lo:hi], values=stream.values[lo:hi], names=stream.names)

        required = [window(k) for k in [action_key, *state_keys] if k]
        present = [s for s in required if s.times]
        if required and len(present) < len(required):
            raise ValueError("a mapped action/state topic has no message in this episode window; check the mapping "
                             "or the marker topic")
        if present:  # start once every required stream has spoken, end at the last message of any of them
            t0 = max(s.times[0] for s in present)
            t_end = max(s.times[-1] for s in present)
        else:
            t0, t_end = window_start, min(window_end - 1, max(window_start, info_end(streams, window_end)))
        period = 1e9 / hz
        n = int(np.floor((t_end - t0) / period)) + 1 if t_end >= t0 else 0
        ticks = (t0 + np.arange(n) * period).astype(np.int64)

        action_stream = window(action_key) if action_key else None
        if action_stream is None:
            flags.append("no_actions")
        action_rows = self._aligned(action_stream, ticks) if action_stream else None
        state_rows = None
        state_names: list[str] = []
        if state_keys:
            parts = [self._aligned(window(k), ticks) for k in state_keys]
            state_rows = [[v for p in parts for v in p[i]] for i in range(n)]
            for k in state_keys:
                state_names += streams.get(k, Stream()).names
            width = len(state_rows[0]) if state_rows else 0
            state_names = state_names if len(state_names) == width else []
        cameras: list[Camera] = []
        frame_rows: list[list[Frame]] = [[] for _ in range(n)]
        for cam in mapping.cameras:
            stream = window(cam.topic)
            if not stream.times:
                cameras.append(Camera(name=cam.name, kind=cam.kind, height=0, width=0, missing=True))
                flags.append(f"camera_missing:{cam.name}")
                continue
            _, _, height, width = stream.values[0]
            cameras.append(Camera(name=cam.name, kind=cam.kind, height=height, width=width))
            for i, j in enumerate(stream.at(ticks).tolist()):
                if j >= 0:
                    fmt, data, _, _ = stream.values[j]
                    frame_rows[i].append(Frame(camera=cam.name, format=fmt, data=data))
        language_rows: list[str | None] = [None] * n
        instruction = None
        source = mapping.instruction.source
        if source == "topic":
            texts = streams.get(mapping.instruction.topic or "", Stream())
            idx = texts.at(ticks).tolist() if texts.times else [-1] * n
            language_rows = [texts.values[j] if j >= 0 else None for j in idx]
            inside = window(mapping.instruction.topic)
            before = texts.at(np.array([window_start], dtype=np.int64))[0] if texts.times else -1
            instruction = inside.values[0] if inside.values else (texts.values[before] if before >= 0 else None)
        elif source == "metadata":
            custom = {**mcap_metadata(info.files), **{str(k): str(v) for k, v in info.custom_data.items()}}
            instruction = custom.get(mapping.instruction.key)
        elif source == "sidecar":
            instruction = _sidecar(bag, mapping.instruction.file)
        if source in ("metadata", "sidecar"):
            language_rows = [instruction] * n
        alternatives = []
        for text in language_rows:
            if text and text != instruction and text not in alternatives:
                alternatives.append(text)
        steps = [Step(index=i, timestamp_s=(int(ticks[i]) - t0) / 1e9,
                      action=action_rows[i] if action_rows is not None else [],
                      state=state_rows[i] if state_rows is not None else None,
                      is_first=i == 0, is_last=i == n - 1, language=language_rows[i], frames=frame_rows[i])
                 for i in range(n)]
        action_dim = len(action_rows[0]) if action_rows else 0
        action_names = streams.get(action_key or "", Stream()).names if action_key else []
        key = bag.name if index is None else f"{bag.name}#{index}"
        dataset = options.dataset or (bag.parent.name if bag.is_dir() else bag.stem)
        return Episode(
            episode_id=episode_id_for(dataset, key),
            dataset=dataset,
            source=Source(format=self.name, uri=str(bag), key=key,
                          fingerprint=fingerprint_of(digest, str(window_start), str(window_end))),
            embodiment=Embodiment(robot=mapping.robot, kind=mapping.embodiment_kind),
            action_space=Space(kind=mapping.action_kind if action_rows is not None else "other", dim=action_dim,
                               names=action_names if len(action_names) == action_dim else []),
            state_space=None if state_rows is None else Space(kind=mapping.state_kind,
                                                              dim=len(state_rows[0]) if state_rows else 0,
                                                              names=state_names),
            control_hz=hz,
            instruction=instruction,
            instructions_alt=alternatives[:20],
            cameras=cameras,
            n_steps=n,
            duration_s=n / hz,
            quality_flags=flags,
            metadata={"rosbag": {"bag": str(bag), "storage": info.storage, "ros_distro": info.ros_distro,
                                 "topics": {t: {"type": m, "count": counts.get(t, 0)} for t, m in topics.items()},
                                 "window_ns": [window_start, window_end], "start_ns": int(t0),
                                 "mapping": json.loads(mapping.model_dump_json())}},
            steps=steps,
        )

    @staticmethod
    def _aligned(stream: Stream, ticks: np.ndarray) -> list[list[float]]:
        """The as-of value of a numeric stream at each tick (the first value before its first message)."""
        idx = np.maximum(stream.at(ticks), 0).tolist()
        return [stream.values[j] for j in idx]


def info_end(streams: dict[str, Stream], default: int) -> int:
    """The last message time over all read streams (the clock end when no action/state is mapped)."""
    ends = [s.times[-1] for s in streams.values() if s.times]
    return max(ends) if ends else default


__all__ = ["JOINT_STATE", "RosbagConnector", "Stream"]
