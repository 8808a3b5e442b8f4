"""Session search queries (API.md 3): the JSON payload -> an attrs query tree, sans-IO.

:func:`parse_search` validates a ``POST .../sessions/search`` body (3.1) and answers a
:class:`SearchQuery`, or raises :class:`SearchQueryError` naming the field it is about
(``filters.2.operator``); no I/O, no clock (the caller hands in ``now_ms`` for the default
window). The projections turn the tree into SQL (``projections.search``); this module knows the
API's names only, never a column.

What a query means:

* the window bounds the session's start (``startTimestamp`` .. ``endTimestamp``, inclusive; the
  last seven days by default, as the reference);
* session filters (3.2) are AND-ed; a filter's values are OR-ed for the positive operators and
  AND-ed for the negative ones (``isNot``, ``notContains``), as 3.4 says; ``is``/``isNot`` compare
  exactly (case-sensitive), ``contains``/``startsWith``/``endsWith`` ignore case;
* event filters (3.3) combine by ``eventsOrder``: ``then`` (each one matched by an event after
  the event that matched the one before, in the session's time order), ``and`` (all of them,
  any order) or ``or`` (any of them);
* a filter without values that needs some (``is`` with ``value: []``) is left out, as the
  reference does; identical session filters (same type, operator and source) are merged, their
  values unioned (event filters are not: two identical steps of a ``then`` are two steps).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

DAY_MS = 86_400_000
DEFAULT_WINDOW_MS = 7 * DAY_MS
LIMIT_MAX = 200
LIMIT_DEFAULT = 200
# Bounds a hostile body cannot pass (each value is one bound SQL parameter).
FILTERS_MAX = 50
VALUES_MAX = 100
VALUE_CHARS_MAX = 1_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

StringOperator = Literal[
    "is", "isNot", "contains", "notContains", "startsWith", "endsWith", "isAny", "isUndefined"
]
MathOperator = Literal["=", "!=", "<", ">", "<=", ">="]
EventsOrder = Literal["then", "and", "or"]

STRING_OPERATORS: tuple[str, ...] = (
    "is", "isNot", "contains", "notContains", "startsWith", "endsWith", "isAny", "isUndefined"
)  # fmt: skip
# The reference's other spellings of the same operators (3.4: on/notOn/onAny).
OPERATOR_ALIASES = {"on": "is", "notOn": "isNot", "onAny": "isAny"}
# Click-only operators on the selector instead of the label (3.4).
SELECTOR_OPERATORS = {
    "selector" + op[0].upper() + op[1:]: op
    for op in ("is", "isAny", "isNot", "isUndefined", "contains", "notContains", "startsWith",
               "endsWith")
}  # fmt: skip
MATH_OPERATORS: tuple[str, ...] = ("=", "!=", "<", ">", "<=", ">=")
NEGATIVE_OPERATORS = frozenset({"isNot", "notContains"})
VALUELESS_OPERATORS = frozenset({"isAny", "isUndefined"})


class SearchQueryError(ValueError):
    """A payload the search refuses: ``location`` is the path of the field (``("filters", "0",
    "type")``), ``message`` says what is wrong with it."""

    def __init__(self, location: tuple[str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(location)}: {message}")
        self.location = location
        self.message = message


# -- the query tree --------------------------------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class TextMatch:
    """A string condition: ``operator`` over ``values`` (empty for isAny/isUndefined)."""

    operator: StringOperator
    values: tuple[str, ...] = ()

    @property
    def negative(self) -> bool:
        """True for isNot/notContains (values AND-ed; an absent attribute matches)."""
        return self.operator in NEGATIVE_OPERATORS


@attrs.frozen(slots=True, kw_only=True)
class NumberMatch:
    """A numeric condition: ``value <operator> v`` for any of ``values`` (OR-ed)."""

    operator: MathOperator
    values: tuple[int | float, ...]


@attrs.frozen(slots=True, kw_only=True)
class RangeMatch:
    """``low <= value <= high``; an absent bound is open (``duration``'s ``[min, max]``)."""

    low: int | None
    high: int | None


Match = TextMatch | NumberMatch | RangeMatch


@attrs.frozen(slots=True, kw_only=True)
class SessionFilter:
    """A condition on one session attribute (3.2). ``field`` is the canonical filter type
    (``userBrowser``, ``metadata``, ...); ``key`` the metadata key of a metadata filter."""

    field: str
    match: Match
    key: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class EventProperty:
    """A condition on another property of the same event: a request's ``status``/``method``/
    ``duration``/``url``, a click's ``selector``, an input's ``value``, an error's ``source``."""

    name: str
    match: Match


@attrs.frozen(slots=True, kw_only=True)
class EventFilter:
    """One event a session must have (3.3): of ``kind``, its main value matching ``match`` (None:
    any event of that kind), and every one of ``properties`` true of that same event."""

    kind: str
    match: TextMatch | None
    properties: tuple[EventProperty, ...] = ()


@attrs.frozen(slots=True, kw_only=True)
class SearchQuery:
    """A validated search: window, filters, order of the events, sort and page."""

    start_ts: int
    end_ts: int
    session_filters: tuple[SessionFilter, ...]
    event_filters: tuple[EventFilter, ...]
    events_order: EventsOrder
    sort: str  # a name of SORT_FIELDS
    ascending: bool
    page: int
    limit: int

    @property
    def offset(self) -> int:
        """Sessions before this page."""
        return (self.page - 1) * self.limit


# -- the vocabulary --------------------------------------------------------------------------------

# Session filter types whose value is a string attribute of the session (3.2; Go adds
# userDeviceType). "platform" is the reference's device-type filter (desktop/mobile/tablet).
TEXT_SESSION_FIELDS: tuple[str, ...] = (
    "userOs", "userBrowser", "userDevice", "userDeviceType", "userCountry", "userCity",
    "userState", "userId", "userAnonymousId", "referrer", "revId", "platform", "utmSource",
    "utmMedium", "utmCampaign", "metadata", "issue",
)  # fmt: skip
NUMBER_SESSION_FIELDS: tuple[str, ...] = ("eventsCount", "pagesCount", "errorsCount")
RANGE_SESSION_FIELDS: tuple[str, ...] = ("duration",)
# The mobile variants of 3.2 filter the same attributes.
MOBILE_SESSION_ALIASES = {
    "userOsIos": "userOs",
    "userDeviceIos": "userDevice",
    "userCountryIos": "userCountry",
    "userIdIos": "userId",
    "userAnonymousIdIos": "userAnonymousId",
    "revIdIos": "revId",
}
# Event filter types (3.3) and the reference's mobile spellings of them.
EVENT_KINDS: tuple[str, ...] = (
    "click", "input", "location", "custom", "request", "graphql", "stateAction", "error",
    "tap", "swipe", "view", "crash",
)  # fmt: skip
EVENT_ALIASES = {
    "fetch": "request",
    "clickMobile": "tap",
    "inputMobile": "input",
    "viewMobile": "view",
    "customMobile": "custom",
    "requestMobile": "request",
    "errorMobile": "crash",
    "swipeMobile": "swipe",
}
# Properties of an event a sub-filter may test, per kind: name -> numeric (True) or text.
EVENT_PROPERTIES: dict[str, dict[str, bool]] = {
    "request": {"url": False, "status": True, "method": False, "duration": True},
    "graphql": {"method": False, "duration": True},
    "click": {"selector": False},
    "input": {"value": False},
    "error": {"source": False},
}
# The reference's sub-filter names (FetchFilterType, GraphqlFilterType) -> ours.
PROPERTY_ALIASES = {
    "fetchUrl": "url",
    "fetchStatusCode": "status",
    "fetchMethod": "method",
    "fetchDuration": "duration",
    "graphqlMethod": "method",
    "graphqlDuration": "duration",
}
# The property an event filter's ``source`` tests (input: its value; error: its source).
SOURCE_PROPERTY = {"input": "value", "error": "source"}

SORT_FIELDS: tuple[str, ...] = (
    "sessionId", "startTs", "endTs", "duration", "userId", "userAnonymousId", "userUuid",
    "userOs", "userOsVersion", "userBrowser", "userBrowserVersion", "userDevice",
    "userDeviceType", "userCountry", "userCity", "userState", "platform", "timezone", "revId",
    "trackerVersion", "referrer", "screenWidth", "screenHeight", "pagesCount", "eventsCount",
    "errorsCount", "issueScore", "utmSource", "utmMedium", "utmCampaign",
)  # fmt: skip
SORT_ALIASES = {"datetime": "startTs"}


def _folded(name: str) -> str:
    """A type name compared loosely: any case, no underscores (``EVENTS_COUNT``, ``USEROS``)."""
    return name.replace("_", "").lower()


def _index(names: tuple[str, ...], aliases: dict[str, str]) -> dict[str, str]:
    table = {_folded(n): n for n in names}
    table.update({_folded(a): n for a, n in aliases.items()})
    return table


_SESSION_TYPES = _index(
    TEXT_SESSION_FIELDS + NUMBER_SESSION_FIELDS + RANGE_SESSION_FIELDS, MOBILE_SESSION_ALIASES
)
_EVENT_TYPES = _index(EVENT_KINDS, EVENT_ALIASES)
_SORTS = {**{n: n for n in SORT_FIELDS}, **SORT_ALIASES}
# snake_case sort names too (the reference converts camelCase to its column names).
_SORTS.update({"".join("_" + c.lower() if c.isupper() else c for c in n): n for n in SORT_FIELDS})

# -- the parser ------------------------------------------------------------------------------------

_CUT = 64


def _cut(text: str) -> str:
    """``text`` as an error message quotes it (a hostile value must not be sent back whole)."""
    return text if len(text) <= _CUT else text[:_CUT] + "..."


def _present(body: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` that ``body`` has with a non-null value (aliases), else None."""
    for key in keys:
        if body.get(key) is not None:
            return body[key]
    return None


def _integer(raw: Any, where: tuple[str, ...]) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SearchQueryError(where, "Input should be a valid integer")
    if not INT64_MIN <= raw <= INT64_MAX:
        raise SearchQueryError(where, f"Input should be between {INT64_MIN} and {INT64_MAX}")
    return raw


def _timestamp(body: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first of ``keys`` (a field and its alias) given; each one given must be valid."""
    values = [_integer(body[k], (k,)) for k in keys if body.get(k) is not None]
    return values[0] if values else None


def _number(raw: Any, where: tuple[str, ...]) -> int | float:
    if isinstance(raw, str):
        try:
            raw = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            raise SearchQueryError(where, "Input should be a valid number") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != raw:
        raise SearchQueryError(where, "Input should be a valid number")
    if isinstance(raw, int):
        return _integer(raw, where)
    if raw in (float("inf"), float("-inf")):
        raise SearchQueryError(where, "Input should be a finite number")
    return raw


def _raw_values(raw: Any, where: tuple[str, ...]) -> list[Any]:
    """A filter's ``value``: a list, or one scalar taken as a list of one."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > VALUES_MAX:
        raise SearchQueryError(where, f"At most {VALUES_MAX} values")
    return items


def _texts(raw: Any, where: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_raw_values(raw, where)):
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise SearchQueryError((*where, str(i)), "Input should be a valid string")
        text = str(item)
        if len(text) > VALUE_CHARS_MAX:
            raise SearchQueryError((*where, str(i)), f"At most {VALUE_CHARS_MAX} characters")
        if text not in out:  # duplicate values removed (3.1)
            out.append(text)
    return tuple(out)


def _numbers(raw: Any, where: tuple[str, ...]) -> tuple[int | float, ...]:
    out: list[int | float] = []
    for i, item in enumerate(_raw_values(raw, where)):
        value = _number(item, (*where, str(i)))
        if value not in out:
            out.append(value)
    return tuple(out)


def _operator_name(raw: dict[str, Any], key: str, where: tuple[str, ...], default: str) -> str:
    operator = raw.get(key)
    if operator is None:
        return default
    if not isinstance(operator, str):
        raise SearchQueryError((*where, key), "Input should be a valid string")
    return operator


def _text_match(
    operator: str, values: Any, where: tuple[str, ...], key: str = "operator"
) -> TextMatch | None:
    """A string condition, or None when it has no values and needs some (left out)."""
    canonical = OPERATOR_ALIASES.get(operator, operator)
    if canonical not in STRING_OPERATORS:
        raise SearchQueryError(
            (*where, key),
            f"Unknown operator {_cut(operator)!r}; known: {', '.join(STRING_OPERATORS)}",
        )
    if canonical in VALUELESS_OPERATORS:
        return TextMatch(operator=canonical)  # type: ignore[arg-type]
    texts = _texts(values, (*where, "value"))
    if not texts:
        return None
    return TextMatch(operator=canonical, values=texts)  # type: ignore[arg-type]


def _number_match(operator: str, values: Any, where: tuple[str, ...]) -> NumberMatch | None:
    if operator not in MATH_OPERATORS:
        raise SearchQueryError(
            (*where, "operator"),
            f"Unknown operator {_cut(operator)!r}; known: {', '.join(MATH_OPERATORS)}",
        )
    numbers = _numbers(values, (*where, "value"))
    if not numbers:
        return None
    return NumberMatch(operator=operator, values=numbers)  # type: ignore[arg-type]


def _range_match(values: Any, where: tuple[str, ...]) -> RangeMatch | None:
    items = _raw_values(values, (*where, "value"))
    if len(items) > 2:
        raise SearchQueryError((*where, "value"), "A range is [min, max]")
    bounds = [
        None if item is None else _integer(_number(item, (*where, "value", str(i))), where)
        for i, item in enumerate(items)
    ]
    low = bounds[0] if bounds else None
    high = bounds[1] if len(bounds) > 1 else None
    if low is None and high is None:
        return None
    if low is not None and high is not None and low > high:
        raise SearchQueryError((*where, "value"), "min is greater than max")
    return RangeMatch(low=low, high=high)


def _session_filter(
    field: str, raw: dict[str, Any], where: tuple[str, ...]
) -> SessionFilter | None:
    key = None
    if field == "metadata":
        key = raw.get("source")
        if not isinstance(key, str) or not key:
            raise SearchQueryError((*where, "source"), "A metadata filter names its key here")
    match: Match | None
    if field in RANGE_SESSION_FIELDS:
        match = _range_match(raw.get("value"), where)
    elif field in NUMBER_SESSION_FIELDS:
        match = _number_match(_operator_name(raw, "operator", where, "="), raw.get("value"), where)
    else:
        match = _text_match(_operator_name(raw, "operator", where, "is"), raw.get("value"), where)
    return None if match is None else SessionFilter(field=field, match=match, key=key)


def _property(
    kind: str, name: str, operator: str, values: Any, where: tuple[str, ...]
) -> EventProperty | None:
    numeric = EVENT_PROPERTIES.get(kind, {}).get(name)
    if numeric is None:
        known = ", ".join(EVENT_PROPERTIES.get(kind, {})) or "none"
        raise SearchQueryError(
            (*where, "type"), f"{kind} events have no property {_cut(name)!r}; known: {known}"
        )
    match: Match | None = (
        _number_match(operator, values, where) if numeric else _text_match(operator, values, where)
    )
    return None if match is None else EventProperty(name=name, match=match)


def _sub_filters(kind: str, raw: Any, where: tuple[str, ...]) -> list[EventProperty]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SearchQueryError(where, "Input should be a valid list")
    if len(raw) > FILTERS_MAX:
        raise SearchQueryError(where, f"At most {FILTERS_MAX} filters")
    out = []
    for i, item in enumerate(raw):
        at = (*where, str(i))
        if not isinstance(item, dict):
            raise SearchQueryError(at, "Input should be a valid object")
        name = item.get("type")
        if not isinstance(name, str) or not name:
            raise SearchQueryError((*at, "type"), "Field required")
        name = PROPERTY_ALIASES.get(name, name)
        numeric = EVENT_PROPERTIES.get(kind, {}).get(name)
        operator = _operator_name(item, "operator", at, "=" if numeric else "is")
        prop = _property(kind, name, operator, item.get("value"), at)
        if prop is not None:
            out.append(prop)
    return out


def _event_filter(kind: str, raw: dict[str, Any], where: tuple[str, ...]) -> EventFilter | None:
    operator = _operator_name(raw, "operator", where, "is")
    properties = _sub_filters(kind, raw.get("filters"), (*where, "filters"))
    match: TextMatch | None
    if operator in SELECTOR_OPERATORS:
        if kind != "click":
            raise SearchQueryError((*where, "operator"), f"{operator} is for click filters only")
        selector = _text_match(SELECTOR_OPERATORS[operator], raw.get("value"), where)
        if selector is None:
            return None
        match = None
        properties.insert(0, EventProperty(name="selector", match=selector))
    else:
        match = _text_match(operator, raw.get("value"), where)
        if match is None and not properties:
            return None
        if match is not None and match.operator == "isAny":
            match = None  # any event of the kind
    source = raw.get("source")
    if source is not None and source != [] and kind in SOURCE_PROPERTY:
        source_operator = _operator_name(raw, "sourceOperator", where, "is")
        prop = _text_match(source_operator, source, where, key="sourceOperator")
        if prop is not None:
            properties.append(EventProperty(name=SOURCE_PROPERTY[kind], match=prop))
    return EventFilter(kind=kind, match=match, properties=tuple(properties))


def _filter_type(raw: Any, where: tuple[str, ...]) -> tuple[str, bool]:
    """(canonical type, is an event filter) of one item of ``filters``."""
    if not isinstance(raw, dict):
        raise SearchQueryError(where, "Input should be a valid object")
    name = raw.get("type")
    if not isinstance(name, str) or not name:
        raise SearchQueryError((*where, "type"), "Field required")
    is_event = raw.get("isEvent")
    if is_event is not None and not isinstance(is_event, bool):
        raise SearchQueryError((*where, "isEvent"), "Input should be a valid boolean")
    folded = _folded(name)
    # A name both lists know is decided by isEvent (none today; the reference derives it).
    if is_event is not False and folded in _EVENT_TYPES:
        return _EVENT_TYPES[folded], True
    if is_event is not True and folded in _SESSION_TYPES:
        return _SESSION_TYPES[folded], False
    raise SearchQueryError(
        (*where, "type"),
        f"Unknown filter type {_cut(name)!r}; session filters: "
        f"{', '.join(TEXT_SESSION_FIELDS + NUMBER_SESSION_FIELDS + RANGE_SESSION_FIELDS)}; "
        f"event filters: {', '.join(EVENT_KINDS)}",
    )


def _merged(filters: list[SessionFilter]) -> tuple[SessionFilter, ...]:
    """Identical (type, operator, source) text filters merged, values unioned (3.1)."""
    out: list[SessionFilter] = []
    for f in filters:
        for i, seen in enumerate(out):
            if (
                isinstance(f.match, TextMatch)
                and isinstance(seen.match, TextMatch)
                and (seen.field, seen.key, seen.match.operator)
                == (f.field, f.key, f.match.operator)
            ):
                values = seen.match.values + tuple(
                    v for v in f.match.values if v not in seen.match.values
                )
                out[i] = attrs.evolve(seen, match=attrs.evolve(seen.match, values=values))
                break
        else:
            out.append(f)
    return tuple(out)


def _choice(body: dict[str, Any], keys: tuple[str, ...], allowed: tuple[str, ...],
            default: str) -> str:  # fmt: skip
    raw = _present(body, *keys)
    if raw is None:
        return default
    if not isinstance(raw, str) or raw.lower() not in allowed:
        raise SearchQueryError(
            (keys[0],), f"Input should be one of {', '.join(repr(a) for a in allowed)}"
        )
    return raw.lower()


def parse_search(body: Any, *, now_ms: int) -> SearchQuery:
    """Validate a search payload (API.md 3.1; None = every finished session of the last 7 days).

    Raises :class:`SearchQueryError` naming the first offending field.
    """
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise SearchQueryError((), "Input should be a valid object")
    end_ts = _timestamp(body, ("endTimestamp", "endDate"))
    end_ts = now_ms if end_ts is None else end_ts
    start_ts = _timestamp(body, ("startTimestamp", "startDate"))
    start_ts = end_ts - DEFAULT_WINDOW_MS if start_ts is None else start_ts
    if start_ts > end_ts:
        raise SearchQueryError(("endTimestamp",), "Input should be >= startTimestamp")

    raw_filters = _present(body, "filters")
    if raw_filters is None:
        raw_filters = []
    if not isinstance(raw_filters, list):
        raise SearchQueryError(("filters",), "Input should be a valid list")
    if len(raw_filters) > FILTERS_MAX:
        raise SearchQueryError(("filters",), f"At most {FILTERS_MAX} filters")
    session_filters: list[SessionFilter] = []
    event_filters: list[EventFilter] = []
    for i, raw in enumerate(raw_filters):
        where = ("filters", str(i))
        name, is_event = _filter_type(raw, where)
        if is_event:
            event = _event_filter(name, raw, where)
            if event is not None:
                event_filters.append(event)
        else:
            session = _session_filter(name, raw, where)
            if session is not None:
                session_filters.append(session)

    events_order = _choice(body, ("eventsOrder", "events_order"), ("then", "and", "or"), "then")
    sort_raw = _present(body, "sort")
    if sort_raw is None:
        sort = "startTs"
    elif not isinstance(sort_raw, str) or sort_raw not in _SORTS:
        raise SearchQueryError(
            ("sort",), f"Unknown sort {_cut(str(sort_raw))!r}; known: {', '.join(SORT_FIELDS)}"
        )
    else:
        sort = _SORTS[sort_raw]
    order = _choice(body, ("order",), ("asc", "desc"), "desc")
    page_raw = _present(body, "page")
    page = 1 if page_raw is None else _integer(page_raw, ("page",))
    if page < 1:
        raise SearchQueryError(("page",), "Input should be >= 1")
    limit_raw = _present(body, "limit")
    limit = LIMIT_DEFAULT if limit_raw is None else _integer(limit_raw, ("limit",))
    if not 1 <= limit <= LIMIT_MAX:
        raise SearchQueryError(("limit",), f"Input should be 1..{LIMIT_MAX}")
    if (page - 1) * limit > INT64_MAX:
        raise SearchQueryError(("page",), "Page out of range")
    return SearchQuery(
        start_ts=start_ts,
        end_ts=end_ts,
        session_filters=_merged(session_filters),
        event_filters=tuple(event_filters),
        events_order=events_order,  # type: ignore[arg-type]
        sort=sort,
        ascending=order == "asc",
        page=page,
        limit=limit,
    )
