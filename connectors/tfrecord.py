"""TFRecord framing with masked CRC32C, and tf.train.Example in the protobuf wire format, without TensorFlow.

A TFRecord file is a sequence of records::

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

Both CRCs are checked on every record. A bad *data* CRC damages one record only (the framing is intact, so
reading continues with the next record); a bad *length* CRC or a short read means the framing itself can no
longer be trusted, so the rest of the file is reported as one damaged tail.

`tf.train.Example` is `Example{features=1: Features{feature=1: map<string, Feature>}}` with
`Feature` = oneof {bytes_list=1, float_list=2, int64_list=3}, each a `repeated value = 1` (packed or not).

`decode_example` parses with the installed protobuf runtime's C parser (upb), through a descriptor of
tf.train.Example built here at import time (no TensorFlow, no generated code). `decode_example_wire`, a pure-Python
wire-format parser, is the reference it is tested against (same result on every well-formed Example) and the
fallback for inputs the C parser rejects (so the error message is the reference's) or cannot represent exactly (a
map entry without a key). On malformed-but-parseable input the C parser is the more lenient: like protobuf itself
it skips a field whose wire type does not match as an unknown field, where the reference raises.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

import crc32c as _crc32c
import numpy as np

_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

FeatureKind = Literal["bytes", "float", "int64"]
FeatureValue = list[bytes] | np.ndarray
"""bytes features decode to a list of bytes; float to a float32 array; int64 to an int64 array."""


class ExampleDecodeError(ValueError):
    """The bytes are not a well-formed tf.train.Example."""


def masked_crc(data: bytes | memoryview) -> int:
    """The masked CRC32C (Castagnoli) TFRecord stores for `data`."""
    c = _crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class Record:
    """One record of a TFRecord file: its index, byte offset and payload, or why it could not be read.

    `fatal` is True when the framing is broken (no later record can be located).
    """

    index: int
    offset: int
    data: bytes | None = None
    error: str | None = None
    fatal: bool = False


def read_records(fh: IO[bytes], *, check_crc: bool = True) -> Iterator[Record]:
    """Stream the records of an open TFRecord file, checking both CRCs of each.

    A record with a bad data CRC is yielded with `error` set and reading goes on; a truncated record or a bad
    length CRC is yielded as a fatal error and ends the stream.
    """
    index = 0
    offset = 0
    while True:
        header = fh.read(12)
        if not header:
            return
        if len(header) < 12:
            yield Record(index, offset, error=f"truncated record header ({len(header)} of 12 bytes) at byte {offset}",
                         fatal=True)
            return
        (length,) = _U64.unpack_from(header, 0)
        (length_crc,) = _U32.unpack_from(header, 8)
        if check_crc and masked_crc(header[:8]) != length_crc:
            yield Record(index, offset, error=f"length CRC mismatch at byte {offset}: the framing is corrupt",
                         fatal=True)
            return
        data = fh.read(length)
        footer = fh.read(4)
        if len(data) < length or len(footer) < 4:
            yield Record(index, offset, error=f"truncated record at byte {offset}: expected {length} bytes of data, "
                         f"found {len(data)}", fatal=True)
            return
        if check_crc and masked_crc(data) != _U32.unpack(footer)[0]:
            yield Record(index, offset, error=f"data CRC mismatch in record {index} at byte {offset}")
        else:
            yield Record(index, offset, data=data)
        offset += 16 + length
        index += 1


def frame_record(data: bytes) -> bytes:
    """The framed bytes (header, data, footer) of one record."""
    header = _U64.pack(len(data))
    return header + _U32.pack(masked_crc(header)) + data + _U32.pack(masked_crc(data))


def write_record(fh: IO[bytes], data: bytes) -> int:
    """Append one framed record to `fh`; returns the bytes written."""
    framed = frame_record(data)
    fh.write(framed)
    return len(framed)


# ------------------------------------------------------------------------------------------------ wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ExampleDecodeError("varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ExampleDecodeError("varint longer than 10 bytes")


def _fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or payload start, payload end) for each field of a message."""
    pos = start
    end = len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ExampleDecodeError(f"field {field} claims {size} bytes, past the end of its message")
            yield field, wire, pos, pos + size
            pos += size
        elif wire == 0:
            value, pos = _varint(buf, pos)
            yield field, wire, value, pos
        elif wire == 5:
            if pos + 4 > end:
                raise ExampleDecodeError("fixed32 past the end of the message")
            yield field, wire, pos, pos + 4
            pos += 4
        elif wire == 1:
            if pos + 8 > end:
                raise ExampleDecodeError("fixed64 past the end of the message")
            yield field, wire, pos, pos + 8
            pos += 8
        else:
            raise ExampleDecodeError(f"unsupported wire type {wire} for field {field}")


def _packed_varints(buf: bytes, start: int, end: int) -> list[int]:
    out = []
    pos = start
    while pos < end:
        value, pos = _varint(buf, pos)
        out.append(value)
    return out


def _decode_feature(buf: bytes, start: int, end: int) -> tuple[FeatureKind, FeatureValue]:
    for field, wire, a, b in _fields(buf, start, end):
        if wire != 2:
            raise ExampleDecodeError(f"Feature field {field} is not length-delimited")
        if field == 1:
            return "bytes", [buf[s:e] for f, w, s, e in _fields(buf, a, b) if f == 1]
        if field == 2:
            chunks: list[np.ndarray] = []
            for f, w, s, e in _fields(buf, a, b):
                if f != 1:
                    continue
                if w == 2:
                    if (e - s) % 4:
                        raise ExampleDecodeError("packed float list is not a multiple of 4 bytes")
                    chunks.append(np.frombuffer(buf, dtype="<f4", count=(e - s) // 4, offset=s))
                elif w == 5:
                    chunks.append(np.frombuffer(buf, dtype="<f4", count=1, offset=s))
            arr = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            return "float", arr.astype(np.float32, copy=False)
        if field == 3:
            ints: list[int] = []
            for f, w, s, e in _fields(buf, a, b):
                if f != 1:
                    continue
                if w == 2:
                    if buf[s:e].isascii():  # every varint is one byte (bools, small ints): decode in bulk
                        ints.extend(np.frombuffer(buf, dtype=np.uint8, count=e - s, offset=s).tolist())
                    else:
                        ints.extend(_packed_varints(buf, s, e))
                elif w == 0:
                    ints.append(s)
            return "int64", np.array(ints, dtype=np.uint64).view(np.int64)
    return "bytes", []


def decode_example_wire(data: bytes) -> dict[str, tuple[FeatureKind, FeatureValue]]:
    """Decode a serialized tf.train.Example into {feature key: (kind, values)} in pure Python (the reference).

    Raises:
        ExampleDecodeError: the bytes are not a well-formed Example.
    """
    out: dict[str, tuple[FeatureKind, FeatureValue]] = {}
    try:
        for field, wire, a, b in _fields(data):
            if field != 1 or wire != 2:
                continue
            for f2, w2, s, e in _fields(data, a, b):  # Features.feature: map entries
                if f2 != 1 or w2 != 2:
                    continue
                key = None
                value: tuple[FeatureKind, FeatureValue] | None = None
                for f3, w3, s3, e3 in _fields(data, s, e):
                    if f3 == 1 and w3 == 2:
                        key = data[s3:e3].decode("utf-8")
                    elif f3 == 2 and w3 == 2:
                        value = _decode_feature(data, s3, e3)
                if key is None:
                    raise ExampleDecodeError("a feature map entry has no key")
                out[key] = value if value is not None else ("bytes", [])
    except UnicodeDecodeError as exc:
        raise ExampleDecodeError(f"a feature key is not UTF-8: {exc}") from None
    return out


def _example_class() -> Any:
    """The tf.train.Example message class, from a descriptor built at run time in a private pool (so a real
    TensorFlow in the same process never clashes), or None when protobuf is not installed."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:  # pragma: no cover - protobuf is a dependency; the wire parser still works without it
        return None
    fd = descriptor_pb2.FieldDescriptorProto
    pkg = "curate.tfexample"
    proto = descriptor_pb2.FileDescriptorProto(name="curate/tf_example.proto", package=pkg, syntax="proto3")

    def message(name: str) -> Any:
        return proto.message_type.add(name=name)

    for name, kind in (("BytesList", fd.TYPE_BYTES), ("FloatList", fd.TYPE_FLOAT), ("Int64List", fd.TYPE_INT64)):
        message(name).field.add(name="value", number=1, label=fd.LABEL_REPEATED, type=kind)  # packed in proto3
    feature = message("Feature")
    feature.oneof_decl.add(name="kind")
    for number, name, type_name in ((1, "bytes_list", "BytesList"), (2, "float_list", "FloatList"),
                                    (3, "int64_list", "Int64List")):
        feature.field.add(name=name, number=number, label=fd.LABEL_OPTIONAL, type=fd.TYPE_MESSAGE,
                          type_name=f".{pkg}.{type_name}", oneof_index=0)
    features = message("Features")
    features.field.add(name="feature", number=1, label=fd.LABEL_REPEATED, type=fd.TYPE_MESSAGE,
                       type_name=f".{pkg}.Features.FeatureEntry")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=fd.LABEL_OPTIONAL, type=fd.TYPE_STRING)
    entry.field.add(name="value", number=2, label=fd.LABEL_OPTIONAL, type=fd.TYPE_MESSAGE, type_name=f".{pkg}.Feature")
    message("Example").field.add(name="features", number=1, label=fd.LABEL_OPTIONAL, type=fd.TYPE_MESSAGE,
                                 type_name=f".{pkg}.Features")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{pkg}.Example"))


_EXAMPLE = _example_class()


def decode_example(data: bytes) -> dict[str, tuple[FeatureKind, FeatureValue]]:
    """Decode a serialized tf.train.Example into {feature key: (kind, values)}.

    bytes features decode to a list of bytes, float to a float32 array, int64 to an int64 array; a feature with
    no list set decodes as ("bytes", []). Same result as `decode_example_wire` on well-formed input, 2-3x faster.

    Raises:
        ExampleDecodeError: the bytes are not a well-formed Example.
    """
    if _EXAMPLE is None:
        return decode_example_wire(data)
    try:
        entries = _EXAMPLE.FromString(data).features.feature
    except Exception:  # protobuf's DecodeError: let the reference parser say precisely what is wrong
        return decode_example_wire(data)
    if "" in entries:  # a map entry may lack its key, which protobuf reads as "": the reference decides
        return decode_example_wire(data)
    out: dict[str, tuple[FeatureKind, FeatureValue]] = {}
    for key, feature in entries.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            out[key] = ("bytes", list(feature.bytes_list.value))
        elif kind == "float_list":
            out[key] = ("float", np.array(feature.float_list.value, dtype=np.float32))
        elif kind == "int64_list":
            out[key] = ("int64", np.array(feature.int64_list.value, dtype=np.int64))
        else:
            out[key] = ("bytes", [])
    return out


def _enc_varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _enc_varint((field << 3) | 2) + _enc_varint(len(payload)) + payload


def encode_feature(kind: FeatureKind, values: Sequence[bytes] | np.ndarray | Sequence[float] | Sequence[int]) -> bytes:
    """Serialize one `Feature` (bytes, packed float32 or packed int64 list)."""
    if kind == "bytes":
        inner = b"".join(_len_field(1, bytes(v)) for v in values)
        return _len_field(1, inner)
    if kind == "float":
        arr = np.asarray(values, dtype="<f4").ravel()
        return _len_field(2, _len_field(1, arr.tobytes()) if arr.size else b"")
    if kind == "int64":
        arr = np.asarray(values).ravel().astype(np.int64)
        packed = b"".join(_enc_varint(int(v)) for v in arr)
        return _len_field(3, _len_field(1, packed) if arr.size else b"")
    raise ValueError(f"unknown feature kind {kind!r}")


def encode_example(features: Mapping[str, tuple[FeatureKind, Sequence[bytes] | np.ndarray]]) -> bytes:
    """Serialize {key: (kind, values)} as a tf.train.Example (keys sorted, as TFDS writes them)."""
    entries = b"".join(
        _len_field(1, _len_field(1, key.encode("utf-8")) + _len_field(2, encode_feature(kind, values)))
        for key, (kind, values) in sorted(features.items())
    )
    return _len_field(1, entries)
