"""Reading a TFDS dataset directory: dataset_info.json, features.json, shard names, and decoded episodes.

One TFRecord record is one episode: `read_shard` yields, per record, either the decoded leaves
(`RawEpisode`) or the reason it could not be read. Any fsspec URI works (local, s3://, gs://, memory://).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec

from connectors.rlds.features import FeaturesError, FeatureTree, parse_features
from connectors.tfrecord import ExampleDecodeError, decode_example, read_records

OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs")
INFO_FILE = "dataset_info.json"
FEATURES_FILE = "features.json"
READ_BLOCK = 8 * 1024 * 1024


class DatasetInfoError(ValueError):
    """dataset_info.json is missing, not JSON, or lacks what a reader needs."""


@dataclass(frozen=True)
class Shard:
    """One shard file of one split, with the number of episodes dataset_info.json says it holds."""

    split: str
    index: int
    path: str
    episodes: int | None


@dataclass
class DatasetInfo:
    """What dataset_info.json says: name, version and the shards of each split."""

    name: str
    version: str
    splits: dict[str, list[Shard]]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawEpisode:
    """The decoded leaves of one record: step leaves as arrays/lists over T steps, episode leaves as values."""

    index: int
    n_steps: int
    steps: dict[str, Any]
    episode: dict[str, Any]
    size: int


def open_fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of `uri` and the path inside it.

    s3:// and gs:// use s3fs/gcsfs when installed, else pyarrow's native S3/GCS client wrapped for fsspec
    (pyarrow is a dependency anyway; credentials and endpoint come from the usual AWS_* / GCS variables).
    """
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in OBJECT_STORE_SCHEMES:
            raise
        return arrow_fs(uri)


def arrow_fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """pyarrow's S3/GCS filesystem for `uri`, wrapped for fsspec."""
    import pyarrow.fs as pafs
    from fsspec.implementations.arrow import ArrowFSWrapper

    scheme, rest = uri.split("://", 1)
    scheme = {"s3a": "s3", "gcs": "gs"}.get(scheme, scheme)
    fs, path = pafs.FileSystem.from_uri(f"{scheme}://{rest}")
    return ArrowFSWrapper(fs), path


def full_uri(like: str, path: str) -> str:
    """`path` (as a filesystem returned it) as a URI with the scheme of `like` (local paths stay paths)."""
    scheme = like.split("://", 1)[0] if "://" in like else ""
    if scheme and scheme not in ("file", "local"):
        return f"{scheme}://{path.lstrip('/')}"
    return path


def shard_name(template: str, *, dataset: str, split: str, index: int, count: int,
               file_format: str = "tfrecord") -> str:
    """A shard file name from a TFDS `filepathTemplate` ({SHARD_X_OF_Y} and {SHARD_INDEX} both occur)."""
    return (template.replace("{DATASET}", dataset).replace("{SPLIT}", split).replace("{FILEFORMAT}", file_format)
            .replace("{SHARD_X_OF_Y}", f"{index:05d}-of-{count:05d}").replace("{SHARD_INDEX}", f"{index:05d}"))


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def read_info(fs: fsspec.AbstractFileSystem, root: str) -> DatasetInfo:
    """Parse `<root>/dataset_info.json` into shards per split.

    Raises:
        DatasetInfoError: the file is missing or malformed.
    """
    path = _join(root, INFO_FILE)
    try:
        with fs.open(path, "rb") as fh:
            raw = json.loads(fh.read())
    except FileNotFoundError:
        raise DatasetInfoError(f"{path} not found: a TFDS dataset directory holds dataset_info.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetInfoError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("splits"), list):
        raise DatasetInfoError(f"{path} has no `splits` list")
    name = str(raw.get("name") or root.rstrip("/").split("/")[-2])
    file_format = str(raw.get("fileFormat") or "tfrecord")
    if file_format != "tfrecord":
        raise DatasetInfoError(f"{path}: fileFormat {file_format!r} is not supported (only tfrecord)")
    splits: dict[str, list[Shard]] = {}
    for split in raw["splits"]:
        try:
            split_name = str(split["name"])
            lengths = [int(n) for n in split.get("shardLengths", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetInfoError(f"{path}: a split entry is malformed ({exc!r})") from None
        template = split.get("filepathTemplate") or "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
        count = len(lengths)
        splits[split_name] = [
            Shard(split_name, i, _join(root, shard_name(template, dataset=name, split=split_name, index=i,
                                                        count=count, file_format=file_format)), n)
            for i, n in enumerate(lengths)
        ]
    return DatasetInfo(name=name, version=str(raw.get("version", "")), splits=splits, raw=raw)


def read_features(fs: fsspec.AbstractFileSystem, root: str) -> FeatureTree:
    """Parse `<root>/features.json`.

    Raises:
        FeaturesError: missing or malformed.
    """
    path = _join(root, FEATURES_FILE)
    try:
        with fs.open(path, "rb") as fh:
            return parse_features(fh.read())
    except FileNotFoundError:
        raise FeaturesError(f"{path} not found") from None
    except FeaturesError as exc:
        raise FeaturesError(f"{path}: {exc}") from None


def decode_record(data: bytes, tree: FeatureTree, *, index: int) -> RawEpisode:
    """Decode one record into its leaves.

    Raises:
        ExampleDecodeError, FeaturesError: the record is not an Example matching features.json.
    """
    from connectors.rlds.features import decode_leaf

    example = decode_example(data)
    step_leaves = tree.step_leaves()
    n_steps = None
    for probe in ("steps/is_first", "steps/is_last", "steps/reward"):
        if probe in example and probe in tree.leaves and not tree.leaves[probe].shape:
            n_steps = len(example[probe][1])
            break
    if n_steps is None:
        for leaf in step_leaves:
            if leaf.kind in ("image", "text") and leaf.path in example:
                n_steps = len(example[leaf.path][1])
                break
    n_steps = n_steps or 0
    steps: dict[str, Any] = {}
    episode: dict[str, Any] = {}
    for leaf in tree.leaves.values():
        if leaf.path not in example:
            continue
        kind, values = example[leaf.path]
        value = decode_leaf(leaf, kind, values, n_steps if leaf.is_step else None)
        if leaf.is_step:
            if len(value) != n_steps:
                raise FeaturesError(f"step feature {leaf.path!r} has {len(value)} entries for {n_steps} steps")
            steps[leaf.key] = value
        else:
            episode[leaf.path] = value
    return RawEpisode(index=index, n_steps=n_steps, steps=steps, episode=episode, size=len(data))


def read_shard(fs: fsspec.AbstractFileSystem, path: str, tree: FeatureTree, *,
               limit: int | None = None) -> Iterator[tuple[int, RawEpisode | None, bytes | None, str | None]]:
    """Stream (record index, decoded episode, record bytes, error) over one shard; errors do not stop the stream
    unless the framing itself is broken."""
    with fs.open(path, "rb", block_size=READ_BLOCK) as fh:
        seen = 0
        for record in read_records(fh):
            if limit is not None and seen >= limit:
                return
            seen += 1
            if record.error is not None:
                yield record.index, None, None, record.error
                if record.fatal:
                    return
                continue
            assert record.data is not None
            try:
                yield record.index, decode_record(record.data, tree, index=record.index), record.data, None
            except (ExampleDecodeError, FeaturesError) as exc:
                yield record.index, None, None, f"record {record.index} does not decode: {exc}"
