"""What the server says: the logging set-up of a process (text or JSON lines) and the access log.

Every part logs through the stdlib ``logging`` with a module logger; what a line is *about* goes
in ``extra={...}`` (session_id, project_id, status, ...) as well as in its message. The text
format shows the message; the JSON format (``serve --log-format json``) writes one object per
line with ``time``, ``level``, ``logger``, ``message`` and those fields, for a log shipper.

The access log replaces Hypercorn's (whose lines are Apache-style text only, and whose hook misses
answers to clients that close as the answer goes out): :func:`access_logged` wraps the ASGI app and
writes one INFO line per request on the ``replayd.access`` logger, with method, path, status,
bytes, ms and client. Off with ``serve --no-access-log``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

access_logger = logging.getLogger("replayd.access")

# The attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, extra fields."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = dict(static or {})  # e.g. {"process": "ingest-1"} in --workers children

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text", *, process: str = "") -> None:
    """Send every logger's records of ``level`` and above to stderr in ``log_format``.

    ``process`` names a child of ``serve --workers`` (``ingest-1``) in each of its lines.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter({"process": process} if process else None))
    else:
        prefix = f"{process} " if process else ""
        handler.setFormatter(
            logging.Formatter(TEXT_FORMAT.replace("%(name)s", prefix + "%(name)s"))
        )
    logging.basicConfig(level=level, handlers=[handler], force=True)


def access_logged(app: Any) -> Any:
    """The ASGI ``app``, logging one line per HTTP request once it is answered (or abandoned).

    Here rather than Hypercorn's access hook: that hook is skipped, or called without the
    answer, when the client closes its connection as the answer goes out (an ``httpx.post``
    does), so a request could be logged twice or not at all.
    """

    async def logged(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not access_logger.isEnabledFor(logging.INFO):
            await app(scope, receive, send)
            return
        began = time.perf_counter()
        answer = {"status": 0, "bytes": 0}

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:  # also when the client went away (cancelled) or the app failed (Hypercorn: 500)
            _log_access(scope, answer["status"], answer["bytes"], time.perf_counter() - began)

    return logged


def _log_access(scope: dict[str, Any], status: int, size: int, seconds: float) -> None:
    client = scope.get("client")
    address = client[0] if client else "-"
    method = scope.get("method", "GET")
    path = scope.get("path", "")  # no query string: it may carry what logs must not keep
    ms = round(seconds * 1000, 1)
    access_logger.info(
        "%s %s %s %d B %.1f ms %s",
        method,
        path,
        status or "-",  # "-": no answer started (the client went away first)
        size,
        ms,
        address,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "bytes": size,
            "ms": ms,
            "client": address,
        },
    )
