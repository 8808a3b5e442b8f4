"""Query benchmark: public session-events endpoint and Assist live search, p50/p99.

Data, generated the way production gets it:
* stored sessions: a ``WEB_START`` record per session (and, for a subset, a batch rich in clicks,
  inputs and a location) appended with ``EventLog.append_many``, spread over the last 29 days so
  that they end in record time, then projected by ``replayd rebuild`` (the rebuild driver is the
  fast path to a million sessions: no HTTP, same engine and projections);
* live sessions: started over HTTP against the running server (``/v1/web/start`` + a first
  batch with a user id, metadata and a page), by the load generator in ``sessions`` mode.

If the wanted number of stored sessions cannot be projected within the time budget the section
measures with what fit and says so in the table.

Latency is measured by one keep-alive client, one request at a time (no queueing in the figure),
for the events of random stored sessions that have events and for a mix of live-search filters;
the same client against the ceiling server's empty GET gives the framework's floor.
"""

from __future__ import annotations

import json
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
from benchlib import batches, common, profile, rebuild
from benchlib.common import log, percentile
from benchlib.loadgen import LoadSpec, parse_response, request_bytes


class QueryClient:
    """One keep-alive HTTP/1.1 connection; ``request`` returns (status, body, seconds)."""

    def __init__(self, port: int, headers: list[tuple[str, str]]):
        self.port = port
        self.headers = headers
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def request(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, bytes, float]:
        headers = list(self.headers)
        if content_type:
            headers.append(("Content-Type", content_type))
        data = request_bytes(method, path, f"127.0.0.1:{self.port}", headers, body)
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.sock.sendall(data)
                buf = bytearray()
                while True:
                    chunk = self.sock.recv(262144)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk
                    parsed = parse_response(buf)
                    if parsed is not None:
                        status, payload, _ = parsed
                        return status, payload, time.perf_counter() - t0
            except (ConnectionError, OSError):
                if attempt == 2:
                    raise
                self.sock.close()  # an idle keep-alive timeout: reconnect once (not timed)
                self.sock = self._connect()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.sock.close()


@attrs.frozen
class Latency:
    """p50/p99 of one endpoint, milliseconds, and how many requests were measured."""

    p50_ms: float
    p99_ms: float
    n: int
    errors: int
    note: str = ""
    empty: int = 0  # answers with nothing in them (no events, no matching live session)


def measure(
    client: QueryClient,
    requests: list[tuple[str, str, bytes]],
    warmup: int = 20,
    is_empty=None,
) -> Latency:
    """Send ``requests`` one at a time (after ``warmup`` untimed ones); latency percentiles.

    ``is_empty(payload)`` tells an answer that holds nothing (counted, so that a fast empty answer
    cannot pass for a fast query).
    """
    for method, path, body in requests[:warmup]:
        client.request(method, path, body, "application/json" if body else None)
    times, errors, empty, note = [], 0, 0, ""
    for method, path, body in requests[warmup:]:
        status, payload, secs = client.request(
            method, path, body, "application/json" if body else None
        )
        if status != 200:
            errors += 1
            note = f"HTTP {status}: {payload[:120]!r}"
            continue
        if is_empty is not None and is_empty(payload):
            empty += 1
        times.append(secs * 1000)
    return Latency(percentile(times, 50), percentile(times, 99), len(times), errors, note, empty)


@attrs.frozen
class QuerySettings:
    stored_sessions: int = 1_000_000
    sessions_with_events: int = 2_000  # ~2 ms of encoding each
    live_sessions: int = 10_000
    requests: int = 1000
    rebuild_budget_s: float = 100.0  # at most this long for projecting the stored sessions
    live_procs: int = 1
    live_trackers: int = 32


@attrs.frozen
class QueryResult:
    stored_wanted: int
    stored: int  # sessions projected
    rebuild_s: float
    live_wanted: int
    live: int  # live sessions the server reported when measured
    live_start_s: float
    events: Latency
    live_search: Latency
    floor: Latency  # empty GET on the ceiling server
    live_rss: int  # RSS of the server once the live sessions were started and projected
    caught_up: bool  # whether the engine had reached the log head when the RSS was taken
    note: str = ""
    stored_set: StoredSet | None = None


_BROWSERS = (b'"Chrome"', b'"Firefox"', b'"Safari"')


def _stored_records(project_id: int, n: int, with_events: int, ids: list[int]) -> Iterator:
    span_ms = 29 * 86_400_000
    base = int(time.time() * 1000) - 30 * 86_400_000
    step = max(1, span_ms // max(n, 1))
    events_every = max(1, n // max(with_events, 1))
    payloads = rebuild.StartPayloads(project_id)
    for i, sid in enumerate(ids):
        ts = base + i * step
        start = rebuild.start_record(project_id, sid, ts, i, payloads)
        if i % len(_BROWSERS):  # sessions vary in browser too (the search benchmark's filters)
            start = attrs.evolve(
                start, payload=start.payload.replace(b'"Chrome"', _BROWSERS[i % 3], 1)
            )
        yield start
        if i % events_every == 0:
            yield rebuild.batch_record(
                project_id, sid, ts + 1000, 1, batches.session_events_batch(i, ts + 1000)
            )
            yield rebuild.batch_record(
                project_id,
                sid,
                ts + 70_000,
                2,
                batches.checkout_batch(i // events_every, ts + 70_000),
            )


@attrs.frozen
class StoredSet:
    """The stored sessions of the query data set, and how they were made."""

    sessions: int  # sessions projected
    rebuild_s: float
    with_events: list[int]  # ids of the sessions that have events
    note: str
    append_s: float = 0.0  # appending them through the log
    rebuild_run: rebuild.RebuildRun | None = None  # the full rebuild (its peak RSS)
    probe: rebuild.RebuildRun | None = None  # the probe's rebuild of a smaller log
    probe_sessions: int = 0


def prepare_stored(
    db: Path, project_id: int, s: QuerySettings
) -> tuple[int, float, list[int], str]:
    """Append and project stored sessions; scale down if a probe shows the budget is too short.

    Returns (sessions projected, rebuild seconds, ids of sessions with events, note); see
    :func:`build_stored` for the whole story.
    """
    built = build_stored(db, project_id, s)
    return built.sessions, built.rebuild_s, built.with_events, built.note


def build_stored(db: Path, project_id: int, s: QuerySettings) -> StoredSet:
    """Append ``s.stored_sessions`` through the log (``EventLog.append_many``, groups of 20,000,
    ``synchronous=OFF``) and project them with ``replayd rebuild``; a probe of 50,000 sessions
    first, so that the data set shrinks if its rebuild would not fit ``s.rebuild_budget_s``."""
    from engine.ids import FlakeIdGenerator

    gen = FlakeIdGenerator(shard=9)
    base = int(time.time() * 1000) - 30 * 86_400_000
    note = ""
    ids = [gen.next_id(base + i) for i in range(s.stored_sessions)]
    n = s.stored_sessions
    # 50,000: a probe whose rebuild is not mostly the command's fixed cost (opening, emptying
    # the projections), and the small rebuild the big one's memory is compared with.
    probe_n = min(50_000, n // 10)
    probe = None
    if probe_n >= 1_000:
        # Probe the projection rate on a small log first, so the real one fits the budget.
        probe_db = db.with_name("probe.db")
        keys = common.create_keys(probe_db)
        rebuild.append_records(
            probe_db,
            _stored_records(keys.project_id, probe_n, probe_n // 100, ids[:probe_n]),
            chunk=5000,
            synchronous="OFF",
        )
        probe = rebuild.run_rebuild(probe_db)
        per_s = probe_n / (probe.own_s or probe.wall_s)
        fit = int(per_s * s.rebuild_budget_s)
        log(f"queries: probe projected {per_s:,.0f} sessions/s")
        if fit < n:
            n = max(probe_n, fit // 10_000 * 10_000)
            note = (
                f"{n:,} of {s.stored_sessions:,} stored sessions: `replayd rebuild` projects "
                f"{per_s:,.0f} sessions/s here and the run allows {s.rebuild_budget_s:.0f} s"
            )
        probe_db.unlink(missing_ok=True)
    with_events = min(s.sessions_with_events, n)
    log(f"queries: appending {n:,} sessions ({with_events:,} with events) through the log")
    t0 = time.perf_counter()
    rebuild.append_records(
        db,
        _stored_records(project_id, n, with_events, ids[:n]),
        chunk=20_000,
        synchronous="OFF",
    )
    append_s = time.perf_counter() - t0
    log(f"queries: appended in {append_s:.1f} s; replayd rebuild")
    run = rebuild.run_rebuild(db)
    log(f"queries: rebuilt in {run.wall_s:.1f} s wall, peak RSS {run.peak_rss / 1e6:.0f} MB")
    events_every = max(1, n // max(with_events, 1))
    return StoredSet(
        sessions=n,
        rebuild_s=run.own_s or run.wall_s,
        with_events=ids[:n:events_every],
        note=note,
        append_s=append_s,
        rebuild_run=run,
        probe=probe,
        probe_sessions=probe_n if probe is not None else 0,
    )


def start_live(port: int, project_key: str, n: int, s: QuerySettings) -> tuple[list[str], float]:
    """Start ``n`` live sessions over HTTP; return their ids and how long it took."""
    spec = LoadSpec(
        port=port,
        project_key=project_key,
        trackers=s.live_trackers,
        mode="sessions",
        sessions=n,
        duration_s=600,
        seed=31,
    )
    t0 = time.perf_counter()
    run = common.run_sessions(spec, s.live_procs)
    return run.sessions, time.perf_counter() - t0


def live_search_requests(
    project_key: str, n: int, rng: random.Random
) -> list[tuple[str, str, bytes]]:
    """Assist searches (API.md 4.3): user id, metadata, browser, page title; sorted, paginated."""
    reqs = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            # the load generator names live users user-<seed>-<n>; seed 3100 here (spec seed 31)
            flt = {
                "type": "userId",
                "value": [f"user-3100-{rng.randint(0, 999)}"],
                "operator": "contains",
            }
        elif kind == 1:
            flt = {
                "type": "metadata",
                "source": "plan",
                "value": ["pro", "enterprise"],
                "operator": "is",
            }
        elif kind == 2:
            flt = {"type": "userBrowser", "value": ["chrome"], "operator": "is"}
        else:
            flt = {
                "type": "pageTitle",
                "value": [f"Item {rng.randint(0, 9999)}"],
                "operator": "contains",
            }
        body = {"filters": [flt], "sort": "timestamp", "order": "DESC", "page": 1, "limit": 10}
        reqs.append(("POST", f"/api/v1/{project_key}/assist/sessions", json.dumps(body).encode()))
    return reqs


def wait_caught_up(db: Path, timeout: float) -> bool:
    """Wait until the lowest projection checkpoint reaches the log head (bounded)."""
    from benchlib.engine import ProgressProbe

    probe = ProgressProbe(db)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            head, ckpt = probe.sample()
            if ckpt is not None and ckpt >= head:
                return True
            time.sleep(0.2)
        return False
    finally:
        probe.close()


def live_total(client: QueryClient, project_key: str) -> int:
    """How many live sessions the server lists (``data.total`` of the Assist list)."""
    status, body, _ = client.request("GET", f"/api/v1/{project_key}/assist/sessions")
    if status != 200:
        return -1
    data = json.loads(body).get("data", {})
    return int(data.get("total", -1)) if isinstance(data, dict) else -1


def floor_latency(n: int) -> Latency:
    """The same client against the ceiling server's empty GET handler."""
    with common.ceiling_server() as (_child, port):
        client = QueryClient(port, [("Authorization", "x")])
        try:
            return measure(client, [("GET", "/api/v1/ping", b"")] * n)
        finally:
            client.close()


def _profile(pid: int, name: str):
    """Sample the server while one query mix runs (only with ``--profile``)."""
    if profile.PROFILE_DIR is None:
        return None
    out = profile.PROFILE_DIR / f"{name}.collapsed"
    return profile.record(pid, 4, out), out


def _no_events(payload: bytes) -> bool:
    return not json.loads(payload).get("data")


def _no_live_match(payload: bytes) -> bool:
    data = json.loads(payload).get("data") or {}
    return not data.get("sessions")


def run(s: QuerySettings) -> QueryResult:
    """Generate the data, start the server with live sessions, measure both endpoints."""
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "queries.db"
        keys = common.create_keys(db)
        stored_set = build_stored(db, keys.project_id, s)
        stored, rebuild_s, with_events, note = (
            stored_set.sessions,
            stored_set.rebuild_s,
            stored_set.with_events,
            stored_set.note,
        )
        log(f"queries: {stored:,} sessions projected in {rebuild_s:.1f} s; starting replayd")
        with common.replayd_server(db) as (child, port):
            live_ids, live_s = start_live(port, keys.project_key, s.live_sessions, s)
            caught_up = wait_caught_up(db, timeout=60)
            time.sleep(1.0)
            live_rss = common.tree_rss(child.pid)
            log(
                f"queries: {len(live_ids):,} live sessions started in {live_s:.1f} s, RSS "
                f"{live_rss / 1e6:.0f} MB; measuring"
            )
            client = QueryClient(port, [("Authorization", keys.api_key)])
            try:
                live = live_total(client, keys.project_key)
                n = s.requests
                ev_reqs = [
                    (
                        "GET",
                        f"/api/v1/{keys.project_key}/sessions/{rng.choice(with_events)}/events",
                        b"",
                    )
                    for _ in range(n + 20)
                ]
                # live search first: the live sessions end 150 s (record time) after their batch
                prof = _profile(child.pid, "queries-live-search")
                search = measure(
                    client,
                    live_search_requests(keys.project_key, n + 20, rng),
                    is_empty=_no_live_match,
                )
                if prof:
                    profile.finish(*prof)
                prof = _profile(child.pid, "queries-events")
                events = measure(client, ev_reqs, is_empty=_no_events)
                if prof:
                    profile.finish(*prof)
            finally:
                client.close()
    floor = floor_latency(s.requests)
    return QueryResult(
        stored_wanted=s.stored_sessions,
        stored=stored,
        rebuild_s=rebuild_s,
        live_wanted=s.live_sessions,
        live=live,
        live_start_s=live_s,
        events=events,
        live_search=search,
        floor=floor,
        live_rss=live_rss,
        caught_up=caught_up,
        note=note,
        stored_set=stored_set,
    )
