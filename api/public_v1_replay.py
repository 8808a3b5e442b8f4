"""The public API v1's replay of a web session: its DOM stream and its devtools panels.

``GET /api/v1/<projectKey>/sessions/<sessionId>/replay`` answers ``application/x-ndjson``
(JSON Lines): the first line is ``{"header": {...}}``::

    {"header": {"version": 1, "startedAt": epoch ms, "duration": ms,
                "tabs": [tabId, ...],
                "markers": [{"time", "type": click|location|input|error|request|rage|custom,
                             "label", "tabId"}, ...],
                "inactivity": [{"start", "end"}, ...],
                "viewports": [{"time", "tabId", "width", "height"}, ...],
                "tabChanges": [{"time", "tabId"}, ...],
                "visibility": [{"time", "tabId", "hidden"}, ...],
                "truncated": bool}}

then one line per item, each tab's items in play order: ``{"t": ms since startedAt, "tab": tabId,
"k": kind, ...}`` with the kinds and fields of :mod:`engine.replay.builder`. Every time is ms since
``startedAt`` (the session's start). The items are sanitised on the server
(:mod:`engine.replay.sanitize`): dictionaries resolved, URLs absolute, hostile elements, attributes,
URLs and CSS removed. JSON Lines and not one document: each line parses alone, so the player applies
what has arrived while the rest streams, and neither side holds the whole answer as one string.

``.../console`` answers ``{"data": [{"time", "timestamp", "level", "value", "tabId"}, ...]}`` and
``.../network`` ``{"data": [{"time", "timestamp", "method", "url", "status", "duration", "type",
"tabId"}, ...]}`` (fetch and xhr requests).

All three read the session's log records page by page (:meth:`storage.log.EventLog.
read_session_page`), build each page's text in a worker thread and send it as it is made, gzip
compressed (one stream over the whole answer) when the client accepts it. With the asset cache on
(``REPLAYD_CACHE_ASSETS``), the replay's URL-based messages point at the cached copies
(``/assets/<sha256>`` on this origin): one cache read per page, in that page's worker thread.
Authenticated and scoped as every v1 route (:func:`api.public_v1.authorized_project`); a session
of another project is 404. A mobile session is answered 400: its replay is its screenshots
(``.../images``).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio
from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio

from api import public_v1_schema as schema
from api.app import SurfaceParts
from api.assets import opened_store
from api.errors import json_response, v1_errors
from api.openapi import INTEGER, STRING, Reply, component, json_object, json_reply
from api.public_v1 import V1Error, authorized_project, path_session_id, projection_reader
from engine.replay.stream import AssetPaths, DevtoolsRows, ReplayStream
from projections.sessions import SessionRow
from storage.log import EventLog
from storage.records import LogRecord

EXTENSION_KEY = "replayd.public_v1_replay"
PAGE_RECORDS = 64  # records per read: a tracker batch is at most a few hundred kB
NDJSON = "application/x-ndjson"

bp = Blueprint("public_v1_replay", __name__, url_prefix="/api/v1")


def install(app: QuartTrio, parts: SurfaceParts) -> None:
    """Give the routes the process's log (they read sessions' records from it)."""
    app.extensions[EXTENSION_KEY] = parts.process.log


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


async def _web_session(project_key: str, session_id: str) -> SessionRow:
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    row = None if sid is None else await projection_reader().session(project.project_id, sid)
    if row is None:
        raise V1Error(404, "session not found.")
    if row.platform != "web":
        raise V1Error(400, "a mobile session has no DOM replay: its screenshots are at .../images")
    return row


async def _pages(log: EventLog, session_id: int) -> AsyncIterator[list[LogRecord]]:
    after = 0
    while True:
        page = await log.read_session_page(session_id, after=after, limit=PAGE_RECORDS)
        if not page:
            return
        after = page[-1].position
        yield page


class _Encoder:
    """Text to bytes, through one gzip stream when the client accepts it."""

    def __init__(self, gzip: bool) -> None:
        self._zip = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None

    def encode(self, text: str) -> bytes:
        data = text.encode()
        return data if self._zip is None else self._zip.compress(data)

    def finish(self) -> bytes:
        return b"" if self._zip is None else self._zip.flush()


def _gzip_accepted() -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


def _streamed(body: AsyncIterator[bytes], content_type: str, gzip: bool) -> Response:
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
               "Vary": "Accept-Encoding"}  # fmt: skip
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(body, content_type=content_type, headers=headers)


def _encoded(
    encoder: _Encoder, build: Callable[[list[LogRecord]], str], page: list[LogRecord]
) -> bytes:
    return encoder.encode(build(page))


async def _replay_body(
    log: EventLog, session_id: int, stream: ReplayStream, encoder: _Encoder
) -> AsyncIterator[bytes]:
    async for page in _pages(log, session_id):
        await trio.to_thread.run_sync(stream.survey, page)
    yield await trio.to_thread.run_sync(lambda: encoder.encode(stream.header_line()))
    async for page in _pages(log, session_id):
        chunk = await trio.to_thread.run_sync(_encoded, encoder, stream.lines, page)
        if chunk:
            yield chunk
    yield encoder.finish()


async def _devtools_body(
    log: EventLog, session_id: int, rows: DevtoolsRows, encoder: _Encoder
) -> AsyncIterator[bytes]:
    yield encoder.encode(rows.opening())
    async for page in _pages(log, session_id):
        chunk = await trio.to_thread.run_sync(_encoded, encoder, rows.piece, page)
        if chunk:
            yield chunk
    yield encoder.encode(rows.closing()) + encoder.finish()


def _log() -> EventLog:
    log: EventLog = current_app.extensions[EXTENSION_KEY]
    return log


_REPLAY_REPLY = Reply(
    "JSON Lines: the header line, then one item per line (see the module api.public_v1_replay)",
    {NDJSON: {"type": "string"}},
)
CONSOLE_ENTRY = component(
    "ConsoleEntry",
    json_object(
        {"time": INTEGER, "timestamp": INTEGER,
         "level": {"enum": ["log", "info", "warn", "error", "debug"]}, "value": STRING,
         "tabId": STRING},
        ["time", "timestamp", "level", "value", "tabId"],
    ),
)  # fmt: skip
NETWORK_ENTRY = component(
    "NetworkEntry",
    json_object(
        {"time": INTEGER, "timestamp": INTEGER, "method": STRING, "url": STRING,
         "status": INTEGER, "duration": INTEGER, "type": {"enum": ["fetch", "xhr"]},
         "tabId": STRING},
        ["time", "timestamp", "method", "url", "status", "duration", "type", "tabId"],
    ),
)  # fmt: skip
_MOBILE_REPLY = json_reply("A mobile session (its replay is its screenshots)", schema.V1_ERRORS)


def _replies(ok: Reply) -> dict[int, Reply]:
    return {**schema.replies(ok, 401, 404, 422), 400: _MOBILE_REPLY}


@bp.get("/<project_key>/sessions/<session_id>/replay")
@schema.v1_operation(
    "The replay stream of a web session: sanitised DOM items in play order, after a header",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID],
    responses=_replies(_REPLAY_REPLY),
)
async def session_replay(project_key: str, session_id: str) -> Response:
    row = await _web_session(project_key, session_id)
    own_origin = f"{request.scheme}://{request.host}"
    store = opened_store()
    asset_paths: AssetPaths | None = (
        None if store is None else functools.partial(store.paths_of, row.project_id)
    )
    stream = ReplayStream(row.start_ts, own_origin=own_origin, asset_paths=asset_paths)
    gzip = _gzip_accepted()
    body = _replay_body(_log(), row.session_id, stream, _Encoder(gzip))
    return _streamed(body, NDJSON, gzip)


def _devtools_route(panel: str, summary: str, entry: dict[str, Any]) -> None:
    """Register ``GET .../<panel>``: the panel's entries of a web session, in time order."""

    async def handler(project_key: str, session_id: str) -> Response:
        row = await _web_session(project_key, session_id)
        gzip = _gzip_accepted()
        rows = DevtoolsRows(row.start_ts, panel)
        body = _devtools_body(_log(), row.session_id, rows, _Encoder(gzip))
        return _streamed(body, "application/json", gzip)

    handler.__name__ = f"session_{panel}"
    documented = schema.v1_operation(
        summary,
        parameters=[schema.PROJECT_KEY, schema.SESSION_ID],
        responses=_replies(schema.list_reply(f"The {panel} entries", entry)),
    )(handler)
    bp.get(f"/<project_key>/sessions/<session_id>/{panel}")(documented)


_devtools_route("console", "The console messages of a web session, in time order", CONSOLE_ENTRY)
_devtools_route("network", "The fetch and XHR requests of a web session by time", NETWORK_ENTRY)
