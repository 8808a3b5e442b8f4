"""The log recorder protocol: the synchronous, backend-specific half of the event log.

:class:`storage.log.EventLog` keeps the trio side (queue, group commit, waking appenders, tail,
byte budgets) and reaches its database only through a recorder, in worker threads. A recorder
holds every line of its backend's SQL; SQLite's is :mod:`storage.sqlite_recorder`, and a
PostgreSQL recorder implements the same protocols and passes the same conformance suite
(``tests/storage/log_conformance.py``).

A recorder is used by one thread at a time. Its writes raise (or return) only the log's errors
(:mod:`storage.errors`), the backend's own error chained as ``__cause__``.

Also here: the backend-neutral rules every recorder applies inside its write transaction
(:func:`clamp_times`, :func:`erasure_record`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import attrs

from storage.errors import LogError
from storage.records import (
    AppendResult,
    Erasure,
    ErasureRequest,
    ErasureResult,
    LogRecord,
    NewRecord,
    RecordKind,
)

# One request's outcome: its results (in order), or the error that kept all its records out.
Outcome = list[AppendResult] | LogError


@attrs.frozen
class GroupWrite:
    """What :meth:`LogRecorder.insert_group` did: one outcome per request, in order."""

    outcomes: list[Outcome]
    commits: int  # transactions committed
    floor: int  # the record time of the newest record written (the clamp's next floor)


class LogReadSide(Protocol):
    """Reading a log: what tails, the rebuild, the engine and the API need."""

    def read(self, after: int, limit: int, max_bytes: int | None = None) -> list[LogRecord]:
        """Up to ``limit`` records with ``position > after`` in position order; with
        ``max_bytes``, at most that many payload bytes (always at least one record)."""
        ...

    def read_session(
        self,
        session_id: int,
        before: int | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Records of one session in position order, ``after < position < before``, a page of at
        most ``limit`` records (all when None)."""
        ...

    def read_keyed_session(
        self,
        session_key: str,
        before: int | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Records of one keyed session (``session_key`` not empty; ``ValueError`` if it is),
        in position order, paged like :meth:`read_session`."""
        ...

    def head(self) -> int:
        """The last committed position, 0 when the log is empty."""
        ...

    def newest(self) -> tuple[int, int]:
        """``(position, received_at_ms)`` of the newest record, ``(0, 0)`` when empty."""
        ...

    def time_at(self, position: int) -> int | None:
        """The record time at ``position`` (of the newest record at or before it, else of the
        first record); None when the log is empty."""
        ...

    def activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[int, int]]:
        """The log clock at ``upto_position`` and each session's latest record time (of the given
        kinds) within ``window_ms`` before it."""
        ...

    def keyed_activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[str, int]]:
        """Like :meth:`activity`, per session key: each keyed session's latest record time (of
        the given kinds, key not empty) within ``window_ms`` before ``upto_position``."""
        ...

    def project_of_session(self, session_id: int) -> int | None:
        """The project named by the session's first record, None when the log has none."""
        ...

    def project_has_records(self, project_id: int) -> bool:
        """Whether any record of the project is stored (False for a log never written). May scan
        the log: for the command line (``replayd project delete``), not the request path."""
        ...

    def count(self) -> int:
        """The number of records stored."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class LogRecorder(LogReadSide, Protocol):
    """Reading and writing a log: the writer's recorder (one per :class:`EventLog`)."""

    def migrate(self) -> int:
        """Create or upgrade the log's schema; return its version."""
        ...

    def insert_group(self, groups: Sequence[Sequence[NewRecord]], floor: int) -> GroupWrite:
        """Write every group (one request's records, all or none) in one transaction if it can.

        Clamps record times to at least ``floor`` and the newest committed record's time
        (:func:`clamp_times`). A retry (same session id and key, kind and batch key) stores
        nothing and is answered with its original position (``duplicate=True``). If one group's
        records make the transaction fail, only that group fails; a database-wide failure fails
        them all.
        """
        ...

    def erase(
        self, positions: Sequence[int], reason: str, received_at_ms: int, floor: int
    ) -> tuple[ErasureResult, int]:
        """Delete the records at ``positions`` (sorted, distinct) and append their ``ERASURE``
        record, in one transaction; return the result and the new time floor.

        Raises :class:`storage.errors.LogErasureRefused` for an erasure record, another
        :class:`storage.errors.LogError` when the transaction failed (nothing deleted then).
        """
        ...

    def erase_sessions(
        self, request: ErasureRequest, received_at_ms: int, floor: int
    ) -> tuple[ErasureResult, int]:
        """Like :meth:`erase`, for every record of the request's sessions (found inside the
        transaction) plus its positions."""
        ...

    def checkpoint(self) -> bool:
        """Move what the backend keeps beside the database (SQLite's WAL) into it and empty
        that; False when it could not complete now."""
        ...


class RecorderFactory(Protocol):
    """Opens the recorders of one backend on a location (a file path, a DSN)."""

    def writer(self, location: str, *, synchronous: str, busy_timeout_ms: int) -> LogRecorder:
        """The writer's recorder (creates the database if the backend does that)."""
        ...

    def reader(self, location: str) -> LogReadSide:
        """A read-only recorder of an existing log."""
        ...


@runtime_checkable
class SizeCapped(Protocol):
    """A recorder whose database can be capped in size (past the cap a write fails like a full
    disk does)."""

    def set_max_page_count(self, pages: int) -> int:
        """Cap the database at ``pages`` pages; return the cap in effect."""
        ...


def clamp_times(groups: list[Sequence[NewRecord]], floor: int) -> int:
    """Raise each record's time to at least the previous record's, in place; return the new floor.

    Appenders (of this process and of others) stamp times concurrently, so records reach the
    log slightly out of order; the engine measures inactivity in record time and must see a
    clock that never goes back (DESIGN.md invariant 7). Called inside the write transaction with
    ``floor`` at least the newest committed record's time, so the order holds across writers. A
    clamp by a transaction that then fails only raises the floor, which keeps the order monotonic.
    """
    for index, records in enumerate(groups):
        fixed = []
        changed = False
        for record in records:
            if record.received_at_ms < floor:
                record = attrs.evolve(record, received_at_ms=floor)
                changed = True
            floor = record.received_at_ms
            fixed.append(record)
        if changed:
            groups[index] = fixed
    return floor


def erasure_record(erasure: Erasure, received_at_ms: int) -> NewRecord:
    """The ``ERASURE`` record of an erasure: on no session, like a clock tick."""
    return NewRecord(
        session_id=0,
        project_id=0,
        kind=RecordKind.ERASURE,
        received_at_ms=received_at_ms,
        payload=erasure.to_bytes(),
    )
