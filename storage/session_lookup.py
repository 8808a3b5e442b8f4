"""Which project a session belongs to, read from the log (its first record names the project).

The ingest API keeps a session -> project map in memory, filled at ``/v1/web/start``; after a
restart that map is empty while trackers keep uploading with still-valid tokens, so a miss is
answered here from the durable log instead of forcing every live tracker to restart its session.
Read-only; one indexed lookup (``log_session_position``), no payloads read.
"""

from __future__ import annotations

import os
import sqlite3

from storage.sqlite import connect


class SessionLookup:
    """A read-only connection answering "project of session X?"; for one thread at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # check_same_thread=False: called from trio worker threads, one call at a time.
        self._conn = connect(path, check_same_thread=False, create=False, query_only=True)

    def project_of_session(self, session_id: int) -> int | None:
        """The project id of the session's first log record, or None if the log has none."""
        try:
            row = self._conn.execute(
                "SELECT project_id FROM log WHERE session_id = ? ORDER BY position LIMIT 1",
                (session_id,),
            ).fetchone()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return None  # nothing was ever logged in this database
            raise
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
