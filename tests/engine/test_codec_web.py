"""Web batch codec (engine/codec/web.py) against real captured batches and hand-made edge cases."""

from __future__ import annotations

import itertools
from pathlib import Path

import attrs
import pytest

from engine.codec import web
from engine.codec.web import (
    MESSAGE_CLASSES,
    AnyMessage,
    BatchMetadata,
    CodecError,
    ConnectionInformation,
    CreateDocument,
    CustomEvent,
    CustomIssue,
    InputChange,
    IssueEvent,
    JSException,
    Metadata,
    MouseClick,
    NetworkRequest,
    PageRenderTiming,
    PerformanceTrack,
    SetNodeData,
    SetPageLocation,
    SetPageVisibility,
    SetViewportSize,
    TabData,
    Timestamp,
    UnknownMessage,
    UserAnonymousID,
    UserID,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
    iter_frames,
    iter_messages,
    message_id,
    peek_batch_metadata,
)
from tests.engine.builders import wire_type_id

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "web-basic"
BATCH_1 = (FIXTURES / "batch-001.bin").read_bytes()
BATCH_2 = (FIXTURES / "batch-002.bin").read_bytes()

# fmt: off
BATCH_1_TYPES = [
    81, 0, 118, 0, 118, 28, 30, 30, 122, 5, 55, 54, 49, 117, 6, 7, 8, 9, 14, 9, 14, 9, 14, 8, 9, 61,
    9, 14, 9, 14, 8, 9, 14, 8, 9, 14, 9, 14, 8, 34, 34, 35, 9, 14, 8, 9, 14, 9, 14, 8, 34, 35, 9,
    14, 9, 14, 8, 34, 34, 35, 9, 14, 9, 14, 8, 35, 34, 34, 35, 34, 34, 35, 18, 9, 14, 8, 34, 35,
    34, 35, 18, 9, 14, 8, 34, 35, 34, 34, 35, 9, 14, 9, 14, 9, 14, 9, 14, 12, 85, 85, 124, 0, 118,
    23, 0, 118, 58, 20, 68, 0, 118, 11, 11, 9, 14, 124, 0, 118, 58, 20, 68, 0, 118, 113, 0, 118,
    112, 58, 20, 68, 0, 118, 113, 113, 0, 118, 113, 18, 18, 0, 118, 112, 20, 68, 0, 118, 58, 113,
    0, 118, 22, 27, 30, 29, 64, 83, 85, 85, 83, 78, 0, 118, 58, 20, 68, 0, 118, 122,
]
BATCH_2_TYPES = [
    81, 0, 118, 0, 118, 49, 0, 118, 5, 0, 118, 24, 0, 118, 58, 20, 68, 0, 118, 11, 9, 14,
]
# Every id of the PROTOCOL.md section 6 table.
TABLE_IDS = [
    0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 27, 28,
    29, 30, 31, 32, 33, 34, 35, 36, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 60, 61, 63, 64, 65, 66, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 81, 83, 84,
    85, 87, 89, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
]
# fmt: on
TAB = "e18efc31aa0f"


def _of_type(messages: list, cls: type) -> list:
    return [m for m in messages if type(m) is cls]


# -- the message classes ----------------------------------------------------------------------


def test_every_table_row_has_a_class() -> None:
    assert sorted(MESSAGE_CLASSES) == TABLE_IDS
    for type_id, cls in MESSAGE_CLASSES.items():
        assert type_id == cls.TYPE_ID
        assert len(attrs.fields(cls)) == len(cls.WIRE)
        assert set(cls.WIRE) <= {"uint", "int", "string", "boolean"}
        assert getattr(web, cls.__name__) is cls
        assert not hasattr(cls(*([0] * len(cls.WIRE))), "__dict__")  # slots
        assert attrs.has(cls)  # last: mypy narrows cls to a bare attrs class after it


def test_field_names_and_order_follow_the_wire() -> None:
    def names(cls: type) -> list[str]:
        return [f.name for f in attrs.fields(cls)]

    assert names(MouseClick) == [
        "id",
        "hesitation_time",
        "label",
        "selector",
        "normalized_x",
        "normalized_y",
    ]
    assert names(SetPageLocation) == ["url", "referrer", "navigation_start", "document_title"]
    assert names(BatchMetadata) == ["version", "page_no", "first_index", "timestamp", "location"]
    assert names(InputChange) == [
        "id",
        "value",
        "value_masked",
        "label",
        "hesitation_time",
        "input_duration",
    ]
    assert names(IssueEvent) == [
        "message_id",
        "timestamp",
        "type",
        "context_string",
        "context",
        "payload",
        "url",
    ]
    assert BatchMetadata.WIRE == ("uint", "uint", "uint", "int", "string")
    assert web.SetNodeFocus.WIRE == ("int",)
    assert web.CreateDocument.WIRE == ()


def test_messages_are_frozen() -> None:
    msg = Timestamp(1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        msg.timestamp = 2  # type: ignore[misc]


# -- real captured batches --------------------------------------------------------------------


def test_fixture_batch_1_type_ids_and_exact_framing() -> None:
    frames = list(iter_frames(BATCH_1))
    assert [t for t, _, _ in frames] == BATCH_1_TYPES
    assert frames[0] == (81, 1, 33)  # header: type byte, then 32 bytes of fields (PROTOCOL 5.4)
    assert frames[1] == (0, 37, 43)  # Timestamp: type at 33, size at 34-36, body 37-42
    # The frames tile the batch: each body starts right after the previous one and its 4-byte
    # frame head (all ids < 128), and the last ends at the end.
    for (_, _, prev_end), (_, start, _) in itertools.pairwise(frames):
        assert start == prev_end + 4
    assert frames[-1][2] == len(BATCH_1)
    # Every body decodes to fields that re-encode to exactly that body: sizes match exactly.
    for type_id, start, end in frames[1:]:
        msg = decode_message(type_id, BATCH_1[start:end])
        assert encode_message(msg) == BATCH_1[start - 4 : end]


def test_fixture_batch_1_known_values() -> None:
    msgs = decode_batch(BATCH_1)
    assert [wire_type_id(m) for m in msgs] == BATCH_1_TYPES
    assert msgs[:5] == [
        BatchMetadata(1, 0, 0, 1795418019299, "http://127.0.0.1:8801/"),
        Timestamp(1795418019299),
        TabData(TAB),
        Timestamp(1795418019299),
        TabData(TAB),
    ]
    assert msgs[5:12] == [
        UserID("user-42"),
        Metadata("plan", "pro"),
        Metadata("plan", "pro"),
        SetPageLocation("http://127.0.0.1:8801/", "", 1795418018628, "OR test page"),
        SetViewportSize(1280, 800),
        SetPageVisibility(False),
        ConnectionInformation(1500, "4g"),
    ]
    perf = msgs[12]
    assert isinstance(perf, PerformanceTrack)
    assert (perf.frames, perf.ticks) == (-1, -1)
    assert isinstance(msgs[15], CreateDocument)

    clicks = _of_type(msgs, MouseClick)
    assert len(clicks) == 5
    assert clicks[0] == MouseClick(19, 4, "Click me", "#btn", 430, 1788)
    assert [c.label for c in clicks] == [
        "Click me",
        "#name",
        "#pwd",
        "OpenReplay tracker capture",
        "go page2",
    ]
    inputs = _of_type(msgs, InputChange)
    assert inputs == [
        InputChange(25, "", True, "#name", 12, 83),
        InputChange(27, "", True, "#pwd", 12, 104),
    ]
    assert _of_type(msgs, JSException) == [
        JSException(
            "Error",
            "boom from test",
            '[{"functionName":"eval","fileName":":370","lineNumber":30,'
            '"source":"    at eval (:370:30)"}]',
            "{}",
        )
    ]
    requests = _of_type(msgs, NetworkRequest)
    assert [(r.type, r.method, r.url, r.status, r.transferred_body_size) for r in requests] == [
        ("fetch", "GET", "http://127.0.0.1:8801/api/data?q=1", 200, 33),
        ("fetch", "POST", "http://127.0.0.1:8801/api/create", 201, 16),
    ]
    assert requests[0].request == '{"headers":{},"body":"{\\"q\\":\\"1\\"}"}'
    assert (requests[0].timestamp, requests[0].duration) == (1795418020665, 5)
    assert _of_type(msgs, CustomEvent) == [CustomEvent("custom_ev", '{"a":1}')]
    assert _of_type(msgs, CustomIssue) == [CustomIssue("custom_issue", '{"x":1}')]
    assert _of_type(msgs, UserAnonymousID) == [UserAnonymousID("anon-1")]
    assert _of_type(msgs, Metadata)[-1] == Metadata("k", "v")
    assert _of_type(msgs, web.ConsoleLog) == [web.ConsoleLog("log", "hello from page 42")]
    assert [(v.name, v.value) for v in _of_type(msgs, web.WebVitals)] == [
        ("TTFB", "40.09999999962747"),
        ("LCP", "148"),
    ]
    assert _of_type(msgs, web.PageLoadTiming) == [
        web.PageLoadTiming(4, 40, 40, 233, 233, 236, 236, 148, 148)
    ]
    assert _of_type(msgs, IssueEvent) == []  # no tracker heuristic fired in this capture
    # The batch ends with the SPA navigation: NavigationStart 0.
    assert msgs[-1] == SetPageLocation(
        "http://127.0.0.1:8801/page2?x=1", "http://127.0.0.1:8801/", 0, "OR test page"
    )
    assert web.SetNodeFocus(-1) in msgs  # blur is an int -1


def test_fixture_batch_2_known_values() -> None:
    msgs = decode_batch(BATCH_2)
    assert [wire_type_id(m) for m in msgs] == BATCH_2_TYPES
    assert msgs[0] == BatchMetadata(1, 0, 165, 1795418024278, "http://127.0.0.1:8801/page2?x=1")
    assert msgs[5] == PerformanceTrack(303, 165, 6613976, 4406528)
    assert msgs[8] == SetViewportSize(1000, 700)
    assert msgs[11] == PageRenderTiming(148, 266, 1882)
    assert msgs[16] == MouseClick(19, 2, "Click me", "#btn", 550, 2043)
    assert msgs[-1] == SetNodeData(35, "clicked")


@pytest.mark.parametrize("data", [BATCH_1, BATCH_2], ids=["batch-001", "batch-002"])
def test_fixture_reencodes_to_the_exact_bytes(data: bytes) -> None:
    assert encode_batch(decode_batch(data)) == data
    assert b"".join(encode_message(m) for m in decode_batch(data)) == data


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_accepts_any_bytes_like(wrap) -> None:
    assert decode_batch(wrap(BATCH_2)) == decode_batch(BATCH_2)
    assert list(iter_frames(wrap(BATCH_2))) == list(iter_frames(BATCH_2))
    assert peek_batch_metadata(wrap(BATCH_2)) == decode_batch(BATCH_2)[0]


def test_peek_batch_metadata() -> None:
    assert peek_batch_metadata(BATCH_1) == BatchMetadata(
        1, 0, 0, 1795418019299, "http://127.0.0.1:8801/"
    )
    assert peek_batch_metadata(b"") is None
    assert peek_batch_metadata(BATCH_1[33:]) is None  # starts with a Timestamp
    with pytest.raises(CodecError):
        peek_batch_metadata(BATCH_1[:20])
    with pytest.raises(CodecError):
        peek_batch_metadata(memoryview(BATCH_1[:20]))


def test_peek_batch_metadata_with_a_header_longer_than_the_prefix_it_tries_first() -> None:
    meta = BatchMetadata(1, 2, 3, 4, "http://x/" + "a" * 10_000)
    data = encode_batch([meta, Timestamp(5)])
    assert peek_batch_metadata(memoryview(data)) == meta
    assert peek_batch_metadata(bytearray(data)) == meta


def test_iter_messages_wanted_keeps_batch_indexes() -> None:
    wanted = frozenset({68, 112, 122})
    got = list(iter_messages(BATCH_1, wanted))
    assert [i for i, _ in got] == [i for i, t in enumerate(BATCH_1_TYPES) if t in wanted]
    assert got[0] == (8, decode_batch(BATCH_1)[8])
    assert all(wire_type_id(msg) in wanted for _, msg in got)
    # Header only when asked for.
    assert list(iter_messages(BATCH_2, frozenset({81}))) == [(0, decode_batch(BATCH_2)[0])]
    assert list(iter_messages(BATCH_2, frozenset())) == []


def test_message_id_follows_the_go_numbering() -> None:
    meta = peek_batch_metadata(BATCH_2)
    assert meta is not None
    assert message_id(meta, 0) == 165
    clicks = [i for i, _ in iter_messages(BATCH_2, frozenset({68}))]
    assert [message_id(meta, i) for i in clicks] == [165 + 16]
    assert message_id(BatchMetadata(1, 3, 10, 0, ""), 5) == (3 << 32) + 15


# -- framing edge cases -----------------------------------------------------------------------

HEADER = BatchMetadata(1, 0, 0, 1, "http://x/")


def _patch_body(data: bytes, index: int, extra: bytes) -> bytes:
    """Append ``extra`` to the body of message ``index`` of a sized batch, fixing its size."""
    _type_id, start, end = list(iter_frames(data))[index]
    size = end - start + len(extra)
    return data[: start - 3] + size.to_bytes(3, "little") + data[start:end] + extra + data[end:]


def test_body_longer_than_its_fields_decodes() -> None:
    # A newer tracker appending a field to MouseClick must not break us.
    index = BATCH_1_TYPES.index(68)
    longer = _patch_body(BATCH_1, index, b"\x05\x02hi")
    assert decode_batch(longer) == decode_batch(BATCH_1)
    assert list(iter_messages(longer, frozenset({68}))) == list(
        iter_messages(BATCH_1, frozenset({68}))
    )
    click = MouseClick(1, 2, "a", "b", 3, 4)
    assert decode_message(68, encode_message(click)[4:] + b"\x00\x01") == click


def test_body_shorter_than_its_fields_is_an_error() -> None:
    body = encode_message(MouseClick(1, 2, "a", "b", 3, 4))[4:]
    with pytest.raises(CodecError, match="MouseClick"):
        decode_message(68, body[:-1])
    # Inside a batch, with more messages after it (the decoder must not borrow their bytes).
    short = b"\x44" + (len(body) - 1).to_bytes(3, "little") + body[:-1]
    batch = encode_message(HEADER) + short + encode_message(Timestamp(7))
    with pytest.raises(CodecError, match="MouseClick"):
        decode_batch(batch)
    with pytest.raises(CodecError):
        decode_message(122, b"")


def test_string_longer_than_its_body_is_an_error() -> None:
    batch = encode_message(HEADER) + b"\x1c\x02\x00\x00\x05a" + encode_message(Timestamp(7))
    with pytest.raises(CodecError, match="UserID"):
        decode_batch(batch)


def test_unknown_types_are_skipped_by_size_and_kept_raw() -> None:
    unknown = [UnknownMessage(99, b"\x01\x02"), UnknownMessage(300, b""), UnknownMessage(2, b"x")]
    msgs: list[AnyMessage] = [HEADER, unknown[0], Timestamp(5), unknown[1], unknown[2], UserID("u")]
    data = encode_batch(msgs)
    assert data[len(encode_message(HEADER)) :].startswith(b"\x63\x02\x00\x00\x01\x02")
    assert decode_batch(data) == msgs
    assert [t for t, _, _ in iter_frames(data)] == [81, 99, 0, 300, 2, 28]
    assert list(iter_messages(data, frozenset({28}))) == [(5, UserID("u"))]
    assert list(iter_messages(data, frozenset({300}))) == [(3, unknown[1])]
    assert decode_message(99, b"\x01\x02") == unknown[0]


def test_batch_metadata_has_no_size_prefix() -> None:
    assert encode_message(SetViewportSize(1280, 800)) == bytes.fromhex("0504000080 0aa006")
    assert encode_message(HEADER) == b"\x51\x01\x00\x00\x02\x09http://x/"
    assert encode_message(HEADER, sized=True) == encode_message(HEADER, sized=False)


def test_batch_metadata_must_come_first() -> None:
    data = encode_message(HEADER) + encode_message(Timestamp(1)) + encode_message(HEADER)
    with pytest.raises(CodecError, match="not first"):
        decode_batch(data)
    with pytest.raises(CodecError, match="not first"):
        list(iter_frames(data))
    with pytest.raises(CodecError, match="first"):
        encode_batch([Timestamp(1), HEADER])


def test_legacy_unsized_batch_with_version_0_header() -> None:
    msgs = [
        BatchMetadata(0, 1, 7, 10, "u"),
        Timestamp(5),
        MouseClick(1, 2, "l", "s", 3, 4),
        web.CreateDocument(),
        SetPageVisibility(True),
    ]
    data = encode_batch(msgs)
    # No size prefixes anywhere: type byte directly followed by the fields.
    assert data == b"".join(encode_message(m, sized=False) for m in msgs)
    assert data[len(encode_message(msgs[0])) :].startswith(b"\x00\x05\x44\x01\x02")
    assert decode_batch(data) == msgs
    frames = list(iter_frames(data))
    assert [t for t, _, _ in frames] == [81, 0, 68, 7, 55]
    assert [decode_message(t, data[s:e]) for t, s, e in frames] == msgs
    assert list(iter_messages(data, frozenset({68}))) == [(2, msgs[2])]


def test_legacy_batch_without_header() -> None:
    msgs = [Timestamp(5), UserID("u"), web.SetNodeFocus(-1)]
    data = encode_batch(msgs)
    assert data == b"\x00\x05\x1c\x01u\x3a\x01"
    assert decode_batch(data) == msgs
    assert peek_batch_metadata(data) is None
    assert list(iter_messages(data, frozenset({28}))) == [(1, UserID("u"))]


def test_legacy_batch_errors() -> None:
    with pytest.raises(CodecError, match="unknown message type 99"):
        decode_batch(b"\x00\x05\x63\x01")
    with pytest.raises(CodecError, match=r"UserID .* past the end"):
        decode_batch(b"\x00\x05\x1c\x05ab")
    with pytest.raises(CodecError, match=r"MouseClick .* past the end"):
        decode_batch(b"\x00\x05\x44\x01")
    with pytest.raises(CodecError):
        list(iter_frames(b"\x00\x05\x44\x01"))
    with pytest.raises(CodecError, match="without its size"):
        encode_batch([Timestamp(1), UnknownMessage(99, b"")])


def test_empty_batch_has_no_messages() -> None:
    assert decode_batch(b"") == []
    assert list(iter_frames(b"")) == []
    assert list(iter_messages(memoryview(b""))) == []


@pytest.mark.parametrize(
    ("tail", "match"),
    [
        (b"\x00\x06\x00", "truncated size"),
        (b"\x00\x06\x00\x00\x01", "runs past the end"),
        (b"\x80", "truncated type id"),
        (b"\xff" * 11, "longer than 10"),
    ],
)
def test_sized_framing_errors(tail: bytes, match: str) -> None:
    data = encode_message(HEADER) + tail
    with pytest.raises(CodecError, match=match):
        decode_batch(data)
    with pytest.raises(CodecError, match=match):
        list(iter_frames(data))
    with pytest.raises(CodecError, match=match):
        list(iter_messages(data, frozenset({28})))


def test_encoder_rejects_values_the_wire_cannot_carry() -> None:
    with pytest.raises(CodecError):
        encode_message(Timestamp(-1))
    with pytest.raises(CodecError, match="exceeds"):
        encode_message(SetNodeData(1, "x" * web.MAX_BODY_SIZE))
    with pytest.raises(TypeError):
        encode_message("not a message")  # type: ignore[arg-type]


def test_decode_selected_counts_every_message_of_the_batch() -> None:
    """decode_selected = iter_messages' pairs plus the number of messages walked (skipped too)."""
    from engine.codec.web import decode_batch, decode_selected, iter_messages

    for name in ("batch-001.bin", "batch-002.bin"):
        data = (Path(__file__).parent.parent / "fixtures" / "web-basic" / name).read_bytes()
        wanted = frozenset({68, 112, 122})
        selected, count = decode_selected(data, wanted)
        assert selected == list(iter_messages(data, wanted))
        assert count == len(decode_batch(data))
    assert decode_selected(b"", frozenset({0})) == ([], 0)
