"""Errors the API answers with: one JSON envelope per API generation, chosen by the path.

* The public API v1 (everything under ``/api/v1``) answers ``{"errors": ["..."]}``, the reference
  v1's envelope, for every error: its own (401, 404 "project not found.", 400), validation (422,
  each message naming the field), unknown routes (404), wrong methods (405), oversized bodies
  (413), overload and storage trouble (503) and 500. (The reference answered FastAPI's
  ``{"detail": ...}`` for its 422s and unknown routes; one envelope is simpler to use.)
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


Envelope = Callable[[str], dict[str, Any]]
# Path prefix -> the envelope of the API generation mounted there; any other path: plain_error.
ENVELOPES: tuple[tuple[str, Envelope], ...] = ((V1_PREFIX, v1_errors),)


def envelope_for(path: str) -> Envelope:
    """The error envelope of the API generation that serves ``path``."""
    for prefix, envelope in ENVELOPES:
        if path == prefix or path.startswith(prefix + "/"):
            return envelope
    return plain_error


def error_body(path: str, message: str) -> dict[str, Any]:
    """The JSON body of an error on ``path``."""
    return envelope_for(path)(message)


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None, *, path: str = ""
) -> Response:
    """An error answer with ``status`` in the envelope of ``path`` (``{"error": message}`` when
    no path is given: the ingest routes' own answers)."""
    return json_response(error_body(path, message), status, headers)


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (at least 1: a 0 would invite a hot retry loop)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
