"""A keep-alive connection keeps working after an answer that came before the request body.

Found by schemathesis: a client that writes the headers and the body of a request separately
(``requests`` does) and gets an early answer (401, 405, 413: the route never read the body) had
its next request on that connection left unanswered forever. Raw sockets here, to control when
each byte is sent.
"""

from __future__ import annotations

import trio

from tests.api.conftest import Harness

BODY = b'{"name": "x", "platform": "web"}'


def head(method: str, path: str, length: int) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def read_answer(stream: trio.SocketStream) -> bytes:
    """One response's status line, or b"" if the server closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            return b""
        data += chunk
    headers, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in headers.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await stream.receive_some()
    return headers.split(b"\r\n", 1)[0]


async def test_early_answers_before_the_body_keep_the_connection_usable(harness: Harness) -> None:
    for method, path, status in (
        ("POST", "/api/v1/projects", b"401"),  # no API key: answered before reading the body
        ("PUT", "/api/v1/projects", b"405"),
        ("POST", "/v1/web/tags", b"405"),
        ("POST", "/v1/web/i", b"401"),
    ):
        stream = await trio.open_tcp_stream("127.0.0.1", harness.server.port)
        with trio.fail_after(10):
            await stream.send_all(head(method, path, len(BODY)))
            await trio.sleep(0.05)  # the answer may come before the body is sent
            await stream.send_all(BODY)
            first = await read_answer(stream)
            assert first.split()[1] == status, (method, path, first)
            # The same connection answers the next request (or is closed: then the client knows
            # to reconnect). Before the fix it stayed open and silent.
            await stream.send_all(b"GET /v1/web/tags HTTP/1.1\r\nHost: test\r\n\r\n")
            second = await read_answer(stream)
            assert second in (b"", b"HTTP/1.1 401 "), (method, path, second)
        await stream.aclose()


async def test_oversized_body_answered_early_does_not_hang_the_connection(
    harness: Harness,
) -> None:
    assert harness.server.app is not None
    limit = harness.server.app.config["MAX_CONTENT_LENGTH"]
    stream = await trio.open_tcp_stream("127.0.0.1", harness.server.port)
    with trio.fail_after(10):
        await stream.send_all(head("POST", "/api/v1/projects", limit + 10))
        await trio.sleep(0.05)
        await stream.send_all(b" " * (limit + 10))
        first = await read_answer(stream)
        assert first.split()[1] in (b"401", b"413"), first
        await stream.send_all(b"GET /v1/web/tags HTTP/1.1\r\nHost: test\r\n\r\n")
        assert await read_answer(stream) in (b"", b"HTTP/1.1 401 ")
    await stream.aclose()
