"""The server service that keeps the projections current: engine supervisor -> projector.

Started by ``runtime.process.serve`` before the HTTP listener opens. It opens the projector (which
takes the projections' write lock and reloads the live sessions), resumes the engine supervisor
after the projections' lowest checkpoint, feeds it the log's live tail, appends clock ticks while
sessions are live, runs the data lifecycle (:mod:`runtime.erasure`: delete-user jobs, retention),
and hands the HTTP host what its routes read: the projection reader, the
projector, the supervisor and the live sessions (:meth:`runtime.assembly.Host.provide`; the host
decides which surface gets what, this module knows no route). The projections are in
``config.projections_db_path``, a file apart from the log's (``config.db_path``). Cancelling it
(server shutdown) stops the supervisor, then closes the projector (releasing the lock).

With ``serve --workers N`` it runs in the engine process (``ProcessRole.ENGINE``), which serves no
HTTP: appends come from the ingest processes, so it follows the log with
:func:`storage.log.poll_tail` instead of the in-process tail. The ingest processes run
:func:`projection_reader_service` instead: the public API's reads, never the projector or its lock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from functools import partial

import trio

from engine.actor_types import DEFAULT_REGISTRY, ActorRegistry
from engine.events import DomainEvent, RecordParked, SessionEnded, SessionStarted
from engine.supervisor import (
    Sink,
    Supervisor,
    clock_ticker,
    history_from_reader,
    resume_point,
)
from projections.live_sessions import LiveSessions, read_live_update
from projections.pipeline import Projector
from projections.reader import ProjectionReader
from runtime.assembly import EngineObjects, Host, ProcessRole
from runtime.context import ServiceContext
from runtime.erasure import LifecycleExecutor
from storage.catalog import Catalog
from storage.log import poll_tail
from storage.records import LogRecord
from storage.sqlite_recorder import LogReader

logger = logging.getLogger(__name__)

CLOCK_TICK_INTERVAL_S = 10.0
# A server restarted on the same file waits this long for its predecessor to let go of the
# projections (a running rebuild, or a previous server still shutting down).
LOCK_WAIT_S = 15.0
# How often the engine process of ``--workers`` looks for records appended by the ingest
# processes: one rowid seek per poll; bounds the projection lag added by the split.
POLL_INTERVAL_S = 0.05
# How often an ingest process of ``--workers`` brings its live sessions (for Assist) up to date
# with the sessions projection written by the engine process: the staleness of its Assist answers.
LIVE_REFRESH_INTERVAL_S = 1.0


def _project_key_resolver(catalog: Catalog, *, cached_only: bool) -> Callable[[int], str]:
    """A project id -> its key, for the live sessions ("" while unknown: asked again later).

    ``cached_only`` on the trio thread: memory, never SQLite. The cache holds every project that
    existed at start-up (warmed below) and those of the records the tail yields
    (:func:`_known_projects` looks them up in a worker thread first).
    """

    def project_key_of(project_id: int) -> str:
        if cached_only:
            _, project = catalog.cached_project(project_id)
        else:
            project = catalog.get_project(project_id)
        return project.project_key if project is not None else ""

    return project_key_of


async def _known_projects(
    catalog: Catalog, source: AsyncIterable[list[LogRecord]]
) -> AsyncGenerator[list[LogRecord], None]:
    """``source``, with the catalog's cache holding the projects of each list before it goes on.

    A record of a project created after start-up (by the CLI, or through another process of
    ``--workers``) would otherwise be a catalog miss on the trio thread when the live sessions
    resolve its key; the miss is looked up here, in a worker thread.
    """
    async for records in source:
        for project_id in {r.project_id for r in records}:
            known, _ = catalog.cached_project(project_id)
            if not known:
                await trio.to_thread.run_sync(catalog.get_project, project_id)
        yield records


def logging_lifecycle(sink: Sink) -> Sink:
    """``sink``, logging the sessions that start and end and the records the engine parks.

    Here, where each chunk's events go to the projections, and not in the actors: one pass over
    a chunk's events (skipped when INFO is off), not a call per message. Only the live server
    logs; a rebuild replays history without it.
    """

    async def logged(events: list[DomainEvent], upto_position: int) -> None:
        if logger.isEnabledFor(logging.INFO):
            for event in events:
                if type(event) in _LIFECYCLE:
                    _log_lifecycle(event)
        await sink(events, upto_position)

    return logged


_LIFECYCLE = (SessionStarted, SessionEnded, RecordParked)


def _log_lifecycle(event: DomainEvent) -> None:
    fields = {"session_id": event.session_id, "project_id": event.project_id}
    if isinstance(event, SessionStarted):
        start = event.start
        # A browser on web; the SDKs have none, their device (e.g. "iPhone 14 Plus") says more.
        client = f"{start.user_browser} {start.user_browser_version}".strip() or start.user_device
        logger.info(
            "session %d started (project %d, %s: %s on %s, user %r)",
            event.session_id,
            event.project_id,
            start.platform,
            client or "unknown client",
            start.user_os or "unknown OS",
            start.user_id or "",
            extra={**fields, "event": "session_started", "user_id": start.user_id},
        )
    elif isinstance(event, SessionEnded):
        logger.info(
            "session %d ended after %.1f s (project %d)",
            event.session_id,
            event.duration_ms / 1000,
            event.project_id,
            extra={**fields, "event": "session_ended", "duration_ms": event.duration_ms},
        )
    elif isinstance(event, RecordParked):
        logger.warning(
            "parked record at position %d of session %d (%s): %s; see `replayd dead-letters list`",
            event.position,
            event.session_id,
            event.stage,
            event.error,
            extra={**fields, "event": "record_parked", "position": event.position},
        )


def _quiet_with_live_sessions(
    head: Callable[[], int], supervisor: Supervisor
) -> Callable[[], bool]:
    """Tick only when sessions are live AND no record arrived since the previous check.

    Any record moves the log clock forward as well as a tick does; a busy log needs no ticks.
    """
    last_head = head()

    def should_tick() -> bool:
        nonlocal last_head
        now = head()
        quiet, last_head = now == last_head, now
        return quiet and supervisor.has_live_sessions()

    return should_tick


class _SeenPosition:
    """The last position a tail yielded: the log head as the engine process knows it."""

    def __init__(self, position: int) -> None:
        self.position = position

    async def follow(
        self, source: AsyncIterable[list[LogRecord]]
    ) -> AsyncGenerator[list[LogRecord], None]:
        async for records in source:
            self.position = records[-1].position
            yield records


@contextlib.asynccontextmanager
async def log_tail(
    ctx: ServiceContext, after: int
) -> AsyncGenerator[tuple[AsyncIterable[list[LogRecord]], Callable[[], int]], None]:
    """The live tail of the log after ``after`` and a function giving the newest position seen.

    In one process the writer's commits wake the tail; the engine process of ``--workers`` has no
    writer of those records, so it polls the file.
    """
    if ctx.role is not ProcessRole.ENGINE:
        tail = ctx.log.tail(after, max_bytes=ctx.config.engine_read_bytes)
        async with (
            contextlib.aclosing(tail) as raw,
            contextlib.aclosing(_known_projects(ctx.catalog, raw)) as source,
        ):
            yield source, ctx.log.head
        return
    seen = _SeenPosition(after)
    async with (
        contextlib.aclosing(
            poll_tail(
                ctx.config.db_path,
                after,
                POLL_INTERVAL_S,
                max_bytes=ctx.config.engine_read_bytes,
            )
        ) as raw,
        contextlib.aclosing(seen.follow(raw)) as followed,
        contextlib.aclosing(_known_projects(ctx.catalog, followed)) as source,
    ):
        yield source, lambda: seen.position


async def projections_service(
    ctx: ServiceContext,
    *,
    inactivity_timeout_ms: int | None = None,
    registry: ActorRegistry = DEFAULT_REGISTRY,
    tick_interval_s: float = CLOCK_TICK_INTERVAL_S,
    task_status: trio.TaskStatus[Projector] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the projector and the engine supervisor until cancelled (see the module docstring).

    ``inactivity_timeout_ms``: the configuration's (``serve --inactivity-timeout-ms``) unless given.
    """
    if inactivity_timeout_ms is None:
        inactivity_timeout_ms = ctx.config.inactivity_timeout_ms
    # Two files: the log (read here, appended by the log writer) and the projections (written
    # by the projector), so the log writer never waits for the projector's write lock.
    db_path = ctx.config.db_path
    projections_path = ctx.config.projections_db_path
    await trio.to_thread.run_sync(ctx.catalog.list_projects)  # warms the catalog's project cache
    live = LiveSessions(project_key_of=_project_key_resolver(ctx.catalog, cached_only=True))
    reader = ProjectionReader(projections_path)
    history = await trio.to_thread.run_sync(LogReader, db_path)
    try:
        projector = Projector(projections_path, live=live, holder="server", lock_wait_s=LOCK_WAIT_S)
        async with projector, trio.open_nursery() as nursery:
            await nursery.start(projector.write_behind)
            after = projector.resume_position
            resume = (
                await resume_point(history, after, inactivity_timeout_ms, registry)
                if after > 0
                else None
            )
            supervisor = Supervisor(
                history=history_from_reader(history),
                sink=logging_lifecycle(projector.sink),
                inactivity_timeout_ms=inactivity_timeout_ms,
                mailbox_bytes=ctx.config.mailbox_bytes,
                registry=registry,
            )
            if ctx.host is not None:  # the engine process of --workers serves no HTTP
                ctx.host.provide(
                    EngineObjects(
                        catalog=ctx.catalog,
                        reader=reader,
                        projector=projector,
                        supervisor=supervisor,
                    )
                )
                ctx.host.provide_live(live)
            # The supervisor stops before the tail closes, and both before the projector.
            async with (
                log_tail(ctx, after) as (source, head),
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
                        _quiet_with_live_sessions(head, supervisor),
                        now_ms=ctx.record_clock,
                    )
                )
                # Delete-user jobs and retention (runtime.erasure): they wait on the projector.
                lifecycle = LifecycleExecutor(
                    log=ctx.log,
                    projector=projector,
                    reader=reader,
                    catalog=ctx.catalog,
                    images_path=ctx.config.images_db_path,
                    clock=ctx.record_clock,
                    interval_s=ctx.config.lifecycle_interval_s,
                    retention_interval_s=ctx.config.retention_interval_s,
                )
                await engine_nursery.start(lifecycle.run)
                task_status.started(projector)
    finally:
        reader.close()
        history.close()


async def projection_reader_service(
    ctx: ServiceContext,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The ingest processes' share of the projections: the public API's read-only queries.

    The engine process writes the projections (and holds their lock); this only opens read-only
    connections, so any number of ingest processes can run it.
    """
    if ctx.host is None:
        raise ValueError("the projection reader service serves an HTTP host; this process has none")
    reader = ProjectionReader(ctx.config.projections_db_path)
    try:
        ctx.host.provide(EngineObjects(catalog=ctx.catalog, reader=reader))
        await _refresh_live_sessions(ctx, ctx.host, reader, task_status=task_status)
    finally:
        reader.close()


async def _refresh_live_sessions(
    ctx: ServiceContext,
    host: Host,
    reader: ProjectionReader,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    """Keep the host's live sessions a recent copy of the engine's live sessions.

    The engine process keeps the live sessions in memory; an ingest process follows the sessions
    projection every ``LIVE_REFRESH_INTERVAL_S``, reading in a worker thread only what changed
    since its copy's checkpoint (:func:`projections.live_sessions.read_live_update`): a few
    changes are applied on the loop, many (or the first load) make a fresh object built in the
    worker thread and swapped in here, so a query never sees a half-loaded one.
    """
    resolver = _project_key_resolver(ctx.catalog, cached_only=False)  # runs in the worker thread
    current: LiveSessions | None = None
    while True:
        known = None if current is None else (current.checkpoint, current.session_ids())
        update = await reader.run(read_live_update, resolver, known)
        if isinstance(update, LiveSessions):
            current = update
            host.provide_live(current)
        elif update is not None:
            assert current is not None
            current.apply_changes(update)
        if known is None:
            task_status.started()
        await trio.sleep(LIVE_REFRESH_INTERVAL_S)
