"""The events projection: one row per session event, page timings merged into LOCATION rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest

from projections import events
from storage.sqlite import atomic

from .factories import SessionScript, positioned


def apply(conn: sqlite3.Connection, evs: list) -> None:
    with atomic(conn):
        events.apply(conn, evs)


def test_every_session_event_type_makes_a_typed_row(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=4)
    made = [
        s.page_visit(
            "https://shop.example/a/b?q=1#top", referrer="https://search.example/s?q=shoes"
        ),
        s.click("Add", selector="#add", hesitation_ms=300, normalized_x=4512, normalized_y=1000),
        s.input("email", "x***@y", duration_ms=1500),
        s.custom("checkout", '{"total": 12}'),
        s.error("TypeError", "boom"),
        s.request("https://api.example/items?page=2", status=503),
        s.graphql("GetCart"),
        s.state_action("cart/add"),
        s.issue("bad_request"),
    ]
    apply(conn, positioned([made]))
    rows = events.session_events(conn, 1, 4)
    assert [r.type for r in rows] == [
        "LOCATION", "CLICK", "INPUT", "CUSTOM", "ERROR",
        "REQUEST", "GRAPHQL", "STATEACTION", "ISSUE",
    ]  # fmt: skip
    location, click, input_, custom, error, request, graphql, action, issue = rows
    assert location.url == "https://shop.example/a/b?q=1#top"
    assert (location.data["host"], location.data["path"], location.data["query"]) == (
        "shop.example",
        "/a/b",
        "q=1",
    )
    assert location.data["base_referrer"] == "https://search.example/s"
    assert (click.label, click.selector, click.hesitation) == ("Add", "#add", 300)
    assert (click.data["normalized_x"], click.data["normalized_y"]) == (4512, 1000)
    assert (input_.label, input_.value, input_.duration) == ("email", "x***@y", 1500)
    assert (custom.name, events.decode_payload(custom.data["payload"])) == (
        "checkout",
        {"total": 12},
    )
    assert (error.name, error.value, error.data["source"]) == ("TypeError", "boom", "js_exception")
    assert (request.url, request.method, request.status, request.duration) == (
        "https://api.example/items?page=2",
        "GET",
        503,
        42,
    )
    assert (graphql.name, graphql.method) == ("GetCart", "query")
    assert action.name == "cart/add"
    assert (issue.name, issue.data["context_string"]) == ("bad_request", "Buy")
    assert all(r.session_id == 4 and r.position == 1 for r in rows)


def test_order_is_timestamp_then_message_id_and_issue_shares_a_click_id(
    conn: sqlite3.Connection,
) -> None:
    s = SessionScript(session_id=1)
    late = s.click("late")
    early = attrs.evolve(s.click("early"), timestamp=late.timestamp - 5)
    same_time = attrs.evolve(s.click("same"), timestamp=late.timestamp)
    rage = attrs.evolve(s.issue("click_rage", message_id=late.message_id), timestamp=late.timestamp)
    apply(conn, positioned([[late, early, same_time, rage]]))
    rows = events.session_events(conn, 1, 1)
    assert [(r.type, r.label or r.name) for r in rows] == [
        ("CLICK", "early"),
        ("CLICK", "late"),
        ("ISSUE", "click_rage"),
        ("CLICK", "same"),
    ]


def test_a_repeated_key_keeps_the_first_row(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=1)
    click = s.click("first")
    apply(conn, positioned([[click]]))
    apply(conn, positioned([[attrs.evolve(click, label="second")]], first=2))
    assert [r.label for r in events.session_events(conn, 1, 1)] == ["first"]


def test_timings_and_vitals_merge_into_their_page(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=1)
    first, second = s.page_visit("https://a.example/"), s.page_visit("https://a.example/next")
    apply(
        conn,
        positioned(
            [[first, second, s.timings(first.message_id, request_start=10, response_start=60)]]
        ),
    )
    apply(
        conn,
        positioned(
            [
                [
                    s.timings(
                        first.message_id,
                        response_end=90,
                        dom_content_loaded_event_start=200,
                        dom_content_loaded_event_end=250,
                        load_event_start=400,
                        load_event_end=420,
                        first_paint=150,
                        first_contentful_paint=160,
                    ),
                    s.vital(first.message_id, "LCP", "812"),
                    s.vital(first.message_id, "CLS", "0.01"),
                    s.vital(first.message_id, "LCP", "900"),
                    s.vital(12345, "LCP", "1"),  # names no page: ignored
                ]
            ],
            first=2,
        ),
    )
    page, other = events.session_events(conn, 1, 1)
    assert page.data["web_vitals"] == {"LCP": "900", "CLS": "0.01"}
    assert events.page_timings(page) == {
        "domBuildingTime": 110,
        "domContentLoadedTime": 50,
        "loadTime": 20,
        "firstPaintTime": 150,
        "firstContentfulPaintTime": 160,
        "speedIndex": None,
        "visuallyComplete": None,
        "timeToInteractive": None,
        "responseTime": 30,
        "responseEnd": 90,
        "ttfb": 50,
    }
    assert "timings" not in other.data and set(events.page_timings(other).values()) == {None}
    assert len(events.session_events(conn, 1, 1, types=["LOCATION"])) == 2


def test_rows_belong_to_their_project_and_reset_empties(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=1, project_id=1)
    apply(conn, positioned([[s.click()]]))
    assert events.session_events(conn, 2, 1) == []
    with atomic(conn):
        events.reset(conn)
    assert events.session_events(conn, 1, 1) == []


def test_url_helpers() -> None:
    assert events.base_url("https://x.example/p/q?a=1#f") == "https://x.example/p/q"
    assert events.base_url("") == ""
    assert events.decode_payload("not json") == "not json"
    assert events.decode_payload("") is None


def test_inline_reader_answers_like_the_query_and_follows_new_rows(
    conn: sqlite3.Connection, fresh_db_path: Path
) -> None:
    s = SessionScript(session_id=7)
    apply(conn, positioned([[s.page_visit(), s.click("Buy"), s.state_action("cart/add")]]))
    inline = events.InlineEventsReader(fresh_db_path)
    try:
        assert inline.session_events(1, 7) == events.session_events(conn, 1, 7)
        assert [r.type for r in inline.session_events(1, 7) or []] == [
            "LOCATION", "CLICK", "STATEACTION",
        ]  # fmt: skip
        # A row with no type-specific fields decodes to an empty dict, as json.loads would.
        assert (inline.session_events(1, 7) or [])[-1].data == {}
        # Rows committed later by the projector's connection are seen on the next call (WAL).
        apply(conn, positioned([[s.click("Again")]], first=2))
        assert [r.label for r in inline.session_events(1, 7) or []][-1] == "Again"
        assert inline.session_events(2, 7) == [] and inline.session_events(1, 8) == []
        # Read-only: the dedicated connection never writes the projections' database.
        with pytest.raises(sqlite3.OperationalError):
            inline._conn.execute("DELETE FROM session_events")  # type: ignore[union-attr]
    finally:
        inline.close()


def test_inline_reader_yields_to_the_thread_path_when_it_cannot_read(tmp_path: Path) -> None:
    # No database file: no empty one is conjured, and None tells the caller to take the
    # worker-thread path (as a busy database does).
    inline = events.InlineEventsReader(tmp_path / "missing.db")
    assert inline.session_events(1, 1) is None
    assert not (tmp_path / "missing.db").exists()
    inline.close()


def test_small_session_events_answers_only_up_to_the_limit(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=9)
    apply(conn, positioned([[s.click(f"b{i}") for i in range(5)]]))
    assert events.small_session_events(conn, 1, 9, 5) == events.session_events(conn, 1, 9)
    assert events.small_session_events(conn, 1, 9, 4) is None  # bigger than the limit
    assert events.small_session_events(conn, 1, 10, 0) == []  # an unknown session is small


def test_inline_reader_leaves_a_big_session_to_the_thread_path(
    conn: sqlite3.Connection, fresh_db_path: Path
) -> None:
    s = SessionScript(session_id=8)
    apply(conn, positioned([[s.click(f"b{i}") for i in range(3)]]))
    inline = events.InlineEventsReader(fresh_db_path, limit=2)
    try:
        assert inline.session_events(1, 8) is None
        inline.limit = 3
        assert inline.session_events(1, 8) == events.session_events(conn, 1, 8)
    finally:
        inline.close()
