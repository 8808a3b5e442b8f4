"""The state of one web session and the code that applies log records to it (sans-IO, synchronous).

:class:`WebSessionState` is the web platform over :class:`~engine.session_core.SessionCore`, which
owns what every platform shares (ids, times, counters, user ids, metadata, parking a record,
ending). This module owns what only the web has (current pages per tab, focus, visibility, the
click heuristics) and the translation of WEB_START / WEB_BATCH records into domain events
(PROTOCOL.md 5.3, 7, 9; API.md 2.3-2.5). No I/O, no clock, no trio: the actor task
(``engine.actor``) feeds records in log order, and a replay after re-activation feeds the same
records through the same code with ``out=None`` (emission suppressed), which rebuilds exactly the
state the events were derived from.

Time: a message's time is the latest ``Timestamp`` (or ``BatchMetadata.timestamp``) before it in
its batch, carried over from the previous batch when a batch has neither (DESIGN.md invariant 7).
A record that cannot be decoded is parked whole before any state changes; an exception while
applying decoded messages parks the record too, keeping what was applied before it (both are
deterministic, so a replay reaches the same state). An exception while ending a session (the
heuristics' flush) parks that end (``stage="engine:end"``) and the session still ends.

Hostile values (DESIGN.md invariant 8): the wire's ``uint`` reaches 2**64 - 1, beyond SQLite's
INTEGER. Every integer that goes into an event is clamped to int64 here (:func:`clamp_int64`),
rather than the message refused: the rest of the message (a click's label, a request's URL) is
still worth keeping, and the clamped value says "absurdly large" well enough. Message times
(``Timestamp``, ``BatchMetadata.timestamp``, a request's or an issue's own time) more than
:data:`MAX_CLOCK_AHEAD_MS` after the record's receipt are not taken as times at all (the previous
time carries on): the tracker aligns its clock to the server's at start, so such a time is a
broken or hostile client, and taking it would poison the session's last time and duration.
Strings from the codec are always valid UTF-8; the start payload repairs its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

import attrs

from engine.codec import web_messages as wm
from engine.codec.web import (
    AnyMessage,
    BatchMetadata,
    CustomEvent,
    CustomIssue,
    GraphQL,
    GraphQLDeprecated,
    Incident,
    InputChange,
    IssueEvent,
    JSException,
    Metadata,
    MouseClick,
    MouseClickDeprecated,
    MouseThrashing,
    NetworkRequest,
    NetworkRequestDeprecated,
    PageLoadTiming,
    PageRenderTiming,
    SetNodeFocus,
    SetPageLocation,
    SetPageLocationDeprecated,
    SetPageVisibility,
    StateAction,
    TabData,
    Timestamp,
    UserAnonymousID,
    UserID,
    WebVitals,
    decode_message,
    decode_selected,
    iter_frames,
    message_id,
)
from engine.events import (
    INT64_MAX,
    Clicked,
    CustomEventRecorded,
    ErrorRaised,
    GraphQLCalled,
    InputChanged,
    PageTimingsReported,
    PageTitleChanged,
    PageVisited,
    RequestMade,
    StateActionDispatched,
    TabVisibilityChanged,
    WebVitalReported,
    clamp_int64,
)
from engine.heuristics import (
    ClickRageDetector,
    DeadClickDetector,
    is_bad_request,
    tracker_detects_click_issues,
)
from engine.session_core import MAX_CLOCK_AHEAD_MS, RecordApplier, SessionCore
from storage.records import LogRecord, RecordKind

__all__ = [
    "BASE_WANTED",
    "LOAD_TIMING_MAX_MS",
    "MAX_CLOCK_AHEAD_MS",
    "REACTION_TYPES",
    "SESSION_KINDS",
    "TabPage",
    "WebSessionState",
]

LOAD_TIMING_MAX_MS = 30_000
"""PageLoadTiming values above this are dropped (``None``), as the Go page-event builder does."""

# BatchMetadata fields capped so that message ids, (page_no << 32) + first_index + index, stay
# within int64 (a real tracker counts pages and messages in the thousands).
_PAGE_NO_MAX = (INT64_MAX >> 32) - 1
_FIRST_INDEX_MAX = (1 << 32) - 1

# The types a session decodes; every other message of a batch is skipped by its frame size.
BASE_WANTED: frozenset[int] = frozenset(
    cls.TYPE_ID
    for cls in (
        Timestamp, BatchMetadata, TabData,
        SetPageLocation, SetPageLocationDeprecated, PageLoadTiming, PageRenderTiming, WebVitals,
        MouseClick, MouseClickDeprecated, InputChange, SetNodeFocus,
        CustomEvent, UserID, UserAnonymousID, Metadata, JSException,
        NetworkRequest, NetworkRequestDeprecated, GraphQL, GraphQLDeprecated, StateAction,
        IssueEvent, CustomIssue, MouseThrashing, Incident, SetPageVisibility,
    )
)  # fmt: skip

# DOM changes that count as "something reacted to the click" for the dead-click detector. Only their
# frame type is looked at (never decoded), and only for sessions where the server runs that
# detector (trackers before 19).
REACTION_TYPES: frozenset[int] = frozenset(
    cls.TYPE_ID
    for cls in (
        wm.CreateElementNode, wm.CreateTextNode, wm.MoveNode, wm.RemoveNode,
        wm.SetNodeAttribute, wm.RemoveNodeAttribute, wm.SetNodeData, wm.SetCSSData,
        wm.SetInputValue, wm.SetInputChecked, wm.SetNodeAttributeDictGlobal,
        wm.SetNodeAttributeDict, wm.SetNodeAttributeDictDeprecated,
        wm.SetNodeAttributeURLBased, wm.SetCSSDataURLBased,
    )
)  # fmt: skip

_NO_METADATA = BatchMetadata(version=0, page_no=0, first_index=0, timestamp=0, location="")


def _storable_metadata(meta: BatchMetadata, latest_ms: int) -> BatchMetadata:
    """``meta`` with the page number and first index capped and an absurd time dropped (0)."""
    if (
        meta.page_no <= _PAGE_NO_MAX
        and meta.first_index <= _FIRST_INDEX_MAX
        and meta.timestamp <= latest_ms
    ):
        return meta
    return attrs.evolve(
        meta,
        page_no=min(meta.page_no, _PAGE_NO_MAX),
        first_index=min(meta.first_index, _FIRST_INDEX_MAX),
        timestamp=meta.timestamp if meta.timestamp <= latest_ms else 0,
    )


class _Reaction:
    """Stands for a run of DOM-change frames in a decoded batch (see ``_decode_with_reactions``)."""

    __slots__ = ()


_REACTION = _Reaction()
_Decoded: TypeAlias = "AnyMessage | _Reaction"


def _decode_with_reactions(payload: bytes) -> tuple[list[tuple[int, _Decoded]], int]:
    """``(index, message)`` for the ``BASE_WANTED`` messages, plus ``_REACTION`` for DOM changes,
    and the number of messages in the batch.

    Walks the frames once, decoding only the wanted bodies: decoding the DOM messages themselves
    would cost 3-4x (they are most of a batch). Consecutive DOM frames collapse into one marker:
    they share the current time (only a ``Timestamp``, which is wanted, changes it), and one
    reaction is all the dead-click detector needs.
    """
    decode = decode_message
    wanted = BASE_WANTED
    reactions = REACTION_TYPES
    out: list[tuple[int, _Decoded]] = []
    in_run = False
    index = -1
    for index, (type_id, start, end) in enumerate(iter_frames(payload)):
        if type_id in wanted:
            out.append((index, decode(type_id, payload[start:end])))
            in_run = False
        elif type_id in reactions and not in_run:
            out.append((index, _REACTION))
            in_run = True
    return out, index + 1


def _load_ms(value: int) -> int | None:
    """A PageLoadTiming value as stored: Go keeps it only if <= 30 s, else it is not reported."""
    return value if value <= LOAD_TIMING_MAX_MS else None


class TabPage:
    """The page currently shown in one tab (the tracker marks a batch's tab with ``TabData``)."""

    __slots__ = ("loaded_message_id", "message_id", "title", "url")

    def __init__(self) -> None:
        self.url = ""
        self.title = ""
        self.message_id: int | None = None  # LOCATION row of the current page
        self.loaded_message_id: int | None = (
            None  # ... of the last real page load (timings go there)
        )


class WebSessionState(SessionCore):
    """A web session: the core plus tabs, the web message handlers and the click heuristics.

    ``out`` arguments receive the produced domain events in order; ``None`` suppresses emission
    (replay) without changing what happens to the state.
    """

    __slots__ = (
        "_batch_url",
        "_meta",
        "_tab",
        "click_rage",
        "current_title",
        "current_url",
        "dead_click",
        "delay",
        "focus_node_id",
        "server_heuristics",
        "tabs",
        "visible",
    )  # fmt: skip

    def __init__(self, session_id: int, project_id: int = 0) -> None:
        super().__init__(session_id, project_id)
        self.delay = 0
        # Until a start record says otherwise the tracker is unknown: run the server-side click
        # detectors (see engine.heuristics for the duplicate policy).
        self.server_heuristics = True
        self.focus_node_id: int | None = None
        self.visible: bool | None = None
        self.current_url = ""
        self.current_title = ""
        self.tabs: dict[str, TabPage] = {}
        self.click_rage = ClickRageDetector()
        self.dead_click = DeadClickDetector()
        # Per-batch scratch, like the core's (set by _apply_batch, read by the handlers).
        self._meta = _NO_METADATA
        self._tab = TabPage()
        self._batch_url = ""

    def _settle(self) -> None:
        """The end: flush the click detectors, whose pending runs the session's end closes."""
        if self.server_heuristics:
            found = self.click_rage.flush()
            if found is not None:
                self._detected(found)
            found = self.dead_click.flush(self.last_message_ts)
            if found is not None:
                self._detected(found)

    # -- start -------------------------------------------------------------------------------

    def _apply_start(self, record: LogRecord) -> None:
        start = self._begin(record)
        if start is None:
            # A continued start (new page load, or a restart after a 401) of a session we know:
            # nothing new starts.
            return
        self.delay = start.delay
        self.server_heuristics = not tracker_detects_click_issues(start.tracker_version)

    # -- batches -----------------------------------------------------------------------------

    def _apply_batch(self, record: LogRecord) -> None:
        # Decode everything first: a CodecError then parks the record before any state changed.
        payload = record.payload
        messages: Sequence[tuple[int, _Decoded]]
        if self.server_heuristics:
            messages, count = _decode_with_reactions(payload)
        else:
            messages, count = decode_selected(payload, BASE_WANTED)
        self.messages_walked += count
        if not messages:
            return
        first = messages[0][1]
        latest = self._latest
        meta = _storable_metadata(first, latest) if type(first) is BatchMetadata else _NO_METADATA
        self._meta = meta
        self._batch_url = meta.location
        tab = self.tabs.get("")
        if tab is None:
            tab = self.tabs[""] = TabPage()
        self._tab = tab
        now = self.last_message_ts
        if meta.timestamp > 0:
            now = meta.timestamp
        if not self.start_ts and not self.started:
            self.start_ts = now  # no start record (yet): the first message time stands in
        high = now
        handlers = _HANDLERS
        for index, msg in messages:
            cls = type(msg)
            if cls is Timestamp:
                ts = msg.timestamp  # type: ignore[union-attr]
                if ts <= latest:  # else not a time: the previous one carries on
                    now = ts
                    if now > high:  # the most frequent message: a compare is cheaper than max()
                        high = now
                continue
            handler = handlers.get(cls)
            if handler is not None:
                self._now = now
                handler(self, index, msg)
        self.last_message_ts = max(self.last_message_ts, high)
        if self.server_heuristics:
            # Settle what can no longer change: the session's time has moved on.
            found = self.click_rage.on_time(now)
            if found is not None:
                self._detected(found)
            found = self.dead_click.on_time(now)
            if found is not None:
                self._detected(found)

    def _page_url(self) -> str:
        return self._tab.url or self._batch_url

    def _reaction(self) -> None:
        if self.server_heuristics:
            found = self.dead_click.on_reaction(self._now)
            if found is not None:
                self._detected(found)

    # -- message handlers (self, index_in_batch, message) -------------------------------------

    def _on_tab_data(self, index: int, msg: TabData) -> None:
        tab = self.tabs.get(msg.tab_id)
        if tab is None:
            tab = self.tabs[msg.tab_id] = TabPage()
        self._tab = tab

    def _on_location(self, index: int, msg: SetPageLocation | SetPageLocationDeprecated) -> None:
        mid = message_id(self._meta, index)
        title = msg.document_title if type(msg) is SetPageLocation else ""
        url = msg.url
        loaded = msg.navigation_start != 0
        tab = self._tab
        tab.url = url
        tab.title = title
        tab.message_id = mid
        if loaded:
            tab.loaded_message_id = mid
        self.pages_count += 1
        self.events_count += 1
        changed = url != self.current_url or title != self.current_title
        self.current_url = url
        self.current_title = title
        self._reaction()
        out = self._out
        if out is not None:
            now = self._now
            out.append(
                PageVisited(
                    **self._head(),
                    timestamp=now,
                    message_id=mid,
                    page_url=url,
                    url=url,
                    referrer=msg.referrer,
                    title=title,
                    loaded=loaded,
                    navigation_start=clamp_int64(msg.navigation_start),
                )
            )
            if changed:
                out.append(
                    PageTitleChanged(
                        **self._head(),
                        timestamp=now,
                        url=url,
                        title=title,
                    )
                )

    def _timed_page(self) -> int | None:
        tab = self._tab
        return tab.loaded_message_id if tab.loaded_message_id is not None else tab.message_id

    def _on_load_timing(self, index: int, msg: PageLoadTiming) -> None:
        page = self._timed_page()
        out = self._out
        if page is None or out is None:
            return  # no page to attach timings to (the tracker always sends a location first)
        # Relative ms since navigation start (the tracker subtracts it); the projection maps the
        # names to API fields.
        out.append(
            PageTimingsReported(
                **self._head(),
                timestamp=self._now,
                page_message_id=page,
                request_start=_load_ms(msg.request_start),
                response_start=_load_ms(msg.response_start),
                response_end=_load_ms(msg.response_end),
                dom_content_loaded_event_start=_load_ms(msg.dom_content_loaded_event_start),
                dom_content_loaded_event_end=_load_ms(msg.dom_content_loaded_event_end),
                load_event_start=_load_ms(msg.load_event_start),
                load_event_end=_load_ms(msg.load_event_end),
                first_paint=_load_ms(msg.first_paint),
                first_contentful_paint=_load_ms(msg.first_contentful_paint),
            )
        )

    def _on_render_timing(self, index: int, msg: PageRenderTiming) -> None:
        page = self._timed_page()
        out = self._out
        if page is None or out is None:
            return
        # Render timings are kept as sent (Go applies the 30 s cap to load timings only).
        out.append(
            PageTimingsReported(
                **self._head(),
                timestamp=self._now,
                page_message_id=page,
                speed_index=clamp_int64(msg.speed_index),
                visually_complete=clamp_int64(msg.visually_complete),
                time_to_interactive=clamp_int64(msg.time_to_interactive),
            )
        )

    def _on_web_vitals(self, index: int, msg: WebVitals) -> None:
        page = self._timed_page()
        out = self._out
        if page is None or out is None:
            return
        out.append(
            WebVitalReported(
                **self._head(),
                timestamp=self._now,
                page_message_id=page,
                name=msg.name,
                value=msg.value,
            )
        )

    def _on_click(self, index: int, msg: MouseClick | MouseClickDeprecated) -> None:
        mid = message_id(self._meta, index)
        now = self._now
        label = msg.label
        url = self._page_url()
        if self.server_heuristics:
            found = self.click_rage.on_click(label, msg.selector, now, mid, url)
            if found is not None:
                self._detected(found)
            found = self.dead_click.on_click(label, msg.selector, now, mid, url)
            if found is not None:
                self._detected(found)
        if not label:
            return  # as the Go backend: a click without a label is not an event
        self.events_count += 1
        out = self._out
        if out is not None:
            x = y = None
            if type(msg) is MouseClick:
                x, y = clamp_int64(msg.normalized_x), clamp_int64(msg.normalized_y)
            out.append(
                Clicked(
                    **self._head(),
                    timestamp=now,
                    message_id=mid,
                    page_url=url,
                    label=label,
                    selector=msg.selector,
                    hesitation_ms=clamp_int64(msg.hesitation_time),
                    normalized_x=x,
                    normalized_y=y,
                )
            )

    def _on_input(self, index: int, msg: InputChange) -> None:
        self._reaction()
        if not msg.label:
            return
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                InputChanged(
                    **self._head(),
                    timestamp=self._now,
                    message_id=message_id(self._meta, index),
                    page_url=self._page_url(),
                    label=msg.label,
                    value=msg.value,
                    value_masked=msg.value_masked,
                    duration_ms=clamp_int64(msg.input_duration),
                    hesitation_ms=clamp_int64(msg.hesitation_time),
                )
            )

    def _on_focus(self, index: int, msg: SetNodeFocus) -> None:
        self.focus_node_id = msg.id if msg.id >= 0 else None  # -1 = blur
        self._reaction()

    def _on_dom_change(self, index: int, msg: _Reaction) -> None:
        self._reaction()

    def _on_custom_event(self, index: int, msg: CustomEvent) -> None:
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                CustomEventRecorded(
                    **self._head(),
                    timestamp=self._now,
                    message_id=message_id(self._meta, index),
                    page_url=self._page_url(),
                    name=msg.name,
                    payload=msg.payload,
                )
            )

    def _on_user_id(self, index: int, msg: UserID) -> None:
        self._set_user_id(msg.id)

    def _on_anonymous_id(self, index: int, msg: UserAnonymousID) -> None:
        self._set_anonymous_id(msg.id)

    def _on_metadata(self, index: int, msg: Metadata) -> None:
        self._set_metadata(msg.key, msg.value)

    def _on_js_exception(self, index: int, msg: JSException) -> None:
        mid = message_id(self._meta, index)
        now = self._now
        url = self._page_url()
        self.errors_count += 1
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                ErrorRaised(
                    **self._head(),
                    timestamp=now,
                    message_id=mid,
                    page_url=url,
                    name=msg.name,
                    message=msg.message,
                    payload=msg.payload,
                )
            )
        self._issue("js_exception", now, mid, url, context_string=msg.message, context=msg.name)

    def _on_request(self, index: int, msg: NetworkRequest | NetworkRequestDeprecated) -> None:
        mid = message_id(self._meta, index)
        # NetworkRequest.Timestamp is the client clock at the request's start (no delay added,
        # PROTOCOL.md 7); the message itself is written when the response is in, so the start
        # time aligned like every other time is Timestamp + delay.
        ts = clamp_int64(msg.timestamp + self.delay)
        if msg.timestamp <= 0 or ts > self._latest:
            ts = self._now
        url = self._page_url()
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                RequestMade(
                    **self._head(),
                    timestamp=ts,
                    message_id=mid,
                    page_url=url,
                    url=msg.url,
                    method=msg.method,
                    status=clamp_int64(msg.status),
                    duration_ms=clamp_int64(msg.duration),
                    request_type=msg.type,
                    request_body=msg.request,
                    response_body=msg.response,
                    transferred_size=clamp_int64(getattr(msg, "transferred_body_size", 0)),
                )
            )
        if is_bad_request(msg.status):
            self._issue("bad_request", ts, mid, url, context_string=msg.url, context=msg.method)

    def _on_graphql(self, index: int, msg: GraphQL | GraphQLDeprecated) -> None:
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                GraphQLCalled(
                    **self._head(),
                    timestamp=self._now,
                    message_id=message_id(self._meta, index),
                    page_url=self._page_url(),
                    operation_kind=msg.operation_kind,
                    operation_name=msg.operation_name,
                    variables=msg.variables,
                    response=msg.response,
                    duration_ms=clamp_int64(msg.duration),
                )
            )

    def _on_state_action(self, index: int, msg: StateAction) -> None:
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                StateActionDispatched(
                    **self._head(),
                    timestamp=self._now,
                    message_id=message_id(self._meta, index),
                    page_url=self._page_url(),
                    action_type=msg.type,
                )
            )

    def _on_issue_event(self, index: int, msg: IssueEvent) -> None:
        # Tracker-detected (19.x): kept as sent. Its own MessageID counts in the tracker's
        # numbering, so the row is numbered by the IssueEvent message itself (unique per session).
        self._issue(
            msg.type,
            msg.timestamp if 0 < msg.timestamp <= self._latest else self._now,
            message_id(self._meta, index),
            msg.url or self._page_url(),
            context_string=msg.context_string,
            context=msg.context,
            payload=msg.payload,
        )

    def _on_custom_issue(self, index: int, msg: CustomIssue) -> None:
        self._issue(
            "custom",
            self._now,
            message_id(self._meta, index),
            self._page_url(),
            context_string=msg.name,
            payload=msg.payload,
        )

    def _on_mouse_thrashing(self, index: int, msg: MouseThrashing) -> None:
        # Its own Timestamp field is the client clock; the message time is the aligned one.
        self._issue("mouse_thrashing", self._now, message_id(self._meta, index), self._page_url())

    def _on_incident(self, index: int, msg: Incident) -> None:
        self._issue(
            "incident",
            self._now,
            message_id(self._meta, index),
            self._page_url(),
            context_string=msg.label,
            payload=json.dumps(
                {"StartTime": msg.start_time, "EndTime": msg.end_time}, separators=(",", ":")
            ),
        )

    def _on_visibility(self, index: int, msg: SetPageVisibility) -> None:
        self.visible = not msg.hidden
        out = self._out
        if out is not None:
            out.append(
                TabVisibilityChanged(
                    **self._head(),
                    timestamp=self._now,
                    active=not msg.hidden,
                )
            )

    RECORD_KINDS: ClassVar[Mapping[int, RecordApplier]] = {
        RecordKind.WEB_START: _apply_start,
        RecordKind.WEB_BATCH: _apply_batch,
        RecordKind.WEB_ASSETS: SessionCore._apply_activity,  # its time is all that counts
    }


SESSION_KINDS = frozenset(WebSessionState.RECORD_KINDS)
"""Record kinds that belong to a web session actor (everything else only moves the log clock)."""


# Any: each handler takes the message class it is registered under, which a dict's type cannot
# say; the exact-class lookup below guarantees it.
_Handler = Callable[[WebSessionState, int, Any], None]

# Dispatch by exact message class: one dict lookup per decoded message.
_HANDLERS: dict[type, _Handler] = {
    TabData: WebSessionState._on_tab_data,
    SetPageLocation: WebSessionState._on_location,
    SetPageLocationDeprecated: WebSessionState._on_location,
    PageLoadTiming: WebSessionState._on_load_timing,
    PageRenderTiming: WebSessionState._on_render_timing,
    WebVitals: WebSessionState._on_web_vitals,
    MouseClick: WebSessionState._on_click,
    MouseClickDeprecated: WebSessionState._on_click,
    InputChange: WebSessionState._on_input,
    SetNodeFocus: WebSessionState._on_focus,
    CustomEvent: WebSessionState._on_custom_event,
    UserID: WebSessionState._on_user_id,
    UserAnonymousID: WebSessionState._on_anonymous_id,
    Metadata: WebSessionState._on_metadata,
    JSException: WebSessionState._on_js_exception,
    NetworkRequest: WebSessionState._on_request,
    NetworkRequestDeprecated: WebSessionState._on_request,
    GraphQL: WebSessionState._on_graphql,
    GraphQLDeprecated: WebSessionState._on_graphql,
    StateAction: WebSessionState._on_state_action,
    IssueEvent: WebSessionState._on_issue_event,
    CustomIssue: WebSessionState._on_custom_issue,
    MouseThrashing: WebSessionState._on_mouse_thrashing,
    Incident: WebSessionState._on_incident,
    SetPageVisibility: WebSessionState._on_visibility,
    _Reaction: WebSessionState._on_dom_change,
}
