"""ProjectionReader's engine progress: the lowest checkpoint and the dead-letter count."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from projections import dead_letters
from projections.base import write_checkpoint
from projections.pipeline import ALL_PROJECTIONS
from projections.reader import EngineProgress, ProjectionReader, engine_progress
from storage.sqlite import atomic, connect

from .factories import SessionScript, positioned


def test_the_lowest_checkpoint_of_every_projection(conn: sqlite3.Connection) -> None:
    assert engine_progress(conn) == EngineProgress(checkpoint=0, dead_letters=0)
    script = SessionScript(session_id=1, project_id=1)
    with atomic(conn):
        dead_letters.apply(conn, positioned([[script.parked()]]))
        for number, projection in enumerate(ALL_PROJECTIONS):
            write_checkpoint(conn, projection.name, 10 + number)
    assert engine_progress(conn) == EngineProgress(checkpoint=10, dead_letters=1)
    with atomic(conn):
        conn.execute(
            "DELETE FROM projection_checkpoints WHERE name = ?", (ALL_PROJECTIONS[-1].name,)
        )
    assert engine_progress(conn).checkpoint == 0  # a projection with no checkpoint has none


async def test_zeros_before_the_engine_created_the_tables(fresh_db_path: Path) -> None:
    connect(fresh_db_path).close()  # the file exists, the projections' tables do not
    reader = ProjectionReader(fresh_db_path)
    try:
        assert await reader.engine_progress() == EngineProgress(checkpoint=0, dead_letters=0)
    finally:
        reader.close()
