"""Public API v1 session search: ``POST /api/v1/<projectKey>/sessions/search`` (API.md 3).

The body is API.md 3.1's payload (``startTimestamp``, ``endTimestamp``, ``filters[]`` mixing
session and event filters, ``eventsOrder``, ``sort``, ``order``, ``page``, ``limit``); the answer
``{"data": {"total": N, "sessions": [session object of API.md 2.5, ...]}}`` over the project's
finished sessions. An invalid payload is a 422 naming the field (``body.filters.0.operator:
...``). Parsing is :func:`engine.search_query.parse_search`, the SQL
:func:`projections.search.search_sessions` in a worker thread; this module only adapts HTTP.
Authenticated and scoped as every v1 route (:func:`api.public_v1.authorized_project`).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response
from werkzeug.exceptions import MethodNotAllowed

from api import public_v1_schema as schema
from api.errors import json_response, v1_errors
from api.openapi import BOOLEAN, INTEGER, STRING, component, json_object, nullable
from api.public_v1 import (
    V1Error,
    V1ValidationError,
    authorized_project,
    json_body,
    projection_reader,
)
from api.public_v1_schema import any_case_pattern
from api.public_v1_session import SESSION, session_json
from engine.search_query import LIMIT_DEFAULT, LIMIT_MAX, SearchQueryError, parse_search
from engine.supervisor import wall_clock_ms
from projections.sessions import SessionRow

bp = Blueprint("public_v1_search", __name__, url_prefix="/api/v1")


def search_session_json(row: SessionRow) -> dict[str, Any]:
    """A search result: the session object of ``GET .../sessions/<id>``
    (:func:`api.public_v1_session.session_json`) with what search adds: the end, the UTM tags
    (filters of 3.2) and the reference's per-user flags (no dashboard user here: false)."""
    return {
        **session_json(row),
        "endTs": row.end_ts,
        "utmSource": row.utm_source,
        "utmMedium": row.utm_medium,
        "utmCampaign": row.utm_campaign,
        "favorite": False,
        "viewed": False,
    }


SEARCH_SESSION = component(
    "SearchSession",
    {
        "allOf": [
            SESSION,
            json_object(
                {
                    "endTs": nullable(INTEGER),
                    "utmSource": STRING,
                    "utmMedium": STRING,
                    "utmCampaign": STRING,
                    "favorite": BOOLEAN,
                    "viewed": BOOLEAN,
                },
                ["utmSource", "utmMedium", "utmCampaign"],
            ),
        ]
    },
)
SEARCH_RESULT = component(
    "SessionSearchResult",
    json_object(
        {
            "total": {**INTEGER, "minimum": 0, "description": "Sessions matching (all pages)"},
            "sessions": {"type": "array", "items": SEARCH_SESSION},
        },
        ["total", "sessions"],
    ),
)
# Loose where the parser decides (filter types, operators, values): the parser names the field
# of anything it refuses; the description must never call invalid what the route accepts.
_VALUE = {"type": ["string", "number", "null"]}
_VALUES = {"anyOf": [_VALUE, {"type": "array", "items": _VALUE}]}
_TIMESTAMP = {"type": ["integer", "null"], "minimum": schema.INT64_MIN, "maximum": schema.INT64_MAX}
_SUB_FILTER = json_object(
    {"type": STRING, "operator": nullable(STRING), "value": _VALUES}, ["type"]
)
_FILTER = json_object(
    {
        "type": {**STRING, "description": "A session filter (API.md 3.2) or event filter (3.3)"},
        "operator": {**nullable(STRING), "description": "API.md 3.4 (default `is`, or `=`)"},
        "value": _VALUES,
        "source": {"description": "A metadata filter's key; an input's value; an error's source"},
        "sourceOperator": nullable(STRING),
        "isEvent": nullable(BOOLEAN),
        "filters": {
            "type": ["array", "null"],
            "items": _SUB_FILTER,
            "description": "Properties of the same event (request: url, status, method, "
            "duration; graphql: method, duration)",
        },
    },
    ["type"],
)
SEARCH = component(
    "SessionSearch",
    {
        "type": ["object", "null"],
        "properties": {
            "startTimestamp": {**_TIMESTAMP, "description": "Earliest start (epoch ms)"},
            "endTimestamp": {**_TIMESTAMP, "description": "Latest start (epoch ms; default now)"},
            "startDate": _TIMESTAMP,
            "endDate": _TIMESTAMP,
            "filters": {"type": ["array", "null"], "items": _FILTER},
            "eventsOrder": {
                "anyOf": [
                    {"type": "string", "pattern": any_case_pattern("then", "and", "or")},
                    {"type": "null"},
                ],
                "default": "then",
            },
            "sort": {"type": ["string", "null"], "default": "startTs"},
            "order": {
                "anyOf": [{"type": "string", "pattern": schema.ORDER_PATTERN}, {"type": "null"}],
                "default": "DESC",
            },
            "page": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": schema.INT64_MAX,
                "default": 1,
            },
            "limit": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": LIMIT_MAX,
                "default": LIMIT_DEFAULT,
            },
        },
    },
)


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


@bp.post("/<project_key>/sessions/search")
@schema.v1_operation(
    "Search the project's finished sessions",
    description="Session filters are AND-ed; event filters combine by `eventsOrder` (`then`: in "
    "this order within the session, `and`: all, `or`: any). `is`/`isNot` compare exactly, "
    "`contains`/`startsWith`/`endsWith` ignore case. The window (default: the last 7 days) "
    "bounds the session's start.",
    parameters=[schema.PROJECT_KEY],
    body={"application/json": SEARCH},
    responses=schema.replies(
        schema.data_reply("A page of sessions and the total", SEARCH_RESULT), 401, 404, 413, 422
    ),
)
async def search(project_key: str) -> Response:
    """Search the project's finished sessions (API.md 3)."""
    project = await authorized_project(project_key)
    try:
        query = parse_search(await json_body(), now_ms=wall_clock_ms())
    except SearchQueryError as error:
        raise V1ValidationError(["body", *error.location], error.message) from None
    total, rows = await projection_reader().search_sessions(project.project_id, query)
    return json_response(
        {"data": {"total": total, "sessions": [search_session_json(r) for r in rows]}}
    )


@bp.route("/<project_key>/sessions/search", methods=["GET", "PUT", "PATCH", "DELETE"])
async def search_other_methods(project_key: str) -> Response:
    """405 (``Allow: POST``) for the search path's other methods: without this route
    ``GET .../sessions/search`` is ``GET .../sessions/<sessionId>`` with the id "search" (a 422
    where the method is what is wrong)."""
    raise MethodNotAllowed(valid_methods=["POST"])
