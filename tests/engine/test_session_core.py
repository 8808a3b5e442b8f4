"""The platform-neutral session core: a second platform is one subclass, with no web code.

``ScreenSession`` is a test-only platform over a spare record kind (``MOBILE_BATCH``, whose
payload here is a JSON list of screen views): the core parks its bad records, counts them, ends
it with ``SessionEnded`` and runs it under the supervisor beside the web type. The web state's
own bad records are covered by ``test_actor.py`` and ``test_session_state_poison.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from engine.actor_types import WEB_ACTOR_TYPE, ActorRegistry, ActorState, ActorType
from engine.events import DomainEvent, IssueDetected, RecordParked, SessionEnded
from engine.session_core import RecordApplier, SessionCore
from engine.session_state import WebSessionState
from engine.supervisor import Supervisor, history_from_reader
from storage.records import LogRecord, NewRecord, RecordKind
from tests.engine.builders import T0, CollectingSink, MemoryLog, SessionScript, commit

SID = 77
TIMEOUT = 150_000


@attrs.frozen(slots=True, kw_only=True)
class ScreenViewed(DomainEvent):
    screen: str


class ScreenSession(SessionCore):
    """A toy platform: a record is ``[{"t": ms, "screen": name}, ...]``; a session with no
    screen at all is an issue, settled at its end."""

    __slots__ = ("screens",)

    def __init__(self, session_id: int, project_id: int = 0) -> None:
        super().__init__(session_id, project_id)
        self.screens: list[str] = []

    def _apply_views(self, record: LogRecord) -> None:
        views = json.loads(record.payload)  # bad JSON raises before any state changed
        out = self._out
        for view in views:
            self.messages_walked += 1
            screen = view["screen"]  # a KeyError here keeps the views before it
            t = view["t"]
            if t <= self._latest:  # else not a time (the core's clock-ahead bound)
                self._now = t
                self.last_message_ts = max(self.last_message_ts, t)
            if not self.start_ts:
                self.start_ts = self._now
            self.screens.append(screen)
            self.pages_count += 1
            self.events_count += 1
            if out is not None:
                out.append(ScreenViewed(**self._head(), timestamp=self._now, screen=screen))

    def _settle(self) -> None:
        if not self.screens:
            self._issue("no_screen", self.last_message_ts, 0, "")

    RECORD_KINDS: ClassVar[Mapping[int, RecordApplier]] = {
        RecordKind.MOBILE_BATCH: _apply_views,
        RecordKind.MOBILE_LATE: SessionCore._apply_activity,
    }


def views(received_at: int, *views: tuple[int, str] | dict[str, Any]) -> NewRecord:
    items = [v if isinstance(v, dict) else {"t": v[0], "screen": v[1]} for v in views]
    return raw(received_at, json.dumps(items).encode())


def raw(received_at: int, payload: bytes, kind: RecordKind = RecordKind.MOBILE_BATCH) -> NewRecord:
    return NewRecord(
        session_id=SID, project_id=3, kind=kind, received_at_ms=received_at, payload=payload
    )


def toy_records() -> list[NewRecord]:
    return [
        views(T0 + 100, (T0 + 10, "home"), (T0 + 20, "cart")),
        raw(T0 + 200, b"{not json"),
        views(T0 + 300, (T0 + 250, "pay"), {"t": T0 + 260}),  # no screen: parked midway
        raw(T0 + 400, b"", RecordKind.MOBILE_LATE),
        views(T0 + 500, (T0 + 2**40, "later"), (T0 + 480, "done")),  # an absurd time: ignored
    ]


def toy_log() -> list[LogRecord]:
    return commit(toy_records())


def fold(state: SessionCore, records: list[LogRecord], out: list[DomainEvent] | None) -> list[bool]:
    applied = [state.apply_record(r, out) for r in records]
    state.end(records[-1].position + 1, out)
    return applied


def of(kind: type, events: list[DomainEvent]) -> list[Any]:
    return [e for e in events if type(e) is kind]


def test_the_core_parks_counts_and_ends_a_second_platform() -> None:
    state = ScreenSession(SID)
    out: list[DomainEvent] = []
    assert fold(state, toy_log(), out) == [True, False, False, True, True]
    assert [(type(e).__name__, e.position) for e in out] == [
        ("ScreenViewed", 1),
        ("ScreenViewed", 1),
        ("RecordParked", 2),
        ("ScreenViewed", 3),  # applied before the view that raised: kept (a replay does the same)
        ("RecordParked", 3),
        ("ScreenViewed", 5),
        ("ScreenViewed", 5),
        ("SessionEnded", 6),
    ]
    bad_json, no_screen = of(RecordParked, out)
    assert (bad_json.kind, bad_json.stage, bad_json.timestamp) == (
        RecordKind.MOBILE_BATCH,
        "engine",
        T0 + 200,
    )
    assert bad_json.error.startswith("JSONDecodeError")
    assert no_screen.error == "KeyError: 'screen'"
    assert [e.timestamp for e in of(ScreenViewed, out)] == [
        T0 + 10,
        T0 + 20,
        T0 + 250,
        T0 + 250,
        T0 + 480,
    ]
    [ended] = of(SessionEnded, out)
    assert (ended.session_id, ended.project_id) == (SID, 3)
    assert (ended.timestamp, ended.duration_ms) == (T0 + 480, 470)
    assert (state.records_applied, state.records_parked) == (3, 2)
    assert (state.pages_count, state.events_count, state.messages_walked) == (5, 5, 6)
    assert state.screens == ["home", "cart", "pay", "later", "done"]
    assert (state.last_record_ms, state.ended) == (T0 + 500, True)
    assert not state.issue_types  # it had screens: nothing to settle


def test_a_replay_without_output_reaches_the_same_state() -> None:
    live, replayed = ScreenSession(SID), ScreenSession(SID)
    fold(live, toy_log(), [])
    fold(replayed, toy_log(), None)
    slots = [*SessionCore.__slots__, *ScreenSession.__slots__]
    assert [getattr(replayed, s) for s in slots] == [getattr(live, s) for s in slots]


def test_the_platform_hook_settles_the_end_and_a_failing_one_parks_it() -> None:
    state = ScreenSession(SID)
    out: list[DomainEvent] = []
    [record] = commit([raw(T0, b"[]")])
    state.apply_record(record, out)
    state.end(2, out)
    assert [type(e) for e in out] == [IssueDetected, SessionEnded]
    assert (out[0].issue_type, out[0].position) == ("no_screen", 2)  # type: ignore[attr-defined]
    assert list(state.issue_types) == ["no_screen"]

    class Failing(ScreenSession):
        __slots__ = ()

        def _settle(self) -> None:
            raise RuntimeError("flush failed")

    failing = Failing(SID)
    out = []
    failing.apply_record(record, out)
    failing.end(2, out)
    assert [type(e) for e in out] == [RecordParked, SessionEnded]
    parked = out[0]
    assert isinstance(parked, RecordParked)
    assert (parked.stage, parked.kind, parked.error) == (
        "engine:end",
        0,
        "RuntimeError: flush failed",
    )
    assert failing.ended


def test_a_kind_outside_the_platform_table_is_parked() -> None:
    web_start = SessionScript(SID, project_id=3).start(received_at=T0)
    screen, web = ScreenSession(SID), WebSessionState(SID)
    out: list[DomainEvent] = []
    [start, batch] = commit([web_start, views(T0 + 1, (T0, "home"))])
    assert screen.apply_record(start, out) is False
    assert web.apply_record(batch, out) is False
    assert [(e.error, e.kind) for e in of(RecordParked, out)] == [
        ("LookupError: ScreenSession does not apply record kind 1", RecordKind.WEB_START),
        ("LookupError: WebSessionState does not apply record kind 11", RecordKind.MOBILE_BATCH),
    ]
    # What every record moves (its time, the project) moved for the parked ones too.
    assert (screen.last_record_ms, screen.project_id, screen.records_parked) == (T0, 3, 1)
    assert (web.last_record_ms, web.project_id, web.records_parked) == (T0 + 1, 3, 1)


def test_a_platform_without_a_record_table_is_refused() -> None:
    with pytest.raises(TypeError, match="Tableless must set RECORD_KINDS"):

        class Tableless(SessionCore):
            __slots__ = ()


def test_both_platforms_keep_slots_and_add_only_their_own_fields() -> None:
    for cls in (WebSessionState, ScreenSession):
        assert not hasattr(cls(1), "__dict__")
        assert not set(cls.__slots__) & set(SessionCore.__slots__)


def test_the_core_imports_no_web_code() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, engine.session_core; print(*sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout.split()
    assert "engine.session_core" in loaded
    web = [
        m for m in loaded if m.startswith(("engine.codec", "engine.session_state", "engine.heu"))
    ]
    assert web == []


def _new_screen_state(key: Hashable, record: LogRecord | None) -> ActorState:
    assert isinstance(key, int)
    return ScreenSession(key, record.project_id if record is not None else 0)


SCREENS = ActorType(
    name="screens",
    kinds=frozenset(ScreenSession.RECORD_KINDS),
    key_of=lambda record: record.session_id,
    new_state=_new_screen_state,
)


async def test_the_second_platform_runs_under_the_supervisor_beside_the_web_one() -> None:
    web = SessionScript(1)
    web_records = [web.start(received_at=T0)]
    web.visit("http://a/")
    web_records.append(web.batch(received_at=T0 + 50))
    toy = toy_records()
    records = commit([*web_records, *toy, views(T0 + 600 + TIMEOUT + 1, (T0 + TIMEOUT, "again"))])
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log),
        sink=sink,
        inactivity_timeout_ms=TIMEOUT,
        registry=ActorRegistry([WEB_ACTOR_TYPE, SCREENS]),
    )
    await supervisor.run_until(log, log.head(), chunk_size=2)

    mine = [e for e in sink.events if e.session_id == SID]
    alone: list[DomainEvent] = []
    fold(ScreenSession(SID), commit(toy, first_position=3), alone)
    # Live it folds as alone (its end comes with record 8, past the timeout, as the fold's at 8),
    # then record 8 re-activates it: the replayed history emits nothing.
    assert mine[: len(alone)] == alone
    assert alone[-1] == SessionEnded(
        position=8, session_id=SID, project_id=3, timestamp=T0 + 480, duration_ms=470
    )
    assert [(type(e), e.position) for e in mine[len(alone) :]] == [(ScreenViewed, 8)]
    assert supervisor.statistics().parked_records == 2
    web_ended = [e for e in sink.events if e.session_id == 1 and isinstance(e, SessionEnded)]
    assert [e.position for e in web_ended] == [8]
