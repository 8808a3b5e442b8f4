"""The ``users`` projection: per (project, user id), how many finished sessions and when.

Owns ``end_users`` (the answer of public v1 ``GET /users/{userId}``) and ``end_user_sessions``
(the little it needs to know per session to recompute that answer: project, current user id,
start time, finished or not). "End users" are the people the tracker records, not the accounts of
the dashboard.

Semantics (API.md 1.2 #6, as the reference computes it): only *finished* sessions (a
``SessionEnded`` was seen) count; ``session_count`` = their number, ``first_seen`` = the smallest
and ``last_seen`` = the largest of their start times (epoch ms). A user id changed mid-session
moves the session to the new user. A user with no finished session has no row.

Aggregates are recomputed from ``end_user_sessions`` for every (project, user) an ``apply`` touched,
instead of incremented, so the result cannot depend on how sessions interleave or on how events
are split into deliveries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from engine import events as ev
from engine.events import INT64_MAX, INT64_MIN
from projections.base import SqlProjection, forget_checkpoint
from storage.schema import apply_migrations

NAME = "users"

STEPS: list[str] = [
    """
    CREATE TABLE end_user_sessions (
        session_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        user_id TEXT NULL,
        start_ts INTEGER NOT NULL,
        finished INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX end_user_sessions_user ON end_user_sessions (project_id, user_id);
    CREATE TABLE end_users (
        project_id INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        session_count INTEGER NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (project_id, user_id)
    ) WITHOUT ROWID;
    """,
]


@attrs.frozen(slots=True, kw_only=True)
class UserSummary:
    """One end user of a project, over their finished sessions."""

    project_id: int
    user_id: str
    session_count: int
    first_seen: int
    last_seen: int


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the users tables."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the users tables and forget the checkpoint."""
    conn.execute("DELETE FROM end_users")
    conn.execute("DELETE FROM end_user_sessions")
    forget_checkpoint(conn, NAME)


_READ_SESSIONS = """
SELECT session_id, project_id, user_id, start_ts, finished FROM end_user_sessions
WHERE session_id IN (SELECT value FROM json_each(?))
"""
_WRITE_SESSION = """
INSERT INTO end_user_sessions (session_id, project_id, user_id, start_ts, finished)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    project_id = excluded.project_id,
    user_id = excluded.user_id,
    start_ts = excluded.start_ts,
    finished = excluded.finished
"""
_RECOMPUTE_DELETE = "DELETE FROM end_users WHERE project_id = ? AND user_id = ?"
_RECOMPUTE_INSERT = """
INSERT INTO end_users (project_id, user_id, session_count, first_seen, last_seen)
SELECT project_id, user_id, count(*), min(start_ts), max(start_ts)
FROM end_user_sessions
WHERE project_id = ? AND user_id = ? AND finished = 1
GROUP BY project_id, user_id
"""


@attrs.define(slots=True)
class _SessionUser:
    """A row of ``end_user_sessions`` while an ``apply`` folds the events into it."""

    project_id: int
    user_id: str | None
    start_ts: int
    finished: int = 0


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Track sessions' users and finishes, then recompute the touched users (caller's transaction).

    The touched sessions' rows are read in one statement, the lifecycle events (a handful per
    session) folded into them in order in Python (the order matters when a user id changes),
    and the rows written back with one ``executemany``; the recomputation is one pair of
    ``executemany`` over the touched users. A rebuild delivers thousands of sessions per call:
    six statements per session were most of its time here.
    """
    lifecycle = [e for e in events if type(e) in (ev.SessionStarted, ev.UserIdSet, ev.SessionEnded)]
    if not lifecycle:
        return
    ids = sorted({e.session_id for e in lifecycle})
    rows: dict[int, _SessionUser] = {
        sid: _SessionUser(project_id, user_id, start_ts, finished)
        for sid, project_id, user_id, start_ts, finished in conn.execute(
            _READ_SESSIONS, (json.dumps(ids),)
        )
    }
    touched: set[tuple[int, str]] = set()

    def touch(row: _SessionUser | None) -> None:
        if row is not None and row.user_id is not None:
            touched.add((row.project_id, row.user_id))

    def ensure(event: ev.DomainEvent, user_id: str | None, start_ts: int) -> _SessionUser:
        # What an INSERT .. ON CONFLICT of the row would do: the earliest start, the user id
        # unless none is given. Values SQLite could not bind fail here, for this event.
        _bindable(start_ts)
        if user_id is not None:
            user_id.encode()
        row = rows.get(event.session_id)
        if row is None:
            row = rows[event.session_id] = _SessionUser(event.project_id, user_id, start_ts)
        else:
            row.start_ts = min(row.start_ts, start_ts)
            if user_id is not None:
                row.user_id = user_id
        return row

    for event in lifecycle:
        if type(event) is ev.SessionStarted:
            touch(rows.get(event.session_id))
            touch(ensure(event, event.start.user_id or None, event.timestamp))
        elif type(event) is ev.UserIdSet:
            touch(rows.get(event.session_id))  # the previous user loses this session
            row = ensure(event, None, event.timestamp)
            # setUserID("") clears the id: the session then belongs to nobody.
            row.user_id = event.user_id or None
            if row.user_id is not None:
                row.user_id.encode()
            touch(row)
        else:
            assert type(event) is ev.SessionEnded
            row = ensure(event, None, event.timestamp - event.duration_ms)
            row.finished = 1
            touch(row)
    conn.executemany(
        _WRITE_SESSION,
        [
            (sid, kept.project_id, kept.user_id, kept.start_ts, kept.finished)
            for sid in ids
            if (kept := rows.get(sid)) is not None
        ],
    )
    _recompute(conn, touched)


def _bindable(value: int) -> None:
    """Raise OverflowError, as binding it would, for an integer beyond SQLite's INTEGER."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise OverflowError(f"{value} does not fit an SQLite INTEGER")


def forget_sessions(conn: sqlite3.Connection, session_ids: Sequence[int]) -> None:
    """Drop these sessions and recompute the users they counted for."""
    touched = {u for u in (_user_of(conn, s) for s in session_ids) if u is not None}
    conn.executemany(
        "DELETE FROM end_user_sessions WHERE session_id = ?", [(s,) for s in session_ids]
    )
    _recompute(conn, touched)


def _user_of(conn: sqlite3.Connection, session_id: int) -> tuple[int, str] | None:
    """(project, user id) the session currently counts for, or None."""
    row = conn.execute(
        "SELECT project_id, user_id FROM end_user_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None or row[1] is None:
        return None
    return int(row[0]), str(row[1])


def _recompute(conn: sqlite3.Connection, touched: set[tuple[int, str]]) -> None:
    if touched:
        keys = sorted(touched)
        conn.executemany(_RECOMPUTE_DELETE, keys)
        conn.executemany(_RECOMPUTE_INSERT, keys)


PROJECTION = SqlProjection(
    name=NAME, migrate=migrate, apply=apply, reset=reset, forget_sessions=forget_sessions
)


# -- queries ---------------------------------------------------------------------------------------


def get_user(conn: sqlite3.Connection, project_id: int, user_id: str) -> UserSummary | None:
    """The summary of ``user_id`` (exact match) in a project, or None without finished sessions."""
    row = conn.execute(
        f"{_SELECT_USERS} WHERE project_id = ? AND user_id = ?", (project_id, user_id)
    ).fetchone()
    return None if row is None else _summary(row)


_SELECT_USERS = "SELECT project_id, user_id, session_count, first_seen, last_seen FROM end_users"


def _summary(row: Sequence[Any]) -> UserSummary:
    return UserSummary(
        project_id=row[0], user_id=row[1], session_count=row[2], first_seen=row[3], last_seen=row[4]
    )


# The columns a user search may sort by (the summary's fields), and the stored column of each.
USER_SORT_COLUMNS = {
    "userId": "user_id",
    "sessionCount": "session_count",
    "firstSeen": "first_seen",
    "lastSeen": "last_seen",
}


@attrs.frozen(slots=True, kw_only=True)
class UserQuery:
    """A search over a project's users: a case-insensitive substring of the user id, users seen
    in a window (a finished session starting between the bounds, inclusive), sort and page."""

    text: str = ""
    seen_from: int | None = None  # epoch ms
    seen_to: int | None = None
    sort_by: str = "lastSeen"  # a key of USER_SORT_COLUMNS
    newest_first: bool = True
    limit: int = 50
    offset: int = 0


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_users(
    conn: sqlite3.Connection, project_id: int, query: UserQuery
) -> tuple[int, list[UserSummary]]:
    """How many users of a project match ``query``, and the page of them it names.

    The window compares the user's first and last finished session starts with the bounds (a
    user seen before and after the window but not in it still matches: the summary keeps no
    per-session detail, and the users projection stays one row per user).
    """
    where = "WHERE project_id = ?"
    params: list[Any] = [project_id]
    if query.text:
        # LIKE is case-insensitive for ASCII in SQLite, which is what a search box wants.
        where += " AND user_id LIKE ? ESCAPE '\\'"
        params.append(f"%{_escape_like(query.text)}%")
    if query.seen_from is not None:
        where += " AND last_seen >= ?"
        params.append(query.seen_from)
    if query.seen_to is not None:
        where += " AND first_seen <= ?"
        params.append(query.seen_to)
    (total,) = conn.execute(f"SELECT count(*) FROM end_users {where}", params).fetchone()
    column = USER_SORT_COLUMNS[query.sort_by]
    order = "DESC" if query.newest_first else "ASC"
    rows = conn.execute(
        f"{_SELECT_USERS} {where} ORDER BY {column} {order}, user_id {order} LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    )
    return int(total), [_summary(r) for r in rows]
