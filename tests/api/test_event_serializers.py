"""The registry of public v1 event serializers, and a new event type flowing end to end."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from api import public_v1
from engine import events as ev
from projections import events
from projections.base import migrate_checkpoints
from storage.sqlite import atomic, connect


@pytest.fixture
def conn(fresh_db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(fresh_db_path)
    migrate_checkpoints(connection)
    events.migrate(connection)
    try:
        yield connection
    finally:
        connection.close()


def test_every_row_type_the_projection_makes_has_a_serializer() -> None:
    row_types = {m.row_type for m in map(events.ROW_MAPPERS.get, events.ROW_MAPPERS) if m}
    assert row_types == {
        "LOCATION", "CLICK", "INPUT", "CUSTOM", "ERROR",
        "REQUEST", "GRAPHQL", "STATEACTION", "ISSUE",
        "TAP", "SWIPE", "VIEW", "CRASH",  # mobile sessions (INPUT and the rest are shared)
    }  # fmt: skip
    assert set(public_v1.EVENT_SERIALIZERS) == row_types


def test_a_row_type_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'CLICK' is already registered"):
        public_v1.event_serializer("CLICK")(lambda row: {})
    assert public_v1.EVENT_SERIALIZERS.get("CLICK") is public_v1._click_json


@attrs.frozen(slots=True, kw_only=True)
class Pinched(ev.SessionEvent):
    """A toy event type, registered by the test the way a new one would be."""

    label: str
    x: int


@pytest.fixture
def pinch_registered() -> Iterator[None]:
    @events.row_mapper(Pinched, "PINCH")
    def _pinch_row(event: Pinched) -> events.RowFields:
        return events.RowFields(label=event.label, data={"x": event.x})

    @public_v1.event_serializer("PINCH")
    def _pinch_json(row: events.EventRow) -> dict[str, Any]:
        return {"label": row.label, "x": row.data["x"]}

    try:
        yield
    finally:
        events.ROW_MAPPERS.unregister(Pinched)
        public_v1.EVENT_SERIALIZERS.unregister("PINCH")


def test_a_new_event_type_is_one_mapper_and_one_serializer(
    conn: sqlite3.Connection, pinch_registered: None
) -> None:
    pinch = Pinched(
        position=1, session_id=3, project_id=1, timestamp=1000, message_id=7, label="Pay", x=42
    )
    with atomic(conn):
        events.apply(conn, [pinch])
    (row,) = events.session_events(conn, 1, 3)
    assert (row.type, row.label, row.data) == ("PINCH", "Pay", {"x": 42})
    assert json.dumps(public_v1.event_json(row), separators=(",", ":")) == (
        '{"sessionId":"3","messageId":7,"timestamp":1000,"type":"PINCH","label":"Pay","x":42}'
    )


def test_a_row_type_without_serializer_keeps_the_common_keys() -> None:
    row = events.EventRow(
        session_id=3, message_id=7, type="UNKNOWN", project_id=1, timestamp=1000, position=1,
        page_url="", url=None, label="x", name=None, value=None, selector=None, duration=None,
        hesitation=None, status=None, method=None, data={},
    )  # fmt: skip
    assert public_v1.event_json(row) == {
        "sessionId": "3",
        "messageId": 7,
        "timestamp": 1000,
        "type": "UNKNOWN",
    }
