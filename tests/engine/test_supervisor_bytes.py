"""The engine's memory is bounded in bytes: chunks read from the log and mail in the mailboxes."""

from __future__ import annotations

import trio

from engine.supervisor import Supervisor, history_from_reader
from storage.records import LogRecord
from tests.engine.builders import T0, CollectingSink, MemoryLog, SessionScript, commit


def busy_sessions(sessions: int = 4, batches: int = 6) -> list[LogRecord]:
    scripts = [SessionScript(n + 1) for n in range(sessions)]
    records = [script.start(received_at=T0 + n) for n, script in enumerate(scripts)]
    for b in range(batches):
        for n, script in enumerate(scripts):
            script.visit(f"http://s{n}/{b}")
            for c in range(5):
                script.click(f"button {b}.{c}")
            records.append(script.batch(received_at=T0 + 100 * (b + 1) + n))
    return commit(records)


async def run(
    records: list[LogRecord], *, chunk_bytes: int, mailbox_bytes: int, peaks: list[int]
) -> tuple[Supervisor, CollectingSink]:
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log), sink=sink, mailbox_bytes=mailbox_bytes
    )

    async def sample() -> None:
        # At every scheduling point: the bytes waiting in the mailboxes never pass the budget.
        while True:
            peaks.append(supervisor.statistics().mailbox_bytes)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        await supervisor.run_until(log, log.head(), chunk_bytes=chunk_bytes)
        nursery.cancel_scope.cancel()
    return supervisor, sink


async def test_mailbox_bytes_stay_within_the_budget_and_results_do_not_change() -> None:
    records = busy_sessions()
    largest = max(len(r.payload) for r in records)
    peaks: list[int] = []
    _, unbounded = await run(records, chunk_bytes=10**9, mailbox_bytes=10**9, peaks=[])
    supervisor, bounded = await run(
        records, chunk_bytes=10**9, mailbox_bytes=2 * largest, peaks=peaks
    )
    assert max(peaks) <= 2 * largest
    assert max(peaks) > 0  # the sampler saw mail waiting
    assert supervisor.statistics().mailbox_bytes == 0  # every byte given back
    assert bounded.events == unbounded.events


async def test_a_budget_smaller_than_one_record_still_lets_every_record_through() -> None:
    records = busy_sessions(sessions=2, batches=2)
    _, sink = await run(records, chunk_bytes=1, mailbox_bytes=1, peaks=[])
    # chunk_bytes=1: one record per chunk (always at least one), so one checkpoint per record.
    assert sink.checkpoints == [r.position for r in records]
    _, reference = await run(records, chunk_bytes=10**9, mailbox_bytes=10**9, peaks=[])
    assert sink.events == reference.events


async def test_chunks_are_cut_by_bytes() -> None:
    records = busy_sessions()
    budget = 3 * max(len(r.payload) for r in records)
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(history=history_from_reader(log), sink=sink)
    await supervisor.run_until(log, log.head(), chunk_bytes=budget)
    by_position = {r.position: r for r in records}
    previous = 0
    for upto in sink.checkpoints:
        chunk = [by_position[p] for p in range(previous + 1, upto + 1)]
        assert len(chunk) == 1 or sum(len(r.payload) for r in chunk) <= budget
        previous = upto
    assert previous == records[-1].position and len(sink.checkpoints) > 1
