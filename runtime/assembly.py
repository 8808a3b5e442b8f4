"""What the runtime is handed: the settings it reads, and the HTTP host it serves.

The runtime assembles processes; the HTTP layer (``api/``) owns the routes. So that nothing here
imports ``api``, the HTTP layer hands in an :class:`Assembly` (dependency inversion): the type of
its settings and a factory of the :class:`Host` a process serves. An ingest process of
``--workers`` is another interpreter, so the assembly is also findable by name
(``"module:attribute"``, as ASGI servers name their apps).
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from engine.supervisor import Supervisor
from projections.live_sessions import LiveSessions
from projections.pipeline import Projector
from projections.reader import ProjectionReader
from storage.catalog import Catalog
from storage.log import EventLog


class ProcessRole(enum.Enum):
    """What one replayd process does (``serve --workers`` splits the work between processes)."""

    SINGLE = "single"  # HTTP, log writer, engine and projections in one process (the default)
    INGEST = "ingest"  # HTTP and its own log writer; reads projections; never runs the engine
    ENGINE = "engine"  # the parent of ``--workers``: engine, projections and the ingest children


class ProcessSettings(attrs.AttrsInstance, Protocol):
    """The settings the runtime reads (an attrs class of the HTTP layer has them and more)."""

    @property
    def db_path(self) -> str: ...
    @property
    def projections_db_path(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def bind(self) -> str: ...
    @property
    def workers(self) -> int: ...
    @property
    def shard(self) -> int: ...
    @property
    def graceful_timeout(self) -> float: ...
    @property
    def log_queue_size(self) -> int: ...
    @property
    def log_queue_bytes(self) -> int: ...
    @property
    def engine_read_bytes(self) -> int: ...
    @property
    def mailbox_bytes(self) -> int: ...
    @property
    def inactivity_timeout_ms(self) -> int: ...
    @property
    def images_db_path(self) -> str: ...
    @property
    def lifecycle_interval_s(self) -> float: ...
    @property
    def retention_interval_s(self) -> float: ...
    @property
    def access_log(self) -> bool: ...
    @property
    def log_format(self) -> str: ...
    @property
    def count_sql_statements(self) -> bool: ...


@attrs.frozen(slots=True)
class HostParts:
    """What a process has for its HTTP host when the host is built (before any service runs)."""

    config: ProcessSettings
    catalog: Catalog
    log: EventLog
    clock: Callable[[], int] | None  # epoch ms for the request path (tests); None: the wall clock


@attrs.frozen(slots=True)
class EngineObjects:
    """What the projection services hand to the host once they run.

    ``projector`` and ``supervisor`` exist only where the engine runs (not in ingest processes).
    """

    catalog: Catalog
    reader: ProjectionReader
    projector: Projector | None = None
    supervisor: Supervisor | None = None


class Host(Protocol):
    """The HTTP side of one process: its app and the hooks that give its routes their objects."""

    @property
    def app(self) -> Any: ...  # the web application (its routes' objects), for tests and embedders

    @property
    def asgi(self) -> Any: ...  # what Hypercorn serves: ``app`` inside the host's ASGI middleware

    @property
    def record_clock(self) -> Callable[[], int]: ...  # stamps the requests' records (ticks too)

    def provide(self, objects: EngineObjects) -> None:
        """Give the surfaces the projection objects (called once, before the listener opens)."""

    def provide_live(self, live: LiveSessions) -> None:
        """Give the surfaces the live sessions (again whenever a fresh copy replaces them)."""


@attrs.frozen(slots=True)
class Assembly:
    """What a process serves: handed in by the HTTP layer, found by ``name`` in a child process."""

    name: str  # "module:attribute" naming this very object (see :func:`load_assembly`)
    config_type: Callable[..., ProcessSettings]  # rebuilds the settings from attrs.asdict's
    build_host: Callable[[HostParts], Host]


def load_assembly(name: str) -> Assembly:
    """The :class:`Assembly` named ``"module:attribute"`` (how an ingest process finds its own)."""
    module_name, _, attribute = name.partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(found, Assembly) or found.name != name:
        raise ValueError(f"{name!r} does not name an Assembly that carries that name")
    return found
