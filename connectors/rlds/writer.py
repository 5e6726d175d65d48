"""A TFDS-compatible RLDS writer: dataset_info.json, features.json and TFRecord shards with correct CRCs.

Two levels:

- `TFDSWriter`: any feature tree (built with `features.features_json`) and examples as {leaf path: value};
  used for test fixtures of every leaf kind (Google-format action dicts, zlib tensors, code-point instructions).
- `write_episodes(episodes, root, name=...)`: schemas.Episode objects -> an RLDS dataset the standard RLDS
  step layout (`steps/observation/<camera>`, `steps/observation/state`, `steps/action`, `steps/reward`,
  `steps/is_first|is_last|is_terminal`, `steps/language_instruction`, `episode_metadata/*`). The full episode
  metadata rides along as JSON in `episode_metadata/curate_episode`, so reading it back restores every field.

Shard files are written under temporary names and renamed once the shard count is known, so a
`{SHARD_X_OF_Y}` template can be honoured while streaming. The result reads in TFDS (`tfds.builder_from_directory`)
and in our reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from connectors.rlds.features import Leaf, encode_leaf, features_json, parse_features
from connectors.rlds.reader import FEATURES_FILE, INFO_FILE, open_fs, shard_name
from connectors.tfrecord import encode_example, frame_record
from schemas import Episode

SHARD_X_OF_Y = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
SHARD_INDEX = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_INDEX}"
EPISODE_JSON_KEY = "episode_metadata/curate_episode"
DEFAULT_EPISODES_PER_SHARD = 100
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024


class RLDSWriteError(ValueError):
    """An episode cannot be written as RLDS (e.g. frames missing, or shapes differ from the first episode)."""


@dataclass
class _SplitState:
    shard_lengths: list[int] = field(default_factory=list)
    num_bytes: int = 0
    temp_paths: list[str] = field(default_factory=list)
    fh: IO[bytes] | None = None
    shard_bytes: int = 0


class TFDSWriter:
    """Stream examples into a TFDS dataset directory `<root>` (the `<name>/<version>` directory itself).

    Args:
        root: the dataset directory to create (any fsspec URI).
        name: the TFDS dataset name (shard file prefix).
        features: a features.json document (see `features.features_json`).
        version: dataset version string.
        template: shard file-name template, `SHARD_X_OF_Y` (default) or `SHARD_INDEX`.
        episodes_per_shard / shard_bytes: start a new shard after this many records or bytes.
    """

    def __init__(self, root: str | Path, *, name: str, features: dict[str, Any], version: str = "1.0.0",
                 template: str = SHARD_X_OF_Y, episodes_per_shard: int = DEFAULT_EPISODES_PER_SHARD,
                 shard_bytes: int = DEFAULT_SHARD_BYTES, description: str = "") -> None:
        self.uri = str(root).rstrip("/")
        self.fs, self.root = open_fs(self.uri)
        self.name = name
        self.version = version
        self.features = features
        self.tree = parse_features(features)
        self.template = template
        self.episodes_per_shard = episodes_per_shard
        self.shard_bytes = shard_bytes
        self.description = description
        self.splits: dict[str, _SplitState] = {}
        self.fs.makedirs(self.root, exist_ok=True)

    def encode(self, example: dict[str, Any]) -> bytes:
        """Serialize one episode given as {leaf path: value}; step leaves take one value per step.

        Raises:
            RLDSWriteError: a path is not declared in the features.
        """
        unknown = sorted(set(example) - set(self.tree.leaves))
        if unknown:
            raise RLDSWriteError(f"example has undeclared features: {', '.join(unknown)}")
        out = {}
        for path, value in example.items():
            leaf: Leaf = self.tree.leaves[path]
            out[path] = encode_leaf(leaf, value)
        return encode_example(out)

    def add(self, split: str, example: dict[str, Any]) -> None:
        """Append one episode to `split`."""
        self.add_serialized(split, self.encode(example))

    def add_serialized(self, split: str, data: bytes) -> None:
        self._shard_for_record(split).write(frame_record(data))
        self._record_written(split, len(data))

    def _shard_for_record(self, split: str) -> IO[bytes]:
        """The shard file of `split` the next record goes into (a new shard once the current one is full)."""
        state = self.splits.setdefault(split, _SplitState())
        full = state.fh is not None and (state.shard_lengths[-1] >= self.episodes_per_shard
                                         or state.shard_bytes >= self.shard_bytes)
        if state.fh is None or full:
            self._open_shard(split, state)
        assert state.fh is not None
        return state.fh

    def _record_written(self, split: str, size: int) -> None:
        """Count a record of `size` payload bytes just written to `split`'s current shard."""
        state = self.splits[split]
        state.shard_lengths[-1] += 1
        state.num_bytes += size
        state.shard_bytes += size + 16

    def _open_shard(self, split: str, state: _SplitState) -> None:
        if state.fh is not None:
            state.fh.close()
        path = f"{self.root}/.{self.name}-{split}.tfrecord.tmp-{len(state.temp_paths):05d}"
        state.temp_paths.append(path)
        state.shard_lengths.append(0)
        state.shard_bytes = 0
        state.fh = self.fs.open(path, "wb")

    def close(self) -> str:
        """Finish every shard, name them from the template and write dataset_info.json and features.json."""
        splits_info = []
        for split, state in self.splits.items():
            if state.fh is not None:
                state.fh.close()
                state.fh = None
            count = len(state.temp_paths)
            for i, tmp in enumerate(state.temp_paths):
                final = shard_name(self.template, dataset=self.name, split=split, index=i, count=count)
                self.fs.mv(tmp, f"{self.root}/{final}")
            splits_info.append({"filepathTemplate": self.template, "name": split, "numBytes": str(state.num_bytes),
                                "shardLengths": [str(n) for n in state.shard_lengths]})
        info = {"citation": "", "description": self.description, "fileFormat": "tfrecord",
                "moduleName": "curate.export.rlds", "name": self.name,
                "releaseNotes": {self.version: "Written by curate."}, "splits": splits_info, "version": self.version}
        with self.fs.open(f"{self.root}/{FEATURES_FILE}", "w") as fh:
            json.dump(self.features, fh, indent=2)
        with self.fs.open(f"{self.root}/{INFO_FILE}", "w") as fh:
            json.dump(info, fh, indent=2)
        return self.uri

    def __enter__(self) -> TFDSWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            for state in self.splits.values():
                if state.fh is not None:
                    state.fh.close()


def write_dataset(root: str | Path, examples: Iterable[tuple[str, dict[str, Any]]], *, name: str,
                  features: dict[str, Any], **options: Any) -> str:
    """Write (split, example) pairs as a TFDS dataset directory; returns its URI."""
    with TFDSWriter(root, name=name, features=features, **options) as writer:
        for split, example in examples:
            writer.add(split, example)
    return writer.uri


# ------------------------------------------------------------------------------------------------ episodes
def _camera_spec(episode: Episode, name: str) -> tuple[Any, ...]:
    cam = next(c for c in episode.cameras if c.name == name)
    fmt = next((f.format for s in episode.steps for f in s.frames if f.camera == name), "jpeg")
    channels = 1 if cam.kind == "depth" else 3
    return ("image", [cam.height or -1, cam.width or -1, channels], "png" if fmt == "png" else "jpeg")


def episode_features(episode: Episode) -> dict[str, Any]:
    """The features.json document `write_episodes` uses for episodes shaped like `episode`."""
    cameras = [c.name for c in episode.cameras if not c.missing]
    observation: dict[str, Any] = {name: _camera_spec(episode, name) for name in cameras}
    if episode.state_space is not None:
        observation["state"] = ("tensor", "float32", [episode.state_space.dim])
    step: dict[str, Any] = {
        "observation": observation,
        "action": ("tensor", "float32", [episode.action_space.dim]),
        "reward": ("scalar", "float32"),
        "discount": ("scalar", "float32"),
        "is_first": ("scalar", "bool"),
        "is_last": ("scalar", "bool"),
        "is_terminal": ("scalar", "bool"),
        "language_instruction": ("text",),
        "discrete_action": ("text",),
        "action_args": ("text",),
    }
    meta = {"episode_id": ("text",), "dataset": ("text",), "instruction": ("text",), "file_path": ("text",),
            "curate_episode": ("text",)}
    return features_json({"steps": ("steps", step), "episode_metadata": meta})


def episode_example(episode: Episode, *, cameras: list[str], action_dim: int, state_dim: int | None) -> dict[str, Any]:
    """{leaf path: value} of one episode in the `episode_features` layout.

    Raises:
        RLDSWriteError: a step lacks a camera frame, a frame is a video reference, or a vector has the wrong size.
    """
    n = len(episode.steps)
    if n != episode.n_steps:
        raise RLDSWriteError(f"episode {episode.episode_id}: steps not loaded ({n} of {episode.n_steps})")
    images: dict[str, list[bytes]] = {c: [] for c in cameras}
    actions = np.zeros((n, action_dim), np.float32)
    states = np.zeros((n, state_dim or 0), np.float32)
    for t, step in enumerate(episode.steps):
        by_cam = {f.camera: f for f in step.frames}
        for cam in cameras:
            frame = by_cam.get(cam)
            if frame is None:
                raise RLDSWriteError(f"episode {episode.episode_id} step {t}: no frame for camera {cam!r}")
            if frame.format == "video":
                raise RLDSWriteError(f"episode {episode.episode_id} camera {cam!r}: video frames must be decoded to "
                                     "JPEG/PNG before an RLDS export")
            images[cam].append(frame.read_bytes())
        if step.action:
            if len(step.action) != action_dim:
                raise RLDSWriteError(f"episode {episode.episode_id} step {t}: action has {len(step.action)} values, "
                                     f"the dataset's first episode has {action_dim}")
            actions[t] = step.action
        if state_dim is not None and step.state is not None:
            if len(step.state) != state_dim:
                raise RLDSWriteError(f"episode {episode.episode_id} step {t}: state has {len(step.state)} values, "
                                     f"expected {state_dim}")
            states[t] = step.state
    meta = episode.model_dump(mode="json", exclude={"steps"})
    meta["_steps_without_language"] = [s.index for s in episode.steps if s.language is None]
    example: dict[str, Any] = {
        "steps/action": actions,
        "steps/reward": np.array([s.reward or 0.0 for s in episode.steps], np.float32),
        "steps/discount": np.ones(n, np.float32),
        "steps/is_first": np.array([s.is_first for s in episode.steps]),
        "steps/is_last": np.array([s.is_last for s in episode.steps]),
        "steps/is_terminal": np.array([s.is_terminal for s in episode.steps]),
        "steps/language_instruction": [s.language if s.language is not None else (episode.instruction or "")
                                       for s in episode.steps],
        "steps/discrete_action": [s.discrete_action or "" for s in episode.steps],
        "steps/action_args": [json.dumps(s.action_args) if s.action_args is not None else "" for s in episode.steps],
        "episode_metadata/episode_id": episode.episode_id,
        "episode_metadata/dataset": episode.dataset,
        "episode_metadata/instruction": episode.instruction or "",
        "episode_metadata/file_path": episode.source.uri,
        EPISODE_JSON_KEY: json.dumps(meta, sort_keys=True),
    }
    for cam in cameras:
        example[f"steps/observation/{cam}"] = images[cam]
    if state_dim is not None:
        example["steps/observation/state"] = states
    return example


def write_episodes(episodes: Iterable[Episode], root: str | Path, *, name: str, version: str = "1.0.0",
                   split_of: Callable[[Episode], str] | None = None, template: str = SHARD_X_OF_Y,
                   episodes_per_shard: int = DEFAULT_EPISODES_PER_SHARD, shard_bytes: int = DEFAULT_SHARD_BYTES,
                   description: str = "") -> str:
    """Write episodes (with their steps and frame bytes) as an RLDS dataset at `root` (the `<name>/<version>` dir).

    Streams: one episode is held at a time. Every episode must have the cameras, action and state sizes of the
    first one (an RLDS dataset has one feature spec).

    Args:
        episodes: schemas.Episode objects with steps loaded (e.g. `lake.episode(id, frames="eager")`).
        root: dataset directory to create, any fsspec URI.
        name: the TFDS dataset name.
        split_of: the split of each episode; default `episode.split or "train"`.

    Returns:
        The dataset directory URI (read it back with `curate ingest ROOT --format rlds`).

    Raises:
        RLDSWriteError: an episode does not fit the first episode's spec; nothing is renamed into place for it.
    """
    split_of = split_of or (lambda ep: ep.split or "train")
    writer: TFDSWriter | None = None
    spec: tuple[list[str], int, int | None] | None = None
    for episode in episodes:
        if writer is None:
            cameras = [c.name for c in episode.cameras if not c.missing]
            spec = (cameras, episode.action_space.dim, episode.state_space.dim if episode.state_space else None)
            writer = TFDSWriter(root, name=name, features=episode_features(episode), version=version,
                                template=template, episodes_per_shard=episodes_per_shard, shard_bytes=shard_bytes,
                                description=description)
        assert spec is not None
        cams = [c.name for c in episode.cameras if not c.missing]
        if cams != spec[0]:
            raise RLDSWriteError(f"episode {episode.episode_id} has cameras {cams}, the first episode has {spec[0]}")
        writer.add(split_of(episode), episode_example(episode, cameras=spec[0], action_dim=spec[1],
                                                      state_dim=spec[2]))
    if writer is None:
        raise RLDSWriteError("no episodes to write")
    return writer.close()
