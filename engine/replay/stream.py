"""The replay stream as text: a header line, then one line per item (JSON Lines), sans-IO.

The caller reads the session's records in pages and hands each page to :meth:`ReplayStream.survey`
(first pass: the header needs the duration and markers before the first item) and then, from the
first page again, to :meth:`ReplayStream.lines` (second pass). Neither pass keeps records: memory
is one page plus the per-page state of the builder.

With the asset cache on, the stream is given ``asset_paths`` (the cache's lookup of many URLs at
once, e.g. ``storage.assets.AssetStore.paths_of`` bound to the session's project): for each page,
the URLs its URL-based messages (60/61/71/73) name are looked up in one call, and each of those
messages is replaced by its plain form with the cached ones pointing at ``own_origin +
/assets/<sha256>`` (:func:`engine.asset_refs.plain_message`), so the player loads the copy taken
at recording time instead of what the site serves today.

JSON Lines rather than one JSON document: every line parses alone, so the player can apply what
has arrived while the rest is still on the wire, and the server never holds the whole answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from engine.asset_refs import URL_BASED, message_references, plain_message
from engine.replay.builder import ReplayBuilder
from engine.replay.survey import ReplayHeader, ReplaySurvey, console_rows, network_rows
from engine.replay.walk import MessageWalk, TimedMessage
from storage.records import LogRecord

AssetPaths = Callable[[Sequence[str]], Mapping[str, str]]
"""URLs -> the cached ones' paths (``/assets/<sha256>``); URLs not cached are left out."""


def _line(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


class ReplayStream:
    """Both passes over one session's records; feed each pass its pages in log order."""

    def __init__(
        self,
        started_at: int,
        *,
        own_origin: str | None = None,
        asset_paths: AssetPaths | None = None,
    ) -> None:
        if asset_paths is not None and own_origin is None:
            # A cached path is relative: without our origin it would resolve against the site's.
            raise ValueError("asset_paths needs own_origin")
        self._survey = ReplaySurvey(started_at)
        self._survey_walk = MessageWalk()
        self._builder = ReplayBuilder(started_at, own_origin=own_origin)
        self._item_walk = MessageWalk()
        self._own_origin = own_origin or ""
        self._asset_paths = asset_paths

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
        messages: Iterable[TimedMessage] = self._item_walk.messages(records)
        if self._asset_paths is not None:
            messages = self._with_cached_assets(list(messages), self._asset_paths)
        items = self._builder.items(messages)
        return "".join(_line(item) for item in items)

    def _with_cached_assets(
        self, messages: list[TimedMessage], asset_paths: AssetPaths
    ) -> list[TimedMessage]:
        """One page's messages, each URL-based one in its plain form pointing at the cache."""
        urls = [
            url
            for timed in messages
            if isinstance(timed.message, URL_BASED)
            for url in message_references(timed.message)
        ]
        if not urls:
            return messages
        paths = asset_paths(list(dict.fromkeys(urls)))

        def resolve(url: str) -> str | None:
            path = paths.get(url)
            return None if path is None else self._own_origin + path

        return [
            attrs.evolve(timed, message=plain_message(timed.message, resolve))
            if isinstance(timed.message, URL_BASED)
            else timed
            for timed in messages
        ]


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
