"""The screenshot uploads of the mobile SDKs (MOBILE.md 2.5): gzip of a tar, or of a frames stream.

Sans-IO: reads a gzip file object that the caller has (the upload's file part) and yields
:class:`storage.images.CapturedImage` one at a time, so that an upload is never unpacked into
memory all at once. Bounded whatever the input: each image at most ``max_image`` bytes, the whole
unpacked stream at most ``max_total`` (a gzip bomb stops there), and nothing is ever written to
disk, so tar names (``../x``, absolute paths) and links cannot reach the file system.

- **tar mode**: regular entries named ``<firstTs>_1_<captureTs>.<ext>``; the capture time is the
  text after the last ``_`` without the extension. Entries that are not regular files (links,
  directories, devices), that name a path rather than a file, or whose name has no numeric
  capture time are skipped, as the reference backend skips them.
- **frames mode**: records ``[u64 LE capture ms][u32 LE size][image bytes]`` back to back.

Malformed input raises :class:`ImageArchiveError` (gzip, tar or frame damage) or its subclass
:class:`ImageArchiveTooLarge` (a size bound); nothing else escapes for bad bytes.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol

from storage.images import CapturedImage

_FRAME_HEADER = struct.Struct("<QI")
_INT64_MAX = 2**63 - 1
# Every error that bad gzip or tar bytes raise from the standard library's readers.
_READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError, ValueError)


class ImageArchiveError(ValueError):
    """The upload's file is not a valid gzip of a tar or of a frames stream."""


class ImageArchiveTooLarge(ImageArchiveError):
    """An image, or the unpacked upload, is over its bound."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Bounded(io.RawIOBase):
    """A read-only view of ``source`` that refuses to give more than ``limit`` bytes in total.

    Read sizes are clamped before they reach ``source``: a gzip reader asked for 1 GB would
    inflate 1 GB before anyone could count it.
    """

    def __init__(self, source: _Readable, limit: int) -> None:
        self._source = source
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            # One byte more than allowed exists: the stream is over the bound.
            if self._source.read(1):
                raise ImageArchiveTooLarge("the unpacked upload is over its size limit")
            return 0
        data = self._source.read(min(len(buffer), self._left))
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _unpacked(gzipped: BinaryIO, max_total: int) -> io.BufferedReader:
    return io.BufferedReader(_Bounded(gzip.GzipFile(fileobj=gzipped, mode="rb"), max_total))


def capture_time_of(name: str) -> int | None:
    """The capture time (ms) in a tar entry's name, or None when it has none or names a path.

    ``1700000000000_1_1700000000123.jpeg`` -> ``1700000000123``.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if "_" not in stem:
        return None
    tail = stem.rsplit("_", 1)[1]
    if not (tail.isascii() and tail.isdigit()) or len(tail) > 19:
        return None
    value = int(tail)
    return value if value <= _INT64_MAX else None


def unpack_tar(gzipped: BinaryIO, *, max_image: int, max_total: int) -> Iterator[CapturedImage]:
    """The images of a gzipped tar, in archive order (see the module for what is skipped)."""
    return _reading("tar", _tar_images(_unpacked(gzipped, max_total), max_image))


def unpack_frames(gzipped: BinaryIO, *, max_image: int, max_total: int) -> Iterator[CapturedImage]:
    """The images of a gzipped frames stream, in stream order."""
    return _reading("frames stream", _frame_images(_unpacked(gzipped, max_total), max_image))


def unpack_plain_frames(
    raw: BinaryIO, *, max_image: int, max_total: int
) -> Iterator[CapturedImage]:
    """The images of a frames stream that is not gzipped (the web tracker's canvas uploads)."""
    stream: io.BufferedReader = io.BufferedReader(_Bounded(raw, max_total))
    return _reading("frames stream", _frame_images(stream, max_image))


def _reading(what: str, images: Iterator[CapturedImage]) -> Iterator[CapturedImage]:
    """``images``, the standard library's errors for bad bytes raised as ImageArchiveError."""
    try:
        yield from images
    except ImageArchiveError:
        raise
    except _READ_ERRORS as error:
        raise ImageArchiveError(f"not a gzipped {what}: {error}") from None


def _tar_images(stream: io.BufferedReader, max_image: int) -> Iterator[CapturedImage]:
    # "r|": a stream, read once from the front; no seeking, no member list kept in memory.
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.isreg():
                continue
            if member.size > max_image:
                raise ImageArchiveTooLarge(
                    f"a tar entry of {member.size} bytes is over {max_image}"
                )
            capture_ms = capture_time_of(member.name)
            if capture_ms is None:
                continue
            entry = archive.extractfile(member)
            if entry is None:  # not for a regular member; kept for the type checker
                continue
            data = entry.read(member.size)
            if len(data) != member.size:
                raise ImageArchiveError("truncated tar entry")
            if data:
                yield CapturedImage(capture_ms, data)


def _frame_images(stream: io.BufferedReader, max_image: int) -> Iterator[CapturedImage]:
    with stream:
        while header := stream.read(_FRAME_HEADER.size):
            if len(header) != _FRAME_HEADER.size:
                raise ImageArchiveError("truncated frame header")
            capture_ms, size = _FRAME_HEADER.unpack(header)
            if size > max_image:
                raise ImageArchiveTooLarge(f"a frame of {size} bytes is over {max_image}")
            if capture_ms > _INT64_MAX:
                raise ImageArchiveError("frame capture time out of range")
            data = stream.read(size)
            if len(data) != size:
                raise ImageArchiveError("truncated frame")
            if data:
                yield CapturedImage(capture_ms, data)


def encode_frames(images: Iterable[CapturedImage]) -> bytes:
    """The frames stream of ``images`` (not gzipped), as the iOS SDK writes it."""
    return b"".join(
        _FRAME_HEADER.pack(image.capture_ms, len(image.data)) + image.data for image in images
    )
