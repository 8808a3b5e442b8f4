"""Errors the API answers with, as JSON ``{"error": "..."}`` (the reference backend's shape)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from quart import Response


class ApiError(Exception):
    """Raised by a handler to answer ``status`` with ``{"error": message}`` (plus ``headers``)."""

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


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status``."""
    return json_response({"error": message}, status, headers)


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (at least 1: a 0 would invite a hot retry loop)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
