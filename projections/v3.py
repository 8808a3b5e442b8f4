"""The ``v3`` projection: events, entities and intervals of the v3 generic events API (V3.md).

Owns ``v3_events`` (one row per event, its id ``position * 1000 + index``, its ``interval_id`` =
the START id of the interval it belongs to), ``v3_entities`` (its ``{key, value}`` pairs, the
value as compact JSON text, NULL for null) and ``v3_intervals`` (START .. END of one type in one
session, open while ``end_event_id`` is NULL, ``duration`` = end ts - start ts in seconds).

The actor decides what opens and closes (``V3IntervalOpened`` / ``V3IntervalClosed``); an
UPDATE joins the interval of its type open in its session when it is applied. A deletion
(``V3EventDeleted``) removes the event from the three tables: a deleted START takes its interval
with it, a deleted END leaves its interval open (the actor reopens it too). Rows depend only on
the events in order, so a rebuild equals the live result (invariant 6).

The reader functions at the end are what ``/3/events/show``, ``/3/entities/values``,
``/3/events/delete`` and the public v1 ``/v3/intervals`` and ``/v3/totals`` routes call.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from engine import events as ev
from projections.base import SqlProjection, forget_checkpoint
from storage.schema import apply_migrations

NAME = "v3"

STEPS: list[str] = [
    """
    CREATE TABLE v3_events (
        event_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        session_id INTEGER NOT NULL,
        aid INTEGER NOT NULL,
        user TEXT NOT NULL,
        session TEXT NOT NULL,
        action TEXT NOT NULL,
        type TEXT NOT NULL,
        category TEXT NOT NULL,
        ts NUMERIC NOT NULL,
        orphan INTEGER NOT NULL,
        interval_id INTEGER NULL
    );
    CREATE INDEX v3_events_user_type_ts ON v3_events (project_id, aid, user, type, ts);
    CREATE INDEX v3_events_user_session ON v3_events (project_id, aid, user, session);
    CREATE INDEX v3_events_session ON v3_events (session_id);
    CREATE INDEX v3_events_interval ON v3_events (interval_id) WHERE interval_id IS NOT NULL;
    CREATE TABLE v3_entities (
        event_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NULL,
        PRIMARY KEY (event_id, idx)
    ) WITHOUT ROWID;
    CREATE INDEX v3_entities_key_value ON v3_entities (key, value);
    CREATE TABLE v3_intervals (
        start_event_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        session_id INTEGER NOT NULL,
        aid INTEGER NOT NULL,
        user TEXT NOT NULL,
        session TEXT NOT NULL,
        type TEXT NOT NULL,
        start_ts NUMERIC NOT NULL,
        end_event_id INTEGER NULL,
        end_ts NUMERIC NULL,
        duration NUMERIC NULL
    );
    CREATE INDEX v3_intervals_type_start ON v3_intervals (project_id, type, start_ts);
    CREATE INDEX v3_intervals_user_start ON v3_intervals (project_id, user, start_ts);
    CREATE INDEX v3_intervals_open ON v3_intervals (session_id, type) WHERE end_event_id IS NULL;
    """,
]


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the v3 tables."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the v3 tables and forget the checkpoint."""
    for table in ("v3_entities", "v3_events", "v3_intervals"):
        conn.execute(f"DELETE FROM {table}")
    forget_checkpoint(conn, NAME)


_INSERT_EVENT = """
INSERT OR REPLACE INTO v3_events (event_id, project_id, session_id, aid, user, session, action,
    type, category, ts, orphan, interval_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (
    SELECT start_event_id FROM v3_intervals
    WHERE ? AND session_id = ? AND type = ? AND end_event_id IS NULL
))
"""
_OPEN = """
INSERT INTO v3_intervals (start_event_id, project_id, session_id, aid, user, session, type,
    start_ts)
SELECT event_id, project_id, session_id, aid, user, session, type, ? FROM v3_events
WHERE event_id = ?
ON CONFLICT (start_event_id) DO UPDATE SET end_event_id = NULL, end_ts = NULL, duration = NULL
"""
_CLOSE = """
UPDATE v3_intervals SET end_event_id = ?, end_ts = ?, duration = ? WHERE start_event_id = ?
"""
_LINK = "UPDATE v3_events SET interval_id = ? WHERE event_id = ?"


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Fold v3 events into the tables, one statement group per event in order (caller's
    transaction): an UPDATE's interval is the one open when it is applied."""
    for event in events:
        match event:
            case ev.V3EventRecorded():
                _record(conn, event)
            case ev.V3IntervalOpened():
                conn.execute(_OPEN, (event.start_ts, event.start_event_id))
                conn.execute(_LINK, (event.start_event_id, event.start_event_id))
            case ev.V3IntervalClosed():
                conn.execute(
                    _CLOSE,
                    (event.end_event_id, event.end_ts, event.duration, event.start_event_id),
                )
                conn.execute(_LINK, (event.start_event_id, event.end_event_id))
            case ev.V3EventDeleted():
                _delete(conn, event.session_id, event.event_id)
            case _:
                pass


def _record(conn: sqlite3.Connection, e: ev.V3EventRecorded) -> None:
    attaches = e.action == "UPDATE" and bool(e.session)
    conn.execute(
        _INSERT_EVENT,
        (
            e.event_id,
            e.project_id,
            e.session_id,
            e.aid,
            e.user,
            e.session,
            e.action,
            e.type,
            e.category,
            e.ts,
            int(e.orphan),
            int(attaches),
            e.session_id,
            e.type,
        ),
    )
    conn.execute("DELETE FROM v3_entities WHERE event_id = ?", (e.event_id,))
    conn.executemany(
        "INSERT INTO v3_entities (event_id, idx, key, value) VALUES (?, ?, ?, ?)",
        [(e.event_id, i, key, value) for i, (key, value) in enumerate(e.entities)],
    )


def _delete(conn: sqlite3.Connection, session_id: int, event_id: int) -> None:
    """Remove event ``event_id`` of this session (another session's event stays: the id names
    the session the deletion was appended to)."""
    row = conn.execute(
        "SELECT 1 FROM v3_events WHERE event_id = ? AND session_id = ?", (event_id, session_id)
    ).fetchone()
    if row is None:
        return
    conn.execute("DELETE FROM v3_entities WHERE event_id = ?", (event_id,))
    conn.execute("DELETE FROM v3_events WHERE event_id = ?", (event_id,))
    conn.execute("DELETE FROM v3_intervals WHERE start_event_id = ?", (event_id,))
    conn.execute("UPDATE v3_events SET interval_id = NULL WHERE interval_id = ?", (event_id,))
    conn.execute(
        "UPDATE v3_intervals SET end_event_id = NULL, end_ts = NULL, duration = NULL"
        " WHERE end_event_id = ?",
        (event_id,),
    )


def forget_sessions(conn: sqlite3.Connection, session_ids: Sequence[int]) -> None:
    """Drop what these sessions produced."""
    ids = [(s,) for s in session_ids]
    conn.executemany(
        "DELETE FROM v3_entities WHERE event_id IN"
        " (SELECT event_id FROM v3_events WHERE session_id = ?)",
        ids,
    )
    conn.executemany("DELETE FROM v3_events WHERE session_id = ?", ids)
    conn.executemany("DELETE FROM v3_intervals WHERE session_id = ?", ids)


PROJECTION = SqlProjection(
    name=NAME, migrate=migrate, apply=apply, reset=reset, forget_sessions=forget_sessions
)


# -- queries ---------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class V3Entity:
    """One ``{key, value}`` of an event; ``value`` the JSON value (None = null)."""

    key: str
    value: Any


@attrs.frozen(slots=True, kw_only=True)
class V3EventRow:
    """One stored v3 event, as ``/3/events/show`` lists it."""

    id: int
    action: str
    type: str
    category: str
    timestamp: float
    session: str
    orphan: bool
    entities: tuple[V3Entity, ...]


@attrs.frozen(slots=True, kw_only=True)
class V3EventQuery:
    """The filters of ``/3/events/show``: all optional and ANDed. ``start`` / ``end`` in unix
    seconds (inclusive); ``entities`` match (key, JSON value) pairs. ``source`` is the app's
    (every v3 app is ``MOBILE``, V3.md 5), ``model`` only ``COMPLETE``: both checked by the
    route; a source other than ``MOBILE`` matches nothing."""

    start: float | None = None
    end: float | None = None
    type: str | None = None
    category: str | None = None
    source: str | None = None
    entities: tuple[V3Entity, ...] = ()
    limit: int | None = None
    offset: int = 0


@attrs.frozen(slots=True, kw_only=True)
class V3Interval:
    """One interval: START .. END (``end``/``duration`` None while open), its entities (the
    latest value of each key over its events, START first)."""

    start_event_id: int
    end_event_id: int | None
    aid: int
    user: str
    session: str
    type: str
    start: float
    end: float | None
    duration: float | None
    entities: tuple[V3Entity, ...]


@attrs.frozen(slots=True, kw_only=True)
class V3TypeTotal:
    """Per type: intervals (``count``), the closed ones (``closed``) and their total duration."""

    type: str
    count: int
    closed: int
    total_duration: float


def _value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _entities_of(conn: sqlite3.Connection, event_ids: list[int]) -> dict[int, list[V3Entity]]:
    out: dict[int, list[V3Entity]] = {i: [] for i in event_ids}
    for chunk in range(0, len(event_ids), 500):  # SQLite's bound-parameter limit
        ids = event_ids[chunk : chunk + 500]
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT event_id, key, value FROM v3_entities WHERE event_id IN ({marks})"
            " ORDER BY event_id, idx",
            ids,
        )
        for event_id, key, value in rows:
            out[event_id].append(V3Entity(key, _value(value)))
    return out


def _add_given(where: list[str], args: list[Any], *conditions: tuple[str, str, Any]) -> None:
    """Append ``column op ?`` to ``where`` (and its value to ``args``) for each condition whose
    value was given (not None): the optional filters of the reads."""
    for column, op, value in conditions:
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(value)


def show_events(
    conn: sqlite3.Connection, project_id: int, aid: int, user: str, query: V3EventQuery
) -> tuple[int, list[V3EventRow]]:
    """(how many events match, the page of them by (timestamp, id)) of one app's user."""
    if query.source is not None and query.source.upper() != "MOBILE":
        return 0, []
    where = ["project_id = ?", "aid = ?", "user = ?"]
    args: list[Any] = [project_id, aid, user]
    _add_given(
        where,
        args,
        ("ts", ">=", query.start),
        ("ts", "<=", query.end),
        ("type", "=", query.type),
        ("category", "=", query.category),
    )
    for entity in query.entities:
        text = None if entity.value is None else json.dumps(entity.value, separators=(",", ":"))
        where.append(
            "EXISTS (SELECT 1 FROM v3_entities x WHERE x.event_id = v3_events.event_id"
            " AND x.key = ? AND x.value IS ?)"
        )
        args += [entity.key, text]
    clause = " AND ".join(where)
    total = int(conn.execute(f"SELECT count(*) FROM v3_events WHERE {clause}", args).fetchone()[0])
    page = " LIMIT ? OFFSET ?"
    rows = conn.execute(
        "SELECT event_id, action, type, category, ts, session, orphan FROM v3_events"
        f" WHERE {clause} ORDER BY ts, event_id{page}",
        [*args, -1 if query.limit is None else query.limit, query.offset],
    ).fetchall()
    entities = _entities_of(conn, [r[0] for r in rows])
    return total, [
        V3EventRow(
            id=r[0],
            action=r[1],
            type=r[2],
            category=r[3],
            timestamp=r[4],
            session=r[5],
            orphan=bool(r[6]),
            entities=tuple(entities[r[0]]),
        )
        for r in rows
    ]


def entity_values(
    conn: sqlite3.Connection, project_id: int, aid: int, user: str, type_: str, key: str
) -> list[Any]:
    """The distinct values of entity ``key`` over one app's user's events of ``type_``."""
    rows = conn.execute(
        "SELECT DISTINCT x.value FROM v3_entities x JOIN v3_events e ON e.event_id = x.event_id"
        " WHERE e.project_id = ? AND e.aid = ? AND e.user = ? AND e.type = ? AND x.key = ?"
        " ORDER BY x.value",
        (project_id, aid, user, type_, key),
    )
    return [_value(r[0]) for r in rows]


def event_session(
    conn: sqlite3.Connection, project_id: int, event_id: int
) -> tuple[int, str, str] | None:
    """(aid, user, session) of event ``event_id`` in the project, or None (no such event)."""
    row = conn.execute(
        "SELECT aid, user, session FROM v3_events WHERE project_id = ? AND event_id = ?",
        (project_id, event_id),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]), str(row[2]))


@attrs.frozen(slots=True, kw_only=True)
class IntervalFilter:
    """The filters of the interval reports, ANDed: one type, one user, a start in
    [start, end] (unix seconds, inclusive); ``None`` = any."""

    type: str | None = None
    user: str | None = None
    start: float | None = None
    end: float | None = None

    def where(self, project_id: int) -> tuple[str, list[Any]]:
        """The SQL condition over ``v3_intervals`` and its arguments."""
        where = ["project_id = ?"]
        args: list[Any] = [project_id]
        _add_given(
            where,
            args,
            ("type", "=", self.type),
            ("user", "=", self.user),
            ("start_ts", ">=", self.start),
            ("start_ts", "<=", self.end),
        )
        return " AND ".join(where), args


def intervals(
    conn: sqlite3.Connection,
    project_id: int,
    filters: IntervalFilter,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[V3Interval]]:
    """(how many match ``filters``, the page of them by (start, START id))."""
    clause, args = filters.where(project_id)
    total = int(
        conn.execute(f"SELECT count(*) FROM v3_intervals WHERE {clause}", args).fetchone()[0]
    )
    rows = conn.execute(
        "SELECT start_event_id, end_event_id, aid, user, session, type, start_ts, end_ts,"
        f" duration FROM v3_intervals WHERE {clause} ORDER BY start_ts, start_event_id"
        " LIMIT ? OFFSET ?",
        [*args, limit, offset],
    ).fetchall()
    out: list[V3Interval] = []
    for r in rows:
        latest: dict[str, Any] = {}
        for key, value in conn.execute(
            "SELECT x.key, x.value FROM v3_events e JOIN v3_entities x ON x.event_id = e.event_id"
            " WHERE e.interval_id = ? ORDER BY e.ts, e.event_id, x.idx",
            (r[0],),
        ):
            latest[key] = _value(value)
        out.append(
            V3Interval(
                start_event_id=r[0],
                end_event_id=r[1],
                aid=r[2],
                user=r[3],
                session=r[4],
                type=r[5],
                start=r[6],
                end=r[7],
                duration=r[8],
                entities=tuple(V3Entity(k, v) for k, v in latest.items()),
            )
        )
    return total, out


def totals(conn: sqlite3.Connection, project_id: int, filters: IntervalFilter) -> list[V3TypeTotal]:
    """Per type (by name), over the intervals :func:`intervals` would list."""
    clause, args = filters.where(project_id)
    rows = conn.execute(
        "SELECT type, count(*), count(end_event_id), coalesce(sum(duration), 0)"
        f" FROM v3_intervals WHERE {clause} GROUP BY type ORDER BY type",
        args,
    )
    return [V3TypeTotal(type=r[0], count=r[1], closed=r[2], total_duration=r[3]) for r in rows]
