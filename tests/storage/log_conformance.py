"""Backend-independent conformance tests of the event log (DESIGN.md invariants 1-4 and 7).

``LogRecorderTestCase`` is not collected by itself (its name does not start with ``Test``): each
backend subclasses it, is parametrised by its recorder factory (``recorders``, a
:class:`storage.recorder.RecorderFactory`, and ``location``, the test's database) and implements
the hooks at the top, which reach the database *around* the log object (an independent
connection, a write lock held by another session, a rule that refuses some rows). SQLite does so
in ``test_log_sqlite.py``; a PostgreSQL recorder would do the same with its own connections and
run the very same tests: every log here is an :class:`EventLog` on the factory's recorders.

Holding the write lock from another session is how these tests slow the writer down or group
several appends into one commit deterministically: the writer takes the first request and waits
for the lock; everything appended meanwhile is queued and committed together once it is released.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from storage.errors import (
    LogClosed,
    LogErasureRefused,
    LogOverloaded,
    LogWriteFailed,
)
from storage.log import EventLog
from storage.recorder import LogReadSide, LogRecorder, RecorderFactory
from storage.records import AppendResult, Erasure, LogRecord, NewRecord, RecordKind

REJECTED_SESSION = 666

Outcome = AppendResult | BaseException


def rec(
    session_id: int = 1,
    batch_key: str | None = None,
    *,
    payload: bytes | None = None,
    kind: RecordKind = RecordKind.WEB_BATCH,
    received_at_ms: int = 1_700_000_000_000,
    project_id: int = 7,
    session_key: str = "",
) -> NewRecord:
    """A record for tests; the payload defaults to one derived from the session and key."""
    if payload is None:
        payload = f"s{session_id}{session_key}:{kind.name}:{batch_key}".encode()
    return NewRecord(
        session_id=session_id,
        project_id=project_id,
        kind=kind,
        received_at_ms=received_at_ms,
        payload=payload,
        batch_key=batch_key,
        session_key=session_key,
    )


def keyed(session_key: str, batch_key: str | None = None, **fields: Any) -> NewRecord:
    """A v3-style record: named by its session key (session id 0), of kind ``V3_EVENT``."""
    return rec(0, batch_key, kind=RecordKind.V3_EVENT, session_key=session_key, **fields)


def as_committed(record: NewRecord, position: int) -> LogRecord:
    """The LogRecord that ``record`` must have become at ``position``."""
    return LogRecord(position=position, **attrs.asdict(record, recurse=False))


class LogRecorderTestCase:
    """The invariants every log backend must keep. Subclass and implement the hooks."""

    # -- what a backend sets: its recorder factory and this test's database ------------------

    recorders: RecorderFactory
    location: str  # empty database (or none yet) at the start of each test

    def make_log(self, **options: Any) -> EventLog:
        """A new log object on this test's database, on the backend's recorders."""
        return EventLog(self.location, recorders=self.recorders, **options)

    def make_reader(self) -> LogReadSide:
        """A synchronous read-side recorder on this test's database."""
        return self.recorders.reader(self.location)

    # -- hooks a backend implements ----------------------------------------------------------

    def committed_rows(self) -> list[LogRecord]:
        """Every record visible to an independent connection, in position order."""
        raise NotImplementedError

    def hold_write_lock(self) -> contextlib.AbstractContextManager[None]:
        """While entered, another session holds the write lock: the log's next transaction waits,
        and fails once the lock timeout given as ``make_log(busy_timeout_ms=...)`` expires."""
        raise NotImplementedError

    def reject_session(self, session_id: int) -> None:
        """Install a database-side rule that makes inserting a record of ``session_id`` fail."""
        raise NotImplementedError

    def raw_update(self, position: int, payload: bytes) -> None:
        """Update a record in place with raw SQL on an independent connection (must raise)."""
        raise NotImplementedError

    raw_update_error: type[BaseException] = Exception

    def raw_delete(self, position: int) -> None:
        """Delete a record with raw SQL on an independent connection (must raise)."""
        raise NotImplementedError

    raw_delete_error: type[BaseException] = Exception

    # -- helpers -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, **options: Any) -> AsyncIterator[EventLog]:
        """A log whose writer runs for the duration of the block."""
        log = self.make_log(**options)
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            yield log
            nursery.cancel_scope.cancel()

    @staticmethod
    async def append_into(
        log: EventLog, record: NewRecord, outcomes: dict[NewRecord, Outcome]
    ) -> None:
        """Append and file the result or the log's error under the record."""
        try:
            outcomes[record] = await log.append(record)
        except (LogClosed, LogOverloaded, LogWriteFailed) as error:
            outcomes[record] = error

    async def queue_behind_lock(
        self, log: EventLog, nursery: trio.Nursery, records: list[NewRecord]
    ) -> dict[NewRecord, Outcome]:
        """Start one appender per record, in this order, each parked before the next starts.
        Call with the write lock held: the first is the writer's in-flight request."""
        outcomes: dict[NewRecord, Outcome] = {}
        for record in records:
            nursery.start_soon(self.append_into, log, record, outcomes)
            await trio.testing.wait_all_tasks_blocked()
        return outcomes

    # -- invariant 1: acknowledged only after commit -----------------------------------------

    async def test_inv1_record_is_visible_to_another_connection_when_append_returns(self) -> None:
        seen_at_ack: list[bool] = []
        async with self.running() as log:

            async def appender(i: int) -> None:
                record = rec(session_id=i, batch_key="0_1")
                result = await log.append(record)
                # No checkpoint between the ack and this read: the row must already be there.
                seen_at_ack.append(as_committed(record, result.position) in self.committed_rows())

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(appender, i)
        assert seen_at_ack == [True] * 20

    async def test_inv1_failed_transaction_raises_instead_of_acking(self) -> None:
        # The write lock held by another writer (another process of `serve --workers`) past the
        # busy timeout: back-pressure (LogOverloaded -> 503 + Retry-After), never an ack.
        async with self.running(busy_timeout_ms=50) as log:
            with self.hold_write_lock(), pytest.raises(LogOverloaded):
                await log.append(rec(batch_key="0_1"))
            assert self.committed_rows() == []
            assert log.head() == 0
            assert (log.statistics().busy, log.statistics().failed_appends) == (1, 0)
            # The writer survived; the retry is stored at position 1: the failure left no gap.
            assert await log.append(rec(batch_key="0_1")) == AppendResult(position=1)

    async def test_inv1_rejected_record_fails_alone_in_its_group_commit(self) -> None:
        self.reject_session(REJECTED_SESSION)
        good = [rec(session_id=1, batch_key=str(i)) for i in range(4)]
        bad = rec(session_id=REJECTED_SESSION, batch_key="x")
        async with self.running() as log, trio.open_nursery() as nursery:
            with self.hold_write_lock():
                outcomes = await self.queue_behind_lock(
                    log, nursery, [good[0], good[1], bad, good[2], good[3]]
                )
        assert isinstance(outcomes[bad], LogWriteFailed)
        assert [outcomes[r] for r in good] == [AppendResult(position=p) for p in (1, 2, 3, 4)]
        assert self.committed_rows() == [
            as_committed(r, p) for r, p in zip(good, (1, 2, 3, 4), strict=True)
        ]

    # -- invariant 2: positions strictly increasing, never reused, gaps only by erasure -------

    async def test_inv2_positions_gap_free_and_increasing_under_concurrent_appenders(self) -> None:
        tasks, per_task = 40, 25
        positions: dict[int, list[int]] = {}
        async with self.running(max_batch_records=16) as log:

            async def appender(task: int) -> None:
                mine = positions.setdefault(task, [])
                for i in range(per_task):
                    result = await log.append(rec(session_id=task, batch_key=f"0_{i}"))
                    mine.append(result.position)

            async with trio.open_nursery() as nursery:
                for task in range(tasks):
                    nursery.start_soon(appender, task)
            stats = log.statistics()
        total = tasks * per_task
        for mine in positions.values():
            assert mine == sorted(mine) and len(set(mine)) == len(mine)
        assert sorted(p for mine in positions.values() for p in mine) == list(range(1, total + 1))
        assert [row.position for row in self.committed_rows()] == list(range(1, total + 1))
        assert stats.head == total and stats.records_committed == total
        # Group commit happened (fewer transactions than records) within the batch bound.
        assert total / 16 <= stats.commits < total

    async def test_inv2_failed_transactions_leave_no_gap(self) -> None:
        self.reject_session(REJECTED_SESSION)
        async with self.running() as log:
            results = []
            for i in range(6):
                results.append(await log.append(rec(session_id=1, batch_key=str(i))))
                with pytest.raises(LogWriteFailed):
                    await log.append(rec(session_id=REJECTED_SESSION, batch_key=str(i)))
                with pytest.raises(LogWriteFailed):
                    await log.append_many(
                        [rec(session_id=2, batch_key=str(i)), rec(REJECTED_SESSION)]
                    )
        assert [r.position for r in results] == [1, 2, 3, 4, 5, 6]
        assert [row.position for row in self.committed_rows()] == [1, 2, 3, 4, 5, 6]

    async def test_inv2_positions_continue_after_restart(self) -> None:
        async with self.running() as log:
            first = await log.append_many([rec(batch_key=str(i)) for i in range(3)])
        async with self.running() as log:
            assert log.head() == 3
            second = await log.append(rec(batch_key="3"))
        assert [r.position for r in first] == [1, 2, 3]
        assert second.position == 4

    async def test_inv2_retries_burn_no_position(self) -> None:
        # A retry inserts nothing, so it must not consume a number either (AUTOINCREMENT draws
        # one before it meets the unique index): only erasures may leave gaps.
        async with self.running() as log:
            await log.append_many([rec(batch_key="a"), rec(batch_key="b")])
            again = await log.append_many([rec(batch_key="b"), rec(batch_key="c")])
            single = [await log.append(rec(batch_key="a")), await log.append(rec(batch_key="d"))]
            async with trio.open_nursery() as nursery:
                with self.hold_write_lock():  # one group commit: retries and new records mixed
                    outcomes = await self.queue_behind_lock(
                        log, nursery, [rec(batch_key=k) for k in ("c", "e", "a", "f")]
                    )
        assert again == [AppendResult(2, duplicate=True), AppendResult(3)]
        assert single == [AppendResult(1, duplicate=True), AppendResult(4)]
        assert [outcomes[rec(batch_key=k)] for k in ("c", "e", "a", "f")] == [
            AppendResult(3, duplicate=True),
            AppendResult(5),
            AppendResult(1, duplicate=True),
            AppendResult(6),
        ]
        assert [row.position for row in self.committed_rows()] == [1, 2, 3, 4, 5, 6]

    async def test_inv2_erased_positions_are_never_reused_even_after_a_restart(self) -> None:
        records = [rec(session_id=1 + i % 2, batch_key=str(i)) for i in range(5)]
        async with self.running() as log:
            await log.append_many(records)
            # The newest records: with rowids, the next append would have taken position 4.
            erased = await log.erase([4, 5, 99], reason="user-deletion", received_at_ms=5)
            assert log.head() == erased.position == 6
            after = await log.append(rec(batch_key="after"))
        assert erased.erasure == Erasure.of_positions(
            reason="user-deletion", positions=(4, 5), sessions=(1, 2)
        )
        assert after.position == 7
        async with self.running() as log:
            assert log.head() == 7
            reopened = await log.append(rec(batch_key="reopened"))
        assert reopened.position == 8
        rows = self.committed_rows()
        assert [row.position for row in rows] == [1, 2, 3, 6, 7, 8]
        # The gap is explained by the erasure record right after it, on no session, its time
        # clamped (record time never goes back) and its payload naming what went.
        (record,) = [row for row in rows if row.kind == RecordKind.ERASURE]
        assert (record.position, record.session_id, record.project_id) == (6, 0, 0)
        assert record.received_at_ms == records[-1].received_at_ms
        assert Erasure.from_bytes(record.payload) == erased.erasure

    async def test_inv2_erasure_by_one_writer_is_never_reused_by_another(self) -> None:
        first, second = self.make_log(), self.make_log()
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await nursery.start(second.run)
            await second.append_many([rec(batch_key=str(i)) for i in range(3)])
            erased = await first.erase([3], reason="retention", received_at_ms=0)
            # The other writer's own head is behind (it learns of others' commits only by
            # reading), yet its next record goes after the erasure.
            result = await second.append(rec(batch_key="next"))
            nursery.cancel_scope.cancel()
        assert (erased.position, result.position) == (4, 5)
        assert [row.position for row in self.committed_rows()] == [1, 2, 4, 5]

    async def test_inv2_a_reader_past_an_erased_position_sees_the_next_append(self) -> None:
        # A projection checkpointed at 3, then 3 is erased: the next append must land after 3.
        checkpoint = 3
        async with self.running() as log:
            await log.append_many([rec(batch_key=str(i)) for i in range(checkpoint)])
            async with contextlib.aclosing(log.tail(checkpoint)) as tail:
                await log.erase([checkpoint], reason="user-deletion", received_at_ms=0)
                appended = await log.append(rec(session_id=2, batch_key="new"))
                seen: list[LogRecord] = []
                with trio.fail_after(10):  # a guard against a hang, not a measurement
                    async for records in tail:
                        seen += records
                        if seen[-1].position >= appended.position:
                            break
            polled = self.make_reader().read(checkpoint, 10)
        assert [(r.position, r.kind) for r in seen] == [
            (4, RecordKind.ERASURE),
            (5, RecordKind.WEB_BATCH),
        ]
        assert polled == seen

    async def test_inv2_an_erasure_record_cannot_be_erased(self) -> None:
        async with self.running() as log:
            await log.append(rec(batch_key="a"))
            erased = await log.erase([1], reason="retention", received_at_ms=0)
            with pytest.raises(LogErasureRefused):
                await log.erase([erased.position], reason="retention", received_at_ms=0)
            # Still writable, and nothing moved.
            assert (await log.append(rec(batch_key="b"))).position == 3
        assert [row.position for row in self.committed_rows()] == [2, 3]

    # -- invariant 3: a retry is stored once and acknowledged again ---------------------------

    async def test_inv3_sequential_retry_returns_original_position(self) -> None:
        record = rec(session_id=5, batch_key="0_3")
        async with self.running() as log:
            await log.append(rec(session_id=5, batch_key="0_2"))
            first = await log.append(record)
            await log.append(rec(session_id=6, batch_key="0_1"))
            retry = await log.append(attrs.evolve(record, received_at_ms=1, payload=b"resent"))
            stats = log.statistics()
        assert first == AppendResult(position=2)
        assert retry == AppendResult(position=2, duplicate=True)
        assert stats.duplicates == 1 and stats.records_committed == 3
        assert self.committed_rows()[1] == as_committed(record, 2)  # the original is kept
        assert len(self.committed_rows()) == 3

    async def test_inv3_retry_within_one_group_commit(self) -> None:
        blocker, record = rec(session_id=1, batch_key="a"), rec(session_id=2, batch_key="0_1")
        retry = attrs.evolve(record, payload=b"resent")
        async with self.running() as log:
            async with trio.open_nursery() as nursery:
                with self.hold_write_lock():
                    outcomes = await self.queue_behind_lock(log, nursery, [blocker, record, retry])
            commits = log.statistics().commits
        assert outcomes[record] == AppendResult(position=2)
        assert outcomes[retry] == AppendResult(position=2, duplicate=True)
        assert commits == 2  # the blocker's transaction, then one holding both
        assert self.committed_rows() == [as_committed(blocker, 1), as_committed(record, 2)]

    async def test_inv3_retry_within_one_append_many(self) -> None:
        record = rec(session_id=2, batch_key="0_1")
        async with self.running() as log:
            results = await log.append_many([record, rec(session_id=2, batch_key="0_2"), record])
        assert results == [
            AppendResult(position=1),
            AppendResult(position=2),
            AppendResult(position=1, duplicate=True),
        ]
        assert len(self.committed_rows()) == 2

    async def test_inv3_retry_after_restart(self) -> None:
        record = rec(session_id=3, batch_key="1_0")
        async with self.running() as log:
            await log.append(record)
        async with self.running() as log:
            assert await log.append(record) == AppendResult(position=1, duplicate=True)

    async def test_inv3_only_same_session_kind_and_key_are_retries(self) -> None:
        records = [
            rec(session_id=1, batch_key="0_1"),
            rec(session_id=2, batch_key="0_1"),  # other session
            rec(session_id=1, batch_key="0_1", kind=RecordKind.WEB_ASSETS),  # other kind
            rec(session_id=1, batch_key=None, kind=RecordKind.WEB_START),
            rec(session_id=1, batch_key=None, kind=RecordKind.WEB_START),  # None never dedups
        ]
        async with self.running() as log:
            results = [await log.append(r) for r in records]
        assert results == [AppendResult(position=p) for p in (1, 2, 3, 4, 5)]

    # -- session keys: a session named by a string (v3: app, user, client) ---------------------

    async def test_keyed_records_round_trip(self) -> None:
        records = [keyed("app1:user1:client-aaaa", "0_1"), rec(session_id=4, batch_key="0_1")]
        async with self.running() as log:
            results = await log.append_many(records)
            through_log = await log.read_keyed_session("app1:user1:client-aaaa")
        expected = [as_committed(r, p) for r, p in zip(records, (1, 2), strict=True)]
        assert results == [AppendResult(position=1), AppendResult(position=2)]
        assert self.committed_rows() == expected
        assert through_log == expected[:1]
        reader = self.make_reader()
        try:
            assert reader.read(0, 10) == expected
            assert reader.read_session(4) == expected[1:]
            assert reader.read_keyed_session("app1:user1:client-aaaa") == expected[:1]
            with pytest.raises(ValueError, match="empty session key"):
                reader.read_keyed_session("")
        finally:
            reader.close()

    async def test_inv3_keyed_retry_is_stored_once_with_the_original_position(self) -> None:
        record = keyed("client-aaaa", "0_1")
        async with self.running() as log:
            first = await log.append(record)
            await log.append(keyed("client-aaaa", "0_2"))
            again = await log.append(attrs.evolve(record, payload=b"resent", received_at_ms=1))
            # A retry in a group with new records: the whole group takes the row-by-row path.
            group = await log.append_many([keyed("client-aaaa", "0_3"), record])
        assert first == AppendResult(position=1)
        assert again == AppendResult(position=1, duplicate=True)
        assert group == [AppendResult(position=3), AppendResult(position=1, duplicate=True)]
        assert [r.position for r in self.committed_rows()] == [1, 2, 3]
        assert self.committed_rows()[0] == as_committed(record, 1)

    async def test_inv3_one_batch_key_under_two_session_keys_is_two_records(self) -> None:
        records = [
            keyed("client-aaaa", "0_1"),
            keyed("client-bbbbbbbb", "0_1"),  # another keyed session, same upload key
            rec(session_id=0, batch_key="0_1", kind=RecordKind.V3_EVENT),  # no key at all
        ]
        async with self.running() as log:
            results = [await log.append(r) for r in records]
            retries = [await log.append(r) for r in records]
        assert results == [AppendResult(position=p) for p in (1, 2, 3)]
        assert retries == [AppendResult(position=p, duplicate=True) for p in (1, 2, 3)]
        assert len(self.committed_rows()) == 3

    async def test_keyed_session_reads_page_and_respect_before_and_after(self) -> None:
        async with self.running() as log:
            for i in range(7):  # a: 1, 3, 5, 7; b: 2, 4, 6
                await log.append(keyed("client-aaaa" if i % 2 == 0 else "client-bb", str(i)))
        reader = self.make_reader()
        try:

            def positions(key: str, **bounds: Any) -> list[int]:
                return [r.position for r in reader.read_keyed_session(key, **bounds)]

            assert positions("client-aaaa") == [1, 3, 5, 7]
            assert positions("client-bb") == [2, 4, 6]
            assert positions("client-aaaa", before=5) == [1, 3]
            assert positions("client-aaaa", limit=2) == [1, 3]
            assert positions("client-aaaa", after=3, limit=2) == [5, 7]
            assert positions("client-aaaa", after=7, limit=2) == []
            assert positions("client-aaaa", after=1, before=7) == [3, 5]
            assert positions("client-cc") == []
            # Keyed records have session id 0 here: a read by session id does not mix them up
            # with the keyed read, and no web session is named by a key.
            assert len(reader.read_session(0)) == 7
        finally:
            reader.close()

    async def test_activity_per_session_key(self) -> None:
        async with self.running() as log:
            await log.append_many(
                [
                    keyed("client-old", received_at_ms=1_000),
                    keyed("client-aaaa", received_at_ms=5_000),
                    rec(session_id=9, received_at_ms=5_500),
                    keyed("client-bbbb", received_at_ms=6_000),
                    keyed("client-aaaa", received_at_ms=7_000),
                    rec(session_id=0, kind=RecordKind.V3_EVENT, received_at_ms=7_500),  # no key
                    rec(session_id=8, kind=RecordKind.CLOCK_TICK, received_at_ms=8_000),
                ]
            )
        reader = self.make_reader()
        v3, web = {int(RecordKind.V3_EVENT)}, {int(RecordKind.WEB_BATCH)}
        try:
            assert reader.keyed_activity(7, 5_000, v3) == (
                8_000,
                {"client-aaaa": 7_000, "client-bbbb": 6_000},
            )
            assert reader.keyed_activity(4, 999, v3) == (6_000, {"client-bbbb": 6_000})
            assert reader.keyed_activity(7, 10_000, v3)[1]["client-old"] == 1_000
            assert reader.keyed_activity(7, 5_000, web) == (8_000, {})
            # By session id: keyed kinds are not asked for, so only the web session answers.
            assert reader.activity(7, 5_000, web) == (8_000, {9: 5_500})
            assert reader.keyed_activity(0, 5_000, v3) == (0, {})
        finally:
            reader.close()

    # -- reading: from a position, by session, tail ------------------------------------------

    async def test_tail_wakes_on_commit(self) -> None:
        records = [rec(session_id=i % 3, batch_key=str(i)) for i in range(30)]
        received: list[LogRecord] = []
        async with self.running() as log:

            async def consumer() -> None:
                async with contextlib.aclosing(log.tail(0, batch_size=4)) as batches:
                    async for batch in batches:
                        assert 0 < len(batch) <= 4
                        received.extend(batch)
                        if len(received) >= len(records):
                            return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consumer)
                await trio.testing.wait_all_tasks_blocked()  # the tail is waiting for a commit
                assert received == []
                for i, record in enumerate(records):
                    if i % 2:
                        await log.append(record)
                    else:
                        nursery.start_soon(log.append, record)
        assert received == self.committed_rows()
        assert [r.position for r in received] == list(range(1, 31))

    async def test_tail_and_read_start_after_the_given_position(self) -> None:
        async with self.running() as log:
            await log.append_many([rec(batch_key=str(i)) for i in range(10)])
            async with contextlib.aclosing(log.tail(4, batch_size=100)) as batches:
                first = await batches.__anext__()
            page = await log.read(7, 2)
        assert [r.position for r in first] == [5, 6, 7, 8, 9, 10]
        assert [r.position for r in page] == [8, 9]

    async def test_tail_started_before_the_writer_sees_existing_records(self) -> None:
        async with self.running() as log:
            await log.append_many([rec(batch_key=str(i)) for i in range(3)])
        log = self.make_log()
        got: list[LogRecord] = []
        done = trio.Event()

        async def consumer() -> None:
            async with contextlib.aclosing(log.tail(1)) as batches:
                got.extend(await batches.__anext__())
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            await nursery.start(log.run)
            await done.wait()
            nursery.cancel_scope.cancel()
        assert [r.position for r in got] == [2, 3]

    async def test_wait_for_position_and_read_session(self) -> None:
        async with self.running() as log:
            woke: list[int] = []

            async def waiter() -> None:
                await log.wait_for_position(2)
                woke.append(log.head())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                for i in range(4):
                    await log.append(rec(session_id=i % 2, batch_key=str(i)))
                    await trio.testing.wait_all_tasks_blocked()
                    assert woke == ([] if i < 2 else [3])
            session_1 = await log.read_session(1)
            session_1_before_4 = await log.read_session(1, before=4)
            session_9 = await log.read_session(9)
        assert [r.position for r in session_1] == [2, 4]
        assert [r.position for r in session_1_before_4] == [2]
        assert session_9 == []

    async def test_log_reader(self) -> None:
        async with self.running() as log:
            await log.append_many([rec(session_id=i % 2, batch_key=str(i)) for i in range(5)])
        reader = self.make_reader()
        try:
            assert reader.head() == 5 and reader.count() == 5
            assert reader.read(0, 100) == self.committed_rows()
            assert [r.position for r in reader.read(1, 2)] == [2, 3]
            assert [r.position for r in reader.read_session(0)] == [1, 3, 5]
            assert [r.position for r in reader.read_session(0, before=5)] == [1, 3]
            # In pages: each page starts after the last position of the one before.
            assert [r.position for r in reader.read_session(0, limit=2)] == [1, 3]
            assert [r.position for r in reader.read_session(0, after=3, limit=2)] == [5]
            assert reader.read_session(0, after=5, limit=2) == []
            assert [r.position for r in reader.read_session(0, after=1, before=5)] == [3]
        finally:
            reader.close()

    # -- back-pressure ------------------------------------------------------------------------

    async def test_backpressure_full_queue_raises_overloaded_and_loses_nothing_acked(self) -> None:
        in_flight, queued, patient = rec(batch_key="1"), rec(batch_key="2"), rec(batch_key="4")
        impatient = rec(batch_key="3")
        async with self.running(queue_size=1) as log, trio.open_nursery() as nursery:
            with self.hold_write_lock():
                outcomes = await self.queue_behind_lock(log, nursery, [in_flight, queued])
                stats = log.statistics()
                assert (stats.queued, stats.queue_capacity, stats.waiting_appenders) == (1, 1, 0)
                with pytest.raises(LogOverloaded) as overloaded:
                    await log.append(impatient, wait_timeout=0.05)
                assert overloaded.value.retry_after >= 1
                # An appender willing to wait is held (back-pressure), visibly.
                nursery.start_soon(self.append_into, log, patient, outcomes)
                await trio.testing.wait_all_tasks_blocked()
                assert log.statistics().waiting_appenders == 1
        assert outcomes == {
            in_flight: AppendResult(position=1),
            queued: AppendResult(position=2),
            patient: AppendResult(position=3),
        }
        assert self.committed_rows() == [
            as_committed(in_flight, 1),
            as_committed(queued, 2),
            as_committed(patient, 3),
        ]

    async def test_overload_is_logged_as_it_starts_and_as_it_ends(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="storage.log")
        async with self.running(queue_size=1) as log, trio.open_nursery() as nursery:
            with self.hold_write_lock():
                await self.queue_behind_lock(log, nursery, [rec(batch_key="1"), rec(batch_key="2")])
                for key in ("3", "4", "5"):  # three refusals, one line
                    with pytest.raises(LogOverloaded):
                        await log.append(rec(batch_key=key), wait_timeout=0.05)
            await log.append(rec(batch_key="6"))
            await log.append(rec(batch_key="7"))  # no line: nothing changed
        changes = [(r.levelno, getattr(r, "event", None)) for r in caplog.records]
        assert changes == [
            (logging.WARNING, "log_overloaded"),
            (logging.WARNING, "log_caught_up"),
        ]
        assert "uploads are answered 503" in caplog.records[0].getMessage()

    # -- cancellation and shutdown ------------------------------------------------------------

    async def test_shutdown_answers_every_pending_append_truthfully(self) -> None:
        records = [rec(batch_key=str(i)) for i in range(4)]
        log = self.make_log(queue_size=2)
        async with trio.open_nursery() as appenders, trio.open_nursery() as writer:
            await writer.start(log.run)
            with self.hold_write_lock():
                # records[0] in flight, [1] and [2] queued, [3] waiting for room.
                outcomes = await self.queue_behind_lock(log, appenders, records)
                assert log.statistics().waiting_appenders == 1
                writer.cancel_scope.cancel()
                # Lock released: the transaction under way completes, then the writer stops.
        assert outcomes[records[0]] == AppendResult(position=1)
        assert all(isinstance(outcomes[r], LogClosed) for r in records[1:])
        assert self.committed_rows() == [as_committed(records[0], 1)]
        with pytest.raises(LogClosed):
            await log.append(rec(batch_key="late"))
        with pytest.raises(LogClosed):
            await log.wait_for_position(1)

    async def test_cancelling_everything_keeps_every_acked_record(self) -> None:
        acked: dict[NewRecord, AppendResult] = {}
        log = self.make_log(max_batch_records=8)
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)

            async def appender(record: NewRecord) -> None:
                acked[record] = await log.append(record)

            for i in range(200):
                nursery.start_soon(appender, rec(session_id=i, batch_key="0_0"))
            await log.wait_for_position(20)
            nursery.cancel_scope.cancel()
        rows = self.committed_rows()
        assert len(rows) > 20
        assert [row.position for row in rows] == list(range(1, len(rows) + 1))
        for record, result in acked.items():
            assert rows[result.position - 1] == as_committed(record, result.position)

    async def test_append_before_run_raises_closed_and_a_log_runs_once(self) -> None:
        log = self.make_log()
        with pytest.raises(LogClosed):
            await log.append(rec())
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            nursery.cancel_scope.cancel()
        with pytest.raises(RuntimeError):
            await log.run()

    # -- invariant 4: never updated in place --------------------------------------------------

    async def test_inv4_raw_update_is_refused(self) -> None:
        record = rec(batch_key="0_1")
        async with self.running() as log:
            await log.append(record)
        with pytest.raises(self.raw_update_error):
            self.raw_update(1, b"tampered")
        assert self.committed_rows() == [as_committed(record, 1)]

    async def test_inv4_raw_delete_is_refused(self) -> None:
        records = [rec(batch_key=str(i)) for i in range(2)]
        async with self.running() as log:
            await log.append_many(records)
        for position in (2, 1):  # the newest (whose rowid would be reused) and any other
            with pytest.raises(self.raw_delete_error):
                self.raw_delete(position)
        assert self.committed_rows() == [
            as_committed(r, p) for r, p in zip(records, (1, 2), strict=True)
        ]

    async def test_project_has_records(self) -> None:
        async with self.running() as log:
            await log.append(rec(project_id=7, batch_key="1"))
            await log.append(rec(session_id=2, project_id=9, batch_key="1"))
        reader = self.make_reader()
        try:
            assert [reader.project_has_records(p) for p in (7, 8, 9)] == [True, False, True]
        finally:
            reader.close()

    def test_inv4_public_api_offers_no_way_to_mutate(self) -> None:
        def public(cls: type) -> set[str]:
            return {name for name in dir(cls) if not name.startswith("_")}

        # Adding a public method is a deliberate act: extend these sets only with non-mutating
        # operations (deletion belongs to the data-lifecycle path, which appends its own record).
        assert public(EventLog) == {
            "run", "append", "append_many", "head", "wait_for_position", "tail", "read",
            "read_session", "read_keyed_session", "statistics",
            "read_session_page",  # the replay stream's paged read of one session
            "set_max_page_count",  # a size cap: refuses growth, never touches a record
            "erase",  # the data lifecycle's one door: deletes and records that it did
            "erase_sessions",  # the same door, by session
            "checkpoint",  # moves the WAL into the file: no record changes
        }  # fmt: skip
        reads = {
            "read", "read_session", "head", "count", "activity", "project_of_session", "close",
            "newest", "time_at", "read_keyed_session", "keyed_activity", "project_has_records",
        }  # fmt: skip
        assert public(LogReadSide) == reads
        # The writer's recorder adds the schema, group inserts and the lifecycle's erase.
        assert public(LogRecorder) == reads | {
            "migrate", "insert_group", "erase", "erase_sessions", "checkpoint",
        }  # fmt: skip
        record = as_committed(rec(), 1)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            record.payload = b"tampered"  # type: ignore[misc]

    # -- invariant 7: receive time stamped by the caller, stored as given ---------------------

    async def test_inv7_received_at_is_stored_as_given(self) -> None:
        # The log never reads the clock: increasing times are stored exactly as given, and a
        # time earlier than its predecessor's is raised to it (record time never goes back).
        times = [5, 1_600_000_000_000, 1_700_000_000_000, 1_650_000_000_000, 2**62]
        records = [rec(batch_key=str(i), received_at_ms=t) for i, t in enumerate(times)]
        async with self.running() as log:
            for record in records:
                await log.append(record)
        stored = [row.received_at_ms for row in self.committed_rows()]
        assert stored == [5, 1_600_000_000_000, 1_700_000_000_000, 1_700_000_000_000, 2**62]
