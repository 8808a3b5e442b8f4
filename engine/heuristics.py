"""Server-side issue heuristics (PROTOCOL.md 9.1, API.md 2.4), sans-IO.

Owns the detectors that turn a session's message stream into issues: click rage and dead click
(stateful, below) and the one-line rules for bad requests. The detectors are fed messages with
their times by the session state (``engine.session_state``); they never read a clock, never do I/O
and never build domain events: they return a :class:`Detection` that the caller turns into an
``IssueDetected``.

Duplicate policy (tracker 19 detects click rage and dead clicks itself and sends them as
``IssueEvent``): the server-side click-rage and dead-click detectors run only for sessions whose
tracker does *not* emit those issues, i.e. a tracker major version below 19, or an unknown version
(see :func:`tracker_detects_click_issues`). For tracker 19+ the tracker's own ``IssueEvent`` is the
only source, so one burst yields exactly one ``click_rage``. Deciding per session from the start
record keeps the rule deterministic on replay (a "suppress when the tracker's issue arrives" rule
would depend on which batch carries what).
"""

from __future__ import annotations

import json

import attrs

CLICK_RAGE_MIN_CLICKS = 3
"""A burst of at least this many clicks on the same label is click rage."""
CLICK_RAGE_MAX_GAP_MS = 300
"""Consecutive clicks of a burst are less than this many ms apart."""
DEAD_CLICK_REACTION_MS = 1234
"""A click with no DOM change, input or navigation within this many ms is dead."""
BAD_REQUEST_MIN_STATUS = 400
"""A network request with this status or above is a ``bad_request`` issue."""
TRACKER_HEURISTICS_MAJOR = 19
"""First tracker major version that detects click rage and dead clicks itself."""


@attrs.frozen(slots=True, kw_only=True)
class Detection:
    """An issue found by a detector, located at the message that starts it."""

    issue_type: str
    timestamp: int
    message_id: int
    page_url: str
    context_string: str
    context: str = ""
    payload: str = ""


def tracker_detects_click_issues(tracker_version: str) -> bool:
    """True when a tracker of this version sends click_rage/dead_click ``IssueEvent``s itself.

    An empty or unparsable version counts as "no" so that the server-side detectors cover it.
    """
    major, _, _ = tracker_version.strip().partition(".")
    return major.isdigit() and int(major) >= TRACKER_HEURISTICS_MAJOR


def is_bad_request(status: int) -> bool:
    """Whether a request with this HTTP status is a ``bad_request`` issue (Go: status >= 400)."""
    return status >= BAD_REQUEST_MIN_STATUS


class ClickRageDetector:
    """Finds bursts of >= 3 consecutive clicks on the same label, each < 300 ms after the previous.

    One detection per burst, reported when the burst is over: at the next click that does not
    continue it, when the session's time has moved 300 ms past its last click (checked by the
    caller at the end of each record, see :meth:`on_time`), or on :meth:`flush` (session end). Like
    the Go backend, the detection is located at the burst's first click and says ``{"Count": n}``.
    """

    __slots__ = ("_count", "_first_mid", "_first_ts", "_label", "_last_ts", "_selector", "_url")
    ISSUE_TYPE = "click_rage"

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._label = ""
        self._selector = ""
        self._count = 0
        self._first_ts = 0
        self._first_mid = 0
        self._url = ""
        self._last_ts = 0

    @property
    def pending(self) -> bool:
        """True while a burst that may still grow is being tracked."""
        return self._count > 0

    def on_click(
        self, label: str, selector: str, timestamp: int, message_id: int, page_url: str
    ) -> Detection | None:
        """Feed a click; return the burst it closed, if that burst was click rage."""
        if (
            self._count
            and label == self._label
            and timestamp - self._last_ts < CLICK_RAGE_MAX_GAP_MS
        ):
            self._count += 1
            self._last_ts = timestamp
            return None
        closed = self._build()
        if label:  # a click without a label cannot be rage (nothing to name it by)
            self._label = label
            self._selector = selector
            self._count = 1
            self._first_ts = timestamp
            self._first_mid = message_id
            self._url = page_url
            self._last_ts = timestamp
        return closed

    def on_time(self, now: int) -> Detection | None:
        """Close the burst if ``now`` is too late for another click to continue it."""
        if self._count and now - self._last_ts >= CLICK_RAGE_MAX_GAP_MS:
            return self._build()
        return None

    def flush(self) -> Detection | None:
        """Close whatever burst is open (the session ended)."""
        return self._build()

    def _build(self) -> Detection | None:
        count = self._count
        if count < CLICK_RAGE_MIN_CLICKS:
            self._reset()
            return None
        found = Detection(
            issue_type=self.ISSUE_TYPE,
            timestamp=self._first_ts,
            message_id=self._first_mid,
            page_url=self._url,
            context_string=self._label,
            context=self._selector,
            payload=json.dumps({"Count": count}, separators=(",", ":")),
        )
        self._reset()
        return found


class TapRageDetector(ClickRageDetector):
    """Tap rage of a mobile session (MOBILE.md 5.4): the click-rage rule on taps.

    The reference's ``tapRage.go`` counts a tap only when it is *more* than 300 ms after the
    previous one, the inverse of its web click-rage test; MOBILE.md reads the intended rule as
    "three or more taps on the same label, each within 300 ms of the previous", which is the
    click-rage rule, so this is that detector under the ``tap_rage`` issue type.
    """

    __slots__ = ()
    ISSUE_TYPE = "tap_rage"


class DeadClickDetector:
    """Finds labelled clicks after which nothing reacts (DOM change, input, focus, navigation).

    The last labelled click is pending until the first reaction or the next click; it is dead when
    that came >= 1234 ms after it. Because message times only grow, the caller may also settle it
    as soon as the session's time is 1234 ms past the click (:meth:`on_time`, at the end of each
    record). On :meth:`flush` (session end) a pending click is dead only if the session's last
    message time is 1234 ms past it, as in the Go backend (otherwise there is no evidence).
    Clicks on inputs are not special-cased: focusing the input is itself a reaction.
    """

    __slots__ = ("_label", "_mid", "_pending", "_selector", "_ts", "_url")

    def __init__(self) -> None:
        self._pending = False
        self._label = ""
        self._selector = ""
        self._ts = 0
        self._mid = 0
        self._url = ""

    @property
    def pending(self) -> bool:
        """True while a click waits for a reaction."""
        return self._pending

    def on_click(
        self, label: str, selector: str, timestamp: int, message_id: int, page_url: str
    ) -> Detection | None:
        """Feed a click; return the previous click if it turned out dead."""
        found = self._settle(timestamp) if self._pending else None
        if label:
            self._pending = True
            self._label = label
            self._selector = selector
            self._ts = timestamp
            self._mid = message_id
            self._url = page_url
        return found

    def on_reaction(self, now: int) -> Detection | None:
        """Feed a reaction (DOM mutation, input, focus, navigation) seen at ``now``."""
        return self._settle(now) if self._pending else None

    def on_time(self, now: int) -> Detection | None:
        """Settle the pending click if no reaction can come in time any more."""
        if self._pending and now - self._ts >= DEAD_CLICK_REACTION_MS:
            return self._settle(now)
        return None

    def flush(self, now: int) -> Detection | None:
        """Settle the pending click at session end, ``now`` = the last message time."""
        return self._settle(now) if self._pending else None

    def _settle(self, now: int) -> Detection | None:
        self._pending = False
        if now - self._ts < DEAD_CLICK_REACTION_MS:
            return None
        return Detection(
            issue_type="dead_click",
            timestamp=self._ts,
            message_id=self._mid,
            page_url=self._url,
            context_string=self._label,
            context=self._selector,
        )
