"""Hostile values in accepted records: the session state repairs or clamps them (invariant 8).

The wire's ``uint`` reaches 2**64 - 1 and JSON allows lone surrogates; neither may reach a domain
event, because SQLite can store neither. Absurd message times must not become session times.
"""

from __future__ import annotations

import attrs

from engine.codec import web as codec
from engine.events import (
    INT64_MAX,
    INT64_MIN,
    Clicked,
    DomainEvent,
    IssueDetected,
    RecordParked,
    RequestMade,
    SessionEnded,
    SessionStarted,
    clamp_int64,
    repair_text,
)
from engine.heuristics import ClickRageDetector, Detection
from engine.session_state import MAX_CLOCK_AHEAD_MS, WebSessionState
from engine.start_payload import WebStartPayload
from tests.engine.builders import T0, SessionScript, commit

U64_MAX = 2**64 - 1


def run(records: list, *, end_at: int | None = None) -> tuple[WebSessionState, list[DomainEvent]]:
    state = WebSessionState(records[0].session_id)
    out: list[DomainEvent] = []
    for record in commit(records):
        state.apply_record(record, out)
    if end_at is not None:
        state.end(end_at, out)
    return state, out


def of(kind: type, events: list[DomainEvent]) -> list:
    return [e for e in events if type(e) is kind]


def test_repair_text_and_clamp() -> None:
    assert repair_text("ok é 😀") == "ok é 😀"
    assert repair_text("\ud800") == "\ufffd"
    assert repair_text("a\udfffb\ud83d") == "a\ufffdb\ufffd"
    assert repair_text("\ud83d\ude00") == "😀"  # a split pair is joined, not replaced
    assert [clamp_int64(v) for v in (U64_MAX, 2**63, -(2**70), 5)] == [
        INT64_MAX,
        INT64_MAX,
        INT64_MIN,
        5,
    ]


def test_a_start_with_lone_surrogates_and_huge_numbers_is_repaired() -> None:
    s = SessionScript(3)
    start = s.start(
        user_id="\ud800",
        rev_id="rev\udc00",
        timezone="UTC\udfff",
        referrer="\ud800x",
        screen_width=U64_MAX,
        js_heap_size_limit=-(2**64),
    )
    payload = WebStartPayload.from_bytes(start.payload)
    assert (payload.user_id, payload.rev_id, payload.timezone, payload.referrer) == (
        "\ufffd",
        "rev\ufffd",
        "UTC\ufffd",
        "\ufffdx",
    )
    assert (payload.screen_width, payload.js_heap_size_limit) == (INT64_MAX, INT64_MIN)
    assert payload.is_snippet is False  # a bool stays a bool
    state, out = run([start])
    [started] = of(SessionStarted, out)
    assert started.start.user_id == "\ufffd" and state.user_id == "\ufffd"
    assert not of(RecordParked, out)


def test_huge_integers_of_a_batch_are_clamped() -> None:
    s = SessionScript(4)
    start = s.start()
    s.visit("http://shop/")
    s.add(codec.MouseClick(1, U64_MAX, "big", "#b", U64_MAX, 3))
    s.add(
        codec.NetworkRequest(
            type="fetch",
            method="GET",
            url="http://api/",
            request="",
            response="",
            status=U64_MAX,
            timestamp=s.now,
            duration=U64_MAX,
            transferred_body_size=U64_MAX,
        )
    )
    _, out = run([start, s.batch()])
    [click] = of(Clicked, out)
    assert (click.hesitation_ms, click.normalized_x, click.normalized_y) == (
        INT64_MAX,
        INT64_MAX,
        3,
    )
    [request] = of(RequestMade, out)
    assert (request.status, request.duration_ms, request.transferred_size) == (INT64_MAX,) * 3
    assert request.timestamp == s.now
    assert not of(RecordParked, out)


def test_absurd_times_are_not_taken_as_times() -> None:
    s = SessionScript(5)
    start = s.start()
    s.visit("http://shop/")
    s.add(codec.Timestamp(U64_MAX))  # far beyond int64
    s.add(codec.MouseClick(1, 5, "after", "#a", 1, 1))
    s.add(codec.Timestamp(T0 + 10 * MAX_CLOCK_AHEAD_MS))  # fits, but days after the receipt
    s.add(codec.IssueEvent(0, 2**63 - 1, "custom", "", "", "", ""))
    batch = s.batch()
    # A header whose time is absurd and whose page number would overflow the message id.
    header = codec.BatchMetadata(1, U64_MAX, U64_MAX, 2**63 - 1, "http://shop/")
    hostile = attrs.evolve(
        batch,
        payload=codec.encode_batch(
            [header, codec.MouseClick(2, 5, "in hostile header", "#h", 1, 1)]
        ),
    )
    state, out = run([start, batch, hostile], end_at=99)
    times = [e.timestamp for e in out]
    assert all(T0 <= t <= T0 + 1_000 for t in times), times
    assert all(0 <= e.message_id <= INT64_MAX for e in out if isinstance(e, Clicked))
    assert of(IssueDetected, out)[0].timestamp <= T0 + 1_000
    [ended] = of(SessionEnded, out)
    assert 0 <= ended.duration_ms <= 1_000 and state.last_message_ts <= T0 + 1_000


class _BuggyClickRage(ClickRageDetector):
    """A heuristic with a bug in its end-of-session flush (what an end() failure looks like)."""

    def flush(self) -> Detection | None:
        raise ZeroDivisionError("bug in the detector")


def test_a_failing_end_is_parked_and_the_session_still_ends() -> None:
    s = SessionScript(6, tracker_version="18.0.0")  # server-side heuristics run
    start = s.start()
    s.visit("http://shop/")
    state = WebSessionState(6)
    out: list[DomainEvent] = []
    for record in commit([start, s.batch()]):
        state.apply_record(record, out)
    state.click_rage = _BuggyClickRage()
    state.end(42, out)
    [parked] = of(RecordParked, out)
    assert (parked.position, parked.stage, parked.error) == (
        42,
        "engine:end",
        "ZeroDivisionError: bug in the detector",
    )
    assert of(SessionEnded, out) and state.ended
