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


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


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
    ]
    indexes = {row[1]: row[2] for row in conn.execute("PRAGMA index_list(log)")}
    assert indexes == {"log_batch_key": 1, "log_session_position": 0}
    triggers = [
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    ]
    assert triggers == ["log_no_update"]
    # No AUTOINCREMENT: positions are plain rowids (no sqlite_sequence table).
    assert "sqlite_sequence" not in tables(conn)


def test_inv2_rolled_back_insert_leaves_no_gap(conn: sqlite3.Connection) -> None:
    migrate_log(conn)
    insert = "INSERT INTO log (session_id, project_id, kind, received_at_ms, payload) VALUES (1, 1, 2, 0, x'')"
    conn.execute(insert)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(insert)
    conn.execute("ROLLBACK")
    conn.execute(insert)
    assert [row[0] for row in conn.execute("SELECT position FROM log")] == [1, 2]
