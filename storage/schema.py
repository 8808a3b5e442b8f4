"""Schema migrations, per component, and the schema of the append-only log.

Each component (the log here; the catalog and every projection in their own modules) owns an
ordered list of migration steps and calls :func:`apply_migrations` with its own name. The version
reached by each component is kept in a ``schema_versions(component, version)`` table rather than in
``PRAGMA user_version``: that pragma is a single integer per database file, and several components
with independent histories share one file.

Steps are append-only: never edit or reorder a step that has shipped, add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from storage.sqlite import atomic

LOG_COMPONENT = "log"

LOG_STEPS: list[str] = [
    # 1: the log. ``position`` is the rowid (max(rowid)+1: a deleted newest record would have its
    # position given again, which step 2 fixes; shipped, so left as it was).
    """
    CREATE TABLE log (
        position INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        batch_key TEXT NULL,
        received_at_ms INTEGER NOT NULL,
        payload BLOB NOT NULL
    );
    -- Invariant 3: a retried upload (same session, kind, batch key) is stored once.
    CREATE UNIQUE INDEX log_batch_key ON log (session_id, kind, batch_key)
        WHERE batch_key IS NOT NULL;
    -- Re-activating a session actor reads all records of one session in order.
    CREATE INDEX log_session_position ON log (session_id, position);
    -- Invariant 4: records are never updated in place, not even by raw SQL.
    CREATE TRIGGER log_no_update BEFORE UPDATE ON log
    BEGIN
        SELECT RAISE(ABORT, 'log records are append-only: UPDATE is not allowed');
    END;
    """,
    # 2: positions are never reused (DESIGN.md invariant 2), and deletion has one door (4).
    # AUTOINCREMENT rather than a counter table of our own: SQLite then numbers every insert past
    # the largest position ever used (kept in ``sqlite_sequence``, written in the inserting
    # transaction, so a rollback still frees its numbers and several writers serialised by the
    # write lock share it), for one small row update per insert and no code of ours on the hot
    # path. A table cannot gain AUTOINCREMENT in place: rebuild it (SQLite's documented
    # procedure), keeping every row with its position, then its indexes and trigger. Copying
    # explicit positions into an AUTOINCREMENT table seeds ``sqlite_sequence`` with their max.
    """
    ALTER TABLE log RENAME TO log_v1;
    CREATE TABLE log (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id INTEGER NOT NULL,
        project_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        batch_key TEXT NULL,
        received_at_ms INTEGER NOT NULL,
        payload BLOB NOT NULL
    );
    INSERT INTO log (position, session_id, project_id, kind, batch_key, received_at_ms, payload)
        SELECT position, session_id, project_id, kind, batch_key, received_at_ms, payload
        FROM log_v1 ORDER BY position;
    DROP TABLE log_v1;
    CREATE UNIQUE INDEX log_batch_key ON log (session_id, kind, batch_key)
        WHERE batch_key IS NOT NULL;
    CREATE INDEX log_session_position ON log (session_id, position);
    CREATE TRIGGER log_no_update BEFORE UPDATE ON log
    BEGIN
        SELECT RAISE(ABORT, 'log records are append-only: UPDATE is not allowed');
    END;
    -- The door of the data lifecycle: EventLog.erase inserts a permit, deletes, records the
    -- erasure and removes the permit, all in one transaction, so no other connection ever sees
    -- the door open. Any other DELETE (raw SQL included) is refused.
    CREATE TABLE log_erasure_permit (reason TEXT NOT NULL);
    CREATE TRIGGER log_no_delete BEFORE DELETE ON log
    WHEN NOT EXISTS (SELECT 1 FROM log_erasure_permit)
    BEGIN
        SELECT RAISE(ABORT, 'log records are deleted only by the data lifecycle (EventLog.erase)');
    END;
    """,
    # 3: a session key (a v3 session is named by app, user and client strings, not a number).
    # ADD COLUMN with a constant default rewrites no row: old rows read '' (keyed by session_id
    # only, as every web record is). A retry of a keyed upload is the same key, kind and batch
    # key, so the key joins the retry index (rebuilt from the rows, still unique: '' everywhere).
    # The partial index serves reading one keyed session and only grows with keyed records;
    # SQLite uses it only for a query whose WHERE says ``session_key <> ''`` too.
    """
    ALTER TABLE log ADD COLUMN session_key TEXT NOT NULL DEFAULT '';
    DROP INDEX log_batch_key;
    CREATE UNIQUE INDEX log_batch_key ON log (session_id, session_key, kind, batch_key)
        WHERE batch_key IS NOT NULL;
    CREATE INDEX log_session_key_position ON log (session_key, position)
        WHERE session_key <> '';
    """,
]


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer replayd than this one (more steps than we know)."""


def split_statements(script: str) -> Iterator[str]:
    """Split an SQL script into complete statements (trigger bodies with ``;`` stay whole).

    ``Connection.executescript`` would do this, but it COMMITs any open transaction first, which
    would break running all steps and the version bump in one transaction.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            pending = ""
            if statement.strip(";").strip() and not _only_comments(statement):
                yield statement
    if pending.strip(";").strip() and not _only_comments(pending):
        raise ValueError(f"incomplete SQL statement in migration step: {pending.strip()!r}")


def _only_comments(sql: str) -> bool:
    lines = (line.strip() for line in sql.strip(";").splitlines())
    return all(not line or line.startswith("--") for line in lines)


def schema_version(conn: sqlite3.Connection, component: str) -> int:
    """The number of steps applied for ``component`` (0 when none, or no table yet)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def apply_migrations(conn: sqlite3.Connection, component: str, steps: Sequence[str]) -> int:
    """Apply the steps of ``component`` not applied yet, all in one transaction; return the version.

    Safe to call from several connections or processes at once: the version is read after
    ``BEGIN IMMEDIATE`` took the write lock, so exactly one caller applies each step.
    """
    with atomic(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        current = schema_version(conn, component)
        if current > len(steps):
            raise SchemaTooNew(
                f"schema of {component!r} is at version {current}, this code knows {len(steps)}"
            )
        for step in steps[current:]:
            for statement in split_statements(step):
                conn.execute(statement)
        if current < len(steps):
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(steps)),
            )
    return len(steps)


def migrate_log(conn: sqlite3.Connection) -> int:
    """Create or upgrade the log's tables; return the log schema version."""
    return apply_migrations(conn, LOG_COMPONENT, LOG_STEPS)
