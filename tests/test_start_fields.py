"""A start fact is one edit: each field of ``StartInfo`` reaches every place that carries a start.

Each test walks ``attrs.fields(StartInfo)`` and gives every field a value of its own, so a field
added to the table but missed by one carrier (the sessions table's schema, its row, ...) fails here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from api.public_v1 import user_session_json
from engine import events as ev
from engine.session_state import WebSessionState
from engine.start_info import START_FIELDS, StartField, StartInfo, start_field
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


def _shows_exactly(
    answer: dict[str, Any], start: StartInfo, key_of: Callable[[StartField], str | None]
) -> None:
    """``answer`` holds the facts ``key_of`` gives a key, under it, and no other fact's value."""
    for field in attrs.fields(StartInfo):
        key = key_of(start_field(field))
        if key is not None:
            assert answer[key] == getattr(start, field.name), field.name
    # Every fact's value is its own (distinct_start), so a hidden one shows as its value.
    # (Booleans aside: the answers' own flags share their two values.)
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(StartInfo)
    hidden = {
        str(getattr(start, f.name))
        for f in fields
        if key_of(start_field(f)) is None and f.type != "bool"
    }
    assert not hidden & {str(v) for v in answer.values()}


def test_every_start_fact_declares_its_public_keys_once() -> None:
    declared = [start_field(f) for f in attrs.fields(StartInfo)]
    json_keys = [d.json for d in declared]
    live_keys = [d.live for d in declared if d.live is not None]
    assert len(set(json_keys)) == len(json_keys) and len(set(live_keys)) == len(live_keys)
    assert all(key[0].islower() and "_" not in key for key in json_keys + live_keys)


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


def _payload(start: StartInfo) -> WebStartPayload:
    return WebStartPayload(
        session_id=SESSION, project_id=PROJECT, start_timestamp=T0, delay=0, **_facts(start)
    )


def test_every_start_fact_reaches_the_start_record_json() -> None:
    start = distinct_start()
    written = json.loads(_payload(start).to_bytes())
    assert {name: written[name] for name in START_FIELDS} == _facts(start)
    assert WebStartPayload.from_bytes(_payload(start).to_bytes()).start_info() == start


def started(start: StartInfo) -> ev.SessionStarted:
    """The SessionStarted the session actor makes of a start record holding ``start``."""
    payload = _payload(start)
    record = NewRecord(
        session_id=SESSION,
        project_id=PROJECT,
        kind=RecordKind.WEB_START,
        received_at_ms=T0,
        payload=payload.to_bytes(),
    )
    out: list[ev.DomainEvent] = []
    WebSessionState(SESSION).apply_record(commit([record])[0], out)
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
        _shows_exactly(session.assist_fields(), start, lambda f: f.live)


def test_every_start_fact_listed_for_v1_user_sessions_reaches_that_json(
    conn: sqlite3.Connection,
) -> None:
    start = distinct_start()
    sessions.apply(conn, [started(start)])
    row = sessions.get_session(conn, PROJECT, SESSION)
    assert row is not None
    _shows_exactly(user_session_json(row), start, lambda f: f.json if f.user_sessions else None)
