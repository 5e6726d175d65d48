"""features.json: the TFDS feature tree of an RLDS dataset, flattened to leaves, and the per-leaf codec.

Each leaf knows its path (`steps/observation/image_0`), whether it is a step feature (under the `steps`
Dataset) or an episode-level one, its kind (tensor, scalar, image, text), dtype, shape and encoding. `decode`
turns the decoded Example lists of one episode into numpy arrays / bytes / text per leaf; `encode` is its inverse
(used by the writer). Serialization follows TFDS `example_serializer.py`: ints and bools in int64_list, floats
(also float64) in float_list, strings/images/text in bytes_list, `bytes`/`zlib` tensors as raw little-endian
bytes per element.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from connectors.tfrecord import FeatureKind, FeatureValue

LeafKind = Literal["tensor", "scalar", "image", "text"]
CLASS_PREFIX = "tensorflow_datasets.core.features."
CLASSES = {
    "features_dict": f"{CLASS_PREFIX}features_dict.FeaturesDict",
    "dataset": f"{CLASS_PREFIX}dataset_feature.Dataset",
    "tensor": f"{CLASS_PREFIX}tensor_feature.Tensor",
    "scalar": f"{CLASS_PREFIX}scalar.Scalar",
    "image": f"{CLASS_PREFIX}image_feature.Image",
    "text": f"{CLASS_PREFIX}text_feature.Text",
}
_INT_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_DTYPES = {"float16", "float32", "float64", "bfloat16"}


class FeaturesError(ValueError):
    """features.json is malformed or does not match the records."""


@dataclass(frozen=True)
class Leaf:
    """One leaf of the feature tree."""

    path: str
    kind: LeafKind
    dtype: str = "string"
    shape: tuple[int, ...] = ()
    encoding: str = "none"
    image_format: str | None = None
    is_step: bool = False
    description: str = ""

    @property
    def example_kind(self) -> FeatureKind:
        """Which Example list holds this leaf."""
        if self.kind in ("image", "text") or self.dtype == "string" or self.encoding in ("bytes", "zlib"):
            return "bytes"
        if self.dtype in _FLOAT_DTYPES:
            return "float"
        if self.dtype in _INT_DTYPES:
            return "int64"
        raise FeaturesError(f"feature {self.path!r}: unsupported dtype {self.dtype!r}")

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype("bool" if self.dtype == "bool" else "float32" if self.dtype == "bfloat16" else self.dtype)

    @property
    def key(self) -> str:
        """The feature path without the `steps/` prefix, e.g. `observation/image_0`."""
        return self.path[len("steps/"):] if self.is_step else self.path


@dataclass
class FeatureTree:
    """All leaves of a features.json, and the JSON itself (kept so a writer can copy it)."""

    leaves: dict[str, Leaf]
    raw: dict[str, Any] = field(default_factory=dict)

    def step_leaves(self) -> list[Leaf]:
        return [leaf for leaf in self.leaves.values() if leaf.is_step]

    def episode_leaves(self) -> list[Leaf]:
        return [leaf for leaf in self.leaves.values() if not leaf.is_step]


def _dims(node: dict[str, Any], path: str) -> tuple[int, ...]:
    shape = node.get("shape") or {}
    try:
        return tuple(int(d) for d in shape.get("dimensions", []))
    except (TypeError, ValueError):
        raise FeaturesError(f"feature {path!r}: shape dimensions must be integers, got {shape!r}") from None


def parse_features(data: dict[str, Any] | str | bytes) -> FeatureTree:
    """Flatten a features.json document into leaves.

    Raises:
        FeaturesError: the JSON is invalid or a node is not a known TFDS feature class.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise FeaturesError(f"features.json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FeaturesError("features.json must hold a JSON object")
    leaves: dict[str, Leaf] = {}

    def walk(node: Any, path: str, in_steps: bool) -> None:
        if not isinstance(node, dict):
            raise FeaturesError(f"feature {path or '<root>'!r} is not a JSON object")
        cls = node.get("pythonClassName", "")
        desc = node.get("description", "") or ""
        if "featuresDict" in node:
            features = (node["featuresDict"] or {}).get("features")
            if not isinstance(features, dict):
                raise FeaturesError(f"feature {path or '<root>'!r}: featuresDict has no `features` object")
            for name, child in features.items():
                walk(child, f"{path}/{name}" if path else name, in_steps)
        elif "sequence" in node:
            if in_steps:
                raise FeaturesError(f"feature {path!r}: nested Dataset features are not supported")
            walk((node["sequence"] or {}).get("feature"), path, True)
        elif "image" in node:
            img = node["image"] or {}
            leaves[path] = Leaf(path, "image", dtype=img.get("dtype", "uint8"), shape=_dims(img, path),
                                image_format=img.get("encodingFormat"), is_step=in_steps, description=desc)
        elif "text" in node:
            leaves[path] = Leaf(path, "text", is_step=in_steps, description=desc)
        elif "tensor" in node:
            t = node["tensor"] or {}
            dtype = t.get("dtype")
            if dtype not in _INT_DTYPES | _FLOAT_DTYPES | {"string"}:
                raise FeaturesError(f"feature {path!r}: unknown dtype {dtype!r}")
            kind: LeafKind = "scalar" if cls.endswith("Scalar") else "tensor"
            leaves[path] = Leaf(path, kind, dtype=dtype, shape=_dims(t, path), encoding=t.get("encoding") or "none",
                                is_step=in_steps, description=desc)
        else:
            raise FeaturesError(f"feature {path or '<root>'!r}: unknown feature node {cls or sorted(node)!r}")

    walk(data, "", False)
    if not leaves:
        raise FeaturesError("features.json declares no features")
    return FeatureTree(leaves=leaves, raw=data)


# ------------------------------------------------------------------------------------------------ codec
def _reshape(values: np.ndarray, leaf: Leaf, count: int | None) -> np.ndarray:
    shape = leaf.shape
    if count is not None:
        shape = (count, *shape)
    if sum(1 for d in shape if d < 0) > 1:
        raise FeaturesError(f"feature {leaf.path!r}: shape {shape} has more than one unknown dimension")
    try:
        return values.reshape(shape)
    except ValueError:
        raise FeaturesError(f"feature {leaf.path!r}: {values.size} values do not fit shape {shape}") from None


def _raw_tensor(blobs: list[bytes], leaf: Leaf) -> np.ndarray:
    arrays = []
    for blob in blobs:
        if leaf.encoding == "zlib":
            try:
                blob = zlib.decompress(blob)
            except zlib.error as exc:
                raise FeaturesError(f"feature {leaf.path!r}: zlib data is corrupt ({exc})") from None
        dtype = leaf.numpy_dtype.newbyteorder("<") if leaf.numpy_dtype.itemsize > 1 else leaf.numpy_dtype
        arr = np.frombuffer(blob, dtype=dtype)
        arrays.append(_reshape(arr, leaf, None))
    return np.stack(arrays) if arrays else np.zeros((0, *[max(d, 0) for d in leaf.shape]), leaf.numpy_dtype)


def decode_leaf(leaf: Leaf, kind: FeatureKind, values: FeatureValue, n_steps: int | None) -> Any:
    """The value of one leaf: a numpy array ([T, *shape] for a step leaf), a list of bytes (images), or text.

    Raises:
        FeaturesError: the stored list does not match the declared leaf.
    """
    expected = leaf.example_kind
    if kind != expected and not (len(values) == 0):
        raise FeaturesError(f"feature {leaf.path!r} is declared {leaf.dtype} ({expected} list) but stored as {kind}")
    if leaf.kind == "image":
        return list(values)
    if leaf.kind == "text" or leaf.dtype == "string":
        try:
            texts = [bytes(v).decode("utf-8") for v in values]
        except UnicodeDecodeError as exc:
            raise FeaturesError(f"feature {leaf.path!r}: text is not UTF-8 ({exc})") from None
        if leaf.is_step or leaf.shape:
            return texts
        return texts[0] if texts else ""
    if leaf.encoding in ("bytes", "zlib"):
        arr = _raw_tensor(list(values), leaf)
        return arr if leaf.is_step else (arr[0] if len(arr) else arr)
    arr = np.asarray(values)
    if leaf.dtype == "bool":
        arr = arr != 0
    elif expected == "int64":
        arr = arr.astype(leaf.numpy_dtype, copy=False)
    elif leaf.dtype == "float64":
        arr = arr.astype(np.float64)
    if leaf.is_step:
        return _reshape(arr, leaf, n_steps)
    if not leaf.shape:
        if arr.size != 1:
            raise FeaturesError(f"scalar feature {leaf.path!r} holds {arr.size} values")
        return arr.reshape(()).item()
    return _reshape(arr, leaf, None)


def encode_leaf(leaf: Leaf, value: Any) -> tuple[FeatureKind, list[bytes] | np.ndarray]:
    """The Example list of one leaf from its value (inverse of `decode_leaf`)."""
    kind = leaf.example_kind
    if leaf.kind == "image":
        return kind, [bytes(v) for v in value]
    if leaf.kind == "text" or leaf.dtype == "string":
        items = value if isinstance(value, (list, tuple)) else [value]
        return kind, [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in items]
    if leaf.encoding in ("bytes", "zlib"):
        arr = np.asarray(value, dtype=leaf.numpy_dtype)
        rows = arr if leaf.is_step else arr[None]
        blobs = []
        for row in rows:
            blob = np.ascontiguousarray(row).astype(row.dtype.newbyteorder("<"), copy=False).tobytes()
            blobs.append(zlib.compress(blob) if leaf.encoding == "zlib" else blob)
        return kind, blobs
    arr = np.asarray(value)
    arr = arr.astype(np.int64) if kind == "int64" else arr.astype(np.float32)
    return kind, arr.ravel()


def features_json(tree: dict[str, Any]) -> dict[str, Any]:
    """Build a features.json document from a nested spec.

    `tree` maps names to either a nested dict (a FeaturesDict), `("steps", {...})` for the RLDS steps Dataset,
    or a leaf spec: `("tensor", dtype, shape[, encoding])`, `("scalar", dtype)`, `("image", shape, format)`,
    `("text",)`.
    """

    def node(spec: Any) -> dict[str, Any]:
        if isinstance(spec, dict):
            return {"pythonClassName": CLASSES["features_dict"],
                    "featuresDict": {"features": {k: node(v) for k, v in spec.items()}}}
        head = spec[0]
        if head == "steps":
            return {"pythonClassName": CLASSES["dataset"], "sequence": {"feature": node(spec[1]), "length": "-1"}}
        if head == "tensor":
            encoding = spec[3] if len(spec) > 3 else "none"
            return {"pythonClassName": CLASSES["tensor"],
                    "tensor": {"shape": {"dimensions": [str(d) for d in spec[2]]} if spec[2] else {},
                               "dtype": spec[1], "encoding": encoding}}
        if head == "scalar":
            return {"pythonClassName": CLASSES["scalar"], "tensor": {"shape": {}, "dtype": spec[1], "encoding": "none"}}
        if head == "image":
            out: dict[str, Any] = {"shape": {"dimensions": [str(d) for d in spec[1]]}, "dtype": "uint8"}
            if len(spec) > 2 and spec[2]:
                out["encodingFormat"] = spec[2]
            return {"pythonClassName": CLASSES["image"], "image": out}
        if head == "text":
            return {"pythonClassName": CLASSES["text"], "text": {}}
        raise ValueError(f"unknown feature spec {spec!r}")

    return node(tree)
