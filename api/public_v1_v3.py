"""The public API v1's reports over the v3 generic events API: intervals and per-type totals.

``GET /api/v1/<projectKey>/v3/intervals?type=&user=&from=&to=&page=&limit=`` answers
``{"data": {"total", "page", "limit", "intervals": [...]}}``: the intervals (START .. END of one
type in one v3 session) that start in [from, to] (unix seconds, the events' own unit), oldest
first, each with start, end and duration (null while open) and its entities (the latest value of
each key over its events). ``GET /api/v1/<projectKey>/v3/totals`` with the same filters answers
``{"data": [{"type", "count", "closed", "totalDuration"}]}``: the report the original's client
apps built by hand (V3.md 8). Authenticated and scoped as every v1 route.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from api import public_v1_schema as schema
from api.errors import json_response, v1_errors
from api.openapi import INTEGER, STRING, Parameter, component, json_object, nullable
from api.public_v1 import (
    V1Error,
    V1ValidationError,
    authorized_project,
    int64_param,
    projection_reader,
)
from projections.v3 import IntervalFilter, V3Entity, V3Interval, V3TypeTotal

bp = Blueprint("public_v1_v3", __name__, url_prefix="/api/v1")

LIMIT_DEFAULT = 100
LIMIT_MAX = 1000
_NUMBER = {"type": "number"}

_ENTITY = json_object({"key": STRING, "value": {}}, ["key", "value"])
V3_INTERVAL = component(
    "V3Interval",
    json_object(
        {
            "startEventId": {**INTEGER, "description": "The START's event id"},
            "endEventId": nullable(INTEGER),
            "aid": INTEGER,
            "user": STRING,
            "session": STRING,
            "type": STRING,
            "start": {**_NUMBER, "description": "The START's timestamp (unix seconds)"},
            "end": nullable(_NUMBER),
            "duration": {**nullable(_NUMBER), "description": "end - start, seconds; null: open"},
            "entities": {"type": "array", "items": _ENTITY},
        },
        [
            "startEventId",
            "endEventId",
            "aid",
            "user",
            "session",
            "type",
            "start",
            "end",
            "duration",
            "entities",
        ],
    ),
)
V3_INTERVAL_PAGE = component(
    "V3IntervalPage",
    json_object(
        {
            "total": {**INTEGER, "minimum": 0, "description": "Intervals matching the filters"},
            "page": {**INTEGER, "minimum": 1},
            "limit": {**INTEGER, "minimum": 1, "maximum": LIMIT_MAX},
            "intervals": {"type": "array", "items": V3_INTERVAL},
        },
        ["total", "page", "limit", "intervals"],
    ),
)
V3_TYPE_TOTAL = component(
    "V3TypeTotal",
    json_object(
        {
            "type": STRING,
            "count": {**INTEGER, "minimum": 0, "description": "Intervals, open ones included"},
            "closed": {**INTEGER, "minimum": 0, "description": "Intervals with an END"},
            "totalDuration": {**_NUMBER, "description": "Sum of the closed ones' durations (s)"},
        },
        ["type", "count", "closed", "totalDuration"],
    ),
)
_FILTERS = [
    schema.PROJECT_KEY,
    Parameter("type", "query", STRING, "Only intervals of this event type"),
    Parameter("user", "query", STRING, "Only this v3 user's intervals"),
    Parameter("from", "query", schema.INT64, "Earliest interval start (unix seconds, inclusive)"),
    Parameter("to", "query", schema.INT64, "Latest interval start (unix seconds, inclusive)"),
]


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


def _filters() -> IntervalFilter:
    args = request.args
    return IntervalFilter(
        type=args.get("type") or None,
        user=args.get("user") or None,
        start=int64_param(args.get("from"), ["query", "from"]),
        end=int64_param(args.get("to"), ["query", "to"]),
    )


def _bounded(name: str, default: int, maximum: int | None) -> int:
    value = int64_param(request.args.get(name), ["query", name])
    if value is None:
        return default
    if value < 1 or (maximum is not None and value > maximum):
        top = "" if maximum is None else f" and at most {maximum}"
        raise V1ValidationError(["query", name], f"Input should be at least 1{top}")
    return value


def _entity_json(entity: V3Entity) -> dict[str, Any]:
    return {"key": entity.key, "value": entity.value}


def interval_json(interval: V3Interval) -> dict[str, Any]:
    """One interval of the list."""
    return {
        "startEventId": interval.start_event_id,
        "endEventId": interval.end_event_id,
        "aid": interval.aid,
        "user": interval.user,
        "session": interval.session,
        "type": interval.type,
        "start": interval.start,
        "end": interval.end,
        "duration": interval.duration,
        "entities": [_entity_json(e) for e in interval.entities],
    }


def total_json(total: V3TypeTotal) -> dict[str, Any]:
    """One type's totals."""
    return {
        "type": total.type,
        "count": total.count,
        "closed": total.closed,
        "totalDuration": total.total_duration,
    }


@bp.get("/<project_key>/v3/intervals")
@schema.v1_operation(
    "Intervals (START .. END) of the project's v3 sessions, oldest start first, paged",
    parameters=[
        *_FILTERS,
        Parameter("page", "query", {**INTEGER, "minimum": 1}, "The page, from 1"),
        Parameter(
            "limit",
            "query",
            {**INTEGER, "minimum": 1, "maximum": LIMIT_MAX},
            f"Intervals a page (default {LIMIT_DEFAULT})",
        ),
    ],
    responses=schema.replies(
        schema.data_reply("A page of intervals", V3_INTERVAL_PAGE), 401, 404, 422
    ),
)
async def v3_intervals(project_key: str) -> Response:
    project = await authorized_project(project_key)
    filters = _filters()
    page = _bounded("page", 1, None)
    limit = _bounded("limit", LIMIT_DEFAULT, LIMIT_MAX)
    total, rows = await projection_reader().v3_intervals(
        project.project_id, filters, limit=limit, offset=(page - 1) * limit
    )
    body = {
        "total": total,
        "page": page,
        "limit": limit,
        "intervals": [interval_json(i) for i in rows],
    }
    return json_response({"data": body})


@bp.get("/<project_key>/v3/totals")
@schema.v1_operation(
    "Per event type: how many intervals, how many closed, and their total duration",
    parameters=_FILTERS,
    responses=schema.replies(
        schema.list_reply("The totals, by type", V3_TYPE_TOTAL), 401, 404, 422
    ),
)
async def v3_totals(project_key: str) -> Response:
    project = await authorized_project(project_key)
    rows = await projection_reader().v3_totals(project.project_id, _filters())
    return json_response({"data": [total_json(t) for t in rows]})
