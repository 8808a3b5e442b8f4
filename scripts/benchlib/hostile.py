"""Hostile-input benchmark: an unrelated tracker's latency while starts with huge agents arrive.

Issue 8's attack: bursts of eight concurrent ``/v1/web/start`` requests, each with a distinct 60 KB
User-Agent (over HTTP/2 with prior knowledge, which allows 64 KB of headers, where Hypercorn's
HTTP/1.1 parser takes more than 16 KB only if it arrives in one read; HPACK literals without Huffman
coding, so that sending costs the attacker nothing), a burst every 0.5 s, while one keep-alive
client uploads 1 KB batches of a normal session one at a time. Its p99 is compared with two windows
on the same server: no other traffic, and the same bursts of starts with an ordinary browser agent
(target: the attack stays within 2x of the ordinary bursts). Whatever stalls the event loop (parsing
the agent on it) shows up in the unrelated request's latency.
"""

from __future__ import annotations

import json
import random
import socket
import string
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import h2.config
import h2.connection
import h2.events
import hpack
from benchlib import batches, common
from benchlib.common import log, percentile
from benchlib.loadgen import start_body
from benchlib.queries import QueryClient

CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@attrs.frozen
class HostileSettings:
    attackers: int = 8  # concurrent starts in one burst
    burst_interval_s: float = 0.5  # a burst of starts every ... (the eight of the issue, repeated)
    agent_bytes: int = 60_000  # size of each hostile User-Agent
    duration_s: float = 5.0  # per window (no other traffic, ordinary bursts, hostile bursts)
    batch_bytes: int = 1024  # the unrelated tracker's batches


@attrs.frozen
class HostileResult:
    idle_ms: list[float]  # unrelated uploads, no other traffic
    ordinary_ms: list[float]  # ... while bursts of starts with an ordinary agent run
    attacked_ms: list[float]  # ... while bursts of starts with fresh 60 KB agents run
    hostile_starts: int  # hostile starts answered during the attack window
    hostile_statuses: dict[str, int]  # HTTP status (or client error) -> count

    @property
    def idle_p99(self) -> float:
        return percentile(self.idle_ms, 99)

    @property
    def ordinary_p99(self) -> float:
        return percentile(self.ordinary_ms, 99)

    @property
    def attacked_p99(self) -> float:
        return percentile(self.attacked_ms, 99)


def hostile_agent(rng: random.Random, size: int) -> str:
    """A browser-looking User-Agent padded with random tokens to ``size`` characters."""
    pad = "".join(rng.choices(string.ascii_letters + string.digits + " ;/.", k=size))
    return (CHROME_UA + " " + pad)[:size]


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding: pure-Python Huffman takes 0.3 s for 60 KB, literals ~0."""

    def encode(self, headers, huffman: bool = True) -> bytes:
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


def started_tracker(port: int, project_key: str, user_id: str) -> QueryClient:
    """A keep-alive client that started a normal session and is set to upload its batches."""
    client = QueryClient(port, [("User-Agent", CHROME_UA)])
    try:
        status, payload, _ = client.request(
            "POST", "/v1/web/start", start_body(project_key, user_id), "application/json"
        )
        if status != 200:
            raise RuntimeError(f"start of session {user_id}: HTTP {status} {payload[:200]!r}")
    except BaseException:
        client.close()
        raise
    token = json.loads(payload)["token"]
    client.headers = [("Authorization", f"Bearer {token}"), ("DataType", "player")]
    return client


def _unrelated(port: int, project_key: str, s: HostileSettings, seconds: float) -> list[float]:
    """Upload small batches of one normal session for ``seconds``; latencies in ms."""
    client = started_tracker(port, project_key, "steady")
    try:
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
    port: int,
    project_key: str,
    s: HostileSettings,
    stop: threading.Event,
    agent: Callable[[random.Random], str],
) -> dict[str, int]:
    """Bursts of ``s.attackers`` concurrent starts (agents from ``agent``) every
    ``s.burst_interval_s`` until ``stop``; how many answered each status."""
    rng = random.Random(1)
    statuses: dict[str, int] = {}
    bodies = [start_body(project_key, f"attacker-{i}") for i in range(s.attackers)]
    with ThreadPoolExecutor(s.attackers) as pool:
        while not stop.is_set():
            agents = [agent(rng) for _ in bodies]  # made before the burst, so that it is tight
            tick = time.monotonic()
            for future in [
                pool.submit(_status, port, b, a) for b, a in zip(bodies, agents, strict=True)
            ]:
                code = future.result()
                statuses[code] = statuses.get(code, 0) + 1
            stop.wait(max(0.0, tick + s.burst_interval_s - time.monotonic()))
    return statuses


def _status(port: int, body: bytes, agent: str) -> str:
    try:
        return str(h2_start(port, body, agent))
    except OSError as error:
        return type(error).__name__


def _under(
    port: int, project_key: str, s: HostileSettings, agent: Callable[[random.Random], str]
) -> tuple[list[float], dict[str, int]]:
    """The unrelated tracker's latencies while bursts of starts with ``agent`` run."""
    stop = threading.Event()
    statuses: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: statuses.update(_attack(port, project_key, s, stop, agent)), daemon=True
    )
    thread.start()
    try:
        times = _unrelated(port, project_key, s, s.duration_s)
    finally:
        stop.set()
        thread.join(120)
    return times, statuses


def run(s: HostileSettings) -> HostileResult:
    """Three windows on one server: no other traffic, bursts of ordinary starts, bursts of
    starts with fresh 60 KB agents."""
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "hostile.db"
        keys = common.create_keys(db)
        with common.replayd_server(db) as (_child, port):
            _unrelated(port, keys.project_key, s, 1.0)  # warm-up: connections, caches, pages
            idle = _unrelated(port, keys.project_key, s, s.duration_s)
            log(f"hostile: no other traffic p99 {percentile(idle, 99):.1f} ms ({len(idle)} req)")
            ordinary, ordinary_statuses = _under(port, keys.project_key, s, lambda _: CHROME_UA)
            log(
                f"hostile: ordinary bursts p99 {percentile(ordinary, 99):.1f} ms "
                f"({len(ordinary)} req; starts {ordinary_statuses})"
            )
            attacked, statuses = _under(
                port, keys.project_key, s, lambda rng: hostile_agent(rng, s.agent_bytes)
            )
    result = HostileResult(
        idle_ms=idle,
        ordinary_ms=ordinary,
        attacked_ms=attacked,
        hostile_starts=sum(statuses.values()),
        hostile_statuses=statuses,
    )
    log(
        f"hostile: under attack p99 {result.attacked_p99:.1f} ms ({len(attacked)} req); "
        f"hostile starts {statuses}"
    )
    return result
