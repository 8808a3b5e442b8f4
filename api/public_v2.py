"""The public API v2 (API.md 1.1, 1.3): ``/v2/api/public/...`` and ``/public/...``.

The same handlers as v1 (:mod:`api.public_v1`): a v2 request is served as generation
:data:`api.public_v1.V2`, which changes only what differs between the generations:

* auth: ``Authorization: Bearer <key>`` only; a missing or unknown key, or a project the key does
  not own, is a **401 with an empty body** (v2's authorizer);
* parameter spelling: v2's POST bodies (``startTimestamp``/``endTimestamp``, ``limit``/``page``,
  ``sortBy``/``sortOrder``, ``filters``, ``columns``) parsed by :mod:`api.public_v2_query`;
* envelope and codes: ``{"data": ...}`` with v2's pages (``{"total", "sessions"}``, ...),
  errors ``{"error": "..."}``, and a malformed request is 400 (v1's 422).

The objects are v1's (a session's events are the v1 event objects, not the ClickHouse
product-analytics rows of the reference's v2), with v2's ``$`` names added to a user.

:data:`V2_ROUTES` is the one table of v2 routes: a v1 handler whose parameters v2 spells the same
way is served by one line naming it (``V2Route("GET", "/projects/<project_key>",
public_v1.get_project, <description>)``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from quart import Blueprint, Response, request

from api import public_v1, public_v1_search
from api import public_v1_jobs as jobs
from api import public_v1_schema as v1_schema
from api import public_v2_query as query
from api import public_v2_schema as schema
from api.errors import V2_PREFIXES, json_response, plain_error
from api.openapi import OPERATION_ATTRIBUTE, Operation
from api.public_v1 import V1Error, V1ValidationError
from api.public_v1_schema import ASSIST_FILTER_TYPES
from projections import events as event_rows
from projections.users import UserQuery, UserSummary

# Where v2 is mounted: the self-hosted base (``https://HOST/v2/api`` + ``/public``) and the bare
# ``/public`` a reverse proxy that strips ``/v2/api`` passes on (api.errors knows both).
URL_PREFIXES = V2_PREFIXES

bp = Blueprint("public_v2", __name__)


@bp.before_request
async def _serve_as_v2() -> None:
    public_v1.use_generation(public_v1.V2)


@bp.errorhandler(V1Error)
async def _v2_error(error: V1Error) -> Response:
    if error.status == 401:
        return Response(b"", status=401)  # v2 says nothing more to a caller it does not know
    # v1's 422 (a malformed path, query or body) is v2's 400.
    status = 400 if isinstance(error, V1ValidationError) else error.status
    return json_response(plain_error(error.message), status)


@bp.errorhandler(query.InvalidV2Request)
async def _invalid_request(error: query.InvalidV2Request) -> Response:
    return json_response(plain_error(str(error)), 400)


def _data(payload: Any) -> Response:
    return json_response({"data": payload})


# -- projects --------------------------------------------------------------------------------------


async def list_projects() -> Response:
    """Every project of the key's organization (v2 keeps ``projectId``)."""
    return _data(await public_v1.organization_projects(await public_v1.request_organization()))


async def create_project() -> Response:
    """Create a project: ``name`` is required in v2 (v1 has a default)."""
    org_id = await public_v1.request_organization()
    body = query.object_body(await public_v1.json_body())
    if body.get("name") is None:
        raise query.InvalidV2Request("body.name", "is required")
    return _data(await public_v1.create_project_from(org_id, body))


# -- users -----------------------------------------------------------------------------------------


def user_json(summary: UserSummary) -> dict[str, Any]:
    """v1's user summary with v2's names of the same facts."""
    return {
        "$user_id": summary.user_id,
        "$first_event_at": summary.first_seen,
        "$last_seen": summary.last_seen,
        **public_v1.user_json(summary),
    }


async def search_users(project_key: str) -> Response:
    """Users of the project whose id contains ``q`` (or the body's ``query``), a page of them."""
    project = await public_v1.authorized_project(project_key)
    search = query.parse_user_search(await public_v1.json_body(), request.args.get("q"))
    total, users = await public_v1.projection_reader().search_users(
        project.project_id,
        UserQuery(
            text=search.text,
            seen_from=search.window.start,
            seen_to=search.window.end,
            sort_by=search.sort_by,
            newest_first=search.newest_first,
            limit=search.page.limit,
            offset=search.page.offset,
        ),
    )
    return _data({"total": total, "users": [user_json(u) for u in users]})


async def get_user(project_key: str, user_id: str) -> Response:
    """One user, or 404 "user not found" (v1 answers null)."""
    project = await public_v1.authorized_project(project_key)
    summary = await public_v1.user_summary(project, query.user_id_path(user_id))
    if summary is None:
        raise V1Error(404, "user not found")
    return _data(user_json(summary))


async def delete_user(project_key: str, user_id: str) -> Response:
    """v1's delete-user job, for a user id v2 accepts (1..256 characters, else 400)."""
    return await jobs.delete_user(project_key, query.user_id_path(user_id))


async def user_sessions(project_key: str, user_id: str) -> Response:
    """A page of a user's sessions started in the window, with the total."""
    project = await public_v1.authorized_project(project_key)
    wanted = query.parse_user_sessions(await public_v1.json_body())
    page = await public_v1.user_session_page(
        project,
        query.user_id_path(user_id),
        public_v1.UserSessionsQuery(
            start_date=wanted.window.start,
            end_date=wanted.window.end,
            limit=wanted.page.limit,
            page=wanted.page.page,
            newest_first=wanted.newest_first,
        ),
    )
    for session in page.sessions:
        duration = session["duration"]
        session["endTs"] = None if duration is None else session["startTs"] + duration
    return _data({"total": page.total, "sessions": page.sessions})


# -- a session's events ----------------------------------------------------------------------------


async def session_events(project_key: str, session_id: str) -> Response:
    """The session's events (v1's objects) that the body's window and filters select, a page."""
    project = await public_v1.authorized_project(project_key)
    sid = public_v1.path_session_id(session_id)
    events_query = query.parse_events_query(await public_v1.json_body())
    if sid is None:
        return _data({"total": 0, "events": []})
    reader = public_v1.projection_reader()
    return await reader.run(_events_answer, project.project_id, sid, events_query)


def _events_answer(
    conn: sqlite3.Connection, project_id: int, session_id: int, events_query: query.EventsQuery
) -> Response:
    """Read, select and serialize in a worker thread (a big session's events are many)."""
    rows = event_rows.session_events(conn, project_id, session_id)
    total, events = query.events_page([public_v1.event_json(r) for r in rows], events_query)
    return json_response({"data": {"total": total, "events": events}})


# -- Assist ----------------------------------------------------------------------------------------


async def list_live_sessions(project_key: str) -> Response:
    """Live sessions, newest first, v2's first page of 10 (``?userId=`` narrows to one user)."""
    project = await public_v1.authorized_project(project_key)
    filters = public_v1.user_id_filter(request.args.get("userId"))
    return _data(
        public_v1.live_sessions_page(
            project, filters, "timestamp", "DESC", 1, query.ASSIST_LIMIT_DEFAULT
        )
    )


async def search_live_sessions(project_key: str) -> Response:
    """Search live sessions: v2's ``name`` spelling of v1's filters, v2's defaults."""
    project = await public_v1.authorized_project(project_key)
    body = query.live_search_as_v1(await public_v1.json_body(), ASSIST_FILTER_TYPES)
    filters, sort, order, page, limit = public_v1.parse_live_search(body)
    return _data(public_v1.live_sessions_page(project, filters, sort, order, page, limit))


# -- the table -----------------------------------------------------------------------------------

View = Callable[..., Awaitable[Response]]


@attrs.frozen(slots=True)
class V2Route:
    """One v2 route: method, path under the v2 prefixes, the handler, its description."""

    method: str
    path: str
    handler: View
    description: Operation


_PROJECT = [v1_schema.PROJECT_KEY]
_SESSION = [*_PROJECT, v1_schema.SESSION_ID]
_USER = [*_PROJECT, schema.USER_ID]
_JSON = "application/json"

V2_ROUTES: tuple[V2Route, ...] = (
    V2Route("GET", "/projects", list_projects, schema.operation(
        "The organization's projects", v1_schema.data_reply("The projects", schema.PROJECT_LIST),
        [401])),
    V2Route("GET", "/projects/<project_key>", public_v1.get_project, schema.operation(
        "One project", v1_schema.data_reply("The project", v1_schema.PROJECT),
        [401, 404], parameters=_PROJECT)),
    V2Route("POST", "/projects", create_project, schema.operation(
        "Create a project", v1_schema.data_reply("The new project", v1_schema.PROJECT),
        [401, 400, 413], body={_JSON: schema.NEW_PROJECT})),
    V2Route("POST", "/<project_key>/users", search_users, schema.operation(
        "Search the project's users", v1_schema.data_reply(
            "A page of users", schema.page_of("users", schema.V2_USER)),
        [401, 400, 413], parameters=[*_PROJECT, schema.Q], body={_JSON: schema.USER_SEARCH})),
    V2Route("GET", "/<project_key>/users/<user_id>", get_user, schema.operation(
        "One user (over finished sessions)", v1_schema.data_reply("The user", schema.V2_USER),
        [401, 400, 404], parameters=_USER)),
    V2Route("POST", "/<project_key>/users/<user_id>/sessions", user_sessions, schema.operation(
        "A page of a user's sessions", v1_schema.data_reply(
            "The sessions", schema.page_of("sessions", schema.USER_SESSION)),
        [401, 400, 413], parameters=_USER, body={_JSON: schema.USER_SESSIONS_BODY})),
    V2Route("POST", "/<project_key>/sessions/<session_id>/events", session_events, schema.operation(
        "A page of a session's events", v1_schema.data_reply(
            "The events", schema.page_of("events", v1_schema.EVENT)),
        [401, 400, 413], parameters=_SESSION, body={_JSON: schema.EVENTS_BODY})),
    V2Route("GET", "/<project_key>/assist/sessions", list_live_sessions, schema.operation(
        "The project's live sessions, newest first", v1_schema.data_reply(
            "A page of live sessions", v1_schema.LIVE_SESSIONS),
        [401, 503], parameters=[*_PROJECT, v1_schema.ASSIST_USER_ID])),
    V2Route("POST", "/<project_key>/assist/sessions", search_live_sessions, schema.operation(
        "Search the project's live sessions", v1_schema.data_reply(
            "A page of live sessions", v1_schema.LIVE_SESSIONS),
        [401, 400, 413, 503], parameters=_PROJECT, body={_JSON: schema.LIVE_SEARCH})),
    # Session search (API.md 3): v1's handler; its 422s naming a field are v2's 400s.
    V2Route("POST", "/<project_key>/sessions/search", public_v1_search.search, schema.operation(
        "Search the project's recorded sessions", v1_schema.data_reply(
            "A page of sessions", public_v1_search.SEARCH_RESULT),
        [401, 400, 404, 413], parameters=_PROJECT,
        body={_JSON: public_v1_search.SEARCH})),
    # Delete-user jobs: v1's handlers (409 for a user with a job scheduled or running; the list
    # pages with limit/page, newest first, as v2's does).
    V2Route("DELETE", "/<project_key>/users/<user_id>", delete_user, schema.operation(
        "Schedule a job that erases every session of a user", v1_schema.data_reply(
            "The job, scheduled", jobs.JOB),
        [401, 400, 404, 409, 413, 503], parameters=_USER,
        body={_JSON: jobs.START_AT_BODY})),
    V2Route("GET", "/<project_key>/jobs", jobs.list_jobs, schema.operation(
        "The project's delete-user jobs, newest first", v1_schema.list_reply(
            "The jobs", jobs.JOB),
        [401, 400, 404], parameters=[*_PROJECT, *jobs.PAGE_PARAMETERS])),
    V2Route("GET", "/<project_key>/jobs/<job_id>", jobs.get_job, schema.operation(
        "One delete-user job", v1_schema.data_reply("The job", jobs.JOB),
        [401, 400, 404], parameters=[*_PROJECT, jobs.JOB_ID])),
    V2Route("DELETE", "/<project_key>/jobs/<job_id>", jobs.cancel_job, schema.operation(
        "Cancel a scheduled or running delete-user job", v1_schema.data_reply(
            "The job, cancelled", jobs.JOB),
        [401, 400, 404, 503], parameters=[*_PROJECT, jobs.JOB_ID])),
)  # fmt: skip


def _view(route: V2Route) -> View:
    """The route's view: its handler under its own v2 description (the handler may be a v1
    view, which carries v1's)."""

    async def view(**path: str) -> Response:
        return await route.handler(**path)

    setattr(view, OPERATION_ATTRIBUTE, route.description)
    return view


def register(routes: tuple[V2Route, ...] = V2_ROUTES) -> None:
    """Add ``routes`` to the v2 blueprint (before the app registers it)."""
    for route in routes:
        endpoint = f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}"
        endpoint = endpoint.replace("<", "").replace(">", "")
        bp.add_url_rule(route.path, endpoint, _view(route), methods=[route.method])


register()
