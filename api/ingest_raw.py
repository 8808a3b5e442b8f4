"""The hottest ingest routes (the web and mobile starts and batches) as raw ASGI before Quart.

Under 32 trackers Quart's per-request machinery (a request object, a body-reading task and its
nursery, the app and request contexts, the before/after hooks, a response object) cost more than
the append itself. These routes do only what they need: they parse the few headers and the
query string into an :class:`api.ingest_web.IngestRequest`, read the body straight from
``receive``, and let :class:`api.ingest_web.WebIngest` (the same code Quart's routes run) check
and append; the answer goes out only after the commit. Everything else about the request stays as
it was: the byte budget and the early-answer hold of :func:`api.app.create_app` wrap this route
too, and the access log and the quiet disconnects wrap the whole app. Answers carry the CORS
header, errors the ingest envelope (``{"error": ...}``) with their headers (``Retry-After``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
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
from api.body_drain import BODY_DRAIN_TIMEOUT_S
from api.errors import ApiError, plain_error, retry_after_header
from api.ingest_mobile import MobileIngest
from api.ingest_web import BODY_READ_TIMEOUT_S, BodyReader, IngestRequest, WebIngest
from storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)

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
        # As long as api.body_drain holds Quart's answers given before their body.
        with trio.move_on_after(BODY_DRAIN_TIMEOUT_S):
            while not self.complete:
                await self._next()

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] != "http.request":
            self.complete = True
            raise ClientGone
        self.complete = not message.get("more_body", False)
        return bytes(message.get("body", b""))


_HEADERS = {
    b"authorization": "authorization",
    b"content-encoding": "content_encoding",
    b"datatype": "data_type",
    b"user-agent": "user_agent",
    b"x-forwarded-for": "forwarded_for",
}


def ingest_request_of(scope: HTTPScope) -> IngestRequest:
    """The headers and query parameters an ingest route reads, as Quart would give them (the
    first value of each; header names compared case-insensitively)."""
    fields: dict[str, str] = {}
    length: int | None = None
    seen_length = False
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.lower()
        field = _HEADERS.get(name)
        if field is not None:
            fields.setdefault(field, raw_value.decode("latin-1"))
        elif name == b"content-length" and not seen_length:
            seen_length = True
            try:
                length = int(raw_value)
            except ValueError:
                length = None
            if length is not None and length < 0:
                length = None
    query = scope["query_string"]
    if query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            params.setdefault(key, value)
        fields["batch"], fields["split"] = params.get("batch", ""), params.get("split", "")
    client = scope.get("client")
    return IngestRequest(content_length=length, remote_addr=client[0] if client else "", **fields)


# Reads the body (given the reader), returns the answer's JSON object, or None for an empty 200.
Handler = Callable[[IngestRequest, BodyReader], Awaitable[dict[str, Any] | None]]


def raw_route(handle: Handler, observe: Observe | None = None) -> RawRoute:
    """A raw ASGI handler around ``handle``; each answer is reported to ``observe`` under the
    request's path (the routes served so have no parameters: the path is the template)."""

    async def serve(scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        began = time.perf_counter()
        body = _Body(receive)
        status, payload, extra = 200, b"", {}
        try:
            answer = await handle(ingest_request_of(scope), body.read)
            if answer is not None:
                payload = json.dumps(answer, separators=(",", ":")).encode()
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

    return serve


def web_ingest_routes(ingest: WebIngest, observe: Observe | None = None) -> dict[str, RawRoute]:
    """``/v1/web/start`` and ``/v1/web/i`` of ``ingest`` as raw routes (paths without prefix)."""

    async def store(head: IngestRequest, body_of: BodyReader) -> None:
        await ingest.store_batch(head, body_of)

    return {
        "/v1/web/start": raw_route(ingest.start_session, observe),
        "/v1/web/i": raw_route(store, observe),
    }


def mobile_ingest_routes(
    ingest: MobileIngest, observe: Observe | None = None
) -> dict[str, RawRoute]:
    """``/v1/mobile/start`` and ``/v1/mobile/i`` of ``ingest`` as raw routes (without prefix)."""

    async def store(head: IngestRequest, body_of: BodyReader) -> None:
        await ingest.store_batch(head, body_of)

    return {
        "/v1/mobile/start": raw_route(ingest.start_session, observe),
        "/v1/mobile/i": raw_route(store, observe),
    }


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
