"""Invariant 8 in the projector: an event a projection cannot store is parked, never fatal; a
database that cannot be written at all (disk full) is waited for, never fatal either."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import attrs
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import events as ev
from projections import dead_letters, events, sessions, users
from projections.pipeline import Projector, is_database_wide
from storage.sqlite import connect

from .factories import SessionScript, dump_tables, positioned

BIG = 2**64 - 1  # a wire uint the engine used to pass on unclamped


def _poisoned_start(s: SessionScript) -> ev.SessionStarted:
    return s.started(user_id="\ud800", timezone="UTC\udfff")


def _poisoned_click(s: SessionScript) -> ev.Clicked:
    return attrs.evolve(s.click(), hesitation_ms=BIG)


def _letters(path: Path) -> list[tuple[int, int, str, str]]:
    conn = connect(path)
    try:
        return sorted(
            (d.position, d.session_id, d.stage, d.error.split(":")[0])
            for d in dead_letters.recent(conn, limit=1000)
        )
    finally:
        conn.close()


async def test_only_the_poisoned_events_are_parked(fresh_db_path: Path) -> None:
    a, b = SessionScript(session_id=1), SessionScript(session_id=2)
    delivery = positioned(
        [
            [_poisoned_start(a)],
            [b.started(user_id="bob")],
            [a.page_visit(), _poisoned_click(a), a.click()],
            [b.click(), b.ended()],
        ]
    )
    async with Projector(fresh_db_path) as projector:
        await projector.sink(delivery, 4)
        assert projector.resume_position == 4
    assert _letters(fresh_db_path) == [
        (1, 1, "projection:sessions", "UnicodeEncodeError"),
        (1, 1, "projection:users", "UnicodeEncodeError"),
        (3, 1, "projection:events", "OverflowError"),
    ]
    conn = connect(fresh_db_path)
    try:
        # Session 1 kept everything but the two poisoned events (a skeleton row, as for a
        # session whose start record was parked); session 2 is untouched.
        row = sessions.get_session(conn, 1, 1)
        assert row is not None and row.user_id is None and row.events_count == 3
        assert [e.type for e in events.session_events(conn, 1, 1)] == ["LOCATION", "CLICK"]
        bob = sessions.get_session(conn, 1, 2)
        assert bob is not None and bob.user_id == "bob" and bob.duration is not None
        summary = users.get_user(conn, 1, "bob")
        assert summary is not None and summary.session_count == 1
    finally:
        conn.close()


async def test_resetting_a_projection_forgets_its_parked_events(fresh_db_path: Path) -> None:
    a = SessionScript(session_id=1)
    async with Projector(fresh_db_path) as projector:
        await projector.sink(positioned([[a.started()], [_poisoned_click(a)], [a.parked()]]), 3)
    assert [(p, stage) for p, _, stage, _ in _letters(fresh_db_path)] == [
        (2, "projection:events"),
        (3, "engine"),
    ]
    async with Projector(fresh_db_path, projections=[events.PROJECTION]) as projector:
        await projector.reset()
    assert [(p, stage) for p, _, stage, _ in _letters(fresh_db_path)] == [(3, "engine")]
    async with Projector(fresh_db_path, projections=[dead_letters.PROJECTION]) as projector:
        await projector.reset()
    assert _letters(fresh_db_path) == []


# -- determinism: the same events park the same things however they are split ----------------


@st.composite
def poisoned_logs(draw: st.DrawFn) -> tuple[list[list[ev.DomainEvent]], list[int], list[int]]:
    """Records (lists of events) of a few sessions with poison sprinkled in, and two splits."""
    scripts = [SessionScript(session_id=i + 1) for i in range(draw(st.integers(1, 3)))]
    records: list[list[ev.DomainEvent]] = [[s.started(user_id=f"u{s.session_id}")] for s in scripts]
    for _ in range(draw(st.integers(1, 25))):
        s = draw(st.sampled_from(scripts))
        kind = draw(st.sampled_from(["click", "page", "bad_click", "bad_start", "bad_user", "end"]))
        if kind == "click":
            records.append([s.click()])
        elif kind == "page":
            page = s.page_visit()
            records.append([page, s.timings(page.message_id, first_paint=BIG)])
        elif kind == "bad_click":
            records.append([s.click(), _poisoned_click(s)])
        elif kind == "bad_start":
            records.append([_poisoned_start(s)])
        elif kind == "bad_user":
            records.append([s.user_id("\udc80"), s.metadata("k\ud800", "v")])
        else:
            records.append([s.ended()])

    def split() -> list[int]:
        cuts = draw(st.sets(st.integers(1, len(records)), max_size=len(records)))
        return sorted(cuts | {len(records)})

    return records, split(), split()


async def _project(path: Path, records: list[list[ev.DomainEvent]], cuts: list[int]) -> None:
    flat = positioned(records)
    async with Projector(path) as projector:
        previous = 0
        for cut in cuts:
            await projector.sink([e for e in flat if previous < e.position <= cut], cut)
            previous = cut


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(poisoned_logs())
def test_the_same_events_are_parked_however_deliveries_are_split(
    case: tuple[list[list[ev.DomainEvent]], list[int], list[int]],
) -> None:
    records, first, second = case
    with tempfile.TemporaryDirectory() as tmp:
        one, other, single = Path(tmp, "one.db"), Path(tmp, "other.db"), Path(tmp, "single.db")
        trio.run(_project, one, records, first)
        trio.run(_project, other, records, second)
        # One delivery per record: no event shares a transaction with a poisoned one.
        trio.run(_project, single, records, list(range(1, len(records) + 1)))
        assert dump_tables(one) == dump_tables(other) == dump_tables(single)


# -- database-wide failures ---------------------------------------------------------------------


def test_errors_of_the_database_are_told_from_errors_of_the_data(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    full: sqlite3.Error | None
    try:
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")
    except sqlite3.Error as error:
        full = error
    else:
        full = None
    try:
        conn.execute("SELECT json_patch('not json', '{}')")
    except sqlite3.Error as error:
        malformed = error
    conn.close()
    assert full is not None and is_database_wide(full)
    assert not is_database_wide(malformed)
    assert not is_database_wide(OverflowError("Python int too large to convert to SQLite INTEGER"))
    assert not is_database_wide(sqlite3.IntegrityError("UNIQUE constraint failed"))


async def test_a_full_database_is_retried_until_it_commits(fresh_db_path: Path) -> None:
    """``PRAGMA max_page_count`` makes SQLite answer SQLITE_FULL as a full disk does (the real
    full filesystem is in tests/api/test_poison_server.py)."""
    s = SessionScript(session_id=1)
    async with trio.open_nursery() as nursery:
        projector = await nursery.start(Projector(fresh_db_path).run)
        await projector.sink(positioned([[s.started()]]), 1)
        await projector.drain()
        conn = projector._conn
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        async with projector._limiter:  # the writer thread's turn on the connection
            conn.execute(f"PRAGMA max_page_count = {pages}")
        big = [attrs.evolve(s.click(), selector="x" * 20_000) for _ in range(20)]
        await projector.sink(positioned([big], first=2), 2)
        while projector.statistics.write_failures < 3:
            await trio.sleep(0.01)
        assert projector.statistics.write_error is not None
        assert "database or disk is full" in projector.statistics.write_error
        assert projector.resume_position == 1  # nothing moved without a commit
        assert projector.statistics.parked_events == 0  # the data was not blamed
        async with projector._limiter:
            conn.execute("PRAGMA max_page_count = 1073741823")
        await projector.drain()
        assert projector.statistics.write_error is None
        assert projector.resume_position == 2
        nursery.cancel_scope.cancel()
    check = connect(fresh_db_path)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert len(events.session_events(check, 1, 1)) == 20
    finally:
        check.close()
