"""Property tests of the web batch codec: round-trips, filtering, and robustness to bad bytes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.codec.primitives import INT_MAX, INT_MIN, UINT_MAX
from engine.codec.web import (
    MESSAGE_CLASSES,
    BatchMetadata,
    CodecError,
    UnknownMessage,
    WebMessage,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
    iter_frames,
    iter_messages,
    peek_batch_metadata,
)
from tests.engine.builders import wire_type_id

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "web-basic"
BATCH_1 = (FIXTURES / "batch-001.bin").read_bytes()
BATCH_2 = (FIXTURES / "batch-002.bin").read_bytes()

FIELD = {
    "uint": st.integers(0, UINT_MAX),
    "int": st.integers(INT_MIN, INT_MAX),
    "string": st.text(max_size=40),
    "boolean": st.booleans(),
}
BODY_CLASSES = [cls for tid, cls in sorted(MESSAGE_CLASSES.items()) if tid != 81]


def message_of(cls: type[WebMessage]) -> st.SearchStrategy[WebMessage]:
    return st.builds(cls, *(FIELD[kind] for kind in cls.WIRE))


known_messages = st.sampled_from(BODY_CLASSES).flatmap(message_of)
unknown_messages = st.builds(
    UnknownMessage,
    st.integers(0, 5000).filter(lambda t: t not in MESSAGE_CLASSES),
    st.binary(max_size=20),
)


def headers(versions: st.SearchStrategy[int]) -> st.SearchStrategy[BatchMetadata]:
    return st.builds(
        BatchMetadata,
        versions,
        st.integers(0, 2**20),
        st.integers(0, 2**31),
        FIELD["int"],
        FIELD["string"],
    )


sized_batches = st.tuples(
    headers(st.integers(1, 5)), st.lists(st.one_of(known_messages, unknown_messages), max_size=30)
)
# Legacy: no header, or a version-0 header; unknown types cannot appear (they cannot be skipped).
legacy_batches = st.tuples(
    st.one_of(st.none(), headers(st.just(0))), st.lists(known_messages, max_size=30)
)
wanted_sets = st.frozensets(
    st.one_of(st.sampled_from(sorted(MESSAGE_CLASSES)), st.integers(0, 300))
)


def _only_codec_errors(data: bytes | memoryview) -> None:
    """Run every entry point on ``data``; anything but success or CodecError fails the test."""
    for run in (
        lambda: decode_batch(data),
        lambda: list(iter_frames(data)),
        lambda: list(iter_messages(data, frozenset({0, 68, 112, 122}))),
        lambda: peek_batch_metadata(data),
    ):
        with contextlib.suppress(CodecError):
            run()


@pytest.mark.parametrize(
    "cls", [MESSAGE_CLASSES[t] for t in sorted(MESSAGE_CLASSES)], ids=lambda c: c.__name__
)
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_class_round_trips(cls: type[WebMessage], data: st.DataObject) -> None:
    msg = data.draw(message_of(cls))
    wire = encode_message(msg)
    assert wire[0] == cls.TYPE_ID
    if cls.TYPE_ID == 81:
        assert decode_batch(wire) == [msg]
        return
    body = wire[4:]
    assert int.from_bytes(wire[1:4], "little") == len(body)
    assert decode_message(cls.TYPE_ID, body) == msg
    # Trailing bytes (a field added by a newer tracker) are ignored; a missing byte is an error.
    assert decode_message(cls.TYPE_ID, body + b"\x01\x00") == msg
    if body:
        with pytest.raises(CodecError):
            decode_message(cls.TYPE_ID, body[:-1])


@given(sized_batches)
def test_random_sized_batches_round_trip(batch: tuple[BatchMetadata, list]) -> None:
    header, body = batch
    messages = [header, *body]
    data = encode_batch(messages)
    assert decode_batch(data) == messages
    assert encode_batch(decode_batch(data)) == data
    frames = list(iter_frames(data))
    assert [t for t, _, _ in frames] == [81] + [wire_type_id(m) for m in body]
    assert [decode_message(t, data[s:e]) for t, s, e in frames[1:]] == body
    assert peek_batch_metadata(data) == header


@given(legacy_batches)
def test_random_legacy_batches_round_trip(batch: tuple[BatchMetadata | None, list]) -> None:
    header, body = batch
    messages = body if header is None else [header, *body]
    data = encode_batch(messages)
    assert decode_batch(data) == messages
    frames = list(iter_frames(data))
    assert len(frames) == len(messages)
    assert [decode_message(t, data[s:e]) for t, s, e in frames] == messages


@given(st.one_of(sized_batches, legacy_batches), wanted_sets)
@example((BatchMetadata(1, 0, 0, 0, ""), []), frozenset({81}))
def test_iter_messages_with_wanted_equals_filtering_everything(batch, wanted) -> None:
    header, body = batch
    data = encode_batch(body if header is None else [header, *body])
    everything = list(iter_messages(data))
    expected = [(i, m) for i, m in everything if wire_type_id(m) in wanted]
    assert list(iter_messages(data, wanted)) == expected
    assert [i for i, _ in everything] == list(range(len(everything)))


@pytest.mark.parametrize("data", [BATCH_1, BATCH_2], ids=["batch-001", "batch-002"])
@given(wanted=wanted_sets)
def test_fixture_iter_messages_with_wanted_equals_filtering(data: bytes, wanted) -> None:
    everything = list(enumerate(decode_batch(data)))
    expected = [(i, m) for i, m in everything if wire_type_id(m) in wanted]
    assert list(iter_messages(data, wanted)) == expected


@given(st.binary(max_size=200))
def test_garbage_raises_only_codec_error(data: bytes) -> None:
    _only_codec_errors(data)


@given(st.sampled_from([0, 1, 2, 7]), st.binary(max_size=200))
def test_garbage_after_a_valid_header_raises_only_codec_error(version: int, tail: bytes) -> None:
    # Version 0 exercises the unsized path, the others the sized one.
    _only_codec_errors(encode_message(BatchMetadata(version, 0, 0, 0, "u")) + tail)


@pytest.mark.parametrize("data", [BATCH_1, BATCH_2], ids=["batch-001", "batch-002"])
def test_every_truncation_of_a_fixture_is_a_prefix_or_a_codec_error(data: bytes) -> None:
    frames = list(iter_frames(data))
    boundaries = {end: k + 1 for k, (_, _, end) in enumerate(frames)}
    full = decode_batch(data)
    for cut in range(1, len(data)):
        prefix = data[:cut]
        if cut in boundaries:
            assert decode_batch(prefix) == full[: boundaries[cut]]
        else:
            with pytest.raises(CodecError):
                decode_batch(prefix)
            with pytest.raises(CodecError):
                list(iter_frames(prefix))


@settings(max_examples=300)
@given(st.sampled_from([BATCH_1, BATCH_2]), st.integers(0, 2**32), st.integers(0, 7), st.data())
def test_bit_flips_in_a_fixture_raise_only_codec_error(
    data: bytes, where: int, bit: int, draw: st.DataObject
) -> None:
    flipped = bytearray(data)
    flipped[where % len(data)] ^= 1 << bit
    _only_codec_errors(bytes(flipped))
    _only_codec_errors(memoryview(flipped))
    # A second flip and a random cut, for the error paths one flip does not reach.
    other = draw.draw(st.integers(0, len(data) - 1))
    flipped[other] ^= 0xFF
    _only_codec_errors(bytes(flipped[: draw.draw(st.integers(1, len(data)))]))
