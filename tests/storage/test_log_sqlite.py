"""The event log on SQLite: the conformance suite plus SQLite-specific checks and a model test."""

from __future__ import annotations

import contextlib
import inspect
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings

import storage.log
import storage.sqlite_recorder
from storage.errors import LogClosed
from storage.log import EventLog, poll_tail
from storage.recorder import LogReadSide, LogRecorder
from storage.records import AppendResult, LogRecord, NewRecord, RecordKind
from storage.schema import LOG_COMPONENT, LOG_STEPS, apply_migrations, migrate_log
from storage.sqlite import connect
from storage.sqlite_recorder import SQLITE, LogReader, SqliteRecorder

from .log_conformance import LogRecorderTestCase, as_committed, rec


def read_all(path: Path) -> list[LogRecord]:
    """Every row of the log through a fresh, plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(log)")}
        # A log of a schema before step 3 has no key: its records read as keyed by id only.
        session_key = "session_key" if "session_key" in columns else "''"
        rows = conn.execute(
            "SELECT position, session_id, project_id, kind, received_at_ms, payload, batch_key,"
            f" {session_key} FROM log ORDER BY position"
        ).fetchall()
    finally:
        conn.close()
    return [
        LogRecord(
            position=p,
            session_id=s,
            project_id=pr,
            kind=RecordKind(k),
            received_at_ms=t,
            payload=bytes(b),
            batch_key=key,
            session_key=session_key,
        )
        for p, s, pr, k, t, b, key, session_key in rows
    ]


class TestSqliteEventLog(LogRecorderTestCase):
    """The conformance suite on SQLite, with synchronous=FULL (the production default)."""

    raw_update_error = sqlite3.IntegrityError
    raw_delete_error = sqlite3.IntegrityError

    recorders = SQLITE

    @pytest.fixture(autouse=True)
    def _database(self, fresh_db_path: Path) -> None:
        self.path = fresh_db_path
        self.location = str(fresh_db_path)

    def committed_rows(self) -> list[LogRecord]:
        return read_all(self.path) if self.path.exists() else []

    @contextlib.contextmanager
    def hold_write_lock(self) -> Iterator[None]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def reject_session(self, session_id: int) -> None:
        conn = connect(self.path)
        try:
            migrate_log(conn)
            conn.execute(
                "CREATE TRIGGER test_reject BEFORE INSERT ON log"
                f" WHEN NEW.session_id = {session_id}"
                " BEGIN SELECT RAISE(ABORT, 'rejected by test'); END"
            )
        finally:
            conn.close()

    def raw_update(self, position: int, payload: bytes) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("UPDATE log SET payload = ? WHERE position = ?", (payload, position))
        finally:
            conn.close()

    def raw_delete(self, position: int) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("DELETE FROM log WHERE position = ?", (position,))
        finally:
            conn.close()


# -- SQLite specifics ------------------------------------------------------------------------


def test_inv4_no_update_statement_in_the_log_module() -> None:
    # The only place SQL for the log is written: no statement of the form UPDATE <table> SET.
    source = inspect.getsource(storage.sqlite_recorder)
    assert re.search(r"\bUPDATE\s+\w+\s+SET\b", source, re.IGNORECASE) is None
    assert re.search(r"\bINSERT\s+OR\s+REPLACE\b|\bREPLACE\s+INTO\b", source, re.IGNORECASE) is None


def test_sqlite_recorders_offer_no_way_to_mutate_beyond_the_protocol() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(LogReader) == public(LogReadSide)
    # set_max_page_count: a size cap, refuses growth and never touches a record.
    assert public(SqliteRecorder) == public(LogRecorder) | {"set_max_page_count"}


def test_event_log_holds_no_sql_and_names_no_database_driver() -> None:
    # The trio side talks only to a recorder: every statement of the log is in the recorder.
    source = inspect.getsource(storage.log)
    assert "sqlite3" not in source
    statement = r"\b(SELECT|INSERT\s+INTO|DELETE\s+FROM|BEGIN|COMMIT|PRAGMA|CREATE\s+TABLE)\b"
    assert re.search(statement, source) is None


def test_inv4_update_trigger_is_part_of_the_schema(fresh_db_path: Path) -> None:
    conn = connect(fresh_db_path)
    try:
        migrate_log(conn)
        conn.execute(
            "INSERT INTO log (session_id, project_id, kind, received_at_ms, payload)"
            " VALUES (1, 1, 2, 0, x'00')"
        )
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE log SET received_at_ms = 1")
        assert conn.execute("SELECT received_at_ms FROM log").fetchall() == [(0,)]
    finally:
        conn.close()


def test_invalid_options_are_refused_up_front(fresh_db_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        EventLog(fresh_db_path, synchronous="sometimes")
    with pytest.raises(ValueError):
        EventLog(fresh_db_path, queue_size=0)
    with pytest.raises(ValueError):
        EventLog(fresh_db_path, max_batch_records=0)
    assert not fresh_db_path.exists()


def test_log_reader_does_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        LogReader(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


async def test_log_reader_is_read_only(fresh_db_path: Path) -> None:
    log = EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        await log.append(rec())
        nursery.cancel_scope.cancel()
    with LogReader(fresh_db_path) as reader:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("DELETE FROM log")
        assert reader.count() == 1


async def test_poll_tail_sees_appends_of_another_writer(fresh_db_path: Path) -> None:
    # The other "process" is a second EventLog on the same file; poll_tail gets no wake-ups
    # from it and must find the records by polling.
    writer = EventLog(fresh_db_path)
    got: list[LogRecord] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.append(rec(batch_key="0"))

        async def follower() -> None:
            async with contextlib.aclosing(
                poll_tail(fresh_db_path, 0, interval=0.01, batch_size=2)
            ) as batches:
                async for batch in batches:
                    got.extend(batch)
                    if len(got) == 5:
                        break

        async with trio.open_nursery() as inner:
            inner.start_soon(follower)
            for i in range(1, 5):
                await writer.append(rec(batch_key=str(i)))
        nursery.cancel_scope.cancel()
    assert got == read_all(fresh_db_path)


async def test_statistics_count_commits_records_and_duplicates(fresh_db_path: Path) -> None:
    log = EventLog(fresh_db_path, queue_size=8)
    assert log.statistics().queue_capacity == 8
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        await log.append_many([rec(batch_key="a"), rec(batch_key="b"), rec(batch_key="a")])
        await log.append(rec(batch_key="b"))
        stats = log.statistics()
        nursery.cancel_scope.cancel()
    assert (stats.head, stats.commits, stats.records_committed, stats.duplicates) == (2, 2, 2, 2)
    assert (stats.queued, stats.waiting_appenders, stats.failed_appends) == (0, 0, 0)


# -- model test ------------------------------------------------------------------------------

_records = st.builds(
    NewRecord,
    session_id=st.integers(1, 3),
    project_id=st.just(1),
    kind=st.sampled_from([RecordKind.WEB_BATCH, RecordKind.WEB_ASSETS]),
    received_at_ms=st.integers(0, 2**53),
    payload=st.binary(max_size=16),
    batch_key=st.one_of(st.none(), st.sampled_from(["0_0", "0_1", "1_0"])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.lists(st.lists(_records, min_size=1, max_size=6), max_size=8))
async def test_model_random_appends_with_duplicates(groups: list[list[NewRecord]]) -> None:
    """Random appends (alone or several per request) match a dict model of the log."""
    stored: list[LogRecord] = []
    originals: dict[tuple[int, int, str | None], int] = {}
    expected: list[AppendResult] = []
    floor = 0  # record time never goes back in log order (a retry raises the floor too)
    for group in groups:
        for record in group:
            floor = max(floor, record.received_at_ms)
            record = attrs.evolve(record, received_at_ms=floor)
            key = (record.session_id, int(record.kind), record.batch_key)
            if record.batch_key is not None and key in originals:
                expected.append(AppendResult(originals[key], duplicate=True))
                continue
            position = len(stored) + 1
            stored.append(as_committed(record, position))
            if record.batch_key is not None:
                originals[key] = position
            expected.append(AppendResult(position))

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "model.db"
        log = EventLog(path, synchronous="OFF")  # durability is not what this test is about
        results: list[AppendResult] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            for i, group in enumerate(groups):
                if i % 2:
                    results.extend(await log.append_many(group))
                else:
                    results.extend([await log.append(record) for record in group])
            assert log.head() == len(stored)
            nursery.cancel_scope.cancel()
        assert results == expected
        assert (read_all(path) if path.exists() else []) == stored


async def test_writer_that_cannot_start_releases_tails_and_refuses_appends(tmp_path: Path) -> None:
    log = EventLog(tmp_path)  # a directory: SQLite cannot open it
    outcome: list[BaseException] = []

    async def follower() -> None:
        try:
            async with contextlib.aclosing(log.tail(0)) as batches:
                await batches.__anext__()
        except LogClosed as error:
            outcome.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(sqlite3.OperationalError):
            await nursery.start(log.run)
    assert len(outcome) == 1
    with pytest.raises(LogClosed):
        await log.append(rec())


async def test_record_time_is_monotonic_in_log_order(fresh_db_path) -> None:
    """Invariant 7 support: times stamped out of order by concurrent appenders never go back."""
    from storage.log import EventLog
    from storage.records import NewRecord, RecordKind
    from storage.sqlite_recorder import LogReader

    log = EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for at in (1000, 900, 1500, 1200, 2000):
            await log.append(
                NewRecord(
                    session_id=1,
                    project_id=1,
                    kind=RecordKind.WEB_BATCH,
                    received_at_ms=at,
                    payload=b"x",
                )
            )
        nursery.cancel_scope.cancel()
    reader = LogReader(fresh_db_path)
    try:
        times = [record.received_at_ms for record in reader.read(0, 10)]
    finally:
        reader.close()
    assert times == [1000, 1000, 1500, 1500, 2000]


def test_keyed_reads_use_the_partial_index_and_keyed_activity_scans_the_window(
    fresh_db_path: Path,
) -> None:
    """The plans SQLite picks: a keyed session read is one range of the partial index on
    (session_key, position) (its WHERE implies the index's), the keyed activity a rowid range
    (the window: a suffix of the log), and a keyed retry is found by the retry index."""
    conn = connect(fresh_db_path)
    try:
        migrate_log(conn)

        def plan(sql: str, params: tuple[object, ...]) -> str:
            return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

        recorder = storage.sqlite_recorder
        keyed_read = plan(recorder._KEYED_SESSION, ("client-aaaa", 0, 10, -1))
        assert "USING INDEX log_session_key_position (session_key=? AND position>?" in keyed_read
        for keyed in (True, False):
            window = plan(recorder._activity_query(2, keyed=keyed), (0, 10, 20, 30))
            assert "SEARCH log USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in window
            assert "SCAN log" not in window
        original = plan(recorder._FIND_ORIGINAL, (0, "client-aaaa", 20, "0_1"))
        assert "log_batch_key (session_id=? AND session_key=? AND kind=? AND batch_key=?)" in (
            original
        )
    finally:
        conn.close()


@pytest.mark.parametrize("erased", [False, True])
def test_reader_activity_matches_a_scan(tmp_path: Path, erased: bool) -> None:
    """LogReader.activity (binary search on monotonic time) equals a plain scan of the log, also
    with gaps (erased records) under the probes and a position past the head."""
    path = tmp_path / "activity.db"

    async def fill() -> None:
        log = EventLog(path, synchronous="OFF")
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            for i in range(200):
                await log.append(
                    rec(
                        session_id=1 + i % 7,
                        kind=RecordKind.CLOCK_TICK if i % 5 == 0 else RecordKind.WEB_BATCH,
                        batch_key=None,
                        received_at_ms=1_000 + 37 * i,
                    )
                )
            if erased:
                gaps = [*range(40, 91), 137, *range(150, 201)]
                await log.erase(gaps, reason="retention", received_at_ms=0)
            nursery.cancel_scope.cancel()

    trio.run(fill)
    kinds = {int(RecordKind.WEB_BATCH)}
    with LogReader(path) as reader:
        records = reader.read(0, 1000)
        for upto in (0, 1, 50, 137, 160, 200, 201, 250):
            for window in (0, 100, 1_000, 100_000):
                upto_records = [r for r in records if r.position <= upto]
                clock = max((r.received_at_ms for r in upto_records), default=0)
                latest: dict[int, int] = {}
                for r in upto_records:
                    if r.kind in kinds and r.received_at_ms >= clock - window:
                        latest[r.session_id] = max(latest.get(r.session_id, 0), r.received_at_ms)
                assert reader.activity(upto, window, kinds) == (clock, latest)


# -- several writers on one file (`replayd serve --workers N`) ----------------------------------


def _timed(session_id: int, key: str, at: int) -> NewRecord:
    return rec(session_id=session_id, batch_key=key, received_at_ms=at)


async def test_time_clamp_reads_the_newest_record_of_another_writer(fresh_db_path: Path) -> None:
    """The clamp's floor is read in the transaction: it sees the other writer's commits."""
    first, second = EventLog(fresh_db_path), EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        await nursery.start(second.run)
        assert await first.append(_timed(1, "a", 2_000)) == AppendResult(1)
        # `second` has seen no record of its own: only the database knows the floor is 2000.
        assert await second.append(_timed(2, "a", 1_000)) == AppendResult(2)
        assert await second.append(_timed(2, "b", 2_500)) == AppendResult(3)
        # `first`'s own newest record says 2000; the log's newest says 2500.
        assert await first.append_many([_timed(1, "b", 2_200), _timed(1, "c", 2_600)]) == [
            AppendResult(4),
            AppendResult(5),
        ]
        nursery.cancel_scope.cancel()
    stored = read_all(fresh_db_path)
    assert [(r.position, r.session_id, r.received_at_ms) for r in stored] == [
        (1, 1, 2_000),
        (2, 2, 2_000),
        (3, 2, 2_500),
        (4, 1, 2_500),
        (5, 1, 2_600),
    ]


async def test_newest_and_time_at_give_the_record_times_of_the_lag(fresh_db_path: Path) -> None:
    log = EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        with LogReader(fresh_db_path) as reader:
            assert (reader.newest(), reader.time_at(0), reader.time_at(5)) == ((0, 0), None, None)
            await log.append_many([_timed(1, "a", 1_000), _timed(1, "b", 3_000)])
            assert reader.newest() == (2, 3_000)
            # Position 0 (nothing applied): the first record's time; past the head: the head's.
            assert [reader.time_at(p) for p in (0, 1, 2, 9)] == [1_000, 1_000, 3_000, 3_000]
        nursery.cancel_scope.cancel()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(times=st.lists(st.integers(0, 10_000), min_size=2, max_size=60))
async def test_two_writers_keep_positions_gap_free_and_time_monotonic(times: list[int]) -> None:
    """Concurrent appenders on two writers of one file: every ack is stored where it says, with
    gap-free positions and record time that never goes back in log order."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "two.db"
        writers = [EventLog(path, synchronous="OFF", max_batch_records=4) for _ in range(2)]
        acked: dict[NewRecord, AppendResult] = {}
        async with trio.open_nursery() as nursery:
            for writer in writers:
                await nursery.start(writer.run)

            async def appender(index: int, at: int) -> None:
                record = _timed(1 + index % 5, str(index), at)
                acked[record] = await writers[index % 2].append(record)

            async with trio.open_nursery() as appenders:
                for index, at in enumerate(times):
                    appenders.start_soon(appender, index, at)
            nursery.cancel_scope.cancel()
        stored = read_all(path)
    assert [r.position for r in stored] == list(range(1, len(times) + 1))
    stamped = [r.received_at_ms for r in stored]
    assert stamped == sorted(stamped)
    by_position = {r.position: r for r in stored}
    for record, result in acked.items():
        assert not result.duplicate
        got = by_position[result.position]
        assert (got.session_id, got.batch_key, got.payload) == (
            record.session_id,
            record.batch_key,
            record.payload,
        )
        assert got.received_at_ms >= record.received_at_ms  # clamped up, never down


def test_reader_names_the_project_of_a_session_from_its_first_record(tmp_path: Path) -> None:
    path = tmp_path / "projects.db"

    async def fill() -> None:
        log = EventLog(path, synchronous="OFF")
        async with trio.open_nursery() as nursery:
            await nursery.start(log.run)
            await log.append(rec(session_id=5, project_id=3, batch_key="a"))
            await log.append(rec(session_id=5, project_id=3, batch_key="b"))
            await log.append(rec(session_id=6, project_id=4, batch_key="a"))
            nursery.cancel_scope.cancel()

    trio.run(fill)
    with LogReader(path) as reader:
        assert reader.project_of_session(5) == 3
        assert reader.project_of_session(6) == 4
        assert reader.project_of_session(7) is None


async def test_inv2_an_old_schema_log_is_migrated_by_the_writer_and_never_reuses(
    fresh_db_path: Path,
) -> None:
    """A log written before positions were AUTOINCREMENT: the writer migrates it on start,
    every record keeps its position, and an erased newest position is never given again."""
    old = connect(fresh_db_path)
    try:
        apply_migrations(old, LOG_COMPONENT, LOG_STEPS[:1])
        for i in range(4):
            old.execute(
                "INSERT INTO log (session_id, project_id, kind, batch_key, received_at_ms,"
                " payload) VALUES (?, 7, 2, ?, ?, ?)",
                (1 + i % 2, f"0_{i}", 1_000 + i, b"old%d" % i),
            )
    finally:
        old.close()
    before = read_all(fresh_db_path)
    log = EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        assert read_all(fresh_db_path) == before and log.head() == 4
        # A retry of an old upload is still recognised (the unique index came along).
        retry = rec(session_id=2, batch_key="0_3", payload=b"again")
        assert await log.append(retry) == AppendResult(4, duplicate=True)
        erased = await log.erase([4], reason="user-deletion", received_at_ms=0)
        appended = await log.append(rec(session_id=3, batch_key="0_0"))
        nursery.cancel_scope.cancel()
    assert (erased.position, appended.position) == (5, 6)
    assert [r.position for r in read_all(fresh_db_path)] == [1, 2, 3, 5, 6]
    assert read_all(fresh_db_path)[:3] == before[:3]
