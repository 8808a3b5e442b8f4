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

import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from engine import events as ev
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


_ENSURE_SESSION = """
INSERT INTO end_user_sessions (session_id, project_id, user_id, start_ts) VALUES (?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    start_ts = min(start_ts, excluded.start_ts),
    user_id = coalesce(excluded.user_id, user_id)
"""
_SET_USER = "UPDATE end_user_sessions SET user_id = ? WHERE session_id = ?"
_FINISH = "UPDATE end_user_sessions SET finished = 1 WHERE session_id = ?"
_RECOMPUTE_DELETE = "DELETE FROM end_users WHERE project_id = ? AND user_id = ?"
_RECOMPUTE_INSERT = """
INSERT INTO end_users (project_id, user_id, session_count, first_seen, last_seen)
SELECT project_id, user_id, count(*), min(start_ts), max(start_ts)
FROM end_user_sessions
WHERE project_id = ? AND user_id = ? AND finished = 1
GROUP BY project_id, user_id
"""


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Track sessions' users and finishes, then recompute the touched users (caller's transaction).

    Only lifecycle events matter here, a handful per session, so statements go one per event
    (in order, which matters when a user id changes); the recomputation is one pair of
    ``executemany`` over the touched users.
    """
    touched: set[tuple[int, str]] = set()

    def touch(session_id: int) -> None:
        user = _user_of(conn, session_id)
        if user is not None:
            touched.add(user)

    for event in events:
        match event:
            case ev.SessionStarted():
                touch(event.session_id)
                user_id = event.start.user_id or None
                conn.execute(
                    _ENSURE_SESSION, (event.session_id, event.project_id, user_id, event.timestamp)
                )
                touch(event.session_id)
            case ev.UserIdSet():
                touch(event.session_id)  # the previous user loses this session
                conn.execute(
                    _ENSURE_SESSION, (event.session_id, event.project_id, None, event.timestamp)
                )
                # setUserID("") clears the id: the session then belongs to nobody.
                conn.execute(_SET_USER, (event.user_id or None, event.session_id))
                touch(event.session_id)
            case ev.SessionEnded():
                conn.execute(
                    _ENSURE_SESSION,
                    (event.session_id, event.project_id, None, event.timestamp - event.duration_ms),
                )
                conn.execute(_FINISH, (event.session_id,))
                touch(event.session_id)
            case _:
                pass
    _recompute(conn, touched)


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
