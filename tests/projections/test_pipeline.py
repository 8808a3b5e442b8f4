"""The projector: checkpoints with rows in one transaction, skipping, restarts and the lock."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import trio

from projections import dead_letters, events, sessions
from projections.live_sessions import LiveSessions
from projections.pipeline import ProjectionsBusy, Projector
from projections.reader import ProjectionReader
from storage.sqlite import connect

from .factories import SessionScript, dump_tables, positioned


async def test_sink_applies_and_moves_every_checkpoint(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    live = LiveSessions()
    async with Projector(fresh_db_path, live=live) as projector:
        assert projector.resume_position == 0
        await projector.sink(positioned([[s.started(user_id="u")], [s.click(), s.click()]]), 2)
        # Ticks and records of other kinds move the checkpoints without events.
        await projector.sink([], 5)
        assert projector.checkpoints == {
            "sessions": 5, "events": 5, "users": 5, "v3": 5, "jobs": 5, "dead_letters": 5,
            "live_sessions": 5,
        }  # fmt: skip
        assert projector.resume_position == 5
        assert projector.statistics.sink_calls == 2 and projector.statistics.events_seen == 3
    reader = ProjectionReader(fresh_db_path)
    try:
        row = await reader.session(1, 1)
        assert row is not None and row.events_count == 2
        assert len(await reader.session_events(1, 1)) == 2
    finally:
        reader.close()


async def test_events_at_or_below_the_checkpoint_are_skipped(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    delivered = positioned([[s.started()], [s.click()], [s.click()], [s.ended()]])
    async with Projector(fresh_db_path) as projector:
        await projector.sink(delivered[:3], 3)
    # After a restart the engine re-delivers from an earlier position: only position 4 is new.
    async with Projector(fresh_db_path) as projector:
        assert projector.resume_position == 3
        await projector.sink(delivered, 4)
    conn = connect(fresh_db_path)
    try:
        row = sessions.get_session(conn, 1, 1)
        assert row is not None and row.events_count == 2 and row.duration is not None
        assert len(events.session_events(conn, 1, 1)) == 2
    finally:
        conn.close()


async def test_a_poisoned_event_is_parked_and_the_rest_commits(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    async with Projector(fresh_db_path) as projector:
        await projector.sink(positioned([[s.started()]]), 1)
        good = positioned([[s.click()]], first=2)
        # Used to fail the whole delivery (and stop the server): now only that event is parked.
        broken = positioned([[s.parked(error=object())]], first=3)  # type: ignore[arg-type]
        await projector.sink(good + broken, 3)
        assert projector.resume_position == 3
        assert projector.statistics.parked_events == 1
        assert projector.statistics.isolations == 1
    conn = connect(fresh_db_path)
    try:
        assert len(events.session_events(conn, 1, 1)) == 1
        [letter] = dead_letters.recent(conn)
        assert (letter.position, letter.session_id, letter.stage) == (
            3,
            1,
            "projection:dead_letters",
        )
        assert letter.error.startswith("ProgrammingError: Error binding parameter")
    finally:
        conn.close()


async def test_live_sessions_reload_on_restart(fresh_db_path: Path) -> None:
    a, b = SessionScript(session_id=1), SessionScript(session_id=2)
    async with Projector(fresh_db_path, live=LiveSessions()) as projector:
        await projector.sink(
            positioned(
                [[a.started(user_browser="Chrome")], [b.started()], [a.title("Cart"), b.ended()]]
            ),
            3,
        )
    live = LiveSessions()
    async with Projector(fresh_db_path, live=live) as projector:
        assert live.checkpoint == 3
        got = live.get(1, 1)
        assert got is not None and (got.page_title, got.start.user_browser) == ("Cart", "Chrome")
        assert live.get(1, 2) is None
        await projector.sink(positioned([[a.ended()]], first=4), 4)
        assert len(live) == 0


async def test_a_partial_projector_leaves_the_others_alone(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    async with Projector(fresh_db_path, projections=[events.PROJECTION]) as projector:
        await projector.sink(positioned([[s.started()], [s.click()]]), 2)
        assert projector.checkpoints == {"events": 2}
    tables = dump_tables(fresh_db_path, ["session_events", "projection_checkpoints"])
    assert len(tables["session_events"]) == 1
    assert tables["projection_checkpoints"] == [("events", 2)]


async def test_reset_empties_the_chosen_projections(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    async with Projector(fresh_db_path) as projector:
        await projector.sink(positioned([[s.started()], [s.click()]]), 2)
    async with Projector(fresh_db_path, projections=[sessions.PROJECTION], holder="rebuild") as p:
        await trio.to_thread.run_sync(p.reset_sync)
        assert p.checkpoints == {"sessions": 0}
    tables = dump_tables(fresh_db_path, ["sessions", "session_events", "projection_checkpoints"])
    assert tables["sessions"] == [] and len(tables["session_events"]) == 1
    assert ("sessions", 2) not in tables["projection_checkpoints"]


async def test_a_second_writer_is_refused_while_the_first_lives(fresh_db_path: Path) -> None:
    async with Projector(fresh_db_path, holder="server"):
        with pytest.raises(ProjectionsBusy, match="server"):
            async with Projector(fresh_db_path, holder="rebuild"):
                pass
    async with Projector(fresh_db_path, holder="rebuild"):
        pass  # released on close


async def test_a_lock_left_by_a_dead_process_is_taken_over(fresh_db_path: Path) -> None:
    async with Projector(fresh_db_path):
        pass
    dead = await trio.run_process(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_stdout=True
    )
    conn = connect(fresh_db_path)
    try:
        conn.execute(
            "INSERT INTO projection_lock (id, holder, token, host, pid, acquired_at_ms)"
            " VALUES (1, 'server', 'old', ?, ?, 0)",
            (socket.gethostname(), int(dead.stdout.decode())),
        )
    finally:
        conn.close()
    async with Projector(fresh_db_path, holder="rebuild"):
        pass


async def test_write_behind_queues_and_drain_waits(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    live = LiveSessions()
    async with trio.open_nursery() as nursery:
        projector = await nursery.start(Projector(fresh_db_path, live=live).run)
        deliveries = [
            positioned([[s.started()]]),
            positioned([[s.click()]], first=2),
            positioned([[s.click()]], first=3),
        ]
        for upto, delivery in enumerate(deliveries, start=1):
            await projector.sink(delivery, upto)
        await projector.drain()
        assert projector.statistics.upto_position == 3 and projector.resume_position == 3
        assert live.get(1, 1) is not None
        nursery.cancel_scope.cancel()
    conn = connect(fresh_db_path)
    try:
        row = sessions.get_session(conn, 1, 1)
        assert row is not None and row.events_count == 2
    finally:
        conn.close()
    # The lock was released when run() ended.
    async with Projector(fresh_db_path, holder="rebuild") as again:
        assert again.statistics.upto_position == 3


async def test_a_write_behind_with_poison_carries_on(fresh_db_path: Path) -> None:
    s = SessionScript(session_id=1)
    async with trio.open_nursery() as nursery:
        projector = await nursery.start(Projector(fresh_db_path).run)
        await projector.sink(positioned([[s.parked(error=object())]]), 1)  # type: ignore[arg-type]
        await projector.sink(positioned([[s.started()]], first=2), 2)
        await projector.drain()
        assert projector.resume_position == 2
        nursery.cancel_scope.cancel()
    conn = connect(fresh_db_path)
    try:
        assert sessions.get_session(conn, 1, 1) is not None
        assert [d.position for d in dead_letters.recent(conn)] == [1]
    finally:
        conn.close()
