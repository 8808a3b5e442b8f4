"""Session search over the projections: checked against a naive scan, and its query plans.

The property test folds random sessions through the real sessions and events projections, runs
random payloads through the real parser and compares :func:`projections.search.search_sessions`
with a plain Python evaluation of API.md 3 over every row (the search's definition, written
without SQL). The plan tests show that a selective filter starts from an index and never scans
the events table.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.search_query import (
    EventFilter,
    Match,
    NumberMatch,
    RangeMatch,
    SearchQuery,
    SessionFilter,
    TextMatch,
    parse_search,
)
from projections import events, search, sessions
from projections.base import migrate_checkpoints
from projections.events import EventRow
from projections.sessions import SessionRow, country_or_unknown
from storage.sqlite import atomic

from .factories import SessionScript, positioned

START = 1_700_000_000_000
NOW = START + 10 * 86_400_000
# Small vocabularies, so that random filters match; LIKE's wildcards and the escape included.
WORDS = ("Buy", "buy now", "Cart", "100%", "a_b", "a\\b", "", "Été")
PATHS = ("/", "/cart", "/Cart/100%", "/a_b")
COUNTRIES = ("DE", "FR", "")
BROWSERS = ("Chrome", "Firefox", "chrome")


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate_checkpoints(conn)
    sessions.migrate(conn)
    events.migrate(conn)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = fresh()
    try:
        yield connection
    finally:
        connection.close()


def record(conn: sqlite3.Connection, groups: list[list[ev.DomainEvent]], first: int = 1) -> int:
    batch = positioned(groups, first)
    with atomic(conn):
        sessions.apply(conn, batch)
        events.apply(conn, batch)
    return first + len(groups)


# -- the naive definition ----------------------------------------------------------------------


def _lower(text: str) -> str:
    """SQLite's LIKE folds ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def text_matches(value: str | None, m: TextMatch) -> bool:
    """One value against a string condition, with SQL's NULL rules for the positive ones."""
    v = value
    if m.operator == "is":
        return v is not None and v in m.values
    if m.operator == "isNot":
        return (v or "") not in m.values
    if m.operator == "isAny":
        return (v or "") != ""
    if m.operator == "isUndefined":
        return (v or "") == ""
    if m.operator == "notContains":
        return all(_lower(x) not in _lower(v or "") for x in m.values)
    if v is None:
        return False
    test: dict[str, Callable[[str, str], bool]] = {
        "contains": lambda a, b: b in a,
        "startsWith": str.startswith,
        "endsWith": str.endswith,
    }
    return any(test[m.operator](_lower(v), _lower(x)) for x in m.values)


_MATH = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
         "<=": operator.le, ">=": operator.ge}  # fmt: skip


def matches(value: Any, m: Match) -> bool:
    if isinstance(m, TextMatch):
        return text_matches(value, m)
    if value is None:
        return False
    if isinstance(m, NumberMatch):
        return any(_MATH[m.operator](value, x) for x in m.values)
    assert isinstance(m, RangeMatch)
    return (m.low is None or value >= m.low) and (m.high is None or value <= m.high)


def session_value(row: SessionRow, f: SessionFilter) -> Any:
    if f.field == "metadata":
        return row.metadata.get(f.key or "")
    if f.field == "userCountry":
        return country_or_unknown(row.user_country)
    return getattr(row, search.SESSION_COLUMNS[f.field])


def session_matches(row: SessionRow, f: SessionFilter) -> bool:
    if f.field != "issue":
        return matches(session_value(row, f), f.match)
    m = f.match
    assert isinstance(m, TextMatch)
    if m.operator == "isAny":
        return bool(row.issue_types)
    if m.operator == "isUndefined":
        return not row.issue_types
    if m.negative:
        positive = TextMatch(
            operator="is" if m.operator == "isNot" else "contains", values=m.values
        )
        return not any(text_matches(t, positive) for t in row.issue_types)
    return any(text_matches(t, m) for t in row.issue_types)


_PROPERTY: dict[str, Callable[[EventRow], Any]] = {
    "url": lambda r: r.url,
    "status": lambda r: r.status,
    "method": lambda r: r.method,
    "duration": lambda r: r.duration,
    "selector": lambda r: r.selector,
    "value": lambda r: r.value,
    "source": lambda r: r.data.get("source"),
}


def row_matches(row: EventRow, f: EventFilter) -> bool:
    kind = search.EVENT_KINDS[f.kind]
    if row.type not in kind.row_types:
        return False
    if f.match is not None:
        results = [text_matches(getattr(row, c), f.match) for c in kind.columns]
        if not (all(results) if f.match.negative else any(results)):
            return False
    return all(matches(_PROPERTY[p.name](row), p.match) for p in f.properties)


def events_match(rows: list[EventRow], q: SearchQuery) -> bool:
    filters = q.event_filters
    if not filters:
        return True
    if q.events_order == "or":
        return any(any(row_matches(r, f) for r in rows) for f in filters)
    if q.events_order == "and" or len(filters) == 1:
        return all(any(row_matches(r, f) for r in rows) for f in filters)
    # then: the earliest match of each step after the previous one (greedy is exact here).
    ordered = sorted(rows, key=lambda r: (r.timestamp, r.message_id))
    at = 0
    previous: tuple[int, int] | None = None
    for f in filters:
        while at < len(ordered) and not (
            row_matches(ordered[at], f)
            and (previous is None or (ordered[at].timestamp, ordered[at].message_id) > previous)
        ):
            at += 1
        if at == len(ordered):
            return False
        previous = (ordered[at].timestamp, ordered[at].message_id)
    return True


def naive_search(
    conn: sqlite3.Connection, project_id: int, q: SearchQuery
) -> tuple[int, list[int]]:
    rows = [
        r
        for r in (sessions.session_row(v) for v in conn.execute(
            f"SELECT {', '.join(sessions.ROW_COLUMNS)} FROM sessions"
        ))
        if r.project_id == project_id and q.start_ts <= r.start_ts <= q.end_ts
        and r.duration is not None
        and all(session_matches(r, f) for f in q.session_filters)
        and events_match(events.session_events(conn, project_id, r.session_id), q)
    ]  # fmt: skip
    column = search.SORT_COLUMNS[q.sort]
    desc = not q.ascending
    rows.sort(key=lambda r: r.session_id, reverse=desc)
    rows.sort(key=lambda r: r.issue_score, reverse=True)
    rows.sort(key=lambda r: (getattr(r, column) is not None, getattr(r, column)), reverse=desc)
    return len(rows), [r.session_id for r in rows[q.offset : q.offset + q.limit]]


# -- random sessions and payloads --------------------------------------------------------------


@st.composite
def recorded_session(draw: st.DrawFn, session_id: int) -> list[list[ev.DomainEvent]]:
    s = SessionScript(
        session_id=session_id,
        project_id=draw(st.sampled_from((1, 1, 1, 2))),
        start=START + draw(st.integers(0, 5)) * 86_400_000,
    )
    groups: list[list[ev.DomainEvent]] = [
        [
            s.started(
                user_browser=draw(st.sampled_from(BROWSERS)),
                user_country=draw(st.sampled_from(COUNTRIES)),
                user_id=draw(st.sampled_from((None, "ann", "bob"))),
                user_device_type=draw(st.sampled_from(("desktop", "mobile"))),
            )
        ]
    ]
    body: list[ev.DomainEvent] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(("click", "page", "error", "request", "custom", "issue")))
        word = draw(st.sampled_from(WORDS))
        if kind == "click":
            body.append(s.click(word, selector=draw(st.sampled_from(("#buy", "div > a")))))
        elif kind == "page":
            path = draw(st.sampled_from(PATHS))
            body.append(s.page_visit(f"https://shop.test{path}?utm_source={word}"))
        elif kind == "error":
            body.append(s.error(word, draw(st.sampled_from(WORDS))))
        elif kind == "request":
            url = f"https://api.test{draw(st.sampled_from(PATHS))}"
            body.append(s.request(url, status=draw(st.sampled_from((200, 404, 502)))))
        elif kind == "custom":
            body.append(s.custom(word))
        else:
            body.append(s.issue(draw(st.sampled_from(("click_rage", "dead_click")))))
    if draw(st.booleans()):
        body.append(s.metadata("plan", draw(st.sampled_from(("pro", "free")))))
    groups.append(body)
    if draw(st.integers(0, 4)) > 0:  # most sessions finished: only those are searched
        groups.append([s.ended()])
    return groups


_TEXT_OPERATORS = ("is", "isNot", "contains", "notContains", "startsWith", "endsWith", "isAny",
                   "isUndefined")  # fmt: skip


@st.composite
def text_filter(draw: st.DrawFn, type_: str, words: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": type_,
        "operator": draw(st.sampled_from(_TEXT_OPERATORS)),
        "value": draw(st.lists(st.sampled_from(words), max_size=2)),
    }


@st.composite
def payload(draw: st.DrawFn) -> dict[str, Any]:
    session_filters = st.one_of(
        text_filter("userBrowser", (*BROWSERS, "hrom")),
        text_filter("userCountry", ("DE", "UN", "d")),
        text_filter("userId", ("ann", "bob", "a")),
        text_filter("platform", ("desktop", "mobile")),
        text_filter("utmSource", WORDS),
        text_filter("issue", ("click_rage", "dead_click", "rage")),
        text_filter("metadata", ("pro", "free")).map(lambda f: {**f, "source": "plan"}),
        st.builds(
            lambda op, n: {"type": "eventsCount", "operator": op, "value": [n]},
            st.sampled_from(("=", "<", ">=", "!=")),
            st.integers(0, 4),
        ),
        st.builds(
            lambda lo, hi: {"type": "duration", "value": [lo, hi]},
            st.sampled_from((None, 0, 40)),
            st.sampled_from((None, 60, 1000)),
        ).filter(lambda f: None in f["value"] or f["value"][0] <= f["value"][1]),
    )
    event_filters = st.one_of(
        text_filter("click", WORDS),
        text_filter("location", (*PATHS, "cart")),
        text_filter("error", WORDS),
        text_filter("custom", WORDS),
        text_filter("request", PATHS).map(
            lambda f: {**f, "filters": [{"type": "status", "operator": ">=", "value": [400]}]}
        ),
        st.sampled_from(("selectorIs", "selectorContains", "selectorIsNot")).map(
            lambda op: {"type": "click", "operator": op, "value": ["#buy"]}
        ),
    )
    return {
        "startTimestamp": START + draw(st.sampled_from((0, 86_400_000))),
        "endTimestamp": START + draw(st.sampled_from((3, 9))) * 86_400_000,
        "filters": draw(st.lists(st.one_of(session_filters, event_filters), max_size=4)),
        "eventsOrder": draw(st.sampled_from(("then", "and", "or"))),
        "sort": draw(st.sampled_from(("startTs", "userBrowser", "eventsCount", "userId"))),
        "order": draw(st.sampled_from(("asc", "DESC"))),
        "page": draw(st.integers(1, 3)),
        "limit": draw(st.integers(1, 4)),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_search_equals_a_naive_scan(data: st.DataObject) -> None:
    conn = fresh()
    try:
        position = 1
        for sid in range(1, data.draw(st.integers(1, 8)) + 1):
            position = record(conn, data.draw(recorded_session(sid)), position)
        for _ in range(5):
            query = parse_search(data.draw(payload()), now_ms=NOW)
            total, rows = search.search_sessions(conn, 1, query)
            assert (total, [r.session_id for r in rows]) == naive_search(conn, 1, query), query
    finally:
        conn.close()


# -- plans -------------------------------------------------------------------------------------


def plan(conn: sqlite3.Connection, body: dict[str, Any]) -> str:
    return " | ".join(search.explain_search(conn, 1, parse_search(body, now_ms=NOW)))


SELECTIVE = {
    "userId equals": (
        [{"type": "userId", "value": ["ann"], "operator": "is"}],
        "sessions_project_user (project_id=? AND user_id=?)",
    ),
    "country, browser and an error": (
        [
            {"type": "userCountry", "value": ["DE"]},
            {"type": "userBrowser", "value": ["Chrome"]},
            {"type": "error", "value": ["TypeError"], "operator": "is"},
        ],
        "COVERING INDEX session_events_by_name (project_id=? AND type=? AND name=?)",
    ),
    "a click label then a location": (
        [
            {"type": "click", "value": ["Buy"], "operator": "is"},
            {"type": "location", "value": ["/cart"], "operator": "is"},
        ],
        "COVERING INDEX session_events_by_label (project_id=? AND type=? AND label=?)",
    ),
    "a request path with a status": (
        [
            {
                "type": "request",
                "value": ["/pay"],
                "operator": "is",
                "filters": [{"type": "status", "value": [500], "operator": ">="}],
            }
        ],
        # not covering: the status is read from the rows the index found
        "INDEX session_events_by_value (project_id=? AND type=? AND value=?)",
    ),
}


@pytest.mark.parametrize("name", list(SELECTIVE))
def test_a_selective_filter_starts_from_an_index(conn: sqlite3.Connection, name: str) -> None:
    filters, index = SELECTIVE[name]
    text = plan(conn, {"filters": filters})
    assert index in text, text
    # Never a scan of the sessions or events table, nor the week's start-time index.
    assert not any(step.startswith("SCAN") for step in text.split(" | ")), text
    assert "sessions_project_start_duration" not in text, text


def test_a_sequence_step_with_an_exact_value_reads_the_index(conn: sqlite3.Connection) -> None:
    body = {"filters": [{"type": "click", "value": ["Buy"]}, {"type": "location", "value": ["/"]}]}
    text = plan(conn, body)
    for step, index, column in (("e0", "by_label", "label"), ("e1", "by_value", "value")):
        seek = f"(project_id=? AND type=? AND {column}=? AND session_id=?)"
        assert f"{step} USING INDEX session_events_{index} {seek}" in text, text


def test_events_of_one_session_are_read_by_primary_key(conn: sqlite3.Connection) -> None:
    text = plan(conn, {"filters": [{"type": "click", "value": ["Buy"], "operator": "isNot"}]})
    assert "SEARCH e USING PRIMARY KEY (session_id=?)" in text, text
    assert "sessions_project_start_duration" in text, text  # nothing selective: the window


def test_an_unselective_search_reads_the_window_in_sort_order(conn: sqlite3.Connection) -> None:
    text = plan(conn, {"filters": [{"type": "duration", "value": [1000, 60000]}]})
    assert "SEARCH s USING INDEX sessions_project_start_duration" in text, text
    assert "RIGHT PART OF ORDER BY" in text, text  # no sort of the whole window: LIMIT stops it


# -- what the fold adds, and forgetting --------------------------------------------------------


def test_utm_tags_come_from_the_first_page_whatever_the_split(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=5)
    first = s.page_visit("https://shop.test/?utm_source=news&utm_medium=mail&utm_campaign=x%20y")
    second = s.page_visit("https://shop.test/?utm_source=other")
    groups: list[list[ev.DomainEvent]] = [[s.started()], [first], [second], [s.ended()]]
    record(conn, groups)
    other = fresh()
    try:
        for i, group in enumerate(groups):  # one call per record: the same row
            record(other, [group], i + 1)
        rows = [sessions.get_session(c, 1, 5) for c in (conn, other)]
    finally:
        other.close()
    assert rows[0] == rows[1]
    assert rows[0] is not None
    assert (rows[0].utm_source, rows[0].utm_medium, rows[0].utm_campaign) == ("news", "mail", "x y")


def test_forgotten_sessions_are_not_found(conn: sqlite3.Connection) -> None:
    s = SessionScript(session_id=9)
    record(conn, [[s.started(user_id="ann")], [s.click("Buy")], [s.ended()]])
    body = {"startTimestamp": START, "endTimestamp": NOW, "filters": [
        {"type": "click", "value": ["Buy"], "operator": "is"}]}  # fmt: skip
    query = parse_search(body, now_ms=NOW)
    assert search.search_sessions(conn, 1, query)[0] == 1
    with atomic(conn):
        sessions.forget_sessions(conn, [9])
        events.forget_sessions(conn, [9])
    assert search.search_sessions(conn, 1, query) == (0, [])
    # The index entries went with the rows (nothing of the session is left to find).
    assert conn.execute("SELECT count(*) FROM session_events WHERE session_id = 9").fetchone() == (
        0,
    )


def test_like_patterns_are_escaped(conn: sqlite3.Connection) -> None:
    s, t = SessionScript(session_id=1), SessionScript(session_id=2)
    record(conn, [[s.started()], [s.click("100% off")], [s.ended()]])
    record(conn, [[t.started()], [t.click("1000 off")], [t.ended()]], 4)
    for value, found in (("0%", [1]), ("%", [1]), ("_", []), ("00 ", [2])):
        body = {"startTimestamp": START, "endTimestamp": NOW, "filters": [
            {"type": "click", "value": [value], "operator": "contains"}]}  # fmt: skip
        _total, rows = search.search_sessions(conn, 1, parse_search(body, now_ms=NOW))
        assert [r.session_id for r in rows] == found, value


def test_property_names_are_the_parsers() -> None:
    from engine import search_query

    assert set(search_query.EVENT_KINDS) == set(search.EVENT_KINDS)
    assert set(search_query.SORT_FIELDS) == set(search.SORT_COLUMNS)
    names = {p for props in search_query.EVENT_PROPERTIES.values() for p in props}
    assert names | set(search_query.SOURCE_PROPERTY.values()) <= set(search.PROPERTY_COLUMNS)
    fields = set(search_query.TEXT_SESSION_FIELDS) - {"metadata", "issue"}
    fields |= set(search_query.NUMBER_SESSION_FIELDS) | set(search_query.RANGE_SESSION_FIELDS)
    assert fields == set(search.SESSION_COLUMNS)
