"""Per-component schema migrations and the log's schema."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.schema import (
    LOG_COMPONENT,
    LOG_STEPS,
    SchemaTooNew,
    apply_migrations,
    migrate_log,
    schema_version,
    split_statements,
)
from storage.sqlite import connect


@pytest.fixture
def conn(fresh_db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(fresh_db_path)
    yield connection
    connection.close()


# Index name -> unique.
LOG_INDEXES = {"log_batch_key": 1, "log_session_position": 0, "log_session_key_position": 0}


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def log_triggers(conn: sqlite3.Connection) -> list[str]:
    return sorted(
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'log'"
        )
    )


def log_sql(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT sql FROM sqlite_master WHERE name = 'log'").fetchone()[0])


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE a (x);
        CREATE TRIGGER a_t BEFORE DELETE ON a BEGIN SELECT RAISE(ABORT, 'no; never'); END;
        -- trailing comment
    """
    statements = list(split_statements(script))
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError):
        list(split_statements("CREATE TRIGGER b_t BEFORE DELETE ON a BEGIN SELECT 1;"))


def test_migrations_apply_once_per_component_and_incrementally(conn: sqlite3.Connection) -> None:
    steps = ["CREATE TABLE one (x)", "CREATE TABLE two (x); CREATE INDEX two_x ON two (x);"]
    assert apply_migrations(conn, "demo", steps[:1]) == 1
    assert apply_migrations(conn, "demo", steps[:1]) == 1  # nothing left to do, no error
    assert apply_migrations(conn, "demo", steps) == 2
    assert {"one", "two"} <= tables(conn)
    # Another component has its own history in the same file.
    assert schema_version(conn, "other") == 0
    assert apply_migrations(conn, "other", ["CREATE TABLE three (x)"]) == 1
    assert dict(conn.execute("SELECT component, version FROM schema_versions")) == {
        "demo": 2,
        "other": 1,
    }


def test_failed_step_applies_nothing(conn: sqlite3.Connection) -> None:
    steps = ["CREATE TABLE ok (x)", "CREATE TABLE broken (x) NONSENSE"]
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, "demo", steps)
    assert "ok" not in tables(conn)
    assert schema_version(conn, "demo") == 0
    assert not conn.in_transaction


def test_database_newer_than_the_code_is_refused(conn: sqlite3.Connection) -> None:
    apply_migrations(conn, "demo", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
    with pytest.raises(SchemaTooNew):
        apply_migrations(conn, "demo", ["CREATE TABLE a (x)"])


def test_migrations_inside_a_transaction_use_a_savepoint(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    apply_migrations(conn, "demo", ["CREATE TABLE a (x)"])
    conn.execute("ROLLBACK")
    assert "a" not in tables(conn)
    assert schema_version(conn, "demo") == 0


def test_log_schema(conn: sqlite3.Connection) -> None:
    assert migrate_log(conn) == len(LOG_STEPS) == schema_version(conn, LOG_COMPONENT)
    columns = [(row[1], row[2], row[5]) for row in conn.execute("PRAGMA table_info(log)")]
    assert columns == [
        ("position", "INTEGER", 1),
        ("session_id", "INTEGER", 0),
        ("project_id", "INTEGER", 0),
        ("kind", "INTEGER", 0),
        ("batch_key", "TEXT", 0),
        ("received_at_ms", "INTEGER", 0),
        ("payload", "BLOB", 0),
        ("session_key", "TEXT", 0),
    ]
    indexes = {row[1]: row[2] for row in conn.execute("PRAGMA index_list(log)")}
    assert indexes == LOG_INDEXES
    assert log_triggers(conn) == ["log_no_delete", "log_no_update"]
    # AUTOINCREMENT: positions are never reused (SQLite keeps the largest in sqlite_sequence).
    assert "AUTOINCREMENT" in log_sql(conn).upper()
    assert {"sqlite_sequence", "log_erasure_permit"} <= tables(conn)
    assert "log_v1" not in tables(conn)


def test_inv2_rolled_back_insert_leaves_no_gap(conn: sqlite3.Connection) -> None:
    migrate_log(conn)
    insert = (
        "INSERT INTO log (session_id, project_id, kind, received_at_ms, payload)"
        " VALUES (1, 1, 2, 0, x'')"
    )
    conn.execute(insert)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(insert)
    conn.execute("ROLLBACK")
    conn.execute(insert)
    assert [row[0] for row in conn.execute("SELECT position FROM log")] == [1, 2]


_OLD_ROW = (
    "INSERT INTO log (session_id, project_id, kind, batch_key, received_at_ms, payload)"
    " VALUES (?, 1, 2, ?, ?, ?)"
)


def _old_log(conn: sqlite3.Connection, *, steps: int, rows: int) -> None:
    """A log at schema version ``steps`` holding ``rows`` records of sessions 1 and 2."""
    apply_migrations(conn, LOG_COMPONENT, LOG_STEPS[:steps])
    for i in range(rows):
        conn.execute(_OLD_ROW, (1 + i % 2, f"k{i}", 1_000 + i, bytes([i]) * 3))


def test_inv2_migration_keeps_every_record_and_position_then_never_reuses(
    conn: sqlite3.Connection,
) -> None:
    # A log made by the schema before AUTOINCREMENT, with a hole deleted back then (nothing
    # stopped deletes) and its newest record deleted too: position 5 was free for reuse.
    _old_log(conn, steps=1, rows=5)
    conn.execute("DELETE FROM log WHERE position IN (2, 5)")
    before = conn.execute("SELECT * FROM log ORDER BY position").fetchall()
    assert [row[0] for row in before] == [1, 3, 4]

    assert migrate_log(conn) == len(LOG_STEPS)
    # Every row as it was, keyed by session id only (step 3's empty session key).
    assert conn.execute("SELECT * FROM log ORDER BY position").fetchall() == [
        (*row, "") for row in before
    ]
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone() == (4,)
    assert log_triggers(conn) == ["log_no_delete", "log_no_update"]
    indexes = {row[1]: row[2] for row in conn.execute("PRAGMA index_list(log)")}
    assert indexes == LOG_INDEXES
    # The indexes work: a retry is refused by the unique key, a session reads by its index.
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(_OLD_ROW, (1, "k0", 0, b""))
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT position FROM log WHERE session_id = 1 ORDER BY position"
    ).fetchall()
    assert "log_session_position" in str(plan)
    # The triggers hold: no update, no raw delete.
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE log SET payload = x'00'")
    with pytest.raises(sqlite3.IntegrityError, match="data lifecycle"):
        conn.execute("DELETE FROM log WHERE position = 4")
    # New records continue after the newest, and an erased newest is never given again.
    conn.execute(_OLD_ROW, (3, "new", 2_000, b""))
    assert conn.execute("SELECT max(position) FROM log").fetchone() == (5,)


def test_inv2_migration_of_an_empty_log_then_never_reuses(conn: sqlite3.Connection) -> None:
    apply_migrations(conn, LOG_COMPONENT, LOG_STEPS[:1])
    migrate_log(conn)
    assert conn.execute("SELECT count(*) FROM log").fetchone() == (0,)
    conn.execute(_OLD_ROW, (1, "a", 0, b""))
    conn.execute(_OLD_ROW, (1, "b", 0, b""))
    conn.execute("BEGIN")
    conn.execute("INSERT INTO log_erasure_permit (reason) VALUES ('test')")
    conn.execute("DELETE FROM log WHERE position = 2")
    conn.execute("DELETE FROM log_erasure_permit")
    conn.execute("COMMIT")
    conn.execute(_OLD_ROW, (1, "c", 0, b""))
    assert [row[0] for row in conn.execute("SELECT position FROM log")] == [1, 3]


def test_step3_migrates_a_v2_log_keeping_rows_positions_and_the_sequence(
    conn: sqlite3.Connection,
) -> None:
    # A v2 log whose newest record was erased: the sequence (4) is ahead of every row.
    _old_log(conn, steps=2, rows=4)
    conn.execute("INSERT INTO log_erasure_permit (reason) VALUES ('test')")
    conn.execute("DELETE FROM log WHERE position = 4")
    conn.execute("DELETE FROM log_erasure_permit")
    before = conn.execute("SELECT * FROM log ORDER BY position").fetchall()
    assert [row[0] for row in before] == [1, 2, 3]

    assert migrate_log(conn) == 3 == len(LOG_STEPS)
    assert conn.execute("SELECT * FROM log ORDER BY position").fetchall() == [
        (*row, "") for row in before
    ]
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone() == (4,)
    # ADD COLUMN kept the table (no copy): still AUTOINCREMENT, still guarded by its triggers.
    assert "AUTOINCREMENT" in log_sql(conn).upper()
    assert log_triggers(conn) == ["log_no_delete", "log_no_update"]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE log SET session_key = 'x'")
    # The retry index now includes the key: an old record's retry is still refused, the same
    # batch key under a session key is another record.
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(_OLD_ROW, (1, "k0", 0, b""))
    keyed = (
        "INSERT INTO log (session_id, project_id, kind, batch_key, received_at_ms, payload,"
        " session_key) VALUES (1, 1, 2, 'k0', 2000, x'', ?)"
    )
    conn.execute(keyed, ("client-aaaa",))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(keyed, ("client-aaaa",))
    # Numbering continues after the sequence, not after the newest row.
    assert conn.execute("SELECT max(position) FROM log").fetchone() == (5,)
    assert conn.execute("SELECT session_key FROM log WHERE position = 5").fetchone() == (
        "client-aaaa",
    )
