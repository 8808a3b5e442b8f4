"""The public API v1 (API.md 1.1, 1.2, 2.1): projects, a session's events, a user's sessions.

Routes under ``/api/v1``, authenticated by an organization API key in ``Authorization`` (the raw
key as the reference expects, or ``Bearer <key>``) or, without one, by the dashboard's session
cookie (``api.dashboard.auth``; non-GET calls then need its ``X-CSRF-Token``, else 403).
Answers ``{"data": ...}``; every error answers ``{"errors": ["..."]}`` (401 "Not authenticated" /
"Invalid API Key", 404 "project not found.", 400 "name already exists.", 422 for a malformed
path, query or body, the message naming the field; the app answers its own 404/405/413/503
under ``/api/v1`` the same way, see :mod:`api.errors`). Session ids are strings in JSON.

A key only sees its own organization's projects: another organization's project key answers 404,
as an unknown key does (the reference's v1 did not check the owner; v2 does; we do).

The public API v2 (:mod:`api.public_v2`) serves the same handlers: a request it marks as
:data:`V2` (:class:`ApiGeneration`) takes only ``Bearer`` keys and answers a project the key does
not own 401; the functions below the routes (``organization_projects``, ``user_session_page``,
``live_sessions_page``, ...) are what both generations answer from.

Reads go through :class:`projections.reader.ProjectionReader` and the catalog; no SQL here. The
objects this blueprint needs live in ``app.extensions[EXTENSION_KEY]`` (see :func:`install`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio
from quart import Blueprint, Response, current_app, g, request
from quart_trio import QuartTrio

from api import public_v1_schema as schema
from api.dashboard.auth import csrf_problem, request_login_session
from api.errors import json_response, v1_errors
from api.openapi import json_reply
from api.public_v1_schema import (
    ASSIST_FILTER_TYPES,
    ASSIST_LIMIT_MAX,
    ASSIST_OPERATORS,
    INT64_MAX,
    INT64_MIN,
    PROJECT_NAME_MAX,
)
from engine.start_info import USER_SESSIONS_VIEW
from projections import events as event_rows
from projections.live_sessions import LiveFilter, LiveSessions
from projections.reader import ProjectionReader
from projections.registry import Registry
from projections.sessions import SessionRow, country_or_unknown
from projections.users import UserSummary
from storage.catalog import PLATFORMS, Catalog, Project

EXTENSION_KEY = "replayd.public_v1"
USER_SESSIONS_LIMIT = 50
DEFAULT_PROJECT_NAME = "my first project"
PROJECT_NAME_RE = re.compile(schema.PROJECT_NAME_PATTERN)
# The reference's default GDPR settings of a project (public.projects.gdpr), which nothing here
# changes yet: the tracker masks what its snippet says. Its sampleRate is the project's own.
GDPR_DEFAULTS = {"maskEmails": True, "maskNumbers": False, "defaultInputMode": "obscured"}

bp = Blueprint("public_v1", __name__, url_prefix="/api/v1")

# Where the live sessions are for the routes (handed in by the runtime's projection services).
LIVE_SESSIONS_KEY = "replayd.live_sessions"


@attrs.define(slots=True)
class PublicV1Context:
    """What the routes use: the catalog (keys, projects), the projections' reader, and the
    dedicated connection that answers a session's events on the trio thread."""

    catalog: Catalog
    reader: ProjectionReader
    inline_events: event_rows.InlineEventsReader = attrs.field(
        default=attrs.Factory(lambda self: event_rows.InlineEventsReader(self.reader.db_path),
                              takes_self=True)
    )  # fmt: skip


def install(app: QuartTrio, catalog: Catalog, reader: ProjectionReader) -> None:
    """Give the blueprint its objects (the blueprint itself is registered by ``serve``)."""
    previous = app.extensions.get(EXTENSION_KEY)
    if previous is not None:
        previous.inline_events.close()
    app.extensions[EXTENSION_KEY] = PublicV1Context(catalog=catalog, reader=reader)


class V1Error(Exception):
    """Answer ``status`` with ``{"errors": [message]}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class V1ValidationError(V1Error):
    """Answer 422 naming the offending field: ``{"errors": ["body.filters.0.type: ..."]}``.

    ``location`` is where the field is (``path``, ``query`` or ``body``, then the keys down to
    it), as FastAPI's ``loc``; the input itself is not echoed (a hostile body could be huge).
    """

    def __init__(self, location: list[str], message: str) -> None:
        super().__init__(422, f"{'.'.join(location)}: {message}")
        self.location = location


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


def _context() -> PublicV1Context:
    return current_app.extensions[EXTENSION_KEY]


def projection_reader() -> ProjectionReader:
    """The projections' reader of the app (for the v1 routes of other modules)."""
    return _context().reader


# -- auth and lookups ------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ApiGeneration:
    """What differs between the public API generations that share these handlers (API.md 1.1):
    how the key is sent, and what a project the key does not own answers."""

    name: str
    # v2 takes ``Authorization: Bearer <key>`` only; v1 the raw key or the Bearer form.
    bearer_only: bool
    # v1 answers 404 "project not found."; v2's authorizer a 401 before any handler runs.
    unowned_project_status: int


V1 = ApiGeneration("v1", bearer_only=False, unowned_project_status=404)
V2 = ApiGeneration("v2", bearer_only=True, unowned_project_status=401)
_GENERATION_ATTRIBUTE = "replayd_api_generation"


def use_generation(generation: ApiGeneration) -> None:
    """Serve the current request as ``generation`` (the v2 blueprint says so before its views)."""
    setattr(g, _GENERATION_ATTRIBUTE, generation)


def current_generation() -> ApiGeneration:
    """The generation the current request is served as (v1 unless told)."""
    generation: ApiGeneration = getattr(g, _GENERATION_ATTRIBUTE, V1)
    return generation


def api_key_from_header(header: str | None, *, bearer_only: bool = False) -> str | None:
    """The key in an ``Authorization`` value: raw (unless ``bearer_only``) or after ``Bearer ``
    (any case); None if blank or, with ``bearer_only``, not a Bearer credential."""
    if header is None:
        return None
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    elif bearer_only:
        return None
    return value or None


async def _organization() -> int:
    header = request.headers.get("Authorization")
    key = api_key_from_header(header, bearer_only=current_generation().bearer_only)
    if key is None:
        if current_generation().bearer_only:  # v2 takes its Bearer key and nothing else
            raise V1Error(401, "Not authenticated")
        # No API key: the dashboard's session cookie is a credential too (its user's
        # organization); a state-changing call with it needs the session's CSRF token.
        session = await request_login_session()
        if session is None:
            raise V1Error(401, "Not authenticated")
        problem = csrf_problem(session)
        if problem is not None:
            raise V1Error(403, problem)
        return session.user.org_id
    # A key seen before answers from memory: no thread hop and no SQLite on every API call.
    org_id = await _context().catalog.find_api_key(key)
    if org_id is None:
        raise V1Error(401, "Invalid API Key")
    return org_id


async def _project(org_id: int, project_key: str, *, unowned_status: int = 404) -> Project:
    project = await _context().catalog.find_project_by_key(project_key)
    if project is None or project.org_id != org_id:
        raise V1Error(unowned_status, "project not found.")
    return project


async def authorized_project(project_key: str) -> Project:
    """The project a route names, for the request's API key or (v1 only) dashboard session cookie
    (401, 403 for a cookie call without its CSRF token, then 404 as above; under v2 a project the
    key does not own is a 401, as v2's authorizer answers)."""
    status = current_generation().unowned_project_status
    return await _project(await _organization(), project_key, unowned_status=status)


async def request_organization() -> int:
    """The organization of the request's API key (401 without a valid one)."""
    return await _organization()


_INTEGER_RE = re.compile(r"-?[0-9]+")
# int() of a longer digit string raises (Python's int_max_str_digits); such a number is never an
# int64, so it is refused before parsing.
_INTEGER_MAX_DIGITS = 40


def _int_param(raw: str | None, location: list[str]) -> int | None:
    """A path or query integer (ASCII digits, optional minus, as OpenAPI describes it)."""
    if raw is None:
        return None
    if len(raw) > _INTEGER_MAX_DIGITS or not _INTEGER_RE.fullmatch(raw):
        raise V1ValidationError(
            location, "Input should be a valid integer, unable to parse string as an integer"
        )
    return int(raw)


def path_session_id(raw: str) -> int | None:
    """A session id of a path (422 when not an integer); None when outside int64, where no
    session can be (SQLite integers are 64-bit)."""
    sid = _int_param(raw, ["path", "sessionId"])
    assert sid is not None
    return sid if INT64_MIN <= sid <= INT64_MAX else None


def int64_param(raw: str | None, location: list[str]) -> int | None:
    """A query integer that SQLite binds: outside int64 it is a 422, not an OverflowError."""
    value = _int_param(raw, location)
    if value is not None and not INT64_MIN <= value <= INT64_MAX:
        raise V1ValidationError(location, f"Input should be between {INT64_MIN} and {INT64_MAX}")
    return value


async def json_body() -> Any:
    """The request body as JSON (None when empty), or a 422 ``json_invalid``.

    Strict UTF-8 (RFC 8259), and any parse failure is the client's: a body nested deeper than the
    parser's recursion limit raises RecursionError, which must not become a 500.
    """
    # All three arguments spelled out (the defaults) so the stubs pick the ``bytes`` overload.
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        message = "JSON nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise V1ValidationError(["body"], f"JSON decode error ({message})") from None


def _data(payload: Any) -> Response:
    return json_response({"data": payload})


# -- projects --------------------------------------------------------------------------------------


def project_json(project: Project, first_recorded_at: int | None) -> dict[str, Any]:
    """The project object: every project field, read from the catalog's :class:`Project` (one
    source: ``sampleRate`` and ``gdpr.sampleRate`` are the rate ``/v1/web/start`` applies), plus
    when its first session was recorded (epoch ms, null before; from the sessions projection).

    Every route answers this object; the list leaves ``projectId`` out, as the reference's does.
    """
    return {
        "projectId": project.project_id,
        "projectKey": project.project_key,
        "name": project.name,
        "platform": project.platform,
        "saveRequestPayloads": project.save_request_payloads,
        "firstRecordedSessionAt": first_recorded_at,
        "createdAt": project.created_at_ms,
        "sampleRate": project.sample_rate,
        "conditionsCount": 0,  # no conditional recording yet
        "gdpr": {**GDPR_DEFAULTS, "sampleRate": project.sample_rate},
    }


async def _project_objects(projects: list[Project]) -> list[dict[str, Any]]:
    firsts = await _context().reader.first_session_starts([p.project_id for p in projects])
    return [project_json(p, firsts.get(p.project_id)) for p in projects]


@bp.get("/projects")
@schema.v1_operation(
    "The organization's projects",
    responses=schema.replies(
        schema.list_reply("The projects", schema.PROJECT_LIST_ITEM),
        401,
    ),
)
async def list_projects() -> Response:
    listed = await organization_projects(await _organization())
    return _data([{k: v for k, v in item.items() if k != "projectId"} for item in listed])


async def organization_projects(org_id: int) -> list[dict[str, Any]]:
    """Every project object of the organization (``projectId`` included)."""
    projects = await trio.to_thread.run_sync(_context().catalog.list_projects, org_id)
    return await _project_objects(projects)


async def project_object(org_id: int, project_key: str) -> dict[str, Any]:
    """The project object of ``project_key`` if the organization owns it, else a 404."""
    (item,) = await _project_objects([await _project(org_id, project_key)])
    return item


@bp.get("/projects/<project_key>")
@schema.v1_operation(
    "One project",
    parameters=[schema.PROJECT_KEY],
    responses=schema.replies(schema.data_reply("The project", schema.PROJECT), 401, 404),
)
async def get_project(project_key: str) -> Response:
    return _data(await project_object(await _organization(), project_key))


def object_body(body: Any) -> dict[str, Any]:
    """A JSON body that must be an object; no body (None) means every field's default."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise V1ValidationError(["body"], "Input should be a valid dictionary")
    return body


def _create_project(catalog: Catalog, org_id: int, name: str, platform: str) -> Project | None:
    """Create unless the organization has a project of that name (any case); None if it has."""
    wanted = name.casefold()
    if any(p.name.casefold() == wanted for p in catalog.list_projects(org_id)):
        return None
    return catalog.create_project(name, platform, org_id=org_id)


@bp.post("/projects")
@schema.v1_operation(
    "Create a project",
    description="No body creates `my first project` (web). Names are unique per organization, "
    "whatever their case.",
    body={"application/json": schema.NEW_PROJECT},
    responses={
        **schema.replies(schema.data_reply("The new project", schema.PROJECT), 401, 413, 422),
        400: json_reply("The organization has a project of that name", schema.V1_ERRORS),
        503: schema.BUSY,
    },
)
async def create_project() -> Response:
    org_id = await _organization()
    return _data(await create_project_from(org_id, object_body(await json_body())))


async def create_project_from(org_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Create the project a (validated) request body describes; its project object.

    Field defaults as v1 has them; 422 naming a wrong field, 400 "name already exists.".
    """
    name = body.get("name", DEFAULT_PROJECT_NAME)
    platform = body.get("platform", "web")
    if not isinstance(name, str):
        raise V1ValidationError(["body", "name"], "Input should be a valid string")
    if len(name) > PROJECT_NAME_MAX:  # before stripping: the limit is on what was sent
        raise V1ValidationError(
            ["body", "name"], f"String should have at most {PROJECT_NAME_MAX} characters"
        )
    if not PROJECT_NAME_RE.fullmatch(name):
        raise V1ValidationError(
            ["body", "name"],
            "name may only contain letters, digits, spaces and - , é è à ç | & / \\ _ . #",
        )
    name = name.strip(" ")
    if platform not in PLATFORMS:  # the catalog's list, which the CLI offers too
        raise V1ValidationError(
            ["body", "platform"], f"Input should be one of {', '.join(map(repr, PLATFORMS))}"
        )
    catalog = _context().catalog
    project = await trio.to_thread.run_sync(_create_project, catalog, org_id, name, platform)
    if project is None:
        raise V1Error(400, "name already exists.")
    return project_json(project, None)  # new: no session recorded yet


# -- events ----------------------------------------------------------------------------------------


def _path_of(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


EventSerializer = Callable[[event_rows.EventRow], dict[str, Any]]

# Row type -> the type-specific keys of its JSON (after the common ones). A row of a type with no
# entry is served with the common keys only.
EVENT_SERIALIZERS: Registry[str, EventSerializer] = Registry("event serializers")


def event_serializer(row_type: str) -> Callable[[EventSerializer], EventSerializer]:
    """Register the decorated function as the serializer of ``row_type`` rows (refused twice)."""

    def register(serializer: EventSerializer) -> EventSerializer:
        EVENT_SERIALIZERS.register(row_type, serializer)
        return serializer

    return register


def event_json(row: event_rows.EventRow) -> dict[str, Any]:
    """One event row in the shape of API.md 2.1 (PostgreSQL era), plus our extra types."""
    out: dict[str, Any] = {
        "sessionId": str(row.session_id),
        "messageId": row.message_id,
        "timestamp": row.timestamp,
        "type": row.type,
    }
    serializer = EVENT_SERIALIZERS.get(row.type)
    if serializer is not None:
        out |= serializer(row)
    return out


@event_serializer("CLICK")
def _click_json(row: event_rows.EventRow) -> dict[str, Any]:
    x, y = row.data.get("normalized_x"), row.data.get("normalized_y")
    return {
        "label": row.label,
        "url": row.url or row.page_url,
        "path": _path_of(row.url or row.page_url),
        "selector": row.selector,
        "hesitation": row.hesitation,
        # Stored in hundredths of a percent; the reference serves percent, 2 decimals.
        "normalizedX": None if x is None else x / 100,
        "normalizedY": None if y is None else y / 100,
    }


@event_serializer("INPUT")
def _input_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {
        "label": row.label,
        "value": row.value,
        "duration": row.duration,
        "hesitation": row.hesitation,
    }


@event_serializer("LOCATION")
def _location_json(row: event_rows.EventRow) -> dict[str, Any]:
    data = row.data
    vitals = data.get("web_vitals")
    return {
        "host": data.get("host"),
        "path": data.get("path"),
        "basePath": data.get("path"),
        "query": data.get("query"),
        "referrer": data.get("referrer"),
        "baseReferrer": data.get("base_referrer"),
        **event_rows.page_timings(row),
        # An object (metric name -> value), or null: the reference served its stored JSON text
        # as a string inside the JSON, which every client had to parse again.
        "webVitals": dict(vitals) if vitals else None,
        "value": row.value,
        "url": row.url,
    }


@event_serializer("CUSTOM")
def _custom_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"name": row.name, "payload": event_rows.decode_payload(row.data.get("payload"))}


@event_serializer("ERROR")
def _error_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"name": row.name, "message": row.value, "source": row.data.get("source")}


@event_serializer("REQUEST")
def _request_json(row: event_rows.EventRow) -> dict[str, Any]:
    status = row.status or 0
    return {
        "url": row.url,
        "method": row.method,
        "status": row.status,
        "duration": row.duration,
        "success": 0 < status < 400,
    }


@event_serializer("GRAPHQL")
def _graphql_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"name": row.name, "method": row.method, "duration": row.duration}


@event_serializer("STATEACTION")
def _state_action_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"name": row.name}


@event_serializer("ISSUE")
def _issue_json(row: event_rows.EventRow) -> dict[str, Any]:
    data = row.data
    return {
        "issueType": row.name,
        "contextString": data.get("context_string"),
        "context": data.get("context"),
        "payload": event_rows.decode_payload(data.get("payload")),
    }


# -- rows of mobile sessions (MOBILE.md 5.2's names; INPUT, CUSTOM, REQUEST, GRAPHQL and ISSUE are
# the web ones above: a mobile INPUT has no value, duration or hesitation, so they are null).


@event_serializer("TAP")
def _tap_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"label": row.label, "x": row.data.get("x"), "y": row.data.get("y")}


@event_serializer("SWIPE")
def _swipe_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"label": row.label, "direction": row.value}


@event_serializer("VIEW")
def _view_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"screenName": row.name, "viewName": row.label, "visible": row.data.get("visible")}


@event_serializer("CRASH")
def _crash_json(row: event_rows.EventRow) -> dict[str, Any]:
    return {"name": row.name, "reason": row.value, "stacktrace": row.data.get("stacktrace")}


@bp.get("/<project_key>/sessions/<session_id>/events")
@schema.v1_operation(
    "Every event of a session, sorted by (timestamp, messageId)",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID],
    responses=schema.replies(
        schema.list_reply("The events (none for an unknown session)", schema.EVENT),
        401,
        404,
        422,
    ),
)
async def session_events(project_key: str, session_id: str) -> Response:
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    if sid is None:
        return _data([])  # no such session can exist (SQLite integers are 64-bit)
    context = _context()
    # A small session's rows by primary key: answered on the trio thread (see
    # InlineEventsReader for why that does not stall the loop). A big one (or SQLite busy): read
    # AND serialized in a worker thread, since turning 20,000 rows into JSON holds the loop too.
    rows = context.inline_events.session_events(project.project_id, sid)
    if rows is not None:
        return _data([event_json(row) for row in rows])
    return await context.reader.run(_session_events_answer, project.project_id, sid)


def _session_events_answer(conn: sqlite3.Connection, project_id: int, session_id: int) -> Response:
    """The answer over a session's events, built in a worker thread (a Response needs no app
    context: it is the JSON text and its headers).

    The text is ``_data``'s, but made one event at a time: one ``json.dumps`` of 20,000 events is
    a single C call that holds the GIL, and so the loop, for tens of milliseconds.
    """
    rows = event_rows.session_events(conn, project_id, session_id)
    items = ",".join(json.dumps(event_json(row), separators=(",", ":")) for row in rows)
    return Response('{"data":[' + items + "]}", content_type="application/json")


@bp.after_app_serving
async def _close_inline_events() -> None:
    context = current_app.extensions.get(EXTENSION_KEY)
    if context is not None:
        context.inline_events.close()


# -- users -----------------------------------------------------------------------------------------


def user_session_json(row: SessionRow) -> dict[str, Any]:
    """A session as ``GET /v1/{projectKey}/users/{userId}/sessions`` lists it (API.md 1.2 #4):
    the start facts are those their ``StartField`` lists there."""
    start = USER_SESSIONS_VIEW.json(row)
    # How the reference answers these two unknowns (the other facts stay "").
    start["userBrowser"] = start["userBrowser"] or None
    start["userCountry"] = country_or_unknown(start["userCountry"])
    return {
        "projectId": row.project_id,
        "sessionId": str(row.session_id),
        **start,
        "startTs": row.start_ts,
        "duration": row.duration,
        "eventsCount": row.events_count,
        "pagesCount": row.pages_count,
        "errorsCount": row.errors_count,
    }


def user_json(summary: UserSummary) -> dict[str, Any]:
    """A user summary as ``GET /v1/{projectKey}/users/{userId}`` answers it."""
    return {
        "userId": summary.user_id,
        "sessionCount": summary.session_count,
        "lastSeen": summary.last_seen,
        "firstSeen": summary.first_seen,
    }


@bp.get("/<project_key>/users/<user_id>/sessions")
@schema.v1_operation(
    f"Up to {USER_SESSIONS_LIMIT} sessions of a user",
    parameters=[schema.PROJECT_KEY, schema.USER_ID, schema.START_DATE, schema.END_DATE],
    responses=schema.replies(
        schema.list_reply("The sessions, oldest first", schema.USER_SESSION),
        401,
        404,
        422,
    ),
)
async def user_sessions(project_key: str, user_id: str) -> Response:
    project = await authorized_project(project_key)
    query = UserSessionsQuery(
        start_date=int64_param(request.args.get("start_date"), ["query", "start_date"]),
        end_date=int64_param(request.args.get("end_date"), ["query", "end_date"]),
    )
    page = await user_session_page(project, user_id, query)
    return _data(page.sessions)


@attrs.frozen(slots=True, kw_only=True)
class UserSessionsQuery:
    """Which of a user's sessions to answer: v1 asks for the first 50 by id; v2 for a page, in
    either order, with the total."""

    start_date: int | None = None  # epoch ms, inclusive, on the session's start
    end_date: int | None = None
    limit: int = USER_SESSIONS_LIMIT
    page: int = 1
    newest_first: bool = False


@attrs.frozen(slots=True)
class UserSessionsPage:
    """A page of a user's sessions (the objects of API.md 1.2 #4) and how many match in all."""

    total: int
    sessions: list[dict[str, Any]]


async def user_session_page(
    project: Project, user_id: str, query: UserSessionsQuery
) -> UserSessionsPage:
    """The sessions of ``user_id`` that ``query`` names, as both generations answer them."""
    total, rows = await _context().reader.user_sessions_page(
        project.project_id,
        user_id,
        start_date=query.start_date,
        end_date=query.end_date,
        limit=query.limit,
        offset=(query.page - 1) * query.limit,
        newest_first=query.newest_first,
    )
    return UserSessionsPage(total, [user_session_json(row) for row in rows])


@bp.get("/<project_key>/users/<user_id>")
@schema.v1_operation(
    "A user's summary over finished sessions",
    parameters=[schema.PROJECT_KEY, schema.USER_ID],
    responses=schema.replies(
        schema.data_reply("The summary, or null", schema.nullable(schema.USER)), 401, 404
    ),
)
async def get_user(project_key: str, user_id: str) -> Response:
    summary = await user_summary(await authorized_project(project_key), user_id)
    return _data(None if summary is None else user_json(summary))


async def user_summary(project: Project, user_id: str) -> UserSummary | None:
    """The user's summary over finished sessions (None without one)."""
    return await _context().reader.user(project.project_id, user_id)


# -- Assist: live sessions -------------------------------------------------------------------------


def _live_sessions() -> LiveSessions:
    live = current_app.extensions.get(LIVE_SESSIONS_KEY)
    if live is None:
        # Only the process that runs the engine keeps the live sessions in memory.
        raise V1Error(503, "live sessions are not available in this process")
    return live


def _as_values(raw: Any, location: list[str]) -> tuple[str, ...]:
    """A filter's ``value``: one string or a list of strings (numbers are taken as text)."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    values = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise V1ValidationError(location, "Input should be a valid string")
        values.append(str(item))
    return tuple(values)


_ASSIST_FILTER_TYPES = frozenset(name.lower() for name in ASSIST_FILTER_TYPES)
_KNOWN_TYPES = ", ".join(ASSIST_FILTER_TYPES)
_CUT_CHARS = 64


def _cut(text: str) -> str:
    """``text`` as an error message quotes it: a hostile value must not be sent back whole."""
    return text if len(text) <= _CUT_CHARS else text[:_CUT_CHARS] + "..."


def parse_live_search(body: Any) -> tuple[list[LiveFilter], str, str, int, int]:
    """Validate an Assist search body: ``(filters, sort, order, page, limit)`` with the defaults of
    the reference (sort "timestamp", order DESC, page 1, limit 200 at most)."""
    body = object_body(body)
    raw_filters = _or_default(body, "filters", [])
    if not isinstance(raw_filters, list):
        raise V1ValidationError(["body", "filters"], "Input should be a valid list")
    filters = []
    for i, raw in enumerate(raw_filters):
        where = ["body", "filters", str(i)]
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not raw["type"]:
            raise V1ValidationError([*where, "type"], "Field required")
        kind = raw["type"]
        if kind.lower() not in _ASSIST_FILTER_TYPES:
            # The reference validates the name too (pydantic's LiveFilterType): an unknown one is
            # a mistake to report, not a filter that silently matches nothing.
            raise V1ValidationError(
                [*where, "type"], f"Unknown filter type {_cut(kind)!r}; known: {_KNOWN_TYPES}"
            )
        operator = _or_default(raw, "operator", "contains")
        if operator not in ASSIST_OPERATORS:
            raise V1ValidationError(
                [*where, "operator"],
                f"Unknown operator {_cut(str(operator))!r}; known: 'is', 'contains'",
            )
        source = raw.get("source")
        if source is not None and not isinstance(source, str):
            raise V1ValidationError([*where, "source"], "Input should be a valid string")
        if kind.lower() == "metadata" and not source:
            raise V1ValidationError([*where, "source"], "A metadata filter names its key here")
        values = _as_values(raw.get("value"), [*where, "value"])
        filters.append(
            LiveFilter(type=raw["type"], values=values, operator=operator, source=source)
        )
    sort = _or_default(body, "sort", "timestamp")
    order = _or_default(body, "order", "DESC")
    if not isinstance(sort, str):
        raise V1ValidationError(["body", "sort"], "Input should be a valid string")
    if not isinstance(order, str) or order.upper() not in ("ASC", "DESC"):
        raise V1ValidationError(["body", "order"], "Input should be 'ASC' or 'DESC'")
    page = _int_field(body.get("page", 1), ["body", "page"], default=1)
    limit = _int_field(body.get("limit", ASSIST_LIMIT_MAX), ["body", "limit"],
                       default=ASSIST_LIMIT_MAX)  # fmt: skip
    if page < 1:
        raise V1ValidationError(["body", "page"], "Input should be >= 1")
    if not 1 <= limit <= ASSIST_LIMIT_MAX:
        raise V1ValidationError(["body", "limit"], f"Input should be 1..{ASSIST_LIMIT_MAX}")
    return filters, sort, order.upper(), page, limit


def _or_default(body: dict[str, Any], key: str, default: Any) -> Any:
    """``body[key]``, or ``default`` when it is missing or null (not when it is merely falsy:
    ``""`` or ``0`` is a wrong value, answered 422, as the OpenAPI description says)."""
    value = body.get(key)
    return default if value is None else value


def _int_field(raw: Any, location: list[str], *, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise V1ValidationError(location, "Input should be a valid integer")
    return raw


def live_sessions_page(project: Project, filters: list[LiveFilter], sort: str, order: str,
                       page: int, limit: int) -> dict[str, Any]:  # fmt: skip
    """A page of the project's live sessions: ``{total, sessions, counter}`` (API.md 4)."""
    result = _live_sessions().search(
        project.project_id, filters, sort=sort, order=order, page=page, limit=limit
    )
    return {
        "total": result.total,
        "sessions": [s.assist_fields() for s in result.sessions],
        "counter": result.counter,
    }


@bp.get("/<project_key>/assist/sessions")
@schema.v1_operation(
    "The project's live sessions, newest first",
    tags=("assist",),
    parameters=[schema.PROJECT_KEY, schema.ASSIST_USER_ID],
    responses=schema.replies(
        schema.data_reply("A page of live sessions", schema.LIVE_SESSIONS), 401, 404, 503
    ),
)
async def list_live_sessions(project_key: str) -> Response:
    """The project's live sessions, newest first (``?userId=`` narrows to one user)."""
    project = await authorized_project(project_key)
    filters = user_id_filter(request.args.get("userId"))
    return _data(live_sessions_page(project, filters, "timestamp", "DESC", 1, ASSIST_LIMIT_MAX))


def user_id_filter(user_id: str | None) -> list[LiveFilter]:
    """The filters of Assist's ``?userId=`` (none without it)."""
    return [] if not user_id else [LiveFilter(type="userId", values=(user_id,), operator="is")]


@bp.post("/<project_key>/assist/sessions")
@schema.v1_operation(
    "Search the project's live sessions",
    description="Filters are AND-ed, a filter's values OR-ed; names and values are compared "
    "case-insensitively; `value: []` means the session has the attribute.",
    tags=("assist",),
    parameters=[schema.PROJECT_KEY],
    body={"application/json": schema.LIVE_SEARCH},
    responses=schema.replies(
        schema.data_reply("A page of live sessions", schema.LIVE_SESSIONS),
        401,
        404,
        413,
        422,
        503,
    ),
)
async def search_live_sessions(project_key: str) -> Response:
    """Search the project's live sessions: filters, sort, order, page, limit (API.md 4.3)."""
    project = await authorized_project(project_key)
    # No body = every live session.
    filters, sort, order, page, limit = parse_live_search(await json_body())
    return _data(live_sessions_page(project, filters, sort, order, page, limit))
