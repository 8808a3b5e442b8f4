"""CORS for the ingest routes: the tracker runs on the customer's origin and posts cross-origin.

No credentials are ever sent (tokens travel in ``Authorization``), so ``Allow-Origin: *`` is
enough. The browser preflights with ``Access-Control-Request-Headers`` of ``content-type`` (start),
``authorization`` (tags), ``authorization,datatype`` (batches) and
``authorization,content-encoding,datatype`` (gzipped batches); all are allowed here.
"""

from __future__ import annotations

from collections.abc import Iterable

from quart import Response

ALLOW_ORIGIN = "*"
ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization, Content-Encoding, DataType"
MAX_AGE_SECONDS = 86400


def add_cors_headers(response: Response) -> Response:
    """Set the headers a browser checks on the actual (non-preflight) response."""
    response.headers["Access-Control-Allow-Origin"] = ALLOW_ORIGIN
    return response


def preflight_response() -> Response:
    """The answer to an ``OPTIONS`` preflight (200, empty, cacheable by the browser for a day)."""
    response = Response("", status=200)
    response.headers["Access-Control-Allow-Origin"] = ALLOW_ORIGIN
    response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
    response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
    return response


def is_cors_path(path: str, prefixes: Iterable[str]) -> bool:
    """True when ``path`` is under one of the CORS-enabled ``prefixes``."""
    return any(path.startswith(prefix) for prefix in prefixes)
