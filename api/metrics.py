"""The Prometheus metrics of one app (``GET /metrics``), with ``prometheus-client``.

Each app has a registry of its own, not the library's global one: tests run several servers in
one process, and each must report only its own figures. Request counts and latencies are
recorded as requests finish; everything else is read at scrape time from a :class:`Snapshot`
that :mod:`api.operations` takes just before rendering (the log writer's counters, the engine
figures read from the files, the supervisor's and the projector's counters when this process runs
the engine). The library's process collector adds ``process_resident_memory_bytes`` and the other
``process_*`` figures on Linux.

With ``serve --workers N`` each ingest process has its own registry: a scrape answers with the
process that took the connection. Its HTTP and log-writer counters are that process's own; the
figures read from the files (log head, checkpoint, lag, dead letters) and the live sessions are the
same in every process; the engine's counters (records processed, parked) are not reported, as
the engine process serves no HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.health import EngineFigures
from engine.supervisor import SupervisorStatistics
from projections.pipeline import ProjectorStatistics
from storage.log import LogStatistics
from storage.sqlite import STATEMENTS

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A hostile client can send any method name; a label per name would grow without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # 404s: the path itself is the client's to choose, not a label
# From a cached answer (a millisecond) to a batch held for the whole append wait (5 s).
T = TypeVar("T")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@attrs.frozen(slots=True, kw_only=True)
class Snapshot:
    """Everything a scrape reports besides the request metrics; None where this process lacks it."""

    log: LogStatistics
    figures: EngineFigures | None
    live_sessions: int | None
    supervisor: SupervisorStatistics | None
    projector: ProjectorStatistics | None


def _failing(error: str | None) -> int:
    return 0 if error is None else 1


# (name, help, counter?, value of the snapshot's part) for each part of a snapshot. Counters get
# the ``_total`` suffix from the library.
_LOG: tuple[tuple[str, str, bool, Callable[[LogStatistics], float]], ...] = (
    ("replayd_log_queue_depth", "Appends queued for the log writer", False, lambda s: s.queued),
    ("replayd_log_queue_capacity", "Appends the queue holds before uploads wait", False,
     lambda s: s.queue_capacity),
    ("replayd_log_waiting_appenders", "Appenders waiting for room in the full queue", False,
     lambda s: s.waiting_appenders),
    ("replayd_log_commits", "Group-commit transactions", True, lambda s: s.commits),
    ("replayd_log_records_committed", "New records stored", True,
     lambda s: s.records_committed),
    ("replayd_log_duplicates", "Retried uploads answered with the original position", True,
     lambda s: s.duplicates),
    ("replayd_log_failed_appends", "Appends whose transaction failed", True,
     lambda s: s.failed_appends),
    ("replayd_log_busy_appends", "Appends refused: another writer held the lock too long", True,
     lambda s: s.busy),
    ("replayd_log_write_failing", "1 while the log's writes fail database-wide", False,
     lambda s: _failing(s.write_error)),
)  # fmt: skip
_FIGURES: tuple[tuple[str, str, bool, Callable[[EngineFigures], float]], ...] = (
    ("replayd_log_head_position", "Newest position in the log", False, lambda f: f.head),
    ("replayd_engine_checkpoint_position", "Lowest checkpoint of the projections", False,
     lambda f: f.checkpoint),
    ("replayd_engine_lag_records", "Log records not yet in the projections", False,
     lambda f: f.lag_records),
    ("replayd_engine_lag_seconds",
     "Record time between the log head and the projections' checkpoint", False,
     lambda f: f.lag_seconds),
    ("replayd_dead_letters", "Records parked in dead_letters", False, lambda f: f.dead_letters),
)  # fmt: skip
_SUPERVISOR: tuple[tuple[str, str, bool, Callable[[SupervisorStatistics], float]], ...] = (
    ("replayd_engine_records_processed", "Log records the engine processed", True,
     lambda s: s.records_processed),
    ("replayd_engine_records_parked", "Records the engine parked (dead letters)", True,
     lambda s: s.parked_records),
)  # fmt: skip
_PROJECTOR: tuple[tuple[str, str, bool, Callable[[ProjectorStatistics], float]], ...] = (
    ("replayd_projector_write_failing", "1 while the projector's writes fail", False,
     lambda s: _failing(s.write_error)),
)  # fmt: skip


def _families(
    table: tuple[tuple[str, str, bool, Callable[[T], float]], ...], part: T | None
) -> Iterator[Metric]:
    if part is None:
        return  # this process does not have that part (see the module docstring)
    for name, doc, counter, value in table:
        family = CounterMetricFamily if counter else GaugeMetricFamily
        yield family(name, doc, value=value(part))


class _SnapshotCollector(Collector):
    """Renders the latest :class:`Snapshot` (set by :meth:`Metrics.render` before collecting)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if snap is None:
            return
        yield from _families(_LOG, snap.log)
        yield from _families(_FIGURES, snap.figures)
        if snap.live_sessions is not None:
            yield GaugeMetricFamily(
                "replayd_live_sessions", "Sessions live now", value=snap.live_sessions
            )
        yield from _families(_SUPERVISOR, snap.supervisor)
        yield from _families(_PROJECTOR, snap.projector)
        if STATEMENTS.enabled:  # serve --count-sql-statements
            family = CounterMetricFamily(
                "replayd_sqlite_statements",
                "SQL statements run by this process, by connection and first keyword",
                labels=("connection", "statement"),
            )
            for (label, keyword), count in sorted(STATEMENTS.snapshot().items()):
                family.add_metric((label, keyword), count)
            yield family


class Metrics:
    """The registry of one app, its request metrics and its scrape-time snapshot."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "replayd_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "replayd_http_request_duration_seconds",
            "Time from the start of a request's handling to its answer, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._snapshot = _SnapshotCollector()
        self.registry.register(self._snapshot)
        ProcessCollector(registry=self.registry)

    def observe(self, route: str | None, method: str, status: int, seconds: float | None) -> None:
        """Count one answered request (``route`` None: no route matched)."""
        route = route or UNMATCHED_ROUTE
        method = method if method in KNOWN_METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        if seconds is not None:
            self.latency.labels(route).observe(seconds)

    def render(self, snapshot: Snapshot) -> bytes:
        """The text exposition of everything, with ``snapshot`` as the scrape-time figures."""
        # Synchronous from here to the end: no other scrape can swap the snapshot in between.
        self._snapshot.snapshot = snapshot
        return generate_latest(self.registry)
