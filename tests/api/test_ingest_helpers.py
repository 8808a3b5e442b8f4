"""Pure helpers of the ingest path: gunzip with caps, tracker version check, batch keys."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import ApiError
from api.ingest_web import batch_key, gunzip, tracker_version_ok


@given(st.lists(st.binary(max_size=2_000), min_size=1, max_size=3))
def test_gunzip_roundtrips_single_and_multi_member(members: list[bytes]) -> None:
    data = b"".join(gzip.compress(m) for m in members)
    assert gunzip(data, 10_000) == b"".join(members)


def test_gunzip_caps_output_and_rejects_garbage() -> None:
    assert gunzip(gzip.compress(b"a" * 100), 100) == b"a" * 100
    for data, limit, status in [
        (gzip.compress(b"a" * 101), 100, 413),
        (gzip.compress(b"a" * 50) + gzip.compress(b"b" * 51), 100, 413),
        (b"plain", 100, 400),
        (gzip.compress(b"a" * 100)[:-6], 1000, 400),
    ]:
        with pytest.raises(ApiError) as caught:
            gunzip(data, limit)
        assert caught.value.status == status


def test_tracker_versions() -> None:
    for ok in ["6.0.0", "19.0.1", "20.0.0-beta.1", "v7.1.2", "6", "6.1", "16.4.10+build5"]:
        assert tracker_version_ok(ok), ok
    # The last one starts with a fullwidth six, which str.isdigit() accepts.
    for old in ["5.9.9", "3.6.0", "", "banana", "1.2.3.4", "6.x", "-1.0.0", "\uff16.0.0"]:
        assert not tracker_version_ok(old), old


def test_batch_keys() -> None:
    body = b"\x51\x01\x00"
    digest = batch_key("", body).removeprefix("#")
    assert len(digest) == 16
    assert batch_key("0_1_3239_kyes", body) == f"0_1#{digest}"
    assert batch_key("0_1_3239_kyes_network:503", body) == f"0_1#{digest}"  # a retry tag
    assert batch_key("12_007_10_kno", body, ":assets") == f"12_7:assets#{digest}"
    assert batch_key("x_1", body, ":devtools") == f":devtools#{digest}"
    assert batch_key("0_1", body) != batch_key("0_1", body + b"\x00")
