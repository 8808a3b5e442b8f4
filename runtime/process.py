"""The server process: one trio nursery tree owning the log writer, the services and Hypercorn.

Shape of the tree (each level is a nursery; shutdown goes from the inside out)::

    log nursery        EventLog.run (this process's writer)          -- stopped last
      service nursery  extra services (engine supervisor, projectors, ...)
        front nursery  hypercorn.trio.serve + the signal watcher    -- stopped first

With ``config.workers > 0`` (``serve --workers N``) the same tree runs in three roles
(:class:`runtime.assembly.ProcessRole`): this process becomes the ENGINE (services: engine
supervisor, projector, clock ticker; its front is the pool of ingest processes of
:mod:`runtime.worker` instead of Hypercorn), and each child runs the tree as INGEST (Hypercorn on
the socket the parent bound, its own log writer, read-only projections; no engine). The default,
SINGLE, does everything here.

What is served over HTTP is not known here: the caller hands in an
:class:`runtime.assembly.Assembly` whose host (``api.surfaces``: every registered surface) each
process that serves HTTP builds; the projection services give it their objects
(:meth:`runtime.assembly.Host.provide`).

Shutdown (SIGINT/SIGTERM, or ``RunningServer.shutdown()``): Hypercorn stops accepting and gives
in-flight requests ``graceful_timeout`` seconds; then the services are cancelled; then the log
writer, which fails anything still queued with ``LogClosed`` (nothing unacknowledged is lost: a
client only ever got a 200 after its commit). A second signal skips the grace period.

Service protocol (how the lead plugs in the engine and projectors)::

    async def my_service(ctx: ServiceContext, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        ...set up (open connections, load snapshots)...
        task_status.started()      # serve() waits for this before starting the next one
        ...run until cancelled...

Services start in the order given, after the log writer is running and before the HTTP listener
opens, so the app never sees a request before every service is ready. ``ctx.host`` is the HTTP
host (a service hands it what the routes need through its ``provide`` hooks). A service that raises
brings the whole server down (structured concurrency: no silent half-running process).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import attrs
import hypercorn.config
import hypercorn.trio
import trio

from engine import client_info
from engine.supervisor import wall_clock_ms
from runtime.assembly import Assembly, HostParts, ProcessRole, ProcessSettings, load_assembly
from runtime.context import Listening, Service, ServiceContext, hypercorn_config
from runtime.engine_service import projection_reader_service, projections_service
from runtime.logs import access_logged
from runtime.pool import run_pool
from storage.catalog import Catalog
from storage.log import EventLog
from storage.sqlite import STATEMENTS

logger = logging.getLogger(__name__)


@attrs.frozen(slots=True, eq=False)
class RunningServer:
    """What ``serve`` reports once it listens (``task_status.started``)."""

    binds: list[str]  # e.g. ["http://127.0.0.1:8080"]
    host: str
    port: int  # the real port, also when the config asked for port 0
    app: Any  # the ASGI app; None with --workers: the HTTP apps live in the ingest processes
    log: EventLog
    catalog: Catalog
    _shutdown: trio.Event
    _stopped: trio.Event
    worker_pids: tuple[int, ...] = ()  # the ingest processes of --workers

    @property
    def url(self) -> str:
        """Base URL of the first listener (what the tracker's ingestPoint should be)."""
        return self.binds[0]

    def shutdown(self) -> None:
        """Ask for a graceful shutdown (like SIGTERM); ``serve`` returns when it is done."""
        self._shutdown.set()

    async def wait_stopped(self) -> None:
        """Return once ``serve`` finished: the listener, the services and the log are all closed."""
        await self._stopped.wait()


async def serve(
    config: ProcessSettings,
    *,
    assembly: Assembly,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
    extra_services: Iterable[Service] = (),
    shutdown_event: trio.Event | None = None,
    handle_signals: bool = True,
    clock: Callable[[], int] | None = None,
) -> None:
    """Run replayd until shutdown. Reports a ``RunningServer`` once the listener is bound.

    ``assembly`` says what is served over HTTP (``api.surfaces.ASSEMBLY``: every surface).
    ``handle_signals=False`` leaves SIGINT/SIGTERM alone (tests, or an embedding program); stop
    the server with ``RunningServer.shutdown()`` or ``shutdown_event.set()`` then. With
    ``config.workers > 0`` this process is the engine and the parent of the ingest processes
    (see the module docstring); ``extra_services`` then run here, next to the engine.
    """
    if config.workers > 0:
        if clock is not None:
            raise ValueError("a clock cannot reach the ingest processes of --workers")
        load_assembly(assembly.name)  # fails here, not in every child, if it is not findable
        role = ProcessRole.ENGINE
    else:
        role = ProcessRole.SINGLE
    await serve_process(
        config,
        assembly=assembly,
        role=role,
        task_status=task_status,
        extra_services=extra_services,
        shutdown_event=shutdown_event,
        handle_signals=handle_signals,
        clock=clock,
    )


async def serve_process(
    config: ProcessSettings,
    *,
    assembly: Assembly,
    role: ProcessRole,
    listen_fd: int | None = None,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
    extra_services: Iterable[Service] = (),
    shutdown_event: trio.Event | None = None,
    handle_signals: bool = True,
    clock: Callable[[], int] | None = None,
) -> None:
    """Run one process of replayd in ``role`` (``serve`` picks SINGLE or ENGINE; the ingest
    processes of ``--workers`` run INGEST with the parent's socket as ``listen_fd``)."""
    shutdown = shutdown_event if shutdown_event is not None else trio.Event()
    # Before any connection opens: each is watched from its opening on.
    STATEMENTS.enabled = STATEMENTS.enabled or config.count_sql_statements
    stopped = trio.Event()
    hard = trio.Event()  # a second signal: stop without grace
    # Projections: the projector fed by the engine supervisor starts first among the services
    # (runtime/engine_service.py); the HTTP surfaces read what it writes. An ingest process only
    # reads them.
    first_service = projection_reader_service if role is ProcessRole.INGEST else projections_service
    extra_services = [first_service, *extra_services]
    if role is not ProcessRole.ENGINE:
        # Compile the User-Agent regexes now, not on the first /v1/web/start.
        await trio.to_thread.run_sync(client_info.warm_up)
    catalog = await trio.to_thread.run_sync(Catalog.open, config.db_path)
    # Every process has its own writer: the engine appends clock ticks, ingest appends uploads.
    log = EventLog(
        config.db_path, queue_size=config.log_queue_size, queue_bytes=config.log_queue_bytes
    )
    try:
        async with trio.open_nursery() as log_nursery:
            await log_nursery.start(log.run)
            host = (
                None
                if role is ProcessRole.ENGINE
                else assembly.build_host(
                    HostParts(config=config, catalog=catalog, log=log, clock=clock)
                )
            )
            ctx = ServiceContext(
                config=config,
                log=log,
                catalog=catalog,
                host=host,
                role=role,
                record_clock=wall_clock_ms if host is None else host.record_clock,
            )
            async with trio.open_nursery() as service_nursery:
                for service in extra_services:
                    await service_nursery.start(partial(service, ctx))
                async with trio.open_nursery() as front_nursery:
                    if handle_signals:
                        front_nursery.start_soon(
                            _watch_signals, shutdown, hard, log_nursery.cancel_scope
                        )
                    if host is None:
                        front = partial(run_pool, ctx, assembly, shutdown, hard)
                    else:
                        app = access_logged(host.asgi) if config.access_log else host.asgi
                        front = partial(
                            _serve_http, app, hypercorn_config(config, listen_fd), shutdown
                        )
                    listening: Listening = await front_nursery.start(
                        _run_front, front, front_nursery.cancel_scope
                    )
                    first = urlsplit(listening.binds[0])
                    logger.info("replayd listening on %s", ", ".join(listening.binds))
                    task_status.started(
                        RunningServer(
                            binds=listening.binds,
                            host=first.hostname or config.host,
                            port=first.port or config.port,
                            app=None if host is None else host.app,
                            log=log,
                            catalog=catalog,
                            shutdown=shutdown,
                            stopped=stopped,
                            worker_pids=listening.worker_pids,
                        )
                    )
                # The front is done (every in-flight request answered or timed out, every ingest
                # process exited): stop the services.
                service_nursery.cancel_scope.cancel()
            # Last, the log writer.
            log_nursery.cancel_scope.cancel()
    finally:
        catalog.close()
        stopped.set()
    logger.info("replayd stopped")


async def _run_front(
    front: Callable[..., Awaitable[None]],
    front_scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED,
) -> None:
    await front(task_status=task_status)
    # Also ends the signal watcher, the other task of the front nursery.
    front_scope.cancel()


async def _serve_http(
    app: Any,
    hc: hypercorn.config.Config,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED,
) -> None:
    async def serving(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn.trio.serve(
            app,  # the host's ASGI app
            hc,
            shutdown_trigger=shutdown.wait,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serving)
        task_status.started(Listening(binds=binds))


async def _watch_signals(
    shutdown: trio.Event, hard: trio.Event, hard_stop: trio.CancelScope
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                logger.info("%s: shutting down gracefully", signal.Signals(signum).name)
                shutdown.set()
            else:
                logger.warning("second signal: stopping now")
                hard.set()
                hard_stop.cancel()
