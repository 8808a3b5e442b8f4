"""The v3 read model: what /3/events/show, /3/entities/values, /3/events/delete and the interval
reports read, from events the v3 actor emits for real records."""

from __future__ import annotations

import sqlite3
from typing import Any

from engine.events import DomainEvent
from engine.v3_protocol import event_id
from engine.v3_session import V3SessionState
from projections import v3
from projections.v3 import IntervalFilter, V3Entity, V3EventQuery
from storage.records import NewRecord
from storage.sqlite import atomic
from tests.engine.builders import T0, commit
from tests.engine.v3_builders import AID, PROJECT, v3_delete, v3_event, v3_record

SESSION = "bigbrother01"


def project(conn: sqlite3.Connection, records: list[NewRecord]) -> None:
    """Fold the records with one actor per session key, and apply what they emit."""
    states: dict[str, V3SessionState] = {}
    out: list[DomainEvent] = []
    for record in commit(records):
        state = states.setdefault(record.session_key, V3SessionState(record.session_key))
        state.apply_record(record, out)
    with atomic(conn):
        v3.apply(conn, out)


RECORDS = [
    v3_record(
        "alice",
        SESSION,
        [
            v3_event("START", "APPSTART", 100, {"app": "BigBrother", "n": 1}),
            v3_event("UPDATE", "APPSTART", 150, {"app": "BigBrother", "n": 2}),
            v3_event("END", "APPSTART", 206, {"app": "BigBrother"}),
        ],
        received_at=T0,
    ),
    v3_record(
        "alice",
        "",
        [v3_event("UPDATE", "POSITION", 120, {"lat": 50.7, "gone": None}, "ENVIRONMENT")],
        received_at=T0,
    ),
    v3_record(
        "bob", SESSION, [v3_event("START", "APPSTART", 300, {"app": "Mail"})], received_at=T0
    ),
]


def test_show_events_filters_and_pages_one_users_events(conn: sqlite3.Connection) -> None:
    project(conn, RECORDS)
    total, rows = v3.show_events(conn, PROJECT, AID, "alice", V3EventQuery())
    assert total == 4
    assert [(r.id, r.action, r.type, r.timestamp, r.session) for r in rows] == [
        (1000, "START", "APPSTART", 100, SESSION),
        (2000, "UPDATE", "POSITION", 120, ""),
        (1001, "UPDATE", "APPSTART", 150, SESSION),
        (1002, "END", "APPSTART", 206, SESSION),
    ]
    assert rows[1].entities == (V3Entity("lat", 50.7), V3Entity("gone", None))
    assert rows[1].category == "ENVIRONMENT"

    def ids(**query: Any) -> list[int]:
        _, rows = v3.show_events(conn, PROJECT, AID, "alice", V3EventQuery(**query))
        return [r.id for r in rows]

    assert ids(start=120, end=150) == [2000, 1001]
    assert ids(type="APPSTART", category="ACTIVITY") == [1000, 1001, 1002]
    assert ids(entities=(V3Entity("app", "BigBrother"), V3Entity("n", 2))) == [1001]
    assert ids(entities=(V3Entity("gone", None),)) == [2000]
    assert ids(source="MOBILE", limit=1, offset=1) == [2000]
    assert ids(source="WEBBASED") == []
    assert v3.show_events(conn, PROJECT, AID + 1, "alice", V3EventQuery()) == (0, [])


def test_entity_values_and_event_session(conn: sqlite3.Connection) -> None:
    project(conn, RECORDS)
    assert v3.entity_values(conn, PROJECT, AID, "alice", "APPSTART", "app") == ["BigBrother"]
    assert v3.entity_values(conn, PROJECT, AID, "alice", "APPSTART", "n") == [1, 2]
    assert v3.event_session(conn, PROJECT, event_id(3, 0)) == (AID, "bob", SESSION)
    assert v3.event_session(conn, PROJECT + 1, event_id(3, 0)) is None
    assert v3.event_session(conn, PROJECT, 999) is None


def test_intervals_carry_their_entities_and_totals_sum_the_closed_ones(
    conn: sqlite3.Connection,
) -> None:
    project(conn, RECORDS)
    total, rows = v3.intervals(conn, PROJECT, IntervalFilter())
    assert total == 2
    alice, bob = rows
    assert (alice.start, alice.end, alice.duration, alice.user) == (100, 206, 106, "alice")
    assert alice.entities == (V3Entity("app", "BigBrother"), V3Entity("n", 2))
    assert (bob.end, bob.duration) == (None, None)
    assert v3.intervals(conn, PROJECT, IntervalFilter(user="bob"))[0] == 1
    assert v3.intervals(conn, PROJECT, IntervalFilter(start=101))[1] == [bob]
    assert [
        (t.type, t.count, t.closed, t.total_duration)
        for t in v3.totals(conn, PROJECT, IntervalFilter())
    ] == [("APPSTART", 2, 1, 106)]


def test_a_deletion_removes_the_event_everywhere_and_fixes_its_interval(
    conn: sqlite3.Connection,
) -> None:
    project(
        conn,
        [
            *RECORDS,
            v3_delete("alice", SESSION, event_id(1, 1), received_at=T0),  # the UPDATE
            v3_delete("alice", SESSION, event_id(1, 2), received_at=T0),  # the END: reopened
            v3_delete("alice", SESSION, event_id(3, 0), received_at=T0),  # bob's: not alice's
        ],
    )
    assert [r.id for r in v3.show_events(conn, PROJECT, AID, "alice", V3EventQuery())[1]] == [
        1000,
        2000,
    ]
    gone = "SELECT count(*) FROM v3_entities WHERE event_id IN (1001, 1002)"
    assert conn.execute(gone).fetchone() == (0,)
    (alice, bob) = v3.intervals(conn, PROJECT, IntervalFilter())[1]
    assert (alice.end, alice.duration, alice.entities) == (
        None,
        None,
        (V3Entity("app", "BigBrother"), V3Entity("n", 1)),
    )
    assert bob.start_event_id == event_id(3, 0)  # a deletion names its own session's events
    project(conn, [*RECORDS, v3_delete("alice", SESSION, 1000, received_at=T0)])
    assert v3.intervals(conn, PROJECT, IntervalFilter(user="alice")) == (0, [])


def test_forget_sessions_and_reset(conn: sqlite3.Connection) -> None:
    project(conn, RECORDS)
    with atomic(conn):
        v3.forget_sessions(conn, [RECORDS[0].session_id])
    _, rows = v3.show_events(conn, PROJECT, AID, "alice", V3EventQuery())
    assert [r.session for r in rows] == [""]
    with atomic(conn):
        v3.reset(conn)
    assert v3.intervals(conn, PROJECT, IntervalFilter()) == (0, [])
