"""Web tracker batch codec (PROTOCOL.md 5 and 6): bytes in, attrs messages out; sans-IO.

Owns the framing of a batch and the per-type decoders/encoders. Knows nothing of sessions, storage
or HTTP; must not import them.

Framing. A batch is a plain concatenation of messages. The first one is normally
``BatchMetadata`` (81), written as its type byte and fields with **no** size. When its
``version`` is >= 1 every following message is ``type uint`` + 3-byte little-endian body size +
body ("sized" batch), so unknown types are skipped and a body longer than its known fields (a
newer tracker appended a field) is accepted. A batch that does not start with 81, or whose
``BatchMetadata.version`` is 0, is a legacy "unsized" batch: messages follow back to back and
an unknown type id is a :class:`CodecError` because it cannot be skipped. Any version >= 1 is
read as sized (Go stops at 5; sizes are still checked to tile the batch exactly, so a future
framing change would surface as an error, not as wrong data). A ``BatchMetadata`` anywhere but
first is a :class:`CodecError`, as in Go (a protocol-2 "visual" request body must be cut at its
``split`` offset first; each part is a batch).

Message ids. ``index_in_batch`` counts every message of a batch from 0, the header included,
and :func:`message_id` numbers a message as the Go backend does.

Errors. Every malformed input raises :class:`CodecError` (a ``ValueError``) and nothing else;
invalid UTF-8 in strings is not an error (decoded with U+FFFD replacements, see
``primitives``). Byte-exact re-encoding holds for canonical input (what trackers send); a
non-canonical varint or a body with trailing bytes decodes fine but re-encodes canonically.

Speed. Framing walks a ``bytes`` object in a tight loop without decoding skipped bodies, and
each type's decoder is generated once, at import, as straight-line code from its ``WIRE``
spec (see ``_decoder_source``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Final, TypeAlias

import attrs

from engine.codec import web_messages as _wm
from engine.codec.primitives import (
    CodecError,
    uint_tail,
    write_boolean,
    write_int,
    write_string,
    write_uint,
)
from engine.codec.web_messages import *  # noqa: F403  (re-export: one import site for users)
from engine.codec.web_messages import MESSAGE_CLASSES, BatchMetadata, UnknownMessage, WebMessage

__all__ = [
    "BATCH_METADATA_TYPE",
    "MAX_BODY_SIZE",
    "AnyMessage",
    "CodecError",
    "decode_batch",
    "decode_message",
    "decode_selected",
    "encode_batch",
    "encode_message",
    "is_sized",
    "iter_frames",
    "iter_messages",
    "message_id",
    "peek_batch_metadata",
    *_wm.__all__,
]

AnyMessage: TypeAlias = WebMessage | UnknownMessage
BATCH_METADATA_TYPE: Final = 81
MAX_BODY_SIZE: Final = 0xFFFFFF  # largest body a 3-byte size can describe

# A decoder ``(buf, pos, limit) -> (message, end)`` reads one message body from ``buf`` at
# ``pos``; ``limit`` is where the body must end at the latest (its frame end, or ``len(buf)``
# in an unsized batch). Varints may read past ``limit`` (past ``len(buf)`` they raise
# ``IndexError``, which callers turn into CodecError): one check at the end, instead of one
# per field, keeps the straight-line code short. String lengths are checked as they are read.
Decoder: TypeAlias = Callable[[bytes, int, int], tuple[WebMessage, int]]


def _label(type_id: int) -> str:
    """``"MouseClick (68)"`` for error messages."""
    cls = MESSAGE_CLASSES.get(type_id)
    return f"{cls.__name__} ({type_id})" if cls else f"message type {type_id}"


def _decoder_source(cls: type[WebMessage]) -> str:
    """Python source of the straight-line decoder of ``cls`` (one local per field)."""
    name = cls.__name__
    label = _label(cls.TYPE_ID)
    lines = [f"def decode_{name}(b, p, n):"]
    args = []
    for i, kind in enumerate(cls.WIRE):
        v = f"v{i}"
        args.append(v)
        if kind in ("uint", "int"):
            # Fast path: one-byte varints (most ids, sizes, flags) avoid the helper call.
            lines.append(f"    {v} = b[p]; p += 1")
            lines.append(f"    if {v} >= 128: {v}, p = uint_tail(b, p, {v})")
            if kind == "int":
                lines.append(f"    {v} = ({v} >> 1) ^ -({v} & 1)")
        elif kind == "string":
            lines.append("    q = b[p]; p += 1")
            lines.append("    if q >= 128: q, p = uint_tail(b, p, q)")
            lines.append("    q += p")
            # Checked here, not only at the end, so that a garbage length never makes us
            # decode megabytes of the buffer as text before failing.
            lines.append(
                f"    if q > n: raise CodecError(f'{label}: string at {{p}} runs past the end')"
            )
            lines.append(f"    {v} = str(b[p:q], 'utf-8', 'replace'); p = q")
        elif kind == "boolean":
            lines.append(f"    {v} = b[p] == 1; p += 1")
        else:
            raise AssertionError(f"unknown wire kind {kind!r} in {name}.WIRE")
    lines.append("    if p > n:")
    lines.append(
        f"        raise CodecError(f'{label}: body ends before its fields "
        "(needs {p - n} more bytes)')"
    )
    lines.append(f"    return cls({', '.join(args)}), p")
    return "\n".join(lines) + "\n"


def _build_decoder(cls: type[WebMessage]) -> Decoder:
    namespace: dict[str, object] = {"cls": cls, "uint_tail": uint_tail, "CodecError": CodecError}
    exec(compile(_decoder_source(cls), f"<decoder {cls.__name__}>", "exec"), namespace)
    decoder = namespace[f"decode_{cls.__name__}"]
    return decoder  # type: ignore[return-value]


_DECODERS: Final[dict[int, Decoder]] = {
    type_id: _build_decoder(cls) for type_id, cls in MESSAGE_CLASSES.items()
}
_decode_batch_metadata: Final = _DECODERS[BATCH_METADATA_TYPE]

Writer: TypeAlias = Callable[[bytearray, object], None]
_WRITERS: Final[dict[str, Writer]] = {
    "uint": write_uint,  # type: ignore[dict-item]
    "int": write_int,  # type: ignore[dict-item]
    "string": write_string,  # type: ignore[dict-item]
    "boolean": write_boolean,  # type: ignore[dict-item]
}


def _encode_plan(cls: type[WebMessage]) -> tuple[tuple[str, Writer], ...]:
    names = [field.name for field in attrs.fields(cls)]  # definition order = wire order
    return tuple((name, _WRITERS[kind]) for name, kind in zip(names, cls.WIRE, strict=True))


_ENCODE_PLANS: Final = {cls: _encode_plan(cls) for cls in MESSAGE_CLASSES.values()}


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    # Indexing ``bytes`` is the fastest way to read single bytes in CPython; one copy of a
    # memoryview/bytearray up front is cheaper than slower indexing on every byte. Offsets into
    # the copy equal offsets into the caller's buffer.
    return data if type(data) is bytes else bytes(data)


# Reads a frame head in one call: byte 0 is the type id (when < 128) and bytes 1-3 are the
# little-endian body size, so the uint32 at the head's offset is ``type | size << 8``.
_unpack_u32: Final = struct.Struct("<I").unpack_from


def _read_type(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """Slow path for a type id >= 128 (no current web type): finish the varint or fail."""
    try:
        return uint_tail(buf, pos, first)
    except IndexError:
        raise CodecError(f"truncated type id at offset {pos - 1}") from None


def _frame_head_slow(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Frame head at ``pos`` with a multi-byte type id or near the end: (type, start, end)."""
    type_id = buf[pos]
    pos += 1
    if type_id >= 0x80:
        type_id, pos = _read_type(buf, pos, type_id)
    start = pos + 3
    if start > len(buf):
        raise CodecError(f"truncated size of {_label(type_id)} at offset {pos}")
    return type_id, start, start + int.from_bytes(buf[pos:start], "little")


def _read_header(buf: bytes) -> tuple[BatchMetadata | None, int, bool]:
    """Return (header or None, offset after it, sized framing?) for a non-empty batch."""
    if buf[0] != BATCH_METADATA_TYPE:
        return None, 0, False
    try:
        meta, end = _decode_batch_metadata(buf, 1, len(buf))
    except IndexError:
        raise CodecError("truncated BatchMetadata") from None
    assert isinstance(meta, BatchMetadata)
    return meta, end, meta.version >= 1


def is_sized(meta: BatchMetadata | None) -> bool:
    """True when messages after this header carry a 3-byte size (``version`` >= 1)."""
    return meta is not None and meta.version >= 1


def message_id(meta: BatchMetadata, index_in_batch: int) -> int:
    """Backend message id of the message at ``index_in_batch`` (header = 0) of a batch.

    ``(page_no << 32) + first_index + index_in_batch``, the Go backend's numbering: the header
    gets ``(page_no << 32) + first_index`` and every following message one more. The tracker's
    ``first_index`` does not count the batch writer's header messages, so consecutive batches can
    overlap by 2-3 ids (PROTOCOL.md 5.3); the pair (timestamp, message_id) still orders events.
    """
    return (meta.page_no << 32) + meta.first_index + index_in_batch


def peek_batch_metadata(data: bytes | bytearray | memoryview) -> BatchMetadata | None:
    """Decode only the batch header; None when the batch does not start with type 81.

    Raises :class:`CodecError` when it starts with 81 but the header is truncated.
    """
    if not data or data[0] != BATCH_METADATA_TYPE:
        return None
    if type(data) is bytes:
        return _read_header(data)[0]
    # Only the header's bytes matter: it is well under 4 KiB unless its URL is huge, so decode
    # from a small prefix instead of copying a large buffer. A prefix cannot decode to anything
    # but the full header: every decoder read is bounds-checked against the prefix's length.
    head = bytes(data[:4096])
    if len(head) < len(data):
        try:
            return _read_header(head)[0]
        except CodecError:
            head = bytes(data)
    return _read_header(head)[0]


def iter_frames(data: bytes | bytearray | memoryview) -> Iterator[tuple[int, int, int]]:
    """Yield ``(type_id, body_start, body_end)`` for every message of a batch, header included.

    In a sized batch the bodies are not decoded (only the frame sizes are read and checked to
    tile the batch exactly); in a legacy unsized batch each message has to be decoded to find
    where it ends. Offsets index ``data``. The header frame is ``(81, 1, end of header)``.
    """
    buf = _as_bytes(data)
    n = len(buf)
    if not n:
        return
    meta, pos, sized = _read_header(buf)
    if meta is not None:
        yield BATCH_METADATA_TYPE, 1, pos
    if not sized:
        for type_id, start, end, _msg in _iter_unsized(buf, pos):
            yield type_id, start, end
        return
    unpack = _unpack_u32
    last = n - 4  # a frame head is at least 4 bytes
    while pos < n:
        # One-byte type id + 3-byte size = one little-endian uint32 read (see _unpack_u32).
        if pos <= last and not (head := unpack(buf, pos)[0]) & 0x80:
            type_id = head & 0x7F
            start = pos + 4
            end = start + (head >> 8)
        else:
            type_id, start, end = _frame_head_slow(buf, pos)
        if end > n:
            raise CodecError(f"body of {_label(type_id)} at offset {start} runs past the end")
        if type_id == BATCH_METADATA_TYPE:
            raise CodecError(f"BatchMetadata at offset {pos} is not first in the batch")
        yield type_id, start, end
        pos = end


def _iter_unsized(buf: bytes, pos: int) -> Iterator[tuple[int, int, int, WebMessage]]:
    """Decode a legacy batch (no size prefixes) from ``pos``: (type, start, end, message)."""
    n = len(buf)
    decoders = _DECODERS
    while pos < n:
        type_id = buf[pos]
        pos += 1
        if type_id >= 0x80:
            type_id, pos = _read_type(buf, pos, type_id)
        if type_id == BATCH_METADATA_TYPE:
            raise CodecError(f"BatchMetadata at offset {pos - 1} is not first in the batch")
        decoder = decoders.get(type_id)
        if decoder is None:
            raise CodecError(f"unknown message type {type_id} in an unsized batch at offset {pos}")
        try:
            msg, end = decoder(buf, pos, n)
        except IndexError:
            raise CodecError(f"{_label(type_id)} at offset {pos} runs past the end") from None
        yield type_id, pos, end, msg
        pos = end


def iter_messages(
    data: bytes | bytearray | memoryview, wanted: frozenset[int] | None = None
) -> Generator[tuple[int, AnyMessage], None, int]:
    """Yield ``(index_in_batch, message)``, decoding only the types in ``wanted``.

    The generator's return value is the number of messages in the batch (header included), so
    a caller can count what it walked without a second pass (see :func:`decode_selected`).

    ``index_in_batch`` counts every message of the batch (header = 0, skipped ones included),
    so it feeds :func:`message_id` directly. Messages of other types are skipped by their size
    and not yielded. ``wanted=None`` decodes everything; unknown ids then yield
    :class:`UnknownMessage` (as does an unknown id listed in ``wanted``).
    """
    buf = _as_bytes(data)
    n = len(buf)
    if not n:
        return 0
    meta, pos, sized = _read_header(buf)
    everything = wanted is None
    want: frozenset[int] = frozenset() if wanted is None else wanted
    index = 0
    if meta is not None:
        if everything or BATCH_METADATA_TYPE in want:
            yield 0, meta
        index = 1
    if not sized:
        for type_id, _start, _end, msg in _iter_unsized(buf, pos):
            if everything or type_id in want:
                yield index, msg
            index += 1
        return index
    decoders = _DECODERS
    # The frame walk of iter_frames, inlined: a nested generator would cost a resume per message.
    unpack = _unpack_u32
    last = n - 4
    while pos < n:
        if pos <= last and not (head := unpack(buf, pos)[0]) & 0x80:
            type_id = head & 0x7F
            start = pos + 4
            end = start + (head >> 8)
        else:
            type_id, start, end = _frame_head_slow(buf, pos)
        if end > n:
            raise CodecError(f"body of {_label(type_id)} at offset {start} runs past the end")
        if type_id == BATCH_METADATA_TYPE:
            raise CodecError(f"BatchMetadata at offset {pos} is not first in the batch")
        if everything or type_id in want:
            decoder = decoders.get(type_id)
            if decoder is None:
                yield index, UnknownMessage(type_id, buf[start:end])
            else:
                try:
                    msg, _ = decoder(buf, start, end)
                except IndexError:
                    # Reading off the end of the buffer (only possible in its last message).
                    raise CodecError(
                        f"{_label(type_id)} at offset {start} runs past the end"
                    ) from None
                yield index, msg
        index += 1
        pos = end
    return index


def _returning(
    generator: Generator[tuple[int, AnyMessage], None, int], box: list[int]
) -> Iterator[tuple[int, AnyMessage]]:
    box.append((yield from generator))


def decode_selected(
    data: bytes | bytearray | memoryview, wanted: frozenset[int]
) -> tuple[list[tuple[int, AnyMessage]], int]:
    """``(the (index, message) pairs of iter_messages, number of messages in the batch)``."""
    box: list[int] = []
    selected = list(_returning(iter_messages(data, wanted), box))
    return selected, box[0]


def decode_batch(data: bytes | bytearray | memoryview) -> list[AnyMessage]:
    """Decode every message of a batch (header first), unknown ids as :class:`UnknownMessage`."""
    return [msg for _, msg in iter_messages(data)]


def decode_message(type_id: int, body: bytes | bytearray | memoryview) -> AnyMessage:
    """Decode one message body of a known type; unknown ids give :class:`UnknownMessage`.

    Trailing bytes after the known fields are ignored; a body too short is a CodecError.
    """
    buf = _as_bytes(body)
    decoder = _DECODERS.get(type_id)
    if decoder is None:
        return UnknownMessage(type_id, buf)
    try:
        msg, _ = decoder(buf, 0, len(buf))
    except IndexError:
        raise CodecError(f"{_label(type_id)}: body ends before its fields") from None
    return msg


def _encode_body(msg: WebMessage) -> bytearray:
    plan = _ENCODE_PLANS.get(type(msg))
    if plan is None:
        raise TypeError(f"not a web message: {msg!r}")
    out = bytearray()
    for name, write in plan:
        write(out, getattr(msg, name))
    return out


def encode_message(msg: AnyMessage, *, sized: bool = True) -> bytes:
    """Encode one message: type varint + 3-byte LE body size + body.

    ``BatchMetadata`` never has a size. ``sized=False`` writes a legacy unsized message (type +
    body); an :class:`UnknownMessage` cannot be written that way (CodecError).
    """
    if not isinstance(msg, WebMessage | UnknownMessage):
        raise TypeError(f"not a web message: {msg!r}")
    out = bytearray()
    if isinstance(msg, UnknownMessage):
        if not sized:
            raise CodecError("an unknown message cannot be written without its size")
        write_uint(out, msg.type_id)
        body: bytes | bytearray = msg.body
    else:
        write_uint(out, msg.TYPE_ID)
        body = _encode_body(msg)
        if msg.TYPE_ID == BATCH_METADATA_TYPE:
            sized = False
    if sized:
        size = len(body)
        if size > MAX_BODY_SIZE:
            raise CodecError(f"message body of {size} bytes exceeds {MAX_BODY_SIZE}")
        out += size.to_bytes(3, "little")
    out += body
    return bytes(out)


def encode_batch(messages: Iterable[AnyMessage]) -> bytes:
    """Concatenate encoded messages into a batch, framed as the decoder will read it.

    Sized framing when the first message is a ``BatchMetadata`` of version >= 1, else legacy
    unsized framing. A ``BatchMetadata`` that is not first is a CodecError (decoders reject it).
    """
    out = bytearray()
    sized = False
    for i, msg in enumerate(messages):
        if isinstance(msg, BatchMetadata):
            if i:
                raise CodecError("BatchMetadata must be the first message of a batch")
            sized = msg.version >= 1
        out += encode_message(msg, sized=sized)
    return bytes(out)
