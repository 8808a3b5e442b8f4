"""``replayd dead-letters retry``: after a fix, the parked sessions re-run to what a rebuild gives.

The "old version" is a projector whose events projection has a bug for one label (the failure
invariant 8 must survive); the retry runs the real projections over the real log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
import trio

from api.cli import main
from engine.actor_types import WEB_ACTOR_TYPE, ActorRegistry
from engine.events import DomainEvent
from engine.supervisor import Supervisor, SyncLogReader, history_from_reader
from projections import dead_letters
from projections import events as events_projection
from projections.pipeline import ALL_PROJECTIONS, Projector, SqlProjection
from projections.rebuild import rebuild
from projections.retry import _OnlySessions, retry
from storage.records import NewRecord
from storage.sqlite_recorder import LogReader
from tests.engine.builders import T0, CollectingSink, clock_tick
from tests.engine.builders import SessionScript as TrackerScript
from tests.engine.test_actor_types import TOY, ClientEnded, toy_record

from .factories import dump_tables
from .test_rebuild import TIMEOUT_MS, append_all, live_path, projections_of, simple_session


def _buggy(conn: sqlite3.Connection, events: Sequence[DomainEvent]) -> None:
    if any(getattr(e, "label", None) == "Buy" for e in events):
        raise RuntimeError("bug for Buy")
    events_projection.apply(conn, events)


BUGGY: tuple[SqlProjection, ...] = tuple(
    attrs.evolve(p, apply=_buggy) if p.name == "events" else p for p in ALL_PROJECTIONS
)


def _log(fresh_db_path: Path) -> list:
    records = simple_session(11) + simple_session(12, user="bob", start=T0 + 500)
    broken = TrackerScript(13, start_ms=T0 + 700)
    records += [broken.start(), broken.raw_batch(b"\x51\x01\x00", received_at=T0 + 800)]
    records.append(clock_tick(T0 + 60_000))  # ends every session
    records += simple_session(14, user="cy", start=T0 + 70_000)
    return records


async def test_retry_after_a_fix_gives_what_a_rebuild_gives(fresh_db_path: Path) -> None:
    records = _log(fresh_db_path)
    await append_all(fresh_db_path, records)
    cut = len(records) - 2  # the projections stopped before the log's end (server stopped)
    await live_path(fresh_db_path, [cut], 3, BUGGY)
    projections = projections_of(fresh_db_path)
    conn = sqlite3.connect(projections)
    try:
        stages = conn.execute("SELECT DISTINCT session_id, stage FROM dead_letters").fetchall()
    finally:
        conn.close()
    assert sorted(stages) == [
        (11, "projection:events"),
        (12, "projection:events"),
        (13, "engine"),
    ]  # session 14's click comes after the cut

    result = await retry(fresh_db_path, projections, inactivity_timeout_ms=TIMEOUT_MS)
    assert result.sessions == (11, 12, 13)
    assert result.parked_after == 1  # the garbage batch is still garbage
    # Then the server carries on from the checkpoints, with the fixed code.
    await live_path(fresh_db_path, [len(records)], 3)
    retried = dump_tables(projections)

    await rebuild(fresh_db_path, projections, inactivity_timeout_ms=TIMEOUT_MS)
    assert dump_tables(projections) == retried


async def test_retry_and_list_from_the_command_line(
    fresh_db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await append_all(fresh_db_path, _log(fresh_db_path))
    await live_path(fresh_db_path, [len(_log(fresh_db_path))], 3, BUGGY)
    db = str(fresh_db_path)
    assert await trio.to_thread.run_sync(main, ["dead-letters", "list", "--db", db]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split("\t") == ["position", "session", "project", "stage", "at", "error"]
    assert listing[-1] == "4 dead letter(s)"
    assert any(
        "projection:events\t" in line and "RuntimeError: bug for Buy" in line for line in listing
    )
    argv = ["dead-letters", "list", "--db", db, "--limit", "1", "--project-id", "1"]
    assert await trio.to_thread.run_sync(main, argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # header, one letter, the count

    # While a server holds the projections, retry is refused.
    async with Projector(projections_of(fresh_db_path), holder="server"):
        retry_argv = ["dead-letters", "retry", "--db", db]
        assert await trio.to_thread.run_sync(main, retry_argv) == 1
        assert "stop it first" in capsys.readouterr().err
    assert await trio.to_thread.run_sync(main, retry_argv) == 0
    assert capsys.readouterr().out.strip() == (
        "retried 4 session(s): 4 dead letter(s) before, 1 remain"
    )
    conn = sqlite3.connect(projections_of(fresh_db_path))
    try:
        assert dead_letters.count(conn) == 1
    finally:
        conn.close()


async def test_retry_replays_keyed_sessions_of_a_parked_session_each_by_its_own_key(
    fresh_db_path: Path,
) -> None:
    # Two keyed sessions under one session id, a third under another: re-running session 5
    # replays a and b as two actors, each folding its own history (read by key, not by the
    # shared session id), exactly as the whole log does; c is not re-run.
    def keyed(client: str, session_id: int, at: int) -> NewRecord:
        return attrs.evolve(toy_record(client, at), session_id=session_id)

    await append_all(
        fresh_db_path,
        [
            keyed("client-aaaa", 5, T0),
            keyed("client-bbbbbbbb", 5, T0 + 10),
            keyed("client-cccc", 6, T0 + 20),
            keyed("client-aaaa", 5, T0 + 500),
            keyed("client-cccc", 6, T0 + 2_000),  # ends b, c and a, then c goes on
            keyed("client-aaaa", 5, T0 + 2_100),  # a again: re-activated with its history
            clock_tick(T0 + 10_000),
        ],
    )
    registry = ActorRegistry([WEB_ACTOR_TYPE, TOY])

    async def ends(source: SyncLogReader, history: LogReader) -> list[tuple[str, int, int]]:
        sink = CollectingSink()
        supervisor = Supervisor(history=history_from_reader(history), sink=sink, registry=registry)
        await supervisor.run_until(source, source.head())
        return [(e.client, e.position, e.records) for e in sink.of_type(ClientEnded)]

    with LogReader(fresh_db_path) as reader, LogReader(fresh_db_path) as history:
        everything = await ends(reader, history)
        retried = await ends(_OnlySessions(reader, [5]), history)
    assert everything == [
        ("client-bbbbbbbb", 5, 1),
        ("client-cccc", 5, 1),
        ("client-aaaa", 5, 2),
        ("client-cccc", 7, 2),
        ("client-aaaa", 7, 3),  # its history by session id would have held b's record too
    ]
    assert retried == [everything[0], everything[2], everything[4]]
