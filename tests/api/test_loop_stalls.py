"""Nothing slow on the trio loop (issue 9, item 6), through a real server in the test's trio run.

The server runs in the test's own trio run, so a heartbeat task here shares its loop: the longest
gap between its wake-ups is the longest time anything held the loop. Each such test compares that
gap with a baseline measured in the same test (no absolute thresholds). Catalog lookups on the
trio thread are tested here too (the catalog's own tests are in tests/storage/test_catalog.py).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from api import public_v1
from api.config import ServerConfig
from api.surfaces import build_host
from projections.base import migrate_checkpoints
from projections.pipeline import ALL_PROJECTIONS
from runtime import engine_service
from runtime.assembly import HostParts, ProcessRole
from runtime.context import ServiceContext
from storage.catalog import Catalog
from storage.log import EventLog
from storage.records import LogRecord, RecordKind
from storage.sqlite import connect
from tests.api.conftest import Harness, make_batch
from tests.api.test_public_v1 import api_key, get, projected
from tests.projections.factories import SessionScript
from tests.projections.test_live_refresh import Table


@pytest.fixture(autouse=True)
def frozen_heap() -> Iterator[None]:
    """Keep the test runner's own heap out of the cyclic GC while measuring.

    A full collection walks every object of the process while holding the GIL, whatever thread
    triggers it: with pytest, hypothesis and the server in one process that is ~100 ms, a gap
    that says nothing about the code under test.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class Heartbeat:
    """Wakes every millisecond and remembers the longest gap between two wake-ups."""

    def __init__(self) -> None:
        self.max_gap = 0.0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last = trio.current_time()
        while True:
            await trio.sleep(0.001)
            now = trio.current_time()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    async def gap_during(self, work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
        """(longest gap, duration) while ``await work()`` runs."""
        await trio.sleep(0.005)  # let the heartbeat settle after whatever came before
        self.max_gap = 0.0
        t0 = trio.current_time()
        await work()
        duration = trio.current_time() - t0
        await trio.sleep(0.005)  # a gap that ends as the work does is seen at the next wake-up
        return self.max_gap, duration


BIG_BATCHES = 10
CLICKS = 1_000


async def _big_session(harness: Harness) -> str:
    """A session of BIG_BATCHES * CLICKS clicks (plus a LOCATION row per batch)."""
    start = await harness.started()
    for number in range(BIG_BATCHES):
        body = make_batch(0, 1 + number * 2 * CLICKS, CLICKS)
        response = await harness.upload(start["token"], body, batch=f"0_{number + 1}_x_kyes")
        assert response.status_code == 200, response.text
    await projected(harness)
    return start["sessionID"]


async def test_a_big_sessions_events_are_read_off_the_loop(harness: Harness) -> None:
    key = await api_key(harness)
    sid = await _big_session(harness)
    path = f"/api/v1/{harness.project.project_key}/sessions/{sid}/events"
    heartbeat = Heartbeat()
    answers = []

    async def read() -> None:
        response = await get(harness, key, path)
        assert response.status_code == 200
        answers.append(response.content)

    async with trio.open_nursery() as nursery:
        await nursery.start(heartbeat.run)
        # Inline (the old way), held against the worker-thread path: a read that holds the loop
        # shows a gap close to its whole duration; off the loop the gap is a fraction of it.
        ratios = []
        for _ in range(3):
            gap, duration = await heartbeat.gap_during(read)
            ratios.append(gap / duration)
        nursery.cancel_scope.cancel()
    assert min(ratios) < 1 / 3, ratios

    # The worker-thread answer is the one the inline path gives (same rows, same JSON).
    assert harness.server.app is not None  # a single-process server serves HTTP
    context = harness.server.app.extensions[public_v1.EXTENSION_KEY]
    context.inline_events.limit = 10**9
    inline = await get(harness, key, path)
    assert inline.content == answers[0]
    data = inline.json()["data"]
    assert sum(1 for e in data if e["type"] == "CLICK") == BIG_BATCHES * CLICKS
    order = [(e["timestamp"], e["messageId"]) for e in data]
    assert order == sorted(order)


LIVE = 3_000


async def test_an_ingest_process_follows_the_live_sessions_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ingest process of --workers: the engine process wrote the sessions projection (here,
    # written directly), this one keeps its copy of the live sessions for Assist.
    config = ServerConfig(db_path=str(tmp_path / "replayd.db"), port=0)
    catalog = await trio.to_thread.run_sync(Catalog.open, config.db_path)
    project = await trio.to_thread.run_sync(catalog.create_project, "shop")
    conn = connect(config.projections_db_path)
    migrate_checkpoints(conn)
    for projection in ALL_PROJECTIONS:
        projection.migrate(conn)
    table = Table(conn)
    scripts = [
        SessionScript(session_id=1_000 + i, project_id=project.project_id) for i in range(LIVE)
    ]
    table.record(*[[s.started()] for s in scripts])
    log = EventLog(config.db_path)
    host = build_host(HostParts(config=config, catalog=catalog, log=log, clock=None))
    app = host.app
    ctx = ServiceContext(
        config=config, log=log, catalog=catalog, host=host, role=ProcessRole.INGEST
    )
    monkeypatch.setattr(engine_service, "LIVE_REFRESH_INTERVAL_S", 0.01)
    heartbeat = Heartbeat()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(heartbeat.run)
            # The first load reads and indexes every live session: held against its own duration
            # (on the loop, the gap is most of it).
            gap, duration = await heartbeat.gap_during(
                lambda: nursery.start(engine_service.projection_reader_service, ctx)
            )
            live = app.extensions[public_v1.LIVE_SESSIONS_KEY]
            assert len(live) == LIVE
            assert gap < duration / 3, (gap, duration)

            # Later changes reach the copy (applied in place: few of them).
            table.record([scripts[0].user_id("u-7")], [scripts[1].ended()])
            with trio.fail_after(10):
                while live.checkpoint < table.position:
                    await trio.sleep(0.01)
            assert app.extensions[public_v1.LIVE_SESSIONS_KEY] is live
            assert live.get(project.project_id, 1_000).user_id == "u-7"
            assert live.get(project.project_id, 1_001) is None and len(live) == LIVE - 1
            nursery.cancel_scope.cancel()
    finally:
        conn.close()
        catalog.close()


async def test_the_tail_looks_up_unknown_projects_before_the_engine_sees_them(
    tmp_path: Path,
) -> None:
    # A project created by another process after start-up (the CLI): its records reach the
    # engine only once the catalog's memory knows it, so the live sessions resolve its key on
    # the loop without SQL.
    server = await trio.to_thread.run_sync(Catalog.open, tmp_path / "replayd.db")
    cli = await trio.to_thread.run_sync(Catalog.open, tmp_path / "replayd.db")
    try:
        theirs = await trio.to_thread.run_sync(cli.create_project, "theirs")
        records = [
            LogRecord(position=1, session_id=5, project_id=theirs.project_id,
                      kind=RecordKind.WEB_START, received_at_ms=0, payload=b""),
            LogRecord(position=2, session_id=0, project_id=999, kind=RecordKind.WEB_START,
                      received_at_ms=0, payload=b""),
        ]  # fmt: skip

        async def tail() -> AsyncIterator[list[LogRecord]]:
            assert server.cached_project(theirs.project_id) == (False, None)
            yield records

        resolve = engine_service._project_key_resolver(server, cached_only=True)
        assert resolve(theirs.project_id) == ""  # memory alone does not know it yet
        seen = [batch async for batch in engine_service._known_projects(server, tail())]
        assert seen == [records]
        assert server.cached_project(theirs.project_id) == (True, theirs)
        assert server.cached_project(999) == (True, None)  # unknown, remembered as such
        assert resolve(theirs.project_id) == theirs.project_key
    finally:
        server.close()
        cli.close()
