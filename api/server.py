"""The server process: one trio nursery tree owning the log writer, the services and Hypercorn.

Shape of the tree (each level is a nursery; shutdown goes from the inside out)::

    log nursery        EventLog.run (this process's writer)          -- stopped last
      service nursery  extra services (engine supervisor, projectors, ...)
        front nursery  hypercorn.trio.serve + the signal watcher    -- stopped first

With ``config.workers > 0`` (``serve --workers N``) the same tree runs in three roles
(:class:`api.config.ProcessRole`): this process becomes the ENGINE (services: engine supervisor,
projector, clock ticker; its front is the pool of ingest processes of :mod:`api.worker` instead of
Hypercorn), and each child runs the tree as INGEST (Hypercorn on the socket the parent bound, its
own log writer, read-only projections; no engine). The default, SINGLE, does everything here.

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
opens, so the app never sees a request before every service is ready. ``ctx.app`` is the Quart
app (a service may put what routes need into ``ctx.app.extensions``). A service that raises
brings the whole server down (structured concurrency: no silent half-running process).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
import hypercorn.config
import hypercorn.trio
import trio
from quart import Blueprint
from quart_trio import QuartTrio

from api import operations, public_v1
from api.app import create_app
from api.config import ProcessRole, ServerConfig
from api.disconnects import QuietDisconnects
from api.projections_service import projection_reader_service, projections_service
from engine import client_info
from storage.catalog import Catalog
from storage.log import EventLog

logger = logging.getLogger(__name__)


@attrs.frozen(slots=True)
class ServiceContext:
    """What a service gets: the configuration and the shared objects of this process."""

    config: ServerConfig
    log: EventLog
    catalog: Catalog
    app: QuartTrio | None  # None in the engine process of --workers (it serves no HTTP)
    role: ProcessRole = ProcessRole.SINGLE


@attrs.frozen(slots=True)
class Listening:
    """What a front (Hypercorn, or the pool of ingest processes) reports once it accepts."""

    binds: list[str]
    worker_pids: tuple[int, ...] = ()


class Service(Protocol):
    """An extra long-running task of the server (see the module docstring)."""

    def __call__(
        self, ctx: ServiceContext, *, task_status: trio.TaskStatus[Any] = ...
    ) -> Awaitable[None]: ...


@attrs.frozen(slots=True, eq=False)
class RunningServer:
    """What ``serve`` reports once it listens (``task_status.started``)."""

    binds: list[str]  # e.g. ["http://127.0.0.1:8080"]
    host: str
    port: int  # the real port, also when the config asked for port 0
    app: QuartTrio | None  # None with --workers: the HTTP apps live in the ingest processes
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


def hypercorn_config(config: ServerConfig, listen_fd: int | None = None) -> hypercorn.config.Config:
    """The Hypercorn settings for ``config`` (one plain-HTTP listener, our graceful timeout).

    ``listen_fd``: serve on that already-bound socket (inherited from the parent of --workers).
    """
    hc = hypercorn.config.Config()
    hc.bind = [config.bind] if listen_fd is None else [f"fd://{listen_fd}"]
    # Also bounds how long an idle keep-alive connection can delay the shutdown: with Quart-trio,
    # Hypercorn's idle-connection task does not survive the first request, so idle connections are
    # only closed by the client or by this deadline.
    hc.graceful_timeout = config.graceful_timeout
    # Hypercorn's default backlog of 100 overflows when a few hundred trackers (re)connect at once
    # (ListenOverflows in /proc/net/netstat): the kernel then drops connections before any answer.
    hc.backlog = 1024
    # Requests waiting for the body budget (api.body_budget) read nothing; Hypercorn then buffers at
    # most this many received chunks (64 KB each) per connection before it stops reading it.
    hc.max_app_queue_size = 4
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


async def serve(
    config: ServerConfig,
    *,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
    extra_services: Iterable[Service] = (),
    blueprints: Iterable[Blueprint] = (),
    shutdown_event: trio.Event | None = None,
    handle_signals: bool = True,
    clock: Callable[[], int] | None = None,
) -> None:
    """Run replayd until shutdown. Reports a ``RunningServer`` once the listener is bound.

    ``handle_signals=False`` leaves SIGINT/SIGTERM alone (tests, or an embedding program); stop
    the server with ``RunningServer.shutdown()`` or ``shutdown_event.set()`` then. With
    ``config.workers > 0`` this process is the engine and the parent of the ingest processes
    (see the module docstring); ``extra_services`` then run here, next to the engine.
    """
    if config.workers > 0:
        if list(blueprints) or clock is not None:
            raise ValueError("blueprints and clock cannot reach the ingest processes of --workers")
        role = ProcessRole.ENGINE
    else:
        role = ProcessRole.SINGLE
    await serve_process(
        config,
        role=role,
        task_status=task_status,
        extra_services=extra_services,
        blueprints=blueprints,
        shutdown_event=shutdown_event,
        handle_signals=handle_signals,
        clock=clock,
    )


async def serve_process(
    config: ServerConfig,
    *,
    role: ProcessRole,
    listen_fd: int | None = None,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
    extra_services: Iterable[Service] = (),
    blueprints: Iterable[Blueprint] = (),
    shutdown_event: trio.Event | None = None,
    handle_signals: bool = True,
    clock: Callable[[], int] | None = None,
) -> None:
    """Run one process of replayd in ``role`` (``serve`` picks SINGLE or ENGINE; the ingest
    processes of ``--workers`` run INGEST with the parent's socket as ``listen_fd``)."""
    shutdown = shutdown_event if shutdown_event is not None else trio.Event()
    stopped = trio.Event()
    hard = trio.Event()  # a second signal: stop without grace
    # Projections: the projector fed by the engine supervisor starts first among the services
    # (api/projections_service.py); the public API v1 blueprint reads what it writes. An ingest
    # process only reads them. The operations blueprint (health, readiness, metrics) too.
    blueprints = [public_v1.bp, operations.bp, *blueprints]
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
            app = (
                None
                if role is ProcessRole.ENGINE
                else create_app(
                    config, catalog=catalog, log=log, clock=clock, blueprints=blueprints
                )
            )
            if app is not None:
                operations.install(app, config, log)  # /healthz, /readyz, /metrics
            ctx = ServiceContext(config=config, log=log, catalog=catalog, app=app, role=role)
            async with trio.open_nursery() as service_nursery:
                for service in extra_services:
                    await service_nursery.start(partial(service, ctx))
                async with trio.open_nursery() as front_nursery:
                    if handle_signals:
                        front_nursery.start_soon(
                            _watch_signals, shutdown, hard, log_nursery.cancel_scope
                        )
                    if app is None:
                        from api.worker import run_pool  # the worker module imports this one

                        front = partial(run_pool, ctx, shutdown, hard)
                    else:
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
                            app=app,
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
    app: QuartTrio,
    hc: hypercorn.config.Config,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED,
) -> None:
    async def serving(*, task_status: trio.TaskStatus[list[str]]) -> None:
        # A client hanging up mid-answer is a debug line, not an ASGI traceback (api.disconnects).
        await hypercorn.trio.serve(
            QuietDisconnects(app), hc, shutdown_trigger=shutdown.wait, task_status=task_status
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
