"""Property: one uninterrupted run == a run that crashed and restarted anywhere.

DESIGN.md invariant 6.

Random sessions (old and new trackers), interleavings, long silences (ends and late batches),
batches that arrive long after their messages were written, clock ticks, corrupt batches and
random chunk sizes. The restarted run is cut after position ``C``
(as if the process died there) and resumed from ``R <= C`` (the lowest projection checkpoint);
a projection whose checkpoint is ``K`` keeps the first run's events up to ``K`` and takes the
resumed run's events above ``K``. For every such ``K`` the result equals the uninterrupted run.
"""

from __future__ import annotations

import attrs
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.events import DomainEvent
from engine.supervisor import Supervisor, history_from_reader, reader_source, resume_point
from storage.records import LogRecord, NewRecord
from tests.engine.builders import T0, CollectingSink, MemoryLog, SessionScript, clock_tick, commit

TIMEOUT = 150_000
GAPS = [0, 40, 250, 2_000, 100_000, TIMEOUT + 1]
ACTIONS = [
    "click A",
    "click B",
    "click A",
    "visit",
    "spa",
    "timing",
    "error",
    "bad",
    "dom",
    "wait",
    "uid",
    "meta",
]


@attrs.frozen
class Scenario:
    records: list[LogRecord]
    first_chunk: int
    cut: int  # C: the first restarted run stops after this position
    resume_at: int  # R: it resumes after this one
    chunk_before: int
    chunk_after: int


def _act(s: SessionScript, action: str, n: int) -> None:
    if action.startswith("click"):
        s.click(action[-1], selector=f"#{action[-1]}")
    elif action == "visit":
        s.visit(f"http://site/{n}", title=f"Page {n}")
    elif action == "spa":
        s.visit(f"http://site/{n}/spa", loaded=False)
    elif action == "timing":
        s.load_timing(request_start=n, load_event_end=40_000 if n % 2 else 900)
    elif action == "error":
        s.js_exception("Error", f"e{n}")
    elif action == "bad":
        s.request(f"http://api/{n}", status=500)
    elif action == "dom":
        s.dom_change()
    elif action == "wait":
        s.wait(1_500)
    elif action == "uid":
        s.user_id(f"u{n % 2}")
    else:
        s.metadata("k", f"v{n % 3}")
    s.wait(60)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_sessions = draw(st.integers(min_value=1, max_value=3))
    scripts = [
        SessionScript(100 + i, tracker_version=draw(st.sampled_from(["18.2.0", "19.0.1"])))
        for i in range(n_sessions)
    ]
    started: set[int] = set()
    new: list[NewRecord] = []
    now = T0
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=n_sessions),  # n_sessions = a clock tick
                st.sampled_from(GAPS),
                st.lists(st.sampled_from(ACTIONS), max_size=6),
                st.booleans(),  # corrupt batch?
                st.booleans(),  # sent long before it arrived (message times do not follow)?
            ),
            min_size=1,
            max_size=14,
        )
    )
    for n, (who, gap, actions, corrupt, delayed) in enumerate(steps):
        now += gap
        if who == n_sessions:
            new.append(clock_tick(now))
            continue
        s = scripts[who]
        if not delayed:
            s.now = max(s.now, now - 40)  # message times follow arrival times, roughly
        if who not in started:
            started.add(who)
            s.start_ms = s.now
            new.append(s.start(received_at=now))
        if corrupt and n % 3 == 0:
            new.append(s.raw_batch(b"\x51\x01\x00\x00\x02\x00\x44\x09\x00", received_at=now))
            continue
        for action in actions:
            _act(s, action, n)
        new.append(s.batch(received_at=now))
    records = commit(new)
    head = len(records)
    cut = draw(st.integers(min_value=0, max_value=head))
    return Scenario(
        records=records,
        first_chunk=draw(st.sampled_from([1, 2, 5, 100])),
        cut=cut,
        resume_at=draw(st.integers(min_value=0, max_value=cut)),
        chunk_before=draw(st.sampled_from([1, 3, 100])),
        chunk_after=draw(st.sampled_from([1, 4, 100])),
    )


async def _run(
    log: MemoryLog, *, after: int, upto: int, chunk: int, resume: bool
) -> list[DomainEvent]:
    sink = CollectingSink()
    supervisor = Supervisor(
        history=history_from_reader(log), sink=sink, inactivity_timeout_ms=TIMEOUT, mailbox_size=2
    )
    point = await resume_point(log, after, TIMEOUT) if resume else None
    source = reader_source(log, after=after, upto=upto, chunk_size=chunk)
    await supervisor.run(source, resume=point)
    return sink.events


async def _both_runs(
    sc: Scenario,
) -> tuple[list[DomainEvent], list[DomainEvent], list[DomainEvent]]:
    log = MemoryLog(sc.records)
    head = log.head()
    whole = await _run(log, after=0, upto=head, chunk=sc.first_chunk, resume=False)
    before_crash = await _run(log, after=0, upto=sc.cut, chunk=sc.chunk_before, resume=False)
    resumed = await _run(log, after=sc.resume_at, upto=head, chunk=sc.chunk_after, resume=True)
    return whole, before_crash, resumed


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_restart_anywhere_gives_the_same_events(sc: Scenario) -> None:
    whole, before_crash, resumed = trio.run(_both_runs, sc)
    positions = [e.position for e in whole]
    assert positions == sorted(positions)  # events come in log order
    for checkpoint in (sc.resume_at, sc.cut):
        combined = [e for e in before_crash if e.position <= checkpoint] + [
            e for e in resumed if e.position > checkpoint
        ]
        assert combined == whole
