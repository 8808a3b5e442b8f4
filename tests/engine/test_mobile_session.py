"""The mobile session state (``engine/mobile_session.py``) and its actor type in the supervisor."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from engine import events as ev
from engine.actor_types import DEFAULT_REGISTRY, MOBILE_ACTOR_TYPE
from engine.codec import mobile_messages as mm
from engine.mobile_session import BARE_ID_BASE, MobileSessionState
from engine.session_core import MAX_CLOCK_AHEAD_MS
from engine.supervisor import (
    ResumePoint,
    Supervisor,
    history_from_reader,
    live_sessions_at,
    resume_point,
)
from storage.records import LogRecord, NewRecord, RecordKind
from tests.engine.builders import T0, CollectingSink, MemoryLog, clock_tick, commit
from tests.engine.mobile_builders import MobileScript

SID = 4242
TIMEOUT = 150_000


def apply_all(
    records: list[NewRecord], state: MobileSessionState | None = None
) -> tuple[MobileSessionState, list[ev.DomainEvent]]:
    state = state or MobileSessionState(SID)
    out: list[ev.DomainEvent] = []
    for record in commit(records):
        state.apply_record(record, out)
    return state, out


def of(kind: type, events: list[ev.DomainEvent]) -> list[Any]:
    return [e for e in events if type(e) is kind]


def rows(events: list[ev.DomainEvent]) -> list[tuple[str, int, int]]:
    """(class name, message id, time) of the row events, in emission order."""
    return [
        (type(e).__name__, e.message_id, e.timestamp)
        for e in events
        if isinstance(e, ev.SessionEvent)
    ]


def test_a_start_is_a_session_started_with_its_platform() -> None:
    s = MobileScript(SID, platform="android", project_id=3)
    state, out = apply_all([s.start()])
    (started,) = of(ev.SessionStarted, out)
    assert started.timestamp == T0
    assert (started.start.platform, started.start.user_os, started.start.user_device) == (
        "android",
        "Android",
        "emu64xa",
    )
    assert (state.platform, state.start_ts, state.started, state.project_id) == (
        "android",
        T0,
        True,
        3,
    )
    # A continued start of a known session starts nothing new.
    _, again = apply_all([s.start(continued=True, received_at=T0 + 5)], state)
    assert not of(ev.SessionStarted, again)


def test_every_message_becomes_its_event() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.wait(100)
    tap = s.tap("Login", 150, 420)
    s.wait(10)
    s.swipe("Carousel", "left")
    typed = s.input("Password", "hunter2")
    view = s.view("Home", "Banner", visible=False)
    custom = s.custom("signup", '{"plan":"gold"}')
    request = s.wait(5).request("https://api.example/items", 404, method="POST")
    crash = s.crash("SIGSEGV", "bad access")
    gql = s.graphql("GetCart")
    s.user_id("ann")
    s.anonymous_id("anon-1")
    s.metadata("plan", "gold")
    s.performance()
    records.append(s.batch())
    state, out = apply_all(records)
    [tapped] = of(ev.Tapped, out)
    assert (tapped.label, tapped.x, tapped.y, tapped.message_id) == ("Login", 150, 420, 1)
    assert tapped.timestamp == tap.timestamp == T0 + 100
    [swiped] = of(ev.Swiped, out)
    assert (swiped.label, swiped.direction, swiped.message_id) == ("Carousel", "left", 2)
    [entered] = of(ev.MobileInputEntered, out)
    assert (entered.label, entered.message_id) == ("Password", typed.message_id)
    assert "hunter2" not in repr(out)  # the typed value is never kept
    [shown] = of(ev.ViewComponentChanged, out)
    assert (shown.screen_name, shown.view_name, shown.visible) == ("Home", "Banner", False)
    assert shown.message_id == view.message_id
    [recorded] = of(ev.MobileCustomEventRecorded, out)
    assert (recorded.name, recorded.payload, recorded.message_id) == (
        "signup",
        '{"plan":"gold"}',
        custom.message_id,
    )
    [made] = of(ev.MobileRequestMade, out)
    assert (made.url, made.method, made.status, made.duration_ms, made.request_type) == (
        "https://api.example/items",
        "POST",
        404,
        87,
        "request",
    )
    assert (made.request_body, made.response_body) == ('{"body":"q"}', '{"body":"r"}')
    assert made.timestamp == request.timestamp
    [crashed] = of(ev.Crashed, out)
    assert (crashed.name, crashed.reason, crashed.message_id) == (
        "SIGSEGV",
        "bad access",
        crash.message_id,
    )
    [called] = of(ev.MobileGraphQLCalled, out)
    assert (called.operation_name, called.operation_kind, called.message_id) == (
        "GetCart",
        "query",
        gql.message_id,
    )
    issues = of(ev.MobileIssueDetected, out)
    assert [(i.issue_type, i.message_id, i.context_string) for i in issues] == [
        ("bad_request", request.message_id, "https://api.example/items"),
        ("crash", crash.message_id, "bad access"),
    ]
    assert [e.user_id for e in of(ev.UserIdSet, out)] == ["ann"]
    assert [e.anonymous_id for e in of(ev.AnonymousIdSet, out)] == ["anon-1"]
    assert [(e.key, e.value) for e in of(ev.MetadataSet, out)] == [("plan", "gold")]
    # MOBILE.md 5.2 counts taps, swipes and inputs; a crash is an error.
    assert (state.events_count, state.errors_count) == (3, 1)
    assert list(state.issue_types) == ["bad_request", "crash"]
    assert (state.user_id, state.anonymous_id, state.metadata) == (
        "ann",
        "anon-1",
        {"plan": "gold"},
    )
    assert all(
        not e.COUNTED
        for e in out
        if isinstance(e, ev.SessionEvent)
        and not isinstance(e, ev.Tapped | ev.Swiped | ev.MobileInputEntered)
    )
    # Every message is walked (the BatchMeta too); the flush time is the session's last time.
    assert state.messages_walked == 13
    assert state.last_message_ts == s.now


def test_messages_without_a_label_or_with_an_unknown_method_make_no_row() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.tap("")
    s.swipe("")
    s.input("")
    s.request("https://a/", 500, method="BREW")
    records.append(s.batch())
    state, out = apply_all(records)
    assert rows(out) == []
    assert state.events_count == 0


def test_a_batch_is_applied_in_time_order_ties_by_place() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.add(mm.MobileClickEvent(T0 + 300, "third", 0, 0))
    s.add(mm.MobileClickEvent(T0 + 100, "first", 0, 0))
    s.add(mm.MobileClickEvent(T0 + 300, "fourth", 0, 0))
    s.add(mm.MobileClickEvent(T0 + 200, "second", 0, 0))
    records.append(s.wait(400).batch())
    _, out = apply_all(records)
    assert [(t.label, t.message_id) for t in of(ev.Tapped, out)] == [
        ("first", 2),
        ("second", 4),
        ("third", 1),
        ("fourth", 3),
    ]


def test_a_late_copy_of_a_batch_repeats_nothing_and_a_new_one_adds() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.wait(50).tap("A")
    s.wait(50).tap("B")
    first = s.batch()
    s.wait(1_000).tap("C")
    second = s.batch()
    # iOS's lateMessages.dat holds the last batch written, which /i may already have delivered.
    late_copy = attrs.evolve(second, kind=RecordKind.MOBILE_LATE, received_at_ms=T0 + 9_000)
    s.wait(2_000).tap("D")
    late_new = s.batch(kind=RecordKind.MOBILE_LATE)
    state, out = apply_all([*records, first, second, late_copy, first, late_new])
    assert [t.label for t in of(ev.Tapped, out)] == ["A", "B", "C", "D"]
    assert state.events_count == 4
    assert state.applied_index == 4


def test_a_bare_crash_is_applied_once() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.wait(10).tap("Pay")
    records.append(s.batch())
    s.wait(500)
    crash = s.bare_crash("NSRangeException", "index 3 beyond bounds")
    late = attrs.evolve(crash, kind=RecordKind.MOBILE_LATE, received_at_ms=T0 + 60_000)
    state, out = apply_all([*records, crash, late])
    [crashed] = of(ev.Crashed, out)
    assert crashed.message_id == BARE_ID_BASE
    assert crashed.timestamp == s.now
    assert [i.issue_type for i in of(ev.MobileIssueDetected, out)] == ["crash"]
    assert state.errors_count == 1
    # The bare upload has no FirstIndex: it does not move the indices of later batches.
    assert state.applied_index == 1


def test_android_network_calls_read_right() -> None:
    s = MobileScript(SID, platform="android")
    records = [s.start()]
    s.request("https://api.example/x", 301, request='{"body":"in"}', response='{"body":"out"}')
    s.wait(100).tap("After")  # still aligned after the int32 status
    records.append(s.batch())
    # The wire really is Android's: response first, status 00 00 01 2d.
    assert b'\x0e{"body":"out"}\x0d{"body":"in"}\x00\x00\x01\x2d' in records[1].payload
    _, out = apply_all(records)
    [made] = of(ev.MobileRequestMade, out)
    assert (made.status, made.request_body, made.response_body) == (
        301,
        '{"body":"in"}',
        '{"body":"out"}',
    )
    assert [t.label for t in of(ev.Tapped, out)] == ["After"]
    assert not of(ev.MobileIssueDetected, out)  # 301 is not a failure


def test_tap_rage_is_three_taps_each_within_300_ms_settled_at_the_end() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    first = s.wait(100).tap("Buy")
    s.wait(250).tap("Buy")
    s.wait(299).tap("Buy")
    s.wait(200).tap("Buy")
    s.wait(400).tap("Slow")
    s.wait(400).tap("Slow")
    s.wait(400).tap("Slow")  # 400 ms apart: not rage
    records.append(s.batch())
    state, out = apply_all(records)
    issues = of(ev.MobileIssueDetected, out)
    assert [(i.issue_type, i.message_id, i.timestamp, i.context_string) for i in issues] == [
        ("tap_rage", first.message_id, first.timestamp, "Buy")
    ]
    assert json.loads(issues[0].payload) == {"Count": 4}
    # A run still open when the session ends is closed by the end.
    s.wait(5_000)
    s.tap("Close")
    s.wait(10).tap("Close")
    closing = s.wait(10).tap("Close")
    _, more = apply_all([s.batch(flush_ms=0)], state)
    assert not of(ev.MobileIssueDetected, more)
    end: list[ev.DomainEvent] = []
    state.end(99, end)
    assert [(type(e).__name__, getattr(e, "issue_type", "")) for e in end] == [
        ("MobileIssueDetected", "tap_rage"),
        ("SessionEnded", ""),
    ]
    assert end[1].duration_ms == closing.timestamp - T0  # type: ignore[attr-defined]
    # Issues are not events of a mobile session (MOBILE.md 5.2): 10 taps, 10 events.
    assert state.events_count == 10


def test_absurd_times_are_not_times() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.wait(100).tap("ok")
    s.add(mm.MobileClickEvent(T0 + 10 * MAX_CLOCK_AHEAD_MS, "future", 0, 0))
    s.add(mm.MobileClickEvent(0, "zero", 0, 0))
    records.append(s.batch())
    state, out = apply_all(records)
    assert [(t.label, t.timestamp) for t in of(ev.Tapped, out)] == [
        ("ok", T0 + 100),
        ("future", T0 + 100),
        ("zero", T0 + 100),
    ]
    assert state.last_message_ts == T0 + 100


def test_a_bad_batch_is_parked_and_the_session_carries_on() -> None:
    s = MobileScript(SID)
    records = [s.start()]
    s.tap("before")
    good = s.batch()
    truncated = s.raw(good.payload[:-1], received_at=T0 + 100)
    s.wait(200).tap("after")
    state, out = apply_all([*records, good, truncated, s.batch()])
    [parked] = of(ev.RecordParked, out)
    assert (parked.kind, parked.stage) == (RecordKind.MOBILE_BATCH, "engine")
    assert parked.error.startswith("MobileCodecError")
    assert [t.label for t in of(ev.Tapped, out)] == ["before", "after"]
    assert (state.records_parked, state.records_applied) == (1, 3)
    # A start payload that is not one is parked too.
    bad_start = attrs.evolve(s.start(), payload=b"[1]")
    fresh, parked_start = apply_all([bad_start])
    assert of(ev.RecordParked, parked_start) and not fresh.started


def test_replay_without_output_reaches_the_same_state() -> None:
    s = MobileScript(SID, platform="android")
    records = [s.start(user_id="u0")]
    s.wait(10).tap("A")
    s.wait(10).tap("A")
    s.wait(10).tap("A")
    s.metadata("k", "v")
    records.append(s.batch())
    records.append(s.bare_crash("Boom"))
    s.wait(5_000).swipe()
    records.append(s.batch(kind=RecordKind.MOBILE_LATE))
    live, _ = apply_all(records)
    replayed = MobileSessionState(SID)
    for record in commit(records):
        replayed.apply_record(record, None)
    slots = [
        name
        for cls in type(live).__mro__
        for name in getattr(cls, "__slots__", ())
        if not name.startswith("_") and name != "tap_rage"
    ]
    assert {n: getattr(replayed, n) for n in slots} == {n: getattr(live, n) for n in slots}


# -- the actor type in the supervisor ------------------------------------------------------------


async def run(records: list[LogRecord]) -> CollectingSink:
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log), sink=sink, inactivity_timeout_ms=TIMEOUT
    )
    await supervisor.run_until(log, log.head(), chunk_size=2)
    return sink


def ios_session_with_a_late_batch() -> list[LogRecord]:
    s = MobileScript(SID)
    records = [s.start()]
    s.wait(1_000).tap("Login")
    records.append(s.batch())
    records.append(clock_tick(T0 + 400_000))  # ends it
    s.wait(60_000).tap("Later")  # the previous run's last batch, sent at the next app start
    records.append(s.batch(kind=RecordKind.MOBILE_LATE, received_at=T0 + 500_000))
    records.append(clock_tick(T0 + 900_000))  # ends it again
    return commit(records)


def test_the_mobile_type_is_registered_by_session_id() -> None:
    assert DEFAULT_REGISTRY.type_for(RecordKind.MOBILE_START) is MOBILE_ACTOR_TYPE
    assert DEFAULT_REGISTRY.type_for(RecordKind.MOBILE_LATE) is MOBILE_ACTOR_TYPE
    s = MobileScript(SID)
    [start, continued] = commit([s.start(), s.start(continued=True)])
    assert MOBILE_ACTOR_TYPE.is_fresh(start) and not MOBILE_ACTOR_TYPE.is_fresh(continued)
    assert MOBILE_ACTOR_TYPE.key_of(start) == SID and not MOBILE_ACTOR_TYPE.keyed
    assert isinstance(MOBILE_ACTOR_TYPE.new_state(SID, start), MobileSessionState)


async def test_a_late_batch_re_activates_an_ended_session_and_lengthens_it() -> None:
    records = ios_session_with_a_late_batch()
    sink = await run(records)
    ends = sink.of_type(ev.SessionEnded)
    assert [(e.session_id, e.duration_ms, e.position) for e in ends] == [
        (SID, 1_000, 3),
        (SID, 61_000, 5),
    ]
    assert [t.label for t in sink.of_type(ev.Tapped)] == ["Login", "Later"]
    assert len(sink.of_type(ev.SessionStarted)) == 1  # the re-activation replays silently


async def test_a_restart_resumes_live_mobile_sessions() -> None:
    records = ios_session_with_a_late_batch()
    log = MemoryLog(records)
    point = await resume_point(log, 2, TIMEOUT)
    assert point == ResumePoint(
        position=2, clock_ms=records[1].received_at_ms, live_actors=(("mobile", (SID,)),)
    )
    assert await live_sessions_at(log, 2, TIMEOUT) == [SID]
    assert await live_sessions_at(log, 3, TIMEOUT) == []
    # Resumed at 2, the supervisor ends the session at 3 exactly as an uninterrupted run does.
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log), sink=sink, inactivity_timeout_ms=TIMEOUT
    )
    await supervisor.run_until(log, log.head(), resume=point)
    whole = await run(records)
    assert [e for e in whole.events if e.position > 2] == sink.events


async def test_live_session_ids_list_mobile_sessions() -> None:
    s = MobileScript(SID)
    log = MemoryLog(commit([s.start()]))
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log), sink=sink, inactivity_timeout_ms=TIMEOUT
    )
    await supervisor.run_until(log, log.head())
    # run_until leaves live sessions live; its actors are gone once it returns, so ask the log.
    assert await live_sessions_at(log, 1, TIMEOUT) == [SID]


@pytest.mark.parametrize("platform", ["ios", "android"])
async def test_every_shape_of_upload_of_one_session(platform: str) -> None:
    s = MobileScript(SID, platform=platform)
    records = [s.start()]
    s.wait(10).request("https://api.example/a", 500)
    records.append(s.batch())
    records.append(s.bare_crash("Fatal"))
    records.append(s.raw(s.encode([mm.MobileBatchMeta(T0 + 20, 1)]), received_at=T0 + 30))
    sink = await run(commit(records))
    assert [e.issue_type for e in sink.of_type(ev.MobileIssueDetected)] == ["bad_request", "crash"]
    assert not sink.of_type(ev.RecordParked)
