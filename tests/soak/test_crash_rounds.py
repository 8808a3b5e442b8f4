"""Crash rounds: a real ``replayd serve`` is SIGKILLed at random moments under tracker load and
restarted on the same files; nothing it acknowledged may be lost, and the projections it ends with
must equal a rebuild of its log (DESIGN.md invariants 1, 2, 3, 5, 6).

Each round: simulated trackers (``tests/soak/trackers.py``) upload with one batch in flight each;
after a random delay (seeded; the seed is printed and in every failure message) the server's
process group is SIGKILLed, then started again on the same log and projections files while the
trackers retry. After the last round the trackers stop, the engine catches up, the server is
stopped gracefully, and:

* every acknowledged batch is in the log byte for byte, stored once, positions are 1..n;
* ``replayd rebuild`` into a fresh projections file gives every projection table row for row.

CI runs a few short rounds (bounded: well under a minute each configuration); ``scripts/soak``
sets the environment variables below for longer runs by hand.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from storage.log import LogReader
from tests.projections.factories import PROJECTION_TABLES, dump_tables
from tests.soak.trackers import Ledger, ServerProcess, missing_acks, read_log, tracker

ROUNDS = int(os.environ.get("REPLAYD_SOAK_ROUNDS", "5"))
WORKER_ROUNDS = int(os.environ.get("REPLAYD_SOAK_WORKER_ROUNDS", "2"))
TRACKERS = int(os.environ.get("REPLAYD_SOAK_TRACKERS", "8"))
ROUND_SECONDS = float(os.environ.get("REPLAYD_SOAK_ROUND_SECONDS", "2.0"))  # longest life
SEED = int(os.environ.get("REPLAYD_SOAK_SEED", str(random.SystemRandom().randrange(2**32))))
PROJECTIONS = ("dead_letters", "events", "jobs", "sessions", "users", "v3")
CATCH_UP_TIMEOUT_S = 60


def _checkpoints(projections_db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{projections_db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT name, position FROM projection_checkpoints").fetchall())
    finally:
        conn.close()


def _head(db: Path) -> int:
    with LogReader(db) as reader:
        return reader.head()


def _caught_up(server: ServerProcess) -> bool:
    head = _head(server.db)
    checkpoints = _checkpoints(server.projections_db)
    return all(checkpoints.get(name, -1) >= head for name in PROJECTIONS)


async def _settle(server: ServerProcess) -> None:
    """Let the running engine catch up with the log, then stop the server gracefully.

    A clock tick can be appended between "caught up" and the stop; then the stopped server's
    projections lag its log by that tick, and one more start catches it up.
    """
    for _ in range(3):
        with trio.fail_after(CATCH_UP_TIMEOUT_S):
            while not await trio.to_thread.run_sync(_caught_up, server):
                await trio.sleep(0.05)
        await server.stop()
        if await trio.to_thread.run_sync(_caught_up, server):
            return
        await server.start()
    raise AssertionError("the engine never caught up with the log")


async def _traffic_resumed(ledger: Ledger, acks: int) -> None:
    """Wait for an ack beyond ``acks``: each kill then interrupts traffic, not an idle server."""
    with trio.fail_after(CATCH_UP_TIMEOUT_S):
        while len(ledger.acks) <= acks:
            await trio.sleep(0.01)


def _rebuild(db: Path, into: Path) -> None:
    command = [
        sys.executable, "-m", "api.cli", "rebuild", "--db", str(db), "--projections-db", str(into),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("workers", "rounds"), [(0, ROUNDS), (2, WORKER_ROUNDS)])
async def test_sigkill_rounds_lose_nothing_and_projections_equal_a_rebuild(
    tmp_path: Path, workers: int, rounds: int
) -> None:
    seed = SEED + workers
    rng = random.Random(seed)
    print(f"crash rounds: seed {seed} (REPLAYD_SOAK_SEED={SEED}), {rounds} rounds, {workers=}")
    server = ServerProcess(
        db=tmp_path / "replayd.db",
        projections_db=tmp_path / "projections.db",
        stderr_path=tmp_path / "stderr.log",
        workers=workers,
    )
    ledger = Ledger()
    began = time.monotonic()
    acks_at_kill: list[int] = []
    try:
        await server.start()
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for number in range(TRACKERS):
                tracker_rng = random.Random(f"{seed}-{number}")
                nursery.start_soon(tracker, server, ledger, tracker_rng, stop)
            for _ in range(rounds):
                await _traffic_resumed(ledger, acks_at_kill[-1] if acks_at_kill else 0)
                await trio.sleep(rng.uniform(0.0, ROUND_SECONDS))
                await server.kill()
                acks_at_kill.append(len(ledger.acks))
                await server.start()
            await _traffic_resumed(ledger, acks_at_kill[-1] if acks_at_kill else 0)
            await trio.sleep(rng.uniform(0.0, ROUND_SECONDS))
            stop.set()  # each tracker finishes (and retries) the batch it has in flight
        await _settle(server)
    finally:
        await server.aclose()

    context = f"seed {seed}; kills after {acks_at_kill} acks; stderr tail:\n{server.stderr()}"
    records = await trio.to_thread.run_sync(read_log, server.db)
    assert [r.position for r in records] == list(range(1, len(records) + 1)), context
    missing = missing_acks(records, ledger.acks)
    assert missing == [], f"{len(missing)} of {len(ledger.acks)} acks not in the log; {context}"

    fresh = tmp_path / "rebuilt.db"
    await trio.to_thread.run_sync(_rebuild, server.db, fresh)
    live = await trio.to_thread.run_sync(dump_tables, server.projections_db)
    rebuilt = await trio.to_thread.run_sync(dump_tables, fresh)
    # Every projection table, every column. (``projection_lock`` is not compared: it is the
    # advisory lock, naming the process that held it, not a projection.)
    for table in PROJECTION_TABLES:
        assert live[table] == rebuilt[table], f"table {table} differs from a rebuild; {context}"
    print(
        f"crash rounds: {rounds} kills, {server.starts} starts, {len(ledger.acks)} batches"
        f" acknowledged, {len(ledger.acks) - len(missing)} found, {len(records)} records,"
        f" {ledger.starts} starts acknowledged, {ledger.reconnects} reconnects,"
        f" {ledger.retried_503} 503 retries, {ledger.restarts_401} 401 restarts,"
        f" {time.monotonic() - began:.1f} s"
    )
