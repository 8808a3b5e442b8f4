"""The live sessions projection: in memory, the Assist "live session object" of each live session.

Holds, per project, the sessions that started and have not ended yet, kept current from domain
events (added on ``SessionStarted``; updated on ``PageTitleChanged``, ``UserIdSet``,
``AnonymousIdSet``, ``MetadataSet``, ``TabVisibilityChanged``; removed on ``SessionEnded``). Nothing
is written to SQLite: on start-up it is reloaded from the sessions table (rows whose duration is
NULL), and its checkpoint is that table's. Events for a session it does not hold (a late batch of
an ended session) do not bring the session back: the tracker that sent them is gone.

:meth:`LiveSessions.search` answers API.md 4.3 with the classic node matcher's semantics. Queries
run on the trio thread (no locks: the projector applies events on the same thread). Per-project
dicts plus a per-project list sorted by (start timestamp, session id) keep the common query (no
filter, newest first, one page) at O(page) instead of O(live sessions).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from engine import events as ev
from projections.sessions import SessionRow


@attrs.frozen(slots=True, kw_only=True)
class LiveSession:
    """One live session, the fields of the Assist live session object (API.md 4)."""

    session_id: int
    project_id: int
    project_key: str
    timestamp: int  # session start, epoch ms
    page_title: str = ""
    active: bool = True
    user_id: str | None = None
    user_anonymous_id: str | None = None
    user_uuid: str = ""
    rev_id: str = ""
    tracker_version: str = ""
    is_snippet: bool = False
    user_os: str = ""
    user_browser: str = ""
    user_browser_version: str = ""
    user_device: str = ""
    user_device_type: str = ""
    user_country: str = ""
    user_state: str = ""
    user_city: str = ""
    metadata: Mapping[str, str] = attrs.Factory(dict)

    def assist_fields(self) -> dict[str, Any]:
        """The live object under its wire names (``sessionID`` as a string, ``live`` always true)."""
        return {
            "pageTitle": self.page_title,
            "active": self.active,
            "live": True,
            "sessionID": str(self.session_id),
            "metadata": dict(self.metadata),
            "userID": self.user_id,
            "userAnonymousId": self.user_anonymous_id,
            "userUUID": self.user_uuid,
            "projectKey": self.project_key,
            "revID": self.rev_id,
            "timestamp": self.timestamp,
            "trackerVersion": self.tracker_version,
            "isSnippet": self.is_snippet,
            "userOs": self.user_os,
            "userBrowser": self.user_browser,
            "userBrowserVersion": self.user_browser_version,
            "userDevice": self.user_device,
            "userDeviceType": self.user_device_type,
            "userCountry": self.user_country,
            "userState": self.user_state,
            "userCity": self.user_city,
            "projectId": self.project_id,
        }


@attrs.frozen(slots=True, kw_only=True)
class LiveFilter:
    """One search filter: attribute ``type`` (``source`` = the key when type is metadata).

    ``values`` empty means "has that attribute at all"; ``operator`` "is" = equality, anything
    else = substring; both case-insensitive.
    """

    type: str
    values: tuple[str, ...] = ()
    operator: str = "contains"
    source: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class LiveSearchResult:
    """One page of matching live sessions and how many matched in all."""

    total: int
    sessions: list[LiveSession]


# Filter names that do not spell an attribute of the live object (lower-cased; the others do,
# in either spelling: "userId"/"USERID" both lower-case to the object's "userID").
_ALIASES: dict[str, str] = {
    "platform": "userdevicetype",
    "startts": "timestamp",
}


@attrs.frozen(slots=True)
class _Entry:
    """A live session and its match index: lower-cased attribute name -> lower-cased text.

    Metadata keys are in the index too (the node matcher walks the object recursively), unless a
    top-level attribute has the same name; ``meta`` holds them alone for "metadata" filters.
    """

    session: LiveSession
    index: dict[str, str]
    meta: dict[str, str]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _entry(session: LiveSession) -> _Entry:
    meta = {k.lower(): v.lower() for k, v in session.metadata.items()}
    index: dict[str, str] = {}
    for key, value in session.assist_fields().items():
        if key == "metadata":
            continue
        text = _text(value)
        if text is not None:
            index[key.lower()] = text
    for key, value in meta.items():
        index.setdefault(key, value)
    return _Entry(session, index, meta)


def _matcher(flt: LiveFilter) -> Callable[[_Entry], bool]:
    """Compile one filter into a predicate over entries (names and values lower-cased once).

    The predicates are specialised lambdas (no nested calls): the scan of 10k live sessions
    calls one per session and filter.
    """
    name = flt.type.lower()
    in_meta = name == "metadata" and bool(flt.source)
    key = flt.source.lower() if in_meta and flt.source else _ALIASES.get(name, name)
    # An empty value asks for nothing more than the attribute being there.
    wanted = tuple(v.lower() for v in flt.values if v)
    if not wanted:  # has the attribute, with a value
        if in_meta:
            return lambda e: bool(e.meta.get(key))
        return lambda e: bool(e.index.get(key))
    if flt.operator.lower() == "is":
        values = frozenset(wanted)
        if in_meta:
            return lambda e: e.meta.get(key) in values
        return lambda e: e.index.get(key) in values
    if len(wanted) == 1:
        (one,) = wanted
        if in_meta:
            return lambda e: one in e.meta.get(key, "\0")
        return lambda e: one in e.index.get(key, "\0")
    if in_meta:
        return lambda e: any(w in e.meta.get(key, "\0") for w in wanted)
    return lambda e: any(w in e.index.get(key, "\0") for w in wanted)


def _sort_key(entry: _Entry, key: str) -> tuple[int, float, str]:
    value = entry.index.get(key)
    if value is None:
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


class LiveSessions:
    """The in-memory live sessions of every project, and the Assist search over them."""

    def __init__(self, project_key_of: Callable[[int], str] | None = None) -> None:
        # project_key_of resolves a project id to its public key (the catalog's answer); cached
        # here because the set of projects is small and keys never change.
        self._project_key_of = project_key_of
        self._keys: dict[int, str] = {}
        self._by_project: dict[int, dict[int, _Entry]] = {}
        # Per project, (timestamp, session_id, entry) ascending: the default order, and what a
        # filtered search scans (entries in the list: no dict lookup per session).
        self._order: dict[int, list[tuple[int, int, _Entry]]] = {}
        self._project_of: dict[int, int] = {}  # session id -> project id
        self.checkpoint = 0

    # -- maintenance -------------------------------------------------------------------------------

    def _project_key(self, project_id: int) -> str:
        key = self._keys.get(project_id)
        if key is None:
            key = self._project_key_of(project_id) if self._project_key_of else ""
            self._keys[project_id] = key
        return key

    def _put(self, session: LiveSession) -> None:
        sessions = self._by_project.setdefault(session.project_id, {})
        order = self._order.setdefault(session.project_id, [])
        entry = _entry(session)
        old = sessions.get(session.session_id)
        if old is not None and old.session.timestamp == session.timestamp:
            order[self._position(order, session)] = (session.timestamp, session.session_id, entry)
        else:
            if old is not None:
                self._unorder(old.session)
            bisect.insort(order, (session.timestamp, session.session_id, entry))
        sessions[session.session_id] = entry
        self._project_of[session.session_id] = session.project_id

    @staticmethod
    def _position(order: list[tuple[int, int, _Entry]], session: LiveSession) -> int:
        # A 2-tuple sorts right before the 3-tuple it prefixes: bisect_left lands on it.
        return bisect.bisect_left(order, (session.timestamp, session.session_id))

    def _unorder(self, session: LiveSession) -> None:
        order = self._order[session.project_id]
        i = self._position(order, session)
        if i < len(order) and order[i][:2] == (session.timestamp, session.session_id):
            del order[i]

    def _remove(self, session_id: int) -> None:
        project_id = self._project_of.pop(session_id, None)
        if project_id is None:
            return
        entry = self._by_project[project_id].pop(session_id)
        self._unorder(entry.session)
        if not self._by_project[project_id]:
            del self._by_project[project_id]
            del self._order[project_id]

    def _update(self, session_id: int, **changes: Any) -> None:
        project_id = self._project_of.get(session_id)
        if project_id is None:
            return
        current = self._by_project[project_id][session_id].session
        self._put(attrs.evolve(current, **changes))

    def clear(self) -> None:
        """Forget every live session and the checkpoint."""
        self._by_project.clear()
        self._order.clear()
        self._project_of.clear()
        self.checkpoint = 0

    def load(self, rows: Iterable[SessionRow], checkpoint: int) -> None:
        """Replace the content with the live rows of the sessions table, read at ``checkpoint``."""
        self.clear()
        for row in rows:
            if row.duration is not None:
                continue
            self._put(
                LiveSession(
                    session_id=row.session_id,
                    project_id=row.project_id,
                    project_key=self._project_key(row.project_id),
                    timestamp=row.start_ts,
                    page_title=row.page_title,
                    user_id=row.user_id,
                    user_anonymous_id=row.user_anonymous_id,
                    user_uuid=row.user_uuid,
                    rev_id=row.rev_id,
                    tracker_version=row.tracker_version,
                    is_snippet=row.is_snippet,
                    user_os=row.user_os,
                    user_browser=row.user_browser,
                    user_browser_version=row.user_browser_version,
                    user_device=row.user_device,
                    user_device_type=row.user_device_type,
                    user_country=row.user_country,
                    user_state=row.user_state,
                    user_city=row.user_city,
                    metadata=dict(row.metadata),
                )
            )
        self.checkpoint = checkpoint

    def apply(self, events: Sequence[ev.DomainEvent]) -> None:
        """Fold events into the live sessions (the caller filtered them by checkpoint)."""
        for event in events:
            match event:
                case ev.SessionStarted():
                    self._start(event)
                case ev.SessionEnded():
                    self._remove(event.session_id)
                case ev.PageTitleChanged():
                    self._update(event.session_id, page_title=event.title)
                case ev.UserIdSet():
                    self._update(event.session_id, user_id=event.user_id or None)
                case ev.AnonymousIdSet():
                    self._update(event.session_id, user_anonymous_id=event.anonymous_id)
                case ev.TabVisibilityChanged():
                    self._update(event.session_id, active=event.active)
                case ev.MetadataSet():
                    project_id = self._project_of.get(event.session_id)
                    if project_id is not None:
                        current = self._by_project[project_id][event.session_id].session
                        metadata = {**current.metadata, event.key: event.value}
                        self._put(attrs.evolve(current, metadata=metadata))
                case _:
                    pass

    def _start(self, event: ev.SessionStarted) -> None:
        project_id = self._project_of.get(event.session_id)
        previous = (
            self._by_project[project_id][event.session_id].session
            if project_id is not None
            else None
        )
        self._put(
            LiveSession(
                session_id=event.session_id,
                project_id=event.project_id,
                project_key=self._project_key(event.project_id),
                # A second start of the same session (a continued session) keeps its first start.
                timestamp=min(event.timestamp, previous.timestamp) if previous else event.timestamp,
                page_title=previous.page_title if previous else "",
                active=previous.active if previous else True,
                user_id=event.user_id or (previous.user_id if previous else None),
                user_anonymous_id=previous.user_anonymous_id if previous else None,
                user_uuid=event.user_uuid,
                rev_id=event.rev_id,
                tracker_version=event.tracker_version,
                is_snippet=event.is_snippet,
                user_os=event.user_os,
                user_browser=event.user_browser,
                user_browser_version=event.user_browser_version,
                user_device=event.user_device,
                user_device_type=event.user_device_type,
                user_country=event.user_country,
                user_state=event.user_state,
                user_city=event.user_city,
                metadata=dict(previous.metadata) if previous else {},
            )
        )

    # -- queries -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._project_of)

    def count(self, project_id: int) -> int:
        """How many sessions of a project are live."""
        return len(self._by_project.get(project_id, ()))

    def get(self, project_id: int, session_id: int) -> LiveSession | None:
        """One live session of a project, or None when it is not live."""
        entry = self._by_project.get(project_id, {}).get(session_id)
        return entry.session if entry else None

    def search(
        self,
        project_id: int,
        filters: Sequence[LiveFilter] = (),
        sort: str = "timestamp",
        order: str = "DESC",
        page: int = 1,
        limit: int = 200,
    ) -> LiveSearchResult:
        """One page of a project's live sessions matching every filter (API.md 4.3).

        Filters are AND-ed, a filter's values OR-ed; names and values are case-insensitive.
        ``sort`` is "timestamp" (the default; "startTs" too) or any attribute name, compared as
        numbers when both are numeric; ties go by start time then session id. ``order`` "ASC"
        or "DESC"; ``page`` counts from 1.
        """
        sessions = self._by_project.get(project_id)
        if not sessions:
            return LiveSearchResult(total=0, sessions=[])
        page = max(page, 1)
        limit = max(limit, 0)
        descending = order.upper() != "ASC"
        key = sort.lower()
        key = _ALIASES.get(key, key)
        first = (page - 1) * limit

        ordered = self._order[project_id]
        if key == "timestamp" and not filters:
            # The common dashboard query: a slice of the sorted list, no scan.
            n = len(ordered)
            if descending:
                window = ordered[max(n - first - limit, 0) : max(n - first, 0)][::-1]
            else:
                window = ordered[first : first + limit]
            return LiveSearchResult(total=len(sessions), sessions=[e.session for _, _, e in window])

        # One scan of the project's sessions in time order with precompiled predicates.
        candidates: Iterable[_Entry] = (
            e for _, _, e in (reversed(ordered) if descending else ordered)
        )
        for predicate in [_matcher(f) for f in filters]:
            candidates = filter(predicate, candidates)
        matching = list(candidates)
        if key != "timestamp":
            # ``matching`` is already in time order, and sort() is stable: ties keep it.
            matching.sort(key=lambda e: _sort_key(e, key), reverse=descending)
        return LiveSearchResult(
            total=len(matching), sessions=[e.session for e in matching[first : first + limit]]
        )
