"""TFRecord framing, masked CRC32C and the tf.train.Example wire format."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.tfrecord import (
    ExampleDecodeError,
    decode_example,
    decode_example_wire,
    encode_example,
    frame_record,
    masked_crc,
    read_records,
)


def test_masked_crc_matches_the_tensorflow_definition() -> None:
    import crc32c

    assert crc32c.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    c = 0xE3069283
    assert masked_crc(b"123456789") == (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_records_round_trip_through_framing() -> None:
    payloads = [b"", b"a", b"x" * 1000]
    stream = io.BytesIO(b"".join(frame_record(p) for p in payloads))
    records = list(read_records(stream))
    assert [r.data for r in records] == payloads
    assert [r.offset for r in records] == [0, 16, 33]


def test_flipped_data_byte_fails_that_record_only() -> None:
    blob = bytearray(frame_record(b"hello world") + frame_record(b"second"))
    blob[14] ^= 0x01
    records = list(read_records(io.BytesIO(bytes(blob))))
    assert records[0].error is not None and "data CRC mismatch" in records[0].error and not records[0].fatal
    assert records[1].data == b"second"


def test_flipped_length_byte_is_fatal() -> None:
    blob = bytearray(frame_record(b"hello") + frame_record(b"more"))
    blob[0] ^= 0x02
    records = list(read_records(io.BytesIO(bytes(blob))))
    assert len(records) == 1 and records[0].fatal and "length CRC" in records[0].error


def test_truncated_record_is_fatal_and_names_the_offset() -> None:
    blob = frame_record(b"complete") + frame_record(b"cut short")[:-6]
    records = list(read_records(io.BytesIO(blob)))
    assert records[0].data == b"complete"
    assert records[1].fatal and "truncated record at byte 24" in records[1].error


def test_example_round_trips_every_list_kind() -> None:
    features = {"b": ("bytes", [b"\xff\x00", b""]), "f": ("float", np.array([1.5, -2.25, 3e10], np.float32)),
                "i": ("int64", np.array([0, 1, -1, 2**62, -(2**63)], np.int64)), "empty": ("float", np.array([]))}
    decoded = decode_example(encode_example(features))
    assert decoded["b"] == ("bytes", [b"\xff\x00", b""])
    assert np.array_equal(decoded["f"][1], features["f"][1])
    assert decoded["i"][0] == "int64" and decoded["i"][1].tolist() == features["i"][1].tolist()
    assert decoded["empty"][1].size == 0


def _tag(field: int, wire: int) -> bytes:
    return bytes([(field << 3) | wire])


def _ld(field: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return _tag(field, 2) + bytes([len(payload)]) + payload


def test_unpacked_floats_and_ints_decode_too() -> None:
    floats = _ld(2, _tag(1, 5) + struct.pack("<f", 1.5) + _tag(1, 5) + struct.pack("<f", 2.5))
    ints = _ld(3, _tag(1, 0) + b"\x05" + _tag(1, 0) + b"\x07")
    example = _ld(1, _ld(1, _ld(1, b"f") + _ld(2, floats)) + _ld(1, _ld(1, b"i") + _ld(2, ints)))
    decoded = decode_example(example)
    assert decoded["f"][1].tolist() == [1.5, 2.5]
    assert decoded["i"][1].tolist() == [5, 7]


def test_garbage_is_an_example_decode_error() -> None:
    with pytest.raises(ExampleDecodeError):
        decode_example(b"\x0a\xff\xff\xff\xff\x0f")


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8),
                       st.one_of(st.lists(st.binary(max_size=20), max_size=4).map(lambda v: ("bytes", v)),
                                 st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6).map(lambda v: ("int64", v)),
                                 st.lists(st.floats(width=32, allow_nan=False), max_size=6)
                                 .map(lambda v: ("float", v))),
                       max_size=5))
def test_example_round_trip_property(features: dict) -> None:
    decoded = decode_example(encode_example(features))
    assert set(decoded) == set(features)
    for key, (kind, values) in features.items():
        got_kind, got = decoded[key]
        if values:
            assert got_kind == kind
        assert list(got) == list(values) if kind == "bytes" else np.asarray(got).tolist() == list(values)


def _same_decoding(a: dict, b: dict) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for key in a:
        assert a[key][0] == b[key][0], key
        if a[key][0] == "bytes":
            assert list(a[key][1]) == list(b[key][1]), key
        else:
            assert a[key][1].dtype == b[key][1].dtype, key
            assert np.array_equal(a[key][1], b[key][1], equal_nan=a[key][0] == "float"), key


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(max_size=8),
                       st.one_of(st.lists(st.binary(max_size=20), max_size=4).map(lambda v: ("bytes", v)),
                                 st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6).map(lambda v: ("int64", v)),
                                 st.lists(st.floats(width=32), max_size=6).map(lambda v: ("float", v))),
                       max_size=5))
def test_c_parser_and_reference_parser_agree(features: dict) -> None:
    data = encode_example(features)
    fast, reference = decode_example(data), decode_example_wire(data)
    _same_decoding(fast, reference)


def test_c_parser_agrees_on_unpacked_lists_and_a_missing_key() -> None:
    floats = _ld(2, _tag(1, 5) + struct.pack("<f", 1.5) + _tag(1, 5) + struct.pack("<f", 2.5))
    ints = _ld(3, _tag(1, 0) + b"\x05" + _tag(1, 0) + b"\x07")
    example = _ld(1, _ld(1, _ld(1, b"f") + _ld(2, floats)) + _ld(1, _ld(1, b"i") + _ld(2, ints))
                  + _ld(1, _ld(1, b"none") + _ld(2, b"")))
    _same_decoding(decode_example(example), decode_example_wire(example))
    keyless = _ld(1, _ld(1, _ld(2, floats)))
    with pytest.raises(ExampleDecodeError, match="no key"):
        decode_example(keyless)


def test_c_parser_errors_are_the_reference_errors() -> None:
    for garbage in (b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05\x0a\x03\x0a\x01", _ld(1, _ld(1, _ld(1, b"\xff\xfe")))):
        with pytest.raises(ExampleDecodeError) as fast:
            decode_example(garbage)
        with pytest.raises(ExampleDecodeError) as reference:
            decode_example_wire(garbage)
        assert str(fast.value) == str(reference.value)


def test_the_c_parser_is_in_use() -> None:
    from google.protobuf.internal import api_implementation

    from connectors import tfrecord

    assert tfrecord._EXAMPLE is not None
    assert api_implementation.Type() in ("upb", "cpp")
