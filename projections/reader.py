"""Read access to the projections for the API: query functions run off the trio thread.

The API never writes SQL: it awaits :meth:`ProjectionReader.run` with one of the projections'
query functions (``sessions.user_sessions``, ``events.session_events``, ``users.get_user``, ...),
or one of the named shortcuts, and gets attrs objects back. Each query runs in a worker thread on
a read-only connection of a small pool (one connection per thread at a time), so a slow query
never stalls the event loop and never blocks the projector's writes (WAL readers do not block).
The reader opens the projections' own file (``ServerConfig.projections_db_path``), not the log's.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import attrs
import trio

from engine.search_query import SearchQuery
from projections import dead_letters, events, search, sessions, users, v3
from projections.base import read_checkpoints
from projections.pipeline import ALL_PROJECTIONS
from storage.sqlite import connect

P = ParamSpec("P")
T = TypeVar("T")


@attrs.frozen(slots=True, kw_only=True)
class EngineProgress:
    """How far the projections are, as their file says (any process can read it)."""

    checkpoint: int  # the lowest checkpoint of the SQL projections: everything up to it applied
    dead_letters: int  # records parked


def engine_progress(conn: sqlite3.Connection) -> EngineProgress:
    """The lowest checkpoint and the dead-letter count, in one read snapshot.

    Zeros while the projections' tables do not exist yet (the engine process creates them).
    """
    conn.execute("BEGIN")  # deferred: a read snapshot, takes no write lock
    try:
        stored = read_checkpoints(conn)
        parked = dead_letters.count(conn)
    except sqlite3.OperationalError as error:
        if "no such table" not in str(error):
            raise
        return EngineProgress(checkpoint=0, dead_letters=0)
    finally:
        conn.execute("COMMIT")
    lowest = min((stored.get(p.name, 0) for p in ALL_PROJECTIONS), default=0)
    return EngineProgress(checkpoint=lowest, dead_letters=parked)


class ProjectionReader:
    """A pool of read-only connections to the projections' database file."""

    def __init__(self, db_path: str | os.PathLike[str], *, max_connections: int = 2) -> None:
        self.db_path = Path(db_path)
        self._limiter = trio.CapacityLimiter(max_connections)
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        return connect(
            self.db_path, label="projection reader", check_same_thread=False, query_only=True
        )

    async def run(
        self,
        query: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``query(conn, *args, **kwargs)`` in a worker thread on a pooled read connection."""
        if self._closed:
            raise RuntimeError("the projection reader is closed")
        async with self._limiter:
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = await trio.to_thread.run_sync(self._connect)
            try:
                return await trio.to_thread.run_sync(lambda: query(conn, *args, **kwargs))
            finally:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections (connections in use close when their query returns)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    # -- the queries of the public API v1 ----------------------------------------------------------

    async def session_events(self, project_id: int, session_id: int) -> list[events.EventRow]:
        """Every event row of a session, by (timestamp, message id)."""
        return await self.run(events.session_events, project_id, session_id)

    async def user_sessions_page(
        self,
        project_id: int,
        user_id: str,
        *,
        start_date: int | None = None,
        end_date: int | None = None,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = False,
    ) -> tuple[int, list[sessions.SessionRow]]:
        """The total and a page of a user's sessions (``sessions.user_sessions_page``)."""
        return await self.run(
            sessions.user_sessions_page,
            project_id,
            user_id,
            start_date=start_date,
            end_date=end_date,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )

    async def search_users(
        self, project_id: int, query: users.UserQuery
    ) -> tuple[int, list[users.UserSummary]]:
        """The total and a page of a project's users (:func:`projections.users.search_users`)."""
        return await self.run(users.search_users, project_id, query)

    async def user(self, project_id: int, user_id: str) -> users.UserSummary | None:
        """A user's summary over finished sessions, or None."""
        return await self.run(users.get_user, project_id, user_id)

    async def session(self, project_id: int, session_id: int) -> sessions.SessionRow | None:
        """One session row, or None."""
        return await self.run(sessions.get_session, project_id, session_id)

    async def search_sessions(
        self, project_id: int, query: SearchQuery
    ) -> tuple[int, list[sessions.SessionRow]]:
        """(total, page) of a session search (see :func:`projections.search.search_sessions`)."""
        return await self.run(search.search_sessions, project_id, query)

    async def first_session_starts(self, project_ids: list[int]) -> dict[int, int]:
        """Per project, when its first session was recorded (projects without one left out)."""
        return await self.run(sessions.first_session_starts, project_ids)

    # -- the v3 generic events API (``/3/*`` and the public v1 ``/v3/*`` routes) -----------------

    async def v3_show_events(
        self, project_id: int, aid: int, user: str, query: v3.V3EventQuery
    ) -> tuple[int, list[v3.V3EventRow]]:
        """(total, page) of one app's user's events (see :func:`projections.v3.show_events`)."""
        return await self.run(v3.show_events, project_id, aid, user, query)

    async def v3_entity_values(
        self, project_id: int, aid: int, user: str, type_: str, key: str
    ) -> list[object]:
        """Distinct values of an entity key (see :func:`projections.v3.entity_values`)."""
        return await self.run(v3.entity_values, project_id, aid, user, type_, key)

    async def v3_event_session(self, project_id: int, event_id: int) -> tuple[int, str, str] | None:
        """(aid, user, session) of a v3 event, or None."""
        return await self.run(v3.event_session, project_id, event_id)

    async def v3_intervals(
        self, project_id: int, filters: v3.IntervalFilter, *, limit: int, offset: int
    ) -> tuple[int, list[v3.V3Interval]]:
        """(total, page) of intervals (see :func:`projections.v3.intervals`)."""
        return await self.run(v3.intervals, project_id, filters, limit=limit, offset=offset)

    async def v3_totals(self, project_id: int, filters: v3.IntervalFilter) -> list[v3.V3TypeTotal]:
        """Per-type interval totals (see :func:`projections.v3.totals`)."""
        return await self.run(v3.totals, project_id, filters)

    async def dead_letter_count(self, project_id: int | None = None) -> int:
        """How many records are parked."""
        return await self.run(dead_letters.count, project_id)

    async def engine_progress(self) -> EngineProgress:
        """The lowest checkpoint and the dead-letter count (see :func:`engine_progress`)."""
        return await self.run(engine_progress)

    async def dead_letters_in(
        self, project_ids: list[int], *, limit: int
    ) -> tuple[int, list[dead_letters.DeadLetter]]:
        """``(total, newest first)`` of the parked records of these projects."""
        return await self.run(dead_letters.in_projects, project_ids, limit=limit)

    def __repr__(self) -> str:
        return f"ProjectionReader({str(self.db_path)!r})"
