"""A session's log records as timed web messages: the one walk the replay stream reads (sans-IO).

Each message gets the time of the latest ``Timestamp`` (or ``BatchMetadata.timestamp``) before it,
carried over between batches, and the tab of the latest ``TabData`` (DESIGN.md invariant 7, as the
engine reads them). A time more than a day after the record's receipt is not a time (the previous
one carries on), and times never go backwards within a tab, so each tab's messages are in play
order. A record that does not decode is skipped whole (the engine has parked it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from engine.codec.web import (
    AnyMessage,
    BatchMetadata,
    CodecError,
    TabData,
    Timestamp,
    decode_batch,
)
from engine.session_core import MAX_CLOCK_AHEAD_MS
from storage.records import LogRecord, RecordKind

# The kinds that carry tracker batches (the assets part of a split batch included).
REPLAYED_KINDS = frozenset({RecordKind.WEB_BATCH, RecordKind.WEB_ASSETS})


@attrs.frozen(slots=True)
class TimedMessage:
    """One decoded message with its epoch-ms time, its tab and the page URL of its batch."""

    time: int
    tab: str
    message: AnyMessage
    batch_url: str


@attrs.define
class MessageWalk:
    """The time and tab carried from one record to the next; feed records in log order."""

    now: int = 0
    tab: str = ""
    _tab_times: dict[str, int] = attrs.field(factory=dict)
    undecodable: int = 0

    def messages(self, records: Iterable[LogRecord]) -> Iterator[TimedMessage]:
        """The timed messages of ``records`` (other kinds than batches are passed over)."""
        for record in records:
            if record.kind not in REPLAYED_KINDS:
                continue
            try:
                decoded = decode_batch(record.payload)
            except CodecError:
                self.undecodable += 1
                continue
            latest = record.received_at_ms + MAX_CLOCK_AHEAD_MS
            url = ""
            for msg in decoded:
                cls = type(msg)
                if cls is Timestamp or cls is BatchMetadata:
                    ts = msg.timestamp  # type: ignore[union-attr]
                    if 0 < ts <= latest:
                        self.now = ts
                    if cls is BatchMetadata:
                        url = msg.location  # type: ignore[union-attr]
                    continue
                if cls is TabData:
                    self.tab = msg.tab_id  # type: ignore[union-attr]
                    continue
                # Never backwards within a tab: a player walks each tab's list in order.
                time = max(self.now, self._tab_times.get(self.tab, 0))
                self._tab_times[self.tab] = time
                yield TimedMessage(time, self.tab, msg, url)
