"""The OpenReplay mobile (iOS / Android SDK) batch codec (MOBILE.md 3-4), sans-IO.

Owns the message classes of types 90-111 and their framing. Knows nothing of sessions, storage or
HTTP. Field encodings are the web codec's primitives (``engine.codec.primitives``).

Framing (MOBILE.md 3.2). A batch is a plain concatenation of SDK messages, each
``type uint, Timestamp uint, Length uint, body[Length]``; the body holds the other fields in
wire order. There is no batch header, no size prefix and no version: a normal batch starts with
``MobileBatchMeta`` (107), a crash upload may be one bare ``MobileCrash`` (97). Fields are
decoded inside their body, so an unknown type is skipped by its length (counted in
:attr:`MobileBatch.unknown`), and a body longer than its known fields (a newer SDK appended a
field) is accepted; a body that runs past the end of the batch, or is too short for its fields,
is a :class:`MobileCodecError`. The backend-only types (90, 91, 110, 111) have no ``Length``
(MOBILE.md 3.5): one in a batch cannot be skipped, so decoding stops there and the batch keeps the
messages before it (:attr:`MobileBatch.stopped_at`).

The Android ``MobileNetworkCall`` (105) quirk (MOBILE.md 3.7.1): Android writes ``status`` as a
4-byte big-endian int and puts the response before the request. After the five strings, a body
with at least 5 bytes left that starts ``00 00`` cannot be the spec's varints, so the status is
read as an int32 (``status_int32=True`` on the message). Which slot holds the request depends on
the SDK, not on the bytes (Android swapped them before it changed the status): the decoder swaps
them back when told ``platform="android"``.

Errors: every malformed input raises :class:`MobileCodecError` (a :class:`CodecError`, so a
``ValueError``) and nothing else. The encoder writes what the decoder reads, for tests and for
our integration client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final, TypeAlias

import attrs

from engine.codec.primitives import (
    CodecError,
    read_boolean,
    read_string,
    read_uint,
    write_boolean,
    write_string,
    write_uint,
)

__all__ = [
    "ANDROID",
    "BACKEND_CLASSES",
    "BATCH_META_TYPE",
    "MESSAGE_CLASSES",
    "SDK_CLASSES",
    "MobileBatch",
    "MobileBatchMeta",
    "MobileClickEvent",
    "MobileCodecError",
    "MobileCrash",
    "MobileEvent",
    "MobileGraphQL",
    "MobileInputEvent",
    "MobileInternalError",
    "MobileIssueEvent",
    "MobileLog",
    "MobileMessage",
    "MobileMetadata",
    "MobileNetworkCall",
    "MobilePerformanceAggregated",
    "MobilePerformanceEvent",
    "MobileScreenChanges",
    "MobileSessionEnd",
    "MobileSessionStart",
    "MobileSwipeEvent",
    "MobileUnknown",
    "MobileUserAnonymousID",
    "MobileUserID",
    "MobileViewComponentEvent",
    "decode_backend_message",
    "decode_batch",
    "encode_batch",
    "encode_message",
    "iter_frames",
]

ANDROID: Final = "android"
BATCH_META_TYPE: Final = 107
NETWORK_CALL_TYPE: Final = 105


class MobileCodecError(CodecError):
    """Bad mobile batch bytes (truncation, garbage) or an unencodable value."""


class MobileMessage:
    """Common base of the mobile message classes: ``timestamp`` first, then ``WIRE`` fields."""

    __slots__ = ()
    TYPE_ID: ClassVar[int]
    WIRE: ClassVar[tuple[str, ...]]
    """Kinds ("uint", "string", "boolean") of the fields after the timestamp, in wire order."""
    __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]
    timestamp: int


@attrs.frozen(slots=True)
class MobileUnknown:
    """A message of a type we do not know, skipped by its ``Length`` and kept as its raw body."""

    type_id: int
    timestamp: int
    body: bytes


# -- SDK messages (type, Timestamp, Length, body) --------------------------------------------------


@attrs.frozen(slots=True)
class MobileMetadata(MobileMessage):
    """92: ``setMetadata(key, value)``."""

    TYPE_ID: ClassVar[int] = 92
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    timestamp: int
    key: str
    value: str


@attrs.frozen(slots=True)
class MobileEvent(MobileMessage):
    """93: a custom event (``event(name, payload)``; Android also ``viewAppeared``)."""

    TYPE_ID: ClassVar[int] = 93
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    timestamp: int
    name: str
    payload: str


@attrs.frozen(slots=True)
class MobileUserID(MobileMessage):
    """94: ``setUserID``."""

    TYPE_ID: ClassVar[int] = 94
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    timestamp: int
    id: str


@attrs.frozen(slots=True)
class MobileUserAnonymousID(MobileMessage):
    """95: ``setUserAnonymousID`` (iOS only)."""

    TYPE_ID: ClassVar[int] = 95
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    timestamp: int
    id: str


@attrs.frozen(slots=True)
class MobileScreenChanges(MobileMessage):
    """96: defined by both SDKs, emitted by neither."""

    TYPE_ID: ClassVar[int] = 96
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint", "uint")
    timestamp: int
    x: int
    y: int
    width: int
    height: int


@attrs.frozen(slots=True)
class MobileCrash(MobileMessage):
    """97: a crash; also sent alone as a whole batch (MOBILE.md 3.7.10)."""

    TYPE_ID: ClassVar[int] = 97
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string")
    timestamp: int
    name: str
    reason: str
    stacktrace: str


@attrs.frozen(slots=True)
class MobileViewComponentEvent(MobileMessage):
    """98: a view component of a screen appeared (``visible``) or disappeared (iOS)."""

    TYPE_ID: ClassVar[int] = 98
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "boolean")
    timestamp: int
    screen_name: str
    view_name: str
    visible: bool


@attrs.frozen(slots=True)
class MobileClickEvent(MobileMessage):
    """100: a tap at (x, y), screen points truncated to integers."""

    TYPE_ID: ClassVar[int] = 100
    WIRE: ClassVar[tuple[str, ...]] = ("string", "uint", "uint")
    timestamp: int
    label: str
    x: int
    y: int


@attrs.frozen(slots=True)
class MobileInputEvent(MobileMessage):
    """101: text input; ``value`` may be masked by the SDK (never stored by the engine)."""

    TYPE_ID: ClassVar[int] = 101
    WIRE: ClassVar[tuple[str, ...]] = ("string", "boolean", "string")
    timestamp: int
    value: str
    value_masked: bool
    label: str


@attrs.frozen(slots=True)
class MobilePerformanceEvent(MobileMessage):
    """102: one performance sample (fps, memoryUsage, mainThreadCPU, batteryLevel, ...)."""

    TYPE_ID: ClassVar[int] = 102
    WIRE: ClassVar[tuple[str, ...]] = ("string", "uint")
    timestamp: int
    name: str
    value: int


@attrs.frozen(slots=True)
class MobileLog(MobileMessage):
    """103: a log line (severity "info", "error", ...)."""

    TYPE_ID: ClassVar[int] = 103
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    timestamp: int
    severity: str
    content: str


@attrs.frozen(slots=True)
class MobileInternalError(MobileMessage):
    """104: defined, not emitted."""

    TYPE_ID: ClassVar[int] = 104
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    timestamp: int
    content: str


@attrs.frozen(slots=True)
class MobileNetworkCall(MobileMessage):
    """105: a network request. ``request`` / ``response`` are JSON ``{"body", "headers"}`` text.

    ``status_int32`` is not a field of the spec: it says the status was (or is to be) written as
    Android writes it, 4 bytes big-endian (module docstring).
    """

    TYPE_ID: ClassVar[int] = 105
    WIRE: ClassVar[tuple[str, ...]] = (
        "string", "string", "string", "string", "string", "uint", "uint",
    )  # fmt: skip
    timestamp: int
    type: str
    method: str
    url: str
    request: str
    response: str
    status: int
    duration: int
    status_int32: bool = False


@attrs.frozen(slots=True)
class MobileSwipeEvent(MobileMessage):
    """106: a swipe ("up", "down", "left", "right"); Android's label is always "Swipe"."""

    TYPE_ID: ClassVar[int] = 106
    WIRE: ClassVar[tuple[str, ...]] = ("string", "uint", "uint", "string")
    timestamp: int
    label: str
    x: int
    y: int
    direction: str


@attrs.frozen(slots=True)
class MobileBatchMeta(MobileMessage):
    """107: first of a normal batch; ``timestamp`` = flush time, ``first_index`` (MOBILE.md 3.3)."""

    TYPE_ID: ClassVar[int] = 107
    WIRE: ClassVar[tuple[str, ...]] = ("uint",)
    timestamp: int
    first_index: int


@attrs.frozen(slots=True)
class MobileGraphQL(MobileMessage):
    """109: a GraphQL operation."""

    TYPE_ID: ClassVar[int] = 109
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string", "string", "uint")
    timestamp: int
    operation_kind: str
    operation_name: str
    variables: str
    response: str
    duration: int


# -- backend-only messages (type, then every field; no Length) -------------------------------------


@attrs.frozen(slots=True)
class MobileSessionStart(MobileMessage):
    """90: made by the reference backend's ``/start``; never sent by an SDK."""

    TYPE_ID: ClassVar[int] = 90
    WIRE: ClassVar[tuple[str, ...]] = ("uint", *("string",) * 8)
    timestamp: int
    project_id: int
    tracker_version: str
    rev_id: str
    user_uuid: str
    user_os: str
    user_os_version: str
    user_device: str
    user_device_type: str
    user_country: str


@attrs.frozen(slots=True)
class MobileSessionEnd(MobileMessage):
    """91: made by the reference backend's ender."""

    TYPE_ID: ClassVar[int] = 91
    WIRE: ClassVar[tuple[str, ...]] = ()
    timestamp: int


@attrs.frozen(slots=True)
class MobilePerformanceAggregated(MobileMessage):
    """110: the reference heuristics' aggregate (``timestamp`` = TimestampStart)."""

    TYPE_ID: ClassVar[int] = 110
    WIRE: ClassVar[tuple[str, ...]] = ("uint",) * 13
    timestamp: int
    timestamp_end: int
    min_fps: int
    avg_fps: int
    max_fps: int
    min_cpu: int
    avg_cpu: int
    max_cpu: int
    min_memory: int
    avg_memory: int
    max_memory: int
    min_battery: int
    avg_battery: int
    max_battery: int


@attrs.frozen(slots=True)
class MobileIssueEvent(MobileMessage):
    """111: an issue of the reference heuristics (tap_rage)."""

    TYPE_ID: ClassVar[int] = 111
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string", "string")
    timestamp: int
    type: str
    context_string: str
    context: str
    payload: str


SDK_CLASSES: Final[dict[int, type[MobileMessage]]] = {
    cls.TYPE_ID: cls
    for cls in (
        MobileMetadata, MobileEvent, MobileUserID, MobileUserAnonymousID, MobileScreenChanges,
        MobileCrash, MobileViewComponentEvent, MobileClickEvent, MobileInputEvent,
        MobilePerformanceEvent, MobileLog, MobileInternalError, MobileNetworkCall,
        MobileSwipeEvent, MobileBatchMeta, MobileGraphQL,
    )
}  # fmt: skip
"""The messages an SDK sends (framed with a ``Length``), by type id."""
BACKEND_CLASSES: Final[dict[int, type[MobileMessage]]] = {
    cls.TYPE_ID: cls
    for cls in (MobileSessionStart, MobileSessionEnd, MobilePerformanceAggregated, MobileIssueEvent)
}
"""The messages only the reference backend makes (no ``Length``), by type id."""
MESSAGE_CLASSES: Final[dict[int, type[MobileMessage]]] = {**SDK_CLASSES, **BACKEND_CLASSES}
"""Every mobile message class (types 90-111) by type id."""

AnyMobileMessage: TypeAlias = MobileMessage | MobileUnknown


@attrs.frozen(slots=True)
class MobileBatch:
    """A decoded batch: its messages in wire order (unknown types as :class:`MobileUnknown`).

    ``unknown`` counts the unknown types skipped; ``stopped_at`` is the offset of a backend-only
    message that ended the decoding (``None`` when the whole batch was read).
    """

    messages: list[AnyMobileMessage]
    unknown: int = 0
    stopped_at: int | None = None

    @property
    def meta(self) -> MobileBatchMeta | None:
        """The batch's ``MobileBatchMeta`` when it is the first message (a normal batch)."""
        first = self.messages[0] if self.messages else None
        return first if type(first) is MobileBatchMeta else None


# -- decoding --------------------------------------------------------------------------------------

Reader: TypeAlias = Callable[[bytes, int], tuple[Any, int]]
_READERS: Final[dict[str, Reader]] = {
    "uint": read_uint,
    "string": read_string,
    "boolean": read_boolean,
}
_PLANS: Final[dict[int, tuple[type[MobileMessage], tuple[Reader, ...]]]] = {
    tid: (cls, tuple(_READERS[kind] for kind in cls.WIRE)) for tid, cls in MESSAGE_CLASSES.items()
}


def _label(type_id: int) -> str:
    cls = MESSAGE_CLASSES.get(type_id)
    return f"{cls.__name__} ({type_id})" if cls else f"message type {type_id}"


def _read_fields(readers: tuple[Reader, ...], buf: bytes, pos: int, values: list[Any]) -> int:
    for read in readers:
        value, pos = read(buf, pos)
        values.append(value)
    return pos


def _decode_network_call(ts: int, body: bytes, platform: str) -> MobileNetworkCall:
    pos = 0
    strings: list[str] = []
    for _ in range(5):
        text, pos = read_string(body, pos)
        strings.append(text)
    kind, method, url, request, response = strings
    int32 = len(body) - pos >= 5 and body[pos] == 0 and body[pos + 1] == 0
    if int32:  # a spec varint status cannot be 00 followed by a varint duration and more bytes
        status = int.from_bytes(body[pos : pos + 4], "big")
        pos += 4
    else:
        status, pos = read_uint(body, pos)
    duration, pos = read_uint(body, pos)
    if platform == ANDROID:
        request, response = response, request
    return MobileNetworkCall(ts, kind, method, url, request, response, status, duration, int32)


def _decode_body(type_id: int, ts: int, body: bytes, platform: str) -> MobileMessage:
    if type_id == NETWORK_CALL_TYPE:
        return _decode_network_call(ts, body, platform)
    cls, readers = _PLANS[type_id]
    values: list[Any] = [ts]
    _read_fields(readers, body, 0, values)
    return cls(*values)


def iter_frames(data: bytes | bytearray | memoryview) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(type_id, timestamp, body_start, body_end)`` for the SDK messages of a batch.

    Stops (without an error) before a backend-only message, which has no ``Length``; raises
    :class:`MobileCodecError` for a frame that is truncated or runs past the end.
    """
    buf = data if type(data) is bytes else bytes(data)
    n = len(buf)
    pos = 0
    backend = BACKEND_CLASSES
    while pos < n:
        try:
            type_id, p = read_uint(buf, pos)
            if type_id in backend:
                return
            ts, p = read_uint(buf, p)
            length, start = read_uint(buf, p)
        except CodecError as exc:
            raise MobileCodecError(f"truncated message head at offset {pos}: {exc}") from None
        end = start + length
        if end > n:
            raise MobileCodecError(
                f"body of {_label(type_id)} at offset {start} is {length} bytes,"
                f" only {n - start} left"
            )
        yield type_id, ts, start, end
        pos = end


def decode_batch(data: bytes | bytearray | memoryview, *, platform: str = "") -> MobileBatch:
    """Decode every message of a batch (``platform="android"`` swaps 105's slots back)."""
    buf = data if type(data) is bytes else bytes(data)
    messages: list[AnyMobileMessage] = []
    unknown = 0
    end = 0
    known = SDK_CLASSES
    for type_id, ts, start, end in iter_frames(buf):
        body = buf[start:end]
        if type_id not in known:
            unknown += 1
            messages.append(MobileUnknown(type_id, ts, body))
            continue
        try:
            messages.append(_decode_body(type_id, ts, body, platform))
        except CodecError as exc:
            raise MobileCodecError(f"{_label(type_id)} at offset {start}: {exc}") from None
    stopped = end if end < len(buf) else None
    return MobileBatch(messages, unknown, stopped)


def decode_backend_message(data: bytes | bytearray | memoryview) -> tuple[MobileMessage, int]:
    """Decode one backend-only message (type, then its fields) at the start of ``data``.

    Returns the message and the offset after it. They never come from an SDK (MOBILE.md 3.2);
    this reads what :func:`encode_message` writes for them, and what the reference's mob files
    hold.
    """
    buf = data if type(data) is bytes else bytes(data)
    try:
        type_id, pos = read_uint(buf, 0)
        if type_id not in BACKEND_CLASSES:
            raise MobileCodecError(f"{_label(type_id)} is not a backend-only mobile message")
        cls, readers = _PLANS[type_id]
        ts, pos = read_uint(buf, pos)
        values: list[Any] = [ts]
        pos = _read_fields(readers, buf, pos, values)
    except MobileCodecError:
        raise
    except CodecError as exc:
        raise MobileCodecError(str(exc)) from None
    return cls(*values), pos


# -- encoding --------------------------------------------------------------------------------------

Writer: TypeAlias = Callable[[bytearray, Any], None]
_WRITERS: Final[dict[str, Writer]] = {
    "uint": write_uint,
    "string": write_string,
    "boolean": write_boolean,
}
_ENCODE_PLANS: Final[dict[type, tuple[tuple[str, Writer], ...]]] = {
    cls: tuple(
        (field.name, _WRITERS[kind])
        # Definition order = wire order; the first field is the timestamp.
        for field, kind in zip(attrs.fields(cls)[1:], cls.WIRE, strict=False)
    )
    for cls in MESSAGE_CLASSES.values()
}


def _network_call_body(msg: MobileNetworkCall, platform: str) -> bytearray:
    out = bytearray()
    request, response = msg.request, msg.response
    if platform == ANDROID:
        request, response = response, request
    for text in (msg.type, msg.method, msg.url, request, response):
        write_string(out, text)
    if msg.status_int32:
        if not 0 <= msg.status < 1 << 31:
            raise MobileCodecError(f"status {msg.status} does not fit a 4-byte int")
        out += msg.status.to_bytes(4, "big")
    else:
        write_uint(out, msg.status)
    write_uint(out, msg.duration)
    return out


def encode_message(msg: AnyMobileMessage, *, platform: str = "") -> bytes:
    """Encode one message as an SDK writes it (backend-only types: type and fields, no Length).

    ``platform="android"`` writes 105's request and response in Android's slots.
    """
    out = bytearray()
    try:
        if isinstance(msg, MobileUnknown):
            write_uint(out, msg.type_id)
            write_uint(out, msg.timestamp)
            write_uint(out, len(msg.body))
            out += msg.body
            return bytes(out)
        if not isinstance(msg, MobileMessage):
            raise TypeError(f"not a mobile message: {msg!r}")
        write_uint(out, msg.TYPE_ID)
        write_uint(out, msg.timestamp)
        if isinstance(msg, MobileNetworkCall):
            body = _network_call_body(msg, platform)
        else:
            body = bytearray()
            for name, write in _ENCODE_PLANS[type(msg)]:
                write(body, getattr(msg, name))
        if msg.TYPE_ID in SDK_CLASSES:
            write_uint(out, len(body))
    except MobileCodecError:
        raise
    except CodecError as exc:
        raise MobileCodecError(str(exc)) from None
    out += body
    return bytes(out)


def encode_batch(messages: Iterable[AnyMobileMessage], *, platform: str = "") -> bytes:
    """Concatenate encoded messages into a batch (MOBILE.md 3.2: no header, no prefix)."""
    return b"".join(encode_message(msg, platform=platform) for msg in messages)
