"""The dead-letters projection: parked records are listed and counted."""

from __future__ import annotations

import sqlite3

from projections import dead_letters
from storage.sqlite import atomic

from .factories import SessionScript, positioned


def test_parked_records_are_rows(conn: sqlite3.Connection) -> None:
    a, b = SessionScript(session_id=1, project_id=1), SessionScript(session_id=2, project_id=2)
    first, second = a.parked("ValueError: bad varint"), b.parked("KeyError: 'x'")
    with atomic(conn):
        dead_letters.apply(conn, positioned([[a.click()], [first], [second]]))
    assert dead_letters.count(conn) == 2
    assert dead_letters.count(conn, project_id=2) == 1
    letter = dead_letters.DeadLetter
    assert dead_letters.recent(conn) == [
        letter(position=3, session_id=2, project_id=2, error="KeyError: 'x'", at=second.timestamp),
        letter(
            position=2,
            session_id=1,
            project_id=1,
            error="ValueError: bad varint",
            at=first.timestamp,
        ),
    ]
    assert [d.position for d in dead_letters.recent(conn, project_id=1)] == [2]
    with atomic(conn):
        dead_letters.reset(conn)
    assert dead_letters.count(conn) == 0


def test_in_projects_counts_and_lists_only_those_projects(conn: sqlite3.Connection) -> None:
    scripts = [SessionScript(session_id=n, project_id=n % 3 + 1) for n in range(1, 7)]
    with atomic(conn):
        dead_letters.apply(conn, positioned([[s.parked(f"E{n}")] for n, s in enumerate(scripts)]))
    total, page = dead_letters.in_projects(conn, [1, 2, 2], limit=3)
    in_one_or_two = [d for d in dead_letters.recent(conn) if d.project_id in (1, 2)]
    assert (total, page) == (4, in_one_or_two[:3])  # newest first, limited, duplicates ignored
    assert dead_letters.in_projects(conn, [99]) == (0, [])
    assert dead_letters.in_projects(conn, []) == (0, [])
