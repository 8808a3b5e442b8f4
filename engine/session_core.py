"""The platform-neutral part of a session's state: what every session actor knows, whatever sent it.

A platform (the web tracker today, the iOS / Android SDKs next, MOBILE.md) is one subclass of
:class:`SessionCore` that adds its own fields, a table of the record kinds it applies
(``RECORD_KINDS``: kind -> method) and, if it keeps detectors that must be settled when the
session goes inactive, a ``_settle`` hook. The core owns the rest, the same for every platform:
ids, times, the counters the sessions projection keeps, user ids and metadata (both SDKs send
those too), and the two invariants of the fold:

- a record whose kind has no method, or whose method raises, is parked (``RecordParked``) and the
  session carries on (DESIGN.md invariant 8: never raise out of a fold). What the method applied
  before it raised stays applied; that is deterministic, so a replay reaches the same state;
- an end settles the platform (an exception there parks the end, ``stage="engine:end"``) and
  always emits ``SessionEnded``.

Sans-IO and synchronous like its subclasses: ``out=None`` suppresses emission (replay after
re-activation) without changing what happens to the state. No platform code is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from engine.events import (
    AnonymousIdSet,
    DomainEvent,
    IssueDetected,
    MetadataSet,
    RecordParked,
    SessionEnded,
    SessionStarted,
    UserIdSet,
    clamp_int64,
)
from engine.start_payload import WebStartPayload
from storage.records import LogRecord

if TYPE_CHECKING:  # the detectors are the platforms' (the core imports no web code)
    from engine.heuristics import Detection

__all__ = ["MAX_CLOCK_AHEAD_MS", "RecordApplier", "SessionCore"]

MAX_CLOCK_AHEAD_MS = 86_400_000
"""A message time later than its record's receipt plus this (a day) is not a time: the trackers
align their clocks to the server's at start, so such a time is a broken or hostile client."""

# Any: each method takes the platform subclass it is defined on, which the base cannot name.
RecordApplier = Callable[[Any, LogRecord], None]


class _Head(TypedDict):
    """The fields every event of one record shares: a TypedDict so ``**`` unpacking is typed."""

    position: int
    session_id: int
    project_id: int


class SessionCore:
    """The platform-neutral session state, and ``apply_record`` / ``end`` to move it forward.

    Satisfies :class:`engine.actor_types.ActorState`. Subclasses set ``RECORD_KINDS`` and list
    only their new fields in ``__slots__``.
    """

    RECORD_KINDS: ClassVar[Mapping[int, RecordApplier]]
    """Record kind -> the method applying it (``self, record``); other kinds are parked."""
    ISSUE_EVENT: ClassVar[type[IssueDetected]] = IssueDetected
    """The event class of the platform's issues (its ``COUNTED`` says if they are events)."""

    __slots__ = (
        "_latest",
        "_now",
        "_out",
        "_pos",
        "anonymous_id",
        "ended",
        "errors_count",
        "events_count",
        "issue_types",
        "last_message_ts",
        "last_record_ms",
        "messages_walked",
        "metadata",
        "pages_count",
        "project_id",
        "records_applied",
        "records_parked",
        "session_id",
        "start_ts",
        "started",
        "tracker_version",
        "user_id",
    )  # fmt: skip

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A platform without a table would park every record: refuse it when it is defined.
        if not getattr(cls, "RECORD_KINDS", None):
            raise TypeError(f"{cls.__name__} must set RECORD_KINDS (record kind -> method)")

    def __init__(self, session_id: int, project_id: int = 0) -> None:
        self.session_id = session_id
        self.project_id = project_id
        self.started = False  # a start record was applied
        self.start_ts = 0
        self.tracker_version = ""
        self.last_message_ts = 0
        self.last_record_ms = 0
        self.ended = False
        self.pages_count = 0  # pages on the web, screens on mobile
        self.events_count = 0
        self.errors_count = 0
        self.issue_types: dict[str, None] = {}  # insertion-ordered set
        self.user_id: str | None = None
        self.anonymous_id: str | None = None
        self.metadata: dict[str, str] = {}
        self.records_applied = 0
        self.records_parked = 0
        self.messages_walked = 0  # tracker messages in the records applied (decoded or skipped)
        # Per-call scratch (set by apply_record/end; avoids threading arguments through handlers).
        self._out: list[DomainEvent] | None = None
        self._pos = 0
        self._now = 0  # the time of the message being applied
        self._latest = 0  # the latest message time taken as a time in this record

    def _head(self) -> _Head:
        """The fields every event of the record being applied shares (``timestamp`` aside)."""
        return {
            "position": self._pos,
            "session_id": self.session_id,
            "project_id": self.project_id,
        }

    # -- records -----------------------------------------------------------------------------

    def apply_record(self, record: LogRecord, out: list[DomainEvent] | None) -> bool:
        """Apply one record of this session; False when it was parked (``RecordParked`` emitted)."""
        self.last_record_ms = max(self.last_record_ms, record.received_at_ms)
        if record.project_id:
            self.project_id = record.project_id
        self.ended = False
        self._out = out
        self._pos = record.position
        self._latest = record.received_at_ms + MAX_CLOCK_AHEAD_MS
        kind = record.kind
        try:
            apply = self.RECORD_KINDS.get(kind)
            if apply is None:
                # The registry routes only the platform's kinds here: a bug, but not a reason
                # to stop the session.
                raise LookupError(f"{type(self).__name__} does not apply record kind {int(kind)}")
            apply(self, record)
        except Exception as exc:  # noqa: BLE001 - invariant 8: park the record, never stop
            self.records_parked += 1
            self._park(record.position, record.received_at_ms, exc, int(kind), "engine")
            return False
        finally:
            self._out = None
        self.records_applied += 1
        return True

    def _begin(self, record: LogRecord) -> WebStartPayload | None:
        """Apply a start record (web and mobile share its payload) and emit ``SessionStarted``.

        Returns the payload for the platform's own fields, or None when the session had already
        started (a continued start: nothing new starts). A bad payload raises before any change.
        """
        start = WebStartPayload.from_bytes(record.payload)
        if self.started:
            return None
        self.started = True
        start_ts = start.start_timestamp
        if start_ts > self._latest:  # not a time (MAX_CLOCK_AHEAD_MS): the receipt is
            start_ts = record.received_at_ms
        self.start_ts = start_ts
        self.last_message_ts = max(self.last_message_ts, start_ts)
        self.tracker_version = start.tracker_version
        if start.user_id:
            self.user_id = start.user_id
        out = self._out
        if out is not None:
            out.append(
                SessionStarted(
                    position=record.position,
                    session_id=self.session_id,
                    project_id=self.project_id,
                    timestamp=start_ts,
                    start=start.start_info(),
                )
            )
        return start

    def _set_user_id(self, user_id: str) -> None:
        """The SDK / tracker set the user id (at the message time ``_now``)."""
        if user_id == self.user_id:
            return  # re-sent after every start
        self.user_id = user_id
        out = self._out
        if out is not None:
            out.append(UserIdSet(**self._head(), timestamp=self._now, user_id=user_id))

    def _set_anonymous_id(self, anonymous_id: str) -> None:
        """The SDK / tracker set the anonymous id."""
        if anonymous_id == self.anonymous_id:
            return
        self.anonymous_id = anonymous_id
        out = self._out
        if out is not None:
            out.append(
                AnonymousIdSet(**self._head(), timestamp=self._now, anonymous_id=anonymous_id)
            )

    def _set_metadata(self, key: str, value: str) -> None:
        """The SDK / tracker set a metadata key."""
        if self.metadata.get(key) == value:
            return  # sent on assignment and again after start [observed]
        self.metadata[key] = value
        out = self._out
        if out is not None:
            out.append(MetadataSet(**self._head(), timestamp=self._now, key=key, value=value))

    def _apply_activity(self, record: LogRecord) -> None:
        """A record that only counts as activity: ``apply_record`` already took its time."""

    def end(self, position: int, out: list[DomainEvent] | None) -> None:
        """The session went inactive: settle the platform and emit ``SessionEnded``."""
        self._out = out
        self._pos = position
        last = self.last_message_ts
        try:
            self._settle()
        except Exception as exc:  # noqa: BLE001 - invariant 8: park the end, still end
            self._park(position, last, exc, 0, "engine:end")
        self.ended = True
        if out is not None:
            start = self.start_ts
            out.append(
                SessionEnded(
                    position=position,
                    session_id=self.session_id,
                    project_id=self.project_id,
                    timestamp=last,
                    duration_ms=max(0, last - start),
                )
            )
        self._out = None

    def _settle(self) -> None:
        """Emit what the platform's detectors still hold at the end (``_out`` and ``_pos`` set)."""

    def _detected(self, d: Detection) -> None:
        """Record the issue a detector found (see ``engine.heuristics``)."""
        self._issue(
            d.issue_type,
            d.timestamp,
            d.message_id,
            d.page_url,
            d.context_string,
            d.context,
            d.payload,
        )

    def _park(self, position: int, timestamp: int, exc: Exception, kind: int, stage: str) -> None:
        out = self._out
        if out is not None:
            out.append(
                RecordParked(
                    position=position,
                    session_id=self.session_id,
                    project_id=self.project_id,
                    timestamp=clamp_int64(timestamp),
                    error=f"{type(exc).__name__}: {exc}",
                    kind=kind,
                    stage=stage,
                )
            )

    def _issue(
        self,
        issue_type: str,
        timestamp: int,
        mid: int,
        page_url: str,
        context_string: str = "",
        context: str = "",
        payload: str = "",
    ) -> None:
        """Record an issue of the session (its type joins ``issue_types``) and emit it."""
        self.issue_types[issue_type] = None
        event_class = self.ISSUE_EVENT
        if event_class.COUNTED:
            self.events_count += 1
        out = self._out
        if out is not None:
            out.append(
                event_class(
                    **self._head(),
                    timestamp=timestamp,
                    message_id=mid,
                    page_url=page_url,
                    issue_type=issue_type,
                    context_string=context_string,
                    context=context,
                    payload=payload,
                )
            )
