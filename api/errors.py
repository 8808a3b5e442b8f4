"""Errors the API answers with: one JSON envelope per API generation, chosen by the path.

* The public API v1 (everything under ``/api/v1``) answers ``{"errors": ["..."]}``, the reference
  v1's envelope, for every error: its own (401, 404 "project not found.", 400), validation (422,
  each message naming the field), unknown routes (404), wrong methods (405), oversized bodies
  (413), overload and storage trouble (503) and 500. (The reference answered FastAPI's
  ``{"detail": ...}`` for its 422s and unknown routes; one envelope is simpler to use.)
* The version 3 events API (``/3/*``) answers ``{"APIVersion":3,"result":0,"reason":"...",
  "code":"..."}`` (V3.md 9.2): its own errors carry their code (``api.v3``); the others (unknown
  interface, wrong method, oversized body, overload) a code of their status.
* The public API v2 (``/v2/api/public/*``, ``/public/*``) answers ``{"error": "..."}``, the
  reference v2's envelope (its own 401s have no body, :mod:`api.public_v2`).
* Everything else (web ingest ``/v1/web/*``, operations, the OpenAPI document, unknown paths
  outside ``/api/v1``) answers ``{"error": "..."}``, the reference backend's Go envelope (the
  tracker reads only the status).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from quart import Response

V1_PREFIX = "/api/v1"


class ApiError(Exception):
    """Raised by a handler to answer ``status`` with ``message`` (plus ``headers``) in the
    envelope of the request's path."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response with keys in the order given (people reading it care, the tracker not)."""
    response = Response(
        json.dumps(body, separators=(",", ":")), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def plain_error(message: str) -> dict[str, Any]:
    """``{"error": message}``: ingest, operations and everything outside ``/api/v1``."""
    return {"error": message}


def v1_errors(message: str) -> dict[str, Any]:
    """``{"errors": [message]}``: the public API v1."""
    return {"errors": [message]}


V3_PREFIX = "/3"
# The v3 error code of an answer that no v3 route chose (the route's own errors carry theirs).
V3_STATUS_CODES = {
    400: "bad_request",
    403: "authentication_failed",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    503: "unavailable",
}


def v3_errors(message: str, code: str = "") -> dict[str, Any]:
    """``{"APIVersion":3,"result":0,"reason","code"}``: the v3 events API (V3.md 9.2)."""
    return {"APIVersion": 3, "result": 0, "reason": message, "code": code or "internal_error"}


# The public API v2 (api.public_v2) answers ``{"error": "..."}`` too, as the reference's v2 does.
V2_PREFIXES = ("/v2/api/public", "/public")

Envelope = Callable[[str], dict[str, Any]]
# Path prefix -> the envelope of the API generation mounted there; any other path: plain_error.
ENVELOPES: tuple[tuple[str, Envelope], ...] = (
    (V1_PREFIX, v1_errors),
    (V3_PREFIX, v3_errors),
    *((prefix, plain_error) for prefix in V2_PREFIXES),
)


def envelope_for(path: str) -> Envelope:
    """The error envelope of the API generation that serves ``path``."""
    for prefix, envelope in ENVELOPES:
        if path == prefix or path.startswith(prefix + "/"):
            return envelope
    return plain_error


def error_body(path: str, message: str, status: int = 500) -> dict[str, Any]:
    """The JSON body of an error on ``path`` (``status`` names the code of a v3 error)."""
    envelope = envelope_for(path)
    if envelope is v3_errors:
        return v3_errors(message, V3_STATUS_CODES.get(status, "internal_error"))
    return envelope(message)


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, *, path: str = ""
) -> Response:
    """An error answer with ``status`` in the envelope of ``path`` (``{"error": message}`` when
    no path is given: the ingest routes' own answers)."""
    return json_response(error_body(path, message, status), status, headers)


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (at least 1: a 0 would invite a hot retry loop)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
