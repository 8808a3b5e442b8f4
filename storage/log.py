"""The append-only event log: one writer task with group commit, readers, tail.

The trio side of the log: the queue, group commit, waking appenders, the tail and byte budgets.
Every database access goes through a synchronous recorder (:mod:`storage.recorder`), in worker
threads; SQLite's (:mod:`storage.sqlite_recorder`, the default) holds every line of the SQL.
Together they keep DESIGN.md invariants 1-4 and 7:

1. :meth:`EventLog.append` returns only after the transaction holding the record committed.
2. Positions are strictly increasing in commit order and never reused. A failed transaction
   leaves no gap; gaps appear only where the data lifecycle erased records
   (:meth:`EventLog.erase`), and each erasure is itself a record (``RecordKind.ERASURE``) placed
   after everything it erased. So a reader that has passed a position never has a record appear
   behind it, not even after an erasure of the newest record.
3. A retry (same session id and session key, kind and batch key) stores nothing and returns the
   original position.
4. No code path updates a record; the database refuses even raw SQL. Deletion has one door,
   :meth:`EventLog.erase`.
7. ``received_at_ms`` is stamped by the caller; the log never reads the clock. The recorder keeps
   record time monotonic in log order (a record stamped earlier than the one before it is stored
   with the previous time), so the engine's "log clock" never goes backwards and a session replayed
   alone sees the same times as the whole log did.

Several writers (``replayd serve --workers N``: one ``EventLog`` per process on one database)
keep these invariants: the database serialises their write transactions and the time clamp reads
the newest record's time inside the transaction. A writer that cannot get the write lock in time
fails its appenders with :class:`LogOverloaded` (nothing was stored; the API answers 503 and the
tracker retries), never with a success.

Knows nothing of the tracker protocol: payloads are opaque bytes. Must not import engine,
projections or api.

Threading: the writer's recorder is used only by the writer task, one ``trio.to_thread`` call at
a time; every reader (a tail, the pool behind :meth:`EventLog.read_session`) has its own read-side
recorder. Readers run while the writer commits.
"""

from __future__ import annotations

import enum
import logging
import math
import os
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence

import attrs
import trio

from storage.budget import ByteBudget
from storage.errors import (
    LogClosed,
    LogErasureRefused,
    LogError,
    LogOverloaded,
    LogUnavailable,
)
from storage.recorder import LogReadSide, LogRecorder, RecorderFactory, SizeCapped
from storage.records import AppendResult, ErasureRequest, ErasureResult, LogRecord, NewRecord
from storage.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SYNCHRONOUS_MODES

# LogReader (SQLite's read side) is re-exported: tests and scripts outside storage/ name it here.
from storage.sqlite_recorder import SQLITE
from storage.sqlite_recorder import LogReader as LogReader

logger = logging.getLogger(__name__)

# Payload bytes the writer may hold (queued plus in the transaction under way) before appenders
# wait: with 1 MB batches the 1024-request queue alone could hold 1 GB.
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
# Payload bytes one read of the engine's tail returns at most (always at least one record).
DEFAULT_READ_BYTES = 16 * 1024 * 1024


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


def _payload_bytes(records: Iterable[NewRecord]) -> int:
    return sum(len(record.payload) for record in records)


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
        recorders: RecorderFactory = SQLITE,
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
        # Why uploads are answered LogOverloaded, while they are (logged once as it starts and once
        # as it ends, not per request).
        self._overloaded: str | None = None
        self._unavailable = 0
        self._recorders = recorders
        self._recorder: LogRecorder | None = None  # the writer's, while it runs
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
        # The writer's recorder is touched by at most one worker thread at a time.
        self._writer_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(read_connections)
        self._idle_readers: list[LogReadSide] = []
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
        finishes the transaction under way if any, and closes its recorder.
        """
        if self._state is not _State.NEW:
            raise RuntimeError("EventLog.run can be called only once")
        try:
            # The floor of the record-time clamp; each transaction raises it to the newest record's.
            recorder, head, self._last_received_at_ms = await trio.to_thread.run_sync(
                self._open_writer, limiter=self._writer_limiter
            )
        except BaseException:
            self._state = _State.CLOSED
            self._started.set()  # tails waiting for the start must not wait forever
            raise
        send, receive = trio.open_memory_channel[_Request](self._queue_size)
        self._send = send
        self._recorder = recorder
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
                await self._commit_batch(recorder, in_flight)
                in_flight = []
        finally:
            self._shutdown(receive, in_flight)
            # Closing only releases file handles; nothing to wait for.
            recorder.close()
            self._close_idle_readers()

    def _open_writer(self) -> tuple[LogRecorder, int, int]:
        """Worker thread: the writer's recorder, migrated; its head and newest record time."""
        recorder = self._recorders.writer(
            self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
        )
        try:
            recorder.migrate()
            head, last = recorder.newest()
        except BaseException:
            recorder.close()
            raise
        return recorder, head, last

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

    async def _commit_batch(self, recorder: LogRecorder, batch: list[_Request]) -> None:
        # abandon_on_cancel=False (the default): a cancellation waits for the transaction under way
        # to finish, so its outcome is known and every appender gets the truth.
        written = await trio.to_thread.run_sync(
            recorder.insert_group,
            [request.records for request in batch],
            self._last_received_at_ms,
            limiter=self._writer_limiter,
        )
        self._last_received_at_ms = written.floor
        self._commits += written.commits
        # From here to the end: no checkpoint, so a cancellation cannot separate the commit from
        # the wake-up of its appenders.
        committed_any = False
        unavailable: BaseException | None = None
        for request, outcome in zip(batch, written.outcomes, strict=True):
            if isinstance(outcome, LogError):
                self._count_failure(outcome)
                if isinstance(outcome, LogUnavailable):
                    unavailable = outcome.__cause__ or outcome
                self._answer(request, outcome)
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

    def _count_failure(self, error: LogError) -> None:
        """Count a failed write by what the recorder made of it."""
        if isinstance(error, LogOverloaded):
            self._busy += 1
            self._note_overloaded(str(error))
        elif isinstance(error, LogUnavailable):
            self._unavailable += 1
        else:
            self._failed_appends += 1

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

    def _note_overloaded(self, reason: str) -> None:
        if self._overloaded is None:
            logger.warning(
                "log %s overloaded (%s): uploads are answered 503 until it catches up",
                self.path,
                reason,
                extra={"event": "log_overloaded"},
            )
        self._overloaded = reason

    def _note_caught_up(self) -> None:
        logger.warning(
            "log %s caught up: accepting uploads again (was: %s)",
            self.path,
            self._overloaded,
            extra={"event": "log_caught_up"},
        )
        self._overloaded = None

    def _answer(self, request: _Request, outcome: list[AppendResult] | BaseException) -> None:
        """Resolve ``request`` and give its bytes back to the budget (once, whatever the path)."""
        if request.done.is_set():
            return
        request.resolve(outcome)
        self._release(request.size)

    def _release(self, size: int) -> None:
        self._held.release(size)

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
        if self._overloaded is not None:
            self._note_caught_up()
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
        overloaded = LogOverloaded(
            f"log queue full for {wait_timeout:g}s ({self._queue_size} requests queued)",
            retry_after=max(1.0, math.ceil(wait_timeout)),
        )
        self._note_overloaded(str(overloaded))
        raise overloaded

    async def set_max_page_count(self, pages: int) -> int:
        """Cap the database at ``pages`` pages for this writer; returns the cap in effect (never
        below the current size). Only for recorders that can (:class:`SizeCapped`: SQLite caps its
        page count).

        Past the cap a write fails exactly like a full disk does: a way to bound the log's size,
        and to exercise the full-disk path where no small filesystem can be mounted.
        """
        recorder = self._running_recorder()
        if not isinstance(recorder, SizeCapped):
            raise NotImplementedError("this log's recorder cannot cap its size")
        return await trio.to_thread.run_sync(
            recorder.set_max_page_count, pages, limiter=self._writer_limiter
        )

    def _running_recorder(self) -> LogRecorder:
        if self._recorder is None or self._state is not _State.RUNNING:
            raise LogClosed("the log writer is not running")
        return self._recorder

    # -- the data lifecycle ------------------------------------------------------------------

    async def erase(
        self, positions: Iterable[int], *, reason: str, received_at_ms: int
    ) -> ErasureResult:
        """Delete the records at ``positions`` and record that, in one transaction.

        The only way records leave the log (DESIGN.md invariant 4): the user-deletion and
        retention jobs call it (or :meth:`erase_sessions`). The ``ERASURE`` record (stamped
        ``received_at_ms``, clamped like any record) gives the positions actually deleted (absent
        ones are skipped) as ranges, their count and their sessions; it takes the next position,
        so the head never goes back and no later append lands behind a reader. An erasure record
        itself cannot be erased (:class:`LogErasureRefused`).
        Raises the errors of :meth:`append` otherwise; on any error nothing was deleted.
        """
        wanted = tuple(sorted({int(position) for position in positions}))
        request = ErasureRequest(reason=reason, positions=wanted)
        return await self.erase_sessions(request, received_at_ms=received_at_ms)

    async def erase_sessions(
        self, request: ErasureRequest, *, received_at_ms: int
    ) -> ErasureResult:
        """Delete every record of ``request.sessions`` (ids of ``request.project_id``) and at
        ``request.positions``, and record that, in one transaction (as :meth:`erase`).

        The records are found inside the transaction, so none committed before it is missed.
        It holds the writer for that one transaction: callers erase in bounded steps.
        """
        recorder = self._running_recorder()
        try:
            # Shares the writer's recorder and limiter: never overlaps a group commit.
            result, floor = await trio.to_thread.run_sync(
                recorder.erase_sessions, request, received_at_ms, self._last_received_at_ms,
                limiter=self._writer_limiter,
            )  # fmt: skip
        except LogErasureRefused:
            raise
        except LogError as error:
            self._count_failure(error)
            raise
        self._last_received_at_ms = max(self._last_received_at_ms, floor)
        self._commits += 1
        self._records_committed += 1
        self._head = max(self._head, result.position)
        self._wake_waiters()
        return result

    async def checkpoint(self) -> bool:
        """Empty the log's write-ahead log into its file (after an erasure: the old frames hold
        the erased bytes). Runs between group commits, holding the writer meanwhile; False when
        a reader kept it from completing."""
        recorder = self._running_recorder()
        return await trio.to_thread.run_sync(recorder.checkpoint, limiter=self._writer_limiter)

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
        reader = await trio.to_thread.run_sync(self._recorders.reader, self.path)
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

    async def read_session_page(
        self, session_id: int, *, after: int = 0, limit: int = 100
    ) -> list[LogRecord]:
        """Up to ``limit`` records of one session with ``position > after``, in position order:
        read a big session page by page, passing the last position read as ``after``."""
        return await self._read(
            lambda reader: reader.read_session(session_id, after=after, limit=limit)
        )

    async def read_keyed_session(
        self, session_key: str, before: int | None = None
    ) -> list[LogRecord]:
        """All records of one keyed session (``session_key`` not empty) in position order
        (``position < before`` if given)."""
        return await self._read(lambda reader: reader.read_keyed_session(session_key, before))

    async def read(self, after: int, limit: int) -> list[LogRecord]:
        """Up to ``limit`` committed records with ``position > after`` (one read, no waiting)."""
        return await self._read(lambda reader: reader.read(after, limit))

    async def _read(self, query: Callable[[LogReadSide], list[LogRecord]]) -> list[LogRecord]:
        # A small pool of reader connections, each used by one worker thread at a time.
        async with self._read_limiter:
            reader = self._idle_readers.pop() if self._idle_readers else None
            if reader is None:
                reader = await trio.to_thread.run_sync(self._recorders.reader, self.path)
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
    recorders: RecorderFactory = SQLITE,
) -> AsyncGenerator[list[LogRecord], None]:
    """Like :meth:`EventLog.tail` for a log written by another process: polls every ``interval``.

    Same bounds per list (``batch_size`` records, ``max_bytes`` payload bytes).

    For the multi-process mode, where the writer lives elsewhere and no in-process commit event
    exists. Reads through its own read-side recorder of ``recorders``; close it like ``tail``.
    """
    reader = await trio.to_thread.run_sync(recorders.reader, os.fspath(path))
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
