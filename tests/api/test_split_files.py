"""The log (and catalog) and the projections live in two SQLite files; rebuild restores the latter.

A real server records a session through the ingest API; the tests then look into both files, and
check that deleting the projections file and running ``replayd rebuild`` gives the public API the
same answers as before.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import trio

from api.cli import main
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_public_v1 import api_key, end_all_sessions, get, record_session
from tests.projections.factories import PROJECTION_TABLES

PROJECTION_ONLY = (*PROJECTION_TABLES, "projection_lock")
LOG_AND_CATALOG = ("log", "organizations", "projects", "api_keys", "settings")


def tables_of(path: str) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    return {name for (name,) in rows}


async def answers(harness: Harness, key: str, session_id: str) -> dict[str, Any]:
    """What the public API says about the recorded session and its user."""
    base = f"/api/v1/{harness.project.project_key}"
    paths = (
        f"{base}/sessions/{session_id}/events",
        f"{base}/users/user-42/sessions",
        f"{base}/users/user-42",
    )
    found: dict[str, Any] = {}
    for path in paths:
        response = await get(harness, key, path)
        assert response.status_code == 200, response.text
        found[path] = response.json()
    return found


async def test_the_log_file_holds_no_projection_and_the_projections_file_no_log(
    harness: Harness, tmp_path: Path
) -> None:
    await record_session(harness)
    # server_factory serves tmp_path / "replayd.db"; the projections' file is derived beside it.
    log_tables = tables_of(str(tmp_path / "replayd.db"))
    projection_tables = tables_of(str(tmp_path / "replayd-projections.db"))
    assert set(LOG_AND_CATALOG) <= log_tables
    assert not log_tables & set(PROJECTION_ONLY)
    assert set(PROJECTION_ONLY) <= projection_tables
    assert not projection_tables & set(LOG_AND_CATALOG)


async def test_deleting_the_projections_then_rebuild_gives_the_same_answers(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    first = await server_factory()
    key = await api_key(first)
    session_id, _ = await record_session(first)
    await end_all_sessions(first, T0 + 3_600_000)  # the user summary counts ended sessions
    before = await answers(first, key, session_id)
    assert before[f"/api/v1/{first.project.project_key}/users/user-42"]["data"] is not None
    await first.client.aclose()  # an idle keep-alive connection would hold the shutdown
    first.server.shutdown()
    await first.server.wait_stopped()

    projections = tmp_path / "replayd-projections.db"
    files = list(tmp_path.glob(projections.name + "*"))
    assert projections in files
    for path in files:
        path.unlink()
    # The projections' path is derived from --db, as serve derives it.
    argv = ["rebuild", "--db", str(tmp_path / "replayd.db")]
    assert await trio.to_thread.run_sync(main, argv) == 0
    assert projections.exists()

    second = await server_factory()
    assert await answers(second, key, session_id) == before
