"""The engine and the projections across an erasure of log records (DESIGN.md invariant 2).

An ``ERASURE`` record is accepted like a clock tick (never parked), and a projection whose
checkpoint is past an erased position still gets the records appended after the erasure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import trio

from engine.events import DomainEvent, RecordParked, SessionStarted
from engine.lifecycle import SessionsErased
from engine.supervisor import Supervisor, history_from_reader, resume_point
from projections import dead_letters, sessions
from projections.pipeline import Projector
from storage.log import EventLog, LogReader
from storage.records import NewRecord, RecordKind
from storage.sqlite import connect
from tests.engine.builders import T0, SessionScript

TIMEOUT = 150_000


async def _append(path: Path, records: list[NewRecord], *, erase: Sequence[int] = ()) -> list[int]:
    """Append ``records`` (then erase ``erase``) with a log writer; the positions given."""
    log = EventLog(path, synchronous="OFF")
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        positions = [result.position for result in await log.append_many(records)]
        if erase:
            erased = await log.erase(erase, reason="user-deletion", received_at_ms=T0 + 10)
            positions.append(erased.position)
        nursery.cancel_scope.cancel()
    return positions


async def _project(log_path: Path, projections_path: Path) -> tuple[Supervisor, dict[str, int]]:
    """Run the engine from the projections' resume point to the log's head, as a restart does."""
    with LogReader(log_path) as reader, LogReader(log_path) as history:
        async with Projector(projections_path) as projector:
            resume = await resume_point(reader, projector.resume_position, TIMEOUT)
            supervisor = Supervisor(history=history_from_reader(history), sink=projector.sink)
            await supervisor.run_until(reader, reader.head(), resume=resume)
            return supervisor, projector.checkpoints


async def test_a_projection_past_an_erased_position_sees_the_next_append(tmp_path: Path) -> None:
    log_path, projections_path = tmp_path / "log.db", tmp_path / "projections.db"
    a, b, c = SessionScript(1), SessionScript(2), SessionScript(3)
    a.visit("http://a/")
    first = [a.start(), a.batch(received_at=T0 + 5), b.start(received_at=T0 + 6)]
    assert await _append(log_path, first) == [1, 2, 3]
    _, checkpoints = await _project(log_path, projections_path)
    assert set(checkpoints.values()) == {3}

    # Session 2's start, the newest record, is erased; session 3 starts. With rowids it took
    # position 3 again, behind every checkpoint, and was never projected.
    positions = await _append(log_path, [c.start(received_at=T0 + 20)], erase=[3])
    assert positions == [4, 5]  # the start before the erasure record: one transaction each
    supervisor, checkpoints = await _project(log_path, projections_path)
    assert set(checkpoints.values()) == {5}
    conn = connect(projections_path)
    try:
        projected = sessions.get_session(conn, 1, 3)
        assert projected is not None and projected.session_id == 3
        # The erasure record was taken as a clock record: nothing parked.
        assert dead_letters.count(conn) == 0
    finally:
        conn.close()
    assert supervisor.statistics().parked_records == 0


async def test_the_engine_takes_an_erasure_record_like_a_clock_tick(tmp_path: Path) -> None:
    log_path = tmp_path / "log.db"
    a, b = SessionScript(1), SessionScript(2)
    a.visit("http://a/")
    records = [a.start(), b.start(received_at=T0 + 1), a.batch(received_at=T0 + 5)]
    erasure_at = T0 + 10 + TIMEOUT  # late enough to end session 1 by the log clock
    log = EventLog(log_path, synchronous="OFF")
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        await log.append_many(records)
        erased = await log.erase([2], reason="user-deletion", received_at_ms=erasure_at)
        nursery.cancel_scope.cancel()

    events: list[DomainEvent] = []

    async def sink(chunk: list[DomainEvent], upto_position: int) -> None:
        events.extend(chunk)

    with LogReader(log_path) as reader, LogReader(log_path) as history:
        (stored,) = [r for r in reader.read(0, 10) if r.kind == RecordKind.ERASURE]
        supervisor = Supervisor(history=history_from_reader(history), sink=sink)
        await supervisor.run_until(reader, reader.head())
    assert stored.position == erased.position == 4
    stats = supervisor.statistics()
    assert (stats.parked_records, stats.last_position, stats.log_clock_ms) == (0, 4, erasure_at)
    assert not [e for e in events if isinstance(e, RecordParked)]
    assert [e.session_id for e in events if isinstance(e, SessionStarted)] == [1]
    # Its time moved the log clock like any record: session 1 ended at the erasure record, and
    # the erasure itself became the event that makes the projections forget session 2.
    assert [(type(e).__name__, e.position) for e in events][-2:] == [
        ("SessionEnded", 4),
        ("SessionsErased", 4),
    ]
    assert events[-1] == SessionsErased(
        position=4, session_id=0, project_id=0, timestamp=erasure_at, sessions=(2,),
        reason="user-deletion", records=1,
    )  # fmt: skip
