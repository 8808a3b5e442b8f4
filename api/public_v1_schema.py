"""The contract of the public API v1: its limits, and the OpenAPI schemas and answers of its routes.

:mod:`api.public_v1` validates requests with these limits and decorates its routes with these
schemas, so the published description and the checks are the same numbers and patterns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from api.openapi import (
    BOOLEAN,
    INTEGER,
    ORG_API_KEY,
    RETRY_AFTER,
    STRING,
    Parameter,
    Reply,
    component,
    json_object,
    json_reply,
    nullable,
    operation,
)
from storage.catalog import PLATFORMS

F = TypeVar("F", bound=Callable[..., Any])

# The reference's allowed project-name characters (letters, digits, space and -,éèàç|&/\_.#),
# at least one of them not a space. The same text is a Python and an ECMA-262 regex.
_NAME_CHARS = r"A-Za-z0-9\-,éèàç|&/\\_.#"
PROJECT_NAME_PATTERN = rf"^[ {_NAME_CHARS}]*[{_NAME_CHARS}][ {_NAME_CHARS}]*$"
# The reference's v2 limit (API.md: "name (required, <=200 chars)"); v1 had none.
PROJECT_NAME_MAX = 200
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ASSIST_LIMIT_MAX = 200
ASSIST_OPERATORS = ("is", "contains")
# The filter names of the reference's v1 (LiveFilterType, API.md 4.3), compared case-insensitively
# so that both its spellings (camelCase since v1.10, UPPERCASE before) work, and "active" (the
# tab is in the foreground, API.md 4.2) as its current Assist offers it.
ASSIST_FILTER_TYPES = (
    "userOs", "userBrowser", "userDevice", "userCountry", "userCity", "userState", "userId",
    "userAnonymousId", "revId", "platform", "pageTitle", "sessionId", "metadata", "userUuid",
    "trackerVersion", "userBrowserVersion", "userDeviceType", "active",
)  # fmt: skip


def any_case_pattern(*words: str) -> str:
    """A regex (Python and ECMA-262 alike, which have no common case-insensitive flag) matching
    exactly one of ``words`` in any case."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w) for w in words)
    return f"^({'|'.join(spelled)})$"


# "ASC" or "DESC" in any case (the route upper-cases it).
ORDER_PATTERN = any_case_pattern("ASC", "DESC")

TAGS = ("public v1",)
SECURITY = (ORG_API_KEY,)
NULLABLE_STRING = nullable(STRING)
NULLABLE_INTEGER = nullable(INTEGER)
INT64 = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}


def data_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``{"data": ...}`` envelope of every v1 success."""
    return json_object({"data": schema}, ["data"])


def v1_operation(
    summary: str, *, tags: tuple[str, ...] = TAGS, **described: Any
) -> Callable[[F], F]:
    """:func:`api.openapi.operation` for a v1 route (org API key, "public v1" tag by default)."""
    return operation(summary, tags=tags, security=SECURITY, **described)


def data_reply(description: str, schema: dict[str, Any]) -> Reply:
    """A 200 answer ``{"data": <schema>}``."""
    return json_reply(description, data_of(schema))


def list_reply(description: str, item: dict[str, Any]) -> Reply:
    """A 200 answer ``{"data": [<item>, ...]}``."""
    return data_reply(description, {"type": "array", "items": item})


V1_ERRORS = component(
    "V1Errors",
    {
        **json_object({"errors": {"type": "array", "items": STRING, "minItems": 1}}, ["errors"]),
        "description": "Every error under `/api/v1` (401, 400, 404, 405, 413, 422, 503, 500, "
        "unknown routes included), as the reference v1 answers. A 422's message starts with "
        "the field it is about: `body.filters.0.type: ...`, `query.start_date: ...`.",
    },
)

UNAUTHORIZED = json_reply("No API key (`Not authenticated`) or an unknown one", V1_ERRORS)
NOT_FOUND = json_reply("Unknown project (`project not found.`)", V1_ERRORS)
INVALID = json_reply(
    "A malformed path, query or body; the message names the field (`body.name: ...`)", V1_ERRORS
)
TOO_LARGE = json_reply("The body is larger than the server accepts", V1_ERRORS)
LIVE_UNAVAILABLE = json_reply(
    "Live sessions are kept by the engine process only (`serve --workers`)", V1_ERRORS
)
BUSY = json_reply(
    "The server is busy or cannot write (full disk): retry later",
    V1_ERRORS,
    Retry_After=RETRY_AFTER,
)


def replies(ok: Reply, *statuses: int) -> dict[int, Reply]:
    """``{200: ok}`` plus the shared error answers named by ``statuses``."""
    shared = {
        401: UNAUTHORIZED,
        404: NOT_FOUND,
        413: TOO_LARGE,
        422: INVALID,
        503: LIVE_UNAVAILABLE,
    }
    return {200: ok, **{status: shared[status] for status in statuses}}


# The project object (api.public_v1.project_json); the list leaves projectId out.
_PROJECT_FIELDS: dict[str, dict[str, Any]] = {
    "projectId": INTEGER,
    "projectKey": STRING,
    "name": STRING,
    "platform": {"enum": list(PLATFORMS)},
    "saveRequestPayloads": BOOLEAN,
    "firstRecordedSessionAt": NULLABLE_INTEGER,
    "createdAt": INTEGER,
    "sampleRate": {"type": "integer", "minimum": 0, "maximum": 100},
    "conditionsCount": INTEGER,
    # Days a session is kept (runtime.erasure erases older ones); 0 = forever.
    "retentionDays": {"type": "integer", "minimum": 0},
    "gdpr": json_object(
        {
            "maskEmails": BOOLEAN,
            "sampleRate": {"type": "integer", "minimum": 0, "maximum": 100},
            "maskNumbers": BOOLEAN,
            "defaultInputMode": STRING,
        },
        ["maskEmails", "sampleRate", "maskNumbers", "defaultInputMode"],
    ),
}
PROJECT = component("Project", json_object(_PROJECT_FIELDS, list(_PROJECT_FIELDS)))
PROJECT_LIST_ITEM = component(
    "ProjectListItem",
    json_object(
        {k: v for k, v in _PROJECT_FIELDS.items() if k != "projectId"},
        [k for k in _PROJECT_FIELDS if k != "projectId"],
    ),
)
NEW_PROJECT = component(
    "NewProject",
    {
        "type": ["object", "null"],
        "properties": {
            "name": {
                "type": "string",
                "maxLength": PROJECT_NAME_MAX,
                "pattern": PROJECT_NAME_PATTERN,
                "default": "my first project",
            },
            "platform": {"enum": list(PLATFORMS), "default": "web"},
        },
    },
)
EVENT = component(
    "Event",
    json_object(
        {
            "sessionId": STRING,
            "messageId": INTEGER,
            "timestamp": INTEGER,
            "type": STRING,
            # LOCATION only: metric name -> value as the tracker sent it.
            "webVitals": nullable({"type": "object", "additionalProperties": STRING}),
        },
        ["sessionId", "messageId", "timestamp", "type"],
    ),
)
USER_SESSION = component(
    "UserSession",
    json_object(
        {
            "projectId": INTEGER,
            "sessionId": STRING,
            "userUuid": NULLABLE_STRING,
            "userId": NULLABLE_STRING,
            "userOs": NULLABLE_STRING,
            "userBrowser": NULLABLE_STRING,
            "userDevice": NULLABLE_STRING,
            "userCountry": {"type": "string", "minLength": 2, "maxLength": 2},
            "startTs": INTEGER,
            "duration": NULLABLE_INTEGER,
            "eventsCount": INTEGER,
            "pagesCount": INTEGER,
            "errorsCount": INTEGER,
        },
        ["projectId", "sessionId", "startTs"],
    ),
)
USER = component(
    "User",
    json_object(
        {
            "userId": STRING,
            "sessionCount": INTEGER,
            "lastSeen": INTEGER,
            "firstSeen": INTEGER,
        },
        ["userId", "sessionCount", "lastSeen", "firstSeen"],
    ),
)
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
LIVE_SESSIONS = component(
    "LiveSessions",
    json_object(
        {
            "total": INTEGER,
            "sessions": {
                "type": "array",
                "items": json_object(
                    {
                        "sessionID": STRING,
                        "live": {"const": True},
                        "timestamp": INTEGER,
                        "userCountry": {"type": "string", "minLength": 2, "maxLength": 2},
                    },
                    ["sessionID", "live", "userCountry"],
                ),
            },
            "counter": {
                "type": "object",
                "additionalProperties": _COUNTS,
                "description": "Per filter (its `type`; a metadata filter's `source`), per value: "
                "how many of the matching sessions (all pages) matched that value.",
            },
        },
        ["total", "sessions", "counter"],
    ),
)
_FILTER_VALUE = {"type": ["string", "number"]}
_FILTER_VALUES = {
    "anyOf": [_FILTER_VALUE, {"type": "array", "items": _FILTER_VALUE}, {"type": "null"}]
}
_FILTER_OPERATOR = {"enum": [*ASSIST_OPERATORS, None]}
LIVE_SEARCH = component(
    "LiveSearch",
    {
        "type": ["object", "null"],
        "properties": {
            "filters": {
                "type": ["array", "null"],
                "items": {
                    "anyOf": [
                        json_object(
                            {
                                "type": {
                                    "type": "string",
                                    "pattern": any_case_pattern(
                                        *(t for t in ASSIST_FILTER_TYPES if t != "metadata")
                                    ),
                                },
                                "value": _FILTER_VALUES,
                                "operator": _FILTER_OPERATOR,
                                "source": NULLABLE_STRING,
                            },
                            ["type"],
                        ),
                        # A metadata filter names the metadata key in source.
                        json_object(
                            {
                                "type": {"type": "string", "pattern": any_case_pattern("metadata")},
                                "value": _FILTER_VALUES,
                                "operator": _FILTER_OPERATOR,
                                "source": {"type": "string", "minLength": 1},
                            },
                            ["type", "source"],
                        ),
                    ]
                },
            },
            "sort": {"type": ["string", "null"], "default": "timestamp"},
            "order": {
                "anyOf": [{"type": "string", "pattern": ORDER_PATTERN}, {"type": "null"}],
                "default": "DESC",
            },
            "page": {"type": ["integer", "null"], "minimum": 1, "default": 1},
            "limit": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": ASSIST_LIMIT_MAX,
                "default": ASSIST_LIMIT_MAX,
            },
        },
    },
)

PROJECT_KEY = Parameter("project_key", "path", description="The project's key")
SESSION_ID = Parameter(
    "session_id",
    "path",
    {"type": "string", "pattern": "^-?[0-9]+$", "maxLength": 40},
    "The session id (decimal; ids outside int64 simply match nothing)",
)
USER_ID = Parameter("user_id", "path", description="The user id the tracker set")
START_DATE = Parameter("start_date", "query", INT64, "Earliest session start (epoch ms, inclusive)")
END_DATE = Parameter("end_date", "query", INT64, "Latest session start (epoch ms, inclusive)")
ASSIST_USER_ID = Parameter("userId", "query", description="Only this user's live sessions")
