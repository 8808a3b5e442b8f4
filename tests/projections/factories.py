"""Builders of domain events for the projection tests, and a dump of the projections' tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from engine import events as ev
from engine.start_info import StartInfo

# The tables the SQL projections own: what "the state of the projections" means in comparisons.
PROJECTION_TABLES: tuple[str, ...] = (
    "sessions",
    "session_events",
    "end_users",
    "end_user_sessions",
    "v3_events",
    "v3_entities",
    "v3_intervals",
    "dead_letters",
    "projection_checkpoints",
)


@attrs.define
class SessionScript:
    """Builds the events of one session with consistent ids, times and message ids.

    Every builder returns the event without a position (0); :func:`positioned` sets them.
    """

    session_id: int
    project_id: int = 1
    start: int = 1_700_000_000_000
    now: int = 0
    page: int = 0
    index: int = 0

    def __attrs_post_init__(self) -> None:
        self.now = self.start

    def _head(self, advance: int = 10) -> dict[str, Any]:
        self.now += advance
        return {
            "position": 0,
            "session_id": self.session_id,
            "project_id": self.project_id,
            "timestamp": self.now,
        }

    def _message_id(self) -> int:
        self.index += 1
        return (self.page << 32) + self.index

    def started(self, **fields: Any) -> ev.SessionStarted:
        """The session's start; ``fields``: its start facts (:class:`StartInfo` fields)."""
        return ev.SessionStarted(
            position=0,
            session_id=self.session_id,
            project_id=self.project_id,
            timestamp=self.start,
            start=StartInfo(**fields),
        )

    def page_visit(
        self, url: str = "https://shop.example/cart?x=1", **fields: Any
    ) -> ev.PageVisited:
        return ev.PageVisited(**self._head(), message_id=self._message_id(), url=url, **fields)

    def click(self, label: str = "Buy", **fields: Any) -> ev.Clicked:
        return ev.Clicked(**self._head(), message_id=self._message_id(), label=label, **fields)

    def input(self, label: str = "email", value: str = "***", **fields: Any) -> ev.InputChanged:
        return ev.InputChanged(
            **self._head(), message_id=self._message_id(), label=label, value=value, **fields
        )

    def custom(self, name: str = "checkout", payload: str = '{"a": 1}') -> ev.CustomEventRecorded:
        return ev.CustomEventRecorded(
            **self._head(), message_id=self._message_id(), name=name, payload=payload
        )

    def error(self, name: str = "TypeError", message: str = "x is undefined") -> ev.ErrorRaised:
        return ev.ErrorRaised(
            **self._head(), message_id=self._message_id(), name=name, message=message
        )

    def request(self, url: str = "https://api.example/items", status: int = 200) -> ev.RequestMade:
        return ev.RequestMade(
            **self._head(),
            message_id=self._message_id(),
            url=url,
            method="GET",
            status=status,
            duration_ms=42,
        )

    def graphql(self, name: str = "GetItems") -> ev.GraphQLCalled:
        return ev.GraphQLCalled(
            **self._head(),
            message_id=self._message_id(),
            operation_kind="query",
            operation_name=name,
        )

    def state_action(self, action: str = "cart/add") -> ev.StateActionDispatched:
        return ev.StateActionDispatched(
            **self._head(), message_id=self._message_id(), action_type=action
        )

    def issue(
        self, issue_type: str = "click_rage", *, message_id: int | None = None
    ) -> ev.IssueDetected:
        return ev.IssueDetected(
            **self._head(0),
            message_id=message_id if message_id is not None else self._message_id(),
            issue_type=issue_type,
            context_string="Buy",
            payload='{"Count": 3}',
        )

    def timings(self, page_message_id: int, **fields: Any) -> ev.PageTimingsReported:
        return ev.PageTimingsReported(**self._head(1), page_message_id=page_message_id, **fields)

    def vital(
        self, page_message_id: int, name: str = "LCP", value: str = "812"
    ) -> ev.WebVitalReported:
        return ev.WebVitalReported(
            **self._head(1), page_message_id=page_message_id, name=name, value=value
        )

    def user_id(self, user_id: str) -> ev.UserIdSet:
        return ev.UserIdSet(**self._head(1), user_id=user_id)

    def anonymous_id(self, anonymous_id: str) -> ev.AnonymousIdSet:
        return ev.AnonymousIdSet(**self._head(1), anonymous_id=anonymous_id)

    def metadata(self, key: str, value: str) -> ev.MetadataSet:
        return ev.MetadataSet(**self._head(1), key=key, value=value)

    def title(self, title: str, url: str = "https://shop.example/") -> ev.PageTitleChanged:
        return ev.PageTitleChanged(**self._head(1), url=url, title=title)

    def visibility(self, active: bool) -> ev.TabVisibilityChanged:
        return ev.TabVisibilityChanged(**self._head(1), active=active)

    def ended(self) -> ev.SessionEnded:
        return ev.SessionEnded(
            position=0,
            session_id=self.session_id,
            project_id=self.project_id,
            timestamp=self.now,
            duration_ms=self.now - self.start,
        )

    def parked(self, error: str = "ValueError: truncated batch") -> ev.RecordParked:
        return ev.RecordParked(**self._head(1), error=error)


def positioned(groups: Sequence[Sequence[ev.DomainEvent]], first: int = 1) -> list[ev.DomainEvent]:
    """Give each group (the events of one record) the next position, in order."""
    out: list[ev.DomainEvent] = []
    for offset, group in enumerate(groups):
        out.extend(attrs.evolve(e, position=first + offset) for e in group)
    return out


def dump_tables(path: Path, tables: Sequence[str] = PROJECTION_TABLES) -> dict[str, list[tuple]]:
    """Every row of the given tables, sorted, through a fresh connection (for exact comparisons)."""
    conn = sqlite3.connect(path)
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in tables
        }
    finally:
        conn.close()
