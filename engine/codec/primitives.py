"""Wire primitives of the OpenReplay tracker protocol (PROTOCOL.md 5.1), sans-IO.

Owns the four field encodings and the one exception type of the codecs:

* ``uint``: unsigned LEB128, at most 10 bytes, value at most 2**64 - 1 (as Go's reader);
  non-canonical encodings (a redundant trailing ``0x00`` group) are accepted on read.
* ``int``: zigzag, then LEB128 (so -2**63 .. 2**63 - 1).
* ``string``: ``uint`` byte length, then UTF-8. Invalid UTF-8 does **not** raise: it is decoded
  with ``errors="replace"`` (U+FFFD), which is what the tracker itself does with lone surrogates,
  and keeps every decoded string storable as text downstream.
* ``boolean``: one byte; only ``1`` is true (as Go's reader), anything else is false.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; they raise only :class:`CodecError`.
Writers append to a ``bytearray`` and raise :class:`CodecError` for values the wire cannot carry.
Nothing here knows message types; see ``engine.codec.web`` for framing.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_VARINT_BYTES",
    "UINT_MAX",
    "CodecError",
    "encode_uint",
    "read_boolean",
    "read_int",
    "read_string",
    "read_uint",
    "uint_tail",
    "write_boolean",
    "write_int",
    "write_string",
    "write_uint",
    "zigzag_decode",
    "zigzag_encode",
]

MAX_VARINT_BYTES: Final = 10
UINT_MAX: Final = (1 << 64) - 1
INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 63) - 1

Buffer = bytes | bytearray


class CodecError(ValueError):
    """Bad wire data (garbage, truncation, over-long varint, ...) or an unencodable value.

    The only exception the codecs raise for bad input, so callers can park a record on it.
    """


def uint_tail(buf: Buffer, pos: int, first: int) -> tuple[int, int]:
    """Finish a varint whose first byte ``first`` (>= 0x80) was already read; ``pos`` follows it.

    Hot-path helper for generated decoders: running off the end of ``buf`` raises ``IndexError``
    (the caller turns it into :class:`CodecError` once, outside its loop); length and overflow
    violations raise :class:`CodecError` directly. Unrolled because multi-byte varints are
    common (node ids, dictionary keys around 9.5e14, millisecond timestamps) and a loop with a
    shift counter costs about a quarter more per call.
    """
    value = first & 0x7F
    byte = buf[pos]
    if byte < 0x80:
        return value | byte << 7, pos + 1
    value |= (byte & 0x7F) << 7
    byte = buf[pos + 1]
    if byte < 0x80:
        return value | byte << 14, pos + 2
    value |= (byte & 0x7F) << 14
    byte = buf[pos + 2]
    if byte < 0x80:
        return value | byte << 21, pos + 3
    value |= (byte & 0x7F) << 21
    byte = buf[pos + 3]
    if byte < 0x80:
        return value | byte << 28, pos + 4
    value |= (byte & 0x7F) << 28
    byte = buf[pos + 4]
    if byte < 0x80:
        return value | byte << 35, pos + 5
    value |= (byte & 0x7F) << 35
    byte = buf[pos + 5]
    if byte < 0x80:
        return value | byte << 42, pos + 6
    value |= (byte & 0x7F) << 42
    byte = buf[pos + 6]
    if byte < 0x80:
        return value | byte << 49, pos + 7
    value |= (byte & 0x7F) << 49
    byte = buf[pos + 7]
    if byte < 0x80:
        return value | byte << 56, pos + 8
    value |= (byte & 0x7F) << 56
    byte = buf[pos + 8]  # the 10th byte: holds bit 63 only
    if byte >= 0x80:
        raise CodecError(f"varint longer than {MAX_VARINT_BYTES} bytes at offset {pos - 1}")
    if byte > 1:
        raise CodecError(f"uint overflows 64 bits at offset {pos - 1}")
    return value | byte << 63, pos + 9


def read_uint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``pos``."""
    try:
        first = buf[pos]
        if first < 0x80:
            return first, pos + 1
        return uint_tail(buf, pos + 1, first)
    except IndexError:
        raise CodecError(f"truncated uint at offset {pos}") from None


def zigzag_decode(raw: int) -> int:
    """Map 0, 1, 2, 3, ... back to 0, -1, 1, -2, ..."""
    return (raw >> 1) ^ -(raw & 1)


def zigzag_encode(value: int) -> int:
    """Map 0, -1, 1, -2, ... to 0, 1, 2, 3, ... (``(n << 1) ^ (n >> 63)`` without a width)."""
    return value << 1 if value >= 0 else (-value << 1) - 1


def read_int(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read a zigzag-encoded signed varint at ``pos``."""
    raw, pos = read_uint(buf, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def read_string(buf: Buffer, pos: int) -> tuple[str, int]:
    """Read a length-prefixed UTF-8 string at ``pos`` (invalid UTF-8 becomes U+FFFD)."""
    length, pos = read_uint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise CodecError(f"string of {length} bytes at offset {pos} runs past the end")
    return str(buf[pos:end], "utf-8", "replace"), end


def read_boolean(buf: Buffer, pos: int) -> tuple[bool, int]:
    """Read a one-byte boolean at ``pos`` (only ``1`` is true)."""
    try:
        return buf[pos] == 1, pos + 1
    except IndexError:
        raise CodecError(f"truncated boolean at offset {pos}") from None


def write_uint(out: bytearray, value: int) -> None:
    """Append ``value`` (0 .. 2**64 - 1) as unsigned LEB128."""
    if value < 0 or value > UINT_MAX:
        raise CodecError(f"uint out of range: {value}")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode_uint(value: int) -> bytes:
    """Return ``value`` as unsigned LEB128 bytes."""
    out = bytearray()
    write_uint(out, value)
    return bytes(out)


def write_int(out: bytearray, value: int) -> None:
    """Append ``value`` (-2**63 .. 2**63 - 1) zigzag-encoded."""
    if value < INT_MIN or value > INT_MAX:
        raise CodecError(f"int out of range: {value}")
    write_uint(out, value << 1 if value >= 0 else (-value << 1) - 1)


def write_string(out: bytearray, value: str) -> None:
    """Append ``value`` as length + UTF-8 (lone surrogates become U+FFFD, as in the tracker)."""
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        data = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
    write_uint(out, len(data))
    out += data


def write_boolean(out: bytearray, value: bool) -> None:
    """Append ``value`` as one byte, 1 or 0."""
    out.append(1 if value else 0)
