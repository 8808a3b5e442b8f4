"""The public API v1's one session: ``GET /api/v1/<projectKey>/sessions/<sessionId>``.

Not a route of the reference's public v1 (its dashboard read sessions through its private app
API); ours, so the dashboard's session page reads a session's metadata through the public API like
everything else. Answers the session object of API.md 2.5 (``sessionId`` a string, every start
fact under its public key, the counts, ``issueTypes``, ``metadata``) plus ``live`` and
``pageTitle``; 404 ``session not found.`` for a session the project does not have. Authenticated
and scoped by :func:`api.public_v1.authorized_project`.
"""

from __future__ import annotations

from typing import Any

import attrs
from quart import Blueprint, Response

from api import public_v1_schema as schema
from api.errors import json_response, v1_errors
from api.openapi import BOOLEAN, INTEGER, STRING, component, json_object
from api.public_v1 import V1Error, authorized_project, path_session_id, projection_reader
from engine.start_info import SESSION_VIEW, StartInfo, start_field
from projections.sessions import SessionRow, country_or_unknown

bp = Blueprint("public_v1_session", __name__, url_prefix="/api/v1")

_TYPES = {"str": STRING, "str | None": schema.NULLABLE_STRING, "int": INTEGER, "bool": BOOLEAN}
SESSION = component(
    "Session",
    json_object(
        {
            "sessionId": STRING,
            "projectId": INTEGER,
            "startTs": INTEGER,
            "duration": schema.NULLABLE_INTEGER,
            "live": BOOLEAN,
            **{start_field(f).json: _TYPES[str(f.type)] for f in attrs.fields(StartInfo)},
            "userAnonymousId": schema.NULLABLE_STRING,
            "pageTitle": STRING,
            "pagesCount": INTEGER,
            "eventsCount": INTEGER,
            "errorsCount": INTEGER,
            "issueTypes": {"type": "array", "items": STRING},
            "issueScore": INTEGER,
            "metadata": {"type": "object", "additionalProperties": STRING},
        },
        ["sessionId", "projectId", "startTs", "duration", "live"],
    ),
)


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


def session_json(row: SessionRow) -> dict[str, Any]:
    """A session object (API.md 2.5) of a sessions row."""
    start = SESSION_VIEW.json(row)
    start["userCountry"] = country_or_unknown(start["userCountry"])
    return {
        "sessionId": str(row.session_id),
        "projectId": row.project_id,
        "startTs": row.start_ts,
        "duration": row.duration,
        "live": row.live,
        **start,
        "userAnonymousId": row.user_anonymous_id,
        "pageTitle": row.page_title,
        "pagesCount": row.pages_count,
        "eventsCount": row.events_count,
        "errorsCount": row.errors_count,
        "issueTypes": list(row.issue_types),
        "issueScore": row.issue_score,
        "metadata": dict(row.metadata),
    }


@bp.get("/<project_key>/sessions/<session_id>")
@schema.v1_operation(
    "One session: its metadata and counts (API.md 2.5)",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID],
    responses=schema.replies(schema.data_reply("The session", SESSION), 401, 404, 422),
)
async def get_session(project_key: str, session_id: str) -> Response:
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    row = None if sid is None else await projection_reader().session(project.project_id, sid)
    if row is None:
        raise V1Error(404, "session not found.")
    return json_response({"data": session_json(row)})
