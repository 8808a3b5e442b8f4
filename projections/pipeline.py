"""The projector: the engine's event sink, writing every projection with its checkpoint.

``Projector.sink(events, upto_position)`` is what the engine supervisor calls: all records up to
``upto_position`` are fully reflected in ``events``. For each SQL projection it applies the events
above that projection's checkpoint and moves the checkpoint to ``upto_position``; all projections
of one call share ONE transaction (invariant 5 holds per projection, and a call costs one commit
instead of four). The SQLite work runs in a worker thread on a dedicated connection; the in-memory
live sessions are then updated on the trio thread, where the API reads them. In write-behind mode
(:meth:`Projector.write_behind`, what the server and rebuild use) ``sink`` only queues one delivery
and a writer task applies it, so the engine works on the next chunk meanwhile.

The projections live in a SQLite file of their own (``ServerConfig.projections_db_path``), not
in the log's: SQLite allows one writer per file, and the log writer must never wait while a
projector transaction holds the lock. Each projection's rows and its checkpoint are still written
in one transaction of that file (invariant 5).

Poison (DESIGN.md invariant 8): when a delivery's transaction fails because of the data (an
event that cannot be stored: a string SQLite cannot encode, an integer beyond int64, a bug in a
projection's code for one kind of event), the projector redoes the delivery in one transaction that
isolates the failing events: each projection's events are applied under a savepoint, and a part
that fails is split in halves until the failing events stand alone. Those events are parked in
``dead_letters`` (stage ``projection:<name>``, with the error), everything else is written and the
checkpoints move on. Whether an event fails depends only on the event, so a live run and a rebuild
of the same log park the same events. The fast path (nothing fails) is still one transaction.

A failure of the database as a whole (disk full, I/O error, read-only file: see
:func:`is_database_wide`) is not the data's fault: the delivery is kept and retried with a capped
backoff until it commits, the engine waiting meanwhile (the write-behind queue holds one
delivery); ``ProjectorStatistics.write_error`` says what fails while it fails, and one log line
marks the start of the failure and one its end. Nothing is lost: the checkpoints only move with a
commit.

Also owns the advisory lock that keeps a ``replayd rebuild`` from writing the projections while a
server does (table ``projection_lock``): a second holder is refused while the first one's process
is alive.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self, TypeVar, cast

import attrs
import trio

from engine.events import DomainEvent, clamp_int64, repair_text
from engine.lifecycle import JobRecorded, SessionsErased
from projections import dead_letters, events, jobs, sessions, users, v3
from projections.base import (
    SqlProjection,
    migrate_checkpoints,
    read_checkpoints,
    unapplied,
    write_checkpoint,
)
from projections.live_sessions import LiveSessions
from storage.errors import is_database_wide as storage_unavailable
from storage.schema import apply_migrations
from storage.sqlite import atomic, connect

ALL_PROJECTIONS: tuple[SqlProjection, ...] = (
    sessions.PROJECTION,
    events.PROJECTION,
    users.PROJECTION,
    v3.PROJECTION,
    jobs.PROJECTION,
    dead_letters.PROJECTION,
)
PROJECTIONS_BY_NAME: dict[str, SqlProjection] = {p.name: p for p in ALL_PROJECTIONS}

log = logging.getLogger(__name__)
T = TypeVar("T")

# Retry of a delivery while the database as a whole cannot be written (disk full, I/O error).
RETRY_INITIAL_S = 0.05
RETRY_MAX_S = 5.0

# Beyond what the log and the catalog call unavailable (storage.errors), these say "not the
# data's fault" for the projector too: a lock held too long (a rebuild, a reader's checkpoint) or
# a damaged file fails every transaction alike, so the delivery is kept and retried, never parked.
_ALSO_NOT_THE_DATA = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
)


def is_database_wide(error: BaseException) -> bool:
    """True when ``error`` is the database's (disk full, I/O, read-only, ...), not the data's.

    Such an error fails every transaction alike: parking events for it would park good data.
    Everything else raised while applying events (``OverflowError``, ``UnicodeEncodeError``, a
    constraint, malformed JSON, a bug for one kind of event) is caused by the events.
    """
    if storage_unavailable(error):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.Error)
        and code is not None
        and (code & 0xFF) in _ALSO_NOT_THE_DATA
    )


def _error_text(error: BaseException) -> str:
    return repair_text(f"{type(error).__name__}: {error}")


LOCK_COMPONENT = "projection_lock"
LOCK_STEPS: list[str] = [
    """
    CREATE TABLE projection_lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NOT NULL,
        token TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        acquired_at_ms INTEGER NOT NULL
    );
    """,
]


class ProjectionsBusy(RuntimeError):
    """Another live process (a server, or a rebuild) is writing these projections."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def acquire_lock(conn: sqlite3.Connection, holder: str, token: str) -> None:
    """Take the projections' write lock for ``holder`` or raise :class:`ProjectionsBusy`.

    A lock left by a dead process of this host is taken over; a lock held from another host is
    respected (we cannot tell whether that process lives).
    """
    apply_migrations(conn, LOCK_COMPONENT, LOCK_STEPS)
    host = socket.gethostname()
    with atomic(conn):
        row = conn.execute("SELECT holder, token, host, pid FROM projection_lock").fetchone()
        if row is not None and row[1] != token:
            _refuse_a_live_holder(row, host)
        conn.execute(
            "INSERT OR REPLACE INTO projection_lock (id, holder, token, host, pid, acquired_at_ms)"
            " VALUES (1, ?, ?, ?, ?, ?)",
            (holder, token, host, os.getpid(), time.time_ns() // 1_000_000),
        )


def _refuse_a_live_holder(row: tuple[str, str, str, int], host: str) -> None:
    other_holder, _, other_host, other_pid = row
    if other_host != host or _pid_alive(int(other_pid)):
        raise ProjectionsBusy(
            f"the projections are being written by {other_holder}"
            f" (pid {other_pid} on {other_host}); stop it first"
        )


def check_lock_free(db_path: str | os.PathLike[str]) -> None:
    """Raise :class:`ProjectionsBusy` at once if a live process holds the projections at
    ``db_path``; a missing file, or one without the lock table, is free. Reads only.

    For ``replayd serve``: a second server on a database in use must say so before anything slow
    (the projector itself waits a while for a predecessor that is shutting down).
    """
    if not os.path.exists(db_path):
        return
    conn = connect(db_path, create=False, query_only=True)
    try:
        row = conn.execute("SELECT holder, token, host, pid FROM projection_lock").fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" not in str(error):
            raise
        row = None
    finally:
        conn.close()
    if row is not None:
        _refuse_a_live_holder(row, socket.gethostname())


def release_lock(conn: sqlite3.Connection, token: str) -> None:
    """Give the lock back (only if ``token`` still holds it)."""
    with atomic(conn):
        conn.execute("DELETE FROM projection_lock WHERE token = ?", (token,))


@attrs.define(slots=True)
class ProjectorStatistics:
    """Counters of a projector, for progress bars and metrics."""

    sink_calls: int = 0
    events_seen: int = 0
    transactions: int = 0
    upto_position: int = 0  # everything up to here is applied (committed, live sessions updated)
    parked_events: int = 0  # events a projection could not store (see dead_letters)
    isolations: int = 0  # deliveries redone event by event because of such an event
    write_error: str | None = None  # the database-wide failure while writes fail, else None
    write_failures: int = 0  # failed attempts of deliveries because of such failures


class Projector:
    """Applies domain events to the SQL projections (and the live sessions) of one database.

    ``db_path`` is the projections' file (never the log's: see the module docstring).

    Use ``await nursery.start(projector.run)`` (pipelined writes, see :meth:`run`) or
    ``async with Projector(path) as projector:`` (each ``sink`` call writes before returning);
    then hand ``projector.sink`` to the engine supervisor, resumed at ``projector.resume_position``.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        projections: Sequence[SqlProjection] = ALL_PROJECTIONS,
        live: LiveSessions | None = None,
        holder: str = "server",
        lock_wait_s: float = 0.0,
    ) -> None:
        self.db_path = Path(db_path)
        self.projections = tuple(projections)
        self.live = live
        self.holder = holder
        # How long to wait for another holder to release the lock (a server restarting on the
        # same file waits for its predecessor's shutdown) before raising ProjectionsBusy.
        self.lock_wait_s = lock_wait_s
        self.statistics = ProjectorStatistics()
        self._token = uuid.uuid4().hex
        self._conn: sqlite3.Connection | None = None
        self._checkpoints: dict[str, int] = {}
        # The connection is used by one worker thread at a time.
        self._limiter = trio.CapacityLimiter(1)
        self._queue: trio.MemorySendChannel[tuple[list[DomainEvent], int]] | None = None
        self._delivered = 0  # the highest upto_position handed to sink()
        self._applied = trio.Event()  # set (and replaced) after every applied delivery

    # -- lifecycle ---------------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Connect, migrate, take the lock, read the checkpoints and load the live sessions."""
        # synchronous=NORMAL: in WAL mode a power cut may lose the last commits, but never tears
        # one; a lost commit takes its checkpoint with it, so the engine re-delivers those events.
        # The projections are rebuildable; the log (FULL) is the source of truth.
        conn = connect(
            self.db_path, label="projector", synchronous="NORMAL", check_same_thread=False
        )
        try:
            migrate_checkpoints(conn)
            for projection in self.projections:
                projection.migrate(conn)
            dead_letters.migrate(conn)  # the projector parks events there, whichever it writes
            if self.live is not None:
                sessions.migrate(conn)
            deadline = time.monotonic() + self.lock_wait_s
            while True:
                try:
                    acquire_lock(conn, self.holder, self._token)
                    break
                except ProjectionsBusy:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)  # in a worker thread: polls without blocking the loop
            with atomic(conn):  # one snapshot for the checkpoints and the live rows
                stored = read_checkpoints(conn)
                live_rows = sessions.live_sessions(conn) if self.live is not None else []
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._checkpoints = {p.name: stored.get(p.name, 0) for p in self.projections}
        self.statistics.upto_position = min(self._checkpoints.values(), default=0)
        if self.live is not None:
            self.live.load(live_rows, stored.get(sessions.NAME, 0))

    def close_sync(self) -> None:
        """Release the lock and close the connection."""
        if self._conn is not None:
            try:
                release_lock(self._conn, self._token)
            except sqlite3.Error as error:
                if not is_database_wide(error):
                    raise
                # A full disk must not fail the shutdown: a lock left by a dead process is
                # taken over by the next holder (acquire_lock).
                log.warning("projections: could not release the lock: %s", _error_text(error))
            finally:
                self._conn.close()
                self._conn = None

    async def __aenter__(self) -> Self:
        await trio.to_thread.run_sync(self.open_sync)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with trio.CancelScope(shield=True):
            async with self._limiter:
                await trio.to_thread.run_sync(self.close_sync)

    async def run(
        self, *, task_status: trio.TaskStatus[Projector] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Open, report ready (``nursery.start`` returns the projector), write until cancelled.

        The same as ``async with projector:`` around :meth:`write_behind`.
        """
        async with self:
            await self.write_behind(task_status=task_status)

    async def write_behind(
        self, *, task_status: trio.TaskStatus[Projector] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Until cancelled, :meth:`sink` only queues and a writer task applies the queue in order.

        The queue holds one delivery (bounded: a slow disk slows the engine down); meanwhile the
        engine decodes the next chunk while SQLite writes this one (2 cores, and sqlite3 releases
        the GIL while it works). Cancelling drops what is still queued: its checkpoint was not
        written, so the engine delivers it again after a restart. Poisoned events are parked and a
        full disk is waited out (module docstring); only a bug of the projector itself raises
        here. The projector must be open.
        """
        send, receive = trio.open_memory_channel[tuple[list[DomainEvent], int]](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, receive)
            self._queue = send
            try:
                task_status.started(self)
                await trio.sleep_forever()
            finally:
                self._queue = None

    async def _writer(
        self, receive: trio.MemoryReceiveChannel[tuple[list[DomainEvent], int]]
    ) -> None:
        async for delivery, upto_position in receive:
            await self._apply(delivery, upto_position)

    async def reset(self) -> None:
        """:meth:`reset_sync` in a worker thread, between writes."""
        async with self._limiter:
            await trio.to_thread.run_sync(self.reset_sync)

    def reset_sync(self) -> None:
        """Empty this projector's projections and zero their checkpoints, in one transaction.

        Only with the lock held (after ``open_sync``): this is the first step of a rebuild.
        """
        conn = self._conn
        if conn is None:
            raise RuntimeError("the projector is not open")
        with atomic(conn):
            for projection in self.projections:
                projection.reset(conn)
                dead_letters.forget_stage(
                    conn, dead_letters.PROJECTION_STAGE_PREFIX + projection.name
                )
        self._checkpoints = {p.name: 0 for p in self.projections}
        self.statistics.upto_position = 0
        if self.live is not None:
            self.live.clear()

    async def run_sync(self, function: Callable[..., T], *args: object) -> T:
        """``function(connection, *args)`` on the projector's connection in a worker thread."""

        def call() -> T:
            if self._conn is None:
                raise RuntimeError("the projector is not open")
            return function(self._conn, *args)

        async with self._limiter:
            return await trio.to_thread.run_sync(call)

    async def replace_sessions(
        self, session_ids: Sequence[int], events: Sequence[DomainEvent]
    ) -> None:
        """:meth:`replace_sessions_sync` in a worker thread, between writes."""
        async with self._limiter:
            await trio.to_thread.run_sync(self.replace_sessions_sync, session_ids, events)

    def replace_sessions_sync(
        self, session_ids: Sequence[int], events: Sequence[DomainEvent]
    ) -> None:
        """Replace what every projection derived from these sessions by ``events``, atomically.

        ``events`` are the sessions' events replayed from the log (``replayd dead-letters
        retry``); each projection takes those at or below its checkpoint, which does not move.
        Events that fail are parked as in a delivery.
        """
        conn = self._conn
        if conn is None:
            raise RuntimeError("the projector is not open")
        failed: list[dead_letters.DeadLetter] = []
        with atomic(conn):
            dead_letters.forget_sessions(conn, session_ids)
            for projection in self.projections:
                projection.forget_sessions(conn, session_ids)
            for projection in self.projections:
                checkpoint = self._checkpoints[projection.name]
                mine = [e for e in events if e.position <= checkpoint]
                failed.extend(apply_isolating(conn, projection, mine))
            dead_letters.add(conn, failed)

    # -- state -------------------------------------------------------------------------------------

    @property
    def checkpoints(self) -> dict[str, int]:
        """The checkpoint of each SQL projection (and ``live_sessions`` when there is one)."""
        result = dict(self._checkpoints)
        if self.live is not None:
            result["live_sessions"] = self.live.checkpoint
        return result

    @property
    def resume_position(self) -> int:
        """The lowest checkpoint: the engine must deliver every event above it."""
        return min(self.checkpoints.values(), default=0)

    # -- the sink ----------------------------------------------------------------------------------

    async def sink(self, events: list[DomainEvent], upto_position: int) -> None:
        """Apply ``events`` (everything of the records up to ``upto_position``) to every projection.

        Under :meth:`write_behind` (or :meth:`run`) this queues the delivery for the writer task
        (waiting while one is already queued); otherwise it applies it before returning.
        :meth:`drain` waits for the queue to be written. While the database as a whole cannot be
        written (disk full), the delivery is retried until it commits (module docstring).
        """
        self.statistics.sink_calls += 1
        self.statistics.events_seen += len(events)
        self._delivered = max(self._delivered, upto_position)
        if self._queue is not None:
            await self._queue.send((events, upto_position))
        else:
            await self._apply(events, upto_position)

    async def drain(self) -> None:
        """Return once every delivery handed to :meth:`sink` so far is applied."""
        while self.statistics.upto_position < self._delivered:
            await self._applied.wait()

    async def _apply(self, events: list[DomainEvent], upto_position: int) -> None:
        await self._write(events, upto_position)
        if self.live is not None:
            self._apply_live(unapplied(events, self.live.checkpoint))
            self.live.checkpoint = max(self.live.checkpoint, upto_position)
        self.statistics.upto_position = max(self.statistics.upto_position, upto_position)
        self._applied.set()
        self._applied = trio.Event()

    async def _write(self, events: list[DomainEvent], upto_position: int) -> None:
        """Write the delivery; while the database as a whole fails, wait and try again."""
        delay = RETRY_INITIAL_S
        stats = self.statistics
        while True:
            try:
                async with self._limiter:
                    await trio.to_thread.run_sync(self._apply_sync, events, upto_position)
            except sqlite3.Error as error:
                if not is_database_wide(error):
                    raise
                stats.write_failures += 1
                if stats.write_error is None:
                    # One loud line per failing spell, not a traceback per attempt.
                    log.error(
                        "projections: cannot write %s (%s); keeping the delivery up to position"
                        " %d and retrying every <= %.0f s until it commits",
                        self.db_path,
                        _error_text(error),
                        upto_position,
                        RETRY_MAX_S,
                    )
                stats.write_error = _error_text(error)
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if stats.write_error is not None:
                log.warning(
                    "projections: writing %s again after %s; caught up to position %d",
                    self.db_path,
                    stats.write_error,
                    upto_position,
                )
                stats.write_error = None
            return

    def _apply_live(self, events: list[DomainEvent]) -> None:
        """Fold into the live sessions; an event they cannot take is skipped (and logged).

        The live sessions are memory, reloaded from the sessions table at start-up: a skipped
        event costs at most a stale live entry until then, never the server.
        """
        assert self.live is not None
        try:
            self.live.apply(events)
        except Exception:  # noqa: BLE001 - invariant 8; redo one by one to skip only the culprit
            for event in events:
                try:
                    self.live.apply([event])
                except Exception as error:  # noqa: BLE001
                    self.statistics.parked_events += 1
                    log.error(
                        "live sessions: skipped an event of session %d at position %d: %s",
                        event.session_id,
                        event.position,
                        _error_text(error),
                    )

    def _apply_sync(self, events: Sequence[DomainEvent], upto_position: int) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the projector is not open")
        if conn.in_transaction:  # a failed ROLLBACK (disk trouble) left one open: start clean
            conn.execute("ROLLBACK")
        todo = [
            (p, unapplied(events, self._checkpoints[p.name]))
            for p in self.projections
            if upto_position > self._checkpoints[p.name]
        ]
        if not todo:
            return
        moved = {p.name: max(self._checkpoints[p.name], upto_position) for p, _ in todo}
        # Lifecycle events are rare: one look per delivery keeps the common path a plain apply.
        lifecycle = any(type(e) in _LIFECYCLE_EVENTS for e in events)
        apply = apply_with_erasures if lifecycle else _apply
        try:
            with atomic(conn):
                for projection, fresh in todo:
                    if fresh:
                        apply(conn, projection, fresh)
                    write_checkpoint(conn, projection.name, moved[projection.name])
        except Exception as error:
            if is_database_wide(error):
                raise
            # The data's fault: redo it, parking only the events that fail (module docstring).
            self._apply_isolating_sync(conn, todo, moved)
        # Only after the commit: a failed transaction leaves the checkpoints where they were.
        self._checkpoints.update(moved)
        self.statistics.transactions += 1

    def _apply_isolating_sync(
        self,
        conn: sqlite3.Connection,
        todo: list[tuple[SqlProjection, list[DomainEvent]]],
        moved: dict[str, int],
    ) -> None:
        failed: list[dead_letters.DeadLetter] = []
        with atomic(conn):
            for projection, fresh in todo:
                failed.extend(apply_isolating(conn, projection, fresh))
                write_checkpoint(conn, projection.name, moved[projection.name])
            dead_letters.add(conn, failed)
        self.statistics.isolations += 1
        self.statistics.parked_events += len(failed)
        for letter in failed:
            log.error(
                "projections: parked an event of session %d at position %d (%s): %s",
                letter.session_id,
                letter.position,
                letter.stage,
                letter.error,
            )


_LIFECYCLE_EVENTS = frozenset({SessionsErased, JobRecorded})


def _apply(
    conn: sqlite3.Connection, projection: SqlProjection, events: Sequence[DomainEvent]
) -> None:
    """A delivery without lifecycle events: a lifecycle projection has nothing in it."""
    if not projection.lifecycle:
        projection.apply(conn, events)


def apply_with_erasures(
    conn: sqlite3.Connection, projection: SqlProjection, events: Sequence[DomainEvent]
) -> None:
    """``projection.apply``, with each :class:`SessionsErased` among ``events`` turned into
    ``projection.forget_sessions`` of its sessions at its place in the order (what the
    projection derived from them before the erasure goes, what a later event derives stays);
    a lifecycle projection gets the erasures too and the job events, nothing else."""
    part: list[DomainEvent] = []
    for event in events:
        kind = type(event)
        if kind is SessionsErased:
            if part:
                projection.apply(conn, part)
                part = []
            projection.forget_sessions(conn, cast(SessionsErased, event).sessions)
            if projection.lifecycle:
                part.append(event)
        elif (kind is JobRecorded) is projection.lifecycle:
            part.append(event)
    if part:
        projection.apply(conn, part)


def apply_isolating(
    conn: sqlite3.Connection, projection: SqlProjection, events: Sequence[DomainEvent]
) -> list[dead_letters.DeadLetter]:
    """Apply ``events`` to ``projection``, leaving out (and returning) the events that fail.

    The caller holds the transaction. Each part is applied under a savepoint; a part that fails
    is split in halves, down to single events (``SqlProjection.apply`` does not depend on the
    split), so k bad events among n cost about k * log2(n) extra applies. A database-wide error
    is raised, never parked.
    """
    failed: list[dead_letters.DeadLetter] = []
    stage = dead_letters.PROJECTION_STAGE_PREFIX + projection.name
    parts: list[Sequence[DomainEvent]] = [events] if events else []
    while parts:
        part = parts.pop()
        try:
            with atomic(conn):  # a savepoint: the caller's transaction is open
                apply_with_erasures(conn, projection, part)
        except Exception as error:
            if is_database_wide(error):
                raise
            if len(part) > 1:
                middle = len(part) // 2
                parts.append(part[middle:])  # popped second: the order of the events holds
                parts.append(part[:middle])
                continue
            event = part[0]
            failed.append(
                dead_letters.DeadLetter(
                    position=event.position,
                    session_id=event.session_id,
                    project_id=event.project_id,
                    error=_error_text(error),
                    at=clamp_int64(event.timestamp) if type(event.timestamp) is int else 0,
                    stage=stage,
                )
            )
    return failed
