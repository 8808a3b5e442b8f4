"""The ``sessions`` projection: one row per session, the session object of API.md 2.5.

Owns the ``sessions`` table. Fed by lifecycle events (start, end, user id, anonymous id, metadata,
page title) and counts the session's event rows (pages, events, errors, issues) from the
``SessionEvent`` subclasses as they arrive, so that it never reads another projection's tables.

``duration`` and ``end_ts`` stay NULL while the session is live; ``SessionEnded`` sets them (a
later end of a re-activated session overwrites them with the longer values). ``issue_types`` is a
sorted JSON array of distinct issue types, ``issue_score`` the sum of per-type weights
(:data:`ISSUE_WEIGHTS`), ``metadata`` a JSON object of the last value set for each key, and
``utm_source``/``utm_medium``/``utm_campaign`` the UTM tags of the session's first page.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from engine import events as ev
from engine.start_info import START_FIELDS, StartInfo
from projections.base import SqlProjection, forget_checkpoint, read_checkpoint
from storage.schema import apply_migrations

NAME = "sessions"

# Append-only (shipped steps never change). The start facts' columns (one per StartInfo field,
# same name, its type and default) are spelled out in the first step: a new StartInfo field
# needs a new ``ALTER TABLE sessions ADD COLUMN`` step, which tests/test_start_fields.py demands.
STEPS: list[str] = [
    """
    CREATE TABLE sessions (
        session_id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL,
        start_ts INTEGER NOT NULL,
        duration INTEGER NULL,
        end_ts INTEGER NULL,
        user_id TEXT NULL,
        user_anonymous_id TEXT NULL,
        user_uuid TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        user_os TEXT NOT NULL DEFAULT '',
        user_os_version TEXT NOT NULL DEFAULT '',
        user_browser TEXT NOT NULL DEFAULT '',
        user_browser_version TEXT NOT NULL DEFAULT '',
        user_device TEXT NOT NULL DEFAULT '',
        user_device_type TEXT NOT NULL DEFAULT '',
        user_country TEXT NOT NULL DEFAULT '',
        user_city TEXT NOT NULL DEFAULT '',
        user_state TEXT NOT NULL DEFAULT '',
        platform TEXT NOT NULL DEFAULT 'web',
        timezone TEXT NOT NULL DEFAULT '',
        rev_id TEXT NOT NULL DEFAULT '',
        tracker_version TEXT NOT NULL DEFAULT '',
        is_snippet INTEGER NOT NULL DEFAULT 0,
        referrer TEXT NOT NULL DEFAULT '',
        screen_width INTEGER NOT NULL DEFAULT 0,
        screen_height INTEGER NOT NULL DEFAULT 0,
        device_memory INTEGER NOT NULL DEFAULT 0,
        js_heap_size_limit INTEGER NOT NULL DEFAULT 0,
        page_title TEXT NOT NULL DEFAULT '',
        pages_count INTEGER NOT NULL DEFAULT 0,
        events_count INTEGER NOT NULL DEFAULT 0,
        errors_count INTEGER NOT NULL DEFAULT 0,
        issue_types TEXT NOT NULL DEFAULT '[]',
        issue_score INTEGER NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL DEFAULT '{}',
        first_position INTEGER NOT NULL,
        last_position INTEGER NOT NULL
    );
    -- public v1 "sessions of a user", and the users projection's questions.
    CREATE INDEX sessions_project_user ON sessions (project_id, user_id, session_id);
    -- project-wide search by time (later issue), newest first.
    CREATE INDEX sessions_project_start ON sessions (project_id, start_ts);
    -- start-up reload of the live sessions: only the few rows still live.
    CREATE INDEX sessions_live ON sessions (session_id) WHERE duration IS NULL;
    """,
    # 2: session search (projections.search). The UTM tags of the session's first page; the
    # start index gains the duration, so that counting a window's finished sessions (every
    # search's total) reads the index alone; the anonymous id gets the user id's index.
    """
    ALTER TABLE sessions ADD COLUMN utm_source TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN utm_medium TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN utm_campaign TEXT NOT NULL DEFAULT '';
    CREATE INDEX sessions_project_start_duration ON sessions (project_id, start_ts, duration);
    DROP INDEX sessions_project_start;
    CREATE INDEX sessions_project_anonymous
        ON sessions (project_id, user_anonymous_id, session_id)
        WHERE user_anonymous_id IS NOT NULL;
    """,
]

# Per-type weight of an issue in ``issue_score`` (the secondary sort key of session search): our
# own choice, heavier for what breaks the user's work than for what merely slows it down.
ISSUE_WEIGHTS: dict[str, int] = {
    "crash": 1000,
    "app_crash": 1000,
    "js_exception": 500,
    "bad_request": 500,
    "dead_click": 300,
    "click_rage": 300,
    "tap_rage": 300,
    "mouse_thrashing": 200,
    "memory": 200,
    "cpu": 200,
    "missing_resource": 100,
    "slow_resource": 100,
    "slow_page_load": 100,
    "excessive_scrolling": 100,
}
DEFAULT_ISSUE_WEIGHT = 50

# Columns copied from SessionStarted.start: the start facts (one column per StartInfo field),
# but user_id, which later events change too: it goes with the other set columns ("" = none).
_START_COLUMNS: tuple[str, ...] = tuple(c for c in START_FIELDS if c != "user_id")
# Columns that an event sets to a value (last one wins) rather than accumulates.
_SET_COLUMNS: tuple[str, ...] = ("user_id", "user_anonymous_id", "duration", "end_ts", "page_title")


# The country the API answers when GeoIP knew none (API.md 2.5: the reference's "unknown"); the
# table keeps "" (nothing was known), every answer (user sessions, Assist) says this.
UNKNOWN_COUNTRY = "UN"


def country_or_unknown(code: str) -> str:
    """A stored country code as the API answers it: itself, or :data:`UNKNOWN_COUNTRY`."""
    return code or UNKNOWN_COUNTRY


@attrs.frozen(slots=True, kw_only=True)
class SessionRow(StartInfo):
    """A session as the sessions projection knows it (field names follow the table): its start
    facts (:class:`StartInfo`; ``user_id`` is the current one) and what the other events made."""

    session_id: int
    project_id: int
    start_ts: int
    duration: int | None
    end_ts: int | None
    user_anonymous_id: str | None
    page_title: str
    pages_count: int
    events_count: int
    errors_count: int
    issue_types: tuple[str, ...]
    issue_score: int
    metadata: dict[str, str]
    first_position: int
    last_position: int
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""

    @property
    def live(self) -> bool:
        """True while the session has not ended (no duration yet)."""
        return self.duration is None


_ROW_COLUMNS = tuple(f.name for f in attrs.fields(SessionRow))
_SELECT = f"SELECT {', '.join(_ROW_COLUMNS)} FROM sessions"
# SQLite has no boolean: such columns hold 0/1 (annotations are strings: postponed evaluation).
_BOOL_COLUMNS = tuple(f.name for f in attrs.fields(SessionRow) if f.type == "bool")


ROW_COLUMNS: tuple[str, ...] = _ROW_COLUMNS
"""The columns of a :class:`SessionRow`, in the order :func:`session_row` reads them."""


def session_row(values: Sequence[Any]) -> SessionRow:
    """A :class:`SessionRow` from the values of :data:`ROW_COLUMNS` (for other read models'
    queries over this table, e.g. ``projections.search``)."""
    return _row(values)


def _row(values: Sequence[Any]) -> SessionRow:
    raw = dict(zip(_ROW_COLUMNS, values, strict=True))
    for column in _BOOL_COLUMNS:
        raw[column] = bool(raw[column])
    raw["issue_types"] = tuple(json.loads(raw["issue_types"]))
    raw["metadata"] = json.loads(raw["metadata"])
    return SessionRow(**raw)


# -- schema ----------------------------------------------------------------------------------------


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the sessions table."""
    apply_migrations(conn, NAME, STEPS)


def reset(conn: sqlite3.Connection) -> None:
    """Empty the sessions table and forget the checkpoint (the next replay starts at 0)."""
    conn.execute("DELETE FROM sessions")
    forget_checkpoint(conn, NAME)


# -- apply -----------------------------------------------------------------------------------------


@attrs.define(slots=True)
class _Patch:
    """Everything one ``apply`` call learned about one session, folded in delivery order."""

    session_id: int
    project_id: int
    # Time of the call's first event of the session (by position), for a row made before (or
    # without) its SessionStarted. The first, not the earliest: the call that creates the row holds
    # the session's first event however deliveries were split, so live and rebuild agree.
    first_ts: int
    first_position: int
    last_position: int
    start: StartInfo | None = None  # of the call's SessionStarted
    start_ts: int = 0  # and its time
    sets: dict[str, Any] = attrs.Factory(dict)
    metadata: dict[str, str] = attrs.Factory(dict)
    pages: int = 0
    events: int = 0
    errors: int = 0
    issue_score: int = 0
    issue_types: set[str] = attrs.Factory(set)
    first_page_url: str | None = None  # of the call's first PageVisited (its UTM tags)


def _fold(patch: _Patch, event: ev.DomainEvent) -> None:
    """Fold one event into the session's patch (events of one session arrive in order)."""
    patch.first_position = min(patch.first_position, event.position)
    patch.last_position = max(patch.last_position, event.position)
    match event:
        case ev.SessionStarted():
            patch.start, patch.start_ts = event.start, event.timestamp
            if event.start.user_id:  # "" or None: no user id (yet)
                patch.sets["user_id"] = event.start.user_id
        case ev.SessionEnded():
            patch.sets["duration"] = event.duration_ms
            patch.sets["end_ts"] = event.timestamp
        case ev.UserIdSet():
            patch.sets["user_id"] = event.user_id or None  # setUserID("") clears it
        case ev.AnonymousIdSet():
            patch.sets["user_anonymous_id"] = event.anonymous_id
        case ev.MetadataSet():
            patch.metadata[event.key] = event.value
        case ev.PageTitleChanged():
            patch.sets["page_title"] = event.title
        case ev.SessionEvent():
            if event.COUNTED:
                patch.events += 1
            if isinstance(event, ev.PageVisited):
                patch.pages += 1
                if patch.first_page_url is None:
                    patch.first_page_url = event.url
            elif isinstance(event, ev.ErrorRaised | ev.Crashed):
                patch.errors += 1
            elif isinstance(event, ev.IssueDetected):
                patch.issue_types.add(event.issue_type)
                patch.issue_score += ISSUE_WEIGHTS.get(event.issue_type, DEFAULT_ISSUE_WEIGHT)
        case _:
            pass


_INSERT_SKELETON = """
INSERT OR IGNORE INTO sessions (session_id, project_id, start_ts, first_position, last_position)
VALUES (:session_id, :project_id, :start_ts, :first_position, :last_position)
"""

_UPDATE_START = (
    "UPDATE sessions SET start_ts = min(start_ts, :start_ts), "
    + ", ".join(f"{c} = :{c}" for c in _START_COLUMNS)
    + " WHERE session_id = :session_id"
)

_UPDATE_COMMON = (
    "UPDATE sessions SET "
    + ", ".join(f"{c} = CASE WHEN :has_{c} THEN :{c} ELSE {c} END" for c in _SET_COLUMNS)
    + """,
    pages_count = pages_count + :pages,
    events_count = events_count + :events,
    errors_count = errors_count + :errors,
    issue_score = issue_score + :issue_score,
    issue_types = CASE WHEN :issue_types = '[]' THEN issue_types ELSE (
        SELECT json_group_array(value) FROM (
            SELECT value FROM json_each(sessions.issue_types)
            UNION SELECT value FROM json_each(:issue_types)
            ORDER BY value
        )
    ) END,
    metadata = CASE WHEN :metadata = '{}' THEN metadata ELSE :metadata END,
    -- The first page of the session is the call's first when the row counted none before.
    utm_source = CASE WHEN :has_page AND pages_count = 0 THEN :utm_source ELSE utm_source END,
    utm_medium = CASE WHEN :has_page AND pages_count = 0 THEN :utm_medium ELSE utm_medium END,
    utm_campaign = CASE WHEN :has_page AND pages_count = 0 THEN :utm_campaign
        ELSE utm_campaign END,
    first_position = min(first_position, :first_position),
    last_position = max(last_position, :last_position)
    WHERE session_id = :session_id
    """
)


def apply(conn: sqlite3.Connection, events: Sequence[ev.DomainEvent]) -> None:
    """Fold ``events`` into the sessions table (caller holds the transaction).

    The events are folded per session in Python first, then written with three ``executemany``
    statements (skeleton rows, start fields, everything else) rather than one statement per event:
    the hot path of a busy server. (Not sqlite-utils ``insert_all``: it commits per chunk, and the
    rows must commit together with the checkpoint.)
    """
    patches: dict[int, _Patch] = {}
    for event in events:
        if ev.is_v3(event):  # a v3 session is not a session of this table (projections.v3)
            continue
        patch = patches.get(event.session_id)
        if patch is None:
            patch = patches[event.session_id] = _Patch(
                session_id=event.session_id,
                project_id=event.project_id,
                first_ts=event.timestamp,
                first_position=event.position,
                last_position=event.position,
            )
        _fold(patch, event)
    if not patches:
        return

    # Sessions without a row yet (every session of a rebuild, a new one live) get their whole
    # row in one INSERT, computed here as the three statements below would make it from the
    # table's defaults: one statement per session instead of three.
    existing = {
        sid
        for (sid,) in conn.execute(
            "SELECT session_id FROM sessions WHERE session_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(patches)),),
        )
    }
    fresh = [p for p in patches.values() if p.session_id not in existing]
    if fresh:
        conn.executemany(_INSERT_WHOLE, [_whole_row(p) for p in fresh])
        if len(fresh) == len(patches):
            return
        patches = {sid: p for sid, p in patches.items() if sid in existing}

    # A session normally starts with SessionStarted; a skeleton row keeps events of a session
    # whose start record was parked (or lies before a retention cut) instead of losing them.
    conn.executemany(
        _INSERT_SKELETON,
        [
            {
                "session_id": p.session_id,
                "project_id": p.project_id,
                "start_ts": p.start_ts if p.start is not None else p.first_ts,
                "first_position": p.first_position,
                "last_position": p.last_position,
            }
            for p in patches.values()
        ],
    )
    conn.executemany(
        _UPDATE_START,
        [
            {"session_id": p.session_id, "start_ts": p.start_ts}
            | {c: getattr(p.start, c) for c in _START_COLUMNS}
            for p in patches.values()
            if p.start is not None
        ],
    )
    _merge_stored_metadata(conn, patches.values())
    conn.executemany(_UPDATE_COMMON, [_common_params(p) for p in patches.values()])


# The defaults of the table for what a patch may leave unset (the set columns).
_SET_DEFAULTS: dict[str, Any] = {
    "user_id": None,
    "user_anonymous_id": None,
    "duration": None,
    "end_ts": None,
    "page_title": "",
}
# Start facts as the table holds them before a SessionStarted: the columns' defaults.
_NO_START = tuple(getattr(StartInfo(), c) for c in _START_COLUMNS)
_WHOLE_COLUMNS: tuple[str, ...] = (
    "session_id",
    "project_id",
    "start_ts",
    *_START_COLUMNS,
    *_SET_COLUMNS,
    "pages_count",
    "events_count",
    "errors_count",
    "issue_score",
    "issue_types",
    "metadata",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "first_position",
    "last_position",
)
_INSERT_WHOLE = (
    f"INSERT INTO sessions ({', '.join(_WHOLE_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _WHOLE_COLUMNS)})"
)
_start_values = operator.attrgetter(*_START_COLUMNS)


def _whole_row(patch: _Patch) -> tuple[Any, ...]:
    """The row a session without one gets from ``patch``: what the skeleton insert and the
    two updates of :func:`apply` would leave in it."""
    sets = patch.sets
    return (
        patch.session_id,
        patch.project_id,
        patch.start_ts if patch.start is not None else patch.first_ts,
        *(_start_values(patch.start) if patch.start is not None else _NO_START),
        *(sets.get(c, _SET_DEFAULTS[c]) if sets else _SET_DEFAULTS[c] for c in _SET_COLUMNS),
        patch.pages,
        patch.events,
        patch.errors,
        patch.issue_score,
        # json_group_array's text: compact, the distinct types sorted.
        json.dumps(sorted(patch.issue_types), ensure_ascii=False, separators=(",", ":"))
        if patch.issue_types
        else "[]",
        _metadata_text(patch.metadata) if patch.metadata else "{}",
        *utm_tags(patch.first_page_url).values(),  # the patch's first page is the session's
        patch.first_position,
        patch.last_position,
    )


def _merge_stored_metadata(conn: sqlite3.Connection, patches: Iterable[_Patch]) -> None:
    """Make each patch's metadata the whole object: the stored one updated by the patch.

    Merged in Python, not with SQLite's ``json_patch``: its merge of the same keys gave text
    that depended on how the updates were split into calls (the hostile mobile fuzz test found a
    session whose live row and rebuilt row differed), and the row must not (invariant 6).
    Metadata events are rare: one indexed read per session that has some.
    """
    for patch in patches:
        if not patch.metadata:
            continue
        row = conn.execute(
            "SELECT metadata FROM sessions WHERE session_id = ?", (patch.session_id,)
        ).fetchone()
        stored = json.loads(row[0]) if row is not None and row[0] else {}
        patch.metadata = {**stored, **patch.metadata}


def _common_params(patch: _Patch) -> dict[str, Any]:
    params: dict[str, Any] = {
        "session_id": patch.session_id,
        "pages": patch.pages,
        "events": patch.events,
        "errors": patch.errors,
        "issue_score": patch.issue_score,
        "issue_types": json.dumps(sorted(patch.issue_types)),
        "metadata": _metadata_text(patch.metadata),
        "first_position": patch.first_position,
        "last_position": patch.last_position,
        "has_page": patch.first_page_url is not None,
        **utm_tags(patch.first_page_url),
    }
    for column in _SET_COLUMNS:
        params[f"has_{column}"] = column in patch.sets
        params[column] = patch.sets.get(column)
    return params


def _metadata_text(metadata: dict[str, str]) -> str:
    # ensure_ascii=False: a lone surrogate then fails here (the event is parked) instead of
    # SQLite turning its escape into invalid UTF-8 that no read could decode.
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


_UTM_TAGS = ("utm_source", "utm_medium", "utm_campaign")


def utm_tags(url: str | None) -> dict[str, str]:
    """The UTM tags of a page URL's query (first value of each; "" when absent or unparsable).

    Read from the session's first page, as the reference backend fills its utm_* columns; once
    a session, so the fold's cost per event does not grow.
    """
    tags = dict.fromkeys(_UTM_TAGS, "")
    if not url or "utm_" not in url:
        return tags
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return tags
    for tag in _UTM_TAGS:
        if query.get(tag):
            tags[tag] = query[tag][0]
    return tags


def forget_sessions(conn: sqlite3.Connection, session_ids: Sequence[int]) -> None:
    """Drop these sessions' rows."""
    conn.executemany("DELETE FROM sessions WHERE session_id = ?", [(s,) for s in session_ids])


PROJECTION = SqlProjection(
    name=NAME, migrate=migrate, apply=apply, reset=reset, forget_sessions=forget_sessions
)


# -- queries ---------------------------------------------------------------------------------------


def get_session(conn: sqlite3.Connection, project_id: int, session_id: int) -> SessionRow | None:
    """One session of a project, or None."""
    row = conn.execute(
        f"{_SELECT} WHERE session_id = ? AND project_id = ?", (session_id, project_id)
    ).fetchone()
    return _row(row) if row else None


def user_sessions(
    conn: sqlite3.Connection,
    project_id: int,
    user_id: str,
    *,
    start_date: int | None = None,
    end_date: int | None = None,
    limit: int = 50,
) -> list[SessionRow]:
    """Sessions of ``user_id`` (exact match), live ones included, by session id ascending.

    ``start_date``/``end_date`` (epoch ms) bound ``start_ts``, both inclusive.
    """
    where, params = _user_where(project_id, user_id, start_date, end_date)
    rows = conn.execute(f"{_SELECT} {where} ORDER BY session_id LIMIT ?", [*params, limit])
    return [_row(r) for r in rows]


def _user_where(
    project_id: int, user_id: str, start_date: int | None, end_date: int | None
) -> tuple[str, list[Any]]:
    where = "WHERE project_id = ? AND user_id = ?"
    params: list[Any] = [project_id, user_id]
    if start_date is not None:
        where += " AND start_ts >= ?"
        params.append(start_date)
    if end_date is not None:
        where += " AND start_ts <= ?"
        params.append(end_date)
    return where, params


def user_sessions_page(
    conn: sqlite3.Connection,
    project_id: int,
    user_id: str,
    *,
    start_date: int | None = None,
    end_date: int | None = None,
    limit: int = 50,
    offset: int = 0,
    newest_first: bool = False,
) -> tuple[int, list[SessionRow]]:
    """How many sessions of ``user_id`` match (bounds as :func:`user_sessions`), and the page of
    them ``limit``/``offset`` names, by session id (oldest first unless ``newest_first``)."""
    where, params = _user_where(project_id, user_id, start_date, end_date)
    (total,) = conn.execute(f"SELECT count(*) FROM sessions {where}", params).fetchone()
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(
        f"{_SELECT} {where} ORDER BY session_id {order} LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    return int(total), [_row(r) for r in rows]


def count_project_sessions(conn: sqlite3.Connection, project_id: int, since: int = 0) -> int:
    """How many sessions of a project started at ``since`` (epoch ms) or later."""
    (count,) = conn.execute(
        "SELECT count(*) FROM sessions WHERE project_id = ? AND start_ts >= ?", (project_id, since)
    ).fetchone()
    return int(count)


def project_sessions_after(
    conn: sqlite3.Connection,
    project_id: int,
    *,
    since: int = 0,
    after: tuple[int, int] | None = None,
    limit: int = 500,
) -> list[SessionRow]:
    """Up to ``limit`` sessions of a project started at ``since`` or later, by (start, id),
    from just past ``after`` (the (start_ts, session_id) of the last one read): pages of a walk
    over a whole project that never holds more than one page."""
    sql = f"{_SELECT} WHERE project_id = ? AND start_ts >= ?"
    params: list[Any] = [project_id, since]
    if after is not None:
        sql += " AND (start_ts, session_id) > (?, ?)"
        params += list(after)
    sql += " ORDER BY start_ts, session_id LIMIT ?"
    return [_row(r) for r in conn.execute(sql, [*params, limit])]


def user_session_ids(
    conn: sqlite3.Connection, project_id: int, user_id: str, *, limit: int
) -> list[int]:
    """Up to ``limit`` ids of the sessions attributed to ``user_id`` (its current user id, exact
    match), live ones included, smallest first: the steps of a delete-user job."""
    rows = conn.execute(
        "SELECT session_id FROM sessions INDEXED BY sessions_project_user"
        " WHERE project_id = ? AND user_id = ? ORDER BY session_id LIMIT ?",
        (project_id, user_id, limit),
    )
    return [int(r[0]) for r in rows]


def expired_session_ids(
    conn: sqlite3.Connection, project_id: int, started_before_ms: int, *, limit: int
) -> list[int]:
    """Up to ``limit`` ids of the project's finished sessions that started before
    ``started_before_ms``, oldest first: the steps of a retention sweep (a live session waits
    for its end)."""
    rows = conn.execute(
        "SELECT session_id FROM sessions INDEXED BY sessions_project_start_duration"
        " WHERE project_id = ? AND start_ts < ? AND duration IS NOT NULL"
        " ORDER BY start_ts LIMIT ?",
        (project_id, started_before_ms, limit),
    )
    return [int(r[0]) for r in rows]


def first_session_starts(conn: sqlite3.Connection, project_ids: Sequence[int]) -> dict[int, int]:
    """Per project, the start (epoch ms) of its earliest recorded session: the project's
    ``firstRecordedSessionAt``. Projects without a session are left out.

    Derived here rather than stored on the project: it follows the log (a rebuild gives the same
    answer) and each lookup is one step down the ``sessions_project_start_duration`` index.
    """
    out: dict[int, int] = {}
    for project_id in project_ids:
        (first,) = conn.execute(
            "SELECT min(start_ts) FROM sessions WHERE project_id = ?", (project_id,)
        ).fetchone()
        if first is not None:
            out[project_id] = int(first)
    return out


def live_sessions(conn: sqlite3.Connection) -> list[SessionRow]:
    """Every session without a duration yet (all projects), oldest first."""
    return [_row(r) for r in conn.execute(f"{_SELECT} WHERE duration IS NULL ORDER BY session_id")]


@attrs.frozen(slots=True, kw_only=True)
class LiveRead:
    """What :func:`read_live` saw in one snapshot, at ``checkpoint``.

    ``rows`` are the live rows whose ``last_position`` is after the position asked for, or all of
    them when ``full``; ``live_ids`` every live session's id.
    """

    checkpoint: int
    full: bool
    rows: list[SessionRow]
    live_ids: frozenset[int]


def read_live(conn: sqlite3.Connection, *, after: int | None = None) -> LiveRead | None:
    """The live sessions as the sessions table has them, read in one snapshot.

    ``after=None``: every live row. ``after=p``: only the live rows changed since position ``p``
    (the ids of all of them still come back, so that the caller sees which ended), or None when
    the checkpoint is still ``p`` (nothing changed, nothing read). No table yet (another process
    creates the projections) reads as nothing at 0.
    """
    conn.execute("BEGIN")  # deferred: a read snapshot, takes no write lock
    try:
        checkpoint = read_checkpoint(conn, NAME)
        if checkpoint == after:
            return None
        if after is None or checkpoint < after:  # a full read (or the projections were rebuilt)
            rows = live_sessions(conn)
            ids = frozenset(r.session_id for r in rows)
            return LiveRead(checkpoint=checkpoint, full=True, rows=rows, live_ids=ids)
        # The partial index sessions_live holds only the live rows: both reads are short.
        changed = [_row(r) for r in conn.execute(_SELECT_LIVE_CHANGED, (after,))]
        ids = frozenset(sid for (sid,) in conn.execute(_SELECT_LIVE_IDS))
        return LiveRead(checkpoint=checkpoint, full=False, rows=changed, live_ids=ids)
    except sqlite3.OperationalError as error:
        if "no such table" not in str(error):
            raise
        if after == 0:
            return None
        return LiveRead(checkpoint=0, full=True, rows=[], live_ids=frozenset())
    finally:
        conn.execute("COMMIT")


_SELECT_LIVE_IDS = "SELECT session_id FROM sessions WHERE duration IS NULL"
_SELECT_LIVE_CHANGED = f"{_SELECT} WHERE duration IS NULL AND last_position > ? ORDER BY session_id"
