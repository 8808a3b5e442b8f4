"""The v3 session actor: intervals from START/UPDATE/END, orphans, point events, deletions,
parked bad payloads, and open intervals that survive an end, a re-activation and a restart."""

from __future__ import annotations

import attrs
import pytest

from engine.actor_types import DEFAULT_REGISTRY, V3_ACTOR_TYPE
from engine.events import (
    DomainEvent,
    RecordParked,
    V3EventDeleted,
    V3EventRecorded,
    V3IntervalClosed,
    V3IntervalOpened,
)
from engine.supervisor import ResumePoint, Supervisor, history_from_reader, resume_point
from engine.v3_protocol import event_id, session_id_of
from engine.v3_session import V3SessionState
from storage.records import LogRecord, NewRecord, RecordKind
from tests.engine.builders import T0, CollectingSink, MemoryLog, clock_tick, commit
from tests.engine.v3_builders import (
    AID,
    PROJECT,
    session_key,
    v3_delete,
    v3_event,
    v3_record,
)

TIMEOUT = 150_000  # the supervisor's default
SESSION = "bigbrother01"
KEY = session_key(AID, "alice", SESSION)


def fold(records: list[NewRecord]) -> tuple[V3SessionState, list[DomainEvent]]:
    state = V3SessionState(KEY)
    out: list[DomainEvent] = []
    for record in commit(records):
        state.apply_record(record, out)
    return state, out


def summary(events: list[DomainEvent]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, V3EventRecorded):
            rows.append(("event", e.event_id, e.action, e.type, e.orphan))
        elif isinstance(e, V3IntervalOpened):
            rows.append(("opened", e.start_event_id, e.type, e.start_ts))
        elif isinstance(e, V3IntervalClosed):
            rows.append(("closed", e.start_event_id, e.end_event_id, e.type, e.duration))
        elif isinstance(e, V3EventDeleted):
            rows.append(("deleted", e.event_id))
        elif isinstance(e, RecordParked):
            rows.append(("parked", e.position, e.kind))
    return rows


def test_start_update_end_make_an_interval_with_its_duration_in_seconds() -> None:
    _, out = fold(
        [
            v3_record(
                "alice",
                SESSION,
                [
                    v3_event("START", "APPSTART", 1_400_000_000, {"app": "BigBrother"}),
                    v3_event("UPDATE", "APPSTART", 1_400_000_050, {"app": "BigBrother"}),
                ],
                received_at=T0,
            ),
            v3_record(
                "alice", SESSION, [v3_event("END", "APPSTART", 1_400_000_106)], received_at=T0
            ),
        ]
    )
    assert summary(out) == [
        ("event", 1000, "START", "APPSTART", False),
        ("opened", 1000, "APPSTART", 1_400_000_000),
        ("event", 1001, "UPDATE", "APPSTART", False),
        ("event", 2000, "END", "APPSTART", False),
        ("closed", 1000, 2000, "APPSTART", 106),
    ]
    first = out[0]
    assert isinstance(first, V3EventRecorded)
    assert (first.session_id, first.project_id) == (session_id_of(KEY), PROJECT)
    assert (first.aid, first.user, first.session, first.category) == (
        AID,
        "alice",
        SESSION,
        "ACTIVITY",
    )
    assert first.timestamp == 1_400_000_000_000  # ms from the event's own time (invariant 7)
    assert first.entities == (("app", '"BigBrother"'),)


def test_an_end_without_start_and_a_second_start_are_flagged_orphans() -> None:
    state, out = fold(
        [
            v3_record(
                "alice",
                SESSION,
                [
                    v3_event("END", "SCREEN", 10),
                    v3_event("START", "SCREEN", 20),
                    v3_event("START", "SCREEN", 30),  # the first START stays the open one
                    v3_event("START", "NETWORK", 31),  # another type: its own interval
                    v3_event("END", "SCREEN", 50),
                ],
                received_at=T0,
            )
        ]
    )
    assert summary(out) == [
        ("event", 1000, "END", "SCREEN", True),
        ("event", 1001, "START", "SCREEN", False),
        ("opened", 1001, "SCREEN", 20),
        ("event", 1002, "START", "SCREEN", True),
        ("event", 1003, "START", "NETWORK", False),
        ("opened", 1003, "NETWORK", 31),
        ("event", 1004, "END", "SCREEN", False),
        ("closed", 1001, 1004, "SCREEN", 30),
    ]
    assert state.open_intervals() == {"NETWORK": (1003, 31)}


def test_events_without_a_session_are_point_events() -> None:
    state = V3SessionState(session_key(AID, "alice", ""))
    out: list[DomainEvent] = []
    record = commit([v3_record("alice", "", [v3_event("START", "POSITION", 5)], received_at=T0)])
    assert state.apply_record(record[0], out)
    assert summary(out) == [("event", 1000, "START", "POSITION", False)]
    assert state.open_intervals() == {}


def test_a_deleted_start_drops_its_interval_and_a_deleted_end_reopens_it() -> None:
    records = [
        v3_record("alice", SESSION, [v3_event("START", "SCREEN", 20)], received_at=T0),
        v3_record("alice", SESSION, [v3_event("END", "SCREEN", 25)], received_at=T0),
        v3_delete("alice", SESSION, event_id(2, 0), received_at=T0),  # the END
    ]
    state, out = fold(records)
    assert summary(out)[-2:] == [("deleted", 2000), ("opened", 1000, "SCREEN", 20)]
    assert state.open_intervals() == {"SCREEN": (1000, 20)}
    state, out = fold([*records, v3_delete("alice", SESSION, 1000, received_at=T0)])
    assert summary(out)[-1] == ("deleted", 1000)
    assert state.open_intervals() == {}


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"aid": "7", "user": "alice", "session": "", "events": []}',
        b'{"aid": 7, "user": "alice", "session": "", "events": [1]}',
        b'{"aid": 7, "user": "alice", "session": "", "events": [{"action": "STOP"}]}',
        b'{"aid": 7, "user": "alice", "session": "", "events": [{"action": "END", "type": "A",'
        b' "category": "ACTIVITY", "timestamp": "soon"}]}',
        b'{"aid": 7, "user": 3, "session": "", "events": []}',
        b'{"aid": 7, "user": "alice", "session": "", "events": [{"action": "END", "type": "A",'
        b' "category": "ACTIVITY", "timestamp": 1, "entities": [{"key": 1}]}]}',
    ],
)
def test_a_payload_that_is_not_a_v3_record_is_parked_and_the_actor_carries_on(
    payload: bytes,
) -> None:
    good = v3_record("alice", SESSION, [v3_event("START", "SCREEN", 20)], received_at=T0)
    bad = NewRecord(
        session_id=good.session_id,
        project_id=PROJECT,
        kind=RecordKind.V3_EVENT,
        received_at_ms=T0,
        payload=payload,
        session_key=KEY,
    )
    bad_delete = attrs.evolve(bad, kind=RecordKind.V3_DELETE)
    state, out = fold([bad, bad_delete, good])
    assert summary(out) == [
        ("parked", 1, RecordKind.V3_EVENT),
        ("parked", 2, RecordKind.V3_DELETE),
        ("event", 3000, "START", "SCREEN", False),
        ("opened", 3000, "SCREEN", 20),
    ]
    assert (state.records_parked, state.records_applied) == (2, 1)


def test_the_default_registry_routes_v3_records_by_session_key() -> None:
    assert DEFAULT_REGISTRY.type_for(RecordKind.V3_EVENT) is V3_ACTOR_TYPE
    assert DEFAULT_REGISTRY.type_for(RecordKind.V3_DELETE) is V3_ACTOR_TYPE
    (record,) = commit([v3_record("alice", SESSION, [], received_at=T0)])
    assert V3_ACTOR_TYPE.keyed and V3_ACTOR_TYPE.key_of(record) == KEY


def interval_log() -> list[LogRecord]:
    """START, then silence past the timeout (the actor ends), then END: one interval."""
    return commit(
        [
            v3_record("alice", SESSION, [v3_event("START", "APPSTART", 1000)], received_at=T0),
            clock_tick(T0 + TIMEOUT + 10_000),  # ends the actor: only memory is freed
            v3_record(
                "alice", SESSION, [v3_event("END", "APPSTART", 1106)], received_at=T0 + 200_000
            ),
        ]
    )


async def run(records: list[LogRecord], resume: ResumePoint | None = None) -> CollectingSink:
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(history=history_from_reader(log), sink=sink)
    await supervisor.run_until(log, log.head(), resume=resume, chunk_size=1)
    return sink


async def test_an_open_interval_stays_open_across_the_actors_end_and_reactivation() -> None:
    sink = await run(interval_log())
    closed = [e for e in sink.events if isinstance(e, V3IntervalClosed)]
    assert [(e.start_event_id, e.end_event_id, e.duration) for e in closed] == [(1000, 3000, 106)]
    assert not [e for e in sink.events if isinstance(e, V3EventRecorded) and e.orphan]


async def test_a_restart_in_the_middle_of_an_open_interval_resumes_it() -> None:
    records = interval_log()
    before = await run(records[:1])  # the process stops with the interval open
    assert [type(e) for e in before.events] == [V3EventRecorded, V3IntervalOpened]
    log = MemoryLog(records)
    resume = await resume_point(log, 1, TIMEOUT)
    assert resume.live_actors == (("v3", (KEY,)),)
    after = await run(records, resume)  # from position 1 on, as a restarted server is
    assert all(e.position > 1 for e in after.events)
    assert summary(after.events) == [
        ("event", 3000, "END", "APPSTART", False),
        ("closed", 1000, 3000, "APPSTART", 106),
    ]
