"""The v3 session actor's state: one (app, user, session) of the generic events API (V3.md).

Folds ``V3_EVENT`` records (one ``/3/events/update`` request's events of one session, in request
order) and ``V3_DELETE`` records (one ``/3/events/delete``). Per event type, START opens an
interval, UPDATEs attach to the open one, END closes it with ``duration = end.ts - start.ts`` in
the client's seconds (V3.md 9.4). An END with no open interval of its type, or a second START
while one is open, is stored and flagged ``orphan``, never an error (mobile clients send out of
order). An event without a session (``session == ""``) is a point event: it opens nothing.

Not a :class:`~engine.session_core.SessionCore`: that core's end emits ``SessionEnded``, which the
sessions projection folds into a web/mobile session row, and its start is the tracker's start
payload. A v3 actor holds no heuristics: its end only frees memory, and the open intervals live
on in the log, so a re-activation's replay (or a restart's keyed resume) opens them again.

Time comes from the events (DESIGN.md invariant 7). A payload that is not what
``engine.v3_protocol.V3Record`` writes is parked (invariant 8): the actor carries on.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from engine.events import (
    DomainEvent,
    RecordParked,
    V3EventDeleted,
    V3EventRecorded,
    V3IntervalClosed,
    V3IntervalOpened,
    clamp_int64,
    repair_text,
)
from engine.v3_protocol import (
    ACTIONS,
    MAX_EVENTS_PER_REQUEST,
    Entity,
    V3Record,
    event_id,
)
from storage.records import LogRecord, RecordKind

__all__ = ["V3_KINDS", "V3SessionState"]

V3_KINDS = frozenset({RecordKind.V3_EVENT, RecordKind.V3_DELETE})


@attrs.frozen(slots=True)
class _Open:
    """An open interval: its START's id and time."""

    event_id: int
    ts: float


def _check(record: V3Record) -> V3Record:
    """``record`` if its fields have the types ``V3Record.to_bytes`` writes (ValueError if not):
    ``from_bytes`` trusts the writer, the fold must not (a payload may be anything)."""

    def text(value: Any, what: str) -> None:
        if not isinstance(value, str):
            raise ValueError(f"{what} is not a string: {value!r}")

    def number(value: Any, what: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{what} is not a number: {value!r}")

    if isinstance(record.aid, bool) or not isinstance(record.aid, int):
        raise ValueError(f"aid is not an integer: {record.aid!r}")
    text(record.user, "user")
    text(record.session, "session")
    if len(record.events) > MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"more than {MAX_EVENTS_PER_REQUEST} events in one record")
    for index, event in enumerate(record.events):
        if event.action not in ACTIONS:
            raise ValueError(f"event {index}: unknown action {event.action!r}")
        text(event.type, f"event {index}: type")
        text(event.category, f"event {index}: category")
        number(event.timestamp, f"event {index}: timestamp")
        for entity in event.entities:
            text(entity.key, f"event {index}: an entity key")
    return record


def _entities(entities: tuple[Entity, ...]) -> tuple[tuple[str, str | None], ...]:
    """(key, value as compact JSON text or ``None`` for null), in the order sent."""
    return tuple(
        (
            repair_text(e.key),
            None if e.value is None else repair_text(json.dumps(e.value, separators=(",", ":"))),
        )
        for e in entities
    )


def _object(payload: bytes) -> dict[str, Any]:
    body = json.loads(payload)
    if not isinstance(body, dict):
        raise ValueError("a v3 payload is a JSON object")
    return body


class V3SessionState:
    """The state of one v3 session actor; satisfies :class:`engine.actor_types.ActorState`."""

    __slots__ = (
        "_last_closed",
        "_open",
        "last_record_ms",
        "messages_walked",
        "project_id",
        "records_applied",
        "records_parked",
        "session_id",
        "session_key",
    )

    def __init__(self, session_key: str, session_id: int = 0, project_id: int = 0) -> None:
        self.session_key = session_key
        self.session_id = session_id
        self.project_id = project_id
        self.last_record_ms = 0
        self.messages_walked = 0
        self.records_applied = 0
        self.records_parked = 0
        self._open: dict[str, _Open] = {}  # event type -> its open interval
        # event type -> (END id, its interval's START): a deleted END reopens that interval.
        self._last_closed: dict[str, tuple[int, _Open]] = {}

    def open_intervals(self) -> dict[str, tuple[int, float]]:
        """Event type -> (START id, start ts) of each open interval (for tests and debugging)."""
        return {t: (o.event_id, o.ts) for t, o in self._open.items()}

    def apply_record(self, record: LogRecord, out: list[DomainEvent] | None) -> bool:
        """Apply one record; False when it was parked (``RecordParked`` emitted)."""
        self.last_record_ms = max(self.last_record_ms, record.received_at_ms)
        if record.session_id:
            self.session_id = record.session_id
        if record.project_id:
            self.project_id = record.project_id
        events: list[DomainEvent] = []
        try:
            if record.kind == RecordKind.V3_EVENT:
                self._apply_events(record, events)
            elif record.kind == RecordKind.V3_DELETE:
                self._apply_delete(record, events)
            else:
                raise LookupError(f"the v3 actor does not apply record kind {int(record.kind)}")
        except Exception as exc:  # noqa: BLE001 - invariant 8: park the record, never stop
            self.records_parked += 1
            if out is not None:
                out.append(
                    RecordParked(
                        position=record.position,
                        session_id=self.session_id,
                        project_id=self.project_id,
                        timestamp=record.received_at_ms,
                        error=f"{type(exc).__name__}: {exc}",
                        kind=int(record.kind),
                    )
                )
            return False
        self.records_applied += 1
        if out is not None:
            out.extend(events)
        return True

    def end(self, position: int, out: list[DomainEvent] | None) -> None:
        """Inactive: nothing to settle, and open intervals stay open (the log keeps them)."""

    def _apply_events(self, record: LogRecord, out: list[DomainEvent]) -> None:
        """Check the whole record first, then fold it: a bad payload changes nothing."""
        v3 = _check(V3Record.from_bytes(record.payload))
        user, session = repair_text(v3.user), repair_text(v3.session)
        parsed = [
            V3EventRecorded(
                position=record.position,
                session_id=self.session_id,
                project_id=self.project_id,
                timestamp=clamp_int64(round(event.timestamp * 1000)),
                event_id=event_id(record.position, index),
                aid=v3.aid,
                user=user,
                session=session,
                action=event.action,
                type=repair_text(event.type),
                category=repair_text(event.category),
                ts=event.timestamp,
                entities=_entities(event.entities),
            )
            for index, event in enumerate(v3.events)
        ]
        self.messages_walked += len(parsed)
        for event in parsed:
            self._fold(event, out)

    def _fold(self, event: V3EventRecorded, out: list[DomainEvent]) -> None:
        head = {
            "position": event.position,
            "session_id": event.session_id,
            "project_id": event.project_id,
            "timestamp": event.timestamp,
        }
        if not event.session:  # a point event: no interval to open or close
            out.append(event)
            return
        open_ = self._open.get(event.type)
        if event.action == "START":
            if open_ is not None:  # a second START: the open interval stays the one
                out.append(attrs.evolve(event, orphan=True))
                return
            self._open[event.type] = _Open(event.event_id, event.ts)
            out.append(event)
            out.append(
                V3IntervalOpened(
                    **head, start_event_id=event.event_id, type=event.type, start_ts=event.ts
                )
            )
        elif event.action == "END":
            if open_ is None:
                out.append(attrs.evolve(event, orphan=True))
                return
            del self._open[event.type]
            self._last_closed[event.type] = (event.event_id, open_)
            out.append(event)
            out.append(
                V3IntervalClosed(
                    **head,
                    start_event_id=open_.event_id,
                    end_event_id=event.event_id,
                    type=event.type,
                    end_ts=event.ts,
                    duration=event.ts - open_.ts,
                )
            )
        else:  # an UPDATE attaches to the open interval of its type (the projection links it)
            out.append(event)

    def _apply_delete(self, record: LogRecord, out: list[DomainEvent]) -> None:
        body = _object(record.payload)
        event_id = body.get("id")
        if isinstance(event_id, bool) or not isinstance(event_id, int) or event_id <= 0:
            raise ValueError(f"id is not a positive integer: {event_id!r}")
        head = {
            "position": record.position,
            "session_id": self.session_id,
            "project_id": self.project_id,
            "timestamp": record.received_at_ms,
        }
        out.append(V3EventDeleted(**head, event_id=event_id))
        for type_, open_ in list(self._open.items()):
            if open_.event_id == event_id:  # its START is gone: the interval is gone
                del self._open[type_]
        for type_, (end_id, interval) in list(self._last_closed.items()):
            if interval.event_id == event_id:  # a closed interval lost its START: forget it
                del self._last_closed[type_]
            if end_id != event_id:
                continue
            del self._last_closed[type_]
            if type_ not in self._open:  # its END is gone: the interval is open again
                self._open[type_] = interval
                out.append(
                    V3IntervalOpened(
                        **head, start_event_id=interval.event_id, type=type_, start_ts=interval.ts
                    )
                )
