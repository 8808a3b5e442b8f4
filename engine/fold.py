"""The rebuild's fold: the supervisor's scheduling without a task per session, in one thread.

A rebuild replays millions of short sessions; one trio task, mailbox and flush barrier per
session cost more than folding the session itself. :class:`LogFold` walks the records in log
order over a map of the live sessions' states (the very ``ActorState`` classes the actors fold:
``engine.session_state``, ``engine.mobile_session``, ``engine.v3_session``), and applies the
supervisor's rules exactly (``engine.supervisor``):

- the log clock is the largest ``received_at_ms`` seen; before record ``p`` every live session
  whose latest record time is more than its type's timeout behind the clock gets ``end(p)``, in
  order of (that time plus the timeout, type index, key), and its state is dropped (memory stays
  bounded by the live sessions, whatever the length of the log);
- a session activated by a record that is not a fresh start replays its earlier records first
  (``engine.actor.replay_history``, read by session id or session key);
- records of no actor type only move the clock;
- the events come out in dispatch order, so per-session order holds.

So a fold of a log yields the same events as the supervisor over it (tests/engine/test_fold.py
checks it against the actors). Sans-IO apart from the blocking history reader it is given:
run it in a worker thread.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence
from typing import Protocol

import attrs

from engine.actor import EngineCounters, replay_history
from engine.actor_types import DEFAULT_REGISTRY, ActorRegistry, ActorState
from engine.events import DomainEvent, RecordParked
from engine.lifecycle import lifecycle_outcome
from engine.supervisor import due_actors
from storage.records import LogRecord, RecordKind

__all__ = ["FoldHistory", "LogFold"]

ActorId = tuple[int, Hashable]


class FoldHistory(Protocol):
    """The blocking reads a fold needs to re-activate sessions (``storage.log.LogReader``)."""

    def read_session(self, session_id: int, before: int | None = None) -> list[LogRecord]: ...

    def read_keyed_session(
        self, session_key: str, before: int | None = None
    ) -> list[LogRecord]: ...


@attrs.define(slots=True, eq=False)
class _Live:
    """A live session: its state and the latest record time dispatched to it."""

    state: ActorState
    last_record_ms: int


class LogFold:
    """Folds chunks of records in log order into domain events, as the supervisor would.

    ``fold(chunk)`` returns the chunk's events; the counters (``counters``) are those of the
    supervisor's statistics. Sessions still live after the last chunk are left live (no
    artificial end), as the supervisor leaves them.
    """

    def __init__(
        self,
        *,
        history: FoldHistory,
        inactivity_timeout_ms: int,
        registry: ActorRegistry = DEFAULT_REGISTRY,
    ) -> None:
        if inactivity_timeout_ms < 0:
            raise ValueError("inactivity_timeout_ms must be >= 0")
        self._history = history
        self._registry = registry
        self._types = types = list(registry)
        self._type_index = {id(t): i for i, t in enumerate(types)}
        self._timeouts = registry.timeouts_ms(inactivity_timeout_ms)
        self._id_indexes = tuple(i for i, t in enumerate(types) if not t.keyed)
        self.counters = EngineCounters()
        self._live: dict[ActorId, _Live] = {}
        # (latest record time + timeout, type index, key); stale entries are skipped on pop.
        self._deadlines: list[tuple[int, int, Hashable]] = []
        self._clock = 0
        self.last_position = 0

    @property
    def live_actors(self) -> int:
        """How many sessions are live (their states held in memory)."""
        return len(self._live)

    def fold(self, chunk: Sequence[LogRecord]) -> list[DomainEvent]:
        """Apply ``chunk`` (the next records in log order); return the events they produced."""
        out: list[DomainEvent] = []
        live = self._live
        deadlines = self._deadlines
        type_for = self._registry.type_for
        type_index = self._type_index
        timeouts = self._timeouts
        counters = self.counters
        clock = self._clock
        for record in chunk:
            t = record.received_at_ms
            if t > clock:
                clock = t
            if deadlines and deadlines[0][0] < clock:
                self._end_stale(clock, record.position, out)
            actor_type = type_for(record.kind)
            if actor_type is not None:
                index = type_index[id(actor_type)]
                key = actor_type.key_of(record)
                session = live.get((index, key))
                if session is None:
                    session = self._activate(index, key, record)
                if t > session.last_record_ms:
                    session.last_record_ms = t
                    heapq.heappush(deadlines, (t + timeouts[index], index, key))
                state = session.state
                walked = state.messages_walked
                if not state.apply_record(record, out):
                    counters.parked_records += 1
                counters.messages_processed += state.messages_walked - walked
            elif record.kind >= RecordKind.ERASURE:
                self._lifecycle(record, out)
        self._clock = clock
        if chunk:
            self.last_position = chunk[-1].position
        counters.records_processed += len(chunk)
        counters.events_emitted += len(out)
        return out

    def _lifecycle(self, record: LogRecord, out: list[DomainEvent]) -> None:
        """A data-lifecycle record, as the supervisor takes it: its events, and an erasure drops
        the live states of its sessions without an end (a later record starts afresh)."""
        events, dropped = lifecycle_outcome(record)
        if any(isinstance(event, RecordParked) for event in events):
            self.counters.parked_records += 1
        for index in self._id_indexes:
            for session_id in dropped:
                self._live.pop((index, session_id), None)  # its deadline entry goes stale
        out.extend(events)

    def _end_stale(self, clock: int, position: int, out: list[DomainEvent]) -> None:
        live = self._live

        def last_record_ms(index: int, key: Hashable) -> int | None:
            session = live.get((index, key))
            return None if session is None else session.last_record_ms

        for index, key in due_actors(self._deadlines, clock, self._timeouts, last_record_ms):
            live.pop((index, key)).state.end(position, out)
            self.counters.passivations += 1

    def _activate(self, index: int, key: Hashable, first: LogRecord) -> _Live:
        actor_type = self._types[index]
        state = actor_type.new_state(key, first)
        if not actor_type.is_fresh(first):
            # A late record of an ended session (or one whose start came earlier): continue
            # where the previous incarnation stopped, as an actor re-activated does.
            if actor_type.keyed:
                if not isinstance(key, str):
                    raise TypeError(f"a session key is a string, not {key!r}")
                earlier = self._history.read_keyed_session(key, first.position)
            else:
                assert isinstance(key, int)
                earlier = self._history.read_session(key, first.position)
            self.counters.replayed_records += replay_history(
                state,
                earlier,
                inactivity_timeout_ms=self._timeouts[index],
                ended_after=True,
                actor_type=actor_type,
            )
        session = _Live(state, state.last_record_ms)
        self._live[index, key] = session
        self.counters.activations += 1
        if session.last_record_ms:
            heapq.heappush(
                self._deadlines, (session.last_record_ms + self._timeouts[index], index, key)
            )
        return session
