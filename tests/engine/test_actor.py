"""Session state (record -> events) and the session actor task.

Covers ``engine.session_state`` and ``engine.actor``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

import attrs
import trio

from engine.actor import (
    Countdown,
    Deliver,
    End,
    EngineCounters,
    Flush,
    SessionActor,
    replay_history,
)
from engine.codec.web import decode_batch, decode_selected, iter_messages
from engine.events import (
    AnonymousIdSet,
    Clicked,
    CustomEventRecorded,
    DomainEvent,
    ErrorRaised,
    GraphQLCalled,
    InputChanged,
    IssueDetected,
    MetadataSet,
    PageTimingsReported,
    PageTitleChanged,
    PageVisited,
    RecordParked,
    RequestMade,
    SessionEnded,
    SessionStarted,
    StateActionDispatched,
    TabVisibilityChanged,
    UserIdSet,
    WebVitalReported,
)
from engine.session_state import BASE_WANTED, WebSessionState, _decode_with_reactions, _Reaction
from engine.start_info import StartInfo
from storage.records import LogRecord, RecordKind
from tests.engine.builders import T0, MemoryLog, SessionScript, commit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "real-tracker"
TIMEOUT = 150_000


class SessionIds(TypedDict):
    """The ids every event of one session carries, for ``**`` into the event classes."""

    session_id: int
    project_id: int


def run_state(
    records: list[LogRecord], *, end_at: int | None = None
) -> tuple[WebSessionState, list[DomainEvent]]:
    state = WebSessionState(records[0].session_id)
    out: list[DomainEvent] = []
    for record in records:
        state.apply_record(record, out)
    if end_at is not None:
        state.end(end_at, out)
    return state, out


def test_a_scripted_session_gives_exactly_these_events() -> None:
    s = SessionScript(11, tracker_version="18.2.0", delay=16)
    start = s.start(user_os="Linux", user_browser="Chrome", screen_width=1280, screen_height=800)
    s.wait(100)
    home = s.visit("http://shop/", title="Shop", referrer="http://search/")
    timing = s.load_timing(
        request_start=5,
        response_start=40,
        response_end=45,
        load_event_end=210,
        first_contentful_paint=31_000,
    )
    render = s.render_timing(300, 400, 40_000)
    vital = s.web_vital("LCP", "228")
    uid = s.user_id("user-42")
    meta = s.metadata("plan", "pro")
    s.metadata("plan", "pro")  # re-sent: no second event
    s.user_id("user-42")
    s.wait(50)
    sign_in = s.click("Sign in", selector="#identify")
    s.wait(10)
    s.dom_change()  # the click did something
    s.wait(200)
    name = s.input("Name", "Ada")
    s.wait(10)
    checkout = s.custom_event("checkout", '{"items":2}')
    s.wait(10)
    boom = s.js_exception("TypeError", "x is undefined", payload='[{"fileName":"app.js"}]')
    s.wait(10)
    missing = s.request(
        "http://api/missing", status=404, method="POST", duration=11, started=s.now - 16 - 11
    )
    b1 = s.batch()

    s.wait(1000)
    rage = s.rage_click("Buy", count=4, gap_ms=100, selector="#buy")
    s.wait(100)
    s.dom_change()
    s.wait(2000)
    step2 = s.visit("http://shop/step-2", title="Shop", loaded=False)
    s.wait(10)
    gql = s.graphql("Cart")
    action = s.state_action("cart/add")
    anon = s.anonymous_id("anon-1")
    hidden = s.visibility(True)
    b2 = s.batch()

    s.wait(100)
    dead = s.click("Dead link", selector="a.dead")
    s.wait(1500)
    s.mouse_move()
    b3 = s.batch()
    records = commit([start, b1, b2, b3])
    state, events = run_state(records, end_at=99)

    head: SessionIds = {"session_id": 11, "project_id": 1}
    assert events == [
        SessionStarted(
            position=1,
            timestamp=T0,
            start=StartInfo(
                tracker_version="18.2.0",
                user_os="Linux",
                user_browser="Chrome",
                screen_width=1280,
                screen_height=800,
            ),
            **head,
        ),
        PageVisited(
            position=2,
            timestamp=home.timestamp,
            message_id=home.message_id,
            page_url="http://shop/",
            url="http://shop/",
            referrer="http://search/",
            title="Shop",
            loaded=True,
            navigation_start=home.timestamp - 500,
            **head,
        ),
        PageTitleChanged(
            position=2, timestamp=home.timestamp, url="http://shop/", title="Shop", **head
        ),
        PageTimingsReported(
            position=2,
            timestamp=timing.timestamp,
            page_message_id=home.message_id,
            request_start=5,
            response_start=40,
            response_end=45,
            dom_content_loaded_event_start=0,
            dom_content_loaded_event_end=0,
            load_event_start=0,
            load_event_end=210,
            first_paint=0,
            first_contentful_paint=None,
            **head,
        ),
        PageTimingsReported(
            position=2,
            timestamp=render.timestamp,
            page_message_id=home.message_id,
            speed_index=300,
            visually_complete=400,
            time_to_interactive=40_000,
            **head,
        ),
        WebVitalReported(
            position=2,
            timestamp=vital.timestamp,
            page_message_id=home.message_id,
            name="LCP",
            value="228",
            **head,
        ),
        UserIdSet(position=2, timestamp=uid.timestamp, user_id="user-42", **head),
        MetadataSet(position=2, timestamp=meta.timestamp, key="plan", value="pro", **head),
        Clicked(
            position=2,
            timestamp=sign_in.timestamp,
            message_id=sign_in.message_id,
            page_url="http://shop/",
            label="Sign in",
            selector="#identify",
            hesitation_ms=5,
            normalized_x=430,
            normalized_y=1200,
            **head,
        ),
        InputChanged(
            position=2,
            timestamp=name.timestamp,
            message_id=name.message_id,
            page_url="http://shop/",
            label="Name",
            value="Ada",
            value_masked=False,
            duration_ms=40,
            hesitation_ms=3,
            **head,
        ),
        CustomEventRecorded(
            position=2,
            timestamp=checkout.timestamp,
            message_id=checkout.message_id,
            page_url="http://shop/",
            name="checkout",
            payload='{"items":2}',
            **head,
        ),
        ErrorRaised(
            position=2,
            timestamp=boom.timestamp,
            message_id=boom.message_id,
            page_url="http://shop/",
            name="TypeError",
            message="x is undefined",
            payload='[{"fileName":"app.js"}]',
            **head,
        ),
        IssueDetected(
            position=2,
            timestamp=boom.timestamp,
            message_id=boom.message_id,
            page_url="http://shop/",
            issue_type="js_exception",
            context_string="x is undefined",
            context="TypeError",
            **head,
        ),
        RequestMade(
            position=2,
            timestamp=missing.timestamp - 11,
            message_id=missing.message_id,
            page_url="http://shop/",
            url="http://api/missing",
            method="POST",
            status=404,
            duration_ms=11,
            request_type="fetch",
            request_body='{"headers":{},"body":null}',
            response_body='{"headers":{},"body":null}',
            transferred_size=33,
            **head,
        ),
        IssueDetected(
            position=2,
            timestamp=missing.timestamp - 11,
            message_id=missing.message_id,
            page_url="http://shop/",
            issue_type="bad_request",
            context_string="http://api/missing",
            context="POST",
            **head,
        ),
        *[
            Clicked(
                position=3,
                timestamp=m.timestamp,
                message_id=m.message_id,
                page_url="http://shop/",
                label="Buy",
                selector="#buy",
                hesitation_ms=5,
                normalized_x=430,
                normalized_y=1200,
                **head,
            )
            for m in rage
        ],
        PageVisited(
            position=3,
            timestamp=step2.timestamp,
            message_id=step2.message_id,
            page_url="http://shop/step-2",
            url="http://shop/step-2",
            title="Shop",
            loaded=False,
            **head,
        ),
        PageTitleChanged(
            position=3, timestamp=step2.timestamp, url="http://shop/step-2", title="Shop", **head
        ),
        GraphQLCalled(
            position=3,
            timestamp=gql.timestamp,
            message_id=gql.message_id,
            page_url="http://shop/step-2",
            operation_kind="query",
            operation_name="Cart",
            variables="{}",
            response="{}",
            duration_ms=7,
            **head,
        ),
        StateActionDispatched(
            position=3,
            timestamp=action.timestamp,
            message_id=action.message_id,
            page_url="http://shop/step-2",
            action_type="cart/add",
            **head,
        ),
        AnonymousIdSet(position=3, timestamp=anon.timestamp, anonymous_id="anon-1", **head),
        TabVisibilityChanged(position=3, timestamp=hidden.timestamp, active=False, **head),
        # The burst is over once the batch's time is 300 ms past its last click.
        IssueDetected(
            position=3,
            timestamp=rage[0].timestamp,
            message_id=rage[0].message_id,
            page_url="http://shop/",
            issue_type="click_rage",
            context_string="Buy",
            context="#buy",
            payload='{"Count":4}',
            **head,
        ),
        Clicked(
            position=4,
            timestamp=dead.timestamp,
            message_id=dead.message_id,
            page_url="http://shop/step-2",
            label="Dead link",
            selector="a.dead",
            hesitation_ms=5,
            normalized_x=430,
            normalized_y=1200,
            **head,
        ),
        IssueDetected(
            position=4,
            timestamp=dead.timestamp,
            message_id=dead.message_id,
            page_url="http://shop/step-2",
            issue_type="dead_click",
            context_string="Dead link",
            context="a.dead",
            **head,
        ),
        SessionEnded(position=99, timestamp=s.now, duration_ms=s.now - T0, **head),
    ]
    assert state.pages_count == 2
    assert state.errors_count == 1
    assert list(state.issue_types) == ["js_exception", "bad_request", "click_rage", "dead_click"]
    assert state.user_id == "user-42" and state.anonymous_id == "anon-1"
    assert state.metadata == {"plan": "pro"}
    assert state.current_url == "http://shop/step-2"
    assert state.visible is False
    assert state.last_message_ts == s.now and state.last_record_ms == records[-1].received_at_ms


def test_tracker_19_click_rage_comes_only_from_the_tracker() -> None:
    s = SessionScript(12, tracker_version="19.0.1")
    start = s.start()
    s.visit("http://shop/")
    rage = s.rage_click("Buy", count=3, gap_ms=50)
    s.issue_event(
        "click_rage",
        context_string="Buy",
        context="#buy",
        payload='{"Count":3}',
        timestamp=rage[0].timestamp,
    )
    s.wait(5000)  # and a click nothing reacted to: the tracker would have said so
    s.click("Nothing")
    s.wait(5000)
    s.mouse_move()
    state, events = run_state(commit([start, s.batch()]), end_at=9)
    issues = [e for e in events if isinstance(e, IssueDetected)]
    assert [(i.issue_type, i.timestamp, i.payload) for i in issues] == [
        ("click_rage", rage[0].timestamp, '{"Count":3}')
    ]
    assert not state.server_heuristics


def test_older_trackers_get_server_side_click_rage_once() -> None:
    s = SessionScript(13, tracker_version="18.0.17")
    start = s.start()
    s.visit("http://shop/")
    rage = s.rage_click("Buy", count=3, gap_ms=50)
    state, events = run_state(commit([start, s.batch()]), end_at=9)
    issues = [e for e in events if isinstance(e, IssueDetected)]
    # Settled at session end (the batch ended right after the burst).
    assert [(i.issue_type, i.position, i.message_id, i.payload) for i in issues] == [
        ("click_rage", 9, rage[0].message_id, '{"Count":3}')
    ]
    assert state.server_heuristics


def test_tracker_issues_custom_issues_and_thrashing_are_issues() -> None:
    s = SessionScript(14)
    start = s.start()
    s.visit("http://shop/")
    cpu = s.issue_event(
        "cpu", context_string="OpenReplay tracker capture", payload='{"Duration":6000}'
    )
    mine = s.custom_issue("payment failed", '{"code":3}')
    thrash = s.mouse_thrashing()
    _, events = run_state(commit([start, s.batch()]))
    issues = [e for e in events if isinstance(e, IssueDetected)]
    assert [
        (i.issue_type, i.message_id, i.context_string, i.payload, i.page_url) for i in issues
    ] == [
        ("cpu", cpu.message_id, "OpenReplay tracker capture", '{"Duration":6000}', "http://shop/"),
        ("custom", mine.message_id, "payment failed", '{"code":3}', "http://shop/"),
        ("mouse_thrashing", thrash.message_id, "", "", "http://shop/"),
    ]


def test_clicks_and_inputs_without_label_are_not_events() -> None:
    s = SessionScript(15)
    start = s.start()
    s.click("")
    s.input("", "secret")
    _, events = run_state(commit([start, s.batch()]))
    assert [type(e) for e in events] == [SessionStarted]


def test_timings_go_to_the_last_loaded_page_even_after_an_spa_navigation() -> None:
    s = SessionScript(16)
    start = s.start()
    home = s.visit("http://shop/")
    s.wait(10)
    s.visit("http://shop/cart", loaded=False)
    s.load_timing(request_start=1)
    s.web_vital("CLS", "0.01")
    _, events = run_state(commit([start, s.batch()]))
    pages = {
        e.page_message_id for e in events if isinstance(e, (PageTimingsReported, WebVitalReported))
    }
    assert pages == {home.message_id}


def test_continued_start_starts_nothing_for_a_known_session_but_starts_an_unknown_one() -> None:
    s = SessionScript(17)
    first = s.start()
    s.visit("http://shop/")
    again = s.start(continued=True, received_at=T0 + 5000)
    _, events = run_state(commit([first, s.batch(), again]))
    assert [type(e) for e in events].count(SessionStarted) == 1

    _, events = run_state(commit([SessionScript(18).start(continued=True)]))
    assert [type(e) for e in events] == [SessionStarted]


def test_an_undecodable_record_is_parked_and_the_session_carries_on() -> None:
    s = SessionScript(19)
    start = s.start()
    s.visit("http://shop/")
    good = s.batch()
    broken = s.raw_batch(good.payload[:-3], received_at=T0 + 10)  # truncated last message
    s.wait(10)
    s.click("After")
    records = commit([start, broken, s.batch()])
    state, events = run_state(records)
    parked = [e for e in events if isinstance(e, RecordParked)]
    assert len(parked) == 1
    assert parked[0].position == 2 and parked[0].kind == int(RecordKind.WEB_BATCH)
    assert parked[0].timestamp == T0 + 10 and parked[0].error.startswith("CodecError")
    assert state.pages_count == 0  # nothing of the broken record was applied
    assert state.records_parked == 1 and state.records_applied == 2
    assert [e.label for e in events if isinstance(e, Clicked)] == ["After"]


def test_a_bad_start_payload_is_parked() -> None:
    record = LogRecord(
        position=1,
        session_id=20,
        project_id=1,
        kind=RecordKind.WEB_START,
        received_at_ms=T0,
        payload=b"{not json",
    )
    state, events = run_state([record])
    assert [type(e) for e in events] == [RecordParked]
    assert not state.started


def build_long_session(session_id: int, tracker_version: str) -> list[LogRecord]:
    s = SessionScript(session_id, tracker_version=tracker_version)
    records = [s.start()]
    s.visit("http://shop/")
    s.user_id("u1")
    s.rage_click("Buy", count=2, gap_ms=100)
    records.append(s.batch())
    s.wait(100)
    s.rage_click("Buy", count=2, gap_ms=100)  # continues the burst across batches
    s.load_timing(request_start=3)
    records.append(s.batch())
    s.wait(200_000)  # long silence: the session ended in between
    s.user_id("u1")
    s.click("Late")
    s.wait(2000)
    s.js_exception("Error", "late")
    records.append(s.batch())
    return commit(records)


def test_replay_then_continue_equals_one_uninterrupted_run() -> None:
    for version in ("18.2.0", "19.0.1"):
        records = build_long_session(21, version)
        # Uninterrupted: ends where the supervisor would (gap > timeout before the last record).
        whole = WebSessionState(21)
        expected: list[DomainEvent] = []
        end_events: list[DomainEvent] = []
        for i, record in enumerate(records):
            if i == 3:
                whole.end(record.position, end_events)
                expected.extend(end_events)
            whole.apply_record(record, expected)
        # For the older tracker the end settles the burst still open across the two batches.
        settled = [IssueDetected] if version == "18.2.0" else []
        assert [type(e) for e in end_events] == [*settled, SessionEnded]
        for k in range(len(records) + 1):
            # A new incarnation after record k-1: at k == 3 it is the re-activation by the late
            # batch (its predecessor emitted the end); before that, a restart.
            resumed = WebSessionState(21)
            replay_history(
                resumed, records[:k], inactivity_timeout_ms=TIMEOUT, ended_after=(k == 3)
            )
            out: list[DomainEvent] = []
            for i in range(k, len(records)):
                if i == 3 and k < 3:
                    resumed.end(records[i].position, out)
                resumed.apply_record(records[i], out)
            after = records[k - 1].position if k else 0
            tail = [e for e in expected if e.position > after]
            if k == 3:
                tail = [e for e in tail if e not in end_events]
            assert out == tail
            assert resumed.pages_count == whole.pages_count
            assert resumed.issue_types == whole.issue_types


def test_the_real_tracker_batches_give_the_scenario_events() -> None:
    s = SessionScript(22, tracker_version="19.0.1", start_ms=1_795_447_246_000)
    records = commit(
        [
            s.start(),
            s.raw_batch(
                (FIXTURES / "shop-page0-batch1.bin").read_bytes(), received_at=1_795_447_250_000
            ),
            s.raw_batch(
                (FIXTURES / "shop-page1-batch1.bin").read_bytes(), received_at=1_795_447_251_000
            ),
        ]
    )
    state, events = run_state(records)
    assert not [e for e in events if isinstance(e, RecordParked)]
    # (The capture's server port changes when the fixtures are re-made: compare paths.)
    assert [urlsplit(e.url).path for e in events if isinstance(e, PageVisited)] == [
        "/index.html",
        "/checkout/step-2",
        "/page2.html",
    ]
    issues = [(e.issue_type, e.context_string) for e in events if isinstance(e, IssueDetected)]
    assert [(kind, text.split("/", 3)[-1]) for kind, text in issues] == [
        ("click_rage", "Rage button"),
        ("js_exception", "e2e boom: checkout exploded"),
        ("bad_request", "api/missing-thing?q=1"),
    ]
    assert [e.label for e in events if isinstance(e, Clicked)][:3] == [
        "Sign in",
        "Add to cart",
        "Checkout",
    ]
    assert [e.name for e in events if isinstance(e, CustomEventRecorded)] == ["checkout"]
    inputs = [(e.label, e.value, e.value_masked) for e in events if isinstance(e, InputChanged)]
    assert ("#secret", "", True) in inputs  # the password never left the browser
    assert state.user_id == "user-42" and state.metadata == {"plan": "pro"}
    # Page 1's messages are numbered on page 1.
    assert all(
        e.message_id >> 32 == 1 for e in events if isinstance(e, Clicked) and e.position == 3
    )


async def test_actor_task_replays_history_then_drains_its_mailbox() -> None:
    records = build_long_session(23, "18.2.0")
    log = MemoryLog(records)

    async def history(session_id: int, before: int) -> list[LogRecord]:
        return log.read_session(session_id, before)

    counters = EngineCounters()
    actor = SessionActor(23, mailbox_size=2, counters=counters)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: actor.run(
                history=history,
                replay_before=4,
                ended_after=True,
                inactivity_timeout_ms=TIMEOUT,
                task_status=task_status,
            )
        )
        assert counters.replayed_records == 3
        assert actor.last_record_ms == records[2].received_at_ms
        assert isinstance(actor.state, WebSessionState)
        assert actor.state.ended and actor.state.user_id == "u1"
        late: list[DomainEvent] = []
        end: list[DomainEvent] = []
        barrier = Countdown(1)
        await actor.send.send(Deliver(records[3], late))
        await actor.send.send(End(50, end))
        await actor.send.send(Flush(barrier))
        await barrier.event.wait()
        actor.send.close()
    # No second UserIdSet: the replayed state already knew "u1".
    assert [type(e) for e in late] == [Clicked, ErrorRaised, IssueDetected, IssueDetected]
    assert [e.issue_type for e in late if isinstance(e, IssueDetected)] == [
        "js_exception",
        "dead_click",
    ]
    assert [type(e) for e in end] == [SessionEnded]
    assert counters.parked_records == 0


def test_old_tracker_batches_decode_the_same_messages_and_see_dom_changes_by_frame() -> None:
    for name in ("shop-page0-batch1.bin", "shop-page1-batch1.bin"):
        data = (FIXTURES / name).read_bytes()
        seen, count = _decode_with_reactions(data)
        decoded = [(i, m) for i, m in seen if not isinstance(m, _Reaction)]
        assert decoded == list(iter_messages(data, BASE_WANTED))
        assert count == len(decode_batch(data))  # every message walked is counted
        marks = [i for i, m in seen if isinstance(m, _Reaction)]
        assert marks  # the DOM snapshot
        # One marker per run of DOM frames: never two in a row.
        kinds = [isinstance(m, _Reaction) for _, m in seen]
        assert not any(a and b for a, b in itertools.pairwise(kinds))


def test_the_same_batches_give_the_same_events_whoever_runs_the_click_detectors() -> None:
    events = {}
    for version in ("18.2.0", "19.0.1"):
        s = SessionScript(24, tracker_version=version, start_ms=1_795_447_246_000)
        records = commit(
            [
                s.start(),
                s.raw_batch(
                    (FIXTURES / "shop-page0-batch1.bin").read_bytes(), received_at=1_795_447_250_000
                ),
            ]
        )
        _, out = run_state(records)
        events[version] = [
            e
            for e in out
            if not (isinstance(e, IssueDetected) and e.issue_type in ("click_rage", "dead_click"))
        ]
    assert events["18.2.0"] == [
        attrs.evolve(e, start=attrs.evolve(e.start, tracker_version="18.2.0"))
        if isinstance(e, SessionStarted)
        else e
        for e in events["19.0.1"]
    ]


def test_message_count_covers_decoded_and_skipped_messages() -> None:
    data = (FIXTURES / "shop-page0-batch1.bin").read_bytes()
    _, count = decode_selected(data, BASE_WANTED)
    assert count == len(decode_batch(data)) > len(list(iter_messages(data, BASE_WANTED)))
