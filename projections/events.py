"""The ``events`` projection: one row per ``SessionEvent`` (the session's event list).

Owns the ``session_events`` table, keyed by (session_id, message_id, type) -- an ``IssueDetected``
may share the message id of the click it is about -- and read in (timestamp, message_id) order.
Common fields have typed columns (searchable later); what only one type has goes in the ``data``
JSON object. ``PageTimingsReported`` and ``WebVitalReported`` do not make rows: they merge into the
``data`` of the LOCATION row named by their ``page_message_id``.

A second event with an existing key is ignored (first one wins), as the reference backend's
``ON CONFLICT DO NOTHING`` does.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import attrs

from engine import events as ev
from projections.base import SqlProjection, forget_checkpoint
from projections.registry import Registry
from storage.schema import apply_migrations
from storage.sqlite import connect

NAME = "events"

STEPS: list[str] = [
    """
    CREATE TABLE session_events (
        session_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        type TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        timestamp INTEGER NOT NULL,
        position INTEGER NOT NULL,
        page_url TEXT NOT NULL DEFAULT '',
        url TEXT NULL,
        label TEXT NULL,
        name TEXT NULL,
        value TEXT NULL,
        selector TEXT NULL,
        duration INTEGER NULL,
        hesitation INTEGER NULL,
        status INTEGER NULL,
        method TEXT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (session_id, message_id, type)
    ) WITHOUT ROWID;
    """,
    # 2: session search (projections.search) finds the sessions with an event of a value through
    # these, never by reading every event. Partial: only the row types searched by that column
    # (an input's value, a request's name... are not searched). Each entry ends with the primary
    # key, so the session id comes from the index alone.
    """
    CREATE INDEX session_events_by_label ON session_events (project_id, type, label)
        WHERE type IN ('CLICK', 'INPUT', 'TAP', 'SWIPE');
    CREATE INDEX session_events_by_name ON session_events (project_id, type, name)
        WHERE type IN ('CUSTOM', 'GRAPHQL', 'STATEACTION', 'ERROR', 'VIEW', 'CRASH');
    CREATE INDEX session_events_by_value ON session_events (project_id, type, value)
        WHERE type IN ('LOCATION', 'REQUEST', 'ERROR', 'CRASH');
    """,
]

# PageTimingsReported fields kept in a LOCATION row's ``data["timings"]`` (raw, ms from nav start).
TIMING_FIELDS: tuple[str, ...] = (
    "request_start",
    "response_start",
    "response_end",
    "dom_content_loaded_event_start",
    "dom_content_loaded_event_end",
    "load_event_start",
    "load_event_end",
    "first_paint",
    "first_contentful_paint",
    "speed_index",
    "visually_complete",
    "time_to_interactive",
)

_COLUMNS: tuple[str, ...] = (
    "session_id",
    "message_id",
    "type",
    "project_id",
    "timestamp",
    "position",
    "page_url",
    "url",
    "label",
    "name",
    "value",
    "selector",
    "duration",
    "hesitation",
    "status",
    "method",
    "data",
)


@attrs.frozen(slots=True, kw_only=True)
class EventRow:
    """One row of a session's event list. ``data`` holds the type-specific fields."""

    session_id: int
    message_id: int
    type: str
    project_id: int
    timestamp: int
    position: int
    page_url: str
    url: str | None
    label: str | None
    name: str | None
    value: str | None
    selector: str | None
    duration: int | None
    hesitation: int | None
    status: int | None
    method: str | None
    data: dict[str, Any]


# -- schema ----------------------------------------------------------------------------------------


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the session_events table."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the session_events table and forget the checkpoint."""
    conn.execute("DELETE FROM session_events")
    forget_checkpoint(conn, NAME)


# -- apply -----------------------------------------------------------------------------------------


def base_url(url: str) -> str:
    """``url`` without query string and fragment (the reference's ``base_referrer``)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _split(url: str) -> tuple[str, str, str]:
    """(host, path, query) of a URL; empty strings for what is missing or unparsable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", url, ""
    return parts.netloc, parts.path or "/", parts.query


def _decode_json(text: str) -> Any:
    """The JSON value of ``text``, or ``text`` itself when it is not JSON (trackers send both)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


_MASKED = '{"value_masked":true}'
_NOT_MASKED = '{"value_masked":false}'


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


# Not frozen: a frozen attrs class sets each field through object.__setattr__, which made a CLICK
# row's columns cost about three times what the old match statement did (measured, hot path);
# this value lives for one call, so nothing gains from freezing it.
@attrs.define(slots=True, kw_only=True)
class RowFields:
    """The type-specific columns of an event row (what a mapper fills; the rest stays NULL).

    ``data`` is the JSON object, or its text already made (the hot rows skip ``json.dumps``).
    """

    url: str | None = None
    label: str | None = None
    name: str | None = None
    value: str | None = None
    selector: str | None = None
    duration: int | None = None
    hesitation: int | None = None
    status: int | None = None
    method: str | None = None
    data: dict[str, Any] | str = "{}"


E = TypeVar("E", bound=ev.SessionEvent)


@attrs.frozen(slots=True)
class RowMapper:
    """How one domain event class becomes a row: the row ``type`` and its columns."""

    row_type: str
    fields: Callable[[Any], RowFields]


# Domain event class -> its row mapper. An event whose class has no entry makes no row.
ROW_MAPPERS: Registry[type[ev.SessionEvent], RowMapper] = Registry("event row mappers")


def row_mapper(
    event_type: type[E], row_type: str
) -> Callable[[Callable[[E], RowFields]], Callable[[E], RowFields]]:
    """Register the decorated function as the mapper of ``event_type`` rows of type ``row_type``
    (the names of API.md 2.1 / 2.3). A class registered twice is refused (ValueError)."""

    def register(fields: Callable[[E], RowFields]) -> Callable[[E], RowFields]:
        ROW_MAPPERS.register(event_type, RowMapper(row_type, fields))
        return fields

    return register


@row_mapper(ev.PageVisited, "LOCATION")
def _location(event: ev.PageVisited) -> RowFields:
    host, path, query = _split(event.url)
    return RowFields(
        url=event.url,
        value=path,
        data={
            "host": host,
            "path": path,
            "query": query,
            "referrer": event.referrer,
            "base_referrer": base_url(event.referrer),
            "title": event.title,
            "loaded": event.loaded,
            "navigation_start": event.navigation_start,
        },
    )


@row_mapper(ev.Clicked, "CLICK")
def _click(event: ev.Clicked) -> RowFields:
    return RowFields(
        label=event.label,
        selector=event.selector,
        hesitation=event.hesitation_ms,
        url=event.page_url,
        # The two most frequent rows get their JSON text without json.dumps (a third of the
        # cost of a row on the hot path); same text as json.dumps(sort_keys=True).
        data=(
            f'{{"normalized_x":{_json_int(event.normalized_x)},'
            f'"normalized_y":{_json_int(event.normalized_y)}}}'
        ),
    )


@row_mapper(ev.InputChanged, "INPUT")
def _input(event: ev.InputChanged) -> RowFields:
    return RowFields(
        label=event.label,
        value=event.value,
        duration=event.duration_ms,
        hesitation=event.hesitation_ms,
        data=_MASKED if event.value_masked else _NOT_MASKED,
    )


@row_mapper(ev.MobileCustomEventRecorded, "CUSTOM")
@row_mapper(ev.CustomEventRecorded, "CUSTOM")
def _custom(event: ev.CustomEventRecorded) -> RowFields:
    return RowFields(name=event.name, data={"payload": event.payload})


@row_mapper(ev.ErrorRaised, "ERROR")
def _error(event: ev.ErrorRaised) -> RowFields:
    return RowFields(
        name=event.name,
        value=event.message,
        data={"payload": event.payload, "source": event.source},
    )


@row_mapper(ev.MobileRequestMade, "REQUEST")
@row_mapper(ev.RequestMade, "REQUEST")
def _request(event: ev.RequestMade) -> RowFields:
    # ``value`` is the URL's path: what a search's request filter matches (API.md 3.3).
    _host, path, _query = _split(event.url)
    return RowFields(
        url=event.url,
        value=path,
        method=event.method,
        status=event.status,
        duration=event.duration_ms,
        data={
            "request_type": event.request_type,
            "request_body": event.request_body,
            "response_body": event.response_body,
            "transferred_size": event.transferred_size,
        },
    )


@row_mapper(ev.MobileGraphQLCalled, "GRAPHQL")
@row_mapper(ev.GraphQLCalled, "GRAPHQL")
def _graphql(event: ev.GraphQLCalled) -> RowFields:
    return RowFields(
        name=event.operation_name,
        method=event.operation_kind,
        duration=event.duration_ms,
        data={"variables": event.variables, "response": event.response},
    )


@row_mapper(ev.StateActionDispatched, "STATEACTION")
def _state_action(event: ev.StateActionDispatched) -> RowFields:
    return RowFields(name=event.action_type)


@row_mapper(ev.MobileIssueDetected, "ISSUE")
@row_mapper(ev.IssueDetected, "ISSUE")
def _issue(event: ev.IssueDetected) -> RowFields:
    return RowFields(
        name=event.issue_type,
        data={
            "context_string": event.context_string,
            "context": event.context,
            "payload": event.payload,
        },
    )


# -- rows of mobile sessions (MOBILE.md 5.2; the reused web events are registered above) ----------


@row_mapper(ev.Tapped, "TAP")
def _tap(event: ev.Tapped) -> RowFields:
    return RowFields(label=event.label, data={"x": event.x, "y": event.y})


@row_mapper(ev.Swiped, "SWIPE")
def _swipe(event: ev.Swiped) -> RowFields:
    return RowFields(label=event.label, value=event.direction)


@row_mapper(ev.MobileInputEntered, "INPUT")
def _mobile_input(event: ev.MobileInputEntered) -> RowFields:
    return RowFields(label=event.label)  # the value is never stored (MOBILE.md 5.2)


@row_mapper(ev.ViewComponentChanged, "VIEW")
def _view(event: ev.ViewComponentChanged) -> RowFields:
    return RowFields(name=event.screen_name, label=event.view_name, data={"visible": event.visible})


@row_mapper(ev.Crashed, "CRASH")
def _crash(event: ev.Crashed) -> RowFields:
    return RowFields(name=event.name, value=event.reason, data={"stacktrace": event.stacktrace})


def _row_params(event: ev.SessionEvent, mapper: RowMapper) -> tuple[Any, ...]:
    """The column values of the row for ``event`` (in ``_COLUMNS`` order)."""
    f = mapper.fields(event)
    data = f.data
    return (
        event.session_id,
        event.message_id,
        mapper.row_type,
        event.project_id,
        event.timestamp,
        event.position,
        event.page_url,
        f.url,
        f.label,
        f.name,
        f.value,
        f.selector,
        f.duration,
        f.hesitation,
        f.status,
        f.method,
        data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), sort_keys=True),
    )


_INSERT = (
    f"INSERT OR IGNORE INTO session_events ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
# json_patch merges objects recursively (RFC 7396), so a second timing message only adds its keys.
_MERGE_DATA = (
    "UPDATE session_events SET data = json_patch(data, ?)"
    " WHERE session_id = ? AND message_id = ? AND type = 'LOCATION'"
)


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Insert the rows of ``events`` and merge page timings/vitals (caller holds the transaction).

    Hot path: one ``executemany`` for all rows, one for all page updates, in delivery order
    (a page's timings follow its LOCATION row in the session's order, so inserting first is
    right). Not sqlite-utils ``insert_all``: it commits per chunk, and the rows must commit with
    the checkpoint.
    """
    rows: list[tuple[Any, ...]] = []
    merges: list[tuple[str, int, int]] = []
    for event in events:
        # By exact class (a subclass is another event type); every key is a SessionEvent.
        if (mapper := ROW_MAPPERS.get(type(event))) is not None:
            rows.append(_row_params(cast(ev.SessionEvent, event), mapper))
        elif isinstance(event, ev.PageTimingsReported):
            timings = {f: getattr(event, f) for f in TIMING_FIELDS if getattr(event, f) is not None}
            if timings:
                patch = json.dumps({"timings": timings}, separators=(",", ":"), sort_keys=True)
                merges.append((patch, event.session_id, event.page_message_id))
        elif isinstance(event, ev.WebVitalReported):
            patch = json.dumps({"web_vitals": {event.name: event.value}}, separators=(",", ":"))
            merges.append((patch, event.session_id, event.page_message_id))
    if rows:
        conn.executemany(_INSERT, rows)
    if merges:
        conn.executemany(_MERGE_DATA, merges)


def forget_sessions(conn: sqlite3.Connection, session_ids: Sequence[int]) -> None:
    """Drop these sessions' event rows."""
    conn.executemany("DELETE FROM session_events WHERE session_id = ?", [(s,) for s in session_ids])


PROJECTION = SqlProjection(
    name=NAME, migrate=migrate, apply=apply, reset=reset, forget_sessions=forget_sessions
)


# -- queries ---------------------------------------------------------------------------------------


def session_events(
    conn: sqlite3.Connection,
    project_id: int,
    session_id: int,
    *,
    types: Sequence[str] | None = None,
) -> list[EventRow]:
    """The event rows of one session of a project, by (timestamp, message_id, type).

    The primary key finds the session's rows; they are sorted in memory (a session has tens of
    thousands at most): an index on the order would cost every insert on the hot path a second
    B-tree.

    ``types`` restricts to those row types (all when None).
    """
    params: list[Any] = [session_id, project_id]
    if types is None:
        sql = _SELECT_SESSION
    else:
        sql = _SELECT_SESSION_TYPES.format(", ".join("?" for _ in types))
        params.extend(types)
    return [_event_row(values) for values in conn.execute(sql, params)]


_SELECT_SESSION = (
    f"SELECT {', '.join(_COLUMNS)} FROM session_events WHERE session_id = ? AND project_id = ?"
    " ORDER BY timestamp, message_id, type"
)
_SELECT_SESSION_TYPES = (
    f"SELECT {', '.join(_COLUMNS)} FROM session_events WHERE session_id = ? AND project_id = ?"
    " AND type IN ({}) ORDER BY timestamp, message_id, type"
)
_EMPTY_DATA = "{}"


def _event_row(v: tuple[Any, ...]) -> EventRow:
    # Keywords spelled out (not dict(zip(...)) + **): this runs once per row of every events
    # answer, and ``_COLUMNS`` fixes the order.
    data = v[16]
    return EventRow(
        session_id=v[0], message_id=v[1], type=v[2], project_id=v[3], timestamp=v[4],
        position=v[5], page_url=v[6], url=v[7], label=v[8], name=v[9], value=v[10],
        selector=v[11], duration=v[12], hesitation=v[13], status=v[14], method=v[15],
        data={} if data == _EMPTY_DATA else json.loads(data),
    )  # fmt: skip


# A session with at most this many rows is answered on the trio thread: ~12 us a row from the
# query to the JSON text (measured), so the loop is held ~2-3 ms at most; a bigger one goes to a
# worker thread (a 20,000-event session held the loop ~240 ms when it was read inline).
INLINE_EVENTS_MAX = 200

_COUNT_SESSION_UPTO = (
    "SELECT count(*) FROM (SELECT 1 FROM session_events WHERE session_id = ? LIMIT ?)"
)


def small_session_events(
    conn: sqlite3.Connection, project_id: int, session_id: int, limit: int
) -> list[EventRow] | None:
    """:func:`session_events` if the session has at most ``limit`` rows, else None.

    The size check reads at most ``limit + 1`` keys of the primary-key range (the sorted read
    must visit every row of the session: a big one is never even sorted here).
    """
    ((count,),) = conn.execute(_COUNT_SESSION_UPTO, (session_id, limit + 1))
    if count > limit:
        return None
    return session_events(conn, project_id, session_id)


class InlineEventsReader:
    """A dedicated read-only connection that answers small sessions' events on the caller's thread.

    DESIGN asks blocking SQLite work that could stall the loop to go through a worker thread. A
    small session's events are a short primary-key range of a WITHOUT ROWID table (the common
    session: well under a millisecond), so running it on the trio thread stalls the loop less than
    the two thread wake-ups of a worker round trip cost the request. A session with more than
    ``limit`` rows is not read here (None: the caller takes the worker-thread path), nor is one
    while SQLite is busy: WAL readers are not blocked by the projector's writes, but the rare busy
    moment (WAL recovery) must not hold the loop, so the busy timeout is 0. Use it from one thread
    only (the connection checks that).
    """

    def __init__(self, db_path: str | os.PathLike[str], *, limit: int = INLINE_EVENTS_MAX) -> None:
        self.db_path = db_path
        self.limit = limit
        self._conn: sqlite3.Connection | None = None

    def session_events(self, project_id: int, session_id: int) -> list[EventRow] | None:
        """The rows :func:`session_events` answers, or None when the session is bigger than
        ``limit`` rows or SQLite was busy."""
        try:
            if self._conn is None:
                self._conn = connect(self.db_path, busy_timeout_ms=0, create=False, query_only=True)
            return small_session_events(self._conn, project_id, session_id, self.limit)
        except sqlite3.OperationalError:
            # Busy/locked (or the file is not there yet): let the worker-thread path answer,
            # on a fresh connection next time.
            self.close()
            return None

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- API helpers (pure functions over rows; no SQL) ------------------------------------------------


def _diff(end: int | None, start: int | None) -> int | None:
    if end is None or start is None:
        return None
    return end - start


def page_timings(row: EventRow) -> dict[str, int | None]:
    """The derived timing fields of a LOCATION row, named as API.md 2.1 (ms; None = unknown).

    Durations are differences of navigation-timing marks, as the reference page-event builder
    computes them: ttfb = responseStart - requestStart, responseTime = responseEnd -
    responseStart, domBuildingTime = domContentLoadedEventStart - responseEnd,
    domContentLoadedTime = domContentLoadedEventEnd - domContentLoadedEventStart,
    loadTime = loadEventEnd - loadEventStart.
    """
    t: dict[str, int] = row.data.get("timings", {})
    g = t.get
    return {
        "domBuildingTime": _diff(g("dom_content_loaded_event_start"), g("response_end")),
        "domContentLoadedTime": _diff(
            g("dom_content_loaded_event_end"), g("dom_content_loaded_event_start")
        ),
        "loadTime": _diff(g("load_event_end"), g("load_event_start")),
        "firstPaintTime": g("first_paint"),
        "firstContentfulPaintTime": g("first_contentful_paint"),
        "speedIndex": g("speed_index"),
        "visuallyComplete": g("visually_complete"),
        "timeToInteractive": g("time_to_interactive"),
        "responseTime": _diff(g("response_end"), g("response_start")),
        "responseEnd": g("response_end"),
        "ttfb": _diff(g("response_start"), g("request_start")),
    }


def decode_payload(text: str | None) -> Any:
    """A payload stored as JSON text, decoded (or the text itself when it is not JSON)."""
    return _decode_json(text or "")
