"""The version 3 generic events API of the Learning Context Project (V3.md): ``/3/*``.

Every call carries ``nonce, aid, user, data, h`` (query string for GET, form body for POST; a
POST's ``data`` may also come in the query string) and is signed as the published Java client
signs (:func:`engine.v3_protocol.signature`). Decisions where the original is unknown (V3.md 9):

* **Methods.** Writes (``events/update``, ``events/delete``, ``user/new``) are POST only; reads
  (``user/test``, ``events/show``, ``entities/values``) GET only, as the client sends them.
* **Scope.** Reads and deletions see only the signing app's user's events in the app's project;
  another user's event id is unknown (404), as a missing one is.
* **Nonces.** A nonce is refused when the same (app, user, nonce) was seen in the last 24 h of
  wall time (:data:`NONCE_WINDOW_MS`): replay protection is an HTTP concern, not a fold of
  the log, so it is not record time.
* **Caps.** At most 1000 events a request (the event id leaves room for no more) and
  ``--v3-size-limit`` bytes (5 MB by default: PICTURE carries base64); past either, 413.
* **Statuses** (the client ignores them; curl users do not): 200 success; 400 bad ``data``
  (``invalid_json``, ``invalid_data``, ``invalid_event``, ``invalid_action``, ``unknown_type``,
  ``missing_required_entity``, ``invalid_session``, ``invalid_timestamp``, ``invalid_entities``,
  with the bad event's ``index``; ``invalid_filter`` for a read); 403 authentication
  (``authentication_failed``, ``unknown_app``, ``unknown_user``, ``bad_signature``,
  ``replayed_nonce``); 404 unknown interface or event id (``unknown_event``); 405 wrong method;
  409 ``user_exists``; 413 past a cap; 503 overload.
* **Registration.** ``user/new`` is accepted signed with an empty user and password (the
  client library) or unsigned with only ``aid`` and ``data`` (another client sent no
  signature; without the app's id the server cannot know whose project the user joins).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio

from api import v3_schema as docs
from api.config import ServerConfig
from api.errors import json_response
from api.ingest_web import WebIngest
from api.openapi import operation
from engine.supervisor import wall_clock_ms
from engine.v3_protocol import (
    TypeRegistry,
    V3Error,
    group_records,
    load_registry,
    parse_events,
    parse_json,
    session_id_of,
    session_key_of,
    sha1_hex,
    signature,
)
from projections.reader import ProjectionReader
from projections.v3 import V3Entity, V3EventQuery, V3EventRow
from storage.records import NewRecord, RecordKind
from storage.v3_catalog import UserExists, V3App, V3Catalog, V3User

EXTENSION_KEY = "replayd.v3"
PREFIX = "/3"
NONCE_WINDOW_MS = 24 * 3600 * 1000
MAX_NONCE_CHARS = 128
MAX_USER_CHARS = 128
MAX_EMAIL_CHARS = 254
SUCCESS = {"APIVersion": 3, "result": 1}

bp = Blueprint("v3", __name__, url_prefix=PREFIX)


def _auth_failed(code: str, detail: str) -> V3Error:
    return V3Error(403, code, f"Authentication failed: {detail}")


@attrs.frozen(slots=True)
class Caller:
    """An authenticated call: its app, its user (``None`` for the empty user) and ``data``."""

    app: V3App
    user: V3User | None
    data: str


@attrs.define(eq=False)
class V3Api:
    """The state behind ``/3/*`` (one per app): the v3 catalog is opened when serving starts."""

    config: ServerConfig
    ingest: WebIngest  # its append: the same back-pressure and 503 answers as the tracker's
    registry: TypeRegistry
    clock: Callable[[], int] = wall_clock_ms
    catalog: V3Catalog | None = None
    reader: ProjectionReader | None = None  # given once the projection services run

    def projections(self) -> ProjectionReader:
        if self.reader is None:
            raise V3Error(503, "unavailable", "the read models are not available yet")
        return self.reader

    async def open(self) -> None:
        self.catalog = await trio.to_thread.run_sync(V3Catalog.open, self.config.db_path)

    async def close(self) -> None:
        if self.catalog is not None:
            catalog, self.catalog = self.catalog, None
            await trio.to_thread.run_sync(catalog.close)

    def opened(self) -> V3Catalog:
        if self.catalog is None:
            raise V3Error(503, "unavailable", "server starting or stopping")
        return self.catalog

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A v3 catalog call in a worker thread (SQL never runs on the trio loop)."""
        return await trio.to_thread.run_sync(fn, *args)

    async def find_app(self, raw_aid: str) -> V3App:
        if not raw_aid.isascii() or not raw_aid.isdigit() or len(raw_aid) > 10:
            raise _auth_failed("unknown_app", "aid must be a positive integer")
        app = await self.run(self.opened().get_app, int(raw_aid))
        if app is None:
            raise _auth_failed("unknown_app", f"no app {raw_aid}")
        return app

    async def authenticate(self, params: Mapping[str, str], *, anonymous: bool = False) -> Caller:
        """Check ``h`` over the five parameters and use up the nonce; ``anonymous`` admits the
        empty user (its password is the empty string, as the client library signs it)."""
        nonce, user_name, h = params.get("nonce", ""), params.get("user", ""), params.get("h", "")
        data = params.get("data", "")
        if not nonce or not h or "aid" not in params:
            raise _auth_failed("authentication_failed", "nonce, aid, user, data and h are required")
        if len(nonce) > MAX_NONCE_CHARS or len(user_name) > MAX_USER_CHARS:
            raise _auth_failed("authentication_failed", "nonce or user too long")
        app = await self.find_app(params["aid"])
        user: V3User | None = None
        if user_name or not anonymous:
            user = await self.run(self.opened().get_user, app.project_id, user_name)
            if user is None:
                raise _auth_failed("unknown_user", f"no user {user_name!r}")
        password_sha1 = user.password_sha1 if user is not None else sha1_hex("")
        expected = signature(data, app.aid, user_name, nonce, app.secret, password_sha1)
        if not hmac.compare_digest(expected, h.lower()):
            raise _auth_failed("bad_signature", "wrong signature h")
        fresh = await self.run(self.opened().use_nonce, app.aid, user_name, nonce, NONCE_WINDOW_MS)
        if not fresh:
            raise _auth_failed("replayed_nonce", "nonce already used")
        return Caller(app, user, data)

    async def append(self, caller: Caller, data: str) -> int:
        """Validate ``data`` and append its events, one record per session, all or none."""
        assert caller.user is not None
        events = parse_events(data, self.registry)
        now = self.clock()
        records = [
            _record(caller, RecordKind.V3_EVENT, r.session_key, r.to_bytes(), now)
            for r in group_records(caller.app.aid, caller.user.name, events)
        ]
        await self.ingest.append(records)
        return len(events)

    async def delete(self, caller: Caller, event_id: int) -> None:
        """Append one ``V3_DELETE`` on the session key of the caller's event ``event_id``
        (the session's actor then drops it); an event that is not the caller's is a 404."""
        assert caller.user is not None
        found = await self.projections().v3_event_session(caller.app.project_id, event_id)
        if found is None or found[:2] != (caller.app.aid, caller.user.name):
            raise V3Error(404, "unknown_event", f"No event {event_id}")
        payload = {"aid": caller.app.aid, "user": caller.user.name, "id": event_id}
        key = session_key_of(*found)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        await self.ingest.append([_record(caller, RecordKind.V3_DELETE, key, body, self.clock())])


def _record(caller: Caller, kind: RecordKind, key: str, payload: bytes, now: int) -> NewRecord:
    """A record of the caller's app's project on v3 session ``key``."""
    return NewRecord(
        session_id=session_id_of(key),
        project_id=caller.app.project_id,
        kind=kind,
        received_at_ms=now,
        payload=payload,
        session_key=key,
    )


def _v3() -> V3Api:
    api: V3Api = current_app.extensions[EXTENSION_KEY]
    return api


async def _params() -> dict[str, str]:
    """The five parameters: the query string, then (POST) the form body over it."""
    params = dict(request.args)
    if request.method == "POST":
        limit = _v3().config.v3_size_limit
        if request.content_length is not None and request.content_length > limit:
            raise V3Error(413, "request_too_large", f"a request carries at most {limit} bytes")
        params.update(await request.form)
    return params


async def _signed() -> tuple[V3Api, Caller]:
    """The v3 state and the authenticated call of a signed route (a named user)."""
    api = _v3()
    return api, await api.authenticate(await _params())


@bp.errorhandler(V3Error)
async def v3_error(error: V3Error) -> Response:
    return json_response(error.body(), error.status)


@bp.route("/events/update", methods=["POST"])
@operation(
    "Append a batch of START/UPDATE/END events (data: a JSON array); all or nothing",
    tags=docs.TAGS,
    body=docs.SIGNED_FORM,
    body_required=True,
    responses=docs.replies(400, 403, 404, 405, 413, 503),
)
async def events_update() -> Response:
    """Append a batch of events (a JSON array in ``data``); all or nothing."""
    api, caller = await _signed()
    await api.append(caller, caller.data)
    return json_response(SUCCESS)


@bp.route("/user/test", methods=["GET"])
@operation(
    "Check a user's credentials: result 1 for a valid signature",
    tags=docs.TAGS,
    parameters=docs.SIGNED_QUERY,
    responses=docs.replies(403, 404, 405),
)
async def user_test() -> Response:
    """result 1 for a valid signature of an existing user."""
    await _v3().authenticate(await _params())
    return json_response(SUCCESS)


def _registration(data: str) -> tuple[str, str, str]:
    body = parse_json(data)
    if not isinstance(body, dict):
        raise V3Error(400, "invalid_data", 'Wrong data: expected {"name","pass","email"}')
    name, password, email = body.get("name"), body.get("pass"), body.get("email", "")
    if not isinstance(name, str) or not name or len(name) > MAX_USER_CHARS:
        raise V3Error(400, "invalid_user", f"Wrong data: name must be 1-{MAX_USER_CHARS} chars")
    if not isinstance(password, str) or not password:
        raise V3Error(400, "invalid_user", "Wrong data: pass must be a non-empty string")
    if not isinstance(email, str) or len(email) > MAX_EMAIL_CHARS:
        raise V3Error(400, "invalid_user", "Wrong data: email must be a string")
    return name, password, email


@bp.route("/user/new", methods=["POST"])
@operation(
    "Register a user of the app's project (signed with the empty user, or unsigned with aid)",
    tags=docs.TAGS,
    body=docs.REGISTRATION_FORM,
    body_required=True,
    responses=docs.replies(400, 403, 404, 405, 409, 413, 503),
)
async def user_new() -> Response:
    """Register a user of the app's project: signed with the empty user, or unsigned."""
    api = _v3()
    params = await _params()
    if "h" in params or "nonce" in params:
        app = (await api.authenticate(params, anonymous=True)).app
    else:
        app = await api.find_app(params.get("aid", ""))
    name, password, email = _registration(params.get("data", ""))
    try:
        await api.run(api.opened().create_user, app.project_id, name, email, password)
    except UserExists:
        raise V3Error(409, "user_exists", "User already exists") from None
    return json_response(SUCCESS)


def _bad_filter(reason: str) -> V3Error:
    return V3Error(400, "invalid_filter", f"Wrong data: {reason}")


def _object_data(data: str) -> dict[str, Any]:
    """``data`` as a JSON object (empty ``data`` = ``{}``), or a 400."""
    body = parse_json(data) if data.strip() else {}
    if not isinstance(body, dict):
        raise V3Error(400, "invalid_data", "Wrong data: data must be a JSON object")
    return body


def _optional(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _bad_filter(f"{name} must be a {'number' if kind is not str else 'string'}")
    return value


def _seconds(body: Mapping[str, Any], name: str) -> float | None:
    """A time bound as a float: an integer past SQLite's 64 bits would fail the query."""
    value = _optional(body, name, (int, float))
    try:
        return None if value is None else float(value)
    except OverflowError:
        raise _bad_filter(f"{name} is out of range") from None


def _show_query(data: str) -> V3EventQuery:
    """The filter object of ``events/show`` (V3.md 6): every key optional, all ANDed."""
    body = _object_data(data)
    model = _optional(body, "model", str)
    if model is not None and model.upper() != "COMPLETE":
        raise _bad_filter("model must be COMPLETE")
    raw_entities = body.get("entities") or []
    if not isinstance(raw_entities, list) or not all(
        isinstance(e, dict) and isinstance(e.get("key"), str) for e in raw_entities
    ):
        raise _bad_filter('entities must be an array of {"key", "value"}')
    return V3EventQuery(
        start=_seconds(body, "start"),
        end=_seconds(body, "end"),
        type=_optional(body, "type", str),
        category=_optional(body, "category", str),
        source=_optional(body, "source", str),
        entities=tuple(V3Entity(e["key"], e.get("value")) for e in raw_entities),
    )


def _shown(row: V3EventRow) -> dict[str, Any]:
    """An event as the published client parses it: an entity whose value is null has no
    ``value`` key; ``entities`` is always there (a missing array crashes the apps)."""
    entities = [
        {"key": e.key} if e.value is None else {"key": e.key, "value": e.value}
        for e in row.entities
    ]
    return {
        "id": row.id,
        "action": row.action,
        "type": row.type,
        "timestamp": row.timestamp,
        "session": row.session,
        "entities": entities,
    }


@bp.route("/events/show", methods=["GET"])
@operation(
    "The signing user's events matching a filter (model, start, end, type, category, source, "
    "entities: all ANDed)",
    tags=docs.TAGS,
    parameters=docs.SIGNED_QUERY,
    responses={**docs.replies(400, 403, 404, 405, 503), 200: docs.SHOW_REPLY},
)
async def events_show() -> Response:
    """``{"result":1, "total_events":N, "events":[...]}`` oldest first."""
    api, caller = await _signed()
    assert caller.user is not None
    query = _show_query(caller.data)
    total, rows = await api.projections().v3_show_events(
        caller.app.project_id, caller.app.aid, caller.user.name, query
    )
    return json_response({**SUCCESS, "total_events": total, "events": [_shown(r) for r in rows]})


def _event_id(data: str) -> int:
    """The ``id`` of ``events/delete``: a number or a string of digits (clients send both)."""
    raw = _object_data(data).get("id")
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**63:
        raise V3Error(400, "invalid_data", 'Wrong data: expected {"id": <event id>}')
    return raw


@bp.route("/events/delete", methods=["POST"])
@operation(
    "Delete one of the signing user's events by its id (data: {id: n}, number or string)",
    tags=docs.TAGS,
    body=docs.SIGNED_FORM,
    body_required=True,
    responses=docs.replies(400, 403, 404, 405, 413, 503),
)
async def events_delete() -> Response:
    """Append the deletion; the event leaves every v3 read model once the engine applied it."""
    api, caller = await _signed()
    await api.delete(caller, _event_id(caller.data))
    return json_response(SUCCESS)


@bp.route("/entities/values", methods=["GET"])
@operation(
    "The distinct values of an entity key over the signing user's events of a type",
    tags=docs.TAGS,
    parameters=docs.SIGNED_QUERY,
    responses={**docs.replies(400, 403, 404, 405, 503), 200: docs.VALUES_REPLY},
)
async def entities_values() -> Response:
    """``{"result":1, "values":[...]}`` for ``data`` ``{"type", "key"}``."""
    api, caller = await _signed()
    assert caller.user is not None
    body = _object_data(caller.data)
    type_, key = body.get("type"), body.get("key")
    if not isinstance(type_, str) or not isinstance(key, str):
        raise _bad_filter('expected {"type", "key"}, both strings')
    values = await api.projections().v3_entity_values(
        caller.app.project_id, caller.app.aid, caller.user.name, type_, key
    )
    return json_response({**SUCCESS, "values": values})


def install(app: QuartTrio, config: ServerConfig, ingest: WebIngest) -> V3Api:
    """Build the v3 state (the type registry is read now: a bad file fails the start)."""
    api = V3Api(config=config, ingest=ingest, registry=load_registry(config.v3_types or None))
    app.extensions[EXTENSION_KEY] = api

    @app.before_serving
    async def open_v3() -> None:
        await api.open()

    @app.after_serving
    async def close_v3() -> None:
        await api.close()

    return api


def provide(app: QuartTrio, reader: ProjectionReader) -> None:
    """Give the reads and deletions the projections' reader, once the projection services run."""
    api: V3Api = app.extensions[EXTENSION_KEY]
    api.reader = reader


def body_limits(config: ServerConfig) -> dict[str, int]:
    """``/3/*`` bodies up to ``v3_size_limit`` (larger than the default for PICTURE batches)."""
    return {PREFIX: config.v3_size_limit}
