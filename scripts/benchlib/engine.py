"""Engine benchmark: live decode+project throughput, projection lag at peak ingest, decode ceiling.

The live figures come from watching a real ``replayd serve`` while the ingest benchmark loads it:
a thread samples the log head and the lowest projection checkpoint (read-only connections, WAL
lets them read while the server writes) every 100 ms of the timed window, then waits (bounded)
for the projections to reach the head. Records are batches of a known message count, so
checkpoint progress converts to tracker messages per second.

The ceiling is the pure decode loop the session actor runs (``iter_messages`` with the actor's
``wanted`` types) over the same batch bodies, in this process, on one core.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import attrs
from benchlib import batches


@attrs.define
class EngineWatch:
    """What the sampler saw during one ingest run of replayd."""

    msgs_per_record: float
    samples: list[tuple[float, int, int]] = attrs.field(factory=list)  # (t, head, checkpoint)
    drained_after_s: float | None = None  # seconds after the window until checkpoint == head
    drain_cpu_s: float = 0.0  # CPU seconds the server tree used while draining
    final_head: int = 0
    final_checkpoint: int = 0
    wired: bool = True  # False when no projection checkpoint exists (engine not running)
    peak_rss: int = 0  # the server tree's largest RSS sampled during the window

    @property
    def max_lag_records(self) -> int:
        return max((h - c for _, h, c in self.samples), default=0)

    @property
    def projected_msgs_per_s(self) -> float:
        """Tracker messages the projections absorbed per second during the window."""
        if len(self.samples) < 2:
            return 0.0
        (t0, _, c0), (t1, _, c1) = self.samples[0], self.samples[-1]
        return (c1 - c0) * self.msgs_per_record / (t1 - t0) if t1 > t0 else 0.0

    @property
    def ingested_msgs_per_s(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, h0, _), (t1, h1, _) = self.samples[0], self.samples[-1]
        return (h1 - h0) * self.msgs_per_record / (t1 - t0) if t1 > t0 else 0.0

    @property
    def drain_msgs(self) -> float:
        """Messages of the backlog left at the window end (worked off by the engine alone)."""
        if not self.samples:
            return 0.0
        return (self.final_checkpoint - self.samples[-1][2]) * self.msgs_per_record

    @property
    def drain_msgs_per_s(self) -> float:
        """Rate at which that backlog was worked off (no ingest load any more)."""
        return self.drain_msgs / self.drained_after_s if self.drained_after_s else 0.0

    @property
    def drain_msgs_per_core_s(self) -> float:
        """The same per CPU-second of the server (the engine may use SQLite threads too)."""
        return self.drain_msgs / self.drain_cpu_s if self.drain_cpu_s > 0 else 0.0


class ProgressProbe:
    """Reads the log head and the lowest projection checkpoint of a database."""

    def __init__(self, db: Path):
        from api.config import default_projections_path
        from storage.log import LogReader
        from storage.sqlite import connect

        self._log = LogReader(db)
        # The checkpoints live in the projections' own file, derived from the log's as serve does.
        self._conn = connect(default_projections_path(db), create=False, query_only=True)

    def sample(self) -> tuple[int, int | None]:
        """``(head, lowest checkpoint)``; ``None`` checkpoint before any projection wrote one."""
        from projections.base import read_checkpoints

        head = self._log.head()
        try:
            checkpoints = read_checkpoints(self._conn)
        except sqlite3.OperationalError:  # table not created yet
            return head, None
        return head, (min(checkpoints.values()) if checkpoints else None)

    def close(self) -> None:
        self._log.close()
        self._conn.close()


def watch(
    db: Path,
    msgs_per_record: float,
    w_start: float,
    w_end: float,
    drain_timeout: float,
    server_pid: int,
) -> tuple[threading.Thread, EngineWatch]:
    """Start a thread that samples progress during [w_start, w_end] then waits for the drain."""
    from benchlib.common import tree_cpu, tree_rss

    result = EngineWatch(msgs_per_record=msgs_per_record)

    def run() -> None:
        probe = ProgressProbe(db)
        try:
            while time.monotonic() < w_end:
                head, ckpt = probe.sample()
                result.samples.append((time.monotonic(), head, ckpt or 0))
                result.peak_rss = max(result.peak_rss, tree_rss(server_pid))
                time.sleep(0.1)
            head, ckpt = probe.sample()
            t_end, cpu_end = time.monotonic(), tree_cpu(server_pid)
            result.samples.append((t_end, head, ckpt or 0))
            if ckpt is None:
                result.wired = False
                return
            deadline = w_end + drain_timeout
            while True:
                h, c = probe.sample()
                result.final_head, result.final_checkpoint = h, c or 0
                if c is not None and c >= h:
                    result.drained_after_s = time.monotonic() - t_end
                    result.drain_cpu_s = tree_cpu(server_pid) - cpu_end
                    return
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        finally:
            probe.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@attrs.frozen
class DecodeCeiling:
    msgs_per_s: float  # the actor's decode loop (wanted types only)
    full_msgs_per_s: float  # decoding every message
    wanted_label: str
    mobile_msgs_per_s: float | None = None  # the mobile codec's full decode (None: no codec)


def decode_ceiling(bodies: list[bytes], seconds: float = 2.0) -> DecodeCeiling:
    """Messages/s of the pure decode loop over ``bodies`` (whole batches), on one core."""
    from engine.codec import web

    wanted: frozenset[int] | None
    try:
        from engine.session_state import BASE_WANTED

        wanted, label = BASE_WANTED, "actor's wanted types"
    except ImportError:  # engine not there yet: decode everything
        wanted, label = None, "all types"
    # every message of a batch counts (skipped ones too), as in the engine's figures
    total_msgs = sum(1 for body in bodies for _ in web.iter_frames(body))

    def loop(want: frozenset[int] | None) -> float:
        n = 0
        t0 = time.perf_counter()
        while True:
            for body in bodies:
                for _ in web.iter_messages(body, want):
                    pass
            n += total_msgs
            dt = time.perf_counter() - t0
            if dt >= seconds:
                return n / dt

    return DecodeCeiling(
        msgs_per_s=loop(wanted),
        full_msgs_per_s=loop(None),
        wanted_label=label,
        mobile_msgs_per_s=mobile_decode_rate(seconds),
    )


def mobile_decode_rate(seconds: float = 2.0) -> float | None:
    """Messages/s of the mobile codec's full decode (what the mobile actor runs) over synthetic
    iOS and Android batches, on one core; None before the mobile codec existed."""
    try:
        from engine.codec import mobile_messages as mobile
    except ImportError:
        return None
    bodies = [batches.mobile_batch("ios", 100_000), batches.mobile_batch("android", 100_000)]
    total_msgs = sum(len(mobile.decode_batch(body).messages) for body in bodies)
    platforms = ("ios", "android")
    n = 0
    t0 = time.perf_counter()
    while True:
        for body, platform in zip(bodies, platforms, strict=True):
            mobile.decode_batch(body, platform=platform)
        n += total_msgs
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def loader_bodies(body_size: int, seed: int = 200, n: int = 16) -> list[bytes]:
    """Whole batches exactly like the load generator's (same seeds as its trackers)."""
    return [
        batches.encode_header(0, 0, 1_795_418_019_299)
        + batches.make_batch(body_size, seed=seed * 10_000 + i).tail
        for i in range(n)
    ]
