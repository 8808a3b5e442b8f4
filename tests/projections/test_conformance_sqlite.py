"""The projection stores on SQLite: the conformance suite on file databases in WAL mode."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections.base import migrate_checkpoints
from projections.pipeline import ALL_PROJECTIONS, Projector
from storage.sqlite import atomic, connect

from .factories import PROJECTION_TABLES, SessionScript, dump_tables, positioned
from .projection_conformance import ProjectionStoreTestCase


class TestSqliteProjectionStore(ProjectionStoreTestCase):
    """The conformance suite on SQLite files, opened as the server opens them (WAL)."""

    refused_error = sqlite3.IntegrityError

    @pytest.fixture(autouse=True)
    def _databases(self, tmp_path: Path) -> None:
        self.directory = tmp_path
        self.log_location = str(tmp_path / "replayd.db")
        # Hypothesis runs many examples in one test (one tmp_path): every store is a new file.
        self._numbers = itertools.count(1)

    def new_store(self) -> str:
        return str(self.directory / f"projections-{next(self._numbers)}.db")

    @contextlib.contextmanager
    def connect(self, location: str) -> Iterator[sqlite3.Connection]:
        conn = connect(location)
        try:
            migrate_checkpoints(conn)
            for projection in ALL_PROJECTIONS:
                projection.migrate(conn)
            yield conn
        finally:
            conn.close()

    def transaction(self, conn: sqlite3.Connection) -> contextlib.AbstractContextManager[object]:
        return atomic(conn)

    def table_rows(self, location: str) -> dict[str, list[tuple]]:
        return dump_tables(Path(location), PROJECTION_TABLES)

    def refuse_rows(self, location: str, table: str, column: str, value: str) -> None:
        with self.connect(location) as conn:
            # A trigger takes no parameters: the value is quoted as an SQL literal.
            literal = "'" + value.replace("'", "''") + "'"
            conn.execute(
                f"CREATE TRIGGER test_refuse_{table} BEFORE INSERT ON {table}"
                f" WHEN NEW.{column} = {literal}"
                " BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
            )


# -- SQLite specifics --------------------------------------------------------------------------


async def test_the_projector_writes_a_wal_file_that_readers_read_during_a_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "projections.db"
    s = SessionScript(session_id=1)
    async with Projector(path) as projector:
        await projector.sink(positioned([[s.started(user_id="ann")], [s.click()]]), 2)
    check = sqlite3.connect(path)
    writer = connect(path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM session_events")
        # WAL: a reader is not blocked by an open write transaction and sees the last commit.
        assert check.execute("SELECT count(*) FROM session_events").fetchone() == (1,)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
        check.close()
