"""The append-only event log: one writer task with group commit, readers, tail.

Owns the ``log`` table (schema in :mod:`storage.schema`) and DESIGN.md invariants 1-4 and 7:

1. :meth:`EventLog.append` returns only after the transaction holding the record committed.
2. Positions are strictly increasing in commit order and never reused (``AUTOINCREMENT``: SQLite
   numbers each insert past the largest position ever used, kept in ``sqlite_sequence`` inside
   the inserting transaction). A failed transaction leaves no gap; gaps appear only where the data
   lifecycle erased records (:meth:`EventLog.erase`), and each erasure is itself a record
   (``RecordKind.ERASURE``) placed after everything it erased. So a reader that has passed a
   position never has a record appear behind it, not even after an erasure of the newest record.
3. A retry (same session, kind and batch key) stores nothing and returns the original position.
4. No code path here updates a record; a ``BEFORE UPDATE`` trigger refuses even raw SQL. A
   ``BEFORE DELETE`` trigger refuses every deletion except through :meth:`EventLog.erase`, which
   opens its door (a permit row) only inside its own transaction.
7. ``received_at_ms`` is stamped by the caller; the log never reads the clock. The writer keeps
   record time monotonic in log order (a record stamped earlier than the one before it is stored
   with the previous time), so the engine's "log clock" never goes backwards and a session replayed
   alone sees the same times as the whole log did.

Several writers (``replayd serve --workers N``: one ``EventLog`` per process on one file) keep
these invariants: SQLite serialises their write transactions (``BEGIN IMMEDIATE``), each
transaction numbers its records from the shared sequence, and the time clamp reads the
newest record's time inside the transaction, so it holds across processes too. A writer that
cannot get the write lock within ``busy_timeout`` fails its appenders with :class:`LogOverloaded`
(nothing was stored; the API answers 503 and the tracker retries), never with a success.

Knows nothing of the tracker protocol: payloads are opaque bytes. Must not import engine,
projections or api.

Threading: the writer connection is used only by the writer task, one ``trio.to_thread`` call at a
time; every reader (a tail, the pool behind :meth:`EventLog.read_session`, a :class:`LogReader`)
has its own connection. WAL lets readers run while the writer commits.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import sqlite3
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any, Self

import attrs
import trio

from storage.budget import ByteBudget
from storage.errors import UNAVAILABLE_RETRY_AFTER_S, StorageUnavailable, is_database_wide
from storage.records import (
    AppendResult,
    Erasure,
    ErasureResult,
    LogRecord,
    NewRecord,
    RecordKind,
)
from storage.schema import migrate_log
from storage.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SYNCHRONOUS_MODES, atomic, connect

# A retry hits the partial unique index and inserts nothing. The group fast path counts the rows
# inserted (``total_changes``) instead of ``RETURNING position``: measurably cheaper, and
# executemany cannot return rows.
_INSERT = (
    "INSERT INTO log (session_id, project_id, kind, batch_key, received_at_ms, payload)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, kind, batch_key) WHERE batch_key IS NOT NULL DO NOTHING"
)
_FIND_ORIGINAL = "SELECT position FROM log WHERE session_id = ? AND kind = ? AND batch_key = ?"
# The newest committed row: a single seek on the rowid b-tree (position is the rowid).
_NEWEST = "SELECT position, received_at_ms FROM log ORDER BY position DESC LIMIT 1"
# With AUTOINCREMENT the next position is not max(position)+1 but sequence+1: after an erasure
# the sequence is ahead of every row.
_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'log'"
_COLUMNS = "position, session_id, project_id, kind, received_at_ms, payload, batch_key"
# The lifecycle's door (schema step 2): the BEFORE DELETE trigger lets a deletion through only
# while a permit row exists, and erase() removes it before its transaction commits.
_OPEN_ERASURE_DOOR = "INSERT INTO log_erasure_permit (reason) VALUES (?)"
_CLOSE_ERASURE_DOOR = "DELETE FROM log_erasure_permit"
# Positions per statement: below SQLite's limit on bound parameters.
_ERASE_CHUNK = 500

logger = logging.getLogger(__name__)

# Payload bytes the writer may hold (queued plus in the transaction under way) before appenders
# wait: with 1 MB batches the 1024-request queue alone could hold 1 GB.
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
# Payload bytes one read of the engine's tail returns at most (always at least one record).
DEFAULT_READ_BYTES = 16 * 1024 * 1024

# Errors caused by the records of one request rather than by the database as a whole (a constraint
# or trigger refusing a row, a value SQLite cannot bind). When a group commit fails with one of
# these, the requests are retried one transaction each so that only the culprit fails.
_RECORD_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
    TypeError,
    ValueError,
)
_WRITE_ERRORS: tuple[type[BaseException], ...] = (*_RECORD_ERRORS, sqlite3.Error)


class LogError(Exception):
    """Base class of the log's errors."""


class LogClosed(LogError):
    """The writer is not running (not started yet, or shut down). The record was not stored."""


class LogOverloaded(LogError):
    """The append queue stayed full for ``wait_timeout`` seconds. The record was not stored.

    The API answers 503 with ``Retry-After``; a retry is safe.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LogErasureRefused(LogError, ValueError):
    """:meth:`EventLog.erase` was asked to erase what must stay (an erasure record). Nothing was
    deleted."""


class LogWriteFailed(LogError):
    """The transaction that held the record failed; it was not stored (see ``__cause__``)."""


class LogUnavailable(LogError, StorageUnavailable):
    """The log database as a whole cannot be written (disk full, I/O error, read-only file).

    Nothing was stored; the API answers 503 with ``Retry-After: retry_after``. The writer keeps
    going and succeeds again by itself once the cause is gone (space freed, say).
    """


@attrs.frozen(slots=True)
class LogStatistics:
    """What the log is doing, for metrics: back-pressure you can see."""

    head: int
    queued: int  # requests buffered in the queue, not yet taken by the writer
    queue_capacity: int
    waiting_appenders: int  # appenders blocked because the queue is full
    commits: int  # group-commit transactions committed
    records_committed: int  # new records stored (duplicates excluded)
    duplicates: int  # retries answered with the original position
    failed_appends: int  # requests answered with LogWriteFailed
    busy: int = 0  # requests answered with LogOverloaded: another writer held the lock too long
    # The last database-wide write failure while the log is failing; None once a write succeeded.
    write_error: str | None = None
    unavailable: int = 0  # requests answered with LogUnavailable
    held_bytes: int = 0  # payload bytes queued or being written
    queue_bytes: int = 0  # the byte budget of held_bytes


def _row(record: NewRecord) -> tuple[int, int, int, str | None, int, bytes]:
    """The values of ``_INSERT`` for a record."""
    return (
        record.session_id,
        record.project_id,
        int(record.kind),
        record.batch_key,
        record.received_at_ms,
        record.payload,
    )


def _erasure_record(erasure: Erasure, received_at_ms: int) -> NewRecord:
    """The ``ERASURE`` record of an erasure: on no session, like a clock tick."""
    return NewRecord(
        session_id=0,
        project_id=0,
        kind=RecordKind.ERASURE,
        received_at_ms=received_at_ms,
        payload=erasure.to_bytes(),
    )


def _in_chunks(positions: Sequence[int]) -> Iterable[tuple[Sequence[int], str]]:
    """``positions`` in slices of ``_ERASE_CHUNK``, each with its ``?,?,...`` placeholders."""
    for start in range(0, len(positions), _ERASE_CHUNK):
        chunk = positions[start : start + _ERASE_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def _max_position(conn: sqlite3.Connection) -> int:
    # max() of the rowid is a single b-tree seek, not a scan.
    return int(conn.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0])


def _sequence(conn: sqlite3.Connection) -> int:
    """The largest position ever given (erased ones included), 0 for a log never written."""
    row = conn.execute(_SEQUENCE).fetchone()
    return 0 if row is None else int(row[0])


def _newest(conn: sqlite3.Connection) -> tuple[int, int]:
    """``(position, received_at_ms)`` of the newest committed record, ``(0, 0)`` when empty."""
    row = conn.execute(_NEWEST).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def _is_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLITE_BUSY (any extended code): the lock stayed taken too long."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.OperationalError)
        and code is not None
        and (code & 0xFF) == sqlite3.SQLITE_BUSY
    )


def _clamp_times(requests: Iterable[_Request], floor: int) -> int:
    """Raise each record's time to at least the previous record's; returns the new floor.

    Appenders (of this process and of others) stamp times concurrently, so records reach the
    log slightly out of order; the engine measures inactivity in record time and must see a
    clock that never goes back. Called inside the write transaction with ``floor`` at least the
    newest committed record's time, so the order holds across writers. A clamp by a transaction
    that then fails only raises the floor, which keeps the order monotonic.
    """
    for request in requests:
        fixed = []
        changed = False
        for record in request.records:
            if record.received_at_ms < floor:
                record = attrs.evolve(record, received_at_ms=floor)
                changed = True
            floor = record.received_at_ms
            fixed.append(record)
        if changed:
            request.records = fixed
    return floor


def _payload_bytes(records: Iterable[NewRecord]) -> int:
    return sum(len(record.payload) for record in records)


def _record_from_row(row: tuple[Any, ...]) -> LogRecord:
    position, session_id, project_id, kind, received_at_ms, payload, batch_key = row
    return LogRecord(
        position=position,
        session_id=session_id,
        project_id=project_id,
        kind=RecordKind(kind),
        received_at_ms=received_at_ms,
        payload=bytes(payload),
        batch_key=batch_key,
    )


class LogReader:
    """Synchronous read-only access to a log file, for one thread at a time.

    For worker threads of this process (tail, rebuild), other processes (a multi-process engine
    later) and benchmarks. Sees every committed record; never writes.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> None:
        # check_same_thread=False: a reader moves between trio worker threads, one call at a time.
        self._conn = connect(
            path,
            busy_timeout_ms=busy_timeout_ms,
            check_same_thread=False,
            create=False,
            query_only=True,
        )

    def read(self, after: int, limit: int, max_bytes: int | None = None) -> list[LogRecord]:
        """Up to ``limit`` committed records with ``position > after``, in position order.

        With ``max_bytes``, stop before the record that would take the payloads past it (always
        at least one record, however big): a reader's memory is bounded in bytes as well.
        """
        cursor = self._conn.execute(
            f"SELECT {_COLUMNS} FROM log WHERE position > ? ORDER BY position LIMIT ?",
            (after, limit),
        )
        if max_bytes is None:
            return [_record_from_row(row) for row in cursor.fetchall()]
        records: list[LogRecord] = []
        total = 0
        # Row by row: SQLite steps lazily, so the rows after the cut are never read.
        for row in cursor:
            total += len(row[5])
            if records and total > max_bytes:
                break
            records.append(_record_from_row(row))
        cursor.close()
        return records

    def read_session(self, session_id: int, before: int | None = None) -> list[LogRecord]:
        """All records of one session in position order (only ``position < before`` if given)."""
        if before is None:
            cursor = self._conn.execute(
                f"SELECT {_COLUMNS} FROM log WHERE session_id = ? ORDER BY position",
                (session_id,),
            )
        else:
            cursor = self._conn.execute(
                f"SELECT {_COLUMNS} FROM log WHERE session_id = ? AND position < ?"
                " ORDER BY position",
                (session_id, before),
            )
        return [_record_from_row(row) for row in cursor.fetchall()]

    def head(self) -> int:
        """The last committed position, 0 when the log is empty."""
        return _max_position(self._conn)

    def activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[int, int]]:
        """The log clock at ``upto_position`` and each session's latest record time within
        ``window_ms`` before it: ``(clock_ms, {session_id: last_received_at_ms})``.

        Only records of the given kinds name sessions. Record time is monotonic in log order (the
        writer keeps it so), hence the records of the window are a suffix of positions, found by
        a binary search on the rowid: a handful of seeks instead of a scan of the whole log.
        Positions may have gaps (erased records): each probe reads the first record at or after
        its position, so a probe in a gap stands for the record after the gap.
        """
        conn = self._conn
        row = conn.execute(
            "SELECT received_at_ms FROM log WHERE position <= ? ORDER BY position DESC LIMIT 1",
            (upto_position,),
        ).fetchone()
        if row is None:
            return 0, {}
        clock = int(row[0])
        since = clock - window_ms
        # Invariant: no record at or before low is in the window; every record from high on is
        # (time(r) means the first record at or after r; none at all counts as "in the window").
        low, high = 0, upto_position
        while high - low > 1:
            middle = (low + high) // 2
            probe = conn.execute(
                "SELECT received_at_ms FROM log WHERE position >= ? ORDER BY position LIMIT 1",
                (middle,),
            ).fetchone()
            if probe is None or probe[0] >= since:
                high = middle
            else:
                low = middle
        kind_list = sorted({int(kind) for kind in kinds})
        marks = ",".join("?" * len(kind_list))
        rows = conn.execute(
            "SELECT session_id, max(received_at_ms) FROM log"
            f" WHERE position > ? AND position <= ? AND kind IN ({marks}) GROUP BY session_id",
            (low, upto_position, *kind_list),
        ).fetchall()
        return clock, {int(sid): int(t) for sid, t in rows if t >= since}

    def project_of_session(self, session_id: int) -> int | None:
        """The project named by the session's first record, or None when the log has none.

        One indexed lookup (session_id, position), no payload read: the ingest API asks it when a
        token arrives for a session it has not seen since this process started.
        """
        row = self._conn.execute(
            "SELECT project_id FROM log WHERE session_id = ? ORDER BY position LIMIT 1",
            (session_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    def count(self) -> int:
        """The number of records stored."""
        return int(self._conn.execute("SELECT count(*) FROM log").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def newest(self) -> tuple[int, int]:
        """``(position, received_at_ms)`` of the newest committed record, ``(0, 0)`` when empty."""
        return _newest(self._conn)

    def time_at(self, position: int) -> int | None:
        """The record time at ``position``: of the newest record at or before it, else of the
        first record (``position`` 0: nothing read yet); None when the log is empty.

        Two rowid seeks at most; what the engine lag in record time is measured from.
        """
        row = self._conn.execute(
            "SELECT received_at_ms FROM log WHERE position <= ? ORDER BY position DESC LIMIT 1",
            (position,),
        ).fetchone()
        if row is None:
            row = self._conn.execute(
                "SELECT received_at_ms FROM log ORDER BY position LIMIT 1"
            ).fetchone()
        return None if row is None else int(row[0])


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


@attrs.define(eq=False)
class _Request:
    """One call of append/append_many waiting in the queue: its records, then its outcome.

    The records of one request are written in one transaction (all or nothing).
    """

    records: Sequence[NewRecord]
    size: int = 0  # payload bytes, counted against the writer's byte budget while held
    done: trio.Event = attrs.field(factory=trio.Event)
    results: list[AppendResult] | None = None
    error: BaseException | None = None

    def resolve(self, outcome: list[AppendResult] | BaseException) -> None:
        if self.done.is_set():
            return
        if isinstance(outcome, BaseException):
            self.error = outcome
        else:
            self.results = outcome
        self.done.set()


class EventLog:
    """The append-only log of one database file, with its single writer task.

    Start the writer with ``await nursery.start(log.run)``; appends are accepted once it started
    and until it stops. Group commit: everything queued when the writer gets to it (up to
    ``max_batch_records``, plus the records of the request that crosses that bound) is written in
    one transaction, then each appender is woken with its :class:`AppendResult`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        queue_size: int = 1024,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        max_batch_records: int = 512,
        synchronous: str = "FULL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        read_connections: int = 4,
    ) -> None:
        if queue_size < 1 or queue_bytes < 1 or max_batch_records < 1 or read_connections < 1:
            raise ValueError(
                "queue_size, queue_bytes, max_batch_records and read_connections must be >= 1"
            )
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        self.path = os.fspath(path)
        self._queue_size = queue_size
        # Payload bytes of the requests admitted and not yet answered (queued or being written).
        self._held = ByteBudget(queue_bytes)
        self._write_error: str | None = None
        self._unavailable = 0
        self._writer_conn: sqlite3.Connection | None = None
        self._max_batch_records = max_batch_records
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._state = _State.NEW
        self._send: trio.MemorySendChannel[_Request] | None = None  # set once the writer is up
        self._head = 0
        self._last_received_at_ms = 0  # time of the newest record; keeps record time monotonic
        # Replaced after every commit: waiters wake on the old one and re-check head().
        self._committed = trio.Event()
        # Set when the writer is up, or gave up starting (then _send stays None).
        self._started = trio.Event()
        # The writer connection is touched by at most one worker thread at a time.
        self._writer_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(read_connections)
        self._idle_readers: list[LogReader] = []
        self._commits = 0
        self._records_committed = 0
        self._duplicates = 0
        self._failed_appends = 0
        self._busy = 0

    # -- writer ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The one writer task: open and migrate the database, then commit queued appends forever.

        Reports "started" once the database is ready and appends are accepted. On cancellation it
        answers every request it did not commit with :class:`LogClosed` (never with a success),
        finishes the transaction under way if any, and closes its connection.
        """
        if self._state is not _State.NEW:
            raise RuntimeError("EventLog.run can be called only once")
        try:
            # The floor of the record-time clamp; each transaction raises it to the newest record's.
            conn, head, self._last_received_at_ms = await trio.to_thread.run_sync(
                self._open_writer, limiter=self._writer_limiter
            )
        except BaseException:
            self._state = _State.CLOSED
            self._started.set()  # tails waiting for the start must not wait forever
            raise
        send, receive = trio.open_memory_channel[_Request](self._queue_size)
        self._send = send
        self._writer_conn = conn
        self._head = head
        self._state = _State.RUNNING
        self._started.set()
        self._wake_waiters()
        in_flight: list[_Request] = []
        try:
            task_status.started()
            while True:
                first = await receive.receive()
                in_flight = self._take_batch(first, receive)
                await self._commit_batch(conn, in_flight)
                in_flight = []
        finally:
            self._shutdown(receive, in_flight)
            # Closing only releases file handles; nothing to wait for.
            conn.close()
            self._close_idle_readers()

    def _open_writer(self) -> tuple[sqlite3.Connection, int, int]:
        conn = connect(
            self.path,
            synchronous=self._synchronous,
            busy_timeout_ms=self._busy_timeout_ms,
            check_same_thread=False,
        )
        try:
            migrate_log(conn)
            head = _max_position(conn)
            last = conn.execute(
                "SELECT received_at_ms FROM log ORDER BY position DESC LIMIT 1"
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        return conn, head, (last[0] if last else 0)

    def _take_batch(
        self, first: _Request, receive: trio.MemoryReceiveChannel[_Request]
    ) -> list[_Request]:
        """The first request plus whatever else is queued right now, up to the batch bound."""
        batch = [first]
        count = len(first.records)
        while count < self._max_batch_records:
            try:
                request = receive.receive_nowait()
            except trio.WouldBlock:
                break
            batch.append(request)
            count += len(request.records)
        return batch

    async def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Request]) -> None:
        # abandon_on_cancel=False (the default): a cancellation waits for the transaction under way
        # to finish, so its outcome is known and every appender gets the truth.
        outcomes, commits, self._last_received_at_ms = await trio.to_thread.run_sync(
            self._write_group, conn, batch, self._last_received_at_ms, limiter=self._writer_limiter
        )
        self._commits += commits
        # From here to the end: no checkpoint, so a cancellation cannot separate the commit from
        # the wake-up of its appenders.
        committed_any = False
        unavailable: BaseException | None = None
        for request, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                error = self._log_error(outcome)
                if isinstance(error, LogUnavailable):
                    unavailable = outcome
                self._answer(request, error)
                continue
            committed_any = True
            for result in outcome:
                if result.duplicate:
                    self._duplicates += 1
                else:
                    self._records_committed += 1
                    self._head = max(self._head, result.position)
            self._answer(request, outcome)
        self._note_health(committed_any, unavailable)
        if committed_any:
            self._wake_waiters()

    def _log_error(self, outcome: BaseException) -> LogError:
        """The log's error for a failed write transaction (its cause chained), counted."""
        error: LogError
        if _is_busy(outcome):
            # Another writer (process) held the write lock for the whole busy timeout:
            # back-pressure, not a failure of this record. Nothing was stored.
            self._busy += 1
            error = LogOverloaded("the database stayed locked by another writer", retry_after=1.0)
        elif is_database_wide(outcome):
            # Disk full, I/O error, read-only file: the machine's fault, not the record's.
            # Nothing was stored; the next transaction tries again.
            self._unavailable += 1
            error = LogUnavailable(
                f"the log cannot be written: {outcome}", retry_after=UNAVAILABLE_RETRY_AFTER_S
            )
        else:
            self._failed_appends += 1
            error = LogWriteFailed(f"append failed: {outcome!r}")
        error.__cause__ = outcome
        return error

    def _note_health(self, committed_any: bool, unavailable: BaseException | None) -> None:
        """One loud line when the log starts failing and one when it recovers, none in between."""
        if unavailable is not None and not committed_any:
            if self._write_error is None:
                logger.error(
                    "log %s cannot be written (%s): uploads are answered 503 until it can",
                    self.path,
                    unavailable,
                )
            self._write_error = str(unavailable)
        elif committed_any and self._write_error is not None:
            logger.warning("log %s is writable again (was: %s)", self.path, self._write_error)
            self._write_error = None

    def _answer(self, request: _Request, outcome: list[AppendResult] | BaseException) -> None:
        """Resolve ``request`` and give its bytes back to the budget (once, whatever the path)."""
        if request.done.is_set():
            return
        request.resolve(outcome)
        self._release(request.size)

    def _release(self, size: int) -> None:
        self._held.release(size)

    @classmethod
    def _write_group(
        cls, conn: sqlite3.Connection, batch: list[_Request], floor: int
    ) -> tuple[list[list[AppendResult] | BaseException], int, int]:
        """Worker thread: write every request of the batch in one transaction (group commit).

        Each transaction first reads the newest committed record (one rowid seek) and clamps
        the times of its records to it (:func:`_clamp_times`): another process may have
        committed since this writer's last transaction. ``floor`` is this writer's own floor.
        If a record makes the transaction fail, retry each request in its own transaction so
        only the culprit fails; a database-wide failure (busy, I/O, full disk) fails them all.
        A rolled-back transaction rolls back its sequence too, so no failure leaves a gap.
        Returns one outcome per request, the number of transactions committed and the new floor.
        """
        try:
            with atomic(conn):
                floor = _clamp_times(batch, max(floor, _newest(conn)[1]))
                outcomes: list[list[AppendResult] | BaseException] = list(
                    cls._insert_group(conn, batch, _sequence(conn))
                )
            return outcomes, 1, floor
        except _RECORD_ERRORS as error:
            if len(batch) == 1:
                return [error], 0, floor
        except sqlite3.Error as error:
            return [error] * len(batch), 0, floor
        outcomes = []
        commits = 0
        for request in batch:
            try:
                with atomic(conn):
                    floor = _clamp_times([request], max(floor, _newest(conn)[1]))
                    results = cls._insert_records(conn, request.records)
                commits += 1
                outcomes.append(results)
            except _WRITE_ERRORS as error:
                outcomes.append(error)
        return outcomes, commits, floor

    @classmethod
    def _insert_group(
        cls, conn: sqlite3.Connection, batch: list[_Request], before: int
    ) -> list[list[AppendResult]]:
        """Insert the records of every request of the batch (inside the caller's transaction).

        ``before`` is the sequence (the largest position ever given), read in this transaction.
        Fast path: one ``executemany`` for the whole group (no per-row round trip to Python).
        If it inserted every row (the connection's change count moved by the number of rows),
        AUTOINCREMENT gave them ``before+1 ...`` in order, whatever gaps erasures left below
        (the head, max(position), is not where numbering continues). Otherwise some were
        retries, and each conflict burnt a sequence number (SQLite draws the number before it
        meets the unique index): undo, which restores the sequence, and go row by row.
        """
        rows = [_row(record) for request in batch for record in request.records]
        conn.execute("SAVEPOINT log_group")
        changes = conn.total_changes
        conn.executemany(_INSERT, rows)
        if conn.total_changes - changes == len(rows):
            conn.execute("RELEASE log_group")
            positions = iter(range(before + 1, before + len(rows) + 1))
            return [
                [AppendResult(position=next(positions)) for _ in request.records]
                for request in batch
            ]
        conn.execute("ROLLBACK TO log_group")
        conn.execute("RELEASE log_group")
        return [cls._insert_records(conn, request.records) for request in batch]

    @staticmethod
    def _insert_records(
        conn: sqlite3.Connection, records: Sequence[NewRecord]
    ) -> list[AppendResult]:
        """Insert one record at a time, each reporting its own position or its original's.

        A keyed record is looked up before it is inserted (the original is committed, or earlier
        in this very transaction): a conflicting insert would burn a sequence number, and a
        position that no record ever holds is a gap no erasure explains.
        """
        results = []
        for record in records:
            if record.batch_key is not None:
                original = conn.execute(
                    _FIND_ORIGINAL, (record.session_id, int(record.kind), record.batch_key)
                ).fetchone()
                if original is not None:
                    results.append(AppendResult(position=original[0], duplicate=True))
                    continue
            cursor = conn.execute(_INSERT, _row(record))
            position = cursor.lastrowid
            if cursor.rowcount != 1 or position is None:
                # Cannot happen under the write lock after the lookup; fail rather than guess.
                raise sqlite3.IntegrityError(f"record not inserted: {record.batch_key!r}")
            results.append(AppendResult(position=position))
        return results

    def _shutdown(
        self, receive: trio.MemoryReceiveChannel[_Request], in_flight: list[_Request]
    ) -> None:
        """Synchronous on purpose (it runs in ``finally`` on cancel): fail what was not written."""
        self._state = _State.CLOSED
        closed = LogClosed("the log writer stopped before this record was committed")
        # A request taken from the queue but whose transaction never ran (cancelled before the
        # worker thread started) is not stored. Requests already resolved are left alone.
        for request in in_flight:
            self._answer(request, closed)
        # receive_nowait also pulls in the requests of appenders blocked in send().
        while True:
            try:
                request = receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            self._answer(request, closed)
        receive.close()
        self._held.wake()  # appenders waiting for bytes see the state and give up
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        self._committed.set()
        self._committed = trio.Event()

    # -- appending ---------------------------------------------------------------------------

    async def append(self, record: NewRecord, *, wait_timeout: float = 10.0) -> AppendResult:
        """Append one record; return once it is committed (or was already, for a retry).

        Raises :class:`LogOverloaded` if the queue (in requests or in payload bytes) stayed full
        for ``wait_timeout`` seconds, :class:`LogClosed` if the writer is not running,
        :class:`LogUnavailable` if the database cannot be written at all (disk full, ...),
        :class:`LogWriteFailed` if the transaction failed because of the records. In every case
        the record was not stored by this call.
        """
        (result,) = await self.append_many((record,), wait_timeout=wait_timeout)
        return result

    async def append_many(
        self, records: Sequence[NewRecord], *, wait_timeout: float = 10.0
    ) -> list[AppendResult]:
        """Append several records in one transaction (all or none); results in the same order.

        Same guarantees and errors as :meth:`append`. A record repeated within ``records`` is
        stored once, its repeats answered as duplicates of it.
        """
        if not records:
            return []
        records = tuple(records)
        request = _Request(records=records, size=_payload_bytes(records))
        await self._enqueue(request, wait_timeout)
        # Once queued the writer answers every request (commit, failure or shutdown); the wait is
        # bounded by one transaction and the SQLite busy timeout.
        await request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results

    async def _enqueue(self, request: _Request, wait_timeout: float) -> None:
        if self._state is not _State.RUNNING or self._send is None:
            raise LogClosed("the log writer is not running")
        send = self._send
        held = self._held
        if held.fits(request.size):
            held.take(request.size)
            try:
                send.send_nowait(request)
                return
            except trio.WouldBlock:
                pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._release(request.size)
                raise LogClosed("the log writer is not running") from None
            self._release(request.size)
        # The queue is full (requests or bytes): hold the caller (back-pressure) for at most
        # wait_timeout in total, then answer LogOverloaded (nothing stored, a retry is safe).
        with trio.move_on_after(wait_timeout):
            while not held.fits(request.size):
                await held.changed()
                if self._state is not _State.RUNNING:
                    raise LogClosed("the log writer stopped")
            held.take(request.size)
            queued = False
            try:
                await send.send(request)
                queued = True
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise LogClosed("the log writer stopped") from None
            finally:
                if not queued:  # timed out, cancelled or closed: the writer never got it
                    self._release(request.size)
        raise LogOverloaded(
            f"log queue full for {wait_timeout:g}s ({self._queue_size} requests queued)",
            retry_after=max(1.0, math.ceil(wait_timeout)),
        )

    async def set_max_page_count(self, pages: int) -> int:
        """Cap the file at ``pages`` pages for this writer (``PRAGMA max_page_count``); returns
        the cap in effect (never below the current size).

        Past the cap a write fails with SQLITE_FULL exactly like a full disk does: a way to
        bound the log's size, and to exercise the full-disk path where no small filesystem can
        be mounted.
        """
        conn = self._writer_conn
        if conn is None or self._state is not _State.RUNNING:
            raise LogClosed("the log writer is not running")
        row = await trio.to_thread.run_sync(
            lambda: conn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchone(),
            limiter=self._writer_limiter,
        )
        return int(row[0])

    # -- the data lifecycle ------------------------------------------------------------------

    async def erase(
        self, positions: Iterable[int], *, reason: str, received_at_ms: int
    ) -> ErasureResult:
        """Delete the records at ``positions`` and record that, in one transaction.

        The only way records leave the log (DESIGN.md invariant 4): the user-deletion and
        retention jobs call it. The ``ERASURE`` record (stamped ``received_at_ms``, clamped like
        any record) lists the positions actually deleted (absent ones are skipped) and their
        sessions; it takes the next position, so the head never goes back and no later append
        lands behind a reader. An erasure record itself cannot be erased
        (:class:`LogErasureRefused`).
        Raises the errors of :meth:`append` otherwise; on any error nothing was deleted.
        """
        conn = self._writer_conn
        if conn is None or self._state is not _State.RUNNING:
            raise LogClosed("the log writer is not running")
        wanted = sorted({int(position) for position in positions})
        try:
            # Shares the writer's connection and limiter: never overlaps a group commit.
            result, floor = await trio.to_thread.run_sync(
                self._erase, conn, wanted, reason, received_at_ms, self._last_received_at_ms,
                limiter=self._writer_limiter,
            )  # fmt: skip
        except LogErasureRefused:
            raise
        except _WRITE_ERRORS as outcome:
            raise self._log_error(outcome) from outcome
        self._last_received_at_ms = max(self._last_received_at_ms, floor)
        self._commits += 1
        self._records_committed += 1
        self._head = max(self._head, result.position)
        self._wake_waiters()
        return result

    @staticmethod
    def _erase(
        conn: sqlite3.Connection, wanted: list[int], reason: str, received_at_ms: int, floor: int
    ) -> tuple[ErasureResult, int]:
        """Worker thread: open the door, delete, record the erasure, close the door; one
        transaction. Returns the result and the new time floor."""
        with atomic(conn):
            # Clamped like every record (_clamp_times), against the newest record before the
            # delete: record time never goes back, even when the newest record is erased.
            stamped = max(received_at_ms, floor, _newest(conn)[1])
            found: list[tuple[int, int, int]] = []
            for chunk, marks in _in_chunks(wanted):
                found += conn.execute(
                    f"SELECT position, session_id, kind FROM log WHERE position IN ({marks})",
                    chunk,
                ).fetchall()
            if any(kind == RecordKind.ERASURE for _, _, kind in found):
                raise LogErasureRefused("an erasure record cannot be erased")
            erasure = Erasure(
                reason=reason,
                positions=tuple(sorted(position for position, _, _ in found)),
                sessions=tuple(sorted({session_id for _, session_id, _ in found})),
            )
            conn.execute(_OPEN_ERASURE_DOOR, (reason,))
            for chunk, marks in _in_chunks(erasure.positions):
                conn.execute(f"DELETE FROM log WHERE position IN ({marks})", chunk)
            conn.execute(_CLOSE_ERASURE_DOOR)
            position = conn.execute(_INSERT, _row(_erasure_record(erasure, stamped))).lastrowid
            assert position is not None
        return ErasureResult(position=position, erasure=erasure), stamped

    # -- positions and reading ---------------------------------------------------------------

    def head(self) -> int:
        """The last committed position (0 when empty), as known to this process's writer."""
        return self._head

    async def wait_for_position(self, after: int) -> None:
        """Return once ``head() > after``. Raises :class:`LogClosed` if the writer stopped first."""
        while self._head <= after:
            if self._state is _State.CLOSED:
                raise LogClosed("the log writer stopped")
            await self._committed.wait()

    async def tail(
        self, after: int, *, batch_size: int = 1000, max_bytes: int = DEFAULT_READ_BYTES
    ) -> AsyncGenerator[list[LogRecord], None]:
        """Yield lists of committed records with ``position > after``, forever, in order.

        Sleeps until a commit of this process's writer wakes it (no polling). Use
        :func:`poll_tail` when appends come from another process. Close it when done
        (``async with contextlib.aclosing(log.tail(0)) as records: ...``) so that its reader
        connection is closed promptly. Raises :class:`LogClosed` once caught up after the writer
        stopped. Each list holds at most ``batch_size`` records and ``max_bytes`` payload bytes
        (at least one record).
        """
        # Before run() the database may not even have its tables: wait for the writer.
        await self._started.wait()
        if self._send is None:
            raise LogClosed("the log writer failed to start")
        reader = await trio.to_thread.run_sync(LogReader, self.path)
        try:
            position = after
            while True:
                await self.wait_for_position(position)
                records = await trio.to_thread.run_sync(
                    reader.read, position, batch_size, max_bytes
                )
                if records:
                    position = records[-1].position
                    yield records
        finally:
            reader.close()

    async def read_session(self, session_id: int, before: int | None = None) -> list[LogRecord]:
        """All records of one session in position order (``position < before`` if given)."""
        return await self._read(lambda reader: reader.read_session(session_id, before))

    async def read(self, after: int, limit: int) -> list[LogRecord]:
        """Up to ``limit`` committed records with ``position > after`` (one read, no waiting)."""
        return await self._read(lambda reader: reader.read(after, limit))

    async def _read(self, query: Callable[[LogReader], list[LogRecord]]) -> list[LogRecord]:
        # A small pool of reader connections, each used by one worker thread at a time.
        async with self._read_limiter:
            reader = self._idle_readers.pop() if self._idle_readers else None
            if reader is None:
                reader = await trio.to_thread.run_sync(LogReader, self.path)
            try:
                return await trio.to_thread.run_sync(query, reader)
            finally:
                if self._state is _State.CLOSED:
                    reader.close()
                else:
                    self._idle_readers.append(reader)

    def _close_idle_readers(self) -> None:
        while self._idle_readers:
            self._idle_readers.pop().close()

    def statistics(self) -> LogStatistics:
        """Counters and queue state, for metrics and back-pressure diagnostics."""
        if self._send is not None:
            channel = self._send.statistics()
            queued, waiting = channel.current_buffer_used, channel.tasks_waiting_send
        else:
            queued, waiting = 0, 0
        return LogStatistics(
            head=self._head,
            queued=queued,
            queue_capacity=self._queue_size,
            waiting_appenders=waiting,
            commits=self._commits,
            records_committed=self._records_committed,
            duplicates=self._duplicates,
            failed_appends=self._failed_appends,
            busy=self._busy,
            write_error=self._write_error,
            unavailable=self._unavailable,
            held_bytes=self._held.used,
            queue_bytes=self._held.capacity,
        )


async def poll_tail(
    path: str | os.PathLike[str],
    after: int,
    interval: float = 0.2,
    *,
    batch_size: int = 1000,
    max_bytes: int = DEFAULT_READ_BYTES,
) -> AsyncGenerator[list[LogRecord], None]:
    """Like :meth:`EventLog.tail` for a log written by another process: polls every ``interval``.

    Same bounds per list (``batch_size`` records, ``max_bytes`` payload bytes).

    For the multi-process mode, where the writer lives elsewhere and no in-process commit event
    exists. Reads through its own :class:`LogReader`; close it like ``tail``.
    """
    reader = await trio.to_thread.run_sync(LogReader, path)
    try:
        position = after
        while True:
            records = await trio.to_thread.run_sync(reader.read, position, batch_size, max_bytes)
            if records:
                position = records[-1].position
                yield records
                # More may be waiting (a read is cut by records or by bytes): read again without
                # sleeping; only an empty read (one rowid seek) sleeps.
                continue
            await trio.sleep(interval)
    finally:
        reader.close()
