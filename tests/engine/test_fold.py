"""The rebuild's fold (engine.fold.LogFold) yields exactly the supervisor's events (invariant 6).

The property drives both over the same committed records (random interleavings of web, mobile
and v3 sessions with late batches, clock ticks and deletions: the builders of the rebuild
property test) with random chunk sizes on each side, and compares the events one by one, in
order, and the counters. Then: the fold keeps only live sessions in memory.
"""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fold import LogFold
from engine.supervisor import Supervisor, history_from_reader
from storage.records import LogRecord
from tests.engine.builders import T0, CollectingSink, MemoryLog, SessionScript, commit
from tests.projections.test_rebuild import (
    build_records,
    mobile_session_strategy,
    session_strategy,
    v3_session_strategy,
)

TIMEOUT_MS = 10_000


def supervisor_events(records: list[LogRecord], chunk_size: int) -> tuple[list, Supervisor]:
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log), sink=sink, inactivity_timeout_ms=TIMEOUT_MS
    )
    trio.run(lambda: supervisor.run_until(log, log.head(), chunk_size=chunk_size))
    return sink.events, supervisor


def fold_events(records: list[LogRecord], chunk_size: int) -> tuple[list, LogFold]:
    fold = LogFold(history=MemoryLog(records), inactivity_timeout_ms=TIMEOUT_MS)
    events = []
    for start in range(0, len(records), chunk_size):
        events.extend(fold.fold(records[start : start + chunk_size]))
    return events, fold


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    sessions=st.lists(session_strategy, min_size=1, max_size=4),
    ticks=st.lists(st.integers(0, 150_000), max_size=4),
    mobile=st.lists(mobile_session_strategy, max_size=2),
    v3=st.lists(v3_session_strategy, max_size=3),
    supervisor_chunk=st.integers(1, 6),
    fold_chunk=st.integers(1, 50),
)
def test_fold_equals_the_supervisor(
    sessions: list[tuple],
    ticks: list[int],
    mobile: list[tuple],
    v3: list[tuple],
    supervisor_chunk: int,
    fold_chunk: int,
) -> None:
    records = commit(build_records(sessions, ticks, mobile, v3))
    live, supervisor = supervisor_events(records, supervisor_chunk)
    rebuilt, fold = fold_events(records, fold_chunk)
    assert rebuilt == live
    stats = supervisor.statistics()
    counters = fold.counters
    assert (
        counters.records_processed,
        counters.messages_processed,
        counters.events_emitted,
        counters.parked_records,
        counters.activations,
        counters.passivations,
    ) == (
        stats.records_processed,
        stats.messages_processed,
        stats.events_emitted,
        stats.parked_records,
        stats.activations,
        stats.passivations,
    )
    assert fold.last_position == records[-1].position


def test_fold_holds_only_the_live_sessions() -> None:
    # 300 sessions one after another, 4 s apart: with a 10 s timeout about 3 are live at once.
    new_records = []
    for number in range(300):
        script = SessionScript(5_000 + number, start_ms=T0 + number * 4_000)
        new_records.append(script.start(user_id="ann"))
        script.click("Buy")
        new_records.append(script.batch())
    records = commit(new_records)
    fold = LogFold(history=MemoryLog(records), inactivity_timeout_ms=TIMEOUT_MS)
    most_live = 0
    for start in range(0, len(records), 10):
        fold.fold(records[start : start + 10])
        most_live = max(most_live, fold.live_actors)
    assert most_live <= 4
    assert fold.counters.passivations == 300 - fold.live_actors
    assert fold.counters.replayed_records == 0  # every session began with a fresh start
