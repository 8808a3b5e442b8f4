"""The hottest ingest route, ``POST /v1/web/i``, served as raw ASGI in front of Quart.

Under 32 trackers Quart's per-request machinery (a request object, a body-reading task and its
nursery, the app and request contexts, the before/after hooks, a response object) cost more than
the append itself. This route does only what the upload needs: it parses the few headers and the
query string into a :class:`api.ingest_web.BatchUpload`, reads the body straight from ``receive``,
and lets :meth:`api.ingest_web.WebIngest.store_batch` (the same code the Quart route runs) check
and append it; the 200 goes out only after the commit. Everything else about the request stays as
it was: the byte budget and the early-answer hold of :func:`api.app.create_app` wrap this route
too, and the access log and the quiet disconnects wrap the whole app. Answers carry the CORS
header, errors the ingest envelope (``{"error": ...}``) with their headers (``Retry-After``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from api import cors
from api.errors import ApiError, plain_error, retry_after_header
from api.ingest_web import BODY_READ_TIMEOUT_S, BatchUpload, WebIngest
from storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)

# How long a refused request's body may take to arrive before it is answered anyway (as
# api.body_drain waits for Quart's answers given before their body).
_DRAIN_TIMEOUT_S = 10.0

RawRoute = Callable[[HTTPScope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
# (route, method, status, seconds): what /metrics counts of every answered request.
Observe = Callable[[str | None, str, int, float | None], None]


class ClientGone(Exception):
    """The client closed the connection before its body arrived: nobody is left to answer."""


class _Body:
    """The request body as ASGI delivers it, read once and at most ``limit`` bytes kept."""

    def __init__(self, receive: ASGIReceiveCallable) -> None:
        self._receive = receive
        self.complete = False

    async def read(self, limit: int) -> bytes:
        """The whole body: 413 past ``limit`` bytes, 408 when it trickles in too slowly."""
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(BODY_READ_TIMEOUT_S):
            while not self.complete:
                chunk = await self._next()
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"request body larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        raise ApiError(408, "request body not received in time")

    async def drain(self) -> None:
        """Read and drop what is left, so that an early answer keeps the connection usable."""
        with trio.move_on_after(_DRAIN_TIMEOUT_S):
            while not self.complete:
                await self._next()

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] != "http.request":
            self.complete = True
            raise ClientGone
        self.complete = not message.get("more_body", False)
        return bytes(message.get("body", b""))


def batch_upload_of(scope: HTTPScope) -> BatchUpload:
    """The headers and query parameters of an upload, as the Quart route reads them (first
    value of each; header names compared case-insensitively)."""
    wanted = {b"authorization": "", b"content-encoding": "", b"datatype": "", b"content-length": ""}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.lower()
        if name in wanted and not wanted[name]:
            wanted[name] = raw_value.decode("latin-1")
    length: int | None
    try:
        length = int(wanted[b"content-length"]) if wanted[b"content-length"] else None
    except ValueError:
        length = None
    batch = split = ""
    query = scope["query_string"]
    if query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            params.setdefault(key, value)
        batch, split = params.get("batch", ""), params.get("split", "")
    return BatchUpload(
        authorization=wanted[b"authorization"],
        content_encoding=wanted[b"content-encoding"],
        data_type=wanted[b"datatype"],
        batch=batch,
        split=split,
        content_length=length if length is None or length >= 0 else None,
    )


def web_batch_route(ingest: WebIngest, observe: Observe | None = None) -> RawRoute:
    """The raw ASGI handler of ``POST /v1/web/i`` for ``ingest``; each answer is reported to
    ``observe`` under the request's path (the route's template: it has no parameters)."""

    async def serve_batch(
        scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        began = time.perf_counter()
        body = _Body(receive)
        status, payload, extra = 200, b"", {}
        try:
            await ingest.store_batch(batch_upload_of(scope), body.read)
        except ClientGone:
            return
        except ApiError as error:
            status, extra = error.status, error.headers
            payload = json.dumps(plain_error(error.message), separators=(",", ":")).encode()
        except StorageUnavailable as error:
            # As the app's handler: the storage layer logged it once; no traceback per request.
            status, extra = 503, retry_after_header(error.retry_after)
            payload = b'{"error":"storage unavailable, retry later"}'
        except Exception:
            logger.exception("unhandled error on POST %s", scope["path"])
            status, payload = 500, b'{"error":"internal server error"}'
        if not body.complete:
            try:
                await body.drain()
            except ClientGone:
                return
        headers = [
            (b"content-length", str(len(payload)).encode()),
            (b"access-control-allow-origin", cors.ALLOW_ORIGIN.encode()),
        ]
        if payload:
            headers.append((b"content-type", b"application/json"))
        headers.extend((k.lower().encode(), v.encode("latin-1")) for k, v in extra.items())
        if observe is not None:
            observe(scope["path"], "POST", status, time.perf_counter() - began)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    return serve_batch


def raw_routes_in_front(app: ASGIFramework, routes: Mapping[str, RawRoute]) -> ASGIFramework:
    """``app`` with ``POST`` to each path of ``routes`` answered by its raw handler instead."""

    async def routed(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = routes.get(scope["path"])
            if route is not None:
                await route(scope, receive, send)
                return
        await app(scope, receive, send)

    return routed
