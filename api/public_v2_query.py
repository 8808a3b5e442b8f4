"""The request bodies of the public API v2 (API.md 1.3), parsed and checked without any I/O.

Each ``parse_*`` takes the decoded JSON body (and query values) and returns an attrs object, or
raises :class:`InvalidV2Request` naming the field (the v2 blueprint answers it 400). Where v2's
payload names a column (``sortBy``, ``columns``, a filter's ``name``), the names are those of the
objects v1 answers (``timestamp``, ``label``, ...); v2's own spellings of the common ones
(``$event_name``, ``created_at``, ...) are accepted too. :func:`events_page` filters, sorts and
pages a session's event objects as v2 asks.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from api.public_v1_schema import INT64_MAX

LIMIT_MAX = 200
LIMIT_DEFAULT = 50
ASSIST_LIMIT_DEFAULT = 10  # v2's Assist default page (v1's is 200)
# v2 refuses timestamps before 2000-01-01 (its validation tags, API.md 1.3).
MIN_TIMESTAMP = 946_684_800_000
QUERY_MAX = 100
USER_ID_MAX = 256
FILTER_VALUES_MAX = 10
SORT_ORDERS = ("asc", "desc")
# v2's names of an event's common columns -> the key of the v1 event object.
EVENT_COLUMN_ALIASES = {
    "$event_name": "type",
    "created_at": "timestamp",
    "event_id": "messageId",
    "session_id": "sessionId",
}
# Keys every event keeps whatever ``columns`` asks for.
EVENT_CORE_KEYS = ("sessionId", "messageId", "timestamp", "type")
# v2 user columns -> the v1 user object's keys (API.md 1.3's ``$`` names of what we keep).
USER_SORT_ALIASES = {"$user_id": "userId", "$last_seen": "lastSeen", "$first_event_at": "firstSeen"}
USER_SORT_KEYS = ("userId", "sessionCount", "firstSeen", "lastSeen")

_MATH: dict[str, Callable[[float, float], bool]] = {
    "=": op.eq, "<": op.lt, ">": op.gt, "<=": op.le, ">=": op.ge,
}  # fmt: skip
_TEXT: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda text, v: v in text,
    "startsWith": lambda text, v: text.startswith(v),
    "endsWith": lambda text, v: text.endswith(v),
}
_NEGATED = {"isNot": "is", "notContains": "contains"}
_VALUELESS = ("isAny", "isUndefined")
EVENT_OPERATORS = ("is", "isNot", "notContains", *_TEXT, *_VALUELESS, *_MATH)


class InvalidV2Request(Exception):
    """A v2 request that cannot be served: ``location`` (``body.limit``) and why."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


# -- fields ----------------------------------------------------------------------------------------


def object_body(body: Any) -> dict[str, Any]:
    """The body as an object (none = every default)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidV2Request("body", "should be an object")
    return body


def int_field(
    body: Mapping[str, Any], key: str, *, default: int | None = None, low: int = 0,
    high: int = INT64_MAX,
) -> int | None:  # fmt: skip
    """An integer field in ``low..high``; ``default`` when missing or null."""
    raw = body.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidV2Request(f"body.{key}", "should be an integer")
    if not low <= raw <= high:
        raise InvalidV2Request(f"body.{key}", f"should be between {low} and {high}")
    return raw


def _text_field(body: Mapping[str, Any], key: str, default: str = "", max_length: int = 0) -> str:
    raw = body.get(key)
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise InvalidV2Request(f"body.{key}", "should be a string")
    if max_length and len(raw) > max_length:
        raise InvalidV2Request(f"body.{key}", f"should have at most {max_length} characters")
    return raw


def _strings(body: Mapping[str, Any], key: str) -> tuple[str, ...]:
    raw = body.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise InvalidV2Request(f"body.{key}", "should be a list of strings")
    return tuple(raw)


def newest_first(body: Mapping[str, Any], *, default: bool) -> bool:
    """``sortOrder``: "asc" or "desc" (any case)."""
    raw = _text_field(body, "sortOrder")
    if not raw:
        return default
    if raw.lower() not in SORT_ORDERS:
        raise InvalidV2Request("body.sortOrder", "should be 'asc' or 'desc'")
    return raw.lower() == "desc"


@attrs.frozen(slots=True)
class Window:
    """``startTimestamp``..``endTimestamp`` (epoch ms, inclusive; None = unbounded)."""

    start: int | None
    end: int | None


def window(body: Mapping[str, Any], *, required: bool) -> Window:
    """The time window of a body: both bounds from 2000 on, the end after the start."""
    start = int_field(body, "startTimestamp", low=MIN_TIMESTAMP)
    end = int_field(body, "endTimestamp", low=MIN_TIMESTAMP)
    for key, value in (("startTimestamp", start), ("endTimestamp", end)):
        if required and value is None:
            raise InvalidV2Request(f"body.{key}", "is required")
    if start is not None and end is not None and end <= start:
        raise InvalidV2Request("body.endTimestamp", "should be after startTimestamp")
    return Window(start, end)


@attrs.frozen(slots=True)
class Page:
    """``page`` (from 1) of ``limit`` items."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_of(body: Mapping[str, Any], *, required: bool = False) -> Page:
    """``limit`` (1..200, default 50) and ``page`` (from 1, default 1)."""
    for key in ("limit", "page"):
        if required and body.get(key) is None:
            raise InvalidV2Request(f"body.{key}", "is required")
    limit = int_field(body, "limit", default=LIMIT_DEFAULT, low=1, high=LIMIT_MAX)
    page = int_field(body, "page", default=1, low=1, high=INT64_MAX // LIMIT_MAX)
    assert limit is not None and page is not None
    return Page(page, limit)


def user_id_path(raw: str) -> str:
    """A user id of a path: 1..256 characters."""
    if not 1 <= len(raw) <= USER_ID_MAX:
        raise InvalidV2Request("path.userId", f"should have 1 to {USER_ID_MAX} characters")
    return raw


# -- users -----------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class UserSearch:
    """``POST /public/{projectKey}/users``."""

    text: str
    window: Window
    page: Page
    sort_by: str  # a key of USER_SORT_KEYS
    newest_first: bool


def parse_user_search(body: Any, q: str | None) -> UserSearch:
    """A user search body; ``q`` (the query string's) overrides ``query``. ``filters`` over user
    properties are refused: the tracker's user properties are not recorded yet."""
    body = object_body(body)
    text = _text_field(body, "query", max_length=QUERY_MAX) if q is None else q
    if len(text) > QUERY_MAX:
        raise InvalidV2Request("query.q", f"should have at most {QUERY_MAX} characters")
    filters = body.get("filters")
    if filters is not None and not isinstance(filters, list):
        raise InvalidV2Request("body.filters", "should be a list")
    if filters:
        raise InvalidV2Request("body.filters", "user property filters are not supported")
    _strings(body, "columns")  # every column is always answered
    sort_by = _text_field(body, "sortBy") or "lastSeen"
    sort_by = USER_SORT_ALIASES.get(sort_by, sort_by)
    if sort_by not in USER_SORT_KEYS:
        raise InvalidV2Request("body.sortBy", f"should be one of {', '.join(USER_SORT_KEYS)}")
    return UserSearch(
        text=text,
        window=window(body, required=False),
        page=page_of(body),
        sort_by=sort_by,
        newest_first=newest_first(body, default=True),
    )


@attrs.frozen(slots=True)
class UserSessions:
    """``POST /public/{projectKey}/users/{userId}/sessions``."""

    window: Window
    page: Page
    newest_first: bool


def parse_user_sessions(body: Any) -> UserSessions:
    """Both timestamps required; sessions oldest first unless ``sortOrder`` is desc."""
    body = object_body(body)
    return UserSessions(
        window=window(body, required=True),
        page=page_of(body),
        newest_first=newest_first(body, default=False),
    )


# -- a session's events ----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class EventFilter:
    """``{name, operator, value[]}`` over one key of the event objects."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Text operators compare case-insensitively, ``is`` exactly, math ones as numbers
        (API.md 3.4); negations match events without the key."""
        value = event.get(self.key)
        if self.operator in _VALUELESS:
            return (value is None) == (self.operator == "isUndefined")
        positive = _NEGATED.get(self.operator)
        if positive is not None:
            return not attrs.evolve(self, operator=positive).matches(event)
        if value is None or isinstance(value, dict | list):
            return False
        if self.operator in _MATH:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return any(_MATH[self.operator](value, float(v)) for v in self.values)
        text = _as_text(value)
        if self.operator == "is":
            return text in self.values
        lowered = text.lower()
        return any(_TEXT[self.operator](lowered, v.lower()) for v in self.values)


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@attrs.frozen(slots=True)
class EventsQuery:
    """``POST /public/{projectKey}/sessions/{sessionId}/events``."""

    window: Window
    page: Page
    sort_by: str
    newest_first: bool
    filters: tuple[EventFilter, ...]
    columns: tuple[str, ...]


def _event_key(name: str) -> str:
    return EVENT_COLUMN_ALIASES.get(name, name)


def _event_filter(raw: Any, where: str) -> EventFilter:
    if not isinstance(raw, dict):
        raise InvalidV2Request(where, "should be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidV2Request(f"{where}.name", "is required")
    operator = raw.get("operator", "is")
    if operator not in EVENT_OPERATORS:
        raise InvalidV2Request(
            f"{where}.operator", f"should be one of {', '.join(EVENT_OPERATORS)}"
        )
    values = raw.get("value", [])
    if values is None:
        values = []
    if not isinstance(values, list) or len(values) > FILTER_VALUES_MAX:
        raise InvalidV2Request(f"{where}.value", f"should be a list of at most {FILTER_VALUES_MAX}")
    texts = []
    for value in values:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InvalidV2Request(f"{where}.value", "should hold strings or numbers")
        if operator in _MATH and not _is_number(value):
            raise InvalidV2Request(f"{where}.value", f"should hold numbers for {operator!r}")
        texts.append(_as_text(value))
    if not texts and operator not in _VALUELESS:
        raise InvalidV2Request(f"{where}.value", f"is required for {operator!r}")
    return EventFilter(_event_key(name), operator, tuple(texts))


def _is_number(value: object) -> bool:
    if isinstance(value, int | float):
        return value == value and abs(value) != float("inf")  # no NaN, no infinity
    try:
        parsed = float(str(value))
    except ValueError:
        return False
    return parsed == parsed and abs(parsed) != float("inf")


def parse_events_query(body: Any) -> EventsQuery:
    """Timestamps, ``limit`` and ``page`` required (as v2 has them); events in time order unless
    ``sortOrder`` is desc; ``columns`` = keys to keep beyond :data:`EVENT_CORE_KEYS`."""
    body = object_body(body)
    raw_filters = body.get("filters")
    if raw_filters is None:
        raw_filters = []
    if not isinstance(raw_filters, list):
        raise InvalidV2Request("body.filters", "should be a list")
    filters = tuple(_event_filter(f, f"body.filters.{i}") for i, f in enumerate(raw_filters))
    return EventsQuery(
        window=window(body, required=True),
        page=page_of(body, required=True),
        sort_by=_event_key(_text_field(body, "sortBy") or "timestamp"),
        newest_first=newest_first(body, default=False),
        filters=filters,
        columns=tuple(_event_key(c) for c in _strings(body, "columns")),
    )


def _sort_key(key: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    # Missing (or unorderable) values sort last in ascending order; ties keep (timestamp,
    # messageId), the order v1 answers.
    def sort_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
        value = event.get(key)
        if isinstance(value, bool | int | float):
            rank: tuple[Any, ...] = (0, float(value), "")
        elif isinstance(value, str):
            rank = (1, 0.0, value)
        else:
            rank = (2, 0.0, "")
        return (*rank, event.get("timestamp", 0), event.get("messageId", 0))

    return sort_key


def events_page(events: Sequence[Mapping[str, Any]], query: EventsQuery) -> tuple[int, list[dict]]:
    """The events (v1 objects, in v1's order) that ``query`` selects: how many in all, and the
    page, each cut to the core keys plus ``columns`` when columns are asked for."""
    start, end = query.window.start, query.window.end
    chosen = [
        e
        for e in events
        if (start is None or e["timestamp"] >= start)
        and (end is None or e["timestamp"] <= end)
        and all(f.matches(e) for f in query.filters)
    ]
    if query.sort_by != "timestamp":
        chosen.sort(key=_sort_key(query.sort_by), reverse=query.newest_first)
    elif query.newest_first:
        chosen.reverse()  # v1's order, backwards (its ties are broken beyond messageId too)
    page = chosen[query.page.offset : query.page.offset + query.page.limit]
    if query.columns:
        keep = (*EVENT_CORE_KEYS, *query.columns)
        return len(chosen), [{k: e[k] for k in keep if k in e} for e in page]
    return len(chosen), [dict(e) for e in page]


# -- Assist ----------------------------------------------------------------------------------------


def live_search_as_v1(body: Any, known_types: Sequence[str]) -> dict[str, Any]:
    """A v2 Assist search body in v1's spelling (which :func:`api.public_v1.parse_live_search`
    then checks): a filter's ``name`` is v1's ``type``; a name that is no session attribute is a
    metadata key (as v2's session manager does); zero values take v2's defaults (sort timestamp,
    order desc, page 1, limit 10)."""
    body = object_body(body)
    raw_filters = _zero_default(body.get("filters"), [])
    if not isinstance(raw_filters, list):
        raise InvalidV2Request("body.filters", "should be a list")
    known = {t.lower() for t in known_types}
    filters = []
    for i, raw in enumerate(raw_filters):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise InvalidV2Request(f"body.filters.{i}.name", "is required")
        name = raw["name"]
        if raw.get("source") is not None and not isinstance(raw["source"], str):
            raise InvalidV2Request(f"body.filters.{i}.source", "should be a string")
        converted = {k: v for k, v in raw.items() if k != "name"}
        if name.lower() in known:
            converted["type"] = name
        else:
            converted |= {"type": "metadata", "source": name}
        filters.append(converted)
    return {
        "filters": filters,
        "sort": _zero_default(body.get("sort"), "timestamp"),
        "order": _zero_default(body.get("order"), "DESC"),
        "page": _zero_default(body.get("page"), 1),
        "limit": _zero_default(body.get("limit"), ASSIST_LIMIT_DEFAULT),
    }


def _zero_default(value: Any, default: Any) -> Any:
    """``default`` for what Go decodes as the zero value of ``default``'s type (missing, null,
    ``0`` for a number, ``""`` for a string); anything else (a wrong type included, for the
    check after) as sent."""
    if value is None:
        return default
    if isinstance(default, str):
        return default if value == "" else value
    if isinstance(default, int) and type(value) is int and value == 0:
        return default
    if isinstance(default, list) and value == []:
        return default
    return value
