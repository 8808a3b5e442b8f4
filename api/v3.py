"""The version 3 generic events API of the Learning Context Project (V3.md): ``/3/*``.

Every call carries ``nonce, aid, user, data, h`` (query string for GET, form body for POST; a
POST's ``data`` may also come in the query string) and is signed as the published Java client
signs (:func:`engine.v3_protocol.signature`). Decisions where the original is unknown (V3.md 9):

* **Methods.** Writes (``events/update``, ``events/delete``, ``user/new``) are POST only; reads
  (``user/test``, ``events/show``, ``entities/values``) GET only, as the client sends them.
* **Nonces.** A nonce is refused when the same (app, user, nonce) was seen in the last 24 h of
  wall time (:data:`NONCE_WINDOW_MS`): replay protection is an HTTP concern, not a fold of
  the log, so it is not record time.
* **Caps.** At most 1000 events a request (the event id leaves room for no more) and
  ``--v3-size-limit`` bytes (5 MB by default: PICTURE carries base64); past either, 413.
* **Statuses** (the client ignores them; curl users do not): 200 success; 400 bad ``data``
  (``invalid_json``, ``invalid_data``, ``invalid_event``, ``invalid_action``, ``unknown_type``,
  ``missing_required_entity``, ``invalid_session``, ``invalid_timestamp``, ``invalid_entities``,
  with the bad event's ``index``); 403 authentication (``authentication_failed``,
  ``unknown_app``, ``unknown_user``, ``bad_signature``, ``replayed_nonce``); 404 unknown
  interface; 405 wrong method; 409 ``user_exists``; 413 past a cap; 503 overload.
* **Registration.** ``user/new`` is accepted signed with an empty user and password (the
  client library) or unsigned with only ``aid`` and ``data`` (another client sent no
  signature; without the app's id the server cannot know whose project the user joins).
"""

from __future__ import annotations

import hmac
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
    sha1_hex,
    signature,
)
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
            NewRecord(
                session_id=session_id_of(r.session_key),
                project_id=caller.app.project_id,
                kind=RecordKind.V3_EVENT,
                received_at_ms=now,
                payload=r.to_bytes(),
                session_key=r.session_key,
            )
            for r in group_records(caller.app.aid, caller.user.name, events)
        ]
        await self.ingest.append(records)
        return len(events)


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
    api = _v3()
    caller = await api.authenticate(await _params())
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


def body_limits(config: ServerConfig) -> dict[str, int]:
    """``/3/*`` bodies up to ``v3_size_limit`` (larger than the default for PICTURE batches)."""
    return {PREFIX: config.v3_size_limit}
