"""Mobile sessions from the log to the public answers, below HTTP: MOBILE_* records appended to a
real SQLite ``EventLog``, the engine supervisor into the projector, then read back through the
``ProjectionReader`` and served as public v1 JSON (``event_json``). An iOS- and an Android-shaped
session, with a late batch after the end, a bare crash upload and the Android 105 quirk."""

from __future__ import annotations

from pathlib import Path

import trio

from api.public_v1 import event_json
from engine.supervisor import Supervisor, history_from_reader
from projections.live_sessions import LiveSessions
from projections.pipeline import Projector
from projections.reader import ProjectionReader
from projections.sessions import SessionRow
from storage.log import EventLog, LogReader
from storage.records import NewRecord, RecordKind
from tests.engine.builders import T0, clock_tick
from tests.engine.mobile_builders import MobileScript

from .test_rebuild import TIMEOUT_MS, append_all, projections_of

IOS, ANDROID = 501, 502


def ios_session() -> list[NewRecord]:
    s = MobileScript(IOS, project_id=1, platform="ios")
    records = [s.start()]
    s.wait(100).view("Home", "Banner")
    s.wait(100).tap("Login", 150, 420)
    s.wait(100).tap("Login", 151, 421)
    s.wait(100).tap("Login", 150, 422)  # tap rage
    s.input("Password", "hunter2")
    s.user_id("ann@example.com")
    s.metadata("plan", "gold")
    records.append(s.batch())
    s.wait(1_000).graphql("GetCart")
    s.custom("checkout", '{"items":2}')
    records.append(s.batch())
    records.append(s.wait(500).bare_crash("NSRangeException", "index 3 beyond bounds"))
    records.append(clock_tick(T0 + 60_000))  # past the 10 s timeout: the session ends
    # The previous run's last batch, at the next app start (/late): re-activates the session.
    s.wait(2_000).swipe("Carousel", "left")
    records.append(s.batch(kind=RecordKind.MOBILE_LATE, received_at=T0 + 70_000))
    return records


def android_session() -> list[NewRecord]:
    s = MobileScript(ANDROID, project_id=1, platform="android", start_ms=T0 + 1_000)
    records = [s.start(user_device_type="tablet")]
    s.wait(50).request("https://api.example/pay", 404, method="POST")
    s.wait(50).tap("Retry")
    records.append(s.batch())
    return records


async def scenario(
    path: Path,
) -> tuple[list, list, SessionRow | None, SessionRow | None, LiveSessions]:
    records = sorted(ios_session() + android_session(), key=lambda r: r.received_at_ms)
    records.append(clock_tick(T0 + 200_000))
    await append_all(path, records)
    live = LiveSessions()
    source, history = LogReader(path), LogReader(path)
    try:
        async with Projector(projections_of(path), live=live) as projector:
            supervisor = Supervisor(
                history=history_from_reader(history),
                sink=projector.sink,
                inactivity_timeout_ms=TIMEOUT_MS,
            )
            await supervisor.run_until(source, source.head(), chunk_size=3)
    finally:
        source.close()
        history.close()
    reader = ProjectionReader(projections_of(path))
    try:
        ios_events = [event_json(r) for r in await reader.session_events(1, IOS)]
        android_events = [event_json(r) for r in await reader.session_events(1, ANDROID)]
        ios_row = await reader.session(1, IOS)
        android_row = await reader.session(1, ANDROID)
    finally:
        reader.close()
    return ios_events, android_events, ios_row, android_row, live


def test_mobile_sessions_come_back_as_events_and_session_rows(fresh_db_path: Path) -> None:
    ios_events, android_events, ios_row, android_row, live = trio.run(scenario, fresh_db_path)
    assert [
        (e["type"], e.get("label") or e.get("name") or e.get("issueType")) for e in ios_events
    ] == [
        ("VIEW", None),
        ("ISSUE", "tap_rage"),  # at its first tap, same message id: by type
        ("TAP", "Login"),
        ("TAP", "Login"),
        ("TAP", "Login"),
        ("INPUT", "Password"),
        ("GRAPHQL", "GetCart"),
        ("CUSTOM", "checkout"),
        ("CRASH", "NSRangeException"),
        ("ISSUE", "crash"),
        ("SWIPE", "Carousel"),
    ]
    view, tap = ios_events[0], ios_events[2]
    assert (view["screenName"], view["viewName"], view["visible"]) == ("Home", "Banner", True)
    assert (tap["x"], tap["y"], tap["timestamp"]) == (150, 420, T0 + 200)
    assert ios_events[1]["payload"] == {"Count": 3}
    assert ios_events[5]["value"] is None  # never the typed value
    assert ios_events[7]["payload"] == {"items": 2}
    crash = ios_events[8]
    assert (crash["reason"], crash["stacktrace"]) == (
        "index 3 beyond bounds",
        "0 App 0x1\n1 App 0x2",
    )
    assert ios_events[10]["direction"] == "left"

    assert ios_row is not None and android_row is not None
    assert (ios_row.platform, ios_row.user_os, ios_row.user_os_version) == ("ios", "IOS", "17.2")
    assert (ios_row.user_device, ios_row.user_device_type) == ("iPhone 14 Plus", "mobile")
    assert (ios_row.user_id, ios_row.metadata) == ("ann@example.com", {"plan": "gold"})
    # 3 taps, 1 input, then the late swipe; the end after the late batch lengthened it.
    assert (ios_row.events_count, ios_row.errors_count) == (5, 1)
    assert ios_row.duration == 1_400 + 500 + 2_000
    assert ios_row.issue_types == ("crash", "tap_rage")

    assert [(e["type"], e.get("status"), e.get("success")) for e in android_events] == [
        ("ISSUE", None, None),
        ("REQUEST", 404, False),
        ("TAP", None, None),
    ]
    assert (android_events[1]["method"], android_events[1]["url"]) == (
        "POST",
        "https://api.example/pay",
    )
    assert android_events[0]["issueType"] == "bad_request"
    assert (android_row.platform, android_row.user_os, android_row.user_device_type) == (
        "android",
        "Android",
        "tablet",
    )
    assert (android_row.events_count, android_row.duration) == (1, 100)
    assert len(live) == 0  # both ended by the last tick


async def test_assist_lists_live_mobile_sessions(fresh_db_path: Path) -> None:
    s = MobileScript(IOS, project_id=1, platform="ios")
    records = [s.start()]
    s.wait(10).tap("Go")
    records.append(s.batch())
    log = EventLog(fresh_db_path)
    live = LiveSessions()
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        projector = await nursery.start(Projector(projections_of(fresh_db_path), live=live).run)
        history = LogReader(fresh_db_path)
        supervisor = Supervisor(
            history=history_from_reader(history),
            sink=projector.sink,
            inactivity_timeout_ms=TIMEOUT_MS,
        )
        nursery.start_soon(supervisor.run, log.tail(0, batch_size=2))
        for record in records:
            await log.append(record)
        with trio.fail_after(10):
            while projector.statistics.upto_position < len(records):
                await trio.sleep(0.01)
        assert supervisor.live_session_ids() == [IOS]
        session = live.get(1, IOS)
        assert session is not None
        assert (session.start.platform, session.start.user_os) == ("ios", "IOS")
        nursery.cancel_scope.cancel()
    history.close()
