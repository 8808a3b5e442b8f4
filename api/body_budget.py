"""An ASGI gate that admits request bodies within a process-wide byte budget, before Quart.

Quart starts buffering a request's body as soon as the request reaches it, whatever the route
does, so a budget checked inside a route counts bodies that are already in memory: 300 trackers
each sending a 900 KB batch were 300 buffered bodies at once. This gate sits in front of the app:
a request with a body takes its size (its ``Content-Length``, else its path's largest body) from
the budget before the app sees it, and gives it back when the answer is done. While it waits the
app reads nothing, so Hypercorn stops reading that connection once its small receive queue is full
(TCP pushes back to the client), and the tracker, which keeps one batch in flight, simply waits
longer for its answer. Only after ``wait_s`` is it answered 503 with ``Retry-After`` (the body is
read and dropped first: answering before it arrived would wedge the keep-alive connection, see
:mod:`api.body_drain`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

from api import cors
from api.errors import error_body, retry_after_header
from storage.budget import ByteBudget

# Methods whose requests carry no body worth budgeting.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
# How long a refused request's body may take to arrive before it is answered anyway.
_DRAIN_TIMEOUT_S = 10.0


def admit_bodies_within(
    asgi_app: ASGIFramework,
    budget: ByteBudget,
    *,
    max_body: Callable[[str], int],
    wait_s: float,
    cors_prefixes: Sequence[str],
) -> ASGIFramework:
    """Wrap ``asgi_app`` so that requests with a body wait for room in ``budget`` (see module);
    ``max_body(path)`` is the largest body a request to ``path`` may have."""

    async def gated(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await asgi_app(scope, receive, send)
            return
        largest = max_body(scope["path"])
        size = min(_content_length(scope, largest), largest)
        if not budget.fits(size):
            with trio.move_on_after(wait_s):
                await budget.wait_for_room(size)
            if not budget.fits(size):
                await _refuse(scope, receive, send, wait_s, cors_prefixes)
                return
        budget.take(size)
        held = size

        def give_back() -> None:
            nonlocal held
            budget.release(held)
            held = 0

        async def releasing_send(message: ASGISendEvent) -> None:
            # The body is consumed once the answer ends: give the room back before the client
            # sees the end (so the next batch of the same tracker finds it free).
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                give_back()
            await send(message)

        try:
            await asgi_app(scope, receive, releasing_send)
        finally:
            give_back()

    return gated


def _content_length(scope: HTTPScope, default: int) -> int:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return default  # the app answers the malformed header; budget the worst case
    return default


async def _refuse(
    scope: HTTPScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    wait_s: float,
    cors_prefixes: Sequence[str],
) -> None:
    """Read and drop the body, then answer 503 + Retry-After (JSON in the path's error envelope,
    CORS on ingest paths)."""
    with trio.move_on_after(_DRAIN_TIMEOUT_S):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
    body = json.dumps(error_body(scope["path"], "server busy, retry later", 503)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in retry_after_header(wait_s).items()),
    ]
    # A browser hides an answer without Allow-Origin from the tracker (it would see no 503).
    if cors.is_cors_path(scope["path"], cors_prefixes):
        headers.append((b"access-control-allow-origin", cors.ALLOW_ORIGIN.encode()))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
