"""Wire primitives (engine/codec/primitives.py): known vectors, limits, round-trips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.codec.primitives import (
    INT_MAX,
    INT_MIN,
    UINT_MAX,
    CodecError,
    encode_uint,
    read_boolean,
    read_int,
    read_string,
    read_uint,
    write_boolean,
    write_int,
    write_string,
    write_uint,
    zigzag_decode,
    zigzag_encode,
)

uints = st.integers(0, UINT_MAX)
ints = st.integers(INT_MIN, INT_MAX)


def _written(writer, value) -> bytes:
    out = bytearray()
    writer(out, value)
    return bytes(out)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (1280, "800a"),
        (800, "a006"),
        (1795418019299, "e3ab83baa034"),  # Timestamp in PROTOCOL.md 5.4
        (UINT_MAX, "ffffffffffffffffff01"),
    ],
)
def test_uint_known_vectors(value: int, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert encode_uint(value) == data
    assert read_uint(data, 0) == (value, len(data))


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, "00"),
        (-1, "01"),
        (1, "02"),
        (-2, "03"),
        (1795418019299, "c6d786f4c068"),  # BatchMetadata.timestamp in PROTOCOL.md 5.4
        (INT_MAX, "feffffffffffffffff01"),
        (INT_MIN, "ffffffffffffffffff01"),
    ],
)
def test_int_known_vectors(value: int, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert _written(write_int, value) == data
    assert read_int(data, 0) == (value, len(data))


def test_string_and_boolean_known_vectors() -> None:
    assert _written(write_string, "4g") == b"\x024g"
    assert _written(write_string, "") == b"\x00"
    assert _written(write_string, "é") == b"\x02\xc3\xa9"
    assert read_string(b"xx\x024gyy", 2) == ("4g", 5)
    assert _written(write_boolean, True) == b"\x01"
    assert _written(write_boolean, False) == b"\x00"
    assert read_boolean(b"\x00\x01", 1) == (True, 2)
    assert read_boolean(b"\x00\x01", 0) == (False, 1)


def test_boolean_only_one_is_true() -> None:
    # As Go's reader: any byte other than 1 reads as false.
    assert read_boolean(b"\x02", 0) == (False, 1)
    assert read_boolean(b"\xff", 0) == (False, 1)


def test_varint_longer_than_ten_bytes_is_rejected() -> None:
    with pytest.raises(CodecError, match="longer than 10"):
        read_uint(b"\x80" * 10 + b"\x00", 0)
    # Ten bytes is fine (non-canonical zero padding is accepted).
    assert read_uint(b"\x80" * 9 + b"\x00", 0) == (0, 10)


def test_uint_overflowing_64_bits_is_rejected() -> None:
    with pytest.raises(CodecError, match="64 bits"):
        read_uint(b"\xff" * 9 + b"\x02", 0)


def test_non_canonical_varint_is_accepted() -> None:
    assert read_uint(b"\x81\x00", 0) == (1, 2)


@pytest.mark.parametrize("data", [b"", b"\x80", b"\xff\xff", b"\x80\x80\x80"])
def test_truncated_uint(data: bytes) -> None:
    with pytest.raises(CodecError, match="truncated"):
        read_uint(data, 0)
    with pytest.raises(CodecError, match="truncated"):
        read_int(data, 0)


def test_string_past_the_end_is_rejected() -> None:
    with pytest.raises(CodecError, match="past the end"):
        read_string(b"\x05abc", 0)
    with pytest.raises(CodecError, match="truncated"):
        read_string(b"", 0)
    with pytest.raises(CodecError, match="truncated"):
        read_boolean(b"", 0)


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert read_string(b"\x03a\xffb", 0) == ("a\ufffdb", 4)


def test_lone_surrogate_is_written_as_replacement_char() -> None:
    # The tracker does the same (TextEncoder); paired surrogates form one character, as in JS.
    assert _written(write_string, "a\ud800b") == b"\x05a\xef\xbf\xbdb"
    assert _written(write_string, "\ud83d\ude00") == b"\x04\xf0\x9f\x98\x80"


@pytest.mark.parametrize(
    ("writer", "value"),
    [
        (write_uint, -1),
        (write_uint, UINT_MAX + 1),
        (write_int, INT_MAX + 1),
        (write_int, INT_MIN - 1),
    ],
)
def test_out_of_range_values_cannot_be_written(writer, value: int) -> None:
    with pytest.raises(CodecError, match="out of range"):
        writer(bytearray(), value)


@given(ints)
def test_zigzag_is_a_bijection(value: int) -> None:
    raw = zigzag_encode(value)
    assert raw >= 0
    assert zigzag_decode(raw) == value


@given(
    st.lists(
        st.one_of(
            uints.map(lambda v: ("uint", v)),
            ints.map(lambda v: ("int", v)),
            st.text().map(lambda v: ("string", v)),
            st.booleans().map(lambda v: ("boolean", v)),
        )
    )
)
def test_sequences_of_primitives_round_trip(values: list[tuple[str, object]]) -> None:
    # Any: each writer takes its own kind's value, which ``values`` pairs with it.
    writers: dict[str, Callable[[bytearray, Any], object]] = {
        "uint": write_uint,
        "int": write_int,
        "string": write_string,
        "boolean": write_boolean,
    }
    readers = {"uint": read_uint, "int": read_int, "string": read_string, "boolean": read_boolean}
    out = bytearray()
    for kind, value in values:
        writers[kind](out, value)
    data = bytes(out)
    pos = 0
    for kind, value in values:
        decoded, pos = readers[kind](data, pos)
        assert decoded == value
    assert pos == len(data)


@given(st.binary(max_size=40), st.sampled_from([read_uint, read_int, read_string, read_boolean]))
def test_readers_raise_only_codec_error(data: bytes, reader) -> None:
    try:
        _value, pos = reader(data, 0)
    except CodecError:
        return
    assert 0 < pos <= len(data)


@pytest.mark.parametrize("length", range(1, 11))
def test_uint_lengths_at_every_seven_bit_boundary(length: int) -> None:
    smallest = 0 if length == 1 else 1 << (7 * (length - 1))
    largest = min((1 << (7 * length)) - 1, UINT_MAX)
    for value in (smallest, largest):
        data = encode_uint(value)
        assert len(data) == length
        assert read_uint(data + b"\x7f", 0) == (value, length)
        with pytest.raises(CodecError, match="truncated"):
            read_uint(data[:-1], 0)
