"""The log on a full disk: LogUnavailable (not LogWriteFailed), one log line per change of state,
reads still served, the writer recovers by itself, nothing acknowledged is lost."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from storage.errors import LogUnavailable, LogWriteFailed, StorageUnavailable
from storage.log import EventLog
from storage.records import NewRecord, RecordKind

from .small_disk import SmallDisk, small_disk

PAYLOAD = b"x" * 60_000


def batch(session_id: int, n: int) -> NewRecord:
    return NewRecord(
        session_id=session_id,
        project_id=1,
        kind=RecordKind.WEB_BATCH,
        received_at_ms=1000 + n,
        payload=PAYLOAD + n.to_bytes(4, "big"),
        batch_key=f"0_{n}",
    )


@pytest.fixture(params=["tmpfs", "max_page_count"])
async def disk_and_log(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[SmallDisk, EventLog]]:
    # "tmpfs" falls back to max_page_count when not root (CI is root): never skipped.
    with small_disk(tmp_path, mount=request.param == "tmpfs") as disk:
        log = EventLog(disk.directory / "replayd.db")
        disk.cap_pages = log.set_max_page_count
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            yield disk, log
            nursery.cancel_scope.cancel()


async def test_full_disk_fails_with_log_unavailable_and_recovers(
    disk_and_log: tuple[SmallDisk, EventLog], caplog: pytest.LogCaptureFixture
) -> None:
    disk, log = disk_and_log
    acknowledged = [await log.append(batch(1, n)) for n in range(5)]
    await disk.fill()
    caplog.set_level(logging.WARNING, logger="storage.log")
    failures: list[LogUnavailable] = []
    n = 5
    # The WAL may still have room for a few records; it cannot for long.
    while len(failures) < 3:
        assert n < 500, "the full disk never refused a write"
        try:
            acknowledged.append(await log.append(batch(1, n)))
        except LogUnavailable as error:
            failures.append(error)
        n += 1
    assert all(
        isinstance(f, StorageUnavailable) and not isinstance(f, LogWriteFailed) for f in failures
    )
    assert all(f.retry_after > 0 for f in failures)
    assert isinstance(failures[0].__cause__, sqlite3.OperationalError)
    stats = log.statistics()
    assert stats.write_error is not None and stats.unavailable >= 3
    assert stats.failed_appends == 0
    # Exactly one line for the change to failing, however many requests failed.
    failing_lines = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(failing_lines) == 1 and failing_lines[0].levelno == logging.ERROR
    assert all(r.exc_info is None for r in caplog.records)

    # Reads keep being served while the disk is full.
    stored = await log.read(0, 10_000)
    assert [r.position for r in stored] == [a.position for a in acknowledged]

    await disk.free()
    after = await log.append(batch(2, 1))
    assert after.position == acknowledged[-1].position + 1
    assert log.statistics().write_error is None
    recovered_lines = [r for r in caplog.records if "writable again" in r.getMessage()]
    assert len(recovered_lines) == 1

    stored = await log.read(0, 10_000)
    assert [r.position for r in stored] == [a.position for a in acknowledged] + [after.position]
    assert stored[0].payload == batch(1, 0).payload
    conn = sqlite3.connect(log.path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
