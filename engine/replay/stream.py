"""The replay stream as text: a header line, then one line per item (JSON Lines), sans-IO.

The caller reads the session's records in pages and hands each page to :meth:`ReplayStream.survey`
(first pass: the header needs the duration and markers before the first item) and then, from the
first page again, to :meth:`ReplayStream.lines` (second pass). Neither pass keeps records: memory
is one page plus the per-page state of the builder.

JSON Lines rather than one JSON document: every line parses alone, so the player can apply what
has arrived while the rest is still on the wire, and the server never holds the whole answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from engine.replay.builder import ReplayBuilder
from engine.replay.survey import ReplayHeader, ReplaySurvey, console_rows, network_rows
from engine.replay.walk import MessageWalk
from storage.records import LogRecord


def _line(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


class ReplayStream:
    """Both passes over one session's records; feed each pass its pages in log order."""

    def __init__(self, started_at: int, *, own_origin: str | None = None) -> None:
        self._survey = ReplaySurvey(started_at)
        self._survey_walk = MessageWalk()
        self._builder = ReplayBuilder(started_at, own_origin=own_origin)
        self._item_walk = MessageWalk()

    def survey(self, records: Iterable[LogRecord]) -> None:
        """First pass: one page of records into the header."""
        self._survey.feed(self._survey_walk.messages(records))

    def header(self) -> ReplayHeader:
        return self._survey.header()

    def header_line(self) -> str:
        """The first line: ``{"header": {...}}``."""
        return _line({"header": self.header().json()})

    def lines(self, records: Iterable[LogRecord]) -> str:
        """Second pass: the item lines of one page of records (may be empty)."""
        items = self._builder.items(self._item_walk.messages(records))
        return "".join(_line(item) for item in items)


class DevtoolsRows:
    """The console or network entries of a session as pieces of ``{"data": [...]}``."""

    def __init__(self, started_at: int, panel: str) -> None:
        if panel not in ("console", "network"):
            raise ValueError(f"no such devtools panel: {panel}")
        self.started_at = started_at
        self._rows = console_rows if panel == "console" else network_rows
        self._walk = MessageWalk()
        self._first = True

    def opening(self) -> str:
        return '{"data":['

    def piece(self, records: Iterable[LogRecord]) -> str:
        """The entries of one page of records, comma-joined after what came before."""
        parts = []
        for row in self._rows(self._walk.messages(records), self.started_at):
            text = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
            parts.append(text if self._first else "," + text)
            self._first = False
        return "".join(parts)

    def closing(self) -> str:
        return "]}"
