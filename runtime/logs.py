"""What the server says: the logging set-up of a process (text or JSON lines) and the access log.

Every part logs through the stdlib ``logging`` with a module logger; what a line is *about* goes
in ``extra={...}`` (session_id, project_id, status, ...) as well as in its message. The text
format shows the message; the JSON format (``serve --log-format json``) writes one object per
line with ``time``, ``level``, ``logger``, ``message`` and those fields, for a log shipper.

The access log replaces Hypercorn's (whose lines are Apache-style text only): one INFO line per
answered request on the ``replayd.access`` logger, with method, path, status, bytes, ms and
client. Off with ``serve --no-access-log``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import hypercorn.config
import hypercorn.logging

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


class AccessLog(hypercorn.logging.Logger):
    """Hypercorn's logger with our access line (structured, on ``replayd.access``)."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        if response is None or not access_logger.isEnabledFor(logging.INFO):
            # None: Hypercorn saw the connection close before the answer was sent. That also
            # happens just before it sends an answer after all (a line "0" then a line "200" for
            # one request), and a client that really went away is logged by api.disconnects.
            return
        status = response["status"]
        size = "-"
        for name, value in response.get("headers", ()):
            if name.lower() == b"content-length":
                size = value.decode("latin-1")
        client = request.get("client")
        address = client[0] if client else "-"
        method = request.get("method", "GET")  # a WebSocket scope has none
        path = request.get("path", "")  # no query string: it may carry what logs must not keep
        ms = round(request_time * 1000, 1)
        access_logger.info(
            "%s %s %s %s B %.1f ms %s",
            method,
            path,
            status,
            size,
            ms,
            address,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "bytes": int(size) if size.isdigit() else None,
                "ms": ms,
                "client": address,
            },
        )


def use_access_log(hc: hypercorn.config.Config, enabled: bool) -> None:
    """Log each answered request through :class:`AccessLog` (or not at all)."""
    hc.accesslog = access_logger if enabled else None
    if enabled:
        hc.logger_class = AccessLog
