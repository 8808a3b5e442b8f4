"""What the parts of one process share: the service context and protocol, and the front's report.

Apart from :mod:`runtime.process` so that the services (:mod:`runtime.engine_service`) and the
pool of ingest processes (:mod:`runtime.pool`) can name them without importing the process that
starts them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import hypercorn.config
import trio

from engine.supervisor import wall_clock_ms
from runtime.assembly import Host, ProcessRole, ProcessSettings
from storage.catalog import Catalog
from storage.log import EventLog


@attrs.frozen(slots=True)
class ServiceContext:
    """What a service gets: the configuration and the shared objects of this process."""

    config: ProcessSettings
    log: EventLog
    catalog: Catalog
    host: Host | None  # None in the engine process of --workers (it serves no HTTP)
    role: ProcessRole = ProcessRole.SINGLE
    # Epoch ms that stamps this process's records; clock ticks must be in the same record time.
    record_clock: Callable[[], int] = wall_clock_ms


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


def hypercorn_config(
    config: ProcessSettings, listen_fd: int | None = None
) -> hypercorn.config.Config:
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
    hc.accesslog = None  # ours: runtime.logs.access_logged
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc
