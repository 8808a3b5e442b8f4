"""The replay stream's header (duration, tabs, markers, inactivity, viewports, tab changes,
visibility) and the devtools rows (console, network), from timed messages (sans-IO).

A :class:`ReplaySurvey` is fed the whole session once, in pages, before any DOM item is sent, so
that the player knows the duration and the markers first. It keeps only what the header holds,
each list capped (:data:`MAX_MARKERS`, :data:`MAX_CHANGES`), never the messages.

Inactivity (REPLAY.md 1.6): a gap between "visual" messages (mouse, clicks, node creation, inputs,
viewport) of at least :data:`INACTIVITY_MIN_MS` and at least a tenth of the duration, as OpenReplay
skips them; the floor keeps a short session's pauses of a few seconds playable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from engine.codec import web_messages as wm
from engine.replay.walk import TimedMessage

MAX_MARKERS = 10_000
MAX_CHANGES = 10_000  # viewport sizes, tab changes, visibility changes (each)
MAX_LABEL_CHARS = 300
INACTIVITY_MIN_MS = 5_000
INACTIVITY_SHARE = 0.1
VISUAL_TYPES: tuple[type[wm.WebMessage], ...] = (
    wm.MouseMove, wm.MouseClick, wm.CreateElementNode, wm.SetInputValue, wm.SetInputChecked,
    wm.SetViewportSize, wm.SetViewportScroll, wm.SetNodeScroll, wm.InputChange,
)  # fmt: skip
CONSOLE_LEVELS = frozenset({"log", "info", "warn", "error", "debug"})


@attrs.frozen(slots=True)
class Marker:
    """A point on the timeline: ``kind`` is click, location, input, error, request, rage, custom."""

    time: int  # ms since the session's start
    kind: str
    label: str
    tab: str


@attrs.frozen(slots=True)
class Interval:
    """An inactivity interval the player may jump over (ms since the session's start)."""

    start: int
    end: int


@attrs.frozen(slots=True)
class TabChange:
    time: int
    tab: str


@attrs.frozen(slots=True)
class Visibility:
    time: int
    tab: str
    hidden: bool


@attrs.frozen(slots=True)
class Viewport:
    time: int
    tab: str
    width: int
    height: int


@attrs.frozen(slots=True)
class ReplayHeader:
    """The first line of the replay stream (see :mod:`api.public_v1_replay` for its JSON)."""

    started_at: int
    duration: int
    tabs: tuple[str, ...]
    markers: tuple[Marker, ...]
    inactivity: tuple[Interval, ...]
    viewports: tuple[Viewport, ...]
    tab_changes: tuple[TabChange, ...]
    visibility: tuple[Visibility, ...]
    truncated: bool  # a list hit its cap

    def json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "startedAt": self.started_at,
            "duration": self.duration,
            "tabs": list(self.tabs),
            "markers": [
                {"time": m.time, "type": m.kind, "label": m.label, "tabId": m.tab}
                for m in self.markers
            ],
            "inactivity": [{"start": i.start, "end": i.end} for i in self.inactivity],
            "viewports": [
                {"time": v.time, "tabId": v.tab, "width": v.width, "height": v.height}
                for v in self.viewports
            ],
            "tabChanges": [{"time": c.time, "tabId": c.tab} for c in self.tab_changes],
            "visibility": [
                {"time": v.time, "tabId": v.tab, "hidden": v.hidden} for v in self.visibility
            ],
            "truncated": self.truncated,
        }


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def marker_of(msg: wm.WebMessage) -> tuple[str, str] | None:
    """``(kind, label)`` when ``msg`` is a timeline marker, else None."""
    if isinstance(msg, wm.MouseClick | wm.MouseClickDeprecated):
        return "click", msg.label
    if isinstance(msg, wm.SetPageLocation | wm.SetPageLocationDeprecated):
        return "location", msg.url
    if isinstance(msg, wm.InputChange):
        return "input", msg.label
    if isinstance(msg, wm.JSException):
        return "error", f"{msg.name}: {msg.message}"
    if isinstance(msg, wm.ConsoleLog) and msg.level == "error":
        return "error", msg.value
    if isinstance(msg, wm.NetworkRequest | wm.NetworkRequestDeprecated) and msg.status >= 400:
        return "request", f"{msg.method} {msg.url} {msg.status}"
    if isinstance(msg, wm.MouseThrashing):
        return "rage", "rage"
    if isinstance(msg, wm.CustomEvent):
        return "custom", msg.name
    return None


@attrs.define
class ReplaySurvey:
    """Collects the header while the session's timed messages go by once."""

    started_at: int
    last_time: int = 0
    truncated: bool = False
    _tabs: dict[str, None] = attrs.field(factory=dict)
    _markers: list[Marker] = attrs.field(factory=list)
    _gaps: list[Interval] = attrs.field(factory=list)
    _last_visual: int | None = None
    _viewports: list[Viewport] = attrs.field(factory=list)
    _viewport_of: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    _tab_changes: list[TabChange] = attrs.field(factory=list)
    _visibility: list[Visibility] = attrs.field(factory=list)

    def _relative(self, time: int) -> int:
        return max(0, time - self.started_at)

    def _keep(self, items: list[Any], item: Any, cap: int) -> None:
        if len(items) < cap:
            items.append(item)
        else:
            self.truncated = True

    def feed(self, messages: Iterable[TimedMessage]) -> None:
        for timed in messages:
            msg = timed.message
            if not isinstance(msg, wm.WebMessage):
                continue
            t = self._relative(timed.time)
            self.last_time = max(self.last_time, t)
            self._tabs.setdefault(timed.tab, None)
            found = marker_of(msg)
            if found is not None:
                kind, label = found
                self._keep(self._markers, Marker(t, kind, _label(label), timed.tab), MAX_MARKERS)
            if isinstance(msg, VISUAL_TYPES):
                if self._last_visual is not None and t - self._last_visual >= INACTIVITY_MIN_MS:
                    self._gaps.append(Interval(self._last_visual, t))
                self._last_visual = t
            if isinstance(msg, wm.SetViewportSize):
                size = (msg.width, msg.height)
                if self._viewport_of.get(timed.tab) != size:
                    self._viewport_of[timed.tab] = size
                    viewport = Viewport(t, timed.tab, msg.width, msg.height)
                    self._keep(self._viewports, viewport, MAX_CHANGES)
            elif isinstance(msg, wm.TabChange):
                self._keep(self._tab_changes, TabChange(t, msg.tab_id), MAX_CHANGES)
            elif isinstance(msg, wm.SetPageVisibility):
                visibility = Visibility(t, timed.tab, msg.hidden)
                self._keep(self._visibility, visibility, MAX_CHANGES)

    def header(self) -> ReplayHeader:
        duration = self.last_time
        floor = max(INACTIVITY_MIN_MS, duration * INACTIVITY_SHARE)
        return ReplayHeader(
            started_at=self.started_at,
            duration=duration,
            tabs=tuple(self._tabs),
            markers=tuple(sorted(self._markers, key=lambda m: m.time)),
            inactivity=tuple(g for g in self._gaps if g.end - g.start >= floor),
            viewports=tuple(self._viewports),
            tab_changes=tuple(self._tab_changes),
            visibility=tuple(self._visibility),
            truncated=self.truncated,
        )


# -- the devtools panels ---------------------------------------------------------------------------


def console_rows(messages: Iterable[TimedMessage], started_at: int) -> Iterator[dict[str, Any]]:
    """``GET .../console`` entries: every ``ConsoleLog`` (level outside the five as ``log``)."""
    for timed in messages:
        msg = timed.message
        if isinstance(msg, wm.ConsoleLog):
            yield {
                "time": max(0, timed.time - started_at),
                "timestamp": timed.time,
                "level": msg.level if msg.level in CONSOLE_LEVELS else "log",
                "value": msg.value,
                "tabId": timed.tab,
            }


def network_rows(messages: Iterable[TimedMessage], started_at: int) -> Iterator[dict[str, Any]]:
    """``GET .../network`` entries: every fetch/xhr ``NetworkRequest`` (old and new messages)."""
    for timed in messages:
        msg = timed.message
        if isinstance(msg, wm.NetworkRequest | wm.NetworkRequestDeprecated):
            if msg.type not in ("fetch", "xhr"):
                continue
            # The request's own time (client clock) when it is plausible, else the message time.
            ts = msg.timestamp if 0 < msg.timestamp <= timed.time + 60_000 else timed.time
            yield {
                "time": max(0, ts - started_at),
                "timestamp": ts,
                "method": msg.method,
                "url": msg.url,
                "status": msg.status,
                "duration": msg.duration,
                "type": msg.type,
                "tabId": timed.tab,
            }
