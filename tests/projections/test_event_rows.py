"""The registry of event-row mappers: one entry per session event type, refused twice."""

from __future__ import annotations

import sqlite3

import attrs
import pytest

from engine import events as ev
from projections import events
from projections.registry import Registry
from storage.sqlite import atomic

from .factories import SessionScript, positioned

# The row types the engine's session events had before the registry (API.md 2.1 / 2.3 names).
EXPECTED_ROW_TYPES = {
    ev.PageVisited: "LOCATION",
    ev.Clicked: "CLICK",
    ev.InputChanged: "INPUT",
    ev.CustomEventRecorded: "CUSTOM",
    ev.ErrorRaised: "ERROR",
    ev.RequestMade: "REQUEST",
    ev.GraphQLCalled: "GRAPHQL",
    ev.StateActionDispatched: "STATEACTION",
    ev.IssueDetected: "ISSUE",
    # Mobile sessions (MOBILE.md 5.2).
    ev.Tapped: "TAP",
    ev.Swiped: "SWIPE",
    ev.MobileInputEntered: "INPUT",
    ev.ViewComponentChanged: "VIEW",
    ev.Crashed: "CRASH",
    ev.MobileRequestMade: "REQUEST",
    ev.MobileCustomEventRecorded: "CUSTOM",
    ev.MobileGraphQLCalled: "GRAPHQL",
    ev.MobileIssueDetected: "ISSUE",
}


def _session_event_classes() -> set[type[ev.SessionEvent]]:
    found: set[type[ev.SessionEvent]] = set()
    todo = [ev.SessionEvent]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__ == ev.__name__:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_session_event_type_of_the_engine_has_a_mapper() -> None:
    assert _session_event_classes() == set(EXPECTED_ROW_TYPES)
    for event_type, row_type in EXPECTED_ROW_TYPES.items():
        mapper = events.ROW_MAPPERS.get(event_type)
        assert mapper is not None, event_type
        assert mapper.row_type == row_type
    assert len(events.ROW_MAPPERS) == len(EXPECTED_ROW_TYPES)


def test_a_class_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        events.row_mapper(ev.Clicked, "CLICK2")(lambda event: events.RowFields())
    mapper = events.ROW_MAPPERS.get(ev.Clicked)
    assert mapper is not None and mapper.row_type == "CLICK"


def test_registry_refuses_a_key_twice_and_ignores_unknown_keys() -> None:
    registry: Registry[str, int] = Registry("numbers")
    registry.register("one", 1)
    with pytest.raises(ValueError, match="numbers: 'one' is already registered"):
        registry.register("one", 2)
    assert registry.get("one") == 1
    assert registry.get("two") is None and registry.get(3) is None
    registry.unregister("one")
    registry.register("one", 3)
    assert list(registry) == ["one"] and registry.get("one") == 3


def test_events_without_a_mapper_make_no_row(conn: sqlite3.Connection) -> None:
    @attrs.frozen(slots=True, kw_only=True)
    class Unmapped(ev.SessionEvent):
        pass

    s = SessionScript(session_id=8)
    click = s.click("Buy")
    # A subclass of a mapped class is another type: looked up by exact class, it is ignored too.
    subclass = type("ClickedAgain", (ev.Clicked,), {})
    made = [
        s.started(),
        Unmapped(position=0, session_id=8, project_id=1, timestamp=5, message_id=99),
        click,
        s.user_id("u1"),
        s.title("T"),
        s.ended(),
    ]
    assert issubclass(subclass, ev.Clicked) and events.ROW_MAPPERS.get(subclass) is None
    with atomic(conn):
        events.apply(conn, positioned([made]))
    assert [r.type for r in events.session_events(conn, 1, 8)] == ["CLICK"]
