"""Hostile-input benchmark: an unrelated tracker's latency while starts with huge agents arrive.

Issue 8's attack: eight concurrent ``/v1/web/start`` requests, each with a distinct 60 KB
User-Agent (sent over HTTP/2 with prior knowledge, whose header limit is 64 KB; HTTP/1.1 stops
at 16 KB), repeated for the whole window, while one keep-alive client uploads small batches for a
normal session one at a time. The figure is that client's p99 under attack against its p99 in a
window without attack on the same server (target: within 2x). Whatever makes the event loop
stall (parsing the agent on it) shows up in the unrelated request's latency.
"""

from __future__ import annotations

import json
import random
import string
import tempfile
import threading
import time
from pathlib import Path

import attrs
from benchlib import batches, common
from benchlib.common import log, percentile
from benchlib.loadgen import start_body

CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@attrs.frozen
class HostileSettings:
    attackers: int = 8  # concurrent hostile starts
    agent_bytes: int = 60_000  # size of each hostile User-Agent
    duration_s: float = 5.0  # per window (baseline, then attack)
    batch_bytes: int = 1024  # the unrelated tracker's batches


@attrs.frozen
class HostileResult:
    baseline_ms: list[float]  # unrelated uploads, no attack
    attacked_ms: list[float]  # unrelated uploads while the attack runs
    hostile_starts: int  # hostile starts answered during the attack window
    hostile_statuses: dict[str, int]  # HTTP status (or client error) -> count

    @property
    def baseline_p99(self) -> float:
        return percentile(self.baseline_ms, 99)

    @property
    def attacked_p99(self) -> float:
        return percentile(self.attacked_ms, 99)


def hostile_agent(rng: random.Random, size: int) -> str:
    """A browser-looking User-Agent padded with random tokens to ``size`` characters."""
    pad = "".join(rng.choices(string.ascii_letters + string.digits + " ;/.", k=size))
    return (CHROME_UA + " " + pad)[:size]


def _unrelated(port: int, project_key: str, s: HostileSettings, seconds: float) -> list[float]:
    """Upload small batches of one normal session for ``seconds``; latencies in ms."""
    from benchlib.queries import QueryClient

    client = QueryClient(port, [("User-Agent", CHROME_UA)])
    try:
        status, payload, _ = client.request(
            "POST", "/v1/web/start", start_body(project_key, "steady"), "application/json"
        )
        if status != 200:
            raise RuntimeError(f"start of the unrelated session: HTTP {status} {payload[:200]!r}")
        token = json.loads(payload)["token"]
        client.headers = [("Authorization", f"Bearer {token}"), ("DataType", "player")]
        batch = batches.make_batch(s.batch_bytes, seed=7)
        body = batches.encode_header(0, 0, 1_795_418_019_299) + batch.tail
        times: list[float] = []
        deadline = time.monotonic() + seconds
        index = 1
        while time.monotonic() < deadline:
            status, payload, secs = client.request(
                "POST", f"/v1/web/i?batch=0_{index}", body, "application/octet-stream"
            )
            index += 1
            if status != 200:
                raise RuntimeError(f"unrelated upload: HTTP {status} {payload[:200]!r}")
            times.append(secs * 1000)
        return times
    finally:
        client.close()


def _attack(
    port: int, project_key: str, s: HostileSettings, stop: threading.Event, seed: int
) -> dict[str, int]:
    """One attacker: starts with fresh 60 KB agents back to back until ``stop``; statuses seen."""
    import httpx

    rng = random.Random(seed)
    statuses: dict[str, int] = {}
    body = start_body(project_key, f"attacker-{seed}")
    # http1=False: HTTP/2 with prior knowledge on plain TCP, as any client can speak to Hypercorn.
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", http1=False, http2=True, timeout=60.0
    ) as client:
        while not stop.is_set():
            headers = {
                "Content-Type": "application/json",
                "User-Agent": hostile_agent(rng, s.agent_bytes),
            }
            try:
                code = str(client.post("/v1/web/start", content=body, headers=headers).status_code)
            except httpx.HTTPError as error:
                code = type(error).__name__
            statuses[code] = statuses.get(code, 0) + 1
    return statuses


def run(s: HostileSettings) -> HostileResult:
    """Baseline window, then the same window with ``s.attackers`` hostile starters running."""
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "hostile.db"
        keys = common.create_keys(db)
        with common.replayd_server(db) as (_child, port):
            _unrelated(port, keys.project_key, s, 1.0)  # warm-up: connections, caches, pages
            baseline = _unrelated(port, keys.project_key, s, s.duration_s)
            log(f"hostile: baseline p99 {percentile(baseline, 99):.1f} ms ({len(baseline)} req)")
            stop = threading.Event()
            results: list[dict[str, int]] = []
            lock = threading.Lock()

            def attacker(seed: int) -> None:
                statuses = _attack(port, keys.project_key, s, stop, seed)
                with lock:
                    results.append(statuses)

            threads = [
                threading.Thread(target=attacker, args=(seed,), daemon=True)
                for seed in range(s.attackers)
            ]
            for thread in threads:
                thread.start()
            try:
                time.sleep(0.5)  # let every attacker connect and have a start in flight
                attacked = _unrelated(port, keys.project_key, s, s.duration_s)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(120)
    merged: dict[str, int] = {}
    for statuses in results:
        for code, count in statuses.items():
            merged[code] = merged.get(code, 0) + count
    result = HostileResult(
        baseline_ms=baseline,
        attacked_ms=attacked,
        hostile_starts=sum(merged.values()),
        hostile_statuses=merged,
    )
    log(
        f"hostile: under attack p99 {result.attacked_p99:.1f} ms ({len(attacked)} req); "
        f"hostile starts {merged}"
    )
    return result
