"""Rebuild: the log replayed through the engine into emptied projections (invariant 6).

The property test drives the real path end to end: tracker-like records of web and mobile
sessions (the engine's test builders, encoded with the real codecs) are appended to a real SQLite
log; the live path runs the engine supervisor over them in small epochs, restarting (new
projector, supervisor resumed at the projections' checkpoint) at random positions; then
``rebuild`` replays the whole log into emptied projections. Every projection table must be
exactly the same afterwards.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import hypothesis.strategies as st
import pytest
import trio
from hypothesis import HealthCheck, given, settings

from api.config import default_projections_path
from engine.supervisor import Supervisor, history_from_reader, resume_point
from engine.v3_protocol import event_id
from projections.base import SqlProjection
from projections.live_sessions import LiveSessions
from projections.pipeline import ALL_PROJECTIONS, ProjectionsBusy, Projector, acquire_lock
from projections.rebuild import Progress, choose_projections, rebuild
from storage.log import EventLog, LogReader
from storage.records import NewRecord, RecordKind
from storage.sqlite import connect
from tests.engine.builders import T0, clock_tick
from tests.engine.builders import SessionScript as TrackerScript
from tests.engine.mobile_builders import MobileScript
from tests.engine.v3_builders import v3_delete, v3_event, v3_record

from .factories import dump_tables

TIMEOUT_MS = 10_000  # short inactivity timeout: late batches end and re-activate sessions


def projections_of(path: Path) -> Path:
    """The projections' file that goes with the log file ``path`` (what serve/rebuild derive)."""
    return Path(default_projections_path(path))


@pytest.fixture
def projections_db(fresh_db_path: Path) -> Path:
    """The projections' file of ``fresh_db_path``."""
    return projections_of(fresh_db_path)


async def append_all(path: Path, records: Sequence[NewRecord]) -> None:
    """Append the records to the log of ``path`` through the real log writer."""
    log = EventLog(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        if records:
            await log.append_many(list(records))
        nursery.cancel_scope.cancel()


async def live_path(
    path: Path,
    cuts: Sequence[int],
    chunk_size: int,
    projections: Sequence[SqlProjection] = ALL_PROJECTIONS,
    *,
    open_projector: Callable[[], Projector] | None = None,
) -> None:
    """Run the engine into a (restarted) projector up to each cut in turn, in small epochs.

    The projector is ``open_projector()`` (by default one of ``path``'s projections file).
    """
    if open_projector is None:

        def open_projector() -> Projector:
            return Projector(projections_of(path), projections=projections, live=LiveSessions())

    source, history = LogReader(path), LogReader(path)
    try:
        for cut in cuts:
            async with open_projector() as projector:
                after = projector.resume_position
                resume = await resume_point(source, after, TIMEOUT_MS) if after else None
                supervisor = Supervisor(
                    history=history_from_reader(history),
                    sink=projector.sink,
                    inactivity_timeout_ms=TIMEOUT_MS,
                )
                await supervisor.run_until(source, cut, resume=resume, chunk_size=chunk_size)
    finally:
        source.close()
        history.close()


def live_equals_rebuild(
    records: Sequence[NewRecord], cut_fractions: Sequence[float], chunk_size: int
) -> dict[str, list[tuple]]:
    """Append ``records`` to a fresh log, run the live path restarted at the cut fractions, then a
    rebuild; assert both give the same tables with every checkpoint at the head; return them."""
    head = len(records)
    cuts = sorted({int(f * head) for f in cut_fractions if int(f * head) > 0} | {head})

    async def scenario(path: Path) -> tuple[dict, dict]:
        await append_all(path, records)
        await live_path(path, cuts, chunk_size)  # raises if the engine or the projector does
        live = dump_tables(projections_of(path))
        await rebuild(path, projections_of(path), inactivity_timeout_ms=TIMEOUT_MS, chunk_size=1000)
        return live, dump_tables(projections_of(path))

    with tempfile.TemporaryDirectory() as directory:
        live, rebuilt = trio.run(scenario, Path(directory) / "replayd.db")
    assert live == rebuilt
    assert live["projection_checkpoints"] == [
        (name, head) for name in ("dead_letters", "events", "jobs", "sessions", "users", "v3")
    ]
    return live


def simple_session(session_id: int, *, user: str = "ann", start: int = T0) -> list[NewRecord]:
    s = TrackerScript(session_id, start_ms=start)
    records = [s.start(user_id=user)]
    s.visit("https://shop.example/cart?step=1", title="Cart")
    s.click("Buy")
    s.input("email", "a***@b")
    records.append(s.batch())
    s.wait(2_000).js_exception("TypeError", "boom")
    s.metadata("plan", "gold")
    records.append(s.batch())
    return records


# -- rebuild as a tool -----------------------------------------------------------------------------


async def test_rebuild_reports_and_matches_the_live_path(
    fresh_db_path: Path, projections_db: Path
) -> None:
    records = simple_session(11) + simple_session(12, user="bob", start=T0 + 500)
    records.append(clock_tick(T0 + 60_000))  # ends both sessions
    await append_all(fresh_db_path, records)
    await live_path(fresh_db_path, [len(records)], chunk_size=2)
    before = dump_tables(projections_db)
    assert len(before["sessions"]) == 2 and len(before["end_users"]) == 2

    stream = io.StringIO()
    result = await rebuild(
        fresh_db_path, projections_db, progress=stream, inactivity_timeout_ms=TIMEOUT_MS
    )
    assert dump_tables(projections_db) == before
    assert result.records == len(records) and result.events > 0
    assert result.projections == ("sessions", "events", "users", "v3", "jobs", "dead_letters")
    assert "records/s" in result.summary() and "events/s" in result.summary()
    out = stream.getvalue()
    assert out.startswith("\r") and out.endswith("\n")
    assert f"{len(records)}/{len(records)} records (100.0%)" in out


async def test_rebuild_counts_the_records_replayed_not_the_positions(
    fresh_db_path: Path, projections_db: Path
) -> None:
    # Erased records leave gaps: the head (6) is not the number of records replayed (4).
    log = EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        await log.append_many(simple_session(11) + simple_session(12, start=T0 + 500)[:2])
        await log.erase([4, 5], reason="user-deletion", received_at_ms=T0 + 1_000)
        nursery.cancel_scope.cancel()
    assert log.head() == 6
    result = await rebuild(fresh_db_path, projections_db, inactivity_timeout_ms=TIMEOUT_MS)
    assert result.records == 4


async def test_rebuild_of_some_projections_leaves_the_others(
    fresh_db_path: Path, projections_db: Path
) -> None:
    await append_all(fresh_db_path, simple_session(11))
    await live_path(fresh_db_path, [3], chunk_size=10)
    before = dump_tables(projections_db)
    result = await rebuild(
        fresh_db_path, projections_db, ["users", "events"], inactivity_timeout_ms=TIMEOUT_MS
    )
    assert result.projections == ("events", "users")  # canonical order
    assert dump_tables(projections_db) == before


async def test_rebuild_of_an_empty_database(fresh_db_path: Path, projections_db: Path) -> None:
    result = await rebuild(fresh_db_path, projections_db)
    assert (result.records, result.events) == (0, 0)
    assert all(rows == [] for rows in dump_tables(projections_db).values())


async def test_rebuild_refuses_while_a_server_projector_runs(
    fresh_db_path: Path, projections_db: Path
) -> None:
    await append_all(fresh_db_path, simple_session(11))
    async with Projector(projections_db, holder="server"):
        with pytest.raises(ProjectionsBusy):
            await rebuild(fresh_db_path, projections_db)


def test_choose_projections() -> None:
    assert [p.name for p in choose_projections(None)] == [
        "sessions",
        "events",
        "users",
        "v3",
        "jobs",
        "dead_letters",
    ]
    assert [p.name for p in choose_projections(["users", "sessions", "users"])] == [
        "sessions",
        "users",
    ]
    with pytest.raises(ValueError, match="nope"):
        choose_projections(["nope"])


def test_progress_line() -> None:
    ticks = iter([0.0, 2.0, 2.1, 4.0, 4.0])
    stream = io.StringIO()
    progress = Progress(stream, 1000, clock=lambda: next(ticks))
    progress.update(500, 2000, 30_000)  # t=2.0: drawn
    progress.update(600, 2400, 36_000)  # t=2.1: within the interval, not drawn
    progress.finish(1000, 4000, 60_000)  # t=4.0: forced
    lines = stream.getvalue().split("\r")
    assert lines[1].startswith(
        "rebuild: 500/1,000 records ( 50.0%)  250 records/s  15,000 messages/s"
        "  1,000 events/s  ETA 2 s"
    )
    assert lines[2].startswith("rebuild: 1,000/1,000 records (100.0%)  250 records/s")
    assert len(lines) == 3 and stream.getvalue().endswith("\n")


# -- the live path through a real tailing log equals the rebuild -----------------------------------


async def test_live_tail_with_concurrent_appends_equals_rebuild(
    fresh_db_path: Path, projections_db: Path
) -> None:
    records = simple_session(21) + simple_session(22, start=T0 + 100)
    records.sort(key=lambda r: r.received_at_ms)
    records.append(clock_tick(T0 + 30_000))
    log = EventLog(fresh_db_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        projector = await nursery.start(Projector(projections_db, live=LiveSessions()).run)
        history = LogReader(fresh_db_path)
        supervisor = Supervisor(
            history=history_from_reader(history),
            sink=projector.sink,
            inactivity_timeout_ms=TIMEOUT_MS,
        )
        nursery.start_soon(supervisor.run, log.tail(0, batch_size=2))
        for record in records:
            await log.append(record)
            await trio.lowlevel.checkpoint()
        with trio.fail_after(10):
            while projector.statistics.upto_position < len(records):
                await trio.sleep(0.01)
        assert projector.live is not None and len(projector.live) == 0  # the tick ended both
        nursery.cancel_scope.cancel()
    history.close()
    live = dump_tables(projections_db)
    await rebuild(fresh_db_path, projections_db, inactivity_timeout_ms=TIMEOUT_MS)
    assert dump_tables(projections_db) == live


# -- property: live path with epochs, late batches and restarts == rebuild -------------------------

URLS = ("https://shop.example/", "https://shop.example/cart?x=1", "https://shop.example/pay#top")
op_strategy = st.one_of(
    st.tuples(st.just("click"), st.sampled_from(("Buy", "Add", "Close"))),
    st.tuples(st.just("rage"), st.sampled_from(("Buy", "Next"))),
    st.tuples(st.just("visit"), st.sampled_from(URLS)),
    st.tuples(st.just("input"), st.sampled_from(("a", "bb"))),
    st.tuples(st.just("custom"), st.sampled_from(("signup", "pay"))),
    st.tuples(st.just("error"), st.sampled_from(("TypeError", "RangeError"))),
    st.tuples(st.just("request"), st.sampled_from((200, 404, 503))),
    st.tuples(st.just("user"), st.sampled_from(("ann", "bob", "cy"))),
    st.tuples(st.just("anon"), st.sampled_from(("a1", "a2"))),
    st.tuples(st.just("meta"), st.sampled_from(("plan", "team")), st.sampled_from(("x", "y"))),
    st.tuples(st.just("issue"), st.sampled_from(("custom", "mouse_thrashing"))),
    st.tuples(st.just("graphql"), st.sampled_from(("GetCart",))),
    st.tuples(st.just("state"), st.sampled_from(("cart/add",))),
    st.tuples(st.just("timing"), st.integers(1, 900)),
    st.tuples(st.just("vital"), st.sampled_from(("LCP", "CLS"))),
    st.tuples(st.just("hidden"), st.booleans()),
    st.tuples(st.just("dom"), st.just(0)),
)
# Gaps between batches: mostly short; 25_000 ms is past the inactivity timeout (a late batch).
batch_strategy = st.tuples(
    st.sampled_from((300, 1_500, 4_000, 25_000)), st.lists(op_strategy, min_size=1, max_size=5)
)
session_strategy = st.tuples(
    st.sampled_from((1, 2)),  # project
    st.integers(0, 20_000),  # start offset (ms)
    st.sampled_from((None, "ann", "bob")),  # user id at start
    st.lists(batch_strategy, min_size=0, max_size=4),
)


def play(script: TrackerScript, op: tuple) -> None:
    kind, *args = op
    script.wait(40)
    match kind:
        case "click":
            script.click(args[0])
        case "rage":
            script.rage_click(args[0])
        case "visit":
            script.visit(args[0], title=args[0][-6:])
        case "input":
            script.input("field", args[0])
        case "custom":
            script.custom_event(args[0], '{"n": 1}')
        case "error":
            script.js_exception(args[0], "boom")
        case "request":
            script.request("https://api.example/items", status=args[0])
        case "user":
            script.user_id(args[0])
        case "anon":
            script.anonymous_id(args[0])
        case "meta":
            script.metadata(args[0], args[1])
        case "issue":
            script.issue_event(args[0], context_string="ctx", payload='{"a": 1}')
        case "graphql":
            script.graphql(args[0])
        case "state":
            script.state_action(args[0])
        case "timing":
            script.load_timing(request_start=1, response_start=args[0], response_end=args[0] + 5)
        case "vital":
            script.web_vital(args[0], "12")
        case "hidden":
            script.visibility(args[0])
        case "dom":
            script.dom_change()


# Mobile sessions (MOBILE.md): the SDK's messages, delivered on /i, on /late, twice (a late copy
# of a batch already delivered), or as a bare crash upload.
mobile_op_strategy = st.one_of(
    st.tuples(st.just("tap"), st.sampled_from(("Login", "Pay", ""))),
    st.tuples(st.just("rage"), st.sampled_from(("Pay",))),
    st.tuples(st.just("swipe"), st.sampled_from(("left", "up"))),
    st.tuples(st.just("input"), st.sampled_from(("email", ""))),
    st.tuples(st.just("view"), st.booleans()),
    st.tuples(st.just("custom"), st.sampled_from(("signup",))),
    st.tuples(st.just("request"), st.sampled_from((200, 404, 503))),
    st.tuples(st.just("crash"), st.sampled_from(("SIGSEGV",))),
    st.tuples(st.just("user"), st.sampled_from(("ann", "bob"))),
    st.tuples(st.just("anon"), st.sampled_from(("a1",))),
    st.tuples(st.just("meta"), st.sampled_from(("plan",)), st.sampled_from(("x", "y"))),
    st.tuples(st.just("graphql"), st.sampled_from(("GetCart",))),
    st.tuples(st.just("perf"), st.integers(0, 60)),
)
mobile_batch_strategy = st.tuples(
    st.sampled_from((300, 4_000, 25_000)),
    st.lists(mobile_op_strategy, min_size=1, max_size=5),
    st.sampled_from(("i", "i", "late", "twice", "bare")),
)
mobile_session_strategy = st.tuples(
    st.sampled_from(("ios", "android")),
    st.integers(0, 20_000),  # start offset (ms)
    st.lists(mobile_batch_strategy, min_size=0, max_size=3),
)


def play_mobile(script: MobileScript, op: tuple) -> None:
    kind, *args = op
    script.wait(40)
    match kind:
        case "tap":
            script.tap(args[0])
        case "rage":
            for _ in range(3):
                script.wait(100).tap(args[0])
        case "swipe":
            script.swipe("Swipe", args[0])
        case "input":
            script.input(args[0], "typed")
        case "view":
            script.view("Home", "Banner", args[0])
        case "custom":
            script.custom(args[0])
        case "request":
            script.request("https://api.example/items", args[0])
        case "crash":
            script.crash(args[0], "bad access")
        case "user":
            script.user_id(args[0])
        case "anon":
            script.anonymous_id(args[0])
        case "meta":
            script.metadata(args[0], args[1])
        case "graphql":
            script.graphql(args[0])
        case "perf":
            script.performance("fps", args[0])


def mobile_records(number: int, session: tuple) -> list[NewRecord]:
    """One mobile session's records, as its SDK and the routes would make them."""
    platform, offset, batches = session
    script = MobileScript(2_000 + number, platform=platform, start_ms=T0 + offset)
    records = [script.start()]
    for gap, ops, delivery in batches:
        script.wait(gap)
        for op in ops:
            play_mobile(script, op)
        if delivery == "bare":
            records.append(script.batch())
            records.append(script.bare_crash("Fatal", "killed"))
        elif delivery == "late":
            records.append(script.batch(kind=RecordKind.MOBILE_LATE))
        else:
            records.append(batch := script.batch())
            if delivery == "twice":  # the SDK's late file held the batch /i delivered
                copy = attrs.evolve(batch, kind=RecordKind.MOBILE_LATE)
                records.append(attrs.evolve(copy, received_at_ms=batch.received_at_ms + 5))
    return records


v3_event_strategy = st.tuples(
    st.sampled_from(["START", "UPDATE", "END"]),
    st.sampled_from(["APPSTART", "SCREEN"]),
    st.integers(0, 200),  # seconds after the previous event
    st.sampled_from([None, "a", 1, [1, 2]]),  # an entity value (None: no entity)
)
v3_request_strategy = st.tuples(
    st.integers(0, 30_000),  # ms after the previous request
    st.lists(v3_event_strategy, max_size=4),
    st.none() | st.integers(0, 50),  # then delete the n-th (mod count) event sent so far
)
v3_session_strategy = st.tuples(
    st.sampled_from(["alice", "bob"]),
    st.sampled_from(["", "session-one", "session-two"]),
    st.lists(v3_request_strategy, min_size=1, max_size=4),
)
_PICK = "pick"  # a deletion placeholder: the event it deletes is known once positions are


def v3_records(session: tuple, offset: int) -> list[NewRecord]:
    """One v3 session's records (deletions as placeholders naming an earlier event)."""
    user, name, requests = session
    now, ts, records = T0 + offset, 1_700_000_000, []
    for gap, events, delete in requests:
        now += gap
        batch = []
        for action, type_, step, value in events:
            ts += step
            batch.append(v3_event(action, type_, ts, {} if value is None else {"k": value}))
        records.append(v3_record(user, name, batch, received_at=now))
        if delete is not None:
            mark = v3_delete(user, name, 0, received_at=now)
            records.append(attrs.evolve(mark, batch_key=f"{_PICK}:{delete}"))
    return records


def resolve_deletions(records: list[NewRecord]) -> list[NewRecord]:
    """Give each deletion placeholder the id of an event its session appended before it (the
    log numbers records from 1); one with no earlier event deletes an id that does not exist."""
    sent: dict[str, list[int]] = {}
    out: list[NewRecord] = []
    for position, record in enumerate(records, start=1):
        ids = sent.setdefault(record.session_key, [])
        if record.kind == RecordKind.V3_EVENT:
            count = len(json.loads(record.payload)["events"])
            ids.extend(event_id(position, i) for i in range(count))
        elif record.batch_key and record.batch_key.startswith(_PICK):
            n = int(record.batch_key.split(":")[1])
            target = ids[n % len(ids)] if ids else 999
            body = json.loads(record.payload) | {"id": target}
            record = attrs.evolve(record, batch_key=None, payload=json.dumps(body).encode())
        out.append(record)
    return out


def build_records(
    sessions: list[tuple],
    ticks: list[int],
    mobile: Sequence[tuple] = (),
    v3: Sequence[tuple] = (),
) -> list[NewRecord]:
    """All sessions' records and the clock ticks, in receive-time order (per-session order kept)."""
    timed: list[tuple[int, int, NewRecord]] = []
    for number, session in enumerate(v3):
        timed.extend((r.received_at_ms, len(timed), r) for r in v3_records(session, number * 7))
    for number, session in enumerate(mobile):
        timed.extend((r.received_at_ms, len(timed), r) for r in mobile_records(number, session))
    for number, (project_id, offset, user, batches) in enumerate(sessions):
        script = TrackerScript(1_000 + number, project_id=project_id, start_ms=T0 + offset)
        records = [script.start(user_id=user)]
        for gap, ops in batches:
            script.wait(gap)
            for op in ops:
                play(script, op)
            records.append(script.batch())
        timed.extend((r.received_at_ms, len(timed), r) for r in records)
    timed.extend((T0 + t, len(timed) + i, clock_tick(T0 + t)) for i, t in enumerate(ticks))
    timed.sort(key=lambda item: (item[0], item[1]))
    return resolve_deletions([record for _, _, record in timed])


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    sessions=st.lists(session_strategy, min_size=1, max_size=4),
    ticks=st.lists(st.integers(0, 150_000), max_size=4),
    cut_fractions=st.lists(st.floats(0, 1), max_size=3),
    chunk_size=st.integers(1, 6),
    mobile=st.lists(mobile_session_strategy, max_size=2),
    v3=st.lists(v3_session_strategy, max_size=3),
)
def test_live_path_with_restarts_equals_rebuild(
    sessions: list[tuple],
    ticks: list[int],
    cut_fractions: list[float],
    chunk_size: int,
    mobile: list[tuple],
    v3: list[tuple],
) -> None:
    records = build_records(sessions, ticks, mobile, v3)
    live = live_equals_rebuild(records, cut_fractions, chunk_size)
    assert len(live["sessions"]) == len(sessions) + len(mobile)  # v3 sessions are not sessions
    assert not live["dead_letters"]  # every mobile upload and v3 shape is applied, none parked
    sent = sum(len(events) for _, _, requests in v3 for _, events, _ in requests)
    deleted = {json.loads(r.payload)["id"] for r in records if r.kind == RecordKind.V3_DELETE}
    assert len(live["v3_events"]) == sent - len(deleted - {999})


# -- the command line ------------------------------------------------------------------------------


def test_replayd_rebuild_command(
    fresh_db_path: Path, projections_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    records = simple_session(11)
    trio.run(append_all, fresh_db_path, records)
    assert main(["rebuild", "--db", str(fresh_db_path), "--projection", "sessions"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"rebuilt sessions: {len(records)} records,") and "records/s" in out
    assert f"{len(records)}/{len(records)} records (100.0%)" in err
    assert len(dump_tables(projections_db, ["sessions"])["sessions"]) == 1

    # A live holder of the lock (a server of this very process, here) makes it refuse.
    conn = connect(projections_db)
    try:
        acquire_lock(conn, "server", "someone-else")
    finally:
        conn.close()
    assert main(["rebuild", "--db", str(fresh_db_path)]) == 1
    assert "being written by server" in capsys.readouterr().err

    assert main(["rebuild", "--db", str(fresh_db_path.parent / "missing.db")]) == 1
    assert "no database" in capsys.readouterr().err


def test_rebuild_writes_only_the_projections_file(
    fresh_db_path: Path, projections_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    trio.run(append_all, fresh_db_path, simple_session(11))
    log_bytes = fresh_db_path.read_bytes()
    elsewhere = fresh_db_path.parent / "elsewhere" / "projections.db"
    argv = ["rebuild", "--db", str(fresh_db_path), "--projections-db", str(elsewhere)]
    assert main(argv) == 0
    assert len(dump_tables(elsewhere, ["sessions"])["sessions"]) == 1
    assert not projections_db.exists()  # the explicit file, not the derived one
    assert fresh_db_path.read_bytes() == log_bytes  # the log file is only read

    same = ["rebuild", "--db", str(fresh_db_path), "--projections-db", str(fresh_db_path)]
    assert main(same) == 2
    assert "must not be the log's file" in capsys.readouterr().err
