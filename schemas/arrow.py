"""Derive Arrow schemas from the pydantic models, so the lake never keeps a hand-written twin.

The mapping is deliberately small: the types the models use, nothing more.

| annotation                         | Arrow                       |
|------------------------------------|-----------------------------|
| str, Literal[...] of str, Enum     | string                      |
| int / float / bool / bytes         | int64 / float64 / bool / binary |
| datetime                           | timestamp[us, UTC]          |
| Annotated[..., ArrowType(t)]       | t (e.g. float32 vectors)    |
| list[X]                            | list<X>                     |
| a BaseModel                        | struct of its fields        |
| dict / Any (free-form JSON)        | string holding JSON         |
| X | None                           | X, nullable                 |

Rows are converted with `model_to_row` / `row_to_model`; JSON fields are (de)serialised at that seam.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel


@dataclass(frozen=True)
class ArrowType:
    """`Annotated` marker that pins the Arrow type of a field (e.g. float32 vectors)."""

    type: pa.DataType


@dataclass(frozen=True)
class JsonField:
    """`Annotated` marker: store this field as a JSON string column."""


M = TypeVar("M", bound=BaseModel)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) != len(get_args(annotation))
        if len(args) == 1:
            return args[0], nullable
        raise TypeError(f"unions other than X | None are not supported in lake models: {annotation!r}")
    return annotation, False


def _is_json(annotation: Any) -> bool:
    if get_origin(annotation) is typing.Annotated:
        return any(isinstance(m, JsonField) for m in annotation.__metadata__)
    return annotation is Any or annotation is dict or get_origin(annotation) is dict


def arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """Return (Arrow type, nullable) for one field annotation."""
    annotation, nullable = _unwrap_optional(annotation)
    if _is_json(annotation):
        inner = get_args(annotation)[0] if get_origin(annotation) is typing.Annotated else annotation
        return pa.string(), nullable or inner is Any
    if get_origin(annotation) is typing.Annotated:
        pinned = [m for m in annotation.__metadata__ if isinstance(m, ArrowType)]
        if pinned:
            return pinned[0].type, nullable
        return arrow_type(get_args(annotation)[0])[0], nullable
    origin = get_origin(annotation)
    if origin is Literal:
        values = get_args(annotation)
        if all(isinstance(v, str) for v in values):
            return pa.string(), nullable
        raise TypeError(f"only string Literals are supported: {annotation!r}")
    if origin in (list, tuple):
        (item,) = get_args(annotation)[:1]
        item_type, item_nullable = arrow_type(item)
        return pa.list_(pa.field("item", item_type, nullable=item_nullable)), nullable
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return pa.struct(model_fields(annotation)), nullable
        if issubclass(annotation, Enum):
            return pa.string(), nullable
        if annotation is bool:
            return pa.bool_(), nullable
        if annotation is int:
            return pa.int64(), nullable
        if annotation is float:
            return pa.float64(), nullable
        if annotation is str:
            return pa.string(), nullable
        if annotation is bytes:
            return pa.binary(), nullable
        if annotation is datetime:
            return pa.timestamp("us", tz="UTC"), nullable
    raise TypeError(f"no Arrow mapping for annotation {annotation!r}")


def _field_annotation(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    annotation = info.annotation
    if info.metadata:
        annotation = typing.Annotated[annotation, *info.metadata]
    return annotation


def model_fields(model: type[BaseModel], *, exclude: frozenset[str] = frozenset()) -> list[pa.Field]:
    """Arrow fields of a model, in declaration order."""
    fields = []
    for name in model.model_fields:
        if name in exclude:
            continue
        dtype, nullable = arrow_type(_field_annotation(model, name))
        fields.append(pa.field(name, dtype, nullable=nullable))
    return fields


def model_schema(model: type[BaseModel], *, exclude: frozenset[str] = frozenset()) -> pa.Schema:
    """The Arrow schema of a lake table whose rows are `model` instances."""
    return pa.schema(model_fields(model, exclude=exclude))


def _json_fields(model: type[BaseModel]) -> dict[str, Any]:
    """Field name -> annotation, for fields that need conversion at the row seam."""
    return {name: _field_annotation(model, name) for name in model.model_fields}


def _to_row_value(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    inner, _ = _unwrap_optional(annotation)
    if _is_json(inner):
        return json.dumps(value, sort_keys=True, default=str)
    if get_origin(inner) is typing.Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) in (list, tuple):
        (item,) = get_args(inner)[:1]
        return [_to_row_value(item, v) for v in value]
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return model_to_row(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _from_row_value(annotation: Any, value: Any) -> Any:
    if value is None:
        return None
    inner, _ = _unwrap_optional(annotation)
    if _is_json(inner):
        return json.loads(value)
    if get_origin(inner) is typing.Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) in (list, tuple):
        (item,) = get_args(inner)[:1]
        return [_from_row_value(item, v) for v in value]
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return row_to_dict(inner, value)
    return value


def model_to_row(obj: BaseModel, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One model instance as a dict that `pa.Table.from_pylist(..., schema=model_schema(...))` accepts."""
    model = type(obj)
    annotations = _json_fields(model)
    return {
        name: _to_row_value(annotations[name], getattr(obj, name))
        for name in model.model_fields
        if name not in exclude
    }


def row_to_dict(model: type[BaseModel], row: dict[str, Any]) -> dict[str, Any]:
    """Undo `model_to_row`: JSON columns parsed back, nested structs recursed."""
    annotations = _json_fields(model)
    return {name: _from_row_value(annotations[name], value) for name, value in row.items() if name in annotations}


def row_to_model(model: type[M], row: dict[str, Any], **extra: Any) -> M:
    """Build a validated model from one Arrow row (as produced by `Table.to_pylist`)."""
    return model.model_validate({**row_to_dict(model, row), **extra})


def construct_trusted(model: type[M], values: dict[str, Any]) -> M:
    """A model instance from values that are already exactly what validation would produce, without validating.

    The mechanism of pydantic's `model_construct` without its per-field default handling: `values` must name every
    field of `model`, with the validated type (float32-rounded vectors as lists of float, bools as bool, ...). For
    connectors building many Step/Frame objects from typed arrays, where validation would only re-check what the
    array types guarantee; each user has a test that its objects equal validated ones, types included.
    """
    obj = _new(model)
    _setattr(obj, "__dict__", values)
    _set_fields_set(obj, set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


_new = object.__new__
_setattr = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__  # the slot descriptors: no attribute lookup
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _value_converter(annotation: Any) -> Any:
    """None when values of `annotation` go into Arrow unchanged; else a function doing what `_to_row_value` does."""
    inner, _ = _unwrap_optional(annotation)
    if _is_json(inner):
        return lambda v: None if v is None else json.dumps(v, sort_keys=True, default=str)
    if get_origin(inner) is typing.Annotated:
        inner = get_args(inner)[0]
    if get_origin(inner) in (list, tuple):
        item = get_args(inner)[0] if get_args(inner) else Any
        convert = _value_converter(item)
        if convert is None:
            return lambda v: None if v is None else list(v)
        return lambda v: None if v is None else [convert(x) for x in v]
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        build = row_builder(inner)
        return lambda v: None if v is None else build(v)
    if inner in (int, float, str, bool, bytes, datetime) or get_origin(inner) is Literal:
        return None
    return lambda v: v.value if isinstance(v, Enum) else v


@functools.lru_cache(maxsize=64)
def row_builder(model: type[BaseModel], *, exclude: frozenset[str] = frozenset()) -> typing.Callable[[Any], dict]:
    """A function turning one `model` instance into exactly the row `model_to_row(obj, exclude=exclude)` returns.

    The per-field conversions are worked out once per model instead of once per row, which matters when rows are
    built by the thousand (ingest staging).
    """
    plan = [(name, _value_converter(_field_annotation(model, name))) for name in model.model_fields
            if name not in exclude]

    def build(obj: Any) -> dict[str, Any]:
        values = obj.__dict__
        return {name: values[name] if convert is None else convert(values[name]) for name, convert in plan}

    return build
