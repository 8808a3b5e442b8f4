"""The log's memory is bounded in bytes: the append queue's payload budget and bounded reads."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from storage.errors import LogOverloaded
from storage.log import EventLog, poll_tail
from storage.records import NewRecord, RecordKind
from storage.sqlite_recorder import LogReader


def record(n: int, size: int) -> NewRecord:
    return NewRecord(
        session_id=1,
        project_id=1,
        kind=RecordKind.WEB_BATCH,
        received_at_ms=1000 + n,
        payload=n.to_bytes(4, "big") * (size // 4),
        batch_key=f"0_{n}",
    )


@contextlib.asynccontextmanager
async def running(path: Path, **options: Any) -> AsyncIterator[EventLog]:
    log = EventLog(path, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        yield log
        nursery.cancel_scope.cancel()


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holds the write lock: the writer's transaction waits for it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def test_appenders_wait_while_the_queued_bytes_are_over_budget(fresh_db_path: Path) -> None:
    async with running(fresh_db_path, queue_bytes=1000, busy_timeout_ms=20_000) as log:
        await log.append(record(0, 100))  # creates the file before the lock is taken
        async with trio.open_nursery() as nursery:
            with write_lock(fresh_db_path):
                # Held by the writer (its transaction waits for the lock): 800 of 1000 bytes.
                nursery.start_soon(log.append, record(1, 800))
                await trio.testing.wait_all_tasks_blocked()
                assert log.statistics().held_bytes == 800
                # 800 + 400 > 1000: this one waits, and after wait_timeout gives up (not stored).
                with pytest.raises(LogOverloaded):
                    await log.append(record(2, 400), wait_timeout=0.1)
                assert log.statistics().held_bytes == 800
                # A small one fits beside it.
                nursery.start_soon(log.append, record(3, 100))
                await trio.testing.wait_all_tasks_blocked()
                assert log.statistics().held_bytes == 900
        assert log.statistics().held_bytes == 0
        stored = await log.read(0, 100)
        assert [r.batch_key for r in stored] == ["0_0", "0_1", "0_3"]


async def test_a_request_bigger_than_the_budget_passes_alone(fresh_db_path: Path) -> None:
    async with running(fresh_db_path, queue_bytes=100) as log:
        result = await log.append(record(1, 5000))
        assert result.position == 1
        assert log.statistics().queue_bytes == 100


async def test_a_waiting_appender_goes_on_once_bytes_are_released(fresh_db_path: Path) -> None:
    async with running(fresh_db_path, queue_bytes=1000, busy_timeout_ms=20_000) as log:
        await log.append(record(0, 100))
        async with trio.open_nursery() as nursery:
            with write_lock(fresh_db_path):
                nursery.start_soon(log.append, record(1, 800))
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(log.append, record(2, 800))  # waits for room
                await trio.testing.wait_all_tasks_blocked()
                assert log.statistics().held_bytes == 800
        assert [r.batch_key for r in await log.read(0, 100)] == ["0_0", "0_1", "0_2"]


async def test_reads_are_bounded_in_bytes_but_return_at_least_one_record(
    fresh_db_path: Path,
) -> None:
    async with running(fresh_db_path) as log:
        for n in range(1, 11):
            await log.append(record(n, 100))
        with LogReader(fresh_db_path) as reader:
            assert [r.position for r in reader.read(0, 100, max_bytes=250)] == [1, 2]
            assert [r.position for r in reader.read(2, 100, max_bytes=1)] == [3]
            assert len(reader.read(0, 100)) == 10
            assert len(reader.read(0, 4, max_bytes=10**6)) == 4
        chunks = []
        async with contextlib.aclosing(log.tail(0, max_bytes=350)) as tail:
            async for chunk in tail:
                chunks.append([r.position for r in chunk])
                if chunk[-1].position == 10:
                    break
        assert chunks == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
        polled = []
        async with contextlib.aclosing(poll_tail(fresh_db_path, 0, max_bytes=450)) as tail:
            async for chunk in tail:
                polled.append(len(chunk))
                if chunk[-1].position == 10:
                    break
        assert polled == [4, 4, 2]
