"""``replayd export``: a project's sessions and their events as NDJSON, one object per line.

The shape (``--format ndjson``, the only format): a line ``{"session": <session object>}``
(API.md 2.5's fields, :func:`session_json`), then one line ``{"event": <event object>}`` per
event of that session, exactly as ``GET /api/v1/{projectKey}/sessions/{id}/events`` answers them,
in its order. Sessions come by start time, then id. ``--since`` keeps sessions started at or
after it.

Memory is bounded: sessions are read a page at a time (keyset paging on (start, id)) and each
session's events are written before the next session is read, so the export holds one page of
sessions and one session's events, whatever the project's size. It reads the projections file
with a read-only connection; the server may keep running and writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs

from api.public_v1 import event_json, user_session_json
from api.public_v1_search import search_session_json
from projections import events as event_rows
from projections import sessions
from projections.sessions import SessionRow
from storage.catalog import Catalog, Project
from storage.sqlite import connect

FORMATS = ("ndjson",)
SESSIONS_PAGE = 500
# Progress is redrawn at most this often (a terminal redrawn per session slows the export).
PROGRESS_INTERVAL_S = 0.2


def session_json(row: SessionRow) -> dict[str, Any]:
    """A session as API.md 2.5 names its fields: the session object search answers
    (:func:`api.public_v1_search.search_session_json`), with the values the public v1 sessions of
    a user show where the two spell a field differently (an unknown browser is null there)."""
    return {**search_session_json(row), **user_session_json(row)}


def parse_since(text: str) -> int:
    """``--since``: epoch milliseconds, or an ISO 8601 date or time (UTC unless it says)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since takes epoch milliseconds or an ISO date (2026-01-31), not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@attrs.define
class Progress:
    """``exported N/TOTAL sessions`` redrawn on one line of a terminal (nothing elsewhere).

    Hand-written rather than a progress library: one line of text does not justify a new
    runtime dependency of the server (none is installed for it; rich comes with the tests only).
    """

    stream: TextIO | None
    total: int
    done: int = 0
    _drawn_at: float = 0.0

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._drawn_at >= PROGRESS_INTERVAL_S:
            self._drawn_at = now
            self._draw()

    def finish(self) -> None:
        if self.stream is not None:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        if self.stream is None:
            return
        percent = 100 if self.total == 0 else min(100, self.done * 100 // self.total)
        self.stream.write(f"\rexported {self.done}/{self.total} sessions ({percent}%)")
        self.stream.flush()


def project_sessions(
    conn: sqlite3.Connection, project_id: int, since: int, page: int = SESSIONS_PAGE
) -> Iterator[SessionRow]:
    """Every session of the project started at ``since`` or later, a page at a time."""
    after: tuple[int, int] | None = None
    while True:
        rows = sessions.project_sessions_after(
            conn, project_id, since=since, after=after, limit=page
        )
        yield from rows
        if len(rows) < page:
            return
        after = (rows[-1].start_ts, rows[-1].session_id)


def write_export(
    conn: sqlite3.Connection,
    project: Project,
    out: TextIO,
    *,
    since: int = 0,
    progress: TextIO | None = None,
) -> int:
    """Write the project's sessions and events to ``out``; returns how many sessions."""
    bar = Progress(progress, sessions.count_project_sessions(conn, project.project_id, since))
    count = 0
    for row in project_sessions(conn, project.project_id, since):
        out.write(_line({"session": session_json(row)}))
        for event in event_rows.session_events(conn, project.project_id, row.session_id):
            out.write(_line({"event": event_json(event)}))
        count += 1
        bar.advance()
    bar.finish()
    return count


def _line(item: dict[str, Any]) -> str:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False) + "\n"


def run_command(
    db_path: str, projections_db_path: str, project_key: str, since: int, output: str | None
) -> int:
    """``replayd export``: the exit code (0, or 1 after a one-line error on stderr)."""

    def fail(message: str) -> int:
        print(f"replayd export: {message}", file=sys.stderr, flush=True)
        return 1

    with contextlib.closing(Catalog.open(db_path)) as catalog:
        project = catalog.get_project_by_key(project_key)
    if project is None:
        return fail(f"no project with key {project_key!r} (see `replayd project list`)")
    if not os.path.exists(projections_db_path):
        return fail(f"no projections at {projections_db_path} (run `replayd rebuild` first)")
    progress = sys.stderr if sys.stderr.isatty() else None
    conn = connect(projections_db_path, create=False, query_only=True)
    try:
        if output is None:
            try:
                count = write_export(conn, project, sys.stdout, since=since, progress=progress)
                sys.stdout.flush()
            except BrokenPipeError:
                # The reader went away (`| head`): stop quietly, as other command-line tools do.
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (flushed at exit, never read)
                return 1
        else:
            # Written under a temporary name first: a failed export leaves no partial file.
            partial = output + ".partial"
            with open(partial, "w", encoding="utf-8") as out:
                count = write_export(conn, project, out, since=since, progress=progress)
            os.replace(partial, output)
    finally:
        conn.close()
    if output is not None:
        print(f"exported {count} sessions of {project.name!r} to {output}", file=sys.stderr)
    return 0
