"""Overload soak: 300 simulated trackers sending 900 KB batches to a real ``replayd serve``.

Each tracker keeps one batch in flight and retries like the real one (PROTOCOL.md 4.3: any status
>= 400 but 401 is re-sent after 250 ms x attempt, and after 10 failures in a row the tracker stops
recording for good). The server runs as a subprocess on 127.0.0.1 with a fresh SQLite file; its
RSS is sampled throughout. Asserted: RSS stays under ``RSS_BOUND_MB``; answers slow down rather
than fail (no 5xx other than 503, no tracker gives up); every acknowledged batch is in the log; the
engine catches up (every projection checkpoint reaches the head) afterwards.

Measured on 2 cores (300 x 3 batches of 900 KB): before the byte budgets the server peaked at
560-800 MB RSS during the load and 680-1070 MB while the engine caught up (1000-record reads of
900 KB records); with them at 245-290 MB throughout.

Sizes can be changed through ``REPLAYD_SOAK_*`` variables (to measure another build, say); the
defaults are the CI run, bounded to about a minute on 2 cores.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import psutil
import pytest
import trio

from tests.api.conftest import CHROME_UA, start_body

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
# The benchmarks' batch generator; scripts/ is not a package, so it joins sys.path just above.
from benchlib import batches  # noqa: E402

TRACKERS = int(os.environ.get("REPLAYD_SOAK_TRACKERS", "300"))
BATCHES = int(os.environ.get("REPLAYD_SOAK_BATCHES", "3"))  # per tracker
BATCH_BYTES = int(os.environ.get("REPLAYD_SOAK_BATCH_BYTES", "900000"))
RSS_BOUND_MB = float(os.environ.get("REPLAYD_SOAK_RSS_MB", "400"))
MAX_ATTEMPTS = 10  # the tracker's connAttemptCount
ATTEMPT_GAP_S = 0.25  # the tracker's connAttemptGap
CATCH_UP_S = 90.0
TAIL_VARIANTS = 4
T0 = 1_795_418_019_165

pytestmark = pytest.mark.timeout(300)


@functools.cache
def batch_tail(variant: int) -> bytes:
    """The part after the header of a ~``BATCH_BYTES`` tracker-like batch (DOM mutations, mouse
    moves, clicks: what the engine decodes), from the benchmarks' generator."""
    return batches.make_batch(BATCH_BYTES, seed=variant).tail


def soak_batch(index: int, variant: int) -> bytes:
    """Upload ``index`` of a session: a fresh header (first index, hence batch key) + a tail."""
    return batches.encode_header(0, index, T0 + index) + batch_tail(variant % TAIL_VARIANTS)


@attrs.define
class Server:
    process: subprocess.Popen[str]
    url: str
    project_key: str
    db: Path
    projections_db: Path
    stderr: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    db, projections_db, stderr = tmp_path / "soak.db", tmp_path / "soak-proj.db", tmp_path / "err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAYD_")}
    cmd = [sys.executable, "-m", "api.cli", "serve", "--db", str(db)]
    cmd += ["--projections-db", str(projections_db), "--host", "127.0.0.1", "--port", "0"]
    with open(stderr, "w") as err:
        process = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        url = key = ""
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if found := re.search(r"project key:\s+(\S+)", line):
                key = found.group(1)
            if found := re.search(r"replayd serving .* on (http://\S+)", line):
                url = found.group(1)
        assert url and key, f"server did not start: {stderr.read_text()}"
        yield Server(process, url, key, db, projections_db, stderr)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@attrs.define
class Outcome:
    statuses: Counter[int] = attrs.field(factory=Counter)
    acknowledged: set[tuple[int, str]] = attrs.field(factory=set)  # (session id, batch key prefix)
    gave_up: int = 0
    network_errors: Counter[str] = attrs.field(factory=Counter)
    longest_answer_s: float = 0.0


async def tracker(client: httpx.AsyncClient, server: Server, n: int, outcome: Outcome) -> None:
    """One tracker: start, then ``BATCHES`` uploads, one in flight, retried like the real one."""
    started = await client.post(
        "/v1/web/start",
        json=start_body(server.project_key, userID=f"soak-{n}"),
        headers={"User-Agent": CHROME_UA},
    )
    outcome.statuses[started.status_code] += 1
    if started.status_code != 200:
        outcome.gave_up += 1  # the real tracker does not retry a start
        return
    session = started.json()
    headers = {"Authorization": f"Bearer {session['token']}", "DataType": "player"}
    for index in range(1, BATCHES + 1):
        body = soak_batch(index, variant=n + index)
        failures = 0
        while True:
            began = time.monotonic()
            try:
                response = await client.post(
                    "/v1/web/i", content=body, headers=headers, params={"batch": f"0_{index}"}
                )
                status = response.status_code
            except httpx.TransportError as error:
                status = 0  # a network error counts as a failure, as in the tracker
                outcome.network_errors[f"{type(error).__name__}: {error}"] += 1
            outcome.longest_answer_s = max(outcome.longest_answer_s, time.monotonic() - began)
            outcome.statuses[status] += 1
            if status == 200:
                outcome.acknowledged.add((int(session["sessionID"]), f"0_{index}#"))
                break
            failures += 1
            if failures >= MAX_ATTEMPTS:
                outcome.gave_up += 1  # the real tracker stops recording here
                return
            await trio.sleep(ATTEMPT_GAP_S * failures)


async def sample_rss(pid: int, peaks: list[float]) -> None:
    process = psutil.Process(pid)
    while True:
        rss = await trio.to_thread.run_sync(lambda: process.memory_info().rss)
        peaks.append(rss / 2**20)
        await trio.sleep(0.1)


def stored_batches(db: Path) -> set[tuple[int, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT session_id, batch_key FROM log WHERE kind = 2").fetchall()
    finally:
        conn.close()
    return {(int(sid), key.split("#")[0] + "#") for sid, key in rows}


def engine_lag(db: Path, projections_db: Path) -> tuple[int, int]:
    """(log head, lowest projection checkpoint)."""
    log = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    projections = sqlite3.connect(f"file:{projections_db}?mode=ro", uri=True)
    try:
        head = log.execute("SELECT coalesce(max(position), 0) FROM log").fetchone()[0]
        low = projections.execute(
            "SELECT coalesce(min(position), 0) FROM projection_checkpoints"
        ).fetchone()[0]
    finally:
        log.close()
        projections.close()
    return int(head), int(low)


async def test_overload_slows_answers_down_and_memory_stays_bounded(server: Server) -> None:
    outcome = Outcome()
    during: list[float] = []
    after: list[float] = []
    # A connection per request: a kept-alive one that the server closed meanwhile (keep-alive
    # timeout) would fail a POST in the client, which is not what is under test here.
    limits = httpx.Limits(max_connections=TRACKERS + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(120.0)  # a browser waits; slow answers are the back-pressure
    began = time.monotonic()
    async with (
        httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as client,
        trio.open_nursery() as sampling,
    ):
        sampling.start_soon(sample_rss, server.process.pid, during)
        async with trio.open_nursery() as trackers:
            for n in range(TRACKERS):
                trackers.start_soon(tracker, client, server, n, outcome)
        sampling.cancel_scope.cancel()
    load_s = time.monotonic() - began
    head_after_load, _ = await trio.to_thread.run_sync(engine_lag, server.db, server.projections_db)
    caught_up_s = None
    async with trio.open_nursery() as sampling:
        sampling.start_soon(sample_rss, server.process.pid, after)
        with trio.move_on_after(CATCH_UP_S):
            while True:
                _, low = await trio.to_thread.run_sync(engine_lag, server.db, server.projections_db)
                if low >= head_after_load:
                    caught_up_s = time.monotonic() - began - load_s
                    break
                await trio.sleep(0.5)
        sampling.cancel_scope.cancel()

    peak_during, peak_after = max(during), max(after, default=0.0)
    print(
        f"\nsoak: {TRACKERS} trackers x {BATCHES} batches of {BATCH_BYTES} B in {load_s:.1f}s;"
        f" statuses {dict(outcome.statuses)}; longest answer {outcome.longest_answer_s:.1f}s;"
        f" RSS peak {peak_during:.0f} MB during the load, {peak_after:.0f} MB while catching up"
        f" (start {during[0]:.0f} MB); engine caught up {caught_up_s}s after the load;"
        f" network errors {dict(outcome.network_errors)}"
    )
    assert outcome.gave_up == 0, f"{outcome.gave_up} trackers gave up: {dict(outcome.statuses)}"
    # 0 = a connection dropped before any answer (retried like any failure; not a 5xx): with 300
    # simultaneous connects Hypercorn's default listen backlog (100) overflows (ListenOverflows
    # in /proc/net/netstat); a larger backlog makes them go away.
    assert set(outcome.statuses) <= {0, 200, 503}, dict(outcome.statuses)
    assert len(outcome.acknowledged) == TRACKERS * BATCHES
    assert outcome.acknowledged <= await trio.to_thread.run_sync(stored_batches, server.db)
    assert caught_up_s is not None, "the engine did not catch up with the log"
    assert peak_during < RSS_BOUND_MB and peak_after < RSS_BOUND_MB, (peak_during, peak_after)
    assert server.process.poll() is None, server.stderr.read_text()
