"""Session actors: one trio task per live session, draining a bounded mailbox.

See DESIGN.md, Concurrency.

Owns the actor task, its mailbox messages and the re-activation replay. The state and the
record-to-event translation live in ``engine.session_core`` and its platforms (the web's in
``engine.session_state``); the scheduling (who gets which record, when a session ends, when events
go to the sink) lives in ``engine.supervisor``.

Re-activation: an actor that starts for a session with earlier records (a late batch after the
session ended, or the first record after a process restart) first reads those records and replays
them through the same ``apply_record`` of their state with emission suppressed, so it continues
counters, pages and heuristics exactly where the previous incarnation stopped. The ends that the
previous incarnations went through are replayed too (see :func:`replay_history`), because an end
settles the heuristics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

import attrs
import trio

from engine.actor_types import WEB_ACTOR_TYPE, ActorState, ActorType
from engine.events import DomainEvent
from storage.budget import ByteBudget
from storage.records import LogRecord

__all__ = [
    "Countdown",
    "Deliver",
    "End",
    "EngineCounters",
    "Flush",
    "KeyedHistory",
    "SessionActor",
    "SessionHistory",
    "replay_history",
]

SessionHistory = Callable[[int, int], Awaitable[Sequence[LogRecord]]]
"""``await history(session_id, before)``: the session's records before ``before``, in order."""

KeyedHistory = Callable[[Any, int], Awaitable[Sequence[LogRecord]]]
"""``await history(key, before)``: an actor's records before ``before``, in order (any type's key;
for the web type the key is the session id, so a :data:`SessionHistory` is one)."""


@attrs.define(slots=True, eq=False)
class EngineCounters:
    """Counters shared by the supervisor and its actors (one trio thread: plain increments)."""

    records_processed: int = 0
    messages_processed: int = 0  # tracker messages walked in live (not replayed) batches
    events_emitted: int = 0
    parked_records: int = 0
    activations: int = 0
    replayed_records: int = 0
    passivations: int = 0


class Countdown:
    """Sets ``event`` once ``arrive`` was called ``count`` times (a one-shot flush barrier)."""

    __slots__ = ("event", "remaining")

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.event = trio.Event()
        if count <= 0:
            self.event.set()

    def arrive(self) -> None:
        """One participant is done."""
        self.remaining -= 1
        if self.remaining == 0:
            self.event.set()


@attrs.define(slots=True, eq=False)
class Deliver:
    """Apply ``record``; append the events it produces to ``out`` (the record's slot)."""

    record: LogRecord
    out: list[DomainEvent]


@attrs.define(slots=True, eq=False)
class End:
    """The session is inactive as of log position ``position``: emit ``SessionEnded``."""

    position: int
    out: list[DomainEvent]


@attrs.define(slots=True, eq=False)
class Flush:
    """Arrive at ``barrier`` once everything sent before this marker is processed."""

    barrier: Countdown


Mail = Deliver | End | Flush


def replay_history(
    state: ActorState,
    records: Sequence[LogRecord],
    *,
    inactivity_timeout_ms: int,
    ended_after: bool,
    actor_type: ActorType = WEB_ACTOR_TYPE,
) -> int:
    """Rebuild ``state`` from a session's earlier records, emitting nothing; return the count.

    The supervisor ends a session when its latest record time falls more than the timeout behind
    the log clock. Here only the session's own records are at hand, so an end is replayed between
    two records when the second one is more than the timeout after the first: exact when record
    times grow with positions (they are stamped on arrival), which is what makes a replay after a
    restart agree with the uninterrupted run. ``ended_after`` replays the end that certainly
    followed the last of these records (the session was not live any more when re-activated).
    Records of kinds ``actor_type`` does not own are skipped.
    """
    last = state.last_record_ms
    applied = 0
    kinds = actor_type.kinds
    for record in records:
        if record.kind not in kinds:
            continue
        if applied and record.received_at_ms - last > inactivity_timeout_ms:
            state.end(record.position, None)
        state.apply_record(record, None)
        last = max(last, record.received_at_ms)
        applied += 1
    if applied and ended_after:
        state.end(records[-1].position, None)
    return applied


class SessionActor:
    """One live incarnation of an actor: the state its type folds, behind a bounded mailbox.

    The supervisor creates it, starts :meth:`run` with ``nursery.start`` (which returns once the
    history is replayed) and talks to it only through ``send``. The task ends when the supervisor
    closes ``send``; an ``End`` only ends the session, not the task, so that a flush marker sent
    after it is still answered.
    """

    __slots__ = (
        "_budget",
        "_counters",
        "_receive",
        "actor_type",
        "key",
        "last_record_ms",
        "send",
        "state",
        "touched",
    )

    def __init__(
        self,
        key: Hashable,
        first: LogRecord | None = None,
        *,
        mailbox_size: int,
        counters: EngineCounters,
        budget: ByteBudget | None = None,
        actor_type: ActorType = WEB_ACTOR_TYPE,
    ) -> None:
        # ``first``: the record that activates this actor, None for a re-activation on restart.
        self.actor_type = actor_type
        self.key = key
        # Payload bytes waiting in all mailboxes: the supervisor takes a record's bytes before
        # it sends a Deliver, this actor gives them back once the record is applied.
        self._budget = budget
        self.state: ActorState = actor_type.new_state(key, first)
        send, receive = trio.open_memory_channel[Mail](mailbox_size)
        self.send: trio.MemorySendChannel[Mail] = send
        self._receive: trio.MemoryReceiveChannel[Mail] = receive
        self._counters = counters
        # Supervisor bookkeeping: max received_at_ms of this session's records (its activity
        # time), and whether it got mail in the current chunk.
        self.last_record_ms = 0
        self.touched = False

    def mailbox_used(self) -> int:
        """Messages waiting in the mailbox."""
        return self._receive.statistics().current_buffer_used

    async def run(
        self,
        *,
        history: KeyedHistory | None,
        replay_before: int,
        ended_after: bool,
        inactivity_timeout_ms: int,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Replay the history (if ``history`` is given), report started, then drain the mailbox.

        ``replay_before``: replay records with ``position < replay_before``.
        """
        state = self.state
        if history is not None:
            records = await history(self.key, replay_before)
            replayed = replay_history(
                state,
                records,
                inactivity_timeout_ms=inactivity_timeout_ms,
                ended_after=ended_after,
                actor_type=self.actor_type,
            )
            self._counters.replayed_records += replayed
        self.last_record_ms = state.last_record_ms
        task_status.started()
        counters = self._counters
        budget = self._budget
        async with self._receive:
            async for mail in self._receive:
                # Every record is applied synchronously, start to end: no await per message.
                if type(mail) is Deliver:
                    walked = state.messages_walked
                    if not state.apply_record(mail.record, mail.out):
                        counters.parked_records += 1
                    counters.messages_processed += state.messages_walked - walked
                    if budget is not None:
                        budget.release(len(mail.record.payload))
                elif type(mail) is End:
                    state.end(mail.position, mail.out)
                else:
                    assert type(mail) is Flush
                    mail.barrier.arrive()
