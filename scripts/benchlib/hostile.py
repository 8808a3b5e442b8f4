"""Hostile-input benchmark: an unrelated tracker's latency while starts with huge agents arrive.

Issue 8's attack: eight concurrent ``/v1/web/start`` requests, each with a distinct 60 KB
User-Agent (sent over HTTP/2 with prior knowledge, whose header limit is 64 KB; HTTP/1.1 stops
at 16 KB; HPACK without Huffman coding, so that sending costs the attacker nothing), repeated for
the whole window, while one keep-alive client uploads small batches for a
normal session one at a time. The figure is that client's p99 under attack against its p99 in a
window without attack on the same server (target: within 2x). Whatever makes the event loop
stall (parsing the agent on it) shows up in the unrelated request's latency.
"""

from __future__ import annotations

import json
import random
import socket
import string
import tempfile
import threading
import time
from pathlib import Path

import attrs
import h2.config
import h2.connection
import h2.events
import hpack
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


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding: pure-Python Huffman takes 0.3 s for 60 KB, literals ~0."""

    def encode(self, headers, huffman: bool = True) -> bytes:  # type: ignore[override]
        return super().encode(headers, huffman=False)


class H2Start:
    """One ``POST /v1/web/start`` over HTTP/2 with prior knowledge, sans-IO (h2, the library
    Hypercorn itself uses): send ``data``, then ``feed`` what the server answers."""

    def __init__(self, authority: str, body: bytes, user_agent: str) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.encoder = _PlainEncoder()
        self.conn.initiate_connection()
        headers = [
            (":method", "POST"),
            (":path", "/v1/web/start"),
            (":scheme", "http"),
            (":authority", authority),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("user-agent", user_agent),
        ]
        self.conn.send_headers(1, headers)
        self.conn.send_data(1, body, end_stream=True)
        self.data = self.conn.data_to_send()
        self.status: int | None = None
        self.body = bytearray()
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the server; returns bytes to send back (settings acks and such)."""
        if not data:
            raise ConnectionError("server closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, 1)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.done = True
        return self.conn.data_to_send()


def h2_start(port: int, body: bytes, user_agent: str, timeout: float = 60.0) -> int:
    """Send one start over a fresh HTTP/2 connection (blocking); its status."""
    start = H2Start(f"127.0.0.1:{port}", body, user_agent)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(start.data)
        while not start.done:
            reply = start.feed(sock.recv(65536))
            if reply:
                sock.sendall(reply)
    if start.status is None:
        raise ConnectionError("stream ended without a response")
    return start.status


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
    rng = random.Random(seed)
    statuses: dict[str, int] = {}
    body = start_body(project_key, f"attacker-{seed}")
    while not stop.is_set():
        try:
            code = str(h2_start(port, body, hostile_agent(rng, s.agent_bytes)))
        except OSError as error:
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
