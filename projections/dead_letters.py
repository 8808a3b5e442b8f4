"""The ``dead_letters`` projection: records the engine could not decode or apply (invariant 8).

Owns the ``dead_letters`` table: one row per parked record (its log position, session, project,
the error text and when -- the record's time, never the wall clock, so a rebuild writes the same
rows). The record itself stays in the log; this is the visible, countable list of what was skipped.
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

NAME = "dead_letters"

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
]


@attrs.frozen(slots=True, kw_only=True)
class DeadLetter:
    """A parked record: where it is in the log and why it was parked."""

    position: int
    session_id: int
    project_id: int
    error: str
    at: int


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the dead_letters table."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the dead_letters table and forget the checkpoint."""
    conn.execute("DELETE FROM dead_letters")
    forget_checkpoint(conn, NAME)


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Insert a row per ``RecordParked`` (a record parked twice keeps its first error)."""
    rows = [
        (e.position, e.session_id, e.project_id, e.error, e.timestamp)
        for e in events
        if isinstance(e, ev.RecordParked)
    ]
    if rows:
        conn.executemany(
            "INSERT OR IGNORE INTO dead_letters (position, session_id, project_id, error, at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )


PROJECTION = SqlProjection(name=NAME, migrate=migrate, apply=apply, reset=reset)


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
    """The most recently parked records first (by log position)."""
    sql = "SELECT position, session_id, project_id, error, at FROM dead_letters"
    params: list[object] = []
    if project_id is not None:
        sql += " WHERE project_id = ?"
        params.append(project_id)
    sql += " ORDER BY position DESC LIMIT ?"
    params.append(limit)
    return [_dead_letter(row) for row in conn.execute(sql, params)]


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
            "SELECT position, session_id, project_id, error, at FROM dead_letters"
            f" WHERE {within} ORDER BY position DESC LIMIT ?",
            (ids, limit),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return total, [_dead_letter(row) for row in rows]


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    return DeadLetter(
        position=row[0], session_id=row[1], project_id=row[2], error=row[3], at=row[4]
    )
