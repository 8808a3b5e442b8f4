"""The mobile codec (``engine/codec/mobile_messages.py``) against MOBILE.md's byte layouts.

Section 6's examples byte for byte, and the framing rules of sections 3.2-3.7: unknown types
skipped by their length, a bare crash, backend-only types stopping the batch, the Android 105
quirk, trailing body bytes, truncation.
"""

from __future__ import annotations

import pytest

from engine.codec.mobile_messages import (
    MESSAGE_CLASSES,
    MobileBatchMeta,
    MobileClickEvent,
    MobileCodecError,
    MobileCrash,
    MobileInputEvent,
    MobileIssueEvent,
    MobileNetworkCall,
    MobilePerformanceEvent,
    MobileSessionEnd,
    MobileUnknown,
    MobileViewComponentEvent,
    decode_backend_message,
    decode_batch,
    encode_batch,
    encode_message,
    iter_frames,
)
from engine.codec.primitives import CodecError

TS = 1_700_000_000_000
TS_HEX = "80 d0 95 ff bc 31"  # MOBILE.md 6: the uvarint of TS


def h(text: str) -> bytes:
    """Bytes from MOBILE.md-style hex with ``"..."`` ASCII runs and ``|`` separators."""
    out = bytearray()
    chunks = text.replace("|", " ").split('"')
    for i, chunk in enumerate(chunks):
        if i % 2:
            out += chunk.encode()
        else:
            out += bytes.fromhex(chunk)
    return bytes(out)


BATCH_META = h(f"6b {TS_HEX} 01 00")
CLICK = h("64  81 d0 95 ff bc 31  0a  05 4c 6f 67 69 6e  96 01  a4 03")
VIEW = h("62  82 d0 95 ff bc 31  0d  04 48 6f 6d 65  06 42 61 6e 6e 65 72  01")
CALL_IOS = h(
    '69 83 d0 95 ff bc 31 23 | 07 "request" | 03 "GET" | 0d "https://a.b/c" | 02 "{}" | 02 "{}"'
    " | 94 03 | 57"
)
CALL_ANDROID = h(
    '69 83 d0 95 ff bc 31 25 | 07 "request" | 03 "GET" | 0d "https://a.b/c" | 02 "{}" | 02 "{}"'
    " | 00 00 01 94 | 57"
)
PERF = h(f"66 {TS_HEX} 05 03 66 70 73 3c")
INPUT = h(f"65 {TS_HEX} 0e 03 2a 2a 2a 01 08 50 61 73 73 77 6f 72 64")


def test_section_6_layouts_decode_and_encode_byte_for_byte() -> None:
    expected = [
        (BATCH_META, 9, MobileBatchMeta(TS, 0)),
        (CLICK, 18, MobileClickEvent(TS + 1, "Login", 150, 420)),
        (VIEW, 21, MobileViewComponentEvent(TS + 2, "Home", "Banner", True)),
        (
            CALL_IOS,
            43,
            MobileNetworkCall(TS + 3, "request", "GET", "https://a.b/c", "{}", "{}", 404, 87),
        ),
        (PERF, 13, MobilePerformanceEvent(TS, "fps", 60)),
        (INPUT, 22, MobileInputEvent(TS, "***", True, "Password")),
    ]
    for wire, size, msg in expected:
        assert len(wire) == size
        assert decode_batch(wire).messages == [msg]
        assert encode_message(msg) == wire
    whole = b"".join(wire for wire, _, _ in expected)
    batch = decode_batch(whole)
    assert batch.messages == [msg for _, _, msg in expected]
    assert batch.meta == MobileBatchMeta(TS, 0)
    assert (batch.unknown, batch.stopped_at) == (0, None)
    assert encode_batch(batch.messages) == whole


def test_the_android_network_call_is_detected_and_its_slots_swapped_back() -> None:
    assert len(CALL_ANDROID) == 45
    android = MobileNetworkCall(
        TS + 3, "request", "GET", "https://a.b/c", "req", "resp", 404, 87, status_int32=True
    )
    wire = encode_message(android, platform="android")
    # Response in the request's slot, then the status as 4 big-endian bytes, then the duration.
    assert wire.endswith(h('04 "resp" 03 "req" 00 00 01 94 57'))
    assert decode_batch(wire, platform="android").messages == [android]
    # Without the platform the slots are read as they are; the status is right either way.
    (as_is,) = decode_batch(wire).messages
    assert isinstance(as_is, MobileNetworkCall)
    assert (as_is.request, as_is.response, as_is.status, as_is.duration) == ("resp", "req", 404, 87)
    (msg,) = decode_batch(CALL_ANDROID, platform="android").messages
    assert isinstance(msg, MobileNetworkCall)
    assert (msg.status, msg.duration, msg.status_int32) == (404, 87, True)
    # The messages after it stay aligned (the Go reader loses them, MOBILE.md 3.7.1).
    tail = decode_batch(BATCH_META + CALL_ANDROID + CLICK, platform="android").messages
    assert tail[-1] == MobileClickEvent(TS + 1, "Login", 150, 420)


@pytest.mark.parametrize("status", [0, 200, 301, 404, 500, 65535])
def test_every_android_status_reads_right(status: int) -> None:
    call = MobileNetworkCall(TS, "request", "POST", "u", "a", "b", status, 300, status_int32=True)
    assert decode_batch(encode_message(call, platform="android"), platform="android").messages == [
        call
    ]
    spec = MobileNetworkCall(TS, "request", "POST", "u", "a", "b", status, 300)
    assert decode_batch(encode_message(spec)).messages == [spec]


def test_a_status_too_big_for_android_is_refused_by_the_encoder() -> None:
    call = MobileNetworkCall(TS, "request", "GET", "u", "", "", 1 << 31, 0, status_int32=True)
    with pytest.raises(MobileCodecError):
        encode_message(call)


def test_a_bare_crash_is_a_batch() -> None:
    crash = MobileCrash(TS, "NSInvalidArgumentException", "bad selector", "0 Foo\n1 Bar")
    batch = decode_batch(encode_message(crash))
    assert batch.messages == [crash]
    assert batch.meta is None


def test_unknown_types_are_skipped_by_their_length_and_counted() -> None:
    old_99 = MobileUnknown(99, TS, b"\x04Home")  # IOSScreenLeave until 2023-10
    future = MobileUnknown(5000, TS, b"")
    data = BATCH_META + encode_message(old_99) + CLICK + encode_message(future) + PERF
    batch = decode_batch(data)
    assert batch.unknown == 2
    assert batch.messages[1] == old_99
    assert batch.messages[3] == future
    assert batch.messages[2] == MobileClickEvent(TS + 1, "Login", 150, 420)
    assert batch.messages[4] == MobilePerformanceEvent(TS, "fps", 60)
    assert encode_batch(batch.messages) == data


def test_a_body_longer_than_its_fields_is_read_and_the_rest_ignored() -> None:
    # Length 0x0c instead of 0x0a, two bytes of a field a newer SDK appended.
    longer = h(f'64 {TS_HEX} 0c 05 "Login" 96 01 a4 03 07 07') + PERF
    assert decode_batch(longer).messages == [
        MobileClickEvent(TS, "Login", 150, 420),
        MobilePerformanceEvent(TS, "fps", 60),
    ]


def test_a_body_shorter_than_its_fields_is_an_error() -> None:
    short = h(f'64 {TS_HEX} 08 05 "Login" 96 01') + PERF  # Y is missing from the body
    with pytest.raises(MobileCodecError, match="MobileClickEvent"):
        decode_batch(short)


@pytest.mark.parametrize("cut", range(1, len(CLICK)))
def test_a_truncated_message_is_an_error(cut: int) -> None:
    with pytest.raises(MobileCodecError):
        decode_batch(BATCH_META + CLICK[:cut])
    with pytest.raises(CodecError):
        list(iter_frames(CLICK[:cut]))


def test_a_backend_only_message_stops_the_batch() -> None:
    for backend in (MobileSessionEnd(TS), MobileIssueEvent(TS, "tap_rage", "Login", "", "{}")):
        wire = encode_message(backend)
        assert wire[0] == backend.TYPE_ID  # no Length: type, then the fields
        assert decode_backend_message(wire + b"junk") == (backend, len(wire))
        data = BATCH_META + CLICK + wire + PERF
        batch = decode_batch(data)
        assert batch.messages == [
            MobileBatchMeta(TS, 0),
            MobileClickEvent(TS + 1, "Login", 150, 420),
        ]
        assert batch.stopped_at == len(BATCH_META + CLICK)


def test_decode_backend_message_refuses_an_sdk_message() -> None:
    with pytest.raises(MobileCodecError):
        decode_backend_message(CLICK)


def test_the_table_covers_the_ids_of_section_4() -> None:
    assert sorted(MESSAGE_CLASSES) == [*range(90, 99), *range(100, 108), *range(109, 112)]
    assert all(cls.__name__.startswith("Mobile") for cls in MESSAGE_CLASSES.values())


def test_an_empty_batch_has_no_messages() -> None:
    assert decode_batch(b"").messages == []
    assert decode_batch(memoryview(BATCH_META)).messages == [MobileBatchMeta(TS, 0)]
