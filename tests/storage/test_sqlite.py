"""Connection helpers: pragmas, and atomic() transactions with nested savepoints."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.sqlite import StatementCounts, atomic, connect


@pytest.fixture
def conn(fresh_db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(fresh_db_path)
    connection.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    yield connection
    connection.close()


def values(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT x FROM t ORDER BY x")]


def test_connect_sets_wal_sync_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    conn = connect(tmp_path / "sub" / "dir" / "a.db", synchronous="normal", busy_timeout_ms=1234)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert not conn.in_transaction  # no implicit transactions
    finally:
        conn.close()
    default = connect(tmp_path / "b.db")
    try:
        assert default.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL by default
    finally:
        default.close()


def test_connect_refuses_bad_synchronous_and_missing_file_without_create(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        connect(tmp_path / "a.db", synchronous="sometimes")
    with pytest.raises(sqlite3.OperationalError):
        connect(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_query_only_connection_refuses_writes(
    conn: sqlite3.Connection, fresh_db_path: Path
) -> None:
    reader = connect(fresh_db_path, create=False, query_only=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("INSERT INTO t VALUES (1)")
    finally:
        reader.close()


def test_atomic_commits_and_rolls_back(conn: sqlite3.Connection) -> None:
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ZeroDivisionError), atomic(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise ZeroDivisionError
    assert values(conn) == [1]
    assert not conn.in_transaction


def test_atomic_nested_uses_savepoints(conn: sqlite3.Connection) -> None:
    with atomic(conn):
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError), atomic(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("INSERT INTO t VALUES (1)")  # duplicate key: inner block fails
        with atomic(conn):
            conn.execute("INSERT INTO t VALUES (3)")
        assert conn.in_transaction
    assert values(conn) == [1, 3]
    # An error in the outer block undoes the released inner savepoints too.
    with pytest.raises(RuntimeError), atomic(conn):
        with atomic(conn):
            conn.execute("INSERT INTO t VALUES (4)")
        raise RuntimeError
    assert values(conn) == [1, 3]


def test_atomic_takes_the_write_lock_up_front(
    conn: sqlite3.Connection, fresh_db_path: Path
) -> None:
    other = connect(fresh_db_path, busy_timeout_ms=10)
    try:
        # BEGIN IMMEDIATE: a second writer cannot even begin while this block runs.
        with (
            atomic(conn),
            pytest.raises(sqlite3.OperationalError, match="locked"),
            atomic(other),
        ):
            pass
        assert not other.in_transaction
    finally:
        other.close()


def test_statement_counts_count_each_run_by_connection_label_and_keyword(tmp_path: Path) -> None:
    counts = StatementCounts()
    off = connect(tmp_path / "off.db")
    counts.watch(off, "off")  # counting is off: nothing is attached
    off.execute("SELECT 1")
    counts.enabled = True
    conn = connect(tmp_path / "db.sqlite")
    counts.watch(conn, "log writer")
    conn.execute("CREATE TABLE t (x INTEGER)")
    with atomic(conn):
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    conn.execute("  select count(*) from t").fetchone()
    assert counts.snapshot() == {
        ("log writer", "CREATE"): 1,
        ("log writer", "BEGIN"): 1,
        ("log writer", "INSERT"): 3,  # one per row run, as SQLite reports them
        ("log writer", "COMMIT"): 1,
        ("log writer", "SELECT"): 1,
    }
    off.close()
    conn.close()
