"""Which project each live session belongs to, for the upload path.

A token names its session but not its project, while every log record carries both. Filled by
``/v1/web/start``; a session it does not know (the server restarted while trackers kept uploading
with valid tokens) is looked up once in the log and then remembered. Bounded: least recently used
sessions are forgotten first (a forgotten live session costs one more lookup, nothing else).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import trio

from storage.sqlite_recorder import LogReader

ProjectLookup = Callable[[int], Awaitable[int | None]]


class SessionDirectory:
    """session id -> project id, in memory, with a durable fallback ``lookup``."""

    def __init__(self, lookup: ProjectLookup | None = None, *, capacity: int = 200_000) -> None:
        self._lookup = lookup
        self._capacity = capacity
        self._projects: OrderedDict[int, int] = OrderedDict()

    def remember(self, session_id: int, project_id: int) -> None:
        """Record that ``session_id`` belongs to ``project_id``."""
        self._projects[session_id] = project_id
        self._projects.move_to_end(session_id)
        while len(self._projects) > self._capacity:
            self._projects.popitem(last=False)

    def known(self, session_id: int) -> int | None:
        """The project of a session if it is in memory (no lookup)."""
        project_id = self._projects.get(session_id)
        if project_id is not None:
            self._projects.move_to_end(session_id)
        return project_id

    async def project_of(self, session_id: int) -> int | None:
        """The project of a session: from memory, else from the fallback (then remembered)."""
        project_id = self.known(session_id)
        if project_id is not None or self._lookup is None:
            return project_id
        project_id = await self._lookup(session_id)
        if project_id is not None:
            self.remember(session_id, project_id)
        return project_id

    def __len__(self) -> int:
        return len(self._projects)


class LogProjectLookup:
    """The fallback for ``SessionDirectory``: asks the log, in a worker thread, one query at a time.

    The read-only connection is opened on first use (the log's tables exist by then: the writer
    created them before the server accepted its first request).
    """

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self._db_path = db_path
        self._lookup: LogReader | None = None
        # One connection, so one thread at a time.
        self._limiter = trio.CapacityLimiter(1)

    def _project_of(self, session_id: int) -> int | None:
        if self._lookup is None:
            self._lookup = LogReader(self._db_path, label="session directory")
        return self._lookup.project_of_session(session_id)

    async def __call__(self, session_id: int) -> int | None:
        return await trio.to_thread.run_sync(self._project_of, session_id, limiter=self._limiter)

    def close(self) -> None:
        """Close the connection if it was opened."""
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None
