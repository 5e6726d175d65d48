"""RLDS export: one TFDS dataset directory per source dataset, `<out>/<dataset>/1.0.0/`.

dataset_info.json, features.json and TFRecord shards with masked CRC32C, in the standard RLDS step layout
(`steps/observation/<camera>`, `steps/action`, `steps/language_instruction`, ...) of the project's TFDS writer
(`connectors.rlds.writer`), readable by `tfds.builder_from_directory(out/<dataset>/1.0.0)` and by `curate ingest`.
One dataset per source dataset because an RLDS dataset has one feature spec (Octo/OpenVLA load a mixture as a
list of datasets: see mixture_weights.py). JPEG/PNG frames pass through byte for byte; video references are
decoded to JPEG. The current instruction (after relabels) is what `steps/language_instruction` holds.

Each episode is serialised from its Arrow columns: small features with the writer's own leaf encoder, image and
text lists as protobuf chunks that point into the Arrow buffers, so an episode's frame bytes are copied once, into
the shard file (the record CRC is computed over the chunks). The bytes equal `TFDSWriter.encode(episode_example())`.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.rlds.features import encode_leaf, parse_features
from connectors.rlds.reader import shard_name
from connectors.rlds.writer import (
    EPISODE_JSON_KEY,
    SHARD_X_OF_Y,
    RLDSWriteError,
    TFDSWriter,
    _SplitState,
    episode_features,
)
from connectors.tfrecord import encode_feature
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
    atomic_dir,
    finalize,
    iter_items,
    plan,
    safe_name,
)
from curate.lake import Lake
from schemas import Frame, Step
from schemas.mixture import Manifest

VERSION = "1.0.0"
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
IOV_MAX = 1024
"""Chunks per writev call (the POSIX minimum of IOV_MAX)."""


# ------------------------------------------------------------------------------------------------ wire format
def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Chunks:
    """A serialised protobuf message as a list of byte chunks and its total size.

    Nesting a message in a length-delimited field prepends one small header instead of copying the payload, so
    a 50-frame image list is copied once, when the chunks are written.
    """

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.size = 0

    def raw(self, data: bytes | memoryview) -> Chunks:
        self.parts.append(data)
        self.size += len(data)
        return self

    def field(self, number: int, payload: Chunks | bytes | memoryview) -> Chunks:
        """Append field `number` (wire type 2) holding `payload`."""
        size = payload.size if isinstance(payload, Chunks) else len(payload)
        self.raw(_varint((number << 3) | 2) + _varint(size))
        if isinstance(payload, Chunks):
            self.parts.extend(payload.parts)
            self.size += payload.size
        else:
            self.raw(payload)
        return self


def bytes_feature(values: pa.ChunkedArray | pa.Array) -> Chunks:
    """A `Feature{bytes_list}` of a binary or string column without nulls, pointing into its Arrow buffers."""
    inner = Chunks()
    parts = inner.parts
    for chunk in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        if len(chunk) == 0:
            continue
        _, offset_buffer, data = chunk.buffers()
        wide = pa.types.is_large_binary(chunk.type) or pa.types.is_large_string(chunk.type)
        width = np.dtype(np.int64 if wide else np.int32)
        offsets = np.frombuffer(offset_buffer, dtype=width, count=len(chunk) + 1, offset=chunk.offset * width.itemsize)
        view = memoryview(data) if data is not None else memoryview(b"")
        for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
            parts.append(b"\n" + _varint(end - start))  # field 1, wire type 2, then the value's length
            parts.append(view[start:end])
    inner.size = sum(len(p) for p in parts)
    return Chunks().field(1, inner)


def example_chunks(features: dict[str, Chunks | bytes]) -> Chunks:
    """A tf.train.Example of {key: serialised Feature}, keys sorted as TFDS (and `encode_example`) write them."""
    entries = Chunks()
    for key in sorted(features):
        entries.field(1, Chunks().field(1, key.encode("utf-8")).field(2, features[key]))
    return Chunks().field(1, entries)


def _write_all(fh: IO[bytes], parts: list[bytes | memoryview]) -> None:
    """Write the chunks with gathering `os.writev` calls straight into the file (one copy, kernel side); through
    `fh.write` on a file without a descriptor (a remote filesystem)."""
    try:
        fd = fh.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fh.write(b"".join(parts))
        return
    fh.flush()
    views = [memoryview(p) for p in parts]
    while views:
        batch = views[:IOV_MAX]
        written = os.writev(fd, batch)
        for i, view in enumerate(batch):
            if written < len(view):
                views = [view[written:], *views[i + 1:]]  # a short write: resume inside this chunk
                break
            written -= len(view)
        else:
            views = views[len(batch):]


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class ShardWriter(TFDSWriter):
    """TFDSWriter that takes an episode as chunks (one copy into the file, CRC over the chunks) and hands every
    finished shard to `checksums` so it is hashed while the next one is written."""

    def __init__(self, root: str | Path, *, checksums: Checksums, **options: Any) -> None:
        super().__init__(root, **options)
        self.checksums = checksums

    def add_chunks(self, split: str, example: Chunks) -> None:
        fh = self._shard_for_record(split)
        header = _U64.pack(example.size)
        crc = 0
        for part in example.parts:
            crc = crc32c.crc32c(part, crc)
        _write_all(fh, [header + _U32.pack(_masked(crc32c.crc32c(header))), *example.parts, _U32.pack(_masked(crc))])
        self._record_written(split, example.size)

    def _open_shard(self, split: str, state: _SplitState) -> None:
        finished = state.temp_paths[-1] if state.fh is not None else None
        super()._open_shard(split, state)
        if finished is not None:
            self.checksums.add(Path(finished))

    def close(self) -> str:
        temps = {split: list(state.temp_paths) for split, state in self.splits.items()}
        uri = super().close()
        for split, paths in temps.items():
            for i, tmp in enumerate(paths):
                final = shard_name(self.template, dataset=self.name, split=split, index=i, count=len(paths))
                self.checksums.renamed(Path(tmp), Path(self.root) / final)
        return uri


# ------------------------------------------------------------------------------------------------ episodes
class EpisodeEncoder:
    """Serialises episodes of one dataset in the `connectors.rlds.writer.episode_features` layout."""

    def __init__(self, first: ExportEpisode) -> None:
        model = first.episode
        self.cameras = [c.name for c in model.cameras if not c.missing]
        self.action_dim = model.action_space.dim
        self.state_dim = model.state_space.dim if model.state_space else None
        formats = dict(zip(reversed(first.frames.column("camera").to_pylist()),
                           reversed(first.frames.column("format").to_pylist()), strict=True))
        # episode_features reads each camera's format from the first frame: give it one frame per camera
        probe = Step.model_construct(frames=[Frame.model_construct(camera=c, format=formats.get(c, "jpeg"))
                                             for c in self.cameras])
        self.features = episode_features(model.model_copy(update={"steps": [probe]}))
        self.tree = parse_features(self.features)

    def _small(self, path: str, value: Any) -> bytes:
        return encode_feature(*encode_leaf(self.tree.leaves[path], value))

    def meta(self, ep: ExportEpisode) -> dict[str, Any]:
        """The episode's JSON metadata (everything but the steps), shared by its copies."""
        meta = ep.episode.model_dump(mode="json", exclude={"steps"})
        meta["_steps_without_language"] = np.flatnonzero(
            ep.steps.column("language").is_null().to_numpy(zero_copy_only=False)).tolist()
        return meta

    def encode(self, ep: ExportEpisode, meta: dict[str, Any]) -> Chunks:
        """One episode copy (`meta` from `meta()`, with the copy's mixture metadata) as an Example.

        Raises:
            RLDSWriteError: the episode does not fit the dataset's spec (cameras, vector sizes, missing frames).
        """
        model = ep.episode
        n = ep.n_steps
        if n != model.n_steps:
            raise RLDSWriteError(f"episode {ep.episode_id}: steps not loaded ({n} of {model.n_steps})")
        cams = [c.name for c in model.cameras if not c.missing]
        if cams != self.cameras:
            raise RLDSWriteError(f"episode {ep.episode_id} has cameras {cams}, the first episode has {self.cameras}")
        actions, bad = ep.padded("action", self.action_dim, fill=0.0)
        if bad is not None:
            raise RLDSWriteError(f"episode {ep.episode_id} step {bad}: action has another size than the "
                                 f"{self.action_dim} values of the dataset's first episode")
        steps = ep.steps
        reward = pc.fill_null(steps.column("reward"), 0.0).to_numpy().astype(np.float32)
        features: dict[str, Chunks | bytes] = {
            "steps/action": self._small("steps/action", actions),
            "steps/reward": self._small("steps/reward", reward),
            "steps/discount": self._small("steps/discount", np.ones(n, np.float32)),
            "episode_metadata/episode_id": self._small("episode_metadata/episode_id", ep.episode_id),
            "episode_metadata/dataset": self._small("episode_metadata/dataset", ep.dataset),
            "episode_metadata/instruction": self._small("episode_metadata/instruction", model.instruction or ""),
            "episode_metadata/file_path": self._small("episode_metadata/file_path", model.source.uri),
            EPISODE_JSON_KEY: self._small(EPISODE_JSON_KEY, json.dumps(meta, sort_keys=True)),
            "steps/language_instruction": bytes_feature(pc.fill_null(steps.column("language"),
                                                                     model.instruction or "")),
            "steps/discrete_action": bytes_feature(pc.fill_null(steps.column("discrete_action"), "")),
            "steps/action_args": bytes_feature(pc.fill_null(steps.column("action_args"), "")),
        }
        for flag in ("is_first", "is_last", "is_terminal"):
            features[f"steps/{flag}"] = self._small(f"steps/{flag}", steps.column(flag).to_numpy())
        if self.state_dim is not None:
            states, bad = ep.padded("state", self.state_dim, fill=0.0)
            if bad is not None:
                raise RLDSWriteError(f"episode {ep.episode_id} step {bad}: state has another size than "
                                     f"{self.state_dim}")
            features["steps/observation/state"] = self._small("steps/observation/state", states)
        for cam in self.cameras:
            data = camera_data(ep, cam)
            if data.null_count:
                missing = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0])
                raise RLDSWriteError(f"episode {ep.episode_id} step {missing}: no frame for camera {cam!r}")
            features[f"steps/observation/{cam}"] = bytes_feature(data)
        return example_chunks(features)


def export_rlds(manifest: Manifest, lake: Lake, out: str | Path, *, overwrite: Overwrite = "refuse",
                repeats: Repeats = "materialize", progress: Progress | None = None,
                episodes_per_shard: int = 100) -> ExportResult:
    """Write the mixture as RLDS/TFDS datasets, one per source dataset, under `out` (atomically)."""
    started = time.perf_counter()
    todo = plan(manifest, repeats=repeats)
    result = ExportResult(out=str(Path(out).absolute()), format="rlds")
    norm = NormStats(seed=manifest.spec.seed)
    datasets = sorted({e.dataset for e, _, _ in todo})
    written: dict[str, dict[str, object]] = {}
    done = 0
    with atomic_dir(out, overwrite=overwrite) as root, Checksums() as checksums:
        for ds in datasets:
            counts = {"episodes": 0, "steps": 0}
            writer: ShardWriter | None = None
            try:
                for item, encoded, meta in _prepared(iter_items(manifest, lake, repeats=repeats, datasets={ds}),
                                                     norm, result):
                    done += 1
                    if encoded is not None:
                        if writer is None:
                            writer = ShardWriter(root / safe_name(ds) / VERSION, checksums=checksums,
                                                 name=safe_name(ds), features=encoded[0].features, version=VERSION,
                                                 template=SHARD_X_OF_Y, episodes_per_shard=episodes_per_shard,
                                                 description=f"{ds}: part of mixture {manifest.name} exported by "
                                                             "curate")
                        mixture = {"name": manifest.name, "group": item.entry.group,
                                   "weight": manifest.copy_weight(item.entry, copies=item.copies), "copy": item.copy,
                                   "repeats": item.entry.repeats}
                        meta_copy = {**meta, "metadata": {**meta["metadata"], "mixture": mixture}}
                        writer.add_chunks("train", encoded[0].encode(encoded[1], meta_copy))
                        counts["episodes"] += 1
                        counts["steps"] += encoded[1].n_steps
                        result.frames += encoded[1].frames.num_rows
                    if progress:
                        progress("episodes", done, len(todo))
            except RLDSWriteError as exc:
                raise ExportError(f"dataset {ds!r} cannot be written as RLDS: {exc}") from None
            if writer is None:
                raise ExportError(f"dataset {ds!r} cannot be written as RLDS: no episodes to write")
            writer.close()
            result.episodes += counts["episodes"]
            result.steps += counts["steps"]
            written[ds] = {"path": f"{safe_name(ds)}/{VERSION}", **counts}
        if progress:
            progress("finalize", len(todo), len(todo))
        finalize(root, manifest, result, norm=norm, extra={"layout": {"datasets": written, "split": "train"}},
                 checksums=checksums)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _prepared(items: Iterator[Item], norm: NormStats, result: ExportResult
              ) -> Iterator[tuple[Item, tuple[EpisodeEncoder, ExportEpisode] | None, dict[str, Any]]]:
    """(item, (encoder, episode with frames as JPEG/PNG bytes) or None for an empty episode, JSON metadata);
    each episode is decoded, added to the statistics and described once, whatever its number of copies."""
    encoder: EpisodeEncoder | None = None
    last: tuple[str, ExportEpisode, dict[str, Any]] | None = None
    for item in items:
        if item.episode.n_steps == 0:  # an RLDS episode is its steps: nothing to write
            result.skipped["empty episode"] = result.skipped.get("empty episode", 0) + 1
            yield item, None, {}
            continue
        if last is None or last[0] != item.episode.episode_id:
            norm.add(item.episode)
            episode = with_encoded_frames(item.episode, image_format="JPEG")
            result.frames_reencoded += episode.reencoded
            encoder = encoder or EpisodeEncoder(episode)
            last = (item.episode.episode_id, episode, encoder.meta(episode))
        assert encoder is not None
        yield item, (encoder, last[1]), last[2]
