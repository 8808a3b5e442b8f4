"""Session search (API.md 3) over the sessions and events projections: the SQL of a query tree.

:func:`search_sessions` answers ``(total, page of SessionRow)`` for an
:class:`engine.search_query.SearchQuery`; :func:`explain_search` the query plan of the same SQL.
This module owns no table: it reads ``sessions`` (its columns and indexes are the sessions
projection's, step 2 adds the UTM tags and the indexes search needs) and ``session_events``
(whose step 2 adds the partial indexes by label, name and value). So ``forget_sessions`` and
``reset`` of those two projections already cover everything search reads.

How a query becomes SQL (every value a bound parameter; LIKE patterns escaped):

* one ``SELECT`` over ``sessions`` of the project, in the window, finished (``duration IS NOT
  NULL``), with one condition per session filter;
* an event filter whose value can be looked up (``is``, ``contains``, ``startsWith``,
  ``endsWith`` on the searched column) becomes ``session_id IN (SELECT session_id FROM
  session_events WHERE project_id = ? AND type IN (...) AND ...)``, answered from a partial index
  (``is``: a seek; the others: a scan of that project's entries of that type, never of every
  event); any other (``isNot``, ``isUndefined``, any event of a kind, properties only) is an
  ``EXISTS`` over the candidate session's own rows (a primary-key range);
* ``then`` adds one nested ``EXISTS`` chain over the session's rows, each step after the one
  before in (timestamp, message id) order; ``or`` ORs the filters' conditions;
* ``total`` counts the same ``WHERE`` in the same read snapshot as the page.

Case rules (3.4): ``is``/``isNot`` are exact; the LIKE operators ignore case (SQLite's LIKE folds
ASCII letters only, where the reference's ILIKE folds every letter).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from engine.search_query import (
    EventFilter,
    EventProperty,
    Match,
    NumberMatch,
    RangeMatch,
    SearchQuery,
    SessionFilter,
    TextMatch,
)
from projections import sessions
from projections.sessions import UNKNOWN_COUNTRY, SessionRow

# Session filter type -> its column (3.2). "platform" filters the device type, as the reference's
# does (its values are desktop/mobile/tablet).
SESSION_COLUMNS: dict[str, str] = {
    "userOs": "user_os",
    "userBrowser": "user_browser",
    "userDevice": "user_device",
    "userDeviceType": "user_device_type",
    "userCountry": "user_country",
    "userCity": "user_city",
    "userState": "user_state",
    "userId": "user_id",
    "userAnonymousId": "user_anonymous_id",
    "referrer": "referrer",
    "revId": "rev_id",
    "platform": "user_device_type",
    "utmSource": "utm_source",
    "utmMedium": "utm_medium",
    "utmCampaign": "utm_campaign",
    "eventsCount": "events_count",
    "pagesCount": "pages_count",
    "errorsCount": "errors_count",
    "duration": "duration",
}
# Sort name (engine.search_query.SORT_FIELDS) -> column.
SORT_COLUMNS: dict[str, str] = {
    "sessionId": "session_id",
    "startTs": "start_ts",
    "endTs": "end_ts",
    "duration": "duration",
    "userId": "user_id",
    "userAnonymousId": "user_anonymous_id",
    "userUuid": "user_uuid",
    "userOs": "user_os",
    "userOsVersion": "user_os_version",
    "userBrowser": "user_browser",
    "userBrowserVersion": "user_browser_version",
    "userDevice": "user_device",
    "userDeviceType": "user_device_type",
    "userCountry": "user_country",
    "userCity": "user_city",
    "userState": "user_state",
    "platform": "platform",
    "timezone": "timezone",
    "revId": "rev_id",
    "trackerVersion": "tracker_version",
    "referrer": "referrer",
    "screenWidth": "screen_width",
    "screenHeight": "screen_height",
    "pagesCount": "pages_count",
    "eventsCount": "events_count",
    "errorsCount": "errors_count",
    "issueScore": "issue_score",
    "utmSource": "utm_source",
    "utmMedium": "utm_medium",
    "utmCampaign": "utm_campaign",
}


@attrs.frozen(slots=True)
class EventKind:
    """Where an event filter's kind lives: its row types and the columns its value is matched on
    (either of them: an error's name or its message)."""

    row_types: tuple[str, ...]
    columns: tuple[str, ...]


# Column -> the row types of the events projection's partial index on it, spelled as its WHERE
# is: the planner uses a partial index only when the query repeats the index's condition.
INDEXED_TYPES: dict[str, tuple[str, ...]] = {
    "label": ("CLICK", "INPUT", "TAP", "SWIPE"),
    "name": ("CUSTOM", "GRAPHQL", "STATEACTION", "ERROR", "VIEW", "CRASH"),
    "value": ("LOCATION", "REQUEST", "ERROR", "CRASH"),
}

EVENT_KINDS: dict[str, EventKind] = {
    "click": EventKind(("CLICK",), ("label",)),
    "input": EventKind(("INPUT",), ("label",)),
    "tap": EventKind(("TAP",), ("label",)),
    "swipe": EventKind(("SWIPE",), ("label",)),
    "location": EventKind(("LOCATION",), ("value",)),
    "request": EventKind(("REQUEST",), ("value",)),
    "custom": EventKind(("CUSTOM",), ("name",)),
    "graphql": EventKind(("GRAPHQL",), ("name",)),
    "stateAction": EventKind(("STATEACTION",), ("name",)),
    "view": EventKind(("VIEW",), ("name",)),
    "error": EventKind(("ERROR",), ("name", "value")),
    "crash": EventKind(("CRASH",), ("name", "value")),
}
# Event property (EventProperty.name) -> its SQL over the row alias ``e``.
PROPERTY_COLUMNS: dict[str, str] = {
    "url": "e.url",
    "status": "e.status",
    "method": "e.method",
    "duration": "e.duration",
    "selector": "e.selector",
    "value": "e.value",
    "source": "json_extract(e.data, '$.source')",
}
# Operators the partial indexes answer without reading every row of the session.
_LOOKUP_OPERATORS = frozenset({"is", "contains", "startsWith", "endsWith"})
_LIKE_PATTERNS = {"contains": "%{}%", "startsWith": "{}%", "endsWith": "%{}"}
_MATH_SQL = {"=": "=", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


def like_escape(text: str) -> str:
    r"""``text`` as a literal inside a LIKE pattern (``ESCAPE '\'``): %, _ and \ escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _quoted(names: Sequence[str]) -> str:
    # Row types are this module's constants (never input): literals, so that the planner can
    # match the partial indexes' conditions.
    return ", ".join(f"'{n}'" for n in names)


class _Sql:
    """A WHERE clause being built: its named parameters (named, so that an expression holding
    one, such as a metadata key's lookup, can appear several times in the text)."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, *values: Any) -> str:
        """Placeholders for ``values`` (their parameters added)."""
        names = []
        for value in values:
            name = f"p{len(self.params)}"
            self.params[name] = value
            names.append(f":{name}")
        return ", ".join(names)

    def text(self, expr: str, match: TextMatch) -> str:
        """``expr`` (a column or SQL value) against a string condition (3.4)."""
        op, values = match.operator, match.values
        if op == "is":
            return f"{expr} IN ({self.bind(*values)})"
        if op == "isNot":
            return f"coalesce({expr}, '') NOT IN ({self.bind(*values)})"
        if op == "isAny":
            return f"coalesce({expr}, '') != ''"
        if op == "isUndefined":
            return f"coalesce({expr}, '') = ''"
        if op == "notContains":
            return " AND ".join(
                f"coalesce({expr}, '') NOT LIKE {self.bind(_pattern('contains', v))} ESCAPE '\\'"
                for v in values
            )
        likes = " OR ".join(f"{expr} LIKE {self.bind(_pattern(op, v))} ESCAPE '\\'" for v in values)
        return f"({likes})"

    def number(self, expr: str, match: NumberMatch) -> str:
        ors = " OR ".join(
            f"{expr} {_MATH_SQL[match.operator]} {self.bind(v)}" for v in match.values
        )
        return f"({ors})"

    def range(self, expr: str, match: RangeMatch) -> str:
        parts = []
        if match.low is not None:
            parts.append(f"{expr} >= {self.bind(match.low)}")
        if match.high is not None:
            parts.append(f"{expr} <= {self.bind(match.high)}")
        return " AND ".join(parts)

    def any(self, expr: str, match: Match) -> str:
        if isinstance(match, TextMatch):
            return self.text(expr, match)
        if isinstance(match, NumberMatch):
            return self.number(expr, match)
        return self.range(expr, match)


def _pattern(operator: str, value: str) -> str:
    return _LIKE_PATTERNS[operator].format(like_escape(value))


def _session_condition(sql: _Sql, f: SessionFilter) -> str:
    if f.field == "issue":
        return _issue_condition(sql, f.match)
    if f.field == "metadata":
        assert f.key is not None
        expr = f"(SELECT m.value FROM json_each(s.metadata) AS m WHERE m.key = {sql.bind(f.key)})"
        return sql.any(expr, f.match)
    if f.field == "userCountry":
        # As the answers show it: "" (GeoIP knew none) is the API's "UN".
        return sql.any(f"coalesce(nullif(s.user_country, ''), '{UNKNOWN_COUNTRY}')", f.match)
    return sql.any(f"s.{SESSION_COLUMNS[f.field]}", f.match)


def _issue_condition(sql: _Sql, match: Match) -> str:
    """Issue types are a JSON array: a positive match needs one of them to match, a negative
    one none of them to match what it names."""
    assert isinstance(match, TextMatch)
    each = "SELECT 1 FROM json_each(s.issue_types) AS i WHERE "
    if match.operator == "isAny":
        return "s.issue_types != '[]'"
    if match.operator == "isUndefined":
        return "s.issue_types = '[]'"
    if match.negative:
        positive = TextMatch(
            operator="is" if match.operator == "isNot" else "contains", values=match.values
        )
        return f"NOT EXISTS ({each}{sql.text('i.value', positive)})"
    return f"EXISTS ({each}{sql.text('i.value', match)})"


def _event_row_condition(
    sql: _Sql, f: EventFilter, alias: str, columns: Sequence[str] | None = None
) -> str:
    """What one row (``alias``) must be to match event filter ``f``: its type, value (on
    ``columns``, the kind's own by default) and properties."""
    kind = EVENT_KINDS[f.kind]
    parts = [f"{alias}.type IN ({_quoted(kind.row_types)})"]
    if f.match is not None:
        matched = [sql.text(f"{alias}.{c}", f.match) for c in columns or kind.columns]
        # Either column matching (error: name or message); for a negation, neither may match.
        joiner = " AND " if f.match.negative else " OR "
        parts.append(f"({joiner.join(matched)})" if len(matched) > 1 else matched[0])
    for prop in f.properties:
        parts.append(_property_condition(sql, prop, alias))
    return " AND ".join(parts)


def _property_condition(sql: _Sql, prop: EventProperty, alias: str) -> str:
    expr = PROPERTY_COLUMNS[prop.name].replace("e.", f"{alias}.")
    return sql.any(expr, prop.match)


def _lookup(sql: _Sql, f: EventFilter, project_id: int) -> str | None:
    """``s.session_id IN (...)`` from the partial indexes, or None when the filter's value
    cannot be looked up there (the caller then reads the candidate session's own rows).

    One lookup per searched column (an error's name and its message: two indexes, a UNION).
    """
    if f.match is None or f.match.operator not in _LOOKUP_OPERATORS:
        return None
    selects = []
    for column in EVENT_KINDS[f.kind].columns:
        where = (
            f"x.project_id = {sql.bind(project_id)}"
            f" AND x.type IN ({_quoted(INDEXED_TYPES[column])})"
            f" AND {_event_row_condition(sql, f, 'x', (column,))}"
        )
        selects.append(f"SELECT x.session_id FROM session_events AS x WHERE {where}")
    return f"s.session_id IN ({' UNION '.join(selects)})"


def _exists(sql: _Sql, f: EventFilter) -> str:
    """The candidate session has a row matching ``f`` (a scan of its own rows)."""
    return (
        "EXISTS (SELECT 1 FROM session_events AS e WHERE e.session_id = s.session_id"
        f" AND {_event_row_condition(sql, f, 'e')})"
    )


def _sequence(sql: _Sql, filters: Sequence[EventFilter], project_id: int) -> str:
    """The session has rows matching ``filters`` in this order (each after the one before).

    A step with an exact value on one column reads the session's matching rows through that
    column's partial index ((project_id, type, value) then the session id: the entries end with
    the primary key), not every row of the session: half the time of a two-step sequence over
    1,300 candidate sessions.
    """

    def step(i: int) -> str:
        alias = f"e{i}"
        f = filters[i]
        parts = [f"{alias}.session_id = s.session_id"]
        columns = EVENT_KINDS[f.kind].columns
        if f.match is not None and f.match.operator == "is" and len(columns) == 1:
            parts.append(
                f"{alias}.project_id = {sql.bind(project_id)}"
                f" AND {alias}.type IN ({_quoted(INDEXED_TYPES[columns[0]])})"
            )
        parts.append(_event_row_condition(sql, f, alias))
        if i > 0:
            before = f"e{i - 1}"
            parts.append(
                f"({alias}.timestamp, {alias}.message_id)"
                f" > ({before}.timestamp, {before}.message_id)"
            )
        if i + 1 < len(filters):
            parts.append(step(i + 1))
        return f"EXISTS (SELECT 1 FROM session_events AS {alias} WHERE {' AND '.join(parts)})"

    return step(0)


def _event_conditions(sql: _Sql, query: SearchQuery, project_id: int) -> list[str]:
    filters = query.event_filters
    if not filters:
        return []
    if query.events_order == "or" and len(filters) > 1:
        ors = [_lookup(sql, f, project_id) or _exists(sql, f) for f in filters]
        return [f"({' OR '.join(ors)})"]
    conditions = []
    sequenced = query.events_order == "then" and len(filters) > 1
    for f in filters:
        lookup = _lookup(sql, f, project_id)
        if lookup is not None:
            conditions.append(lookup)  # exact for and; narrows the candidates for then
        elif not sequenced:
            conditions.append(_exists(sql, f))
    if sequenced:
        conditions.append(_sequence(sql, filters, project_id))
    return conditions


# Session filters whose exact match an index of the sessions table answers, and that index.
_INDEXED_SESSION_FIELDS = {
    "userId": "sessions_project_user",
    "userAnonymousId": "sessions_project_anonymous",
}


def _driver(query: SearchQuery) -> str:
    """Which index the search starts from: the name of a sessions index (a user id or anonymous
    id ``is``: the index of that column), "events" (an event value ``is``: the session ids the
    events' partial index gives, looked up by primary key) or "window" (the start-time index,
    in sort order when sorting by start)."""
    for f in query.session_filters:
        exact = isinstance(f.match, TextMatch) and f.match.operator == "is"
        if exact and f.field in _INDEXED_SESSION_FIELDS:
            return _INDEXED_SESSION_FIELDS[f.field]
    if query.events_order != "or" or len(query.event_filters) == 1:
        for e in query.event_filters:
            if e.match is not None and e.match.operator == "is":
                return "events"
    return "window"


@attrs.frozen(slots=True)
class SearchSql:
    """The SQL of a search: its WHERE (over ``sessions AS s``) and parameters, and its order."""

    source: str  # the FROM clause
    where: str
    params: dict[str, Any]
    order_by: str
    # True when the page query reads every match anyway (it starts from a user's or an event
    # value's index, then sorts): the total then comes with it (count(*) OVER ()) instead of a
    # second evaluation of the WHERE, which costs twice for a then-sequence over many
    # candidates. From the window's index the page stops after LIMIT rows in sort order, and
    # the count reads that index alone: two queries are cheaper there.
    counted_with_page: bool


def build_search(project_id: int, query: SearchQuery) -> SearchSql:
    """The WHERE and ORDER BY of ``query`` over the project's sessions."""
    sql = _Sql()
    driver = _driver(query)
    # A unary + keeps SQLite from using an index for that term (documented behaviour): without
    # statistics the planner took the window's index over a user id's or an event value's, the
    # difference between reading every session of the week and reading a few.
    project = "+s.project_id" if driver == "events" else "s.project_id"
    start = "s.start_ts" if driver == "window" else "+s.start_ts"
    parts = [
        f"{project} = {sql.bind(project_id)}",
        f"{start} BETWEEN {sql.bind(query.start_ts)} AND {sql.bind(query.end_ts)}",
        "s.duration IS NOT NULL",  # only finished sessions are searched (API.md 2.5)
    ]
    parts += [_session_condition(sql, f) for f in query.session_filters]
    parts += _event_conditions(sql, query, project_id)
    direction = "ASC" if query.ascending else "DESC"
    # Ties: the higher issue score first (the reference's secondary key), then the session id,
    # so that pages never overlap.
    order_by = (
        f"s.{SORT_COLUMNS[query.sort]} {direction}, s.issue_score DESC, s.session_id {direction}"
    )
    source = "sessions AS s"
    if driver not in ("window", "events"):
        # The planner preferred the window's index (it gives the sort order) to the user's.
        source += f" INDEXED BY {driver}"
    return SearchSql(
        source=source,
        where=" AND ".join(parts),
        params=sql.params,
        order_by=order_by,
        counted_with_page=driver != "window",
    )


_COLUMNS = ", ".join(f"s.{c}" for c in sessions.ROW_COLUMNS)


def search_sessions(
    conn: sqlite3.Connection, project_id: int, query: SearchQuery
) -> tuple[int, list[SessionRow]]:
    """``(total, page)``: how many of the project's finished sessions match ``query``, and the
    page it asks for, sorted; read in one snapshot."""
    built = build_search(project_id, query)
    page = {**built.params, "limit": query.limit, "offset": query.offset}
    conn.execute("BEGIN")  # deferred: a read snapshot, takes no write lock
    try:
        if built.counted_with_page:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, count(*) OVER () FROM {built.source} WHERE {built.where}"
                f" ORDER BY {built.order_by} LIMIT :limit OFFSET :offset",
                page,
            ).fetchall()
            if rows:
                return int(rows[0][-1]), [sessions.session_row(r[:-1]) for r in rows]
        ((total,),) = conn.execute(
            f"SELECT count(*) FROM {built.source} WHERE {built.where}", built.params
        )
        if total <= query.offset:
            return int(total), []
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM {built.source} WHERE {built.where}"
            f" ORDER BY {built.order_by} LIMIT :limit OFFSET :offset",
            page,
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return int(total), [sessions.session_row(r) for r in rows]


def explain_search(conn: sqlite3.Connection, project_id: int, query: SearchQuery) -> list[str]:
    """The query plan (``EXPLAIN QUERY PLAN`` details) of the page query of ``query``."""
    built = build_search(project_id, query)
    sql = (
        f"EXPLAIN QUERY PLAN SELECT {_COLUMNS} FROM {built.source} WHERE {built.where}"
        f" ORDER BY {built.order_by} LIMIT :limit OFFSET :offset"
    )
    params = {**built.params, "limit": query.limit, "offset": query.offset}
    return [str(row[3]) for row in conn.execute(sql, params)]
