"""Delete-user job benchmark (issue 15 part 3): a user with 1,000 sessions erased under ingest.

The log holds ``victim_sessions`` sessions of one user and ``other_sessions`` of others (a start
record and one small batch each, appended with ``EventLog.append_many`` and projected by
``replayd rebuild``, as the other sections build their data). On a running server, ``trackers``
keep-alive clients upload 1 KB batches back to back: first for ``baseline_s`` alone (the
ceiling of this run), then while ``DELETE /api/v1/<key>/users/<id>`` runs; the job's time is
from that request to the job object's ``completed``, polled every 50 ms. Reported: the job's
seconds, ingest req/s during vs before, and the slowest upload during (what holding the log
writer costs a tracker).
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

VICTIM_INDEX = 7  # start_payload names user f"user-{i % 50_000}": i = 7 + k * 50_000 -> user-7
USERS = 50_000


@attrs.frozen
class EraseSettings:
    victim_sessions: int = 1_000
    other_sessions: int = 5_000
    trackers: int = 4
    baseline_s: float = 5.0


@attrs.frozen
class EraseResult:
    victim_sessions: int
    other_sessions: int
    job_s: float
    sessions_erased: int
    records_erased: int
    before_req_s: float
    during_req_s: float
    during_p99_ms: float
    during_max_ms: float
    before_max_ms: float


def _records(project_id: int, s: EraseSettings, ts: int) -> Iterator:
    from engine.ids import FlakeIdGenerator

    gen = FlakeIdGenerator(shard=13)
    victims = (VICTIM_INDEX + k * USERS for k in range(s.victim_sessions))
    others = (VICTIM_INDEX + 1 + k for k in range(s.other_sessions))  # never user-7
    for n, i in enumerate(_interleave(victims, others)):
        sid = gen.next_id(ts + n)
        yield rebuild.start_record(project_id, sid, ts + n, i)
        msgs = [
            m.BatchMetadata(1, 0, 0, ts + n + 10, batches.PAGE_URL),
            m.Timestamp(ts + n + 10),
            m.TabData(batches.TAB_ID),
            m.MouseClick(101, 300, f"Buy {i}", "div > button", 4300, 1200),
        ]
        yield rebuild.batch_record(project_id, sid, ts + n + 10, 1, web.encode_batch(msgs))


def _interleave(a: Iterator[int], b: Iterator[int]) -> Iterator[int]:
    """The victim's sessions spread among the others' (as a real log has them)."""
    for x in a:
        yield x
        for _ in range(5):
            y = next(b, None)
            if y is not None:
                yield y
    yield from b


class _Uploads:
    """``trackers`` threads uploading back to back; latencies (ms) with their end times."""

    def __init__(self, port: int, project_key: str, trackers: int) -> None:
        self.samples: list[tuple[float, float]] = []  # (monotonic end, latency ms)
        self.failures: list[Exception] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(port, project_key, n), daemon=True)
            for n in range(trackers)
        ]

    def __enter__(self) -> _Uploads:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        if self.failures:
            raise RuntimeError(f"an uploading tracker failed: {self.failures[0]!r}")

    def _run(self, port: int, project_key: str, n: int) -> None:
        try:
            client = started_tracker(port, project_key, f"uploader-{n}")
            try:
                batch = batches.make_batch(1024, seed=20 + n)
                index = 1
                while not self._stop.is_set():
                    body = (
                        batches.encode_header(0, index * 1000, int(time.time() * 1000)) + batch.tail
                    )
                    status, payload, secs = client.request(
                        "POST", f"/v1/web/i?batch=0_{index}", body, "application/octet-stream"
                    )
                    if status != 200:
                        raise RuntimeError(f"upload: HTTP {status} {payload[:200]!r}")
                    with self._lock:
                        self.samples.append((time.monotonic(), secs * 1000))
                    index += 1
            finally:
                client.close()
        except (OSError, RuntimeError, ValueError) as error:  # raised in __exit__, not lost
            self.failures.append(error)

    def window(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [ms for at, ms in self.samples if start <= at < end]


def run(s: EraseSettings) -> EraseResult:
    from benchlib.queries import QueryClient

    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "erase.db"
        keys = common.create_keys(db)
        ts = int(time.time() * 1000) - 86_400_000
        rebuild.append_records(db, _records(keys.project_id, s, ts), chunk=2000)
        rebuild.run_rebuild(db)
        log(f"erase: {s.victim_sessions:,} sessions of user-7 among {s.other_sessions:,} others")
        extra = ("--lifecycle-interval-s", "0.1")
        with common.replayd_server(db, extra=extra) as (_child, port):
            api = QueryClient(port, [("Authorization", keys.api_key)])
            try:
                with _Uploads(port, keys.project_key, s.trackers) as uploads:
                    time.sleep(1.0)  # warm-up
                    t0 = time.monotonic()
                    time.sleep(s.baseline_s)
                    t1 = time.monotonic()
                    base = f"/api/v1/{keys.project_key}"
                    status, payload, _ = api.request("DELETE", f"{base}/users/user-7")
                    if status != 200:
                        raise RuntimeError(f"delete user: HTTP {status} {payload[:200]!r}")
                    job_id = json.loads(payload)["data"]["jobId"]
                    job = _completed(api, f"{base}/jobs/{job_id}")
                    t2 = time.monotonic()
                before, during = uploads.window(t0, t1), uploads.window(t1, t2)
            finally:
                api.close()
    result = EraseResult(
        victim_sessions=s.victim_sessions,
        other_sessions=s.other_sessions,
        job_s=t2 - t1,
        sessions_erased=job["sessionsErased"],
        records_erased=job["recordsErased"],
        before_req_s=len(before) / (t1 - t0),
        during_req_s=len(during) / (t2 - t1) if t2 > t1 else 0.0,
        during_p99_ms=percentile(during, 99),
        during_max_ms=max(during, default=0.0),
        before_max_ms=max(before, default=0.0),
    )
    log(
        f"erase: job {result.job_s:.2f} s ({result.sessions_erased:,} sessions,"
        f" {result.records_erased:,} records); ingest {result.during_req_s:.0f} req/s during vs"
        f" {result.before_req_s:.0f} before, max {result.during_max_ms:.0f} ms"
    )
    return result


def _completed(api, path: str) -> dict:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status, payload, _ = api.request("GET", path)
        if status != 200:
            raise RuntimeError(f"job: HTTP {status} {payload[:200]!r}")
        job = json.loads(payload)["data"]
        if job["status"] == "completed":
            return job
        if job["status"] not in ("scheduled", "running"):
            raise RuntimeError(f"the job ended {job['status']}: {job['errors']}")
        time.sleep(0.05)
    raise RuntimeError("the delete-user job did not complete within 600 s")
