"""The sessions projection: one row per session, folded from lifecycle and session events."""

from __future__ import annotations

import sqlite3

from engine.events import DomainEvent
from projections import sessions
from storage.sqlite import atomic

from .factories import SessionScript, positioned


def apply(conn: sqlite3.Connection, events: list) -> None:
    with atomic(conn):
        sessions.apply(conn, events)


def test_start_fields_and_counters(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=7, project_id=3)
    page = s.page_visit()
    apply(
        conn,
        positioned(
            [
                [
                    s.started(
                        user_os="Mac OS X",
                        user_browser="Firefox",
                        user_country="FR",
                        screen_width=1280,
                    )
                ],
                [
                    page,
                    s.click(),
                    s.issue("click_rage", message_id=page.message_id),
                    s.error(),
                    s.input(),
                ],
                [s.timings(page.message_id, first_paint=12), s.custom(), s.request()],
            ]
        ),
    )
    row = sessions.get_session(conn, 3, 7)
    assert row is not None
    assert (row.user_os, row.user_browser, row.user_country, row.screen_width) == (
        "Mac OS X",
        "Firefox",
        "FR",
        1280,
    )
    assert row.start_ts == s.start
    assert row.live and row.duration is None and row.end_ts is None
    # LOCATION, CLICK, ISSUE, ERROR, INPUT, CUSTOM, REQUEST: timings make no row.
    assert (row.pages_count, row.events_count, row.errors_count) == (1, 7, 1)
    assert row.issue_types == ("click_rage",)
    assert row.issue_score == sessions.ISSUE_WEIGHTS["click_rage"]
    assert (row.first_position, row.last_position) == (1, 3)
    assert sessions.get_session(conn, 4, 7) is None  # another project's id does not see it


def test_counters_and_sets_accumulate_over_calls(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=1)
    apply(conn, positioned([[s.started()], [s.issue("dead_click"), s.metadata("plan", "free")]]))
    apply(
        conn,
        positioned(
            [
                [s.issue("click_rage"), s.issue("dead_click"), s.metadata("plan", "pro")],
                [s.metadata("team", "a")],
            ],
            first=3,
        ),
    )
    row = sessions.get_session(conn, 1, 1)
    assert row is not None
    assert row.issue_types == ("click_rage", "dead_click")
    assert (
        row.issue_score
        == 2 * sessions.ISSUE_WEIGHTS["dead_click"] + sessions.ISSUE_WEIGHTS["click_rage"]
    )
    assert row.metadata == {"plan": "pro", "team": "a"}
    assert row.events_count == 3
    assert row.last_position == 4


def test_user_ids_titles_and_end(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=2)
    apply(
        conn,
        positioned(
            [
                [s.started(user_id="first")],
                [s.user_id("second"), s.anonymous_id("anon-1"), s.title("Cart")],
                [s.title("Checkout"), s.ended()],
            ]
        ),
    )
    row = sessions.get_session(conn, 1, 2)
    assert row is not None
    assert (row.user_id, row.user_anonymous_id, row.page_title) == ("second", "anon-1", "Checkout")
    assert row.duration == s.now - s.start and row.end_ts == s.now
    assert not row.live


def test_a_start_without_user_id_keeps_the_one_set_before(conn: sqlite3.Connection) -> None:
    # A continued session starts again (new tab) after setUserID: the id stays.
    s = SessionScript(session_id=2)
    apply(
        conn,
        positioned([[s.started(user_id=None)], [s.user_id("kept")], [s.started(user_id=None)]]),
    )
    row = sessions.get_session(conn, 1, 2)
    assert row is not None and row.user_id == "kept"


def test_late_batch_after_end_then_a_longer_end(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=5)
    apply(conn, positioned([[s.started()], [s.click()], [s.ended()]]))
    first = sessions.get_session(conn, 1, 5)
    apply(conn, positioned([[s.click(), s.click()], [s.ended()]], first=4))
    second = sessions.get_session(conn, 1, 5)
    assert first is not None and second is not None
    assert first.duration is not None and second.duration is not None
    assert second.duration > first.duration
    assert second.events_count == 3


def test_events_of_a_session_without_start_make_a_skeleton_row(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=9, project_id=2)
    apply(conn, positioned([[s.click()]], first=40))
    row = sessions.get_session(conn, 2, 9)
    assert row is not None
    assert row.start_ts == s.now and row.events_count == 1 and row.first_position == 40


def test_user_sessions_filters_and_orders(conn: sqlite3.Connection) -> None:
    scripts = [SessionScript(session_id=sid, start=1000 * sid) for sid in (30, 10, 20, 40)]
    groups: list[list[DomainEvent]] = [[sc.started(user_id="u")] for sc in scripts]
    groups.append([SessionScript(session_id=50, start=50_000).started(user_id="other")])
    groups.append([scripts[0].ended()])
    apply(conn, positioned(groups))
    ids = [r.session_id for r in sessions.user_sessions(conn, 1, "u")]
    assert ids == [10, 20, 30, 40]  # live ones included, by session id
    between = sessions.user_sessions(conn, 1, "u", start_date=20_000, end_date=30_000)
    assert [r.session_id for r in between] == [20, 30]  # both bounds inclusive
    assert [r.session_id for r in sessions.user_sessions(conn, 1, "u", limit=2)] == [10, 20]
    assert sessions.user_sessions(conn, 1, "U") == []  # exact, case-sensitive match
    assert sessions.user_sessions(conn, 2, "u") == []


def test_live_sessions_and_reset(conn: sqlite3.Connection) -> None:
    a, b = SessionScript(session_id=1), SessionScript(session_id=2)
    apply(conn, positioned([[a.started()], [b.started()], [a.ended()]]))
    assert [r.session_id for r in sessions.live_sessions(conn)] == [2]
    with atomic(conn):
        sessions.reset(conn)
    assert sessions.live_sessions(conn) == []
    assert sessions.get_session(conn, 1, 2) is None


def test_stored_text_does_not_depend_on_how_updates_are_split(conn: sqlite3.Connection) -> None:
    a, b = SessionScript(session_id=1), SessionScript(session_id=2)
    apply(conn, positioned([[a.started()], [a.metadata("zeta", "1"), a.issue("js_exception")]]))
    apply(conn, positioned([[a.metadata("alpha", "2"), a.issue("bad_request")]], first=3))
    apply(
        conn,
        positioned(
            [
                [b.started()],
                [b.metadata("zeta", "1"), b.issue("js_exception")],
                [b.metadata("alpha", "2"), b.issue("bad_request")],
            ]
        ),
    )
    texts = conn.execute(
        "SELECT metadata, issue_types FROM sessions ORDER BY session_id"
    ).fetchall()
    assert texts[0] == texts[1] == ('{"alpha":"2","zeta":"1"}', '["bad_request","js_exception"]')


def test_an_empty_user_id_is_stored_as_none(conn: sqlite3.Connection) -> None:
    a, b = SessionScript(session_id=1), SessionScript(session_id=2)
    apply(conn, positioned([[a.started(user_id="")], [b.started(user_id="kim")], [b.user_id("")]]))
    assert [(r.session_id, r.user_id) for r in sessions.live_sessions(conn)] == [
        (1, None),
        (2, None),
    ]
