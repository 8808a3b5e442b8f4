"""The raw ASGI route of POST /v1/web/i: what it reads from the scope, and that the app's path
answers exactly as the Quart route does (the behaviour tests of test_ingest_batches run on it)."""

from __future__ import annotations

from typing import Any

from api.ingest_raw import ingest_request_of
from api.ingest_web import IngestRequest


def _scope(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Any:
    return {"type": "http", "method": "POST", "path": "/v1/web/i", "headers": headers,
            "query_string": query, "client": ("127.0.0.1", 50123)}  # fmt: skip


def test_the_first_value_of_each_header_and_parameter_is_read_whatever_its_case() -> None:
    scope = _scope(
        [
            (b"Authorization", b"Bearer a.b.c.d"),
            (b"authorization", b"Bearer other"),
            (b"datatype", b"visual"),
            (b"CONTENT-ENCODING", b"gzip"),
            (b"content-length", b"12"),
            (b"user-agent", b"Mozilla/5.0"),
            (b"X-Forwarded-For", b"203.0.113.9, 10.0.0.1"),
        ],
        b"batch=3_7_1_ab&split=5&batch=9_9&x=%41",
    )
    assert ingest_request_of(scope) == IngestRequest(
        authorization="Bearer a.b.c.d",
        content_encoding="gzip",
        data_type="visual",
        batch="3_7_1_ab",
        split="5",
        content_length=12,
        user_agent="Mozilla/5.0",
        forwarded_for="203.0.113.9, 10.0.0.1",
        remote_addr="127.0.0.1",
    )


def test_percent_escapes_are_decoded_and_a_bad_length_is_no_length() -> None:
    for length in (b"twelve", b"-3", b""):
        scope = _scope([(b"content-length", length)], b"split=1%32&batch=")
        assert ingest_request_of(scope) == IngestRequest(
            split="12", batch="", content_length=None, remote_addr="127.0.0.1"
        )


def test_a_request_without_headers_is_empty_but_for_its_peer() -> None:
    assert ingest_request_of(_scope([])) == IngestRequest(remote_addr="127.0.0.1")
