"""An ASGI wrapper that keeps keep-alive connections usable after answers given early.

A route may answer (401, 404, 405, 413...) without reading the request body. See
:func:`hold_answer_until_body_received` for why the end of such an answer must wait for it.
"""

from __future__ import annotations

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

# How long an answer given before its request body (a 401, 404, 405...) waits for that body.
BODY_DRAIN_TIMEOUT_S = 10.0


def hold_answer_until_body_received(asgi_app: ASGIFramework) -> ASGIFramework:
    """ASGI wrapper: the last message of an answer waits until the request body has arrived.

    Hypercorn (trio worker) neither reuses nor closes a keep-alive connection whose answer was
    complete before its request (a 401, 404, 405... that never read the body): the client's next
    request there was never answered, and the connection and its tasks stayed forever. While the
    answer is held, Quart keeps receiving the body (and drops what is past MAX_CONTENT_LENGTH), so
    Hypercorn's request side finishes first. A client that has not sent its body within the
    timeout gets the answer anyway.
    """

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await asgi_app(scope, receive, send)
            return
        received = trio.Event()

        async def watched_receive() -> ASGIReceiveEvent:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                received.set()  # the last part of the body, or the client went away
            return message

        async def held_send(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.move_on_after(BODY_DRAIN_TIMEOUT_S):
                    await received.wait()
            await send(message)

        await asgi_app(scope, watched_receive, held_send)

    return wrapped
