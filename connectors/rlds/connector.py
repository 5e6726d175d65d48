"""The RLDS / Open X-Embodiment connector: TFDS dataset directories -> schemas.Episode, without TensorFlow.

Sources: one dataset directory (`<name>/<version>/` with dataset_info.json + features.json), or a root holding
many (searched three levels down), on any fsspec URI. Work units are shards, so the engine parallelises and
resumes per shard. Mapping onto the schema follows the OXE registry (`oxe.py`); an unknown dataset gets the
generic mapping and a warning in `metadata["warnings"]`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, ClassVar

import fsspec
import numpy as np

from connectors.base import BadEpisode, Connector, SourceOptions, StepLayout
from connectors.registry import register
from connectors.rlds.columns import StepArrays, fallback_code
from connectors.rlds.columns import build as build_columns
from connectors.rlds.features import FeaturesError, FeatureTree
from connectors.rlds.oxe import (
    ACTION_DICT_NAMES,
    ACTION_DICT_ORDER,
    ACTION_NAMES,
    STATE_NAMES,
    DatasetSpec,
    generic_spec,
    lookup,
    names_for,
)
from connectors.rlds.reader import (
    FEATURES_FILE,
    INFO_FILE,
    DatasetInfoError,
    RawEpisode,
    full_uri,
    open_fs,
    read_features,
    read_info,
    read_shard,
)
from schemas import Camera, Embodiment, Episode, Frame, Source, Space, Step, episode_id_for, fingerprint_of
from schemas.arrow import construct_trusted

UNIT_PREFIX = "rlds-shard:"
CURATE_EPISODE_KEY = "episode_metadata/curate_episode"
"""Written by our RLDS writer: the full episode metadata as JSON, restored on read."""
DEFAULT_HZ = 10.0
CHUNK_EPISODES = 64
CHUNK_BYTES = 32 * 1024 * 1024
"""Columnar episodes are converted in chunks of this many episodes or record bytes (their columns are built once
per chunk); memory stays bounded by the chunk."""
PLACEHOLDER_TEXT_KEYS = ("language_instruction", "observation/natural_language_instruction", "instruction")


class UnknownDatasetWarning(UserWarning):
    """An RLDS dataset is not in the OXE registry; the generic mapping was used."""


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return open_fs(uri)


def dataset_dirs(uri: str) -> list[str]:
    """TFDS dataset directories at or under `uri` (up to three levels: root/name/version)."""
    fs, root = _fs(uri)
    root = root.rstrip("/")
    found: list[str] = []
    frontier = [root]
    for _depth in range(4):
        nxt = []
        for d in frontier:
            try:
                if fs.exists(f"{d}/{INFO_FILE}") and fs.exists(f"{d}/{FEATURES_FILE}"):
                    found.append(d)
                    continue
                if _depth < 3:
                    nxt.extend(sorted(p["name"].rstrip("/") for p in fs.ls(d, detail=True) if p["type"] == "directory"))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
        frontier = nxt
    return [full_uri(uri, d) for d in sorted(found)]


@lru_cache(maxsize=32)
def _tree(dataset_dir: str) -> FeatureTree:
    fs, root = _fs(dataset_dir)
    return read_features(fs, root)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _codepoints(arr: np.ndarray) -> str:
    arr = np.asarray(arr).ravel()
    zeros = np.flatnonzero(arr == 0)
    end = int(zeros[0]) if zeros.size else arr.size
    return "".join(map(chr, arr[:end].tolist()))


def _flat(steps: dict[str, Any], key: str, n: int) -> np.ndarray | None:
    value = steps.get(key)
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    return arr.reshape(n, -1) if n else arr.reshape(0, -1)


class _Mapper:
    """Maps the decoded leaves of one dataset onto the schema (computed once per dataset)."""

    def __init__(self, dataset: str, tfds_name: str, tree: FeatureTree) -> None:
        self.dataset = dataset
        found = lookup(tfds_name)
        self.spec: DatasetSpec = found or generic_spec(tfds_name)
        self.warnings: list[str] = []
        self.curate = CURATE_EPISODE_KEY in tree.leaves
        if found is None and not self.curate:
            self.warnings.append(f"RLDS dataset {tfds_name!r} is not in the OXE registry: generic mapping used "
                                 "(every image is a camera, the text field is the instruction)")
        if self.spec.control_hz is None and not self.curate:
            self.warnings.append(f"control rate of {tfds_name!r} is unknown; timestamps assume {DEFAULT_HZ:g} Hz")
        self.hz = self.spec.control_hz or DEFAULT_HZ
        leaves = {leaf.key: leaf for leaf in tree.step_leaves()}
        self.leaves = leaves
        roles = {f"observation/{k}": r for k, r in self.spec.camera_roles().items()}
        images = [k for k, leaf in leaves.items() if leaf.kind == "image"]
        order = {"primary": 0, "secondary": 1, "wrist": 2}
        self.images = sorted(images, key=lambda k: (order.get(roles.get(k, ""), 3), images.index(k)))
        self.roles = {k.split("/")[-1]: roles[k] for k in self.images if k in roles}
        self.camera_names = {k: k.split("/")[-1] if k.count("/") <= 1
                             else k.replace("observation/", "").replace("/", "_") for k in self.images}
        # instruction
        self.instruction_key: str | None = None
        self.instruction_kind = self.spec.instruction_kind
        if self.spec.instruction_key and self.spec.instruction_key in leaves:
            self.instruction_key = self.spec.instruction_key
        else:
            texts = [k for k, leaf in leaves.items()
                     if leaf.kind == "text" or (leaf.dtype == "string" and not leaf.shape)]
            preferred = [k for k in PLACEHOLDER_TEXT_KEYS if k in texts]
            self.instruction_key = (preferred or texts or [None])[0]
            self.instruction_kind = "text"
            if self.instruction_key is None and "observation/instruction" in leaves:
                self.instruction_key, self.instruction_kind = "observation/instruction", "codepoints"
        self.extra_instruction_keys = [k for k in self.spec.extra_instruction_keys if k in leaves]
        # action
        if "action" in leaves:
            self.action_keys = ["action"]
            self.action_names = names_for(self.spec.action_encoding, self._width("action"), ACTION_NAMES, "action")
        else:
            subs = [k for k in leaves if k.startswith("action/") and leaves[k].dtype != "string"]
            rank = {name: i for i, name in enumerate(ACTION_DICT_ORDER)}
            subs.sort(key=lambda k: (rank.get(k.split("/", 1)[1], len(rank)), k))
            self.action_keys = subs
            self.action_names = []
            for k in subs:
                short = k.split("/", 1)[1]
                width = self._width(k)
                names = ACTION_DICT_NAMES.get(short)
                self.action_names.extend(names if names and len(names) == width else
                                         [short] if width == 1 else [f"{short}_{i}" for i in range(width)])
        self.action_kind = "joint_pos" if self.spec.action_encoding == "JOINT_POS" else (
            "eef_delta" if not self.spec.generic else "other")
        # state
        self.state_keys = [k for k in self.spec.state_keys if k in leaves]
        if not self.state_keys and "observation/state" in leaves:
            self.state_keys = ["observation/state"]
        width = sum(self._width(k) for k in self.state_keys)
        self.state_names = names_for(self.spec.state_encoding, width, STATE_NAMES, "state") if width else []
        self.state_kind = "joint_pos" if self.spec.state_encoding == "JOINT" else (
            "eef_abs" if self.spec.state_encoding in ("POS_EULER", "POS_QUAT") else "other")
        used = {"discrete_action", "action_args", "reward", "is_first", "is_last", "is_terminal",
                *self.images, *self.action_keys, *self.state_keys}
        if self.instruction_key:
            used.add(self.instruction_key)
        used.update(self.extra_instruction_keys)
        self.unmapped = sorted(k for k in leaves if k not in used)

    def _width(self, key: str) -> int:
        leaf = self.leaves[key]
        return int(np.prod([d for d in leaf.shape if d > 0])) if leaf.shape else 1

    def cameras(self, raw: RawEpisode) -> list[Camera]:
        cams = []
        for key in self.images:
            leaf = self.leaves[key]
            h, w = (leaf.shape[0], leaf.shape[1]) if len(leaf.shape) >= 2 else (-1, -1)
            if (h < 0 or w < 0) and raw.steps.get(key):
                h, w = _image_size(raw.steps[key][0])
            depth = "depth" in key or (len(leaf.shape) == 3 and leaf.shape[2] == 1 and leaf.dtype != "uint8")
            cams.append(Camera(name=self.camera_names[key], kind="depth" if depth else "rgb",
                               height=max(h, 0), width=max(w, 0)))
        return cams

    def instruction(self, raw: RawEpisode) -> tuple[str | None, list[str], list[str | None]]:
        """(canonical instruction, alternatives, per-step language)."""
        per_step: list[str | None] = [None] * raw.n_steps
        if self.instruction_key and self.instruction_key in raw.steps:
            values = raw.steps[self.instruction_key]
            if self.instruction_kind == "codepoints":
                per_step = [_codepoints(v) for v in values]
            else:
                per_step = [_text(v) for v in values]
        distinct: list[str] = []
        for text in per_step:
            if text and text not in distinct:
                distinct.append(text)
        for key in self.extra_instruction_keys:
            for text in raw.steps.get(key, [])[:1]:
                if _text(text) and _text(text) not in distinct:
                    distinct.append(_text(text))
        canonical = distinct[0] if distinct else (per_step[0] if per_step else None)
        return canonical, distinct[1:], per_step

    def actions(self, raw: RawEpisode) -> np.ndarray:
        parts = [_flat(raw.steps, k, raw.n_steps) for k in self.action_keys]
        parts = [p for p in parts if p is not None]
        return np.concatenate(parts, axis=1) if parts else np.zeros((raw.n_steps, 0))

    def states(self, raw: RawEpisode) -> np.ndarray | None:
        parts = [_flat(raw.steps, k, raw.n_steps) for k in self.state_keys]
        parts = [p for p in parts if p is not None]
        return np.concatenate(parts, axis=1) if parts else None


def _image_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.height, img.width
    except Exception:  # an undecodable image: size unknown, the quality check reports it
        return 0, 0


def _image_format(data: bytes, declared: str | None) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"\x89PNG":
        return "png"
    return declared or "png"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"bytes_hex": value.hex()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


_TRUSTED_FORMATS = frozenset({"jpeg", "png"})


def _camera_frames(camera: str, values: list[Any], declared: str | None, n: int) -> list[Frame]:
    """The frames of one camera over the first `n` steps; each built without validation when its values are already
    what validation would produce (JPEG/PNG bytes), else validated as before."""
    frames = []
    for data in values[:n]:
        fmt = _image_format(data, declared)
        if fmt in _TRUSTED_FORMATS and type(data) is bytes:
            frames.append(construct_trusted(Frame, {"camera": camera, "format": fmt, "data": data, "video_uri": None,
                                                    "video_timestamp_s": None}))
        else:
            frames.append(Frame(camera=camera, format=fmt, data=data))  # type: ignore[arg-type]
    return frames


def _per_step(values: Any, n: int, convert: Any, default: Any) -> list[Any]:
    """`convert(values[t])` for every step, in bulk when `values` is a 1-D array."""
    if values is None:
        return [default] * n
    arr = np.asarray(values)
    if arr.ndim == 1 and arr.dtype.kind in "biuf":
        return arr.astype(bool if convert is bool else np.float64).tolist()
    return [convert(np.asarray(values[t]).ravel()[0]) if convert is float else convert(values[t]) for t in range(n)]


def _steps(raw: RawEpisode, mapper: _Mapper, *, hz: float, per_step: list[str | None], actions: np.ndarray,
           states: np.ndarray | None, restored: dict[str, Any] | None = None) -> list[Step]:
    """The Step objects of one episode, built from the decoded arrays.

    Every value is already of its validated type (float32-rounded lists, bool, float, str), so steps are built
    without re-validation (`construct_trusted`); a value of any other type goes through validation as before.
    `test_trusted_steps_equal_validated_steps` checks both paths agree.
    """
    n = raw.n_steps
    rewards = _per_step(raw.steps.get("reward"), n, float, None)
    firsts = _per_step(raw.steps.get("is_first"), n, bool, None)
    lasts = _per_step(raw.steps.get("is_last"), n, bool, False)
    terminals = _per_step(raw.steps.get("is_terminal"), n, bool, False)
    if raw.steps.get("is_first") is None:
        firsts = [t == 0 for t in range(n)]
    actions32 = actions.astype(np.float32).tolist() if actions.size else [[] for _ in range(n)]
    states32 = states.astype(np.float32).tolist() if states is not None else [None] * n
    cameras = [_camera_frames(mapper.camera_names[k], raw.steps[k], mapper.leaves[k].image_format, n)
               for k in mapper.images if raw.steps.get(k) is not None]
    discrete = args = None
    no_language: set[int] = set()
    if restored is not None:
        discrete = raw.steps.get("discrete_action")
        args = raw.steps.get("action_args")
        no_language = set(restored.get("_steps_without_language", []))
    steps = []
    for t in range(n):
        values = {
            "index": t, "timestamp_s": t / hz, "action": actions32[t], "state": states32[t], "reward": rewards[t],
            "is_first": firsts[t], "is_last": lasts[t], "is_terminal": terminals[t],
            "language": None if t in no_language else (per_step[t] or None),
            "discrete_action": discrete[t] if discrete is not None and discrete[t] else None,
            "action_args": json.loads(args[t]) if args is not None and args[t] else None,
            "frames": [frames[t] for frames in cameras if t < len(frames)],
        }
        trusted = (type(values["discrete_action"]) in (str, type(None))
                   and type(values["action_args"]) in (dict, type(None))
                   and type(values["language"]) in (str, type(None)))
        steps.append(construct_trusted(Step, values) if trusted else Step(**values))
    return steps


def _scalars(values: Any, n: int, kind: type, default: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """One value per step (reward, is_last, ...) as (numpy values, validity or None when all are present): what
    `_per_step` gives, without a list when the decoded values are already a 1-D numeric array."""
    dtype = np.float64 if kind is float else bool
    arr = None if values is None else np.asarray(values)
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "biuf":
        return arr.astype(dtype, copy=False), None
    listed = _per_step(values, n, kind, default)
    valid = np.array([v is not None for v in listed], bool)
    filled = np.array([v if v is not None else 0 for v in listed], dtype).reshape(n)
    return filled, None if valid.all() else valid


def _step_arrays(raw: RawEpisode, mapper: _Mapper, *, hz: float, per_step: list[str | None], actions: np.ndarray,
                 states: np.ndarray | None, restored: dict[str, Any] | None = None) -> StepArrays:
    """The per-step values of one episode for its columns, straight from the decoded arrays: the same rows
    `_steps` gives as objects (`test_columnar_and_object_paths_store_identical_rows*` check)."""
    n = raw.n_steps
    firsts = raw.steps.get("is_first")
    no_language: set[int] = set(restored.get("_steps_without_language", [])) if restored is not None else set()
    discrete = args = None
    if restored is not None:
        discrete = raw.steps.get("discrete_action")
        args = raw.steps.get("action_args")
    cams = [(mapper.camera_names[k], raw.steps[k][:n], fallback_code(mapper.leaves[k].image_format))
            for k in mapper.images if raw.steps.get(k) is not None]
    if any(len(values) != n for _, values, _ in cams):  # `decode_record` already rejects such a record
        raise ValueError(f"a camera does not have one image per step ({n} steps)")
    reward, reward_valid = _scalars(raw.steps.get("reward"), n, float, None)
    return StepArrays(
        n=n, hz=hz,
        actions=(actions if actions.size else np.zeros((n, 0))).astype(np.float32).reshape(n, -1),
        states=None if states is None else states.astype(np.float32).reshape(n, -1),
        reward=reward, reward_valid=reward_valid,
        is_first=np.arange(n) == 0 if firsts is None else _scalars(firsts, n, bool, None)[0],
        is_last=_scalars(raw.steps.get("is_last"), n, bool, False)[0],
        is_terminal=_scalars(raw.steps.get("is_terminal"), n, bool, False)[0],
        language=[None if t in no_language else (per_step[t] or None) for t in range(n)] if no_language
        else [text or None for text in per_step],
        discrete=[d or None for d in discrete] if discrete is not None else None,
        args=[_args_json(a) for a in args] if args is not None else None,
        frames=[v for frames in zip(*(values for _, values, _ in cams), strict=True) for v in frames],
        cameras=[name for name, _, _ in cams], fallback=[code for _, _, code in cams])


def _args_json(value: str | None) -> str | None:
    """`action_args` as the lake stores it (sorted keys), from the JSON our writer stored."""
    return json.dumps(json.loads(value), sort_keys=True, default=str) if value else None


def to_episode(raw: RawEpisode, mapper: _Mapper, *, dataset: str, dataset_dir: str, split: str, shard: str,
               record_bytes: bytes, tfds_name: str, version: str, layout: StepLayout = "objects") -> Episode:
    """Convert one decoded record to a schemas.Episode, its steps as Step objects or (`layout="columns"`) as
    Arrow columns."""
    episode, arrays = _convert(raw, mapper, dataset=dataset, dataset_dir=dataset_dir, split=split, shard=shard,
                               record_bytes=record_bytes, tfds_name=tfds_name, version=version, layout=layout)
    return episode if arrays is None else episode.attach_columns(build_columns([arrays])[0])


def _convert(raw: RawEpisode, mapper: _Mapper, *, dataset: str, dataset_dir: str, split: str, shard: str,
             record_bytes: bytes, tfds_name: str, version: str,
             layout: StepLayout) -> tuple[Episode, StepArrays | None]:
    """The episode (without steps when `layout="columns"`) and, for that layout, the arrays of its columns."""
    key = f"{tfds_name}/{version}/{split}/{shard}#{raw.index}"
    instruction, alternatives, per_step = mapper.instruction(raw)
    actions = mapper.actions(raw)
    states = mapper.states(raw)
    restored = json.loads(raw.episode[CURATE_EPISODE_KEY]) if CURATE_EPISODE_KEY in raw.episode else None
    hz = float(restored.get("control_hz") or mapper.hz) if restored is not None else mapper.hz
    arrays = None
    if layout == "columns":
        arrays = _step_arrays(raw, mapper, hz=hz, per_step=per_step, actions=actions, states=states,
                              restored=restored)
        steps: list[Step] = []
    else:
        steps = _steps(raw, mapper, hz=hz, per_step=per_step, actions=actions, states=states, restored=restored)
    metadata: dict[str, Any] = {
        "rlds": {"tfds_name": tfds_name, "version": version, "split": split, "shard": shard, "record": raw.index,
                 "dataset_dir": dataset_dir, "bytes": raw.size},
        "episode_features": {k: _jsonable(v) for k, v in raw.episode.items()},
        "camera_roles": mapper.roles,
        "unmapped_step_features": mapper.unmapped,
    }
    if mapper.warnings:
        metadata["warnings"] = list(mapper.warnings)
    if restored is not None:
        episode = _restore(raw, restored, steps, metadata, dataset=dataset, key=key, record_bytes=record_bytes,
                           uri=f"{dataset_dir}/{shard}", split=split, hz=hz)
    else:
        episode = _mapped(raw, mapper, steps, metadata, dataset=dataset, key=key, record_bytes=record_bytes,
                          uri=f"{dataset_dir}/{shard}", split=split, instruction=instruction,
                          alternatives=alternatives, with_state=states is not None)
    return episode, arrays


def _mapped(raw: RawEpisode, mapper: _Mapper, steps: list[Step], metadata: dict[str, Any], *, dataset: str,
            key: str, record_bytes: bytes, uri: str, split: str, instruction: str | None, alternatives: list[str],
            with_state: bool) -> Episode:
    """An episode of a third-party RLDS dataset, mapped through the OXE registry (or the generic mapping)."""
    spec = mapper.spec
    n = raw.n_steps
    success = raw.episode.get("success")
    return Episode(
        episode_id=episode_id_for(dataset, key),
        dataset=dataset,
        source=Source(format="rlds", uri=uri, key=key, fingerprint=fingerprint_of(record_bytes)),
        embodiment=Embodiment(robot=spec.robot, kind=spec.kind, is_sim=spec.is_sim),  # type: ignore[arg-type]
        action_space=Space(kind=mapper.action_kind, dim=len(mapper.action_names), names=mapper.action_names),  # type: ignore[arg-type]
        state_space=Space(kind=mapper.state_kind, dim=len(mapper.state_names), names=mapper.state_names)  # type: ignore[arg-type]
        if with_state else None,
        control_hz=mapper.hz,
        instruction=instruction,
        instructions_alt=alternatives,
        cameras=mapper.cameras(raw),
        n_steps=n,
        duration_s=n / mapper.hz,
        success=bool(success) if isinstance(success, (bool, int, np.bool_)) else None,
        split=split,
        metadata=metadata,
        steps=steps,
    )


def _restore(raw: RawEpisode, stored: dict[str, Any], steps: list[Step], metadata: dict[str, Any], *, dataset: str,
             key: str, record_bytes: bytes, uri: str, split: str, hz: float) -> Episode:
    """An episode written by our RLDS writer: every field comes back from its `curate_episode` JSON (`stored`)."""
    raw.episode.pop(CURATE_EPISODE_KEY)
    metadata["episode_features"].pop(CURATE_EPISODE_KEY, None)
    state_space = stored.get("state_space")
    metadata = {**stored.get("metadata", {}), "rlds": metadata["rlds"],
                "original": {"episode_id": stored.get("episode_id"), "source": stored.get("source")}}
    return Episode(
        episode_id=episode_id_for(dataset, key), dataset=dataset,
        source=Source(format="rlds", uri=uri, key=key, fingerprint=fingerprint_of(record_bytes)),
        embodiment=Embodiment(**stored["embodiment"]), action_space=Space(**stored["action_space"]),
        state_space=Space(**state_space) if state_space else None, control_hz=hz,
        instruction=stored.get("instruction"), instructions_alt=stored.get("instructions_alt", []),
        segments=stored.get("segments", []), cameras=stored.get("cameras", []), n_steps=raw.n_steps,
        duration_s=float(stored.get("duration_s", raw.n_steps / hz)), success=stored.get("success"),
        scene=stored.get("scene"), task_type=stored.get("task_type"), objects=stored.get("objects", []),
        split=split, tags=stored.get("tags", []), notes=stored.get("notes"), metadata=metadata, steps=steps,
    )


def _finish(chunk: list[Episode | BadEpisode | tuple[Episode, StepArrays]],
            shard_uri: str) -> Iterator[Episode | BadEpisode]:
    """The episodes of a chunk in record order, those converted to arrays with their columns attached (built for
    the whole chunk at once; per episode when the chunk fails, so only the bad episode is rejected)."""
    pending = [item for item in chunk if isinstance(item, tuple)]
    try:
        columns = iter(build_columns([arrays for _, arrays in pending]))
    except ValueError:
        columns = None
    for item in chunk:
        if not isinstance(item, tuple):
            yield item
            continue
        episode, arrays = item
        try:
            yield episode.attach_columns(next(columns) if columns is not None else build_columns([arrays])[0])
        except ValueError as exc:
            yield BadEpisode(file=shard_uri, record=str(episode.metadata["rlds"]["record"]),
                             reason=f"cannot convert: {exc}")


def _encode_unit(dataset_dir: str, split: str, shard_path: str, dataset: str | None) -> str:
    return UNIT_PREFIX + json.dumps({"dir": dataset_dir, "split": split, "shard": shard_path, "dataset": dataset})


def _decode_unit(unit: str) -> dict[str, Any]:
    return json.loads(unit[len(UNIT_PREFIX):])


@register
class RLDSConnector(Connector):
    """RLDS / TFDS (Open X-Embodiment) dataset directories."""

    name = "rlds"
    description = "RLDS / Open X-Embodiment TFDS datasets (TFRecord shards), read without TensorFlow"
    version = "1.0.0"
    release_notes: ClassVar[dict[str, str]] = {
        "1.0.0": "TFRecord + Example decoding, every features.json leaf kind, OXE registry."}

    def probe(self, uri: str) -> bool:
        try:
            if uri.startswith(UNIT_PREFIX):
                return True
            return bool(dataset_dirs(uri))
        except Exception:  # probe never raises on foreign input
            return False

    def list_units(self, uri: str, options: SourceOptions) -> list[str]:
        if uri.startswith(UNIT_PREFIX):
            return [uri]
        units = []
        for d in dataset_dirs(uri):
            fs, root = _fs(d)
            try:
                info = read_info(fs, root)
            except DatasetInfoError as exc:
                units.append(_encode_unit(d, "", f"{d}/{INFO_FILE}#error:{exc}", options.dataset))
                continue
            for split, shards in info.splits.items():
                if options.splits and split not in options.splits:
                    continue
                units.extend(_encode_unit(d, split, full_uri(d, s.path), options.dataset) for s in shards)
        return units

    def episodes(self, unit: str, options: SourceOptions) -> Iterator[Episode | BadEpisode]:
        spec = _decode_unit(unit) if unit.startswith(UNIT_PREFIX) else None
        if spec is None:
            for u in self.list_units(unit, options):
                yield from self.episodes(u, options)
            return
        shard_uri: str = spec["shard"]
        if "#error:" in shard_uri:
            path, reason = shard_uri.split("#error:", 1)
            yield BadEpisode(file=path, record="*", reason=reason)
            return
        dataset_dir = spec["dir"]
        fs, root = _fs(dataset_dir)
        try:
            info = read_info(fs, root)
            tree = _tree(dataset_dir)
        except (DatasetInfoError, FeaturesError) as exc:
            yield BadEpisode(file=f"{dataset_dir}/{FEATURES_FILE}", record="*", reason=str(exc))
            return
        dataset = spec.get("dataset") or options.dataset or info.name
        mapper = _Mapper(dataset, info.name, tree)
        for message in mapper.warnings:
            warnings.warn(message, UnknownDatasetWarning, stacklevel=2)
        shard_fs, shard_path = _fs(shard_uri)
        shard = shard_path.rstrip("/").split("/")[-1]
        chunk: list[Episode | BadEpisode | tuple[Episode, StepArrays]] = []
        size = 0
        per_chunk = CHUNK_EPISODES if options.layout == "columns" else 1
        try:
            for index, raw, data, error in read_shard(shard_fs, shard_path, tree, limit=options.limit):
                if error is not None or raw is None or data is None:
                    chunk.append(BadEpisode(file=shard_uri, record=str(index), reason=error or "unreadable record"))
                else:
                    try:
                        episode, arrays = _convert(raw, mapper, dataset=dataset, dataset_dir=dataset_dir,
                                                   split=spec["split"], shard=shard, record_bytes=data,
                                                   tfds_name=info.name, version=info.version, layout=options.layout)
                        chunk.append(episode if arrays is None else (episode, arrays))
                        size += len(data)
                    except (ValueError, FeaturesError) as exc:
                        chunk.append(BadEpisode(file=shard_uri, record=str(index), reason=f"cannot convert: {exc}"))
                if len(chunk) >= per_chunk or size >= CHUNK_BYTES:
                    yield from _finish(chunk, shard_uri)
                    chunk, size = [], 0
            yield from _finish(chunk, shard_uri)
        except FileNotFoundError:
            yield BadEpisode(file=shard_uri, record="*", reason="shard file listed in dataset_info.json is missing")
