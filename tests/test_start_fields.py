"""A start fact is one edit: each field of ``StartInfo`` reaches every place that carries a start.

Each test walks ``attrs.fields(StartInfo)`` and gives every field a value of its own, so a field
added to the table but missed by one carrier (the sessions table's schema, its row, ...) fails here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import attrs
import pytest

from engine import events as ev
from engine.session_state import SessionState
from engine.start_info import START_FIELDS, StartInfo, start_field
from engine.start_payload import WebStartPayload
from projections import sessions
from projections.live_sessions import LiveSessions
from storage.records import NewRecord, RecordKind
from tests.engine.builders import commit

SESSION, PROJECT, T0 = 7, 2, 1_700_000_000_000
_SQL_TYPES = {"str": "TEXT", "str | None": "TEXT", "int": "INTEGER", "bool": "INTEGER"}


def _distinct_value(field: attrs.Attribute[Any], i: int) -> Any:
    """A value of the field's type, different from its default and from every other field's."""
    match field.type:
        case "bool":
            return not field.default
        case "int":
            return 1000 + i
        case "str" | "str | None":
            return f"{field.name}-{i}"
    raise AssertionError(f"StartInfo.{field.name}: a type this test cannot make ({field.type})")


def distinct_start() -> StartInfo:
    """A StartInfo in which every field holds a value of its own (none the default)."""
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(StartInfo)
    values = {f.name: _distinct_value(f, i) for i, f in enumerate(fields)}
    return StartInfo(**values)


def _facts(value: object) -> dict[str, Any]:
    return {name: getattr(value, name) for name in START_FIELDS}


@pytest.fixture
def conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    sessions.migrate(conn)
    return conn


def _column_of(field: attrs.Attribute[Any]) -> tuple[str, int, str | None]:
    """(type, not null, default) the sessions column of a start fact must have."""
    nullable = field.type == "str | None"
    default = field.default
    if default is None:
        literal = None
    elif isinstance(default, bool):
        literal = str(int(default))
    elif isinstance(default, int):
        literal = str(default)
    else:
        literal = "'" + str(default).replace("'", "''") + "'"
    return _SQL_TYPES[str(field.type)], int(not nullable), literal


def test_the_sessions_table_has_a_column_for_every_start_fact(conn: sqlite3.Connection) -> None:
    columns = {
        name: (sql_type, notnull, default)
        for _, name, sql_type, notnull, default, _ in conn.execute("PRAGMA table_info(sessions)")
    }
    for field in attrs.fields(StartInfo):
        assert columns.get(field.name) == _column_of(field), (
            f"StartInfo.{field.name}: the sessions table needs a new step "
            f"'ALTER TABLE sessions ADD COLUMN {field.name} ...' (shipped steps never change)"
        )


def started(start: StartInfo) -> ev.SessionStarted:
    """The SessionStarted the session actor makes of a start record holding ``start``."""
    payload = WebStartPayload(
        session_id=SESSION, project_id=PROJECT, start_timestamp=T0, delay=0, **_facts(start)
    )
    record = NewRecord(
        session_id=SESSION,
        project_id=PROJECT,
        kind=RecordKind.WEB_START,
        received_at_ms=T0,
        payload=payload.to_bytes(),
    )
    out: list[ev.DomainEvent] = []
    SessionState(SESSION).apply_record(commit([record])[0], out)
    [event] = out
    assert isinstance(event, ev.SessionStarted)
    return event


def test_every_start_fact_reaches_the_event_and_the_sessions_row(conn: sqlite3.Connection) -> None:
    start = distinct_start()
    event = started(start)
    assert event.start == start and type(event.start) is StartInfo
    sessions.apply(conn, [event])
    row = sessions.get_session(conn, PROJECT, SESSION)
    assert row is not None
    assert row.start_info() == start


def test_every_start_fact_reaches_the_live_session_and_assist_shows_its_live_keys(
    conn: sqlite3.Connection,
) -> None:
    start = distinct_start()
    event = started(start)
    from_event = LiveSessions()
    from_event.apply([event])
    sessions.apply(conn, [event])
    from_row = LiveSessions()  # as a restart reloads it
    from_row.load(sessions.live_sessions(conn), 1)
    for live in (from_event, from_row):
        session = live.get(PROJECT, SESSION)
        assert session is not None and session.start == start
        shown = session.assist_fields()
        for field in attrs.fields(StartInfo):
            key = start_field(field).live
            if key is not None:
                assert shown[key] == getattr(start, field.name), field.name
        # Nothing else of the start reaches Assist (a field's value is its own: see above).
        others = {f.name for f in attrs.fields(StartInfo) if start_field(f).live is None}
        assert not {str(getattr(start, name)) for name in others} & set(map(str, shown.values()))
