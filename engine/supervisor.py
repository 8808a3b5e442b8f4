"""The actor supervisor: dispatches log records to session actors in log order, in epochs.

Owns the log clock, activation / passivation of session actors, the epoch (chunk) protocol with
the sink, the restart resume point and the clock ticker. Knows nothing of SQL: records come from a
pluggable source (``EventLog.tail`` live, :func:`reader_source` for a rebuild) and events go to a
``sink`` (the projections).

Routing: an :class:`~engine.actor_types.ActorRegistry` says which actor type owns a record's
kind and the type names the actor (web: by session id; a keyed type: by the record's session
key); records of no type only move the clock. Live actors are keyed by (type index, key), and
each type's history is read by the log column that names it (:class:`ReaderHistory`).

Determinism (DESIGN.md invariants 6, 7): time is record time. The log clock is the largest
``received_at_ms`` seen; before dispatching record ``p`` every live actor whose latest record
time is more than its type's inactivity timeout behind the clock gets ``End(p)`` (in order of
that time plus the timeout, then type index, then key) and is passivated. So the same log always
ends the same sessions at the same positions, live or replayed, with or without restarts;
``CLOCK_TICK`` records (appended by :func:`clock_ticker` while sessions are live) let that happen
without new traffic.

Epochs: after dispatching a chunk, every actor that got mail is sent a ``Flush`` marker; once all
have answered, the chunk's events (in dispatch order, so per-session order holds) and the chunk's
last position go to ``await sink(events, upto_position)``. The sink stores them with that
checkpoint; on restart the supervisor resumes after the lowest checkpoint
(:func:`resume_point`), re-activating silently the actors (of every type) that were live there.
"""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Protocol

import attrs
import trio

from engine.actor import (
    Countdown,
    Deliver,
    End,
    EngineCounters,
    Flush,
    KeyedHistory,
    SessionActor,
    SessionHistory,
)
from engine.actor_types import DEFAULT_REGISTRY, WEB_ACTOR_TYPE, ActorRegistry, ActorType
from engine.events import DomainEvent, RecordParked
from engine.lifecycle import lifecycle_outcome
from storage.budget import ByteBudget
from storage.errors import LogOverloaded
from storage.log import DEFAULT_READ_BYTES
from storage.records import AppendResult, LogRecord, NewRecord, RecordKind

ActorId = tuple[int, Hashable]
"""A live actor's identity: (its type's index in the registry, its key)."""

__all__ = [
    "DEFAULT_INACTIVITY_TIMEOUT_MS",
    "DEFAULT_MAILBOX_BYTES",
    "DEFAULT_MAILBOX_SIZE",
    "ReaderHistory",
    "ResumePoint",
    "Sink",
    "Supervisor",
    "SupervisorStatistics",
    "clock_ticker",
    "due_actors",
    "history_from_reader",
    "live_sessions_at",
    "reader_source",
    "resume_point",
]

DEFAULT_INACTIVITY_TIMEOUT_MS = 150_000  # Go ender: 2 min heartbeat + 30 s (PROTOCOL.md 9.3)
DEFAULT_MAILBOX_SIZE = 64
# Payload bytes waiting in all mailboxes together: 64 mails of up to 1 MB per actor times
# hundreds of actors was a bound in gigabytes.
DEFAULT_MAILBOX_BYTES = 16 * 1024 * 1024

Sink = Callable[[list[DomainEvent], int], Awaitable[None]]
"""``await sink(events, upto_position)``: store a chunk's events, checkpoint ``upto_position``."""


class SyncLogReader(Protocol):
    """What the supervisor needs of ``storage.log.LogReader`` (blocking; run in a worker thread)."""

    def read(self, after: int, limit: int, max_bytes: int | None = None) -> list[LogRecord]: ...

    def read_session(self, session_id: int, before: int | None = None) -> list[LogRecord]: ...

    def read_keyed_session(
        self, session_key: str, before: int | None = None
    ) -> list[LogRecord]: ...

    def head(self) -> int: ...

    def activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[int, int]]: ...

    def keyed_activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[str, int]]: ...


class Appender(Protocol):
    """What :func:`clock_ticker` needs of ``storage.log.EventLog``."""

    async def append(self, record: NewRecord) -> AppendResult: ...


@attrs.frozen(slots=True, kw_only=True)
class SupervisorStatistics:
    """A snapshot of the supervisor, for metrics."""

    live_actors: int
    records_processed: int
    messages_processed: int  # tracker messages in the batches processed (decoded or skipped)
    events_emitted: int
    parked_records: int
    activations: int
    replayed_records: int
    passivations: int
    mailbox_used: int  # messages waiting in all mailboxes
    mailbox_max: int  # fullest mailbox
    mailbox_size: int
    last_position: int
    mailbox_bytes: int = 0  # payload bytes waiting in all mailboxes
    mailbox_bytes_capacity: int = 0
    log_clock_ms: int


@attrs.frozen(slots=True, kw_only=True)
class ResumePoint:
    """Where a restarted supervisor picks up: after ``position``, with that clock and live set.

    ``live_sessions`` are the live web sessions (by session id); ``live_actors`` the live actors
    of the other types, as ``(type name, sorted keys)`` in registry order.
    """

    position: int
    clock_ms: int
    live_sessions: tuple[int, ...] = ()
    live_actors: tuple[tuple[str, tuple[Hashable, ...]], ...] = ()


class Supervisor:
    """Dispatches records to session actors and hands each chunk's events to the sink.

    ``history`` reads a session's earlier records (for re-activation); ``sink`` receives events.
    ``registry`` routes records to actor types (default: just the web type). A keyed type reads
    its history by session key, through :meth:`ReaderHistory.by_key` of a ``history`` made by
    :func:`history_from_reader`; ``histories`` overrides the history of the types named there.
    Run it with :meth:`run` (any record source) or :meth:`run_until` (a reader, up to a head).
    """

    def __init__(
        self,
        *,
        history: SessionHistory,
        sink: Sink,
        inactivity_timeout_ms: int = DEFAULT_INACTIVITY_TIMEOUT_MS,
        mailbox_size: int = DEFAULT_MAILBOX_SIZE,
        mailbox_bytes: int = DEFAULT_MAILBOX_BYTES,
        registry: ActorRegistry = DEFAULT_REGISTRY,
        histories: Mapping[str, KeyedHistory] | None = None,
    ) -> None:
        if inactivity_timeout_ms < 0 or mailbox_size < 1 or mailbox_bytes < 1:
            raise ValueError(
                "inactivity_timeout_ms must be >= 0, mailbox_size and mailbox_bytes >= 1"
            )
        self._history = history
        self._sink = sink
        self._timeout = inactivity_timeout_ms
        self._registry = registry
        self._types = types = list(registry)
        self._type_index = {id(t): i for i, t in enumerate(types)}
        self._timeouts = registry.timeouts_ms(inactivity_timeout_ms)
        named = histories or {}
        self._histories = [named.get(t.name) or _history_of(t, history) for t in types]
        # Resumed sessions (by session id) are web actors; other types resume by name.
        self._web_index = self._type_index.get(id(WEB_ACTOR_TYPE))
        self._index_by_name = {t.name: i for i, t in enumerate(types)}
        # Types whose actors are sessions named by a session id (web, mobile).
        self._id_indexes = frozenset(i for i, t in enumerate(types) if not t.keyed)
        self._mailbox_size = mailbox_size
        self._mailbox_bytes = ByteBudget(mailbox_bytes)
        self._counters = EngineCounters()
        self._live: dict[ActorId, SessionActor] = {}
        # (latest record time + the type's timeout, type index, key) of live actors; stale
        # entries are skipped on pop. With only the web type this orders ends as (time, session
        # id) did.
        self._deadlines: list[tuple[int, int, Hashable]] = []
        self._clock = 0
        self._last_position = 0
        self._nursery: trio.Nursery | None = None
        self._running = False

    # -- public ------------------------------------------------------------------------------

    @property
    def clock_ms(self) -> int:
        """The log clock: the largest ``received_at_ms`` seen."""
        return self._clock

    @property
    def last_position(self) -> int:
        """The last position dispatched."""
        return self._last_position

    def has_live_sessions(self) -> bool:
        """True while some session actor is live (the clock ticker only ticks then)."""
        return bool(self._live)

    @property
    def messages_processed(self) -> int:
        """Tracker messages walked so far (cheap: no pass over the actors, unlike statistics())."""
        return self._counters.messages_processed

    def live_session_ids(self) -> list[int]:
        """Ids of the live sessions named by a session id (web, mobile), sorted."""
        ids = self._id_indexes
        return sorted(key for index, key in self._live if index in ids and isinstance(key, int))

    def statistics(self) -> SupervisorStatistics:
        """Counters and mailbox usage."""
        used = [actor.mailbox_used() for actor in self._live.values()]
        c = self._counters
        return SupervisorStatistics(
            live_actors=len(self._live),
            records_processed=c.records_processed,
            messages_processed=c.messages_processed,
            events_emitted=c.events_emitted,
            parked_records=c.parked_records,
            activations=c.activations,
            replayed_records=c.replayed_records,
            passivations=c.passivations,
            mailbox_used=sum(used),
            mailbox_max=max(used, default=0),
            mailbox_size=self._mailbox_size,
            last_position=self._last_position,
            mailbox_bytes=self._mailbox_bytes.used,
            mailbox_bytes_capacity=self._mailbox_bytes.capacity,
            log_clock_ms=self._clock,
        )

    async def run(
        self,
        source: AsyncIterable[list[LogRecord]],
        *,
        resume: ResumePoint | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Process ``source`` chunk by chunk until it is exhausted (forever for a live tail).

        With ``resume``, first set the clock and re-activate (silently) the sessions live there;
        the source must then start after ``resume.position``. Reports "started" once that is done.
        When the source ends, live sessions are left live (no artificial end): their tasks just
        stop. Cancelling the caller's scope stops every actor promptly.
        """
        if self._running:
            raise RuntimeError("Supervisor.run is already running")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if resume is not None:
                    await self._resume(resume)
                task_status.started()
                async for chunk in source:
                    if chunk:
                        await self._process_chunk(chunk)
                for actor in self._live.values():
                    actor.send.close()
                self._live.clear()
                self._deadlines.clear()
        finally:
            self._nursery = None
            self._running = False

    async def run_until(
        self,
        reader: SyncLogReader,
        head: int,
        *,
        resume: ResumePoint | None = None,
        chunk_size: int = 1000,
        chunk_bytes: int = DEFAULT_READ_BYTES,
    ) -> None:
        """Rebuild mode: process the records after ``resume`` (or from the start) up to ``head``.

        Each chunk holds at most ``chunk_size`` records and ``chunk_bytes`` payload bytes.
        """
        after = resume.position if resume is not None else 0
        source = reader_source(
            reader, after=after, upto=head, chunk_size=chunk_size, chunk_bytes=chunk_bytes
        )
        try:
            await self.run(source, resume=resume)
        finally:
            await source.aclose()

    # -- internals ---------------------------------------------------------------------------

    async def _resume(self, resume: ResumePoint) -> None:
        self._clock = max(self._clock, resume.clock_ms)
        self._last_position = max(self._last_position, resume.position)
        live: list[tuple[int, Hashable]] = []
        if self._web_index is not None:  # no web type: nothing to resume by session id
            live += [(self._web_index, session_id) for session_id in resume.live_sessions]
        for name, keys in resume.live_actors:
            index = self._index_by_name.get(name)
            if index is not None:  # a type this supervisor does not run stays passive
                live += [(index, key) for key in keys]
        for index, key in live:
            if (index, key) not in self._live:
                # Everything up to and including the resume position, and no end after it.
                await self._activate(
                    index, key, None, replay_before=resume.position + 1, ended_after=False
                )

    async def _activate(
        self,
        index: int,
        key: Hashable,
        first: LogRecord | None,
        *,
        replay_before: int,
        ended_after: bool,
        fresh: bool = False,
    ) -> SessionActor:
        assert self._nursery is not None
        actor_type = self._types[index]
        actor = SessionActor(
            key,
            first,
            mailbox_size=self._mailbox_size,
            counters=self._counters,
            budget=self._mailbox_bytes,
            actor_type=actor_type,
        )
        timeout = self._timeouts[index]
        await self._nursery.start(
            functools.partial(
                actor.run,
                history=None if fresh else self._histories[index],
                replay_before=replay_before,
                ended_after=ended_after,
                inactivity_timeout_ms=timeout,
            )
        )
        self._counters.activations += 1
        self._live[index, key] = actor
        if actor.last_record_ms:
            heapq.heappush(self._deadlines, (actor.last_record_ms + timeout, index, key))
        return actor

    async def _end_stale(
        self, position: int, slots: list[list[DomainEvent]], touched: list[SessionActor]
    ) -> None:
        live = self._live

        def last_record_ms(index: int, key: Hashable) -> int | None:
            actor = live.get((index, key))
            return None if actor is None else actor.last_record_ms

        for index, key in due_actors(self._deadlines, self._clock, self._timeouts, last_record_ms):
            actor = live[index, key]
            out: list[DomainEvent] = []
            slots.append(out)
            await actor.send.send(End(position, out))
            del live[index, key]
            self._counters.passivations += 1
            if not actor.touched:
                actor.touched = True
                touched.append(actor)
            # The task stays until the chunk's flush (it must answer the marker), then is closed.

    def _lifecycle(self, record: LogRecord) -> list[DomainEvent]:
        """The events of a data-lifecycle record (engine.lifecycle); an erasure also drops the
        live actors of its sessions, without an end: their rows are being forgotten, and a later
        record of such a session starts a fresh actor that sees only what the log still holds,
        as a rebuild's does. A payload that does not parse is parked."""
        events, dropped = lifecycle_outcome(record)
        if any(isinstance(event, RecordParked) for event in events):
            self._counters.parked_records += 1
        for index in self._id_indexes:
            for session_id in dropped:
                actor = self._live.pop((index, session_id), None)
                if actor is not None and not actor.touched:
                    actor.send.close()  # a touched one is closed after this chunk's flush
        return events

    async def _process_chunk(self, chunk: Sequence[LogRecord]) -> None:
        slots: list[list[DomainEvent]] = []
        touched: list[SessionActor] = []
        live = self._live
        budget = self._mailbox_bytes
        type_for = self._registry.type_for
        type_index = self._type_index
        timeouts = self._timeouts
        for record in chunk:
            t = record.received_at_ms
            self._clock = max(self._clock, t)
            if self._deadlines and self._deadlines[0][0] < self._clock:
                await self._end_stale(record.position, slots, touched)
            actor_type = type_for(record.kind)
            if actor_type is not None:
                index = type_index[id(actor_type)]
                key = actor_type.key_of(record)
                actor = live.get((index, key))
                if actor is None:
                    actor = await self._activate(
                        index,
                        key,
                        record,
                        replay_before=record.position,
                        ended_after=True,
                        fresh=actor_type.is_fresh(record),
                    )
                if t > actor.last_record_ms:
                    actor.last_record_ms = t
                    heapq.heappush(self._deadlines, (t + timeouts[index], index, key))
                out: list[DomainEvent] = []
                slots.append(out)
                size = len(record.payload)
                if not budget.fits(size):
                    # The mailboxes hold too many bytes: wait for the actors to apply some.
                    await budget.wait_for_room(size)
                budget.take(size)
                await actor.send.send(Deliver(record, out))
                if not actor.touched:
                    actor.touched = True
                    touched.append(actor)
            elif record.kind >= RecordKind.ERASURE:
                slots.append(self._lifecycle(record))
            self._last_position = record.position

        # End of the epoch: wait until every actor that got mail has processed it.
        barrier = Countdown(len(touched))
        for actor in touched:
            await actor.send.send(Flush(barrier))
        await barrier.event.wait()
        for actor in touched:
            actor.touched = False
            if live.get((type_index[id(actor.actor_type)], actor.key)) is not actor:
                actor.send.close()  # passivated in this chunk: its task ends now
        events = [event for out in slots for event in out]
        self._counters.records_processed += len(chunk)
        self._counters.events_emitted += len(events)
        await self._sink(events, chunk[-1].position)


def due_actors(
    deadlines: list[tuple[int, int, Hashable]],
    clock: int,
    timeouts: Sequence[int],
    last_record_ms: Callable[[int, Hashable], int | None],
) -> Iterator[tuple[int, Hashable]]:
    """Pop from the heap ``deadlines`` the live actors inactive at ``clock``, in end order.

    Entries are (latest record time + the type's timeout, type index, key); an entry is stale
    (skipped) when ``last_record_ms(index, key)`` says the actor ended (None) or was active since.
    The caller ends each actor yielded before asking for the next. Shared with the rebuild's
    fold (``engine.fold``) so both end the same sessions at the same positions.
    """
    while deadlines and deadlines[0][0] < clock:
        deadline, index, key = heapq.heappop(deadlines)
        last = last_record_ms(index, key)
        if last is None or last + timeouts[index] != deadline:
            continue  # an older entry of an actor that was active since, or already ended
        yield index, key


# -- sources, history and resume --------------------------------------------------------------


async def reader_source(
    reader: SyncLogReader,
    *,
    after: int = 0,
    upto: int | None = None,
    chunk_size: int = 1000,
    chunk_bytes: int = DEFAULT_READ_BYTES,
) -> AsyncGenerator[list[LogRecord], None]:
    """Yield the records after ``after`` up to ``upto`` (default: the head at the first read),
    in lists of at most ``chunk_size`` records and ``chunk_bytes`` payload bytes (at least one).

    Blocking reads run in a worker thread (the reader's connection may hop threads, one call at a
    time; the supervisor never overlaps them with its history reads).
    """
    if upto is None:
        upto = await trio.to_thread.run_sync(reader.head)
    position = after
    while position < upto:
        records = await trio.to_thread.run_sync(
            reader.read, position, min(chunk_size, upto - position), chunk_bytes
        )
        if not records:
            return
        if records[-1].position > upto:
            records = [r for r in records if r.position <= upto]
            if not records:
                return
        position = records[-1].position
        yield records


@attrs.frozen(slots=True)
class ReaderHistory:
    """Histories read through a blocking reader in a worker thread: called, a session's by its
    id (a :data:`SessionHistory`); :meth:`by_key`, a keyed session's by its session key."""

    reader: SyncLogReader

    async def __call__(self, session_id: int, before: int) -> Sequence[LogRecord]:
        return await trio.to_thread.run_sync(self.reader.read_session, session_id, before)

    async def by_key(self, session_key: Hashable, before: int) -> Sequence[LogRecord]:
        """The records of the keyed session ``session_key`` before ``before``, in order."""
        if not isinstance(session_key, str):
            raise TypeError(f"a session key is a string, not {session_key!r}")
        return await trio.to_thread.run_sync(self.reader.read_keyed_session, session_key, before)


def history_from_reader(reader: SyncLogReader) -> ReaderHistory:
    """The histories of every actor type, read through a blocking reader in a worker thread."""
    return ReaderHistory(reader)


def _history_of(actor_type: ActorType, history: SessionHistory) -> KeyedHistory:
    """The history of ``actor_type``'s actors: by session id, or by key for a keyed type."""
    if not actor_type.keyed:
        return history
    if isinstance(history, ReaderHistory):
        return history.by_key
    raise ValueError(
        f"actor type {actor_type.name!r} reads its history by session key: pass"
        " history=history_from_reader(reader) or histories={name: ...}"
    )


async def resume_point(
    reader: SyncLogReader,
    upto_position: int,
    timeout_ms: int,
    registry: ActorRegistry = DEFAULT_REGISTRY,
) -> ResumePoint:
    """The clock and the live actors right after ``upto_position``, computed from the log.

    The clock is the record time at that position (record time is monotonic in log order); an
    actor is live when its latest record there (of its type's kinds) is not older than
    ``clock`` minus its type's timeout (``timeout_ms`` unless it has its own): exactly the actors
    the supervisor had not ended at that point (it ends them by the same rule). Each type is
    asked of the reader by the column that names it (session id, or session key for a keyed
    type), which answers from the window of records within the timeout, not the whole log.
    """
    if upto_position <= 0:
        return ResumePoint(position=upto_position, clock_ms=0, live_sessions=())
    if not len(registry):  # no type: only the clock
        clock, _ = await trio.to_thread.run_sync(reader.activity, upto_position, timeout_ms, ())
        return ResumePoint(position=upto_position, clock_ms=clock)
    clock = 0
    web: tuple[int, ...] = ()
    others: list[tuple[str, tuple[Hashable, ...]]] = []
    for actor_type in registry:
        timeout = actor_type.timeout_ms(timeout_ms)
        kinds = actor_type.kinds
        live: tuple[Hashable, ...]
        if actor_type.keyed:
            clock, by_key = await trio.to_thread.run_sync(
                reader.keyed_activity, upto_position, timeout, kinds
            )
            live = tuple(sorted(key for key, t in by_key.items() if t >= clock - timeout))
        else:
            clock, by_id = await trio.to_thread.run_sync(
                reader.activity, upto_position, timeout, kinds
            )
            ids = tuple(sorted(sid for sid, t in by_id.items() if t >= clock - timeout))
            if actor_type is WEB_ACTOR_TYPE:
                web = ids
                continue
            live = ids
        if live:
            others.append((actor_type.name, live))
    return ResumePoint(
        position=upto_position, clock_ms=clock, live_sessions=web, live_actors=tuple(others)
    )


async def live_sessions_at(
    reader: SyncLogReader,
    upto_position: int,
    timeout_ms: int,
    registry: ActorRegistry = DEFAULT_REGISTRY,
) -> list[int]:
    """Ids of the sessions (web, mobile: the types named by a session id) live right after
    ``upto_position``, sorted (see :func:`resume_point`)."""
    point = await resume_point(reader, upto_position, timeout_ms, registry)
    by_id = {t.name for t in registry if not t.keyed}
    ids = set(point.live_sessions)
    for name, keys in point.live_actors:
        if name in by_id:
            ids.update(key for key in keys if isinstance(key, int))
    return sorted(ids)


# -- clock ticks ------------------------------------------------------------------------------


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: a record's receive time is stamped with it, as in the API."""
    return time.time_ns() // 1_000_000


async def clock_ticker(
    log: Appender,
    interval_s: float,
    has_live_sessions: Callable[[], bool],
    *,
    now_ms: Callable[[], int] = wall_clock_ms,
) -> None:
    """Append a ``CLOCK_TICK`` record every ``interval_s`` seconds while sessions are live.

    Ticks are how inactive sessions end without new traffic, deterministically on replay (the
    tick's time is in the log). Runs until cancelled.
    """
    while True:
        await trio.sleep(interval_s)
        if has_live_sessions():
            tick = NewRecord(
                session_id=0,
                project_id=0,
                kind=RecordKind.CLOCK_TICK,
                received_at_ms=now_ms(),
                payload=b"",
            )
            try:
                await log.append(tick)
            except LogOverloaded:
                # A full log queue means traffic, and traffic moves the clock: skip this tick.
                continue
