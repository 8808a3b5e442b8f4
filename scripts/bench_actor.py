"""Benchmark of the session actors (engine/session_state.py, engine/supervisor.py): messages/s.

Realistic batches from ``benchlib.batches`` (mostly DOM, mouse moves, a few clicks, inputs,
locations) are applied

  (a) decode only      iter_messages(body, BASE_WANTED)            (the floor: the codec's part)
  (b) state, tracker 19  WebSessionState.apply_record, events emitted (an actor's work per record)
  (c) state, tracker 18  the same with the server-side dead-click detector (DOM types decoded)
  (d) supervisor       Supervisor.run over an in-memory source, 20 interleaved sessions, chunks of
                       200 records, events to a no-op sink (dispatch, mailboxes, flush epochs)

Rates count every message of a batch (skipped ones too), per core, in CPU time (best of 3). Usage:
PYTHONPATH=scripts:. python scripts/bench_actor.py [--seconds 1.0] [--body-kb 16]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator, Callable

import trio
from benchlib import batches

from engine.codec import web
from engine.events import DomainEvent
from engine.session_state import BASE_WANTED, WebSessionState
from engine.start_payload import WebStartPayload
from engine.supervisor import Supervisor
from storage.records import LogRecord, RecordKind

T0 = 1_795_418_019_299


def bodies(body_kb: int, n: int = 16) -> list[bytes]:
    """Whole batches as the load generator sends them (header + realistic tail)."""
    return [
        batches.encode_header(0, i * 1000, T0 + i * 1000)
        + batches.make_batch(body_kb * 1024, seed=100 + i).tail
        for i in range(n)
    ]


def start_record(session_id: int, version: str, position: int = 1) -> LogRecord:
    payload = WebStartPayload(
        session_id=session_id, project_id=1, start_timestamp=T0, delay=0, tracker_version=version
    ).to_bytes()
    return LogRecord(
        position=position,
        session_id=session_id,
        project_id=1,
        kind=RecordKind.WEB_START,
        received_at_ms=T0,
        payload=payload,
    )


def rate(seconds: float, messages_per_round: int, one_round: Callable[[], None]) -> float:
    best = 0.0
    for _ in range(3):
        n = 0
        t0 = time.process_time()
        while True:
            one_round()
            n += messages_per_round
            dt = time.process_time() - t0
            if dt >= seconds:
                break
        best = max(best, n / dt)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--body-kb", type=int, default=16)
    args = p.parse_args()
    data = bodies(args.body_kb)
    per_round = sum(1 for body in data for _ in web.iter_frames(body))
    records = [
        LogRecord(
            position=2 + i,
            session_id=1,
            project_id=1,
            kind=RecordKind.WEB_BATCH,
            received_at_ms=T0 + i,
            payload=body,
        )
        for i, body in enumerate(data)
    ]

    def decode_only() -> None:
        for body in data:
            for _ in web.iter_messages(body, BASE_WANTED):
                pass

    def state_loop(version: str) -> Callable[[], None]:
        state = WebSessionState(1)
        state.apply_record(start_record(1, version), None)

        def one() -> None:
            out: list[DomainEvent] = []
            for record in records:
                state.apply_record(record, out)

        return one

    events_per_round: list[DomainEvent] = []
    probe = WebSessionState(1)
    probe.apply_record(start_record(1, "19.0.1"), None)
    for record in records:
        probe.apply_record(record, events_per_round)

    n_sessions, rounds = 20, 5
    sup_records: list[LogRecord] = []
    pos = 0
    for sid in range(1, n_sessions + 1):
        pos += 1
        sup_records.append(start_record(sid, "19.0.1", pos))
    for r in range(rounds):
        for i, body in enumerate(data):
            for sid in range(1, n_sessions + 1):
                pos += 1
                sup_records.append(
                    LogRecord(
                        position=pos,
                        session_id=sid,
                        project_id=1,
                        kind=RecordKind.WEB_BATCH,
                        received_at_ms=T0 + r * 100 + i,
                        payload=body,
                    )
                )
    sup_messages = per_round * n_sessions * rounds

    async def supervise() -> None:
        async def sink(events: list[DomainEvent], upto: int) -> None:
            pass

        async def history(session_id: int, before: int) -> list[LogRecord]:
            return []

        async def source() -> AsyncIterator[list[LogRecord]]:
            for i in range(0, len(sup_records), 200):
                yield sup_records[i : i + 200]

        await Supervisor(history=history, sink=sink).run(source())

    rows = [
        ("decode only (BASE_WANTED)", rate(args.seconds, per_round, decode_only)),
        ("WebSessionState, tracker 19", rate(args.seconds, per_round, state_loop("19.0.1"))),
        ("WebSessionState, tracker 18 (+DOM)", rate(args.seconds, per_round, state_loop("18.2.0"))),
        ("Supervisor, 20 sessions", rate(args.seconds, sup_messages, lambda: trio.run(supervise))),
    ]
    base = rows[0][1]
    print(
        f"batches: {len(data)} x ~{args.body_kb} KB, {per_round / len(data):.0f} messages each, "
        f"{len(events_per_round) / len(data):.1f} events per batch"
    )
    print(f"{'path':34} {'messages/s':>12} {'vs decode':>10}")
    for name, value in rows:
        print(f"{name:34} {value:12,.0f} {value / base:10.2f}")


if __name__ == "__main__":
    main()
