"""The ``jobs`` projection: the read model of the delete-user jobs (API.md 1.2, job object).

Owns ``jobs``, one row per job, folded from the job records of the log
(:class:`engine.lifecycle.JobRecorded`; record kinds and status rules in :mod:`engine.lifecycle`),
so a rebuild gives the same rows. ``job_id`` is the position of the job's request record;
``created_at_ms`` its time, ``updated_at_ms`` the time of the job's latest record that changed
it. A completed job keeps no user id (``user_id`` NULL): its request record was erased with the
user's sessions, and its finish record carries every other column.

Jobs are not derived from sessions: ``forget_sessions`` leaves them alone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import attrs

from engine import events as ev
from engine.lifecycle import (
    JobCancelled,
    JobFinished,
    JobRecorded,
    JobRequested,
    JobStarted,
    JobStatus,
    SessionsErased,
    next_status,
)
from projections.base import SqlProjection, forget_checkpoint
from storage.schema import apply_migrations

NAME = "jobs"

STEPS: list[str] = [
    """
    CREATE TABLE jobs (
        job_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        user_id TEXT NULL,
        status TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        start_at_ms INTEGER NOT NULL,
        errors TEXT NULL,
        sessions_erased INTEGER NOT NULL DEFAULT 0,
        records_erased INTEGER NOT NULL DEFAULT 0,
        erasures TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX jobs_project ON jobs (project_id, job_id);
    CREATE INDEX jobs_user ON jobs (project_id, user_id, status);
    CREATE INDEX jobs_status ON jobs (status, start_at_ms);
    """,
]

_COLUMNS = (
    "job_id, project_id, user_id, status, created_at_ms, updated_at_ms, start_at_ms, errors,"
    " sessions_erased, records_erased, erasures"
)


@attrs.frozen(slots=True, kw_only=True)
class JobRow:
    """One delete-user job as the API shows it."""

    job_id: int
    project_id: int
    user_id: str | None  # None once completed: the job forgets whose data it erased
    status: JobStatus
    created_at_ms: int
    updated_at_ms: int
    start_at_ms: int
    errors: str | None
    sessions_erased: int
    records_erased: int
    erasures: tuple[int, ...]  # positions of the ERASURE records of its steps


def _row(values: Sequence[object]) -> JobRow:
    return JobRow(
        job_id=int(values[0]),  # type: ignore[call-overload]
        project_id=int(values[1]),  # type: ignore[call-overload]
        user_id=None if values[2] is None else str(values[2]),
        status=JobStatus(str(values[3])),
        created_at_ms=int(values[4]),  # type: ignore[call-overload]
        updated_at_ms=int(values[5]),  # type: ignore[call-overload]
        start_at_ms=int(values[6]),  # type: ignore[call-overload]
        errors=None if values[7] is None else str(values[7]),
        sessions_erased=int(values[8]),  # type: ignore[call-overload]
        records_erased=int(values[9]),  # type: ignore[call-overload]
        erasures=tuple(json.loads(str(values[10]))),
    )


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the jobs table."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the jobs table and forget the checkpoint."""
    conn.execute("DELETE FROM jobs")
    forget_checkpoint(conn, NAME)


def forget_sessions(conn: sqlite3.Connection, session_ids: Sequence[int]) -> None:
    """Nothing: a job is not derived from a session (and must outlive the sessions it erased)."""


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Fold job events and the erasures of jobs into the table (the projector hands this
    projection only lifecycle events): a running job's counts grow with each of its steps."""
    for event in events:
        if isinstance(event, JobRecorded):
            _apply_one(conn, event)
        elif isinstance(event, SessionsErased) and event.job:
            conn.execute(
                "UPDATE jobs SET sessions_erased = sessions_erased + ?,"
                " records_erased = records_erased + ?,"
                " erasures = json_insert(erasures, '$[#]', ?),"
                # The request record was the last one naming the user: so is this row.
                " user_id = CASE WHEN ? THEN NULL ELSE user_id END WHERE job_id = ?",
                (len(event.sessions), event.records, event.position, event.request_erased,
                 event.job),
            )  # fmt: skip


def _apply_one(conn: sqlite3.Connection, event: JobRecorded) -> None:
    found = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (event.job_id,)).fetchone()
    status = next_status(None if found is None else JobStatus(found[0]), event.payload)
    if status is None:
        return
    payload = event.payload
    if isinstance(payload, JobRequested):
        conn.execute(
            "INSERT INTO jobs (job_id, project_id, user_id, status, created_at_ms, updated_at_ms,"
            " start_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.job_id, event.project_id, payload.user_id, status, event.timestamp,
             event.timestamp, payload.start_at_ms),
        )  # fmt: skip
    elif isinstance(payload, JobStarted | JobCancelled):
        conn.execute(
            "UPDATE jobs SET status = ?, updated_at_ms = ? WHERE job_id = ?",
            (status, event.timestamp, event.job_id),
        )
    else:
        assert isinstance(payload, JobFinished)
        # Whole by itself: after a rebuild the request record (the only one naming the user) of
        # a completed job is gone, and this row must be what the live path made.
        conn.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO UPDATE SET"
            " user_id = CASE WHEN excluded.status = 'completed' THEN NULL ELSE user_id END,"
            " status = excluded.status, updated_at_ms = excluded.updated_at_ms,"
            " errors = excluded.errors, sessions_erased = excluded.sessions_erased,"
            " records_erased = excluded.records_erased, erasures = excluded.erasures",
            (event.job_id, event.project_id, status, payload.created_at_ms, event.timestamp,
             payload.start_at_ms, payload.errors or None, payload.sessions, payload.records,
             json.dumps(list(payload.erasures))),
        )  # fmt: skip


# -- queries ------------------------------------------------------------------------------------


def list_jobs(
    conn: sqlite3.Connection, project_id: int, *, limit: int = -1, offset: int = 0
) -> list[JobRow]:
    """The project's jobs, newest first (``limit`` -1: all)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE project_id = ? ORDER BY job_id DESC LIMIT ? OFFSET ?",
        (project_id, limit, offset),
    )
    return [_row(r) for r in rows]


def get_job(conn: sqlite3.Connection, project_id: int, job_id: int) -> JobRow | None:
    """One job of the project, None when the project has no such job."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ? AND project_id = ?", (job_id, project_id)
    ).fetchone()
    return None if row is None else _row(row)


def active_job_of_user(conn: sqlite3.Connection, project_id: int, user_id: str) -> JobRow | None:
    """The user's oldest job that is scheduled or running, if any (the 409 of API.md 1.3)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE project_id = ? AND user_id = ?"
        " AND status IN ('scheduled', 'running') ORDER BY job_id LIMIT 1",
        (project_id, user_id),
    ).fetchone()
    return None if row is None else _row(row)


def due_jobs(conn: sqlite3.Connection, now_ms: int) -> list[JobRow]:
    """The jobs to run now, oldest first: running ones (a restart resumes them), then scheduled
    ones whose start time has come."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE status = 'running'"
        f" UNION ALL SELECT {_COLUMNS} FROM jobs WHERE status = 'scheduled' AND start_at_ms <= ?"
        " ORDER BY 4 DESC, 1",  # 'scheduled' < 'running': running first
        (now_ms,),
    )
    return [_row(r) for r in rows]


def job_status(conn: sqlite3.Connection, job_id: int) -> JobStatus | None:
    """A job's status (None: no such job)."""
    row = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return None if row is None else JobStatus(row[0])


PROJECTION = SqlProjection(
    name=NAME,
    migrate=migrate,
    apply=apply,
    reset=reset,
    forget_sessions=forget_sessions,
    lifecycle=True,
)
