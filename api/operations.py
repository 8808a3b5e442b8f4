"""Operations routes: ``/healthz``, ``/readyz``, ``/metrics`` and ``/api/v1/dead-letters``.

* ``GET /healthz``: the process is up and its event loop answers (no database work).
* ``GET /readyz``: 200 when this process can take traffic, else 503 with the reasons: its log
  writer stopped or fails to write, the projector fails to write (only where it runs), or the
  engine is further behind the log than ``ready_max_lag_records`` / ``ready_max_lag_seconds``.
  The body always carries the figures (see :mod:`api.health`).
* ``GET /metrics``: the Prometheus text format (see :mod:`api.metrics`).
* ``GET /api/v1/dead-letters?projectKey=&limit=``: the records the engine parked, newest first,
  with their total, for the organization of the API key (public API v1 authentication; a key
  sees only its organization's projects).

Every app that serves HTTP gets this blueprint and :func:`install`; with ``serve --workers N``
these are the ingest processes, each answering for itself (the engine process serves no HTTP).
No SQL here: the reads are :mod:`projections.reader`'s and :class:`storage.log.LogReader`'s.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, g, request
from quart_trio import QuartTrio

from api import public_v1
from api import public_v1_schema as schema
from api.config import ServerConfig
from api.errors import json_response
from api.health import EngineFigures, FiguresSource, log_writer_running, readiness_problems
from api.metrics import CONTENT_TYPE, Metrics, Snapshot
from api.openapi import (
    INTEGER,
    STRING,
    Parameter,
    Reply,
    component,
    json_object,
    json_reply,
    nullable,
    operation,
)

# The public API v1's key check and error answers, shared rather than copied (same rules).
from api.public_v1 import (
    V1Error,
    V1ValidationError,
    _int_param,
    _organization,
    _project,
    _v1_error,
)
from projections.dead_letters import DeadLetter
from projections.live_sessions import LiveSessions
from projections.pipeline import Projector
from projections.reader import ProjectionReader
from storage.log import EventLog

logger = logging.getLogger(__name__)

EXTENSION_KEY = "replayd.operations"
# Where the engine runs (not in the ingest processes of --workers): its projector and supervisor,
# handed in by the runtime's projection service (api.surfaces), for /readyz and /metrics.
PROJECTOR_KEY = "replayd.projector"
SUPERVISOR_KEY = "replayd.supervisor"
DEAD_LETTERS_LIMIT = 100
DEAD_LETTERS_LIMIT_MAX = 1000

bp = Blueprint("operations", __name__)

_OPS_TAGS = ("operations",)
_HEALTH = component("Health", json_object({"status": STRING}, ["status"]))
_READINESS = component(
    "Readiness",
    json_object(
        {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "reasons": {"type": "array", "items": STRING},
            "head": INTEGER,
            "checkpoint": INTEGER,
            "lagRecords": INTEGER,
            "lagSeconds": {"type": "number"},
            "deadLetters": INTEGER,
            "liveSessions": nullable(INTEGER),
        },
        ["status", "reasons", "liveSessions"],
    ),
)
_DEAD_LETTER = component(
    "DeadLetter",
    json_object(
        {
            "position": INTEGER,
            "sessionId": STRING,
            "projectId": INTEGER,
            "stage": STRING,
            "error": STRING,
            "at": INTEGER,
        },
        ["position", "sessionId", "projectId", "stage", "error", "at"],
    ),
)
_DEAD_LETTERS = json_object(
    {"total": INTEGER, "deadLetters": {"type": "array", "items": _DEAD_LETTER}},
    ["total", "deadLetters"],
)
bp.register_error_handler(V1Error, _v1_error)  # V1ValidationError (422) is one


@attrs.define(slots=True, eq=False)
class Operations:
    """What these routes use: the settings, this process's log, the figures and the metrics."""

    config: ServerConfig
    log: EventLog
    reader: ProjectionReader
    figures: FiguresSource
    metrics: Metrics = attrs.field(factory=Metrics)

    def close(self) -> None:
        """Close the database connections (after serving)."""
        self.figures.close()
        self.reader.close()


def install(app: QuartTrio, config: ServerConfig, log: EventLog) -> None:
    """Give the blueprint its objects (the blueprint itself is registered by ``serve``)."""
    reader = ProjectionReader(config.projections_db_path)
    app.extensions[EXTENSION_KEY] = Operations(
        config=config, log=log, reader=reader, figures=FiguresSource(log.path, reader)
    )


def _operations() -> Operations:
    return current_app.extensions[EXTENSION_KEY]


@bp.after_app_serving
async def _close_figures() -> None:
    operations = current_app.extensions.get(EXTENSION_KEY)
    if operations is not None:
        operations.close()


# -- request metrics (every route of the app) ------------------------------------------------------


@bp.before_app_request
async def _start_timer() -> None:
    g.replayd_started = time.perf_counter()


@bp.after_app_request
async def _count_request(response: Response) -> Response:
    operations = current_app.extensions.get(EXTENSION_KEY)
    if operations is not None:
        started = getattr(g, "replayd_started", None)
        rule = request.url_rule
        operations.metrics.observe(
            None if rule is None else rule.rule,
            request.method,
            response.status_code,
            None if started is None else time.perf_counter() - started,
        )
    return response


# -- health, readiness, metrics --------------------------------------------------------------------


@bp.get("/healthz")
@operation(
    "Liveness: the process answers",
    tags=_OPS_TAGS,
    responses={200: json_reply("Alive", _HEALTH)},
)
async def healthz() -> Response:
    """200 while the process answers; nothing else is checked (that is /readyz)."""
    return json_response({"status": "ok"})


def _projector() -> Projector | None:
    return current_app.extensions.get(PROJECTOR_KEY)  # only where the engine runs


def _live_sessions() -> int | None:
    live: LiveSessions | None = current_app.extensions.get(public_v1.LIVE_SESSIONS_KEY)
    return None if live is None else len(live)


async def _read_figures(operations: Operations) -> tuple[EngineFigures | None, str | None]:
    try:
        return await operations.figures.read(), None
    except sqlite3.Error as error:
        # A database that cannot even be read makes this process not ready; it must not 500.
        logger.warning("cannot read the engine's progress: %s", error)
        return None, str(error)


@bp.get("/readyz")
@operation(
    "Readiness: the log is writable, the projector writes and the engine keeps up",
    tags=_OPS_TAGS,
    responses={
        200: json_reply("Ready, with the figures", _READINESS),
        503: json_reply("Not ready: the reasons and the figures", _READINESS),
    },
)
async def readyz() -> Response:
    """200 when ready, else 503; both with the reasons and the figures (module docstring)."""
    operations = _operations()
    figures, figures_error = await _read_figures(operations)
    projector = _projector()
    problems = readiness_problems(
        operations.config,
        writer_running=await log_writer_running(operations.log),
        log_write_error=operations.log.statistics().write_error,
        projector_write_error=None if projector is None else projector.statistics.write_error,
        figures=figures,
        figures_error=figures_error,
    )
    body: dict[str, Any] = {"status": "not ready" if problems else "ready", "reasons": problems}
    if figures is not None:
        body |= {
            "head": figures.head,
            "checkpoint": figures.checkpoint,
            "lagRecords": figures.lag_records,
            "lagSeconds": figures.lag_seconds,
            "deadLetters": figures.dead_letters,
        }
    body["liveSessions"] = _live_sessions()
    return json_response(body, 503 if problems else 200)


@bp.get("/metrics")
@operation(
    "This process's metrics in the Prometheus text format",
    tags=_OPS_TAGS,
    responses={200: Reply("Prometheus text exposition", {"text/plain": STRING})},
)
async def metrics() -> Response:
    """The Prometheus text format of this process's metrics."""
    operations = _operations()
    figures, _ = await _read_figures(operations)
    supervisor = current_app.extensions.get(SUPERVISOR_KEY)
    projector = _projector()
    text = operations.metrics.render(
        Snapshot(
            log=operations.log.statistics(),
            figures=figures,
            live_sessions=_live_sessions(),
            supervisor=None if supervisor is None else supervisor.statistics(),
            projector=None if projector is None else projector.statistics,
        )
    )
    return Response(text, status=200, content_type=CONTENT_TYPE)


# -- dead letters (public API v1 authentication) ---------------------------------------------------


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A parked record as the API lists it (session ids as strings, like every v1 answer)."""
    return {
        "position": letter.position,
        "sessionId": str(letter.session_id),
        "projectId": letter.project_id,
        "stage": letter.stage,
        "error": letter.error,
        "at": letter.at,
    }


@bp.get("/api/v1/dead-letters")
@schema.v1_operation(
    "The records and events parked as dead letters (invariant 8), newest first",
    parameters=[
        Parameter(
            "projectKey", "query", description="Only this project's (else the organization's)"
        ),
        Parameter(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": DEAD_LETTERS_LIMIT_MAX},
            f"At most this many (default {DEAD_LETTERS_LIMIT})",
        ),
    ],
    responses=schema.replies(
        schema.data_reply("The count and the newest", _DEAD_LETTERS), 401, 404, 422
    ),
)
async def dead_letters() -> Response:
    """``{"data": {"total", "deadLetters"}}``: one project's (``projectKey``) or all of the
    organization's parked records, newest first, at most ``limit``."""
    org_id = await _organization()
    limit = _int_param(request.args.get("limit"), ["query", "limit"])
    if limit is None:
        limit = DEAD_LETTERS_LIMIT
    if not 1 <= limit <= DEAD_LETTERS_LIMIT_MAX:
        raise V1ValidationError(["query", "limit"], f"Input should be 1..{DEAD_LETTERS_LIMIT_MAX}")
    project_key = request.args.get("projectKey")
    if project_key:
        project_ids = [(await _project(org_id, project_key)).project_id]
    else:
        catalog = current_app.extensions[public_v1.EXTENSION_KEY].catalog
        projects = await trio.to_thread.run_sync(catalog.list_projects, org_id)
        project_ids = [p.project_id for p in projects]
    total, letters = await _operations().reader.dead_letters_in(project_ids, limit=limit)
    return json_response(
        {"data": {"total": total, "deadLetters": [dead_letter_json(d) for d in letters]}}
    )
