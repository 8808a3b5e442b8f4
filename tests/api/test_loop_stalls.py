"""Nothing slow on the trio loop (issue 9, item 6), through a real server in the test's trio run.

The server runs in the test's own trio run, so a heartbeat task here shares its loop: the longest
gap between its wake-ups is the longest time anything held the loop. Each test compares that gap
with a baseline measured in the same test (no absolute thresholds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from api import public_v1
from tests.api.conftest import Harness, make_batch
from tests.api.test_public_v1 import api_key, get, projected


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

    async def gap_during(self, work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
        """(longest gap, duration) while ``await work()`` runs."""
        await trio.sleep(0.005)  # let the heartbeat settle after whatever came before
        self.max_gap = 0.0
        t0 = trio.current_time()
        await work()
        duration = trio.current_time() - t0
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
    context = harness.server.app.extensions[public_v1.EXTENSION_KEY]
    context.inline_events.limit = 10**9
    inline = await get(harness, key, path)
    assert inline.content == answers[0]
    data = inline.json()["data"]
    assert sum(1 for e in data if e["type"] == "CLICK") == BIG_BATCHES * CLICKS
    order = [(e["timestamp"], e["messageId"]) for e in data]
    assert order == sorted(order)
