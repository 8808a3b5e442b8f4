"""An upgrade: a database written by the previous replayd (log schema step 2, before the
``session_key`` column) is read by today's commands as it is. Readers never migrate, so
`replayd rebuild` (run with the server stopped, often first after an upgrade) must read it; the
next `serve` migrates it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from engine.start_payload import WebStartPayload
from storage.records import RecordKind
from storage.schema import LOG_COMPONENT, LOG_STEPS, apply_migrations, schema_version
from storage.sqlite import connect
from storage.sqlite_recorder import LogReader
from tests.api.conftest import make_batch

SESSION = 4_130_904_231_806_763_009
T0 = 1_764_000_000_000


def _previous_version_log(path: Path) -> None:
    """A log as the previous schema (two steps) holds it: one web session, start and batch."""
    conn = connect(path)
    try:
        apply_migrations(conn, LOG_COMPONENT, LOG_STEPS[:2])
        start = WebStartPayload(
            session_id=SESSION, project_id=1, start_timestamp=T0, delay=0, user_id="ann"
        )
        rows = [
            (RecordKind.WEB_START, None, T0, start.to_bytes()),
            (RecordKind.WEB_BATCH, "0_1", T0 + 1_000, make_batch(0, 1, clicks=3)),
        ]
        with conn:
            conn.executemany(
                "INSERT INTO log (session_id, project_id, kind, batch_key, received_at_ms,"
                " payload) VALUES (?, 1, ?, ?, ?, ?)",
                [(SESSION, int(kind), key, at, payload) for kind, key, at, payload in rows],
            )
    finally:
        conn.close()


def test_the_reader_reads_a_log_of_the_previous_schema(tmp_path: Path) -> None:
    db = tmp_path / "replayd.db"
    _previous_version_log(db)
    reader = LogReader(db)
    try:
        records = reader.read(0, 10)
        assert [(r.position, r.kind, r.session_key) for r in records] == [
            (1, RecordKind.WEB_START, ""),
            (2, RecordKind.WEB_BATCH, ""),
        ]
        assert reader.read_session(SESSION) == records
        assert reader.read_keyed_session("1:ann:abcdefgh") == []  # no keyed record can be there
        clock, keyed = reader.keyed_activity(2, 60_000, [RecordKind.V3_EVENT])
        assert (clock, keyed) == (T0 + 1_000, {})
        latest = reader.activity(2, 60_000, [RecordKind.WEB_BATCH])
        assert latest == (T0 + 1_000, {SESSION: T0 + 1_000})
    finally:
        reader.close()


def test_rebuild_right_after_an_upgrade_reads_the_old_log(tmp_path: Path) -> None:
    db = tmp_path / "replayd.db"
    _previous_version_log(db)
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "rebuild", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 records" in done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "replayd-projections.db") as projections:
        rows = projections.execute("SELECT session_id, user_id FROM sessions").fetchall()
    assert rows == [(SESSION, "ann")]
    with sqlite3.connect(db) as log:  # a reader never migrates: the next serve does
        assert schema_version(log, LOG_COMPONENT) == 2
