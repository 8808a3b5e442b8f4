"""``replayd backup``, ``restore`` and ``export`` as real subprocesses against a real server.

A backup is taken while the server ingests over HTTP; its copies pass SQLite's integrity check;
restored elsewhere (and rebuilt), a second server answers what the first answered for the
sessions the backup holds. An export round-trips what the public API shows.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import trio

from api.export import Progress, parse_since
from storage.backup import copy_database, integrity_errors
from tests.api.conftest import T0, Harness, ServerFactory, make_batch
from tests.api.test_public_v1 import api_key, end_all_sessions, projected, record_session


async def replayd(*args: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "api.cli", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def get_json(harness: Harness, key: str, path: str) -> Any:
    response = await harness.client.get(path, headers={"Authorization": key})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def ingest_until_cancelled(harness: Harness, started: list[str]) -> None:
    """What a busy server sees: session after session, each uploading a batch of clicks."""
    while True:
        start = await harness.started(userID="busy")
        started.append(start["sessionID"])
        body = make_batch(1, 1, clicks=20)
        response = await harness.upload(start["token"], body, batch=f"0_1_{len(body)}_kyes")
        assert response.status_code == 200, response.text


async def answers(harness: Harness, key: str, user: str) -> dict[str, Any]:
    """What the API shows of a user: their sessions, and every session's events."""
    base = f"/api/v1/{harness.project.project_key}"
    sessions = await get_json(harness, key, f"{base}/users/{user}/sessions")
    events = {
        s["sessionId"]: await get_json(harness, key, f"{base}/sessions/{s['sessionId']}/events")
        for s in sessions
    }
    return {"sessions": sessions, "events": events}


async def test_backup_while_ingesting_then_restore_answers_the_same(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    source = await server_factory()
    key = await api_key(source)
    for user in ("ann", "bob"):
        await record_session(source, user_id=user)
    await end_all_sessions(source, T0 + 600_000)
    before = {user: await answers(source, key, user) for user in ("ann", "bob")}

    backup_dir = tmp_path / "backup"
    db = Path(source.server.log.path)
    busy: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ingest_until_cancelled, source, busy)
        while len(busy) < 3:  # the backup starts while sessions are arriving
            await trio.sleep(0.01)
        started_before = len(busy)
        code, out, err = await replayd("backup", str(backup_dir), "--db", str(db))
        started_after = len(busy)
        nursery.cancel_scope.cancel()
    assert code == 0, err
    assert started_after > started_before  # the server was ingesting while the backup ran
    names = sorted(p.name for p in backup_dir.iterdir())
    assert names == ["replayd-images.db", "replayd-projections.db", "replayd.db"], names
    assert out.count("backed up ") == 3
    for copy in backup_dir.iterdir():
        conn = sqlite3.connect(copy)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], copy
        finally:
            conn.close()

    # A backup into the database's own directory would replace the files it copies.
    code, _, err = await replayd("backup", str(db.parent), "--db", str(db))
    assert code == 1 and "back up somewhere else" in err, err
    code, _, err = await replayd("restore", str(db.parent), "--db", str(db))
    assert code == 1 and "not a backup" in err, err
    # Restoring over a database a server holds is refused, in one line.
    code, _, err = await replayd("restore", str(backup_dir), "--db", str(db))
    assert code == 1 and err.count("\n") == 1 and "stop the server" in err, err

    target = tmp_path / "restored" / "replayd.db"
    code, out, err = await replayd("restore", str(backup_dir), "--db", str(target))
    assert code == 0, err
    assert "restored " in out
    restored = await server_factory(db_name="restored/replayd.db")
    await projected(restored)
    for user in ("ann", "bob"):
        assert await answers(restored, key, user) == before[user], user
    # The sessions that arrived while the backup ran: those it holds are the source's, up to
    # what the backup saw of them (each session is a prefix of the source's).
    now_source = await answers(source, key, "busy")
    now_restored = await answers(restored, key, "busy")
    held = [s["sessionId"] for s in now_restored["sessions"]]
    assert len(held) >= started_before  # started before the backup began: in it
    assert held == [s["sessionId"] for s in now_source["sessions"]][: len(held)]
    for session_id, events in now_restored["events"].items():
        assert events == now_source["events"][session_id][: len(events)]


async def test_backup_of_a_missing_database_is_one_line(tmp_path: Path) -> None:
    code, out, err = await replayd("backup", str(tmp_path / "b"), "--db", str(tmp_path / "no.db"))
    assert code == 1 and out == ""
    assert err.startswith(f"replayd backup: no database at {tmp_path / 'no.db'} (")
    assert err.count("\n") == 1 and err.endswith("\n")
    assert not (tmp_path / "b").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = await replayd("restore", str(empty), "--db", str(tmp_path / "x.db"))
    assert code == 1 and err == f"replayd restore: no backup of x.db in {empty}\n"


def test_a_copy_replaces_the_destination_whole(tmp_path: Path) -> None:
    source = tmp_path / "a.db"
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    conn.commit()
    conn.close()
    destination = tmp_path / "out" / "a.db"
    destination.parent.mkdir()
    destination.write_bytes(b"not a database")
    result = copy_database(source, destination)
    assert result.size == destination.stat().st_size > 0
    assert integrity_errors(destination) == []
    copied = sqlite3.connect(destination)
    try:
        assert copied.execute("SELECT count(*), sum(x) FROM t").fetchone() == (1000, 499500)
    finally:
        copied.close()
    assert sorted(os.listdir(destination.parent)) == ["a.db"]  # no partial, no journal left


async def test_export_round_trips_what_the_api_shows(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    harness = await server_factory()
    key = await api_key(harness)
    first, _ = await record_session(harness, user_id="ann")
    harness.clock.now += 10_000
    second, _ = await record_session(harness, user_id="bob")
    await end_all_sessions(harness, T0 + 600_000)
    shown = {**(await answers(harness, key, "ann")), "bob": await answers(harness, key, "bob")}

    output = tmp_path / "export.ndjson"
    db = str(harness.server.log.path)
    project = harness.project.project_key
    code, out, err = await replayd(
        "export", "--project", project, "--db", db, "--output", str(output)
    )
    assert code == 0, err
    assert out == "" and err == f"exported 2 sessions of {harness.project.name!r} to {output}\n"
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    sessions: dict[str, dict[str, Any]] = {}
    events: dict[str, list[Any]] = {}
    for line in lines:
        (kind,) = line
        if kind == "session":
            current = line["session"]["sessionId"]
            sessions[current] = line["session"]
            events[current] = []
        else:
            assert kind == "event"
            events[current].append(line["event"])
    assert list(sessions) == [first, second]  # by start time
    listed = [*shown["sessions"], *shown["bob"]["sessions"]]
    for item in listed:
        exported = sessions[item["sessionId"]]
        # The session object carries every field the user-sessions answer shows, the same.
        assert {k: exported[k] for k in item} == item
        assert exported["endTs"] == exported["startTs"] + exported["duration"]
    assert events == {**shown["events"], **shown["bob"]["events"]}

    code, out, err = await replayd(
        "export", "--project", project, "--db", db, "--since", str(T0 + 5_000)
    )
    assert code == 0, err
    assert [json.loads(line)["session"]["sessionId"] for line in out.splitlines()
            if line.startswith('{"session"')] == [second]  # fmt: skip
    assert err == ""  # stderr is no terminal: no progress line
    code, _, err = await replayd("export", "--project", "aaaaaaaaaaaaaaaaaaaa", "--db", db)
    assert code == 1 and err.count("\n") == 1 and "no project" in err


def test_since_takes_milliseconds_or_an_iso_date() -> None:
    assert parse_since("1700000000000") == 1_700_000_000_000
    assert parse_since("2026-01-31") == 1_769_817_600_000
    assert parse_since("2026-01-31T01:00:00+01:00") == 1_769_817_600_000
    try:
        parse_since("yesterday")
    except ValueError as error:
        assert "--since" in str(error)
    else:
        raise AssertionError("a word is no date")


def test_progress_redraws_one_line() -> None:
    stream = io.StringIO()
    bar = Progress(stream, total=4)
    for _ in range(4):
        bar.advance()
    bar.finish()
    text = stream.getvalue()
    assert text.endswith("\rexported 4/4 sessions (100%)\n")
    assert "\n" not in text[:-1]  # redrawn in place
    silent = Progress(None, total=4)
    silent.advance()
    silent.finish()
