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

Also owns the advisory lock that keeps a ``replayd rebuild`` from writing the projections while a
server does (table ``projection_lock``): a second holder is refused while the first one's process
is alive.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import attrs
import trio

from engine.events import DomainEvent
from projections import dead_letters, events, sessions, users
from projections.base import (
    SqlProjection,
    migrate_checkpoints,
    read_checkpoints,
    unapplied,
    write_checkpoint,
)
from projections.live_sessions import LiveSessions
from storage.schema import apply_migrations
from storage.sqlite import atomic, connect

ALL_PROJECTIONS: tuple[SqlProjection, ...] = (
    sessions.PROJECTION,
    events.PROJECTION,
    users.PROJECTION,
    dead_letters.PROJECTION,
)
PROJECTIONS_BY_NAME: dict[str, SqlProjection] = {p.name: p for p in ALL_PROJECTIONS}

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
            other_holder, _, other_host, other_pid = row
            if other_host != host or _pid_alive(int(other_pid)):
                raise ProjectionsBusy(
                    f"the projections are being written by {other_holder}"
                    f" (pid {other_pid} on {other_host}); stop it first"
                )
        conn.execute(
            "INSERT OR REPLACE INTO projection_lock (id, holder, token, host, pid, acquired_at_ms)"
            " VALUES (1, ?, ?, ?, ?, ?)",
            (holder, token, host, os.getpid(), time.time_ns() // 1_000_000),
        )


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
    write_error: str | None = None


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
        conn = connect(self.db_path, synchronous="NORMAL", check_same_thread=False)
        try:
            migrate_checkpoints(conn)
            for projection in self.projections:
                projection.migrate(conn)
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
        written, so the engine delivers it again after a restart. A failing write raises here.
        The projector must be open.
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
        self._checkpoints = {p.name: 0 for p in self.projections}
        self.statistics.upto_position = 0
        if self.live is not None:
            self.live.clear()

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
        (waiting while one is already queued); otherwise it applies it before returning. :meth:`drain` waits for the
        queue to be written.
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
        async with self._limiter:
            await trio.to_thread.run_sync(self._apply_sync, events, upto_position)
        if self.live is not None:
            self.live.apply(unapplied(events, self.live.checkpoint))
            self.live.checkpoint = max(self.live.checkpoint, upto_position)
        self.statistics.upto_position = max(self.statistics.upto_position, upto_position)
        self._applied.set()
        self._applied = trio.Event()

    def _apply_sync(self, events: Sequence[DomainEvent], upto_position: int) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the projector is not open")
        todo = [
            (p, unapplied(events, self._checkpoints[p.name]))
            for p in self.projections
            if upto_position > self._checkpoints[p.name]
        ]
        if not todo:
            return
        moved: dict[str, int] = {}
        with atomic(conn):
            for projection, fresh in todo:
                if fresh:
                    projection.apply(conn, fresh)
                checkpoint = max(self._checkpoints[projection.name], upto_position)
                write_checkpoint(conn, projection.name, checkpoint)
                moved[projection.name] = checkpoint
        # Only after the commit: a failed transaction leaves the checkpoints where they were.
        self._checkpoints.update(moved)
        self.statistics.transactions += 1
