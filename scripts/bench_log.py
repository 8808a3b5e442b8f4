"""Benchmark of the append-only log (storage/log.py): records per second, with ratios.

Appends 1 KB payloads with synchronous=FULL, on the same machine in the same run, through:

  (a) EventLog, N concurrent appenders, one record per append (group commit does the batching)
  (b) EventLog, one appender, one record per append (one transaction per record: no grouping)
  (c) EventLog, append_many of 64 records per call, N concurrent callers
  (d) raw sqlite3: executemany of all rows in ONE transaction (the ceiling)
  (e) raw sqlite3: one transaction (and one fsync) per row (the floor)

Every case starts from an empty database in a temporary directory (``--dir`` picks the disk).
Usage: python scripts/bench_log.py [--records 20000] [--appenders 64] [--payload 1024]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from storage.log import EventLog
from storage.records import NewRecord, RecordKind
from storage.schema import migrate_log
from storage.sqlite import connect

_db_ids = itertools.count(1)


@attrs.frozen
class Result:
    name: str
    records: int
    seconds: float
    commits: int | None = None

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def make_records(count: int, payload_size: int, sessions: int = 500) -> list[NewRecord]:
    """Keyed batches of ``sessions`` sessions, random (incompressible) payloads."""
    rng = random.Random(42)
    payloads = [rng.randbytes(payload_size) for _ in range(64)]
    return [
        NewRecord(
            session_id=1_000_000 + i % sessions,
            project_id=1,
            kind=RecordKind.WEB_BATCH,
            received_at_ms=1_700_000_000_000 + i,
            payload=payloads[i % len(payloads)],
            batch_key=f"0_{i // sessions}",
        )
        for i in range(count)
    ]


async def _event_log(path: Path, records: list[NewRecord], callers: int, per_call: int) -> int:
    log = EventLog(path, synchronous="FULL")
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        chunks = [records[i : i + per_call] for i in range(0, len(records), per_call)]

        async def caller(mine: list[list[NewRecord]]) -> None:
            for chunk in mine:
                if per_call == 1:
                    await log.append(chunk[0])
                else:
                    await log.append_many(chunk)

        async with trio.open_nursery() as callers_nursery:
            for c in range(callers):
                callers_nursery.start_soon(caller, chunks[c::callers])
        assert log.head() == len(records), "every record must be committed"
        commits = log.statistics().commits
        nursery.cancel_scope.cancel()
    return commits


def bench_event_log(
    directory: Path, name: str, records: list[NewRecord], callers: int, per_call: int
) -> Result:
    path = directory / f"db{next(_db_ids)}.db"  # a fresh database per run
    started = time.perf_counter()
    commits = trio.run(_event_log, path, records, callers, per_call)
    return Result(name, len(records), time.perf_counter() - started, commits)


_INSERT = (
    "INSERT INTO log (session_id, project_id, kind, batch_key, received_at_ms, payload)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _rows(records: list[NewRecord]) -> list[tuple[object, ...]]:
    return [
        (r.session_id, r.project_id, int(r.kind), r.batch_key, r.received_at_ms, r.payload)
        for r in records
    ]


def bench_raw(directory: Path, name: str, records: list[NewRecord], per_row: bool) -> Result:
    conn = connect(directory / f"db{next(_db_ids)}.db", synchronous="FULL")
    try:
        migrate_log(conn)  # same table, indexes and trigger as the log
        rows = _rows(records)
        started = time.perf_counter()
        if per_row:
            for row in rows:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_INSERT, row)
                conn.execute("COMMIT")
            commits = len(rows)
        else:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
            commits = 1
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    return Result(name, len(records), seconds, commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--appenders", type=int, default=64)
    parser.add_argument("--payload", type=int, default=1024, help="payload bytes per record")
    parser.add_argument(
        "--per-row-records", type=int, default=500,
        help="records for the one-transaction-per-record cases (slow by design)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="the cases run interleaved up to this many times; the best round of each is shown",
    )  # fmt: skip
    parser.add_argument(
        "--budget", type=float, default=30.0,
        help="seconds; no new round starts if it would likely end after this",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, default=None, help="directory for the databases")
    args = parser.parse_args()

    records = make_records(args.records, args.payload)
    few = records[: args.per_row_records]
    n = args.appenders
    cases: list[tuple[str, Callable[[Path, str], Result]]] = [
        (
            f"EventLog append, {n} appenders",
            lambda d, name: bench_event_log(d, name, records, n, 1),
        ),
        ("EventLog append, 1 appender", lambda d, name: bench_event_log(d, name, few, 1, 1)),
        (
            f"EventLog append_many(64), {n} callers",
            lambda d, name: bench_event_log(d, name, records, n, 64),
        ),
        ("raw executemany, 1 transaction", lambda d, name: bench_raw(d, name, records, False)),
        ("raw 1 transaction per record", lambda d, name: bench_raw(d, name, few, True)),
    ]  # fmt: skip
    print(
        f"bench_log: {args.records} records of {args.payload} B, synchronous=FULL, "
        f"{os.cpu_count()} CPUs, sqlite {sqlite3.sqlite_version}, "
        f"best of up to {args.rounds} rounds"
    )
    # Interleaving the cases round by round, and keeping each one's best round, makes the
    # ratios robust against load from other processes on a shared machine.
    best: dict[str, Result] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for round_no in range(args.rounds):
            elapsed = time.perf_counter() - started
            if round_no and elapsed + elapsed / round_no > args.budget:
                break
            print(f"  round {round_no + 1} ...", flush=True)
            for name, run in cases:
                result = run(Path(tmp), name)
                if name not in best or result.rate > best[name].rate:
                    best[name] = result
    results = [best[name] for name, _ in cases]

    ceiling, floor = results[3], results[4]
    print()
    header = (
        f"{'case':<38} {'records':>8} {'seconds':>8} {'records/s':>11} {'rec/commit':>10}"
        f" {'/ceiling':>9} {'/floor':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        per_commit = r.records / r.commits if r.commits else float("nan")
        print(
            f"{r.name:<38} {r.records:>8} {r.seconds:>8.2f} {r.rate:>11,.0f} {per_commit:>10.1f}"
            f" {r.rate / ceiling.rate:>9.2f} {r.rate / floor.rate:>7.1f}x"
        )
    print()
    print("/ceiling = rate / raw executemany of all rows in one transaction (SQLite's best case)")
    print("/floor   = rate / raw one transaction (one fsync) per record (a naive durable writer)")


if __name__ == "__main__":
    main()
