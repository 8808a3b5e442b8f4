"""The v2 body parsers and the event selection (api.public_v2_query), without a server.

Properties: any JSON body either parses or is an :class:`InvalidV2Request` (never another
exception, which the server would answer 500); a filter and its negation split the events; the
pages of a selection put together are the selection.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import public_v2_query as query
from api.public_v1_schema import ASSIST_FILTER_TYPES

T0 = 1_795_418_019_165

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELDS = st.sampled_from(
    ["startTimestamp", "endTimestamp", "limit", "page", "sortBy", "sortOrder", "filters",
     "columns", "query", "sort", "order", "name"]
)  # fmt: skip
BODIES = JSON | st.dictionaries(FIELDS, JSON, max_size=6)


@given(BODIES, st.none() | st.text(max_size=120))
def test_any_body_parses_or_is_a_400(body: Any, q: str | None) -> None:
    for parse in (
        query.parse_events_query,
        query.parse_user_sessions,
        lambda b: query.parse_user_search(b, q),
        lambda b: query.live_search_as_v1(b, ASSIST_FILTER_TYPES),
    ):
        try:
            parse(body)
        except query.InvalidV2Request as error:
            assert error.location.startswith(("body", "query"))


EVENTS = st.lists(
    st.fixed_dictionaries(
        {
            "timestamp": st.integers(T0, T0 + 1_000),
            "messageId": st.integers(0, 50),
            "type": st.sampled_from(["CLICK", "INPUT", "REQUEST"]),
        },
        optional={
            "label": st.sampled_from(["Buy", "buy now", "Cart", ""]),
            "status": st.integers(100, 599),
        },
    ),
    max_size=30,
).map(lambda events: sorted(events, key=lambda e: (e["timestamp"], e["messageId"])))
WINDOW = {"startTimestamp": T0, "endTimestamp": T0 + 1_000}


def select(events: list[dict[str, Any]], **body: Any) -> tuple[int, list[dict[str, Any]]]:
    parsed = query.parse_events_query({**WINDOW, "limit": 200, "page": 1, **body})
    return query.events_page(events, parsed)


@pytest.mark.parametrize(
    ("positive", "negative", "values"),
    [("is", "isNot", ["Buy", "CLICK"]), ("contains", "notContains", ["BU"]),
     ("isAny", "isUndefined", [])],
)  # fmt: skip
@given(events=EVENTS, key=st.sampled_from(["label", "type", "status"]))
def test_a_filter_and_its_negation_split_the_events(
    events: list[dict[str, Any]], key: str, positive: str, negative: str, values: list[str]
) -> None:
    def chosen(operator: str) -> list[dict[str, Any]]:
        total, page = select(events, filters=[{"name": key, "operator": operator,
                                               "value": values}])  # fmt: skip
        assert total == len(page)
        return page

    yes, no = chosen(positive), chosen(negative)
    assert len(yes) + len(no) == len(events)
    assert sorted(map(repr, yes + no)) == sorted(map(repr, events))


@given(events=EVENTS, limit=st.integers(1, 7), newest_first=st.booleans())
def test_pages_put_together_are_the_selection(
    events: list[dict[str, Any]], limit: int, newest_first: bool
) -> None:
    order = "desc" if newest_first else "asc"
    total, everything = select(events, sortOrder=order)
    assert total == len(events)
    assert everything == (events[::-1] if newest_first else events)
    pages = []
    for page in range(1, total // limit + 2):
        count, items = select(events, sortOrder=order, limit=limit, page=page)
        assert count == total
        pages += items
    assert pages == everything


@given(events=EVENTS)
def test_numbers_compare_as_numbers_and_columns_cut_the_objects(
    events: list[dict[str, Any]],
) -> None:
    _, failed = select(events, filters=[{"name": "status", "operator": ">=", "value": ["400"]}])
    assert failed == [e for e in events if e.get("status", 0) >= 400]
    _, cut = select(events, columns=["label"])
    assert cut == [{k: e[k] for k in ("timestamp", "messageId", "type", "label") if k in e}
                   for e in events]  # fmt: skip


def test_v2_assist_names_are_v1_types_or_metadata_keys() -> None:
    body = query.live_search_as_v1(
        {"filters": [{"name": "USERID", "value": ["a"]}, {"name": "plan", "value": ["pro"]}],
         "limit": 0, "order": ""},
        ASSIST_FILTER_TYPES,
    )  # fmt: skip
    assert body == {
        "filters": [
            {"type": "USERID", "value": ["a"]},
            {"type": "metadata", "source": "plan", "value": ["pro"]},
        ],
        "sort": "timestamp",
        "order": "DESC",
        "page": 1,
        "limit": query.ASSIST_LIMIT_DEFAULT,
    }
