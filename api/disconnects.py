"""Answers to clients that are already gone: dropped quietly instead of an ASGI traceback.

A client that sends a large body and hangs up as soon as it reads an early answer (a 413, a 401)
races Hypercorn's trio transport: the reading task closes the connection (``send_eof`` holds the
stream's send side for a moment) while the request task is still sending the answer's body, and
that send raises ``trio.BusyResourceError`` (or ``BrokenResourceError``/``ClosedResourceError``)
into the app, which Hypercorn logs as "Error in ASGI Framework" with a full traceback. Nothing is
wrong on our side and nobody is left to answer, so :class:`QuietDisconnects` catches exactly those
transport errors around ``send`` only, logs one debug line, and drops the rest of that answer.
Errors of the app itself never pass through ``send``, so they are still answered and logged.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

logger = logging.getLogger(__name__)

_GONE = (trio.BusyResourceError, trio.BrokenResourceError, trio.ClosedResourceError)


class QuietDisconnects:
    """ASGI middleware around ``app``: a send to a client that has gone away is a debug line."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = False

        async def send_unless_gone(message: Any) -> None:
            nonlocal gone
            if gone:
                return
            try:
                await send(message)
            except _GONE as error:
                gone = True
                logger.debug(
                    "client went away before the answer to %s %s was sent (%s)",
                    scope.get("method"),
                    scope.get("path"),
                    type(error).__name__,
                )

        await self.app(scope, receive, send_unless_gone)
