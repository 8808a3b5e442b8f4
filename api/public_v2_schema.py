"""The OpenAPI description of the public API v2 routes (API.md 1.3): bodies, answers, errors.

The numbers are :mod:`api.public_v2_query`'s, so the description and the checks agree. Answers
are v1's objects (:mod:`api.public_v1_schema`) in v2's pages; errors are ``{"error": "..."}``
and a 401 has no body, as v2 answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api import public_v1_schema as v1
from api import public_v2_query as query
from api.openapi import (
    INTEGER,
    ORG_API_KEY_BEARER,
    STRING,
    Operation,
    Parameter,
    Reply,
    component,
    error_reply,
    json_object,
)
from storage.catalog import PLATFORMS

TAGS = ("public v2",)

UNAUTHORIZED = Reply(
    "No `Bearer` key, an unknown one, or a project the key does not own (empty body)"
)
BAD_REQUEST = error_reply("A malformed path, query or body; the message names the field")
NOT_FOUND = error_reply("Unknown project (`project not found.`) or user (`user not found`)")
TOO_LARGE = error_reply("The body is larger than the server accepts")
UNAVAILABLE = error_reply("Live sessions are kept by the engine process only (`serve --workers`)")
_SHARED = {401: UNAUTHORIZED, 400: BAD_REQUEST, 404: NOT_FOUND, 413: TOO_LARGE, 503: UNAVAILABLE}


def operation(
    summary: str,
    ok: Reply,
    statuses: Sequence[int],
    *,
    parameters: Sequence[Parameter] = (),
    body: Mapping[str, dict[str, Any]] | None = None,
    description: str = "",
) -> Operation:
    """The description of a v2 route: ``ok`` plus the shared error answers of ``statuses``."""
    return Operation(
        summary=summary,
        responses={200: ok, **{status: _SHARED[status] for status in statuses}},
        tags=TAGS,
        security=(ORG_API_KEY_BEARER,),
        parameters=tuple(parameters),
        body=None if body is None else dict(body),
        description=description,
    )


def page_of(name: str, item: dict[str, Any]) -> dict[str, Any]:
    """``{"total": N, <name>: [item, ...]}``."""
    return json_object(
        {"total": {"type": "integer", "minimum": 0}, name: {"type": "array", "items": item}},
        ["total", name],
    )


def _int(low: int, high: int = v1.INT64_MAX, *, nullable: bool = True) -> dict[str, Any]:
    return {"type": ["integer", "null"] if nullable else "integer", "minimum": low,
            "maximum": high}  # fmt: skip


_TIMESTAMP = _int(query.MIN_TIMESTAMP)
_LIMIT = _int(1, query.LIMIT_MAX)
_PAGE = _int(1, v1.INT64_MAX // query.LIMIT_MAX)
_SORT_ORDER = {
    "anyOf": [{"type": "string", "pattern": v1.any_case_pattern(*query.SORT_ORDERS)},
              {"enum": ["", None]}],
}  # fmt: skip
_STRINGS = {"type": ["array", "null"], "items": STRING}

PROJECT_LIST = {"type": "array", "items": v1.PROJECT}
NEW_PROJECT = component(
    "V2NewProject",
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": v1.PROJECT_NAME_MAX,
                     "pattern": v1.PROJECT_NAME_PATTERN},
            "platform": {"enum": list(PLATFORMS), "default": "web"},
        },
        "required": ["name"],
    },
)  # fmt: skip

V2_USER = component(
    "V2User",
    json_object(
        {
            "$user_id": STRING,
            "$first_event_at": INTEGER,
            "$last_seen": INTEGER,
            "userId": STRING,
            "sessionCount": INTEGER,
            "firstSeen": INTEGER,
            "lastSeen": INTEGER,
        },
        ["$user_id", "$first_event_at", "$last_seen", "userId", "sessionCount"],
    ),
)
USER_SEARCH = component(
    "V2UserSearch",
    {
        "type": ["object", "null"],
        "properties": {
            "query": {"type": ["string", "null"], "maxLength": query.QUERY_MAX},
            "startTimestamp": _TIMESTAMP,
            "endTimestamp": _TIMESTAMP,
            "limit": _LIMIT,
            "page": _PAGE,
            "sortBy": {"enum": [*query.USER_SORT_KEYS, *query.USER_SORT_ALIASES, "", None]},
            "sortOrder": _SORT_ORDER,
            "columns": _STRINGS,
            "filters": {"type": ["array", "null"], "maxItems": 0,
                        "description": "User property filters: none supported yet"},
        },
    },
)  # fmt: skip
USER_SESSION = component(
    "V2UserSession",
    {
        "allOf": [
            v1.USER_SESSION,
            json_object({"endTs": v1.NULLABLE_INTEGER}, ["endTs"]),
        ]
    },
)
USER_SESSIONS_BODY = component(
    "V2UserSessionsQuery",
    {
        "type": "object",
        "properties": {
            "startTimestamp": {**_TIMESTAMP, "type": "integer"},
            "endTimestamp": {**_TIMESTAMP, "type": "integer"},
            "limit": _LIMIT,
            "page": _PAGE,
            "sortOrder": _SORT_ORDER,
        },
        "required": ["startTimestamp", "endTimestamp"],
    },
)
_EVENT_FILTER = json_object(
    {
        "name": {"type": "string", "minLength": 1},
        "operator": {"enum": list(query.EVENT_OPERATORS)},
        "value": {"type": ["array", "null"], "maxItems": query.FILTER_VALUES_MAX,
                  "items": {"type": ["string", "number"]}},
    },
    ["name"],
)  # fmt: skip
EVENTS_BODY = component(
    "V2EventsQuery",
    {
        "type": "object",
        "properties": {
            "startTimestamp": {**_TIMESTAMP, "type": "integer"},
            "endTimestamp": {**_TIMESTAMP, "type": "integer"},
            "limit": {**_LIMIT, "type": "integer"},
            "page": {**_PAGE, "type": "integer"},
            "sortBy": {"type": ["string", "null"]},
            "sortOrder": _SORT_ORDER,
            "columns": _STRINGS,
            "filters": {"type": ["array", "null"], "items": _EVENT_FILTER},
        },
        "required": ["startTimestamp", "endTimestamp", "limit", "page"],
    },
)
_LIVE_FILTER = json_object(
    {
        "name": {"type": "string", "minLength": 1},
        "operator": {"enum": [*v1.ASSIST_OPERATORS, None]},
        "value": {"anyOf": [{"type": ["string", "number"]},
                            {"type": "array", "items": {"type": ["string", "number"]}},
                            {"type": "null"}]},
        "source": v1.NULLABLE_STRING,
    },
    ["name"],
)  # fmt: skip
LIVE_SEARCH = component(
    "V2LiveSearch",
    {
        "type": ["object", "null"],
        "description": "Zero values (missing, null, 0, \"\") take the defaults: sort timestamp, "
        "order DESC, page 1, limit 10. A filter `name` that is no session attribute is a "
        "metadata key.",
        "properties": {
            "filters": {"type": ["array", "null"], "items": _LIVE_FILTER},
            "sort": {"type": ["string", "null"]},
            "order": {"anyOf": [{"type": "string", "pattern": v1.ORDER_PATTERN},
                                {"enum": ["", None]}]},
            "page": {"type": ["integer", "null"], "minimum": 0},
            "limit": {"type": ["integer", "null"], "minimum": 0,
                      "maximum": v1.ASSIST_LIMIT_MAX},
        },
    },
)  # fmt: skip

USER_ID = Parameter(
    "user_id",
    "path",
    {"type": "string", "pattern": "^[^/]+$", "maxLength": query.USER_ID_MAX},
    "The user id the tracker set",
)
Q = Parameter(
    "q", "query", {"type": "string", "maxLength": query.QUERY_MAX}, "Overrides the body's query"
)
