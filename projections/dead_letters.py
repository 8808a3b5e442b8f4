"""The ``dead_letters`` projection: what the engine or a projection could not apply (invariant 8).

Owns the ``dead_letters`` table: one row per parked record and stage -- its log position, session,
project, the stage that failed, the error text and when (the record's time, never the wall clock,
so a rebuild writes the same rows). Stages: ``engine`` (the record could not be decoded or
applied), ``engine:end`` (ending the session failed; it ended anyway) and ``projection:<name>``
(an event of the record could not be written into that projection; the projector parks it and
writes the rest, see ``projections.pipeline``). The record itself stays in the log; this is the
visible, countable list of what was skipped, and what ``replayd dead-letters retry`` re-runs.

Who owns which rows: the ``dead_letters`` projection itself writes (and on reset empties) the
``engine*`` rows, from ``RecordParked`` events; the projector writes the ``projection:<name>``
rows, and resetting projection ``<name>`` forgets them (:func:`forget_stage`), so a rebuild of any
subset of projections ends with exactly the rows a full replay writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from engine import events as ev
from projections.base import SqlProjection, forget_checkpoint
from storage.schema import apply_migrations

NAME = "dead_letters"
PROJECTION_STAGE_PREFIX = "projection:"

STEPS: list[str] = [
    """
    CREATE TABLE dead_letters (
        position INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        error TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX dead_letters_project ON dead_letters (project_id, position);
    """,
    # The stage that failed; a record may fail in several (an end at a tick's position may fail
    # for several sessions). The old rows were all parked by the engine.
    """
    CREATE TABLE dead_letters_v2 (
        position INTEGER NOT NULL,
        session_id INTEGER NOT NULL,
        stage TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        error TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (position, session_id, stage)
    ) WITHOUT ROWID;
    INSERT INTO dead_letters_v2 (position, session_id, stage, project_id, error, at)
        SELECT position, session_id, 'engine', project_id, error, at FROM dead_letters;
    DROP TABLE dead_letters;
    ALTER TABLE dead_letters_v2 RENAME TO dead_letters;
    CREATE INDEX dead_letters_project ON dead_letters (project_id, position);
    CREATE INDEX dead_letters_session ON dead_letters (session_id);
    """,
]

_COLUMNS = "position, session_id, project_id, error, at, stage"


@attrs.frozen(slots=True, kw_only=True)
class DeadLetter:
    """A parked record: where it is in the log, which stage failed and why."""

    position: int
    session_id: int
    project_id: int
    error: str
    at: int
    stage: str = "engine"


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the dead_letters table."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Forget the engine's rows and the checkpoint (the projections' rows are theirs to reset)."""
    conn.execute(
        "DELETE FROM dead_letters WHERE substr(stage, 1, ?) != ?",
        (len(PROJECTION_STAGE_PREFIX), PROJECTION_STAGE_PREFIX),
    )
    forget_checkpoint(conn, NAME)


def forget_stage(conn: sqlite3.Connection, stage: str) -> None:
    """Drop the rows of one stage (``projection:<name>`` when that projection is reset)."""
    conn.execute("DELETE FROM dead_letters WHERE stage = ?", (stage,))


def forget_sessions(conn: sqlite3.Connection, session_ids: Sequence[int]) -> None:
    """Drop every row of these sessions (all stages): a retry writes them again if still due."""
    conn.executemany("DELETE FROM dead_letters WHERE session_id = ?", [(s,) for s in session_ids])


_INSERT = (
    "INSERT OR IGNORE INTO dead_letters (position, session_id, stage, project_id, error, at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Insert a row per ``RecordParked`` (a record parked twice in a stage keeps its 1st error)."""
    rows = [
        (e.position, e.session_id, e.stage, e.project_id, e.error, e.timestamp)
        for e in events
        if isinstance(e, ev.RecordParked)
    ]
    if rows:
        conn.executemany(_INSERT, rows)


def add(conn: sqlite3.Connection, letters: Iterable[DeadLetter]) -> None:
    """Insert rows written by the projector (first error of a (position, session, stage) wins)."""
    conn.executemany(
        _INSERT,
        [(d.position, d.session_id, d.stage, d.project_id, d.error, d.at) for d in letters],
    )


PROJECTION = SqlProjection(
    name=NAME, migrate=migrate, apply=apply, reset=reset, forget_sessions=forget_sessions
)


def count(conn: sqlite3.Connection, project_id: int | None = None) -> int:
    """How many records are parked (in one project, or in all)."""
    if project_id is None:
        return int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
    return int(
        conn.execute(
            "SELECT count(*) FROM dead_letters WHERE project_id = ?", (project_id,)
        ).fetchone()[0]
    )


def recent(
    conn: sqlite3.Connection, *, project_id: int | None = None, limit: int = 100
) -> list[DeadLetter]:
    """The most recently parked records first (by log position, then session and stage)."""
    sql = f"SELECT {_COLUMNS} FROM dead_letters"
    params: list[object] = []
    if project_id is not None:
        sql += " WHERE project_id = ?"
        params.append(project_id)
    sql += " ORDER BY position DESC, session_id, stage LIMIT ?"
    params.append(limit)
    return [_dead_letter(row) for row in conn.execute(sql, params)]


def parked_sessions(conn: sqlite3.Connection, project_id: int | None = None) -> list[int]:
    """The distinct sessions with parked records (of one project, or all), ascending."""
    sql = "SELECT DISTINCT session_id FROM dead_letters"
    params: tuple[int, ...] = ()
    if project_id is not None:
        sql += " WHERE project_id = ?"
        params = (project_id,)
    return [int(r[0]) for r in conn.execute(sql + " ORDER BY session_id", params)]


def in_projects(
    conn: sqlite3.Connection, project_ids: Sequence[int], *, limit: int = 100
) -> tuple[int, list[DeadLetter]]:
    """``(total, newest first up to limit)`` of the records parked in these projects.

    For an organization's view (its projects only); one read transaction, so the total and the
    page agree.
    """
    if not project_ids:
        return 0, []
    # One parameter whatever the number of projects (no host-parameter limit to reach).
    ids = json.dumps(sorted({int(p) for p in project_ids}))
    within = "project_id IN (SELECT value FROM json_each(?))"
    conn.execute("BEGIN")  # deferred: a read snapshot, takes no write lock
    try:
        total = int(
            conn.execute(f"SELECT count(*) FROM dead_letters WHERE {within}", (ids,)).fetchone()[0]
        )
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM dead_letters"
            f" WHERE {within} ORDER BY position DESC, session_id, stage LIMIT ?",
            (ids, limit),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return total, [_dead_letter(row) for row in rows]


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    return DeadLetter(
        position=row[0],
        session_id=row[1],
        project_id=row[2],
        error=row[3],
        at=row[4],
        stage=row[5],
    )
