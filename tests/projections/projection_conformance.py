"""Backend-independent conformance tests of the projection stores (DESIGN.md invariants 5, 6, 8).

``ProjectionStoreTestCase`` is not collected by itself (its name does not start with ``Test``):
each backend subclasses it and implements the hooks at the top, which say how a store is built
(``new_store``: the location of a new, empty projections database), how the tests reach it
*around* the projector (a connection with every projection's tables, a transaction on it, a dump
of the tables, a rule that refuses some rows) and where the log replayed by a rebuild lives.
SQLite does so in ``test_conformance_sqlite.py``; a PostgreSQL store would do the same with its
own connections and run the very same tests, which only drive the production code (the
projections' ``apply``, :class:`~projections.pipeline.Projector`, ``rebuild`` and
:class:`~projections.reader.ProjectionReader`) through those hooks. The projector, the reader and
the rebuild are built by overridable hooks too (``make_projector``, ``make_reader``,
``rebuild_store``): today they take a SQLite file's path, and a second backend overrides them once
they take its store.

The events come from ``factories.SessionScript`` (domain events) and, for the rebuild, from the
engine's tracker builders appended to a real log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import trio
from hypothesis import HealthCheck, given, settings

from engine import events as ev
from projections import dead_letters, events, sessions, users
from projections.base import SqlProjection, read_checkpoints, write_checkpoint
from projections.live_sessions import LiveSessions
from projections.pipeline import ALL_PROJECTIONS, Projector
from projections.reader import ProjectionReader
from projections.rebuild import rebuild
from storage.records import NewRecord, RecordKind
from tests.engine.builders import T0, clock_tick

from .factories import SessionScript, positioned
from .test_rebuild import TIMEOUT_MS, append_all, live_path, simple_session

Tables = dict[str, list[tuple[Any, ...]]]
Records = list[list[ev.DomainEvent]]  # the events of each log record, in log order

REFUSED_LABEL = "refused-by-test"


def two_sessions() -> Records:
    """Records of two users' sessions with every kind of event the projections store, a parked
    record, an end and a late batch after it."""
    a, b = SessionScript(session_id=1), SessionScript(session_id=2, start=1_700_000_000_500)
    page = a.page_visit()
    return [
        [a.started(user_id="ann", user_browser="Firefox")],
        [b.started(user_id="bob")],
        [page, a.timings(page.message_id, first_paint=120), a.vital(page.message_id)],
        [a.click(), a.input(), a.custom(), a.title("Cart")],
        [b.page_visit("https://shop.example/"), b.error(), b.request(status=404)],
        [b.graphql(), b.state_action(), b.issue(), b.metadata("plan", "gold")],
        [a.parked()],
        [a.user_id("ann@example.com"), a.anonymous_id("anon-1"), a.visibility(False)],
        [b.ended()],
        [a.click("Pay"), a.ended()],
        [b.click("late")],
    ]


def between(flat: Sequence[ev.DomainEvent], after: int, upto: int) -> list[ev.DomainEvent]:
    """The events of the records in (after, upto]: what the engine delivers for that range."""
    return [e for e in flat if after < e.position <= upto]


@st.composite
def event_logs(draw: st.DrawFn) -> Records:
    """Records of one to three sessions: a start each, then a random mix of every event kind."""
    scripts = [SessionScript(session_id=n + 1) for n in range(draw(st.integers(1, 3)))]
    records: Records = [[s.started(user_id=f"u{s.session_id % 2}")] for s in scripts]
    kinds = [
        "page",
        "click",
        "input",
        "custom",
        "error",
        "request",
        "graphql",
        "state",
        "issue",
        "user",
        "anonymous",
        "metadata",
        "title",
        "visibility",
        "parked",
        "end",
    ]
    for _ in range(draw(st.integers(0, 20))):
        s = draw(st.sampled_from(scripts))
        kind = draw(st.sampled_from(kinds))
        if kind == "page":
            page = s.page_visit()
            records.append(
                [page, s.timings(page.message_id, first_paint=7), s.vital(page.message_id)]
            )
        elif kind == "user":
            records.append([s.user_id(draw(st.sampled_from(["ann", "bob"])))])
        elif kind == "anonymous":
            records.append([s.anonymous_id("anon")])
        elif kind == "metadata":
            records.append([s.metadata(draw(st.sampled_from(["plan", "tier"])), "gold")])
        elif kind == "title":
            records.append([s.title("Title")])
        elif kind == "visibility":
            records.append([s.visibility(draw(st.booleans()))])
        elif kind == "end":
            records.append([s.ended()])
        else:
            builders: dict[str, Callable[[], ev.DomainEvent]] = {
                "click": s.click,
                "input": s.input,
                "custom": s.custom,
                "error": s.error,
                "request": s.request,
                "graphql": s.graphql,
                "state": s.state_action,
                "issue": s.issue,
                "parked": s.parked,
            }
            records.append([builders[kind]()])
    return records


class ProjectionStoreTestCase:
    """The contract every projection store must keep. Subclass and implement the hooks."""

    # -- what a backend implements -----------------------------------------------------------

    # What the backend raises when a row is refused by :meth:`refuse_rows`.
    refused_error: type[BaseException]
    log_location: str  # an empty log (or none yet) at the start of each test, for rebuilds

    def new_store(self) -> str:
        """The location of a new, empty projections store (a different one at each call)."""
        raise NotImplementedError

    def connect(self, location: str) -> contextlib.AbstractContextManager[Any]:
        """A connection to the store with every projection's tables, closed on exit."""
        raise NotImplementedError

    def transaction(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        """One transaction on ``conn``: committed on exit, rolled back on error."""
        raise NotImplementedError

    def table_rows(self, location: str) -> Tables:
        """Every row of the projections' tables, sorted, through an independent connection."""
        raise NotImplementedError

    def refuse_rows(self, location: str, table: str, column: str, value: str) -> None:
        """Make the database itself refuse rows of ``table`` whose ``column`` is ``value``."""
        raise NotImplementedError

    def make_projector(self, location: str, **options: Any) -> Projector:
        """A projector writing the store at ``location``."""
        return Projector(location, **options)

    def make_reader(self, location: str) -> ProjectionReader:
        """The API's read side of the store at ``location``."""
        return ProjectionReader(location)

    async def rebuild_store(self, location: str, **options: Any) -> None:
        """``replayd rebuild`` of the store at ``location`` from the log at ``log_location``."""
        await rebuild(self.log_location, location, inactivity_timeout_ms=TIMEOUT_MS, **options)

    # -- helpers -----------------------------------------------------------------------------

    def apply_directly(
        self,
        location: str,
        projection: SqlProjection,
        chunks: Sequence[Sequence[ev.DomainEvent]],
    ) -> None:
        """Apply each chunk to ``projection`` in a transaction of its own, moving its checkpoint."""
        with self.connect(location) as conn:
            for chunk in chunks:
                with self.transaction(conn):
                    projection.apply(conn, chunk)
                    write_checkpoint(conn, projection.name, chunk[-1].position)

    async def project(self, location: str, records: Records, cuts: Sequence[int]) -> None:
        """Deliver ``records`` to a projector of ``location``, closed and reopened at each cut;
        each opening delivers what lies above its resume position, as the engine does."""
        flat = positioned(records)
        for cut in cuts:
            async with self.make_projector(location) as projector:
                after = projector.resume_position
                await projector.sink(between(flat, after, cut), cut)
                assert projector.resume_position == cut

    async def one_pass(self, records: Records) -> Tables:
        """The tables of a new store that received ``records`` in one delivery."""
        store = self.new_store()
        await self.project(store, records, [len(records)])
        return self.table_rows(store)

    # -- invariant 5: rows and checkpoint in one transaction ---------------------------------

    def test_a_failure_mid_apply_leaves_neither_rows_nor_checkpoint(self) -> None:
        store = self.new_store()
        s = SessionScript(session_id=1)
        first = positioned([[s.started(user_id="ann")], [s.page_visit()]])
        second = positioned([[s.click()], [s.click(REFUSED_LABEL)]], first=3)
        self.refuse_rows(store, "session_events", "label", REFUSED_LABEL)
        with self.connect(store) as conn:
            with self.transaction(conn):
                for projection in ALL_PROJECTIONS:
                    projection.apply(conn, first)
                    write_checkpoint(conn, projection.name, 2)
            before = self.table_rows(store)
            assert len(before["session_events"]) == 1
            # sessions and users apply first and succeed; events fails on its last row.
            with pytest.raises(self.refused_error), self.transaction(conn):
                for projection in ALL_PROJECTIONS:
                    projection.apply(conn, second)
                    write_checkpoint(conn, projection.name, 4)
        assert self.table_rows(store) == before
        with self.connect(store) as conn:
            assert set(read_checkpoints(conn).values()) == {2}

    async def test_the_projector_parks_a_refused_row_and_writes_the_rest(self) -> None:
        store = self.new_store()
        a, b = SessionScript(session_id=1), SessionScript(session_id=2)
        delivery = positioned(
            [
                [a.started(user_id="ann"), b.started(user_id="bob")],
                [a.click(), a.click(REFUSED_LABEL), b.click()],
                [a.ended(), b.ended()],
            ]
        )
        self.refuse_rows(store, "session_events", "label", REFUSED_LABEL)
        async with self.make_projector(store) as projector:
            await projector.sink(delivery, 3)
            assert projector.resume_position == 3
            assert projector.statistics.parked_events == 1
        with self.connect(store) as conn:
            parked = dead_letters.recent(conn)
            assert [(d.position, d.session_id, d.stage) for d in parked] == [
                (2, 1, "projection:events")
            ]
            assert self.refused_error.__name__ in parked[0].error
            assert [e.label for e in events.session_events(conn, 1, 1)] == ["Buy"]
            assert [e.label for e in events.session_events(conn, 1, 2)] == ["Buy"]
            # The other projections took the refused event in: it is only the events' row.
            session = sessions.get_session(conn, 1, 1)
            assert session is not None and session.duration is not None
            assert set(read_checkpoints(conn).values()) == {3}

    async def test_a_parked_record_is_a_dead_letter_and_the_others_go_on(self) -> None:
        store = self.new_store()
        s = SessionScript(session_id=1, project_id=3)
        parked = s.parked("ValueError: truncated batch")
        await self.project(store, [[s.started(user_id="ann")], [parked], [s.click()]], [3])
        with self.connect(store) as conn:
            assert dead_letters.recent(conn) == [
                dead_letters.DeadLetter(
                    position=2,
                    session_id=1,
                    project_id=3,
                    error="ValueError: truncated batch",
                    at=parked.timestamp,
                )
            ]
            assert dead_letters.count(conn, project_id=3) == 1
            assert [e.type for e in events.session_events(conn, 3, 1)] == ["CLICK"]
            assert users.get_user(conn, 3, "ann") is None  # not finished yet

    # -- checkpoints: monotonic, resumable, per projection -----------------------------------

    def test_reopening_at_every_record_gives_the_same_tables_as_one_pass(self) -> None:
        records = two_sessions()
        store = self.new_store()
        trio.run(self.project, store, records, range(1, len(records) + 1))
        assert self.table_rows(store) == trio.run(self.one_pass, records)

    async def test_a_redelivery_below_the_checkpoints_changes_nothing(self) -> None:
        records = two_sessions()
        flat = positioned(records)
        store = self.new_store()
        async with self.make_projector(store) as projector:
            await projector.sink(between(flat, 0, 6), 6)
        after_six = self.table_rows(store)
        async with self.make_projector(store) as projector:
            assert projector.resume_position == 6
            await projector.sink(between(flat, 0, 6), 6)  # everything again: already applied
            await projector.sink(between(flat, 0, 4), 4)  # an older delivery: moves nothing back
            assert projector.resume_position == 6
        assert self.table_rows(store) == after_six
        async with self.make_projector(store) as projector:
            # A delivery that starts below the checkpoints: only the part above it is applied.
            await projector.sink(between(flat, 3, len(records)), len(records))
        assert self.table_rows(store) == await self.one_pass(records)

    async def test_a_projection_ahead_of_the_others_skips_what_it_applied(self) -> None:
        records = two_sessions()
        flat = positioned(records)
        store = self.new_store()
        async with self.make_projector(store, projections=[events.PROJECTION]) as projector:
            await projector.sink(between(flat, 0, 8), 8)
        with self.connect(store) as conn:
            assert read_checkpoints(conn) == {"events": 8}
        async with self.make_projector(store) as projector:
            assert projector.resume_position == 0  # the lowest checkpoint
            await projector.sink(flat, len(records))
        assert self.table_rows(store) == await self.one_pass(records)

    async def test_reset_empties_a_projection_and_forgets_its_checkpoint(self) -> None:
        records = two_sessions()
        store = self.new_store()
        await self.project(store, records, [len(records)])
        async with self.make_projector(store, projections=[users.PROJECTION]) as projector:
            await projector.reset()
            assert projector.resume_position == 0
        rows = self.table_rows(store)
        assert rows["end_users"] == [] and rows["end_user_sessions"] == []
        assert rows["session_events"] != []  # the others keep theirs
        async with self.make_projector(store) as projector:
            await projector.sink(positioned(records), len(records))
        assert self.table_rows(store) == await self.one_pass(records)

    # -- the split of the events does not matter ---------------------------------------------

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(records=event_logs())
    def test_each_projection_applies_one_by_one_as_all_at_once(self, records: Records) -> None:
        flat = positioned(records)
        for projection in ALL_PROJECTIONS:
            at_once, one_by_one = self.new_store(), self.new_store()
            self.apply_directly(at_once, projection, [flat])
            self.apply_directly(one_by_one, projection, [[e] for e in flat])
            assert self.table_rows(at_once) == self.table_rows(one_by_one), projection.name

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(records=event_logs(), data=st.data())
    def test_deliveries_split_anywhere_give_the_same_tables(
        self, records: Records, data: st.DataObject
    ) -> None:
        cuts = data.draw(st.sets(st.integers(1, len(records))), label="cuts")
        store = self.new_store()
        trio.run(self.project, store, records, sorted(cuts | {len(records)}))
        assert self.table_rows(store) == trio.run(self.one_pass, records)

    # -- invariant 6: rebuild equals the live path, and so does the query side ---------------

    def log_records(self) -> list[NewRecord]:
        """Tracker records of two users, one undecodable batch, and a tick that ends both."""
        records = simple_session(11) + simple_session(12, user="bob", start=T0 + 500)
        records.insert(
            3,
            NewRecord(
                session_id=11,
                project_id=records[0].project_id,
                kind=RecordKind.WEB_BATCH,
                received_at_ms=T0 + 1_000,
                payload=b"\xff\xff\xff",
            ),
        )
        records.append(clock_tick(T0 + 60_000))
        return records

    async def answers(self, store: str, records: Sequence[NewRecord]) -> list[object]:
        """What the API's read side answers about every session and user of ``records``."""
        reader = self.make_reader(store)
        out: list[object] = [
            await reader.engine_progress(),
            await reader.dead_letter_count(),
            await reader.dead_letters_in([r.project_id for r in records], limit=10),
        ]
        try:
            for project_id, session_id in sorted({(r.project_id, r.session_id) for r in records}):
                out.append(await reader.session(project_id, session_id))
                out.append(await reader.session_events(project_id, session_id))
            for user in ("ann", "bob", "nobody"):
                out.append(await reader.user(records[0].project_id, user))
                out.append((await reader.user_sessions_page(records[0].project_id, user))[1])
            out.append(await reader.run(sessions.live_sessions))
        finally:
            reader.close()
        return out

    async def test_rebuild_gives_the_tables_and_answers_of_the_live_path(self) -> None:
        records = self.log_records()
        await append_all(Path(self.log_location), records)
        live = self.new_store()
        await live_path(
            Path(self.log_location),
            [2, 5, len(records)],
            chunk_size=2,
            open_projector=lambda: self.make_projector(live, live=LiveSessions()),
        )
        live_rows = self.table_rows(live)
        live_answers = await self.answers(live, records)
        assert len(live_rows["sessions"]) == 2 and len(live_rows["end_users"]) == 2
        assert len(live_rows["dead_letters"]) == 1  # the undecodable batch
        assert set(live_rows["projection_checkpoints"]) == {
            (p.name, len(records)) for p in ALL_PROJECTIONS
        }

        empty = self.new_store()
        await self.rebuild_store(empty)
        assert self.table_rows(empty) == live_rows
        assert await self.answers(empty, records) == live_answers

        # In place: the same store emptied and replayed.
        await self.rebuild_store(live, chunk_size=3)
        assert self.table_rows(live) == live_rows
        assert await self.answers(live, records) == live_answers
