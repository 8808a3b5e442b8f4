"""The users projection: per (project, user), finished sessions count, first and last seen."""

from __future__ import annotations

import sqlite3

from projections import users
from storage.sqlite import atomic

from .factories import SessionScript, positioned


def apply(conn: sqlite3.Connection, events: list, first: int = 1) -> None:
    with atomic(conn):
        users.apply(conn, positioned([[e] for e in events], first=first))


def test_only_finished_sessions_count(conn: sqlite3.Connection) -> None:
    a = SessionScript(session_id=1, start=1_000)
    b = SessionScript(session_id=2, start=5_000)
    c = SessionScript(session_id=3, start=9_000)
    apply(conn, [a.started(user_id="ann"), b.started(user_id="ann"), c.started(user_id="ann")])
    assert users.get_user(conn, 1, "ann") is None  # nothing finished yet
    apply(conn, [a.ended(), c.ended()], first=4)
    summary = users.get_user(conn, 1, "ann")
    assert summary == users.UserSummary(
        project_id=1, user_id="ann", session_count=2, first_seen=1_000, last_seen=9_000
    )
    apply(conn, [b.ended()], first=6)
    summary = users.get_user(conn, 1, "ann")
    assert summary is not None and summary.session_count == 3


def test_a_user_id_change_moves_the_session(conn: sqlite3.Connection) -> None:
    a = SessionScript(session_id=1, start=1_000)
    b = SessionScript(session_id=2, start=2_000)
    apply(conn, [a.started(user_id="old"), b.started(user_id="old"), a.ended(), b.ended()])
    apply(conn, [a.user_id("new")], first=5)
    old, new = users.get_user(conn, 1, "old"), users.get_user(conn, 1, "new")
    assert old is not None and (old.session_count, old.first_seen) == (1, 2_000)
    assert new is not None and (new.session_count, new.first_seen, new.last_seen) == (
        1,
        1_000,
        1_000,
    )
    apply(conn, [b.user_id("new")], first=6)
    assert users.get_user(conn, 1, "old") is None


def test_user_set_after_start_and_re_ended_session_counts_once(conn: sqlite3.Connection) -> None:
    a = SessionScript(session_id=1, start=1_000)
    apply(conn, [a.started(), a.user_id("late"), a.ended()])
    a.click()  # a late batch, then a second end
    apply(conn, [a.ended()], first=4)
    summary = users.get_user(conn, 1, "late")
    assert summary is not None and summary.session_count == 1
    assert users.get_user(conn, 2, "late") is None  # per project


def test_reset(conn: sqlite3.Connection) -> None:
    a = SessionScript(session_id=1)
    apply(conn, [a.started(user_id="x"), a.ended()])
    with atomic(conn):
        users.reset(conn)
    assert users.get_user(conn, 1, "x") is None
    assert conn.execute("SELECT count(*) FROM end_user_sessions").fetchone()[0] == 0


def test_an_empty_user_id_is_no_user(conn: sqlite3.Connection) -> None:
    a, b = SessionScript(session_id=1), SessionScript(session_id=2)
    apply(
        conn, [a.started(user_id=""), b.started(user_id="kim"), b.user_id(""), a.ended(), b.ended()]
    )
    assert users.get_user(conn, 1, "") is None
    assert users.get_user(conn, 1, "kim") is None  # setUserID("") took the session away
