"""Test helpers for the session actors and the supervisor: scripted sessions and an in-memory log.

``SessionScript`` writes what a tracker would send for one session (a start payload and batches
built with the real codec's ``encode_batch``), remembering the message id and time of everything it
adds so that tests can state the exact events they expect. ``MemoryLog`` holds committed records
and answers the blocking reader interface (``read``, ``read_session``, ``head``) that the
supervisor's rebuild source, history and resume point use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import attrs
import trio

from engine.codec import web as codec
from engine.events import DomainEvent
from engine.start_payload import WebStartPayload
from storage.records import LogRecord, NewRecord, RecordKind

E = TypeVar("E", bound=DomainEvent)


def wire_type_id(message: codec.AnyMessage) -> int:
    """The wire type id of a decoded message, known or not."""
    return message.type_id if isinstance(message, codec.UnknownMessage) else message.TYPE_ID


T0 = 1_795_418_019_000  # a plausible epoch-ms start (2026-11-23)


@attrs.frozen
class Mark:
    """Where a scripted message landed: its backend message id and its time."""

    message_id: int
    timestamp: int


class SessionScript:
    """Builds the log records of one web session, message by message.

    Messages go into the current batch; :meth:`batch` closes it into a ``WEB_BATCH`` record. Every
    batch starts as the tracker's do: ``BatchMetadata``, ``Timestamp``, ``TabData`` (ids 0-2), and a
    ``Timestamp`` is written whenever the script's clock moved since the last one.
    """

    def __init__(
        self,
        session_id: int,
        *,
        project_id: int = 1,
        start_ms: int = T0,
        tracker_version: str = "19.0.1",
        delay: int = 0,
        tab_id: str = "e18efc31aa0f",
        page_no: int = 0,
    ) -> None:
        self.session_id = session_id
        self.project_id = project_id
        self.start_ms = start_ms
        self.now = start_ms
        self.tracker_version = tracker_version
        self.delay = delay
        self.tab_id = tab_id
        self.page_no = page_no
        self.url = ""
        self._first_index = 0
        self._batch_no = 0
        self._items: list[codec.WebMessage] = []
        self._batch_ts = 0
        self._batch_url = ""
        self._last_ts: int | None = None

    # -- records -----------------------------------------------------------------------------

    def start(
        self, *, received_at: int | None = None, continued: bool = False, **fields: object
    ) -> NewRecord:
        """The WEB_START record (``fields`` override WebStartPayload defaults)."""
        payload = WebStartPayload(
            session_id=self.session_id,
            project_id=self.project_id,
            start_timestamp=self.start_ms,
            delay=self.delay,
            continued=continued,
            tracker_version=self.tracker_version,
            **fields,  # type: ignore[arg-type]
        )
        return NewRecord(
            session_id=self.session_id,
            project_id=self.project_id,
            kind=RecordKind.WEB_START,
            received_at_ms=self.start_ms if received_at is None else received_at,
            payload=payload.to_bytes(),
        )

    def batch(self, *, received_at: int | None = None) -> NewRecord:
        """Close the current batch into a WEB_BATCH record, received 50 ms after its last one."""
        header: list[codec.WebMessage] = [
            codec.BatchMetadata(
                version=1,
                page_no=self.page_no,
                first_index=self._first_index,
                timestamp=self._batch_ts or self.now,
                location=self._batch_url,
            ),
            codec.Timestamp(timestamp=self._batch_ts or self.now),
            codec.TabData(tab_id=self.tab_id),
        ]
        payload = codec.encode_batch(header + self._items)
        self._batch_no += 1
        self._first_index += len(self._items)
        self._items = []
        self._batch_ts = 0
        self._last_ts = None
        return NewRecord(
            session_id=self.session_id,
            project_id=self.project_id,
            kind=RecordKind.WEB_BATCH,
            received_at_ms=self.now + 50 if received_at is None else received_at,
            payload=payload,
            batch_key=f"{self.page_no}_{self._batch_no}",
        )

    def raw_batch(self, payload: bytes, *, received_at: int) -> NewRecord:
        """A WEB_BATCH record with an arbitrary payload (e.g. a corrupt one)."""
        self._batch_no += 1
        return NewRecord(
            session_id=self.session_id,
            project_id=self.project_id,
            kind=RecordKind.WEB_BATCH,
            received_at_ms=received_at,
            payload=payload,
            batch_key=f"{self.page_no}_{self._batch_no}",
        )

    def assets(self, *, received_at: int) -> NewRecord:
        """A WEB_ASSETS record (only activity for the engine)."""
        return NewRecord(
            session_id=self.session_id,
            project_id=self.project_id,
            kind=RecordKind.WEB_ASSETS,
            received_at_ms=received_at,
            payload=b"\x51\x01\x00\x00\x00\x00",
        )

    # -- messages ----------------------------------------------------------------------------

    def wait(self, ms: int) -> SessionScript:
        """Move the script's clock forward."""
        self.now += ms
        return self

    def add(self, msg: codec.WebMessage) -> Mark:
        """Append any message to the current batch at the current time."""
        if not self._batch_ts:
            self._batch_ts = self.now
            self._batch_url = self.url
            self._last_ts = self.now  # the header's Timestamp
        if self._last_ts != self.now:
            self._items.append(codec.Timestamp(timestamp=self.now))
            self._last_ts = self.now
        self._items.append(msg)
        index = 3 + len(self._items) - 1
        return Mark((self.page_no << 32) + self._first_index + index, self.now)

    def visit(self, url: str, *, title: str = "", referrer: str = "", loaded: bool = True) -> Mark:
        """SetPageLocation (a page load when ``loaded``, else an SPA navigation)."""
        nav = self.now - 500 if loaded else 0
        mark = self.add(
            codec.SetPageLocation(
                url=url, referrer=referrer, navigation_start=nav, document_title=title
            )
        )
        self.url = url
        return mark

    def load_timing(self, **fields: int) -> Mark:
        """PageLoadTiming (unspecified fields 0)."""
        values = {f.name: 0 for f in attrs.fields(codec.PageLoadTiming)}
        values.update(fields)
        return self.add(codec.PageLoadTiming(**values))

    def render_timing(
        self, speed_index: int, visually_complete: int, time_to_interactive: int
    ) -> Mark:
        """PageRenderTiming."""
        return self.add(
            codec.PageRenderTiming(
                speed_index=speed_index,
                visually_complete=visually_complete,
                time_to_interactive=time_to_interactive,
            )
        )

    def web_vital(self, name: str, value: str) -> Mark:
        """WebVitals."""
        return self.add(codec.WebVitals(name=name, value=value))

    def click(
        self, label: str, *, selector: str = "", node: int = 7, x: int = 430, y: int = 1200
    ) -> Mark:
        """MouseClick."""
        return self.add(
            codec.MouseClick(
                id=node,
                hesitation_time=5,
                label=label,
                selector=selector,
                normalized_x=x,
                normalized_y=y,
            )
        )

    def rage_click(
        self, label: str, *, count: int = 3, gap_ms: int = 100, selector: str = ""
    ) -> list[Mark]:
        """``count`` clicks on ``label``, ``gap_ms`` apart."""
        marks = []
        for i in range(count):
            if i:
                self.wait(gap_ms)
            marks.append(self.click(label, selector=selector))
        return marks

    def input(self, label: str, value: str, *, masked: bool = False, node: int = 9) -> Mark:
        """InputChange."""
        return self.add(
            codec.InputChange(
                id=node,
                value=value,
                value_masked=masked,
                label=label,
                hesitation_time=3,
                input_duration=40,
            )
        )

    def focus(self, node: int) -> Mark:
        """SetNodeFocus (-1 = blur)."""
        return self.add(codec.SetNodeFocus(id=node))

    def dom_change(self, node: int = 12) -> Mark:
        """A DOM mutation (SetNodeAttribute)."""
        return self.add(codec.SetNodeAttribute(id=node, name="class", value="open"))

    def mouse_move(self) -> Mark:
        """MouseMove (a message the engine does not decode)."""
        return self.add(codec.MouseMove(x=10, y=20))

    def custom_event(self, name: str, payload: str = "{}") -> Mark:
        """CustomEvent."""
        return self.add(codec.CustomEvent(name=name, payload=payload))

    def js_exception(self, name: str, message: str, payload: str = "[]") -> Mark:
        """JSException."""
        return self.add(
            codec.JSException(name=name, message=message, payload=payload, metadata="{}")
        )

    def request(
        self,
        url: str,
        *,
        status: int = 200,
        method: str = "GET",
        duration: int = 12,
        started: int | None = None,
    ) -> Mark:
        """NetworkRequest; ``started`` is its own (client-clock) timestamp, default now - delay."""
        return self.add(
            codec.NetworkRequest(
                type="fetch",
                method=method,
                url=url,
                request='{"headers":{},"body":null}',
                response='{"headers":{},"body":null}',
                status=status,
                timestamp=(self.now - self.delay) if started is None else started,
                duration=duration,
                transferred_body_size=33,
            )
        )

    def user_id(self, user_id: str) -> Mark:
        """UserID."""
        return self.add(codec.UserID(id=user_id))

    def anonymous_id(self, anonymous_id: str) -> Mark:
        """UserAnonymousID."""
        return self.add(codec.UserAnonymousID(id=anonymous_id))

    def metadata(self, key: str, value: str) -> Mark:
        """Metadata."""
        return self.add(codec.Metadata(key=key, value=value))

    def issue_event(
        self,
        issue_type: str,
        *,
        context_string: str = "",
        context: str = "",
        payload: str = "",
        timestamp: int | None = None,
    ) -> Mark:
        """IssueEvent as tracker 19 sends it."""
        return self.add(
            codec.IssueEvent(
                message_id=0,
                timestamp=self.now if timestamp is None else timestamp,
                type=issue_type,
                context_string=context_string,
                context=context,
                payload=payload,
                url=self.url,
            )
        )

    def custom_issue(self, name: str, payload: str = "") -> Mark:
        """CustomIssue (``tracker.issue``)."""
        return self.add(codec.CustomIssue(name=name, payload=payload))

    def graphql(self, operation_name: str) -> Mark:
        """GraphQL."""
        return self.add(
            codec.GraphQL(
                operation_kind="query",
                operation_name=operation_name,
                variables="{}",
                response="{}",
                duration=7,
            )
        )

    def state_action(self, action_type: str) -> Mark:
        """StateAction."""
        return self.add(codec.StateAction(type=action_type))

    def mouse_thrashing(self) -> Mark:
        """MouseThrashing."""
        return self.add(codec.MouseThrashing(timestamp=self.now - self.delay))

    def visibility(self, hidden: bool) -> Mark:
        """SetPageVisibility."""
        return self.add(codec.SetPageVisibility(hidden=hidden))


def clock_tick(received_at: int) -> NewRecord:
    """A CLOCK_TICK record."""
    return NewRecord(
        session_id=0,
        project_id=0,
        kind=RecordKind.CLOCK_TICK,
        received_at_ms=received_at,
        payload=b"",
    )


def commit(records: Iterable[NewRecord], *, first_position: int = 1) -> list[LogRecord]:
    """Give records consecutive positions, as the log would."""
    return [
        LogRecord(
            position=first_position + i,
            session_id=r.session_id,
            project_id=r.project_id,
            kind=r.kind,
            received_at_ms=r.received_at_ms,
            payload=r.payload,
            batch_key=r.batch_key,
            session_key=r.session_key,
        )
        for i, r in enumerate(records)
    ]


class MemoryLog:
    """Committed records in memory, with the blocking reader API of ``storage.log.LogReader``."""

    def __init__(self, records: Sequence[LogRecord]) -> None:
        self.records = list(records)

    def read(self, after: int, limit: int, max_bytes: int | None = None) -> list[LogRecord]:
        out: list[LogRecord] = []
        total = 0
        for record in (r for r in self.records if r.position > after):
            total += len(record.payload)
            if len(out) == limit or (out and max_bytes is not None and total > max_bytes):
                break
            out.append(record)
        return out

    def read_session(self, session_id: int, before: int | None = None) -> list[LogRecord]:
        return [
            r
            for r in self.records
            if r.session_id == session_id and (before is None or r.position < before)
        ]

    def read_keyed_session(self, session_key: str, before: int | None = None) -> list[LogRecord]:
        assert session_key, "an empty session key names no keyed session"
        return [
            r
            for r in self.records
            if r.session_key == session_key and (before is None or r.position < before)
        ]

    def head(self) -> int:
        return self.records[-1].position if self.records else 0

    def activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[int, int]]:
        """Plain scan with the same answer as ``LogReader.activity`` (the reference for it)."""
        clock, window = self._window(upto_position, window_ms, kinds)
        latest: dict[int, int] = {}
        for r in window:
            latest[r.session_id] = max(latest.get(r.session_id, 0), r.received_at_ms)
        return clock, latest

    def keyed_activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[str, int]]:
        """Plain scan with the same answer as ``LogReader.keyed_activity``."""
        clock, window = self._window(upto_position, window_ms, kinds)
        latest: dict[str, int] = {}
        for r in window:
            if r.session_key:
                latest[r.session_key] = max(latest.get(r.session_key, 0), r.received_at_ms)
        return clock, latest

    def _window(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, list[LogRecord]]:
        """The clock at ``upto_position`` and the records of ``kinds`` within the window."""
        wanted = set(kinds)
        upto = [r for r in self.records if r.position <= upto_position]
        clock = max((r.received_at_ms for r in upto), default=0)
        window = [r for r in upto if r.kind in wanted and r.received_at_ms >= clock - window_ms]
        return clock, window


class CollectingSink:
    """A sink that keeps every event and every checkpoint it was given."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.checkpoints: list[int] = []
        self._changed = trio.Event()

    async def __call__(self, events: list[DomainEvent], upto_position: int) -> None:
        self.events.extend(events)
        self.checkpoints.append(upto_position)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, position: int) -> None:
        """Return once a chunk up to ``position`` (or beyond) was delivered."""
        while not self.checkpoints or self.checkpoints[-1] < position:
            await self._changed.wait()

    def of_type(self, cls: type[E]) -> list[E]:
        """The collected events of one class (exactly, not its subclasses)."""
        # ``type(e) is cls`` keeps subclasses out; ``isinstance`` tells mypy what is left.
        return [e for e in self.events if type(e) is cls and isinstance(e, cls)]
