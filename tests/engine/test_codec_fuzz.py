"""Bounded-time fuzzing of the web codec (``engine/codec/web.py``, ``engine/codec/primitives.py``),
beyond ``test_codec_web_props.py``: mutations of the real tracker's batches (byte ranges
inserted, deleted, replaced, frames dropped, duplicated, swapped, resized, varints made over-long,
two batches spliced), every message type's decoder fed arbitrary bodies, the readers at every
offset, and round trips with every field at its extremes (lone surrogates, huge strings, the
integer bounds). Only :class:`CodecError` may come out of the decoders.

The budget is ``tests.soak.budget.fuzz_settings`` (``REPLAYD_FUZZ_SCALE`` for longer runs).
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.codec.primitives import (
    INT_MAX,
    INT_MIN,
    UINT_MAX,
    CodecError,
    read_boolean,
    read_int,
    read_string,
    read_uint,
)
from engine.codec.web import (
    MESSAGE_CLASSES,
    BatchMetadata,
    WebMessage,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
    iter_frames,
    iter_messages,
)
from tests.engine.test_codec_web_props import _only_codec_errors
from tests.soak.budget import fuzz_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = {
    path.name: path.read_bytes()
    for path in sorted((FIXTURES / "real-tracker").glob("*.bin"))
    + sorted((FIXTURES / "web-basic").glob("*.bin"))
    if not path.name.endswith(".gzip.bin")
}
GZIPPED = (FIXTURES / "real-tracker" / "shop-page0-batch1.gzip.bin").read_bytes()
SAMPLES = sorted(REAL.values())
HUGE = "x" * 300_000 + "\u00e9\U0001f600"
# Each field kind at its extremes; strings: a lone surrogate, a huge one, NUL, astral, empty.
EXTREMES: dict[str, list[Any]] = {
    "uint": [0, 1, 2**63 - 1, 2**63, UINT_MAX],
    "int": [INT_MIN, -1, 0, INT_MAX],
    "string": ["", "\ud800", "a\udfffb", "\x00", "\U0010ffff", HUGE],
    "boolean": [False, True],
}


def _only_codec_errors_everywhere(data: bytes) -> None:
    """As the props test's helper, plus a full decode (every type's decoder runs)."""
    _only_codec_errors(data)
    with contextlib.suppress(CodecError):
        list(iter_messages(data))


def test_the_gzip_fixture_is_one_of_the_plain_ones() -> None:
    assert gzip.decompress(GZIPPED) in SAMPLES  # the samples cover what the wire carried


# -- mutations of real batches -------------------------------------------------------------------


def _frames(data: bytes) -> list[bytes]:
    """The batch's header and frames as separate byte strings (they concatenate to ``data``)."""
    header, *frames = list(iter_frames(data))  # every sample is sized: it starts with a header
    assert header[0] == 81
    ends = [header[2]] + [end for _, _, end in frames]
    pieces = [data[: ends[0]]] + [data[a:b] for a, b in itertools.pairwise(ends)]
    assert b"".join(pieces) == data  # the frames tile the batch
    return pieces


byte_mutation = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "overlong"]),
    st.integers(0, 2**32),
    st.binary(min_size=1, max_size=16),
)
frame_mutation = st.tuples(
    st.sampled_from(["drop", "duplicate", "swap", "resize", "truncate"]),
    st.integers(0, 2**32),
    st.integers(0, 2**32),
)


def _mutate_bytes(data: bytearray, op: tuple[str, int, bytes]) -> None:
    kind, where, blob = op
    at = where % (len(data) + 1)
    if kind == "insert":
        data[at:at] = blob
    elif kind == "delete":
        del data[at : at + len(blob)]
    elif kind == "replace":
        data[at : at + len(blob)] = blob
    else:  # a run of continuation bytes: the varint at ``at`` grows past 10 bytes or 64 bits
        data[at:at] = b"\x80" * len(blob) + b"\xff"


def _mutate_frames(frames: list[bytes], op: tuple[str, int, int]) -> None:
    kind, a, b = op
    if len(frames) < 2:
        return
    i, j = 1 + a % (len(frames) - 1), 1 + b % (len(frames) - 1)  # frame 0 is the header
    if kind == "drop":
        del frames[i]
    elif kind == "duplicate":
        frames.insert(j, frames[i])
    elif kind == "swap":
        frames[i], frames[j] = frames[j], frames[i]
    elif kind == "resize":  # the 3-byte size lies: the frames no longer tile the batch
        frame = bytearray(frames[i])
        frame[1:4] = (b % (1 << 24)).to_bytes(3, "little")
        frames[i] = bytes(frame)
    else:
        frames[i] = frames[i][: max(1, b % len(frames[i]))]


@fuzz_settings(8000)
@given(
    st.sampled_from(SAMPLES),
    st.lists(frame_mutation, max_size=4),
    st.lists(byte_mutation, max_size=4),
    st.one_of(st.none(), st.sampled_from(SAMPLES)),
    st.integers(0, 2**32),
)
def test_mutated_real_batches_raise_only_codec_error(
    data: bytes, frame_ops: list, byte_ops: list, other: bytes | None, cut: int
) -> None:
    frames = _frames(data)
    for op in frame_ops:
        _mutate_frames(frames, op)
    mutated = bytearray(b"".join(frames))
    for op in byte_ops:
        _mutate_bytes(mutated, op)
    if other is not None:  # splice: this batch's head, another's tail
        mutated = mutated[: cut % (len(mutated) + 1)] + other[cut % (len(other) + 1) :]
    _only_codec_errors_everywhere(bytes(mutated))


@fuzz_settings(300)
@given(st.sampled_from(SAMPLES), st.lists(st.integers(0, 2**32), max_size=6))
def test_real_batches_with_frames_dropped_reordered_still_decode(
    data: bytes, picks: list[int]
) -> None:
    """Whole frames moved around keep a valid batch: it decodes to those messages, re-encodes."""
    header, *frames = _frames(data)
    chosen = [frames[p % len(frames)] for p in picks] if frames else []
    batch = header + b"".join(chosen)
    messages = decode_batch(batch)
    expected = decode_batch(data)
    by_frame = dict(zip(frames, expected[1:], strict=True))
    assert messages == [expected[0], *(by_frame[f] for f in chosen)]
    assert encode_batch(messages) == batch


@fuzz_settings(100)
@given(st.binary(min_size=1, max_size=512), st.integers(0, 2**32))
def test_gzip_bytes_and_their_mutations_are_not_a_batch(noise: bytes, where: int) -> None:
    # A body stored without gunzip (or a client lying about its encoding) must only be an error.
    _only_codec_errors_everywhere(GZIPPED)
    at = where % len(GZIPPED)
    _only_codec_errors_everywhere(GZIPPED[:at] + noise + GZIPPED[at:])


# -- every type's decoder, every reader ----------------------------------------------------------


@fuzz_settings(5000)
@given(st.sampled_from(sorted(MESSAGE_CLASSES)), st.binary(max_size=64))
def test_every_decoder_on_arbitrary_bodies_raises_only_codec_error(
    type_id: int, body: bytes
) -> None:
    try:
        decode_message(type_id, body)
        decode_message(type_id, memoryview(body))
    except CodecError:
        pass


@fuzz_settings(1000)
@given(st.binary(max_size=40), st.integers(0, 45))
def test_readers_at_any_offset_raise_only_codec_error(data: bytes, pos: int) -> None:
    for reader in (read_uint, read_int, read_string, read_boolean):
        try:
            _, end = reader(data, pos)
        except CodecError:
            continue
        assert pos < end <= len(data)


# -- round trips at the extremes -----------------------------------------------------------------


def _extreme(cls: type[WebMessage], choice: int) -> WebMessage:
    return cls(
        *(EXTREMES[kind][(choice + i) % len(EXTREMES[kind])] for i, kind in enumerate(cls.WIRE))
    )


def _storable(value: object) -> object:
    """What a field reads back as: lone surrogates are written as U+FFFD (as the tracker does)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


@pytest.mark.parametrize(
    "cls", [MESSAGE_CLASSES[t] for t in sorted(MESSAGE_CLASSES)], ids=lambda c: c.__name__
)
def test_every_message_class_round_trips_at_the_extremes(cls: type[WebMessage]) -> None:
    longest = max(len(EXTREMES[kind]) for kind in cls.WIRE) if cls.WIRE else 1
    for choice in range(longest):
        msg = _extreme(cls, choice)
        wire = encode_message(msg)
        decoded = (
            decode_batch(wire)[0] if cls.TYPE_ID == 81 else decode_message(cls.TYPE_ID, wire[4:])
        )
        assert [_storable(v) for v in _fields(msg)] == list(_fields(decoded))


def _fields(msg: attrs.AttrsInstance) -> tuple[object, ...]:
    return tuple(getattr(msg, a.name) for a in attrs.fields(type(msg)))


@fuzz_settings(200)
@given(
    st.lists(st.sampled_from(sorted(t for t in MESSAGE_CLASSES if t != 81)), max_size=12),
    st.integers(0, 10),
)
def test_batches_of_extreme_messages_round_trip(type_ids: list[int], choice: int) -> None:
    header = BatchMetadata(1, UINT_MAX, UINT_MAX, INT_MIN, "\ud800")
    messages = [header, *(_extreme(MESSAGE_CLASSES[t], choice + i) for i, t in enumerate(type_ids))]
    decoded = decode_batch(encode_batch(messages))
    assert [tuple(_storable(v) for v in _fields(m)) for m in messages] == [
        _fields(m) for m in decoded
    ]
