"""The OpenAPI schemas and answers of the web ingest routes (:mod:`api.ingest_web`).

Errors are ``{"error": "..."}``. The tracker treats 401 as "start again"; every other error is
retried (PROTOCOL.md 3 and 4).
"""

from __future__ import annotations

from typing import Any

from api.openapi import (
    BOOLEAN,
    INTEGER,
    RETRY_AFTER,
    SESSION_TOKEN,
    STRING,
    Parameter,
    Reply,
    component,
    error_reply,
    json_object,
    json_reply,
    nullable,
)

TAGS = ("web ingest",)
TOKEN = (SESSION_TOKEN,)

_INT64 = 1 << 63
# Numbers of a start request: any JSON number that fits int64 once truncated.
NULLABLE_NUMBER = nullable({"type": "number", "minimum": -_INT64, "exclusiveMaximum": _INT64})
NULLABLE_STRING = nullable(STRING)
NULLABLE_BOOLEAN = nullable(BOOLEAN)

START_REQUEST = component(
    "StartRequest",
    json_object(
        {
            "projectKey": STRING,
            "trackerVersion": STRING,
            "token": NULLABLE_STRING,
            "reset": NULLABLE_BOOLEAN,
            "userUUID": NULLABLE_STRING,
            "userID": NULLABLE_STRING,
            "revID": NULLABLE_STRING,
            "isSnippet": NULLABLE_BOOLEAN,
            "timestamp": NULLABLE_NUMBER,
            "doNotRecord": NULLABLE_BOOLEAN,
            "bufferDiff": NULLABLE_NUMBER,
            "deviceMemory": NULLABLE_NUMBER,
            "jsHeapSizeLimit": NULLABLE_NUMBER,
            "timezone": NULLABLE_STRING,
            "width": NULLABLE_NUMBER,
            "height": NULLABLE_NUMBER,
            "referrer": NULLABLE_STRING,
        },
        ["projectKey", "trackerVersion"],
    ),
)
START_ANSWER = component(
    "StartAnswer",
    json_object(
        {
            "token": STRING,
            "userUUID": STRING,
            "sessionID": {"type": "string", "pattern": "^[0-9]+$"},
            "projectID": STRING,
            "beaconSizeLimit": INTEGER,
            "compressionThreshold": INTEGER,
            "startTimestamp": INTEGER,
            "delay": INTEGER,
            "timestamp": INTEGER,
            "protocolVersion": INTEGER,
        },
        ["token", "userUUID", "sessionID", "projectID", "startTimestamp", "delay"],
    ),
)

BAD_REQUEST = error_reply("Malformed body, header or parameter")
UNAUTHORIZED = error_reply("No, an invalid or an expired session token: start again")
NOT_FOUND = error_reply("No such path")
TIMEOUT = error_reply("The body was not received in time")
TOO_LARGE = error_reply("The body (or its gunzipped form) is over the limit")
UNSUPPORTED_ENCODING = error_reply("A Content-Encoding other than gzip")
BUSY = error_reply("The log is busy, full or shutting down: retry later", Retry_After=RETRY_AFTER)
STORE_FAILED = error_reply("The log could not store the data")
_SHARED = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    404: NOT_FOUND,
    408: TIMEOUT,
    413: TOO_LARGE,
    415: UNSUPPORTED_ENCODING,
    500: STORE_FAILED,
    503: BUSY,
}


def replies(ok: Reply, *statuses: int, **special: Reply) -> dict[int, Reply]:
    """``{200: ok}``, the shared error answers named by ``statuses``, and route-specific ones
    (``special`` keyed ``s403`` for 403)."""
    out = {200: ok, **{status: _SHARED[status] for status in statuses}}
    out.update({int(key.removeprefix("s")): reply for key, reply in special.items()})
    return out


def listing(key: str) -> Reply:
    """The ``{"<key>": []}`` answer of the tracker's small endpoints."""
    schema: dict[str, Any] = json_object({key: {"type": "array", "maxItems": 0}}, [key])
    return json_reply(f"No {key}", schema)


# The JSON endpoints accept a gzipped body too (Content-Encoding: gzip).
START_BODY = {"application/json": START_REQUEST}
BATCH_BODY = {"application/octet-stream": {"type": "string", "format": "binary"}}
NOT_STARTED_BODY = {
    "application/json": json_object(
        {"projectKey": {}, "trackerVersion": {}, "reason": {}},
    )
}
EMPTY_OK = Reply("Stored (after the log committed it)")
DATA_TYPE = Parameter(
    "DataType",
    "header",
    {"enum": ["", "all", "player", "devtools", "analytics", "assets", "visual"]},
    "The stream of the batch (any case; none means player)",
)
BATCH = Parameter("batch", "query", description="`<pageNo>_<batchNo>_...`: the dedupe counters")
SPLIT = Parameter(
    "split",
    "query",
    description="For a visual batch (a number inside the batch): where its player part ends and "
    "its assets begin; other batches ignore it",
)
CONDITIONS_PROJECT = Parameter(
    "project_id", "path", {"type": "integer", "minimum": 0}, "The project's id"
)
