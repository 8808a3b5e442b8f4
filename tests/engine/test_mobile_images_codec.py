"""Unpacking the mobile SDKs' screenshot uploads (engine.codec.mobile_images): tar and frames
modes, what is skipped, and that hostile input raises only the codec's own errors, bounded."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec.mobile_images import (
    ImageArchiveError,
    ImageArchiveTooLarge,
    capture_time_of,
    encode_frames,
    unpack_frames,
    unpack_tar,
)
from storage.images import CapturedImage

LIMITS = {"max_image": 10_000, "max_total": 100_000}


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """An uncompressed tar of ``members`` (each a header and its data)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def tar_images(data: bytes) -> list[CapturedImage]:
    return list(unpack_tar(io.BytesIO(data), **LIMITS))


def test_tar_entries_give_their_capture_time() -> None:
    upload = gzip.compress(
        tar_of(
            (entry("1700000000000_1_1700000000123.jpeg"), b"\xff\xd8\xffone"),
            (entry("1700000000000_1_1700000000456.jpeg"), b"RIFF....WEBPtwo"),
        )
    )
    assert tar_images(upload) == [
        CapturedImage(1700000000123, b"\xff\xd8\xffone"),
        CapturedImage(1700000000456, b"RIFF....WEBPtwo"),
    ]


def test_a_gzip_of_several_members_is_one_stream() -> None:
    raw = tar_of((entry("1_1_5.jpeg"), b"five"))
    upload = gzip.compress(raw[:700]) + gzip.compress(raw[700:])
    assert tar_images(upload) == [CapturedImage(5, b"five")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1_1_123.jpeg", 123),
        ("1_1_123", 123),
        ("x_9", 9),
        ("1_1_abc.jpeg", None),
        ("nounderscore.jpeg", None),
        ("1_1_.jpeg", None),
        ("../1_1_5.jpeg", None),
        ("/etc/1_1_5.jpeg", None),
        ("dir\\1_1_5.jpeg", None),
        (".hidden_5", None),
        ("1_1_99999999999999999999.jpeg", None),  # past int64
        ("1_1_\u0665.jpeg", None),  # a non-ASCII digit
    ],
)
def test_capture_time_of_a_name(name: str, expected: int | None) -> None:
    assert capture_time_of(name) == expected


def test_links_paths_and_special_entries_are_skipped(tmp_path: object) -> None:
    upload = gzip.compress(
        tar_of(
            (entry("../../1_1_1.jpeg"), b"escape"),
            (entry("/tmp/1_1_2.jpeg"), b"absolute"),
            (entry("1_1_3.jpeg", tarfile.SYMTYPE, "/etc/passwd"), b""),
            (entry("1_1_4.jpeg", tarfile.LNKTYPE, "1_1_9.jpeg"), b""),
            (entry("1_1_5.jpeg", tarfile.DIRTYPE), b""),
            (entry("1_1_6.jpeg", tarfile.FIFOTYPE), b""),
            (entry("1_1_7.jpeg", tarfile.CHRTYPE), b""),
            (entry("no-time.jpeg"), b"skipped"),
            (entry("1_1_8.jpeg"), b""),  # empty: nothing to store
            (entry("1_1_9.jpeg"), b"kept"),
        )
    )
    assert tar_images(upload) == [CapturedImage(9, b"kept")]


def _with_size_field(raw: bytes, size_field: bytes) -> bytes:
    """``raw`` (a tar) with its first header's size field replaced and the checksum redone."""
    header = bytearray(raw[:512])
    header[124:136] = size_field
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + raw[512:]


def test_an_entry_claiming_a_huge_size_is_refused() -> None:
    raw = tar_of((entry("1_1_5.jpeg"), b"0123456789"))
    huge = _with_size_field(raw, b"77777777777\0")  # 8 GiB
    with pytest.raises(ImageArchiveTooLarge):
        tar_images(gzip.compress(huge))
    # Within the image bound but past the data: a truncated archive.
    short = _with_size_field(raw, b"%011o\0" % 50_000)  # past the 10 KB tar record too
    with pytest.raises(ImageArchiveError, match=r"truncated|unexpected end"):
        list(unpack_tar(io.BytesIO(gzip.compress(short)), max_image=60_000, max_total=100_000))


def test_a_gzip_bomb_stops_at_the_bound() -> None:
    images = [(entry(f"1_1_{n}.jpeg"), bytes([n]) * 9_000) for n in range(20)]
    bomb = gzip.compress(tar_of(*images))  # 180 KB unpacked, a few KB packed
    assert len(bomb) < LIMITS["max_total"] // 10
    with pytest.raises(ImageArchiveTooLarge):
        tar_images(bomb)
    with pytest.raises(ImageArchiveTooLarge):
        list(unpack_frames(io.BytesIO(gzip.compress(b"\0" * 1_000_000)), **LIMITS))


def test_frames_round_trip() -> None:
    images = [CapturedImage(1700000000123, b"\xff\xd8\xffa"), CapturedImage(2**63 - 1, b"b" * 300)]
    upload = gzip.compress(encode_frames(images))
    assert list(unpack_frames(io.BytesIO(upload), **LIMITS)) == images


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (encode_frames([CapturedImage(1, b"abc")])[:-1], "truncated frame"),
        (encode_frames([CapturedImage(1, b"abc")]) + b"\x01\x02", "truncated frame header"),
        (b"\0" * 8 + (20_000).to_bytes(4, "little"), "over"),
        ((2**64 - 1).to_bytes(8, "little") + b"\x01\0\0\0x", "out of range"),
    ],
)
def test_bad_frames_are_refused(stream: bytes, error: str) -> None:
    with pytest.raises(ImageArchiveError, match=error):
        list(unpack_frames(io.BytesIO(gzip.compress(stream)), **LIMITS))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3_000), st.booleans())
def test_garbage_raises_only_the_codecs_error(data: bytes, gzipped: bool) -> None:
    upload = gzip.compress(data) if gzipped else data
    for unpack in (unpack_tar, unpack_frames):
        try:
            for image in unpack(io.BytesIO(upload), **LIMITS):
                assert 0 < len(image.data) <= LIMITS["max_image"]
        except ImageArchiveError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=3_000), st.integers(min_value=0, max_value=7))
def test_damaged_archives_raise_only_the_codecs_error(cut: int, bit: int) -> None:
    raw = tar_of((entry("1_1_5.jpeg"), b"\xff\xd8\xff" * 300), (entry("1_1_6.jpeg"), b"x" * 500))
    upload = bytearray(gzip.compress(raw))
    position = cut % len(upload)
    upload[position] ^= 1 << bit
    for candidate in (bytes(upload), bytes(upload[:position])):
        with contextlib.suppress(ImageArchiveError):
            tar_images(candidate)
