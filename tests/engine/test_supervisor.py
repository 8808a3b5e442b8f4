"""The supervisor: dispatch in log order, epochs, inactivity ends, re-activation, resume, cancel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
import trio.testing

from engine.events import (
    Clicked,
    IssueDetected,
    PageTimingsReported,
    RecordParked,
    SessionEnded,
)
from engine.supervisor import (
    ResumePoint,
    Supervisor,
    clock_ticker,
    history_from_reader,
    live_sessions_at,
    reader_source,
    resume_point,
)
from storage.log import EventLog, LogReader
from storage.records import LogRecord, RecordKind
from tests.engine.builders import T0, CollectingSink, MemoryLog, SessionScript, clock_tick, commit

TIMEOUT = 150_000


def supervisor_for(log: MemoryLog, sink: CollectingSink, **kwargs: Any) -> Supervisor:
    return Supervisor(history=history_from_reader(log), sink=sink, **kwargs)


async def run_all(
    records: list[LogRecord], *, chunk_size: int = 1000, **kwargs: int
) -> tuple[Supervisor, CollectingSink]:
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = supervisor_for(log, sink, **kwargs)
    await supervisor.run_until(log, log.head(), chunk_size=chunk_size)
    return supervisor, sink


def two_interleaved_sessions() -> list[LogRecord]:
    a = SessionScript(1)
    b = SessionScript(2, project_id=7)
    records = [a.start(), b.start(received_at=T0 + 10)]
    a.visit("http://a/")
    a.click("A1")
    b.visit("http://b/")
    b.click("B1")
    records += [a.batch(received_at=T0 + 20), b.batch(received_at=T0 + 30)]
    a.wait(100)
    a.click("A2")
    records.append(a.batch(received_at=T0 + 200))
    return commit(records)


async def test_records_are_dispatched_in_log_order_and_delivered_per_chunk() -> None:
    records = two_interleaved_sessions()
    supervisor, sink = await run_all(records, chunk_size=2)
    assert sink.checkpoints == [2, 4, 5]
    assert [(type(e).__name__, e.session_id, e.position) for e in sink.events] == [
        ("SessionStarted", 1, 1),
        ("SessionStarted", 2, 2),
        ("PageVisited", 1, 3),
        ("PageTitleChanged", 1, 3),
        ("Clicked", 1, 3),
        ("PageVisited", 2, 4),
        ("PageTitleChanged", 2, 4),
        ("Clicked", 2, 4),
        ("Clicked", 1, 5),
    ]
    assert {e.project_id for e in sink.events if e.session_id == 2} == {7}
    stats = supervisor.statistics()
    assert stats.records_processed == 5 and stats.events_emitted == 9
    assert stats.last_position == 5 and stats.log_clock_ms == T0 + 200
    assert stats.activations == 2 and stats.passivations == 0
    # The source is exhausted: nothing was ended artificially, the tasks simply stopped.
    assert not sink.of_type(SessionEnded)


async def test_an_inactive_session_ends_at_the_clock_tick_that_reveals_it() -> None:
    a = SessionScript(1)
    start = a.start()
    a.visit("http://a/")
    a.wait(5000)
    a.click("Last")
    batch = a.batch(received_at=T0 + 6000)
    records = commit(
        [start, batch, clock_tick(T0 + 6000 + TIMEOUT), clock_tick(T0 + 6001 + TIMEOUT)]
    )
    supervisor, sink = await run_all(records)
    ended = sink.of_type(SessionEnded)
    assert ended == [
        SessionEnded(position=4, session_id=1, project_id=1, timestamp=T0 + 5000, duration_ms=5000)
    ]
    assert supervisor.statistics().passivations == 1
    assert supervisor.statistics().live_actors == 0 and not supervisor.has_live_sessions()


async def test_a_late_batch_reactivates_the_session_where_it_stopped() -> None:
    a = SessionScript(1)
    start = a.start()
    a.user_id("u1")
    home = a.visit("http://a/")
    first = a.batch(received_at=T0 + 100)
    late_at = T0 + 100 + TIMEOUT + 1_000
    a.now = late_at - 50
    a.user_id("u1")  # re-sent by the tracker: not a change
    a.load_timing(request_start=7)
    a.click("Again")
    late = a.batch(received_at=late_at)
    records = commit(
        [start, first, clock_tick(T0 + 100 + TIMEOUT + 1), late, clock_tick(late_at + TIMEOUT + 1)]
    )
    supervisor, sink = await run_all(records, chunk_size=2)
    assert [(type(e).__name__, e.position) for e in sink.events] == [
        ("SessionStarted", 1),
        ("UserIdSet", 2),
        ("PageVisited", 2),
        ("PageTitleChanged", 2),
        ("SessionEnded", 3),
        ("PageTimingsReported", 4),
        ("Clicked", 4),
        ("SessionEnded", 5),
    ]
    (timings,) = sink.of_type(PageTimingsReported)
    assert timings.page_message_id == home.message_id  # the page known before passivation
    first_end, second_end = sink.of_type(SessionEnded)
    assert first_end.duration_ms == 0 and second_end.duration_ms == late_at - 50 - T0
    stats = supervisor.statistics()
    assert stats.activations == 2 and stats.replayed_records == 2 and stats.passivations == 2


async def test_a_session_that_went_quiet_is_ended_before_its_own_late_record() -> None:
    a = SessionScript(1)
    records = commit([a.start(), a.assets(received_at=T0 + TIMEOUT + 1)])
    _, sink = await run_all(records)
    assert [(type(e).__name__, e.position) for e in sink.events] == [
        ("SessionStarted", 1),
        ("SessionEnded", 2),
    ]


async def test_ends_in_one_position_come_in_order_of_last_activity() -> None:
    a, b, c = SessionScript(3), SessionScript(1), SessionScript(2)
    records = commit(
        [
            a.start(),
            b.start(received_at=T0 + 5),
            c.start(received_at=T0 + 5),
            clock_tick(T0 + 5 + TIMEOUT + 1),
        ]
    )
    _, sink = await run_all(records)
    assert [e.session_id for e in sink.of_type(SessionEnded)] == [3, 1, 2]
    assert {e.position for e in sink.of_type(SessionEnded)} == {4}


async def test_a_full_mailbox_holds_the_supervisor_without_losing_anything() -> None:
    a = SessionScript(1)
    script = [a.start()]
    for i in range(40):
        a.wait(10)
        a.click(f"C{i}")
        script.append(a.batch())
    records = commit(script)
    small, small_sink = await run_all(records, mailbox_size=1)
    _, big_sink = await run_all(records, mailbox_size=64)
    assert [e.label for e in small_sink.of_type(Clicked)] == [f"C{i}" for i in range(40)]
    assert small_sink.events == big_sink.events
    assert small.statistics().mailbox_size == 1


async def test_a_parked_record_is_counted_and_stalls_nobody() -> None:
    a, b = SessionScript(1), SessionScript(2)
    records = [a.start(), b.start(received_at=T0 + 1)]
    records.append(a.raw_batch(b"\x51\x01\x00\x00\x02\x00\x55\x09\x00\x00", received_at=T0 + 2))
    b.click("B")
    records.append(b.batch(received_at=T0 + 3))
    a.click("A")
    records.append(a.batch(received_at=T0 + 4))
    supervisor, sink = await run_all(commit(records))
    (parked,) = sink.of_type(RecordParked)
    assert parked.position == 3 and parked.session_id == 1
    assert [e.label for e in sink.of_type(Clicked)] == ["B", "A"]
    assert supervisor.statistics().parked_records == 1


async def test_resume_point_knows_the_clock_and_the_live_sessions() -> None:
    a, b = SessionScript(1), SessionScript(2)
    records = commit(
        [
            a.start(),
            b.start(received_at=T0 + 100_000),
            clock_tick(T0 + 160_000),  # a is stale here, b is not
            b.assets(received_at=T0 + 200_000),
            clock_tick(T0 + 400_000),  # now both are
        ]
    )
    log = MemoryLog(records)
    assert await resume_point(log, 2, TIMEOUT) == ResumePoint(
        position=2, clock_ms=T0 + 100_000, live_sessions=(1, 2)
    )
    assert await resume_point(log, 3, TIMEOUT) == ResumePoint(
        position=3, clock_ms=T0 + 160_000, live_sessions=(2,)
    )
    assert await live_sessions_at(log, 5, TIMEOUT) == []
    assert await live_sessions_at(log, 0, TIMEOUT) == []


async def test_restart_resumes_live_sessions_silently() -> None:
    records = two_interleaved_sessions()
    _, whole = await run_all(records)
    log = MemoryLog(records)
    resume = await resume_point(log, 3, TIMEOUT)
    sink = CollectingSink()
    supervisor = supervisor_for(log, sink)
    await supervisor.run_until(log, log.head(), resume=resume)
    assert sink.events == [e for e in whole.events if e.position > 3]
    assert supervisor.statistics().replayed_records == 3  # a's start and batch, b's start


def _all_tasks() -> list[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    assert root is not None  # inside trio.run
    tasks: list[trio.lowlevel.Task] = []
    stack = [root]
    while stack:
        task = stack.pop()
        tasks.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return tasks


async def test_cancelling_the_supervisor_stops_every_actor() -> None:
    records = two_interleaved_sessions()
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = supervisor_for(log, sink)

    async def forever() -> AsyncIterator[list[LogRecord]]:
        yield records
        await trio.sleep_forever()
        yield []  # pragma: no cover

    baseline = len(_all_tasks())
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run, forever())
            await trio.testing.wait_all_tasks_blocked()
            assert sink.checkpoints == [5] and supervisor.statistics().live_actors == 2
            # the nursery's task, the supervisor and its two actors
            assert len(_all_tasks()) == baseline + 3
            scope.cancel()
    assert scope.cancelled_caught
    assert len(_all_tasks()) == baseline


async def test_live_tail_and_rebuild_give_the_same_events(tmp_path: Path) -> None:
    a, b = SessionScript(1, tracker_version="18.2.0"), SessionScript(2)
    new_records = [a.start(), b.start(received_at=T0 + 1)]
    a.visit("http://a/")
    a.rage_click("Buy", count=3)
    new_records.append(a.batch(received_at=T0 + 500))
    b.visit("http://b/")
    b.js_exception("Error", "boom")
    new_records.append(b.batch(received_at=T0 + 600))
    new_records.append(clock_tick(T0 + 600 + TIMEOUT + 1))
    a.now = T0 + 600 + TIMEOUT + 100
    a.click("Late")
    new_records.append(a.batch(received_at=a.now + 50))

    path = tmp_path / "log.db"
    live_sink = CollectingSink()
    log = EventLog(path)
    supervisor = Supervisor(
        history=log.read_session,
        sink=live_sink,
        histories={"v3": log.read_keyed_session},  # a keyed type reads its history by key
    )
    async with (
        contextlib.aclosing(log.tail(0, batch_size=2)) as tail,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(log.run)
        nursery.start_soon(supervisor.run, tail)
        for record in new_records:
            await log.append(record)
        with trio.fail_after(30):  # a guard against a hang, not a measurement
            await live_sink.wait_for(log.head())
        nursery.cancel_scope.cancel()

    rebuilt_sink = CollectingSink()
    with LogReader(path) as reader:
        rebuilt = Supervisor(history=history_from_reader(reader), sink=rebuilt_sink)
        await rebuilt.run_until(reader, reader.head(), chunk_size=3)
    assert rebuilt_sink.events == live_sink.events
    assert [type(e) for e in live_sink.events].count(SessionEnded) == 2
    assert any(
        isinstance(e, IssueDetected) and e.issue_type == "click_rage" for e in live_sink.events
    )


async def test_clock_ticker_ticks_only_while_sessions_are_live(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    calls = 0

    def has_live() -> bool:
        nonlocal calls
        calls += 1
        return calls <= 3

    times = iter(range(T0, T0 + 100))
    async with trio.open_nursery() as nursery:
        log = EventLog(tmp_path / "log.db")
        await nursery.start(log.run)
        nursery.start_soon(lambda: clock_ticker(log, 10, has_live, now_ms=lambda: next(times)))
        while calls < 6:
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    with LogReader(tmp_path / "log.db") as reader:
        ticks = reader.read(0, 100)
    assert [(r.kind, r.session_id, r.project_id, r.payload, r.received_at_ms) for r in ticks] == [
        (RecordKind.CLOCK_TICK, 0, 0, b"", T0 + i) for i in range(3)
    ]


async def test_reader_source_stops_at_upto_and_chunks() -> None:
    records = two_interleaved_sessions()
    log = MemoryLog(records)
    chunks = [chunk async for chunk in reader_source(log, after=1, upto=4, chunk_size=2)]
    assert [[r.position for r in chunk] for chunk in chunks] == [[2, 3], [4]]
    chunks = [chunk async for chunk in reader_source(log)]
    assert [[r.position for r in chunk] for chunk in chunks] == [[1, 2, 3, 4, 5]]


def rage_then_late_clicks(*, stale: bool) -> list[LogRecord]:
    """Tracker 18: a click-rage burst ends batch 1, the session ends, a late batch clicks again."""
    a = SessionScript(1, tracker_version="18.2.0")
    start = a.start()
    a.visit("http://a/")
    a.rage_click("Buy", count=3, gap_ms=100)
    b1 = a.batch(received_at=T0 + 1000)
    tick = clock_tick(T0 + 1000 + TIMEOUT + 1)
    # stale: the late batch was written right after the burst but arrived minutes later.
    a.wait(100 if stale else TIMEOUT)
    a.click("Buy")
    b2 = a.batch(received_at=T0 + 1000 + TIMEOUT + 1000)
    a.wait(100)
    a.rage_click("Buy", count=2, gap_ms=100)
    a.wait(1000)
    a.click("Other")
    b3 = a.batch(received_at=T0 + 1000 + TIMEOUT + 2000)
    return commit([start, b1, tick, b2, b3])


async def test_the_end_settles_a_burst_once_even_when_the_session_comes_back() -> None:
    _, sink = await run_all(rage_then_late_clicks(stale=False))
    rage = [
        (e.position, e.payload) for e in sink.of_type(IssueDetected) if e.issue_type == "click_rage"
    ]
    # Settled by the end (position 3); the late clicks make one more burst of three.
    assert rage == [(3, '{"Count":3}'), (5, '{"Count":3}')]


async def test_restart_after_a_late_batch_replays_the_end_in_between() -> None:
    records = rage_then_late_clicks(stale=True)
    _, whole = await run_all(records)
    rage = [
        (e.position, e.payload)
        for e in whole.of_type(IssueDetected)
        if e.issue_type == "click_rage"
    ]
    assert rage == [(3, '{"Count":3}'), (5, '{"Count":3}')]
    log = MemoryLog(records)
    resume = await resume_point(log, 4, TIMEOUT)
    assert resume.live_sessions == (1,)
    sink = CollectingSink()
    await supervisor_for(log, sink).run_until(log, log.head(), resume=resume)
    assert sink.events == [e for e in whole.events if e.position > 4]
