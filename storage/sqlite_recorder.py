"""The SQLite log recorder: every line of the log's SQL (DESIGN.md invariants 2-4 and 7).

:class:`LogReader` is the read side (a read-only connection); :class:`SqliteRecorder` adds the
writer's side (migrate, group insert, erase) on a writable connection. Both are synchronous and
used by one thread at a time; :class:`storage.log.EventLog` drives them from its worker threads.
The protocols they implement are in :mod:`storage.recorder`; the schema is in
:mod:`storage.schema`.

Positions are SQLite ``AUTOINCREMENT`` rowids: strictly increasing in commit order, never reused
(kept in ``sqlite_sequence`` inside the inserting transaction, so a rollback frees its numbers and
leaves no gap). Several writers on one file (``replayd serve --workers N``) share the sequence,
serialised by the write lock (``BEGIN IMMEDIATE``); one that cannot get the lock within
``busy_timeout`` fails its requests with :class:`storage.errors.LogOverloaded`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Self

import attrs

from storage.errors import (
    UNAVAILABLE_RETRY_AFTER_S,
    LogErasureRefused,
    LogError,
    LogOverloaded,
    LogUnavailable,
    LogWriteFailed,
    is_database_wide,
)
from storage.recorder import GroupWrite, Outcome, clamp_times, erasure_record
from storage.records import (
    AppendResult,
    Erasure,
    ErasureRequest,
    ErasureResult,
    LogRecord,
    NewRecord,
    RecordKind,
)
from storage.schema import migrate_log
from storage.sqlite import DEFAULT_BUSY_TIMEOUT_MS, atomic, connect, wal_truncate

# A retry hits the partial unique index and inserts nothing. The group fast path counts the rows
# inserted (``total_changes``) instead of ``RETURNING position``: measurably cheaper, and
# executemany cannot return rows.
_INSERT = (
    "INSERT INTO log"
    " (session_id, project_id, kind, batch_key, received_at_ms, payload, session_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, session_key, kind, batch_key) WHERE batch_key IS NOT NULL"
    " DO NOTHING"
)
_FIND_ORIGINAL = (
    "SELECT position FROM log"
    " WHERE session_id = ? AND session_key = ? AND kind = ? AND batch_key = ?"
)
# The newest committed row: a single seek on the rowid b-tree (position is the rowid).
_NEWEST = "SELECT position, received_at_ms FROM log ORDER BY position DESC LIMIT 1"
# With AUTOINCREMENT the next position is not max(position)+1 but sequence+1: after an erasure
# the sequence is ahead of every row.
_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'log'"
# Bounds that let one statement serve bounded and unbounded reads (LIMIT -1: no limit).
_NO_POSITION_BOUND = 2**63 - 1
_COLUMNS = "position, session_id, project_id, kind, received_at_ms, payload, batch_key, session_key"
# The same row from a log not migrated to schema step 3 yet (no session_key column): readers
# never migrate (a `replayd rebuild` right after an upgrade, with the server stopped, reads the
# log as the old version left it), and such a log has no keyed record.
_COLUMNS_BEFORE_KEYS = _COLUMNS.replace("session_key", "'' AS session_key")
# One keyed session's records. The ``session_key <> ''`` term repeats the partial index's WHERE
# (schema step 3): SQLite uses a partial index only when the query's WHERE implies it.
_KEYED_SESSION = (
    f"SELECT {_COLUMNS} FROM log"
    " WHERE session_key = ? AND session_key <> '' AND position > ? AND position < ?"
    " ORDER BY position LIMIT ?"
)
# The lifecycle's door (schema step 2): the BEFORE DELETE trigger lets a deletion through only
# while a permit row exists, and erase() removes it before its transaction commits.
_OPEN_ERASURE_DOOR = "INSERT INTO log_erasure_permit (reason) VALUES (?)"
_CLOSE_ERASURE_DOOR = "DELETE FROM log_erasure_permit"
# Positions per statement: below SQLite's limit on bound parameters.
_ERASE_CHUNK = 500


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


def _row(record: NewRecord) -> tuple[int, int, int, str | None, int, bytes, str]:
    """The values of ``_INSERT`` for a record."""
    return (
        record.session_id,
        record.project_id,
        int(record.kind),
        record.batch_key,
        record.received_at_ms,
        record.payload,
        record.session_key,
    )


def _activity_query(kinds: int, *, keyed: bool) -> str:
    """The latest record time per session id (or per session key, ``keyed``) of ``kinds`` kinds
    in a window of positions: a rowid range scan of the window, whatever the log's size."""
    column, keyed_only = ("session_key", " AND session_key <> ''") if keyed else ("session_id", "")
    return (
        f"SELECT {column}, max(received_at_ms) FROM log WHERE position > ? AND position <= ?"
        f" AND kind IN ({','.join('?' * kinds)}){keyed_only} GROUP BY {column}"
    )


def _in_chunks(positions: Sequence[int]) -> Iterable[tuple[Sequence[int], str]]:
    """``positions`` in slices of ``_ERASE_CHUNK``, each with its ``?,?,...`` placeholders."""
    for start in range(0, len(positions), _ERASE_CHUNK):
        chunk = positions[start : start + _ERASE_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def _has_session_keys(conn: sqlite3.Connection) -> bool:
    """Whether the log has schema step 3's ``session_key`` column (an empty file: it will)."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(log)")]
    return not columns or "session_key" in columns


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


# Enum construction by value is a slow path of its own; a rebuild reads millions of records.
_KIND_BY_VALUE: dict[int, RecordKind] = {int(k): k for k in RecordKind}


def _record_from_row(row: tuple[Any, ...]) -> LogRecord:
    position, session_id, project_id, kind, received_at_ms, payload, batch_key, session_key = row
    return LogRecord(
        position=position,
        session_id=session_id,
        project_id=project_id,
        kind=_KIND_BY_VALUE.get(kind) or RecordKind(kind),
        received_at_ms=received_at_ms,
        payload=bytes(payload),
        batch_key=batch_key,
        session_key=session_key,
    )


class LogReader:
    """Synchronous read-only access to a log file, for one thread at a time.

    For worker threads of this process (tail, rebuild), other processes (a multi-process engine
    later) and benchmarks. Sees every committed record; never writes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        label: str = "log reader",
    ) -> None:
        # check_same_thread=False: a reader moves between trio worker threads, one call at a time.
        self._conn = connect(
            path,
            label=label,
            busy_timeout_ms=busy_timeout_ms,
            check_same_thread=False,
            create=False,
            query_only=True,
        )
        self._keyed = _has_session_keys(self._conn)
        self._columns = _COLUMNS if self._keyed else _COLUMNS_BEFORE_KEYS

    def read(self, after: int, limit: int, max_bytes: int | None = None) -> list[LogRecord]:
        """Up to ``limit`` committed records with ``position > after``, in position order.

        With ``max_bytes``, stop before the record that would take the payloads past it (always
        at least one record, however big): a reader's memory is bounded in bytes as well.
        """
        cursor = self._conn.execute(
            f"SELECT {self._columns} FROM log WHERE position > ? ORDER BY position LIMIT ?",
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

    def read_session(
        self,
        session_id: int,
        before: int | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Records of one session in position order, ``after < position < before`` (no upper
        bound when ``before`` is None), at most ``limit`` of them (all when None): read a big
        session in pages by passing the last position read as ``after``."""
        cursor = self._conn.execute(
            f"SELECT {self._columns} FROM log"
            " WHERE session_id = ? AND position > ? AND position < ? ORDER BY position LIMIT ?",
            (session_id, after, _NO_POSITION_BOUND if before is None else before,
             -1 if limit is None else limit),
        )  # fmt: skip
        return [_record_from_row(row) for row in cursor.fetchall()]

    def head(self) -> int:
        """The last committed position, 0 when the log is empty."""
        return _max_position(self._conn)

    def read_keyed_session(
        self,
        session_key: str,
        before: int | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[LogRecord]:
        """Records of one keyed session (``session_key``, not empty) in position order, paged
        like :meth:`read_session`; one range of the partial index on (session_key, position)."""
        if not session_key:
            raise ValueError("an empty session key names no keyed session: use read_session")
        if not self._keyed:
            return []
        cursor = self._conn.execute(
            _KEYED_SESSION,
            (session_key, after, _NO_POSITION_BOUND if before is None else before,
             -1 if limit is None else limit),
        )  # fmt: skip
        return [_record_from_row(row) for row in cursor.fetchall()]

    def activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[int, int]]:
        """The log clock at ``upto_position`` and each session's latest record time within
        ``window_ms`` before it: ``(clock_ms, {session_id: last_received_at_ms})``.

        Only records of the given kinds name sessions. Record time is monotonic in log order (the
        writer keeps it so), hence the records of the window are a suffix of positions, found by
        a binary search on the rowid (:meth:`_window`): a handful of seeks instead of a scan of
        the whole log, then a scan of the window.
        """
        return self._activity(upto_position, window_ms, kinds, keyed=False)

    def keyed_activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[str, int]]:
        """Like :meth:`activity`, by session key: ``(clock_ms, {session_key: last_ms})`` of the
        keyed records (key not empty) of the given kinds within the window."""
        return self._activity(upto_position, window_ms, kinds, keyed=True)

    def _activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int], *, keyed: bool
    ) -> tuple[int, dict[Any, int]]:
        window = self._window(upto_position, window_ms)
        if window is None:
            return 0, {}
        clock, low = window
        if keyed and not self._keyed:
            return clock, {}
        since = clock - window_ms
        kind_list = sorted({int(kind) for kind in kinds})
        rows = self._conn.execute(
            _activity_query(len(kind_list), keyed=keyed), (low, upto_position, *kind_list)
        ).fetchall()
        return clock, {key: int(t) for key, t in rows if t >= since}

    def _window(self, upto_position: int, window_ms: int) -> tuple[int, int] | None:
        """``(clock, low)``: the record time at ``upto_position`` and the position after which
        every record up to it is within ``window_ms`` of that clock; None for an empty log.

        Positions may have gaps (erased records): each probe reads the first record at or after
        its position, so a probe in a gap stands for the record after the gap.
        """
        conn = self._conn
        row = conn.execute(
            "SELECT received_at_ms FROM log WHERE position <= ? ORDER BY position DESC LIMIT 1",
            (upto_position,),
        ).fetchone()
        if row is None:
            return None
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
        return clock, low

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

    def project_has_records(self, project_id: int) -> bool:
        """Whether the log holds any record of the project (False for a log never written).

        Scans the log without an index on project_id: for the CLI (``project delete``), not for
        the request path.
        """
        try:
            row = self._conn.execute(
                "SELECT 1 FROM log WHERE project_id = ? LIMIT 1", (project_id,)
            ).fetchone()
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            return False  # a database the CLI made: the catalog only, no log yet
        return row is not None

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


class SqliteRecorder(LogReader):
    """The writer's recorder: a writable connection, the schema, group inserts and erasure.

    Used by the one writer task of an :class:`storage.log.EventLog`, one worker thread at a time.
    Reads like a :class:`LogReader` on its own connection (it sees its own uncommitted writes
    only inside its transactions, which never outlive a call).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        # LogReader.__init__ is not called: the writer's connection may create the file and write.
        self._conn = connect(
            path,
            label="log writer",
            synchronous=synchronous,
            busy_timeout_ms=busy_timeout_ms,
            check_same_thread=False,
        )

    def migrate(self) -> int:
        """Create or upgrade the log's tables; return the log schema version."""
        return migrate_log(self._conn)

    def set_max_page_count(self, pages: int) -> int:
        """Cap the file at ``pages`` pages (``PRAGMA max_page_count``) for this connection; returns
        the cap in effect (never below the current size). Past it a write fails with SQLITE_FULL
        exactly like a full disk does."""
        return int(self._conn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchone()[0])

    def insert_group(self, groups: Sequence[Sequence[NewRecord]], floor: int) -> GroupWrite:
        """Write every group in one transaction (group commit); see the protocol.

        Each transaction first reads the newest committed record (one rowid seek) and clamps
        the times of its records to it (:func:`clamp_times`): another process may have
        committed since this writer's last transaction. ``floor`` is this writer's own floor.
        If a record makes the transaction fail, retry each group in its own transaction so
        only the culprit fails; a database-wide failure (busy, I/O, full disk) fails them all.
        A rolled-back transaction rolls back its sequence too, so no failure leaves a gap.
        """
        conn = self._conn
        pending = list(groups)
        try:
            with atomic(conn):
                floor = clamp_times(pending, max(floor, _newest(conn)[1]))
                outcomes: list[Outcome] = list(_insert_group(conn, pending, _sequence(conn)))
            return GroupWrite(outcomes=outcomes, commits=1, floor=floor)
        except _RECORD_ERRORS as error:
            if len(pending) == 1:
                return GroupWrite(outcomes=[_log_error(error)], commits=0, floor=floor)
        except sqlite3.Error as error:
            failed = _log_error(error)
            return GroupWrite(outcomes=[failed] * len(pending), commits=0, floor=floor)
        outcomes = []
        commits = 0
        for records in pending:
            try:
                with atomic(conn):
                    alone = [records]  # clamped in place
                    floor = clamp_times(alone, max(floor, _newest(conn)[1]))
                    results = _insert_records(conn, alone[0])
                commits += 1
                outcomes.append(results)
            except _WRITE_ERRORS as error:
                outcomes.append(_log_error(error))
        return GroupWrite(outcomes=outcomes, commits=commits, floor=floor)

    def erase(
        self, positions: Sequence[int], reason: str, received_at_ms: int, floor: int
    ) -> tuple[ErasureResult, int]:
        """Open the door, delete, record the erasure, close the door; one transaction. Returns
        the result and the new time floor."""
        return self.erase_sessions(
            ErasureRequest(reason=reason, positions=tuple(positions)), received_at_ms, floor
        )

    def erase_sessions(
        self, request: ErasureRequest, received_at_ms: int, floor: int
    ) -> tuple[ErasureResult, int]:
        """Erase every record of the request's sessions (of its project) and its positions, in
        one transaction, found inside it: a record of those sessions committed just before is
        erased too. Returns the result and the new time floor."""
        try:
            return self._erase(request, received_at_ms, floor)
        except LogErasureRefused:
            raise
        except _WRITE_ERRORS as error:
            raise _log_error(error) from error

    def _erase(
        self, request: ErasureRequest, received_at_ms: int, floor: int
    ) -> tuple[ErasureResult, int]:
        conn = self._conn
        with atomic(conn):
            # Clamped like every record (clamp_times), against the newest record before the
            # delete: record time never goes back, even when the newest record is erased.
            stamped = max(received_at_ms, floor, _newest(conn)[1])
            found: list[tuple[int, int, int]] = []
            for chunk, marks in _in_chunks(request.positions):
                found += conn.execute(
                    f"SELECT position, session_id, kind FROM log WHERE position IN ({marks})",
                    chunk,
                ).fetchall()
            for chunk, marks in _in_chunks(request.sessions):
                # The (session_id, position) index; the project guards against a foreign id.
                found += conn.execute(
                    "SELECT position, session_id, kind FROM log"
                    f" WHERE session_id IN ({marks}) AND project_id = ?",
                    (*chunk, request.project_id),
                ).fetchall()
            if any(kind == RecordKind.ERASURE for _, _, kind in found):
                raise LogErasureRefused("an erasure record cannot be erased")
            erasure = Erasure.of_positions(
                reason=request.reason,
                positions=(position for position, _, _ in found),
                sessions=[*request.sessions, *(session_id for _, session_id, _ in found)],
                job=request.job,
            )
            conn.execute(_OPEN_ERASURE_DOOR, (request.reason,))
            for chunk, marks in _in_chunks(erasure.positions):
                conn.execute(f"DELETE FROM log WHERE position IN ({marks})", chunk)
            conn.execute(_CLOSE_ERASURE_DOOR)
            position = conn.execute(_INSERT, _row(erasure_record(erasure, stamped))).lastrowid
            assert position is not None
        return ErasureResult(position=position, erasure=erasure), stamped

    def checkpoint(self) -> bool:
        """Copy the write-ahead log into the file and truncate it to 0 bytes (TRUNCATE): after
        an erasure, the only copies of erased bytes outside the (zeroed) pages are old WAL
        frames. False when a reader kept it from completing (try again later)."""
        return wal_truncate(self._conn)


@attrs.frozen
class SqliteRecorders:
    """The :class:`storage.recorder.RecorderFactory` of SQLite: the location is a file path."""

    def writer(self, location: str, *, synchronous: str, busy_timeout_ms: int) -> SqliteRecorder:
        """The writer's recorder (creates the file and its directory if missing)."""
        return SqliteRecorder(location, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)

    def reader(self, location: str) -> LogReader:
        """A read-only recorder; refuses to create a missing file."""
        return LogReader(location)


SQLITE = SqliteRecorders()


def _log_error(outcome: BaseException) -> LogError:
    """The log's error for a failed write transaction, its cause chained."""
    error: LogError
    if _is_busy(outcome):
        # Another writer (process) held the write lock for the whole busy timeout:
        # back-pressure, not a failure of this record. Nothing was stored.
        error = LogOverloaded("the database stayed locked by another writer", retry_after=1.0)
    elif is_database_wide(outcome):
        # Disk full, I/O error, read-only file: the machine's fault, not the record's.
        # Nothing was stored; the next transaction tries again.
        error = LogUnavailable(
            f"the log cannot be written: {outcome}", retry_after=UNAVAILABLE_RETRY_AFTER_S
        )
    else:
        error = LogWriteFailed(f"append failed: {outcome!r}")
    error.__cause__ = outcome
    return error


def _insert_group(
    conn: sqlite3.Connection, groups: list[Sequence[NewRecord]], before: int
) -> list[list[AppendResult]]:
    """Insert the records of every group (inside the caller's transaction).

    ``before`` is the sequence (the largest position ever given), read in this transaction.
    Fast path: one ``executemany`` for the whole group (no per-row round trip to Python).
    If it inserted every row (the connection's change count moved by the number of rows),
    AUTOINCREMENT gave them ``before+1 ...`` in order, whatever gaps erasures left below
    (the head, max(position), is not where numbering continues). Otherwise some were
    retries, and each conflict burnt a sequence number (SQLite draws the number before it
    meets the unique index): undo, which restores the sequence, and go row by row.
    """
    rows = [_row(record) for records in groups for record in records]
    conn.execute("SAVEPOINT log_group")
    changes = conn.total_changes
    conn.executemany(_INSERT, rows)
    if conn.total_changes - changes == len(rows):
        conn.execute("RELEASE log_group")
        positions = iter(range(before + 1, before + len(rows) + 1))
        return [[AppendResult(position=next(positions)) for _ in records] for records in groups]
    conn.execute("ROLLBACK TO log_group")
    conn.execute("RELEASE log_group")
    return [_insert_records(conn, records) for records in groups]


def _insert_records(conn: sqlite3.Connection, records: Sequence[NewRecord]) -> list[AppendResult]:
    """Insert one record at a time, each reporting its own position or its original's.

    A keyed record is looked up before it is inserted (the original is committed, or earlier
    in this very transaction): a conflicting insert would burn a sequence number, and a
    position that no record ever holds is a gap no erasure explains.
    """
    results = []
    for record in records:
        if record.batch_key is not None:
            key = (record.session_id, record.session_key, int(record.kind), record.batch_key)
            original = conn.execute(_FIND_ORIGINAL, key).fetchone()
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
