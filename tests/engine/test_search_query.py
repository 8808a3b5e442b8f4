"""The session search payload parser (sans-IO): defaults, spellings, merging, and that any JSON
is a query or a :class:`SearchQueryError` naming a field, never another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.search_query import (
    DEFAULT_WINDOW_MS,
    EventFilter,
    EventProperty,
    NumberMatch,
    RangeMatch,
    SearchQuery,
    SearchQueryError,
    SessionFilter,
    TextMatch,
    parse_search,
)

NOW = 1_800_000_000_000


def test_defaults() -> None:
    assert parse_search(None, now_ms=NOW) == SearchQuery(
        start_ts=NOW - DEFAULT_WINDOW_MS,
        end_ts=NOW,
        session_filters=(),
        event_filters=(),
        events_order="then",
        sort="startTs",
        ascending=False,
        page=1,
        limit=200,
    )


def test_aliases_and_spellings() -> None:
    q = parse_search(
        {
            "startDate": 5,
            "endDate": 9,
            "events_order": "AND",
            "sort": "datetime",
            "order": "Asc",
            "filters": [
                {"type": "USER_BROWSER", "value": "Chrome"},
                {"type": "fetch", "operator": "onAny",
                 "filters": [{"type": "fetchStatusCode", "value": ["500"], "operator": ">="}]},
                {"type": "click", "operator": "selectorContains", "value": ["btn"]},
            ],
        },
        now_ms=NOW,
    )  # fmt: skip
    assert (q.start_ts, q.end_ts, q.events_order, q.sort, q.ascending) == (
        5,
        9,
        "and",
        "startTs",
        True,
    )
    assert q.session_filters == (
        SessionFilter(field="userBrowser", match=TextMatch(operator="is", values=("Chrome",))),
    )
    status = EventProperty(name="status", match=NumberMatch(operator=">=", values=(500,)))
    selector = EventProperty(name="selector", match=TextMatch(operator="contains", values=("btn",)))
    assert q.event_filters == (
        EventFilter(kind="request", match=None, properties=(status,)),
        EventFilter(kind="click", match=None, properties=(selector,)),
    )


def test_identical_session_filters_merge_and_empty_ones_are_left_out() -> None:
    q = parse_search(
        {
            "filters": [
                {"type": "userId", "value": ["a", "b"]},
                {"type": "userId", "value": ["b", "c"], "operator": "is"},
                {"type": "userId", "value": ["x"], "operator": "isNot"},
                {"type": "userOs", "value": []},  # needs values: left out
                {"type": "duration", "value": [None, None]},
                {"type": "click", "value": ["a"]},
                {"type": "click", "value": ["a"]},  # two steps of a then: kept
            ]
        },
        now_ms=NOW,
    )
    assert q.session_filters == (
        SessionFilter(field="userId", match=TextMatch(operator="is", values=("a", "b", "c"))),
        SessionFilter(field="userId", match=TextMatch(operator="isNot", values=("x",))),
    )
    assert len(q.event_filters) == 2


def test_a_range_and_numbers() -> None:
    q = parse_search(
        {"filters": [{"type": "duration", "value": [10, None]},
                     {"type": "eventsCount", "value": [3, "4.5"], "operator": "<"}]},
        now_ms=NOW,
    )  # fmt: skip
    assert [s.match for s in q.session_filters] == [
        RangeMatch(low=10, high=None),
        NumberMatch(operator="<", values=(3, 4.5)),
    ]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"filters": [{"type": "userId", "value": ["a"], "operator": "regex"}]},
         ("filters", "0", "operator")),
        ({"filters": [{"type": "click", "value": ["a"], "sourceOperator": 1, "source": "x"}]},
         None),  # a click has no source: ignored, as the reference does
        ({"filters": [{"type": "input", "value": ["a"], "sourceOperator": "x", "source": "v"}]},
         ("filters", "0", "sourceOperator")),
        ({"page": 2**62, "limit": 200}, ("page",)),
    ],
)  # fmt: skip
def test_errors_name_their_field(body: dict[str, Any], location: tuple[str, ...] | None) -> None:
    if location is None:
        parse_search(body, now_ms=NOW)
        return
    with pytest.raises(SearchQueryError) as raised:
        parse_search(body, now_ms=NOW)
    assert raised.value.location == location


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_FILTER = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(("userId", "click", "request", "metadata", "duration",
                                 "eventsCount", "issue", "error", "x")) | _JSON,
        "operator": st.sampled_from(("is", "contains", ">=", "selectorIs", "isAny")) | _JSON,
        "value": _JSON,
        "source": _JSON,
        "sourceOperator": _JSON,
        "isEvent": _JSON,
        "filters": st.lists(st.dictionaries(st.sampled_from(("type", "operator", "value")),
                                            _JSON | st.sampled_from(("status", "url", "="))),
                            max_size=2) | _JSON,
    },
)  # fmt: skip
_BODY = st.fixed_dictionaries(
    {},
    optional={
        "startTimestamp": _JSON,
        "endTimestamp": _JSON,
        "filters": st.lists(_FILTER, max_size=4) | _JSON,
        "eventsOrder": _JSON,
        "sort": _JSON,
        "order": _JSON,
        "page": _JSON,
        "limit": _JSON,
    },
)


@settings(max_examples=500, deadline=None)
@given(body=_BODY | _JSON)
def test_any_json_is_a_query_or_an_error_naming_a_field(body: Any) -> None:
    try:
        query = parse_search(body, now_ms=NOW)
    except SearchQueryError as error:
        assert str(error).startswith(".".join(error.location))
        return
    assert query.start_ts <= query.end_ts and 1 <= query.limit <= 200
