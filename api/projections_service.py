"""The server service that keeps the projections current: engine supervisor -> projector.

Started by ``api.server.serve`` before the HTTP listener opens. It opens the projector (which
takes the projections' write lock and reloads the live sessions), resumes the engine supervisor
after the projections' lowest checkpoint, feeds it the log's live tail, appends clock ticks while
sessions are live, and hands the routes what they read: the projection reader and the live
sessions (``app.extensions``). Cancelling it (server shutdown) stops the supervisor, then closes
the projector (releasing the lock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from api import ingest_web, public_v1
from engine.supervisor import (
    DEFAULT_INACTIVITY_TIMEOUT_MS,
    Supervisor,
    clock_ticker,
    history_from_reader,
    resume_point,
    wall_clock_ms,
)
from projections.live_sessions import LiveSessions
from projections.pipeline import Projector
from projections.reader import ProjectionReader
from storage.catalog import Catalog
from storage.log import LogReader

PROJECTOR_KEY = "replayd.projector"
LIVE_SESSIONS_KEY = "replayd.live_sessions"
CLOCK_TICK_INTERVAL_S = 10.0
# A server restarted on the same file waits this long for its predecessor to let go of the
# projections (a running rebuild, or a previous server still shutting down).
LOCK_WAIT_S = 15.0


def _project_key_resolver(catalog: Catalog) -> Any:
    def project_key_of(project_id: int) -> str:
        # The catalog answers from its in-memory cache (warmed at start-up below), so this does
        # not touch SQLite on the trio thread in practice; the live sessions cache it again.
        project = catalog.get_project(project_id)
        return project.project_key if project is not None else ""

    return project_key_of


def _quiet_with_live_sessions(log: Any, supervisor: Supervisor) -> Callable[[], bool]:
    """Tick only when sessions are live AND no record arrived since the previous check.

    Any record moves the log clock forward as well as a tick does; a busy log needs no ticks.
    """
    last_head = log.head()

    def should_tick() -> bool:
        nonlocal last_head
        head = log.head()
        quiet, last_head = head == last_head, head
        return quiet and supervisor.has_live_sessions()

    return should_tick


def _record_clock(app: Any) -> Callable[[], int]:
    """The clock that stamps the ingest's records: ticks must be in the same record time."""
    ingest = app.extensions.get(ingest_web.EXTENSION_KEY)
    return ingest.clock if ingest is not None else wall_clock_ms


async def projections_service(
    ctx: Any,  # api.server.ServiceContext (not imported: server imports this module)
    *,
    inactivity_timeout_ms: int = DEFAULT_INACTIVITY_TIMEOUT_MS,
    tick_interval_s: float = CLOCK_TICK_INTERVAL_S,
    task_status: trio.TaskStatus[Projector] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the projector and the engine supervisor until cancelled (see the module docstring)."""
    db_path = ctx.config.db_path
    await trio.to_thread.run_sync(ctx.catalog.list_projects)  # warms the catalog's project cache
    live = LiveSessions(project_key_of=_project_key_resolver(ctx.catalog))
    reader = ProjectionReader(db_path)
    history = await trio.to_thread.run_sync(LogReader, db_path)
    try:
        projector = Projector(db_path, live=live, holder="server", lock_wait_s=LOCK_WAIT_S)
        async with projector, trio.open_nursery() as nursery:
            await nursery.start(projector.write_behind)
            after = projector.resume_position
            resume = (
                await resume_point(history, after, inactivity_timeout_ms) if after > 0 else None
            )
            supervisor = Supervisor(
                history=history_from_reader(history),
                sink=projector.sink,
                inactivity_timeout_ms=inactivity_timeout_ms,
            )
            public_v1.install(ctx.app, ctx.catalog, reader)
            ctx.app.extensions[PROJECTOR_KEY] = projector
            ctx.app.extensions[LIVE_SESSIONS_KEY] = live
            # The supervisor stops before the tail closes, and both before the projector.
            async with (
                contextlib.aclosing(ctx.log.tail(after)) as source,
                trio.open_nursery() as engine_nursery,
            ):
                await engine_nursery.start(
                    lambda task_status: supervisor.run(
                        source, resume=resume, task_status=task_status
                    )
                )
                engine_nursery.start_soon(
                    partial(
                        clock_ticker,
                        ctx.log,
                        tick_interval_s,
                        _quiet_with_live_sessions(ctx.log, supervisor),
                        now_ms=_record_clock(ctx.app),
                    )
                )
                task_status.started(projector)
    finally:
        reader.close()
        history.close()
