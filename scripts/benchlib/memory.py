"""Memory benchmark: RSS of ``replayd serve`` idle, and with 10k concurrent live session actors.

RSS (psutil) of the whole server process tree, so a ``--workers`` server is measured with all its
processes. Idle = a fresh database, after start-up settled. Live = after ``live`` sessions were
started over HTTP (start + a first batch each, so each has an actor and a live-session entry) and
the engine caught up with the log. When the query benchmark ran, its server (which holds the
stored sessions too) already had those live sessions and its RSS is taken from there; otherwise a
fresh server gets them here. The ceiling server's idle RSS is the framework's floor.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import attrs
from benchlib import common
from benchlib.common import log
from benchlib.loadgen import LoadSpec


@attrs.frozen
class MemoryResult:
    idle_rss: int
    live_rss: int
    live_wanted: int
    live_started: int
    live_listed: int  # what the Assist list reported (-1 when unavailable)
    caught_up: bool
    floor_rss: int  # the ceiling server, idle
    where: str = "fresh server"


def _settle(pid: int, seconds: float = 2.0) -> int:
    time.sleep(seconds)
    return common.tree_rss(pid)


def run(
    live: int = 10_000,
    workers: int | None = None,
    procs: int = 1,
    trackers: int = 32,
    from_queries=None,
) -> MemoryResult:
    """Measure; ``from_queries`` (a ``QueryResult``) supplies the live figure when available."""
    from benchlib.queries import QueryClient, live_total, wait_caught_up

    with common.ceiling_server() as (child, _port):
        floor = _settle(child.pid)
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "memory.db"
        keys = common.create_keys(db)
        with common.replayd_server(db, workers=workers) as (child, port):
            idle = _settle(child.pid, 3.0)
            log(f"memory: idle RSS {idle / 1e6:.0f} MB")
            if from_queries is not None:
                q = from_queries
                return MemoryResult(
                    idle_rss=idle,
                    live_rss=q.live_rss,
                    live_wanted=q.live_wanted,
                    live_started=q.live_wanted,
                    live_listed=q.live,
                    caught_up=q.caught_up,
                    floor_rss=floor,
                    where=f"the query server, {q.stored:,} stored sessions",
                )
            log(f"memory: starting {live:,} live sessions")
            spec = LoadSpec(
                port=port,
                project_key=keys.project_key,
                trackers=trackers,
                mode="sessions",
                sessions=live,
                duration_s=600,
                seed=41,
            )
            run = common.run_sessions(spec, procs)
            caught_up = wait_caught_up(db, timeout=60)
            client = QueryClient(port, [("Authorization", keys.api_key)])
            try:
                listed = live_total(client, keys.project_key)
            finally:
                client.close()
            live_rss = _settle(child.pid, 1.0)
            log(
                f"memory: {len(run.sessions):,} sessions started in {run.window_s:.0f} s, "
                f"{listed} listed live; RSS {live_rss / 1e6:.0f} MB"
            )
    return MemoryResult(
        idle_rss=idle,
        live_rss=live_rss,
        live_wanted=live,
        live_started=len(run.sessions),
        live_listed=listed,
        caught_up=caught_up,
        floor_rss=floor,
    )
