"""The state of one mobile (iOS / Android SDK) session, and how log records move it (sans-IO).

:class:`MobileSessionState` is the mobile platform over :class:`~engine.session_core.SessionCore`
(which owns ids, times, counters, user ids, metadata, parking and ending). It applies the
MOBILE_START record (the same payload as a web start) and the MOBILE_BATCH / MOBILE_LATE records
(a raw batch, decoded by ``engine.codec.mobile_messages``), and turns SDK messages into the
domain events of MOBILE.md 5.2: TAP, SWIPE, INPUT (the label only), VIEW, CUSTOM, REQUEST, CRASH,
GRAPHQL, and ISSUE (``tap_rage``, ``crash``, ``bad_request``).

Order and repeats. The SDK queues messages on two threads, so a batch can hold them out of time
order (MOBILE.md 3.7.8): a batch's messages are applied by time, their place in the batch breaking
ties. A message's index is ``MobileBatchMeta.FirstIndex`` plus its place (MOBILE.md 3.3); a late
batch (``/late``) or a stored copy of a batch repeats messages already applied, so a message
whose index is not above the highest one applied is skipped. A bare crash upload (no
``MobileBatchMeta``) has no index: its messages are skipped when an equal one was applied, and
numbered after :data:`BARE_ID_BASE` so that their rows cannot meet indexed ones.

Times: each message carries its own; one more than :data:`MAX_CLOCK_AHEAD_MS` after the
record's receipt (or 0) is not a time, and the previous message's time stands in, as on the web.
``MobileBatchMeta``'s time (the flush, later than its messages) moves the session's last time (the
reference's ender counts it) but is never a message's time. ``events_count`` counts taps, swipes
and inputs with a label, as the reference's ``mobile.go`` does; crashes count as errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

from engine.codec.mobile_messages import (
    MobileBatchMeta,
    MobileClickEvent,
    MobileCrash,
    MobileEvent,
    MobileGraphQL,
    MobileInputEvent,
    MobileMetadata,
    MobileNetworkCall,
    MobileSwipeEvent,
    MobileUserAnonymousID,
    MobileUserID,
    MobileViewComponentEvent,
    decode_batch,
)
from engine.events import (
    Crashed,
    MobileCustomEventRecorded,
    MobileGraphQLCalled,
    MobileInputEntered,
    MobileIssueDetected,
    MobileRequestMade,
    Swiped,
    Tapped,
    ViewComponentChanged,
    clamp_int64,
)
from engine.heuristics import TapRageDetector, is_bad_request
from engine.session_core import MAX_CLOCK_AHEAD_MS, RecordApplier, SessionCore
from storage.records import LogRecord, RecordKind

__all__ = [
    "BARE_ID_BASE",
    "HTTP_METHODS",
    "MAX_CLOCK_AHEAD_MS",
    "MOBILE_SESSION_KINDS",
    "MobileSessionState",
]

BARE_ID_BASE: Final = 1 << 62
"""Message ids of the messages of bare uploads (no ``MobileBatchMeta``): this plus a counter."""
_FIRST_INDEX_MAX: Final = (1 << 61) - 1  # keeps every index below BARE_ID_BASE (and int64)

HTTP_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""A network call with another method is not a REQUEST (the reference refuses it too)."""


class MobileSessionState(SessionCore):
    """A mobile session: the core plus the platform, the message indices and tap rage."""

    ISSUE_EVENT = MobileIssueDetected

    __slots__ = ("_bare_count", "_bare_seen", "applied_index", "platform", "tap_rage")

    def __init__(self, session_id: int, project_id: int = 0) -> None:
        super().__init__(session_id, project_id)
        self.platform = ""  # "ios" or "android" once the start is applied
        self.applied_index = -1  # the highest message index applied
        self.tap_rage = TapRageDetector()
        self._bare_seen: set[object] = set()  # messages of bare uploads applied
        self._bare_count = 0

    def _settle(self) -> None:
        """The end: a run of taps still open is closed."""
        found = self.tap_rage.flush()
        if found is not None:
            self._detected(found)

    def _apply_start(self, record: LogRecord) -> None:
        start = self._begin(record)
        if start is not None:
            self.platform = start.platform

    def _apply_batch(self, record: LogRecord) -> None:
        # Decode first: a MobileCodecError then parks the record before any state changed.
        messages = decode_batch(record.payload, platform=self.platform).messages
        self.messages_walked += len(messages)
        if not messages:
            return
        latest = self._latest
        now = self.last_message_ts
        high = now
        first = messages[0]
        indexed = type(first) is MobileBatchMeta
        base = min(first.first_index, _FIRST_INDEX_MAX) if indexed else 0  # type: ignore[union-attr]
        applied = self.applied_index
        timed: list[tuple[int, int, int, Any]] = []
        for place, msg in enumerate(messages):
            ts = msg.timestamp
            good = 0 < ts <= latest
            if indexed and place == 0:
                if good and ts > high:
                    high = ts
                continue
            if good:
                now = ts
                if ts > high:
                    high = ts
            if indexed:
                mid = base + place
                if mid <= applied:
                    continue  # a repeat (late batch, stored copy)
            else:
                if msg in self._bare_seen:
                    continue
                self._bare_seen.add(msg)
                mid = BARE_ID_BASE + self._bare_count
                self._bare_count += 1
            timed.append((now, place, mid, msg))
        if indexed:
            self.applied_index = max(applied, base + len(messages) - 1)
        if not self.start_ts and not self.started:
            # No start record (yet): the first message time stands in.
            self.start_ts = min((t for t, _, _, _ in timed), default=0)
        timed.sort()  # by (time, place): places are distinct, the rest is never compared
        handlers = _HANDLERS
        for t, _place, mid, msg in timed:
            handler = handlers.get(type(msg))
            if handler is not None:
                self._now = t
                handler(self, mid, msg)
        self.last_message_ts = max(self.last_message_ts, high)
        found = self.tap_rage.on_time(self.last_message_ts)
        if found is not None:
            self._detected(found)

    # -- message handlers (self, message id, message) ------------------------------------------

    def _on_user_id(self, mid: int, msg: MobileUserID) -> None:
        self._set_user_id(msg.id)

    def _on_anonymous_id(self, mid: int, msg: MobileUserAnonymousID) -> None:
        self._set_anonymous_id(msg.id)

    def _on_metadata(self, mid: int, msg: MobileMetadata) -> None:
        self._set_metadata(msg.key, msg.value)

    def _on_tap(self, mid: int, msg: MobileClickEvent) -> None:
        label = msg.label
        found = self.tap_rage.on_click(label, "", self._now, mid, "")
        if found is not None:
            self._detected(found)
        if not label:
            return  # as the reference: a tap without a label is not an event
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                Tapped(
                    **self._head(),
                    timestamp=self._now,
                    message_id=mid,
                    label=label,
                    x=clamp_int64(msg.x),
                    y=clamp_int64(msg.y),
                )
            )

    def _on_swipe(self, mid: int, msg: MobileSwipeEvent) -> None:
        if not msg.label:
            return
        self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                Swiped(
                    **self._head(),
                    timestamp=self._now,
                    message_id=mid,
                    label=msg.label,
                    direction=msg.direction,
                )
            )

    def _on_input(self, mid: int, msg: MobileInputEvent) -> None:
        if not msg.label:
            return
        self.events_count += 1
        out = self._out
        if out is not None:  # the typed value is never kept
            out.append(
                MobileInputEntered(
                    **self._head(), timestamp=self._now, message_id=mid, label=msg.label
                )
            )

    def _on_view(self, mid: int, msg: MobileViewComponentEvent) -> None:
        out = self._out
        if out is not None:
            out.append(
                ViewComponentChanged(
                    **self._head(),
                    timestamp=self._now,
                    message_id=mid,
                    screen_name=msg.screen_name,
                    view_name=msg.view_name,
                    visible=msg.visible,
                )
            )

    def _on_custom_event(self, mid: int, msg: MobileEvent) -> None:
        out = self._out
        if out is not None:
            out.append(
                MobileCustomEventRecorded(
                    **self._head(),
                    timestamp=self._now,
                    message_id=mid,
                    name=msg.name,
                    payload=msg.payload,
                )
            )

    def _on_crash(self, mid: int, msg: MobileCrash) -> None:
        self.errors_count += 1
        now = self._now
        out = self._out
        if out is not None:
            out.append(
                Crashed(
                    **self._head(),
                    timestamp=now,
                    message_id=mid,
                    name=msg.name,
                    reason=msg.reason,
                    stacktrace=msg.stacktrace,
                )
            )
        self._issue("crash", now, mid, "", context_string=msg.reason, context=msg.name)

    def _on_request(self, mid: int, msg: MobileNetworkCall) -> None:
        if msg.method.upper() not in HTTP_METHODS:
            return
        now = self._now
        out = self._out
        if out is not None:
            out.append(
                MobileRequestMade(
                    **self._head(),
                    timestamp=now,
                    message_id=mid,
                    url=msg.url,
                    method=msg.method,
                    status=clamp_int64(msg.status),
                    duration_ms=clamp_int64(msg.duration),
                    request_type=msg.type,
                    request_body=msg.request,
                    response_body=msg.response,
                )
            )
        if is_bad_request(msg.status):
            self._issue("bad_request", now, mid, "", context_string=msg.url, context=msg.method)

    def _on_graphql(self, mid: int, msg: MobileGraphQL) -> None:
        out = self._out
        if out is not None:
            out.append(
                MobileGraphQLCalled(
                    **self._head(),
                    timestamp=self._now,
                    message_id=mid,
                    operation_kind=msg.operation_kind,
                    operation_name=msg.operation_name,
                    variables=msg.variables,
                    response=msg.response,
                    duration_ms=clamp_int64(msg.duration),
                )
            )

    RECORD_KINDS: ClassVar[Mapping[int, RecordApplier]] = {
        RecordKind.MOBILE_START: _apply_start,
        RecordKind.MOBILE_BATCH: _apply_batch,
        RecordKind.MOBILE_LATE: _apply_batch,
    }


MOBILE_SESSION_KINDS = frozenset(MobileSessionState.RECORD_KINDS)
"""Record kinds that belong to a mobile session actor."""


# Any: each handler takes the message class it is registered under (exact-class lookup).
_Handler = Callable[[MobileSessionState, int, Any], None]

_HANDLERS: dict[type, _Handler] = {
    MobileUserID: MobileSessionState._on_user_id,
    MobileUserAnonymousID: MobileSessionState._on_anonymous_id,
    MobileMetadata: MobileSessionState._on_metadata,
    MobileClickEvent: MobileSessionState._on_tap,
    MobileSwipeEvent: MobileSessionState._on_swipe,
    MobileInputEvent: MobileSessionState._on_input,
    MobileViewComponentEvent: MobileSessionState._on_view,
    MobileEvent: MobileSessionState._on_custom_event,
    MobileCrash: MobileSessionState._on_crash,
    MobileNetworkCall: MobileSessionState._on_request,
    MobileGraphQL: MobileSessionState._on_graphql,
}
