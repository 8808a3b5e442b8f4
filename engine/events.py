"""Domain events: what the session actors conclude from the log, consumed by the projections.

Every event carries the log ``position`` of the record that produced it (a ``SessionEnded`` caused
by inactivity carries the position of the record whose time revealed the inactivity, or of the
clock tick), so that a projection can store "all records up to N are applied" as its checkpoint and
skip events at or below it on replay. Times are epoch milliseconds taken from the records and the
messages, never from the wall clock (DESIGN.md invariant 7).

Events that become rows of the session-events table (``SessionEvent`` subclasses) carry
``message_id`` = (page_no << 32) + first_index + index of the message in its batch, as the
OpenReplay backend numbers them, and the page URL current when the message was sent.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from engine.start_info import StartInfo
from storage.records import RecordKind

_V3_KINDS = frozenset({int(RecordKind.V3_EVENT), int(RecordKind.V3_DELETE)})

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
"""The range of an SQLite INTEGER: every integer field of an event must lie in it."""


def clamp_int64(value: int) -> int:
    """``value`` clamped to SQLite's INTEGER range (the wire's ``uint`` reaches 2**64 - 1)."""
    if value > INT64_MAX:
        return INT64_MAX
    if value < INT64_MIN:
        return INT64_MIN
    return value


def repair_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8.

    JSON allows ``"\\ud800"``, and Python's ``json`` decodes it to a lone surrogate that SQLite
    cannot store; the tracker's own encoder does this replacement too. Valid text is returned
    as is (one encode attempt).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # surrogatepass keeps a (rare) split pair joinable; "replace" turns the lone ones to U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


@attrs.frozen(slots=True, kw_only=True)
class DomainEvent:
    """Common head of every domain event."""

    position: int
    session_id: int
    project_id: int
    timestamp: int


# -- session lifecycle -------------------------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class SessionStarted(DomainEvent):
    """A session was started by ``/v1/web/start`` (or a mobile start); ``timestamp``: its start."""

    start: StartInfo = attrs.field(factory=StartInfo)


@attrs.frozen(slots=True, kw_only=True)
class SessionEnded(DomainEvent):
    """The session saw no record for the inactivity timeout (in record time).

    ``timestamp`` = the last message time of the session; ``duration_ms`` = that minus the start.
    A late batch re-activates the session, which can then end again with a longer duration.
    """

    duration_ms: int


@attrs.frozen(slots=True, kw_only=True)
class UserIdSet(DomainEvent):
    user_id: str


@attrs.frozen(slots=True, kw_only=True)
class AnonymousIdSet(DomainEvent):
    anonymous_id: str


@attrs.frozen(slots=True, kw_only=True)
class MetadataSet(DomainEvent):
    key: str
    value: str


@attrs.frozen(slots=True, kw_only=True)
class PageTitleChanged(DomainEvent):
    """The current page (and its title) changed; feeds the live-session object."""

    url: str
    title: str


@attrs.frozen(slots=True, kw_only=True)
class TabVisibilityChanged(DomainEvent):
    """The tracked tab went to the background (``active=False``) or came back."""

    active: bool


# -- rows of the session-events table ----------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class SessionEvent(DomainEvent):
    """An event that becomes one row of the session's event list, by (timestamp, message_id).

    ``COUNTED``: whether the row counts in the session's ``events_count`` (every web row does; a
    mobile session counts only taps, swipes and inputs, MOBILE.md 5.2).
    """

    COUNTED: ClassVar[bool] = True
    message_id: int
    page_url: str = ""


@attrs.frozen(slots=True, kw_only=True)
class PageVisited(SessionEvent):
    """LOCATION. ``loaded`` is false for SPA navigations (NavigationStart == 0).

    Timings are filled by later ``PageTimingsReported`` / ``WebVitalReported`` events that name this
    page by ``message_id``.
    """

    url: str
    referrer: str = ""
    title: str = ""
    loaded: bool = False
    navigation_start: int = 0


@attrs.frozen(slots=True, kw_only=True)
class PageTimingsReported(DomainEvent):
    """PageLoadTiming / PageRenderTiming for the page whose LOCATION row has ``page_message_id``.

    Values are milliseconds relative to navigation start; ``None`` = not reported (or dropped
    because above 30 s, as the reference backend does).
    """

    page_message_id: int
    request_start: int | None = None
    response_start: int | None = None
    response_end: int | None = None
    dom_content_loaded_event_start: int | None = None
    dom_content_loaded_event_end: int | None = None
    load_event_start: int | None = None
    load_event_end: int | None = None
    first_paint: int | None = None
    first_contentful_paint: int | None = None
    speed_index: int | None = None
    visually_complete: int | None = None
    time_to_interactive: int | None = None


@attrs.frozen(slots=True, kw_only=True)
class WebVitalReported(DomainEvent):
    """A web vital (CLS, INP, LCP, TTFB, ...) of the page whose LOCATION has ``page_message_id``."""

    page_message_id: int
    name: str
    value: str


@attrs.frozen(slots=True, kw_only=True)
class Clicked(SessionEvent):
    """CLICK. ``normalized_x/y`` in hundredths of a percent (0-10000), ``None`` when unknown."""

    label: str
    selector: str = ""
    hesitation_ms: int = 0
    normalized_x: int | None = None
    normalized_y: int | None = None


@attrs.frozen(slots=True, kw_only=True)
class InputChanged(SessionEvent):
    """INPUT. ``value`` is what the tracker sent (already masked/obscured by the tracker)."""

    label: str
    value: str = ""
    value_masked: bool = False
    duration_ms: int = 0
    hesitation_ms: int = 0


@attrs.frozen(slots=True, kw_only=True)
class CustomEventRecorded(SessionEvent):
    """CUSTOM: ``tracker.event(name, payload)``; payload is the JSON text the tracker sent."""

    name: str
    payload: str = ""


@attrs.frozen(slots=True, kw_only=True)
class ErrorRaised(SessionEvent):
    """ERROR: a JS exception (source ``js_exception``)."""

    name: str
    message: str
    payload: str = ""
    source: str = "js_exception"


@attrs.frozen(slots=True, kw_only=True)
class RequestMade(SessionEvent):
    """REQUEST: a fetch/xhr/beacon the tracker observed."""

    url: str
    method: str
    status: int
    duration_ms: int
    request_type: str = "fetch"
    request_body: str = ""
    response_body: str = ""
    transferred_size: int = 0


@attrs.frozen(slots=True, kw_only=True)
class GraphQLCalled(SessionEvent):
    """GRAPHQL."""

    operation_kind: str
    operation_name: str
    variables: str = ""
    response: str = ""
    duration_ms: int = 0


@attrs.frozen(slots=True, kw_only=True)
class StateActionDispatched(SessionEvent):
    """STATEACTION (Redux/Vuex/... action type)."""

    action_type: str


@attrs.frozen(slots=True, kw_only=True)
class IssueDetected(SessionEvent):
    """ISSUE: click_rage, dead_click, bad_request, js_exception, custom, mouse_thrashing, cpu, ...

    ``payload`` is JSON text (e.g. ``{"Count": 3}`` for click rage).
    """

    issue_type: str
    context_string: str = ""
    context: str = ""
    payload: str = ""


# -- rows of mobile sessions (MOBILE.md 5.2) ------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class Tapped(SessionEvent):
    """TAP at (x, y), screen points."""

    label: str
    x: int = 0
    y: int = 0


@attrs.frozen(slots=True, kw_only=True)
class Swiped(SessionEvent):
    """SWIPE: ``direction`` is "up", "down", "left" or "right"."""

    label: str
    direction: str = ""


@attrs.frozen(slots=True, kw_only=True)
class MobileInputEntered(SessionEvent):
    """INPUT of a mobile session: the field's label only, never the typed value."""

    label: str


@attrs.frozen(slots=True, kw_only=True)
class ViewComponentChanged(SessionEvent):
    """VIEW: a view component of a screen appeared (``visible``) or disappeared."""

    COUNTED: ClassVar[bool] = False
    screen_name: str
    view_name: str
    visible: bool = True


@attrs.frozen(slots=True, kw_only=True)
class Crashed(SessionEvent):
    """CRASH: the app crashed (it counts as an error of the session)."""

    COUNTED: ClassVar[bool] = False
    name: str
    reason: str = ""
    stacktrace: str = ""


# The web events a mobile session reuses, as rows that do not count in ``events_count``.


@attrs.frozen(slots=True, kw_only=True)
class MobileRequestMade(RequestMade):
    """REQUEST of a mobile session (``request_type`` is the SDK's, "request")."""

    COUNTED: ClassVar[bool] = False


@attrs.frozen(slots=True, kw_only=True)
class MobileCustomEventRecorded(CustomEventRecorded):
    """CUSTOM of a mobile session."""

    COUNTED: ClassVar[bool] = False


@attrs.frozen(slots=True, kw_only=True)
class MobileGraphQLCalled(GraphQLCalled):
    """GRAPHQL of a mobile session."""

    COUNTED: ClassVar[bool] = False


@attrs.frozen(slots=True, kw_only=True)
class MobileIssueDetected(IssueDetected):
    """ISSUE of a mobile session: tap_rage, crash, bad_request."""

    COUNTED: ClassVar[bool] = False


# -- dead letters ------------------------------------------------------------------------------


# -- v3 generic events (V3.md) ------------------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class V3DomainEvent(DomainEvent):
    """An event of a v3 session: not a web or mobile session, so the sessions' read models
    leave it (and a v3 record parked, see :func:`is_v3`) to ``projections.v3``."""


def is_v3(event: DomainEvent) -> bool:
    """True for an event of a v3 session: a :class:`V3DomainEvent` or a parked v3 record."""
    return isinstance(event, V3DomainEvent) or (
        isinstance(event, RecordParked) and event.kind in _V3_KINDS
    )


@attrs.frozen(slots=True, kw_only=True)
class V3EventRecorded(V3DomainEvent):
    """One event of ``/3/events/update``; ``session_id`` = the hash of its (app, user, session).

    ``event_id`` = record position * 1000 + index in the record; ``ts`` = the client's time in
    unix seconds as sent (``timestamp`` = the same in ms); ``entities`` = (key, value as JSON
    text, ``None`` for a null value) in the order sent. ``orphan``: an END with no open START of
    its type, or a second START while one is open (stored, never an error: V3.md 9.4).
    """

    event_id: int
    aid: int
    user: str
    session: str
    action: str
    type: str
    category: str
    ts: float
    entities: tuple[tuple[str, str | None], ...] = ()
    orphan: bool = False


@attrs.frozen(slots=True, kw_only=True)
class V3IntervalOpened(V3DomainEvent):
    """A START opened an interval of ``type`` (``start_event_id``, at ``start_ts``)."""

    start_event_id: int
    type: str
    start_ts: float


@attrs.frozen(slots=True, kw_only=True)
class V3IntervalClosed(V3DomainEvent):
    """An END closed the open interval of ``type``: ``duration`` = end ts - start ts, seconds."""

    start_event_id: int
    end_event_id: int
    type: str
    end_ts: float
    duration: float


@attrs.frozen(slots=True, kw_only=True)
class V3EventDeleted(V3DomainEvent):
    """``POST /3/events/delete`` removed event ``event_id`` of this session from the read models."""

    event_id: int


@attrs.frozen(slots=True, kw_only=True)
class RecordParked(DomainEvent):
    """A record the engine could not decode or apply (DESIGN.md invariant 8).

    The projections keep it in a dead-letter table; the session carries on with its next record.
    ``timestamp`` = the record's ``received_at_ms``; ``kind`` = its ``RecordKind`` value; ``error``
    = the exception type and message; ``stage`` = where it failed (``engine`` while applying a
    record, ``engine:end`` while ending the session).
    """

    error: str
    kind: int = 0
    stage: str = "engine"
