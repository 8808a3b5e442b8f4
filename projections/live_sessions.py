"""The live sessions projection: in memory, the Assist "live session object" of each live session.

Holds, per project, the sessions that started and have not ended yet, kept current from domain
events (added on ``SessionStarted``; updated on ``PageTitleChanged``, ``UserIdSet``,
``AnonymousIdSet``, ``MetadataSet``, ``TabVisibilityChanged``; removed on ``SessionEnded``). Nothing
is written to SQLite: on start-up it is reloaded from the sessions table (rows whose duration is
NULL), and its checkpoint is that table's. Events for a session it does not hold (a late batch of
an ended session) do not bring the session back: the tracker that sent them is gone.

:meth:`LiveSessions.search` answers API.md 4.3 with the classic node matcher's semantics. Queries
run on the trio thread (no locks: the projector applies events on the same thread), so they must
not scan 10k sessions per request. A per-project list sorted by (start timestamp, session id)
keeps the common query (no filter, newest first, one page) at O(page). Filters use per-project
inverted indexes kept current when a session changes (attribute -> lower-cased text -> session
ids): "is" is a lookup, "contains" and "has the attribute" scan the attribute's distinct texts,
filters AND as set intersections; the page then comes from sorting the matches or, when they are
many, walking the time order until the page is full (the total is the intersection's size).
"""

from __future__ import annotations

import bisect
import itertools
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from engine import events as ev
from engine.lifecycle import SessionsErased
from engine.start_info import LIVE_VIEW, StartInfo
from projections.sessions import SessionRow, country_or_unknown, read_live


@attrs.frozen(slots=True, kw_only=True)
class LiveSession:
    """One live session, the fields of the Assist live session object (API.md 4)."""

    session_id: int
    project_id: int
    project_key: str
    timestamp: int  # session start, epoch ms
    page_title: str = ""
    active: bool = True
    user_anonymous_id: str | None = None
    # The start facts; ``start.user_id`` is the current user id (setUserID changes it).
    start: StartInfo = attrs.field(factory=StartInfo)
    metadata: Mapping[str, str] = attrs.Factory(dict)

    @property
    def user_id(self) -> str | None:
        """The current user id (None: none)."""
        return self.start.user_id

    def assist_fields(self) -> dict[str, Any]:
        """The live object in its wire names (``sessionID`` as a string, ``live`` always true);
        the start facts Assist shows are those their :class:`StartField` gives a live key."""
        fields = {
            "pageTitle": self.page_title,
            "active": self.active,
            "live": True,
            "sessionID": str(self.session_id),
            "metadata": dict(self.metadata),
            "userAnonymousId": self.user_anonymous_id,
            "projectKey": self.project_key,
            "timestamp": self.timestamp,
            **LIVE_VIEW.json(self.start),
            "projectId": self.project_id,
        }
        # Unknown is "UN" here as in the v1 user sessions (API.md 2.5): one rule for both.
        fields["userCountry"] = country_or_unknown(fields["userCountry"])
        return fields


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
    """One page of matching live sessions, how many matched in all, and the ``counter``: per
    filter (its name: ``type``, or ``source`` for a metadata filter), per value, how many of the
    matching sessions matched that value (API.md 4.3); a filter without values counts nothing."""

    total: int
    sessions: list[LiveSession]
    counter: Mapping[str, Mapping[str, int]] = attrs.Factory(dict)


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


def _filter_target(flt: LiveFilter) -> tuple[bool, str, tuple[str, ...]]:
    """(metadata only?, lower-cased attribute key, lower-cased wanted values) of a filter."""
    name = flt.type.lower()
    in_meta = name == "metadata" and bool(flt.source)
    key = flt.source.lower() if in_meta and flt.source else _ALIASES.get(name, name)
    # An empty value asks for nothing more than the attribute being there.
    wanted = tuple(v.lower() for v in flt.values if v)
    return in_meta, key, wanted


def _posting_union(postings: Iterable[set[int]]) -> set[int]:
    """The union of posting sets; a single set comes back as is (callers never mutate it)."""
    out: set[int] | None = None
    copied = False
    for ids in postings:
        if out is None:
            out = ids
        elif not copied:
            out, copied = out | ids, True
        else:
            out |= ids
    return out if out is not None else set()


# Joins an attribute's distinct texts into one string for "contains" (C-speed str.find instead
# of a Python loop over 10k texts). A wanted value holding it takes the plain loop.
_SEP = "\0"


class _Attribute:
    """One attribute of one project's live sessions: lower-cased text -> ids with that text.

    Also caches the distinct texts joined into one haystack for "contains" queries; the cache is
    dropped only when a text appears or disappears (not when a session joins an existing text).
    """

    __slots__ = ("_haystack", "by_text")

    def __init__(self) -> None:
        self.by_text: dict[str, set[int]] = {}
        self._haystack: tuple[str, list[int], list[str]] | None = None

    def add(self, text: str, session_id: int) -> None:
        ids = self.by_text.get(text)
        if ids is None:
            self.by_text[text] = {session_id}
            self._haystack = None
        else:
            ids.add(session_id)

    def discard(self, text: str, session_id: int) -> None:
        ids = self.by_text[text]
        ids.discard(session_id)
        if not ids:
            del self.by_text[text]
            self._haystack = None

    def _containing(self, wanted: str) -> list[str]:
        """The distinct texts that contain ``wanted`` (non-empty)."""
        if _SEP in wanted:
            return [text for text in self.by_text if wanted in text]
        if self._haystack is None:
            texts = list(self.by_text)
            starts, at = [], 0
            for text in texts:
                starts.append(at)
                at += len(text) + 1
            self._haystack = (_SEP.join(texts), starts, texts)
        haystack, starts, texts = self._haystack
        found: list[str] = []
        at = haystack.find(wanted)
        while at >= 0:
            # wanted has no separator, so a hit lies inside one text: the one starting at or
            # before it; go on from the next text (one hit per text is enough).
            i = bisect.bisect_right(starts, at) - 1
            found.append(texts[i])
            if i + 1 == len(starts):
                break
            at = haystack.find(wanted, starts[i + 1])
        return found

    def matching(self, flt: LiveFilter, wanted: tuple[str, ...]) -> set[int]:
        """Ids of the sessions whose text matches the filter (``wanted``: its values, lowered).

        "is" looks the wanted texts up; "contains" finds the distinct texts holding a wanted
        value; no value = "has the attribute" (a non-empty text).
        """
        by_text = self.by_text
        if not wanted:
            return _posting_union(ids for text, ids in by_text.items() if text)
        if flt.operator.lower() == "is":
            return _posting_union(by_text[w] for w in set(wanted) if w in by_text)
        texts = {text for w in set(wanted) for text in self._containing(w)}
        return _posting_union(by_text[text] for text in texts)


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
        # Per project, inverted indexes kept current on every change (so a query never lowers
        # or scans 10k sessions): attribute key -> lower-cased text -> ids of the sessions with
        # that text. ``_postings`` mirrors ``_Entry.index``, ``_meta_postings`` ``_Entry.meta``.
        self._postings: dict[int, dict[str, _Attribute]] = {}
        self._meta_postings: dict[int, dict[str, _Attribute]] = {}
        self.checkpoint = 0

    # -- maintenance -------------------------------------------------------------------------------

    def _project_key(self, project_id: int) -> str:
        key = self._keys.get(project_id)
        if key is None:
            key = self._project_key_of(project_id) if self._project_key_of else ""
            if key:  # an unresolved project ("") is asked again next time
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
        pid, sid = session.project_id, session.session_id
        old_index, old_meta = (old.index, old.meta) if old is not None else (None, None)
        _reindex(self._postings.setdefault(pid, {}), sid, old_index, entry.index)
        _reindex(self._meta_postings.setdefault(pid, {}), sid, old_meta, entry.meta)

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
        _reindex(self._postings[project_id], session_id, entry.index, None)
        _reindex(self._meta_postings[project_id], session_id, entry.meta, None)
        if not self._by_project[project_id]:
            del self._by_project[project_id]
            del self._order[project_id]
            del self._postings[project_id]
            del self._meta_postings[project_id]

    def _update(self, session_id: int, **changes: Any) -> None:
        project_id = self._project_of.get(session_id)
        if project_id is None:
            return
        current = self._by_project[project_id][session_id].session
        self._put(attrs.evolve(current, **changes))

    def _update_start(self, session_id: int, **changes: Any) -> None:
        # The user id is the one start fact that a later event changes.
        project_id = self._project_of.get(session_id)
        if project_id is not None:
            current = self._by_project[project_id][session_id].session
            self._put(attrs.evolve(current, start=attrs.evolve(current.start, **changes)))

    def clear(self) -> None:
        """Forget every live session and the checkpoint."""
        self._by_project.clear()
        self._order.clear()
        self._project_of.clear()
        self._postings.clear()
        self._meta_postings.clear()
        self.checkpoint = 0

    def load(self, rows: Iterable[SessionRow], checkpoint: int) -> None:
        """Replace the content with the live rows of the sessions table, read at ``checkpoint``."""
        self.clear()
        for row in rows:
            if row.duration is None:
                self._put(self._session_of(row))
        self.checkpoint = checkpoint

    def _session_of(self, row: SessionRow) -> LiveSession:
        return LiveSession(
            session_id=row.session_id,
            project_id=row.project_id,
            project_key=self._project_key(row.project_id),
            timestamp=row.start_ts,
            page_title=row.page_title,
            user_anonymous_id=row.user_anonymous_id,
            start=row.start_info(),
            metadata=dict(row.metadata),
        )

    def session_ids(self) -> frozenset[int]:
        """The ids of every live session held (a snapshot)."""
        return frozenset(self._project_of)

    def apply_changes(self, changes: LiveChanges) -> None:
        """Fold a small :class:`LiveChanges` in: drop the sessions no longer live, put the
        changed ones whose live object differs (a batch moves ``last_position`` far more often
        than it changes what Assist shows)."""
        for session_id in self._project_of.keys() - changes.live_ids:
            self._remove(session_id)
        for session in changes.sessions:
            if self.get(session.project_id, session.session_id) != session:
                self._put(session)
        self.checkpoint = changes.checkpoint

    def apply(self, events: Sequence[ev.DomainEvent]) -> None:
        """Fold events into the live sessions (the caller filtered them by checkpoint)."""
        for event in events:
            match event:
                case ev.SessionStarted():
                    self._start(event)
                case ev.SessionEnded():
                    self._remove(event.session_id)
                case SessionsErased():
                    for session_id in event.sessions:
                        self._remove(session_id)
                case ev.PageTitleChanged():
                    self._update(event.session_id, page_title=event.title)
                case ev.UserIdSet():
                    self._update_start(event.session_id, user_id=event.user_id or None)
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
        start = event.start
        if not start.user_id:  # "" or None: this start names no user, the known one stays
            start = attrs.evolve(start, user_id=previous.user_id if previous else None)
        self._put(
            LiveSession(
                session_id=event.session_id,
                project_id=event.project_id,
                project_key=self._project_key(event.project_id),
                # A second start of the same session (a continued session) keeps its first start.
                timestamp=min(event.timestamp, previous.timestamp) if previous else event.timestamp,
                page_title=previous.page_title if previous else "",
                active=previous.active if previous else True,
                user_anonymous_id=previous.user_anonymous_id if previous else None,
                start=start,
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
            return LiveSearchResult(
                total=0, sessions=[], counter=self._counter(project_id, filters, set())
            )
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

        # Each filter is a set of ids from the inverted indexes; filters AND = intersection.
        matched: set[int] | None = None
        for flt in filters:
            in_meta, attr, wanted = _filter_target(flt)
            postings = (self._meta_postings if in_meta else self._postings)[project_id]
            attribute = postings.get(attr)
            ids = attribute.matching(flt, wanted) if attribute is not None else set()
            # set & set iterates the smaller side: the cost follows the most selective filter.
            matched = ids if matched is None else matched & ids
            if not matched:
                return LiveSearchResult(
                    total=0, sessions=[], counter=self._counter(project_id, filters, set())
                )
        total = len(matched) if matched is not None else len(sessions)
        counter = {} if matched is None else self._counter(project_id, filters, matched)

        if key == "timestamp":
            assert matched is not None  # the unfiltered case answered above
            wanted_n = first + limit
            if wanted_n == 0 or first >= total:
                return LiveSearchResult(total=total, sessions=[], counter=counter)
            # Either sort the matches, or walk the time order until the page is full: the walk
            # visits about wanted_n * n / total entries, the sort touches every match (~4x the
            # cost of a visited entry).
            if 4 * total < wanted_n * len(ordered) / total:
                picked = sorted((sessions[i] for i in matched), key=_time_key, reverse=descending)
                return LiveSearchResult(
                    total=total,
                    sessions=[e.session for e in picked[first:wanted_n]],
                    counter=counter,
                )
            walk = reversed(ordered) if descending else iter(ordered)
            hits = itertools.islice((e for _, sid, e in walk if sid in matched), first, wanted_n)
            return LiveSearchResult(
                total=total, sessions=[e.session for e in hits], counter=counter
            )

        # Another sort key: the matches in time order, then a stable sort (ties keep time order).
        walk = reversed(ordered) if descending else iter(ordered)
        if matched is None:
            candidates = [e for _, _, e in walk]
        else:
            candidates = [e for _, sid, e in walk if sid in matched]
        candidates.sort(key=lambda e: _sort_key(e, key), reverse=descending)
        return LiveSearchResult(
            total=total,
            sessions=[e.session for e in candidates[first : first + limit]],
            counter=counter,
        )

    def _counter(
        self, project_id: int, filters: Sequence[LiveFilter], matched: set[int]
    ) -> dict[str, dict[str, int]]:
        """:attr:`LiveSearchResult.counter`: per filter, per value, how many of the ``matched``
        sessions match that value (one index lookup per value, then a set intersection)."""
        counter: dict[str, dict[str, int]] = {}
        for flt in filters:
            in_meta, attr, _ = _filter_target(flt)
            name = flt.source if in_meta and flt.source else flt.type
            counts = counter.setdefault(name, {})
            postings = (self._meta_postings if in_meta else self._postings).get(project_id, {})
            attribute = postings.get(attr)
            only = len(flt.values) == 1
            for value in flt.values:
                if not value:
                    continue  # an empty value asks for the attribute, not for a value
                if attribute is None or not matched:
                    counts[value] = 0
                elif only:
                    # The filter is this one value, so every match matched it: no second index
                    # lookup and intersection (a "contains" lookup walks the attribute's values).
                    counts[value] = len(matched)
                else:
                    counts[value] = len(attribute.matching(flt, (value.lower(),)) & matched)
        return counter


# Changes of one refresh applied on the trio thread at most (sessions put or removed, ~40 us
# each): more than that and the worker thread builds a fresh LiveSessions instead.
LIVE_CHANGES_INLINE_MAX = 250


@attrs.frozen(slots=True, kw_only=True)
class LiveChanges:
    """The live sessions changed since a refresh, for :meth:`LiveSessions.apply_changes`."""

    checkpoint: int
    sessions: list[LiveSession]  # the live sessions whose row changed, as the row has them
    live_ids: frozenset[int]  # every session still live


def read_live_update(
    conn: sqlite3.Connection,
    project_key_of: Callable[[int], str] | None,
    current: tuple[int, frozenset[int]] | None = None,
) -> LiveSessions | LiveChanges | None:
    """What an ingest process of ``serve --workers`` needs to bring its copy of the live sessions
    up to date with the sessions table; runs in a worker thread.

    ``current`` is the copy's ``(checkpoint, session_ids())``, None for the first load. Answers
    None when nothing changed, :class:`LiveChanges` when few did (applied on the loop), else a
    fresh :class:`LiveSessions` built here (reading and indexing 10,000 sessions takes a few
    hundred milliseconds: not on the trio loop), to be swapped in whole.
    """
    fresh = LiveSessions(project_key_of=project_key_of)
    read = read_live(conn, after=None if current is None else current[0])
    if read is None:
        return None
    if not read.full:
        assert current is not None
        gone = len(current[1] - read.live_ids)
        if len(read.rows) + gone <= LIVE_CHANGES_INLINE_MAX:
            sessions = [fresh._session_of(row) for row in read.rows]
            return LiveChanges(
                checkpoint=read.checkpoint, sessions=sessions, live_ids=read.live_ids
            )
        read = read_live(conn)
        assert read is not None
    fresh.load(read.rows, read.checkpoint)
    return fresh


def _time_key(entry: _Entry) -> tuple[int, int]:
    return (entry.session.timestamp, entry.session.session_id)


def _reindex(
    postings: dict[str, _Attribute],
    session_id: int,
    old: Mapping[str, str] | None,
    new: Mapping[str, str] | None,
) -> None:
    """Move ``session_id`` in ``postings`` from the texts of ``old`` to those of ``new``.

    Only the attributes whose text changed are touched (an update changes one or two).
    """
    if old:
        for attr, text in old.items():
            if new is not None and new.get(attr) == text:
                continue
            attribute = postings[attr]
            attribute.discard(text, session_id)
            if not attribute.by_text:
                del postings[attr]
    if new:
        for attr, text in new.items():
            if old is not None and old.get(attr) == text:
                continue
            posting = postings.get(attr)
            if posting is None:
                posting = postings[attr] = _Attribute()
            posting.add(text, session_id)
