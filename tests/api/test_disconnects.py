"""QuietDisconnects: transport errors of a send to a gone client are dropped, nothing else is."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
import trio
from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, HTTPScope

from api.disconnects import QuietDisconnects

# Only the keys QuietDisconnects reads (its log line names the request); an HTTPScope has more.
SCOPE = cast(HTTPScope, {"type": "http", "method": "POST", "path": "/v1/web/start"})


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app that answers with a start and two body chunks."""
    await send({"type": "http.response.start", "status": 413, "headers": []})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    await send({"type": "http.response.body", "body": b"}"})


async def _receive() -> ASGIReceiveEvent:
    return {"type": "http.disconnect"}


async def test_a_send_to_a_gone_client_is_a_debug_line_and_the_rest_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[ASGISendEvent] = []

    async def send(message: ASGISendEvent) -> None:
        if message["type"] == "http.response.body":
            raise trio.BusyResourceError("another task is currently sending data")
        sent.append(message)

    with caplog.at_level(logging.DEBUG, logger="api.disconnects"):
        await QuietDisconnects(_answer)(SCOPE, _receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"]
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        "client went away before the answer to POST /v1/web/start was sent (BusyResourceError)"
    )


async def test_other_errors_of_send_still_propagate() -> None:
    async def send(message: ASGISendEvent) -> None:
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        await QuietDisconnects(_answer)(SCOPE, _receive, send)
