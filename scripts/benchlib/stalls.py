"""Loop-stall benchmark (issue 9, item 6): what a big read costs every other request.

A tiny request that never leaves the trio loop (``GET /healthz``) is sent back to back on one
keep-alive connection; whatever holds the loop shows up in its latency. Two cases, each with a
baseline window measured in the same run:

* **events**: one server, a stored session of ``events`` events (20,000); a second client reads
  its ``GET /api/v1/{projectKey}/sessions/{id}/events`` back to back (baseline: the same server
  with no other traffic).
* **live**: ``serve --workers 1`` over ``live`` live sessions (10,000) in the sessions
  projection; the ingest process reloads them every second for Assist. One more tracker uploads
  a small batch every ``upload_interval_s``, so that the projection's checkpoint moves between
  two reloads (as it does under any traffic); baseline: the same over no live sessions.

Besides percentiles, "stalled ms per second" sums the latency above the window's median of the
probes slower than ``STALL_MS`` (a sequential probe waits through every stall once).

Data is appended through ``EventLog.append_many`` and projected by ``replayd rebuild`` before
the server starts, as the queries section does.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
from benchlib import batches, common, rebuild
from benchlib.common import log, percentile
from benchlib.hostile import started_tracker

from engine.codec import web
from engine.codec import web_messages as m

CLICKS_PER_BATCH = 200
# A probe slower than this waited for something that held the loop (the idle p99 is ~5 ms on
# the shared 2-core machine); faster ones are scheduling noise and are not counted as stalls.
STALL_MS = 10.0


@attrs.frozen
class StallSettings:
    events: int = 20_000  # events of the big session
    live: int = 10_000  # live sessions in the --workers case
    duration_s: float = 5.0  # per window
    upload_interval_s: float = 0.1  # the live case's one tracker: a batch every ...


@attrs.frozen
class Probe:
    """Latencies (ms) of the ``/healthz`` probe over one window."""

    latencies_ms: list[float]
    seconds: float

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)

    @property
    def max(self) -> float:
        return max(self.latencies_ms, default=0.0)

    @property
    def stalled_ms_per_s(self) -> float:
        """Latency above the median of the probes slower than ``STALL_MS``, per second."""
        median = self.p50
        excess = sum(t - median for t in self.latencies_ms if t > STALL_MS)
        return excess / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        return (
            f"p50 {self.p50:.1f} ms · p99 {self.p99:.1f} ms · max {self.max:.1f} ms · "
            f"{self.stalled_ms_per_s:.0f} ms/s stalled (n={len(self.latencies_ms)})"
        )


@attrs.frozen
class StallResult:
    events: int
    events_idle: Probe
    events_loaded: Probe
    events_reads_ms: list[float]  # latencies of the big session's events requests
    live: int
    live_listed: int  # live sessions the ingest process lists (sanity check)
    live_idle: Probe  # the same server and tracker over no live sessions
    live_probe: Probe


def probe(port: int, seconds: float) -> Probe:
    """``GET /healthz`` back to back for ``seconds``."""
    from benchlib.queries import QueryClient

    client = QueryClient(port, [])
    times: list[float] = []
    try:
        t0 = time.monotonic()
        deadline = t0 + seconds
        while time.monotonic() < deadline:
            status, payload, secs = client.request("GET", "/healthz")
            if status != 200:
                raise RuntimeError(f"/healthz: HTTP {status} {payload[:200]!r}")
            times.append(secs * 1000)
        return Probe(times, time.monotonic() - t0)
    finally:
        client.close()


def _big_session_records(project_id: int, session_id: int, events: int, ts: int) -> Iterator:
    """A start and enough batches of clicks (distinct message ids) for ``events`` events."""
    yield rebuild.start_record(project_id, session_id, ts, 0)
    seq = 0
    made = 0
    while made < events:
        n = min(CLICKS_PER_BATCH, events - made)
        at = ts + 1000 + seq * 60_000
        msgs: list[m.WebMessage] = [
            m.BatchMetadata(
                version=1,
                page_no=0,
                first_index=seq * 10 * CLICKS_PER_BATCH,
                timestamp=at,
                location=batches.PAGE_URL,
            ),
            m.Timestamp(timestamp=at),
            m.TabData(tab_id=batches.TAB_ID),
        ]
        for i in range(n):
            msgs.append(m.Timestamp(timestamp=at + i * 100))
            msgs.append(
                m.MouseClick(
                    id=100 + i,
                    hesitation_time=300,
                    label="Add to cart",
                    selector="div.product-card > button",
                    normalized_x=4300,
                    normalized_y=1200,
                )
            )
        seq += 1
        made += n
        yield rebuild.batch_record(project_id, session_id, at, seq, web.encode_batch(msgs))


def run_events(s: StallSettings, tmp: Path) -> tuple[Probe, Probe, list[float]]:
    """The big session's events read back to back, against no other traffic."""
    from benchlib.queries import QueryClient

    from engine.ids import FlakeIdGenerator

    db = tmp / "events.db"
    keys = common.create_keys(db)
    ts = int(time.time() * 1000) - 86_400_000
    sid = FlakeIdGenerator(shard=11).next_id(ts)
    rebuild.append_records(db, _big_session_records(keys.project_id, sid, s.events, ts), chunk=50)
    run = rebuild.run_rebuild(db)
    log(f"stalls: projected a session of {s.events:,} events ({run.output.splitlines()[-1]})")
    path = f"/api/v1/{keys.project_key}/sessions/{sid}/events"
    reads: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        client = QueryClient(port, [("Authorization", keys.api_key)])
        try:
            while not stop.is_set():
                status, payload, secs = client.request("GET", path)
                if status != 200:
                    raise RuntimeError(f"events: HTTP {status} {payload[:200]!r}")
                reads.append(secs * 1000)
        finally:
            client.close()

    with common.replayd_server(db) as (_child, port):
        client = QueryClient(port, [("Authorization", keys.api_key)])
        status, payload, _ = client.request("GET", path)
        client.close()
        got = len(json.loads(payload)["data"]) if status == 200 else -1
        if got != s.events:
            raise RuntimeError(f"the big session answers {got} events, not {s.events}")
        probe(port, 1.0)  # warm-up
        idle = probe(port, s.duration_s)
        log(f"stalls: events, no other traffic: {idle.describe()}")
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            loaded = probe(port, s.duration_s)
        finally:
            stop.set()
            thread.join(60)
        log(f"stalls: events, while {s.events:,} events are read: {loaded.describe()}")
    return idle, loaded, reads


def _paced_uploads(port: int, project_key: str, interval_s: float, stop: threading.Event) -> None:
    """One tracker: a start, then a 1 KB batch every ``interval_s`` until ``stop``."""
    client = started_tracker(port, project_key, "paced")
    try:
        batch = batches.make_batch(1024, seed=9)
        index = 1
        while not stop.wait(interval_s):
            body = batches.encode_header(0, index * 1000, int(time.time() * 1000)) + batch.tail
            status, payload, _ = client.request(
                "POST", f"/v1/web/i?batch=0_{index}", body, "application/octet-stream"
            )
            if status != 200:
                raise RuntimeError(f"paced upload: HTTP {status} {payload[:200]!r}")
            index += 1
    finally:
        client.close()


def run_live(s: StallSettings, tmp: Path, live: int) -> tuple[int, Probe]:
    """The ingest process of ``--workers 1`` over ``live`` live sessions."""
    from benchlib.queries import QueryClient, live_total

    from engine.ids import FlakeIdGenerator

    db = tmp / f"live-{live}.db"
    keys = common.create_keys(db)
    # Started now: the engine's inactivity rule (150 s of record time) ends them only after the
    # measurement.
    now = int(time.time() * 1000)
    gen = FlakeIdGenerator(shard=12)
    payloads = rebuild.StartPayloads(keys.project_id)
    records = (
        rebuild.start_record(keys.project_id, gen.next_id(now + i), now, i, payloads)
        for i in range(live)
    )
    rebuild.append_records(db, records, chunk=5000)
    rebuild.run_rebuild(db)
    with common.replayd_server(db, workers=1) as (_child, port):
        client = QueryClient(port, [("Authorization", keys.api_key)])
        try:
            listed = -1
            deadline = time.monotonic() + 30
            while listed != live and time.monotonic() < deadline:
                listed = live_total(client, keys.project_key)
                time.sleep(0.2)
        finally:
            client.close()
        stop = threading.Event()
        failures: list[Exception] = []

        def tracker() -> None:
            try:
                _paced_uploads(port, keys.project_key, s.upload_interval_s, stop)
            except (OSError, RuntimeError, ValueError) as error:  # raised below, not lost
                failures.append(error)

        thread = threading.Thread(target=tracker, daemon=True)
        thread.start()
        try:
            probe(port, 1.0)  # warm-up
            result = probe(port, s.duration_s)
        finally:
            stop.set()
            thread.join(60)
        if failures:
            raise RuntimeError(f"the paced tracker failed: {failures[0]!r}")
    log(f"stalls: --workers 1, {listed:,} live sessions listed: {result.describe()}")
    return listed, result


def run(s: StallSettings) -> StallResult:
    """Both cases, each on its own server and database."""
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        idle, loaded, reads = run_events(s, Path(tmp))
        _, live_idle = run_live(s, Path(tmp), 0)
        listed, live = run_live(s, Path(tmp), s.live)
    return StallResult(
        events=s.events,
        events_idle=idle,
        events_loaded=loaded,
        events_reads_ms=reads,
        live=s.live,
        live_listed=listed,
        live_idle=live_idle,
        live_probe=live,
    )
