"""/healthz, /readyz, /metrics and /api/v1/dead-letters through a real server (one process).

The engine lag is made real: records appended to the log file by a second writer (another
``EventLog`` on the same file, as another process would) are in the log but not yet seen by the
server's engine, which follows its own writer's commits; the server's next commit makes the engine
catch up. A parked record is a truncated batch uploaded like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from api.config import ServerConfig
from api.health import engine_figures, log_writer_running, readiness_problems
from storage.log import EventLog
from storage.records import NewRecord, RecordKind
from tests.api.conftest import T0, Harness, ServerFactory, make_batch
from tests.api.test_public_v1 import api_key, get, projected, second_organization


@asynccontextmanager
async def second_writer(path: str) -> AsyncIterator[EventLog]:
    """Another writer of the server's log file (what an ingest process of --workers is)."""
    log = EventLog(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        yield log
        nursery.cancel_scope.cancel()


def tick(at_ms: int) -> NewRecord:
    return NewRecord(
        session_id=0, project_id=0, kind=RecordKind.CLOCK_TICK, received_at_ms=at_ms, payload=b""
    )


async def readyz_until(
    client: Harness | httpx.AsyncClient,
    status: int,
    until: Callable[[dict[str, Any]], bool] = lambda body: True,
) -> dict[str, Any]:
    """Poll /readyz until it answers ``status`` with a body ``until`` accepts (figures are reused
    for half a second; the ingest processes of --workers refresh live sessions every second)."""
    http = client.client if isinstance(client, Harness) else client
    with trio.fail_after(20):
        while True:
            response = await http.get("/readyz")
            if response.status_code == status and until(response.json()):
                return response.json()
            await trio.sleep(0.05)


async def record_batches(harness: Harness, batches: list[bytes]) -> dict[str, Any]:
    """Start a session and upload ``batches`` (batch ``0_n``); returns the start answer once the
    engine applied them."""
    start = await harness.started()
    for number, body in enumerate(batches, start=1):
        response = await harness.upload(start["token"], body, batch=f"0_{number}_{len(body)}_k")
        assert response.status_code == 200, response.text
    await projected(harness)
    return start


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- /healthz --------------------------------------------------------------------------------------


async def test_healthz_answers_while_the_process_is_up(harness: Harness) -> None:
    response = await harness.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert (await harness.client.post("/healthz")).status_code == 405


# -- /readyz ---------------------------------------------------------------------------------------


async def test_readyz_is_ready_with_the_figures(harness: Harness) -> None:
    await record_batches(harness, [make_batch(0, 1, 2)])
    body = await readyz_until(harness, 200)
    head = harness.server.log.head()
    assert body == {
        "status": "ready",
        "reasons": [],
        "head": head,
        "checkpoint": head,
        "lagRecords": 0,
        "lagSeconds": 0.0,
        "deadLetters": 0,
        "liveSessions": 1,
    }


async def test_readyz_is_503_while_the_engine_lags_then_200_once_it_caught_up(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(ready_max_lag_records=1)
    await record_batches(harness, [make_batch(0, 1, 1)])
    before = await readyz_until(harness, 200)
    async with second_writer(harness.server.log.path) as other:
        # Two records 2 minutes of record time ahead: 2 > 1 record, 120 s > 60 s (the default).
        await other.append_many([tick(T0 + 60_000), tick(T0 + 120_000)])
    body = await readyz_until(harness, 503)
    assert body["status"] == "not ready"
    assert body["head"] == before["head"] + 2 and body["checkpoint"] == before["head"]
    assert (body["lagRecords"], body["lagSeconds"]) == (2, 120.0)
    assert body["reasons"] == [
        "the engine is 2 records behind the log (more than 1)",
        "the engine is 120 s of record time behind the log (more than 60 s)",
    ]
    # The server's own next commit wakes its engine, which then applies every record.
    harness.clock.now = T0 + 121_000
    await harness.started()
    body = await readyz_until(harness, 200)
    assert body["lagRecords"] == 0 and body["checkpoint"] == body["head"] == before["head"] + 3


async def test_a_lag_threshold_of_zero_fails_on_any_pending_record(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(ready_max_lag_records=0, ready_max_lag_seconds=0)
    await readyz_until(harness, 200)  # an empty log: nothing is pending
    async with second_writer(harness.server.log.path) as other:
        await other.append(tick(T0))
    body = await readyz_until(harness, 503)
    # Same record time as the checkpoint (none applied yet: the first record): 0 s is not > 0 s.
    assert body["reasons"] == ["the engine is 1 records behind the log (more than 0)"]


async def test_a_stopped_log_writer_is_not_ready(tmp_path: Any) -> None:
    log = EventLog(tmp_path / "log.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        assert await log_writer_running(log)
        nursery.cancel_scope.cancel()
    assert not await log_writer_running(log)
    figures = engine_figures(
        head=3, head_time_ms=T0, checkpoint=3, checkpoint_time_ms=T0, dead_letters=0
    )
    assert readiness_problems(
        ServerConfig(),
        writer_running=False,
        log_write_error="disk I/O error",
        projector_write_error="database or disk is full",
        figures=figures,
    ) == [
        "the log writer is not running",
        "the log cannot write: disk I/O error",
        "the projector cannot write: database or disk is full",
    ]
    assert readiness_problems(
        ServerConfig(),
        writer_running=True,
        log_write_error=None,
        projector_write_error=None,
        figures=None,
        figures_error="unable to open database file",
    ) == ["the engine's progress cannot be read: unable to open database file"]


# -- /metrics --------------------------------------------------------------------------------------


async def test_metrics_in_the_prometheus_format(server_factory: ServerFactory) -> None:
    harness = await server_factory()
    other = await server_factory("other.db")  # its own registry: none of these requests
    good, truncated = make_batch(0, 1, 3), make_batch(0, 2, 3)[:-3]
    start = await record_batches(harness, [good, truncated])
    retry = await harness.upload(start["token"], good, batch=f"0_1_{len(good)}_k")
    assert retry.status_code == 200
    assert (await harness.client.get("/no/such/route")).status_code == 404
    await readyz_until(harness, 200)  # the figures read after the engine applied everything
    response = await harness.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    found = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    requests = "replayd_http_requests_total"
    assert value(requests, route="/v1/web/start", method="POST", status="200") == 1
    assert value(requests, route="/v1/web/i", method="POST", status="200") == 3
    assert value(requests, route="unmatched", method="GET", status="404") == 1
    assert value(requests, route="/readyz", method="GET", status="200") >= 1
    assert value("replayd_http_request_duration_seconds_count", route="/v1/web/i") == 3
    head = harness.server.log.head()
    assert head == 3  # start, two batches (the retry is stored once)
    assert value("replayd_log_head_position") == head
    assert value("replayd_engine_checkpoint_position") == head
    assert value("replayd_engine_lag_records") == 0
    assert value("replayd_engine_lag_seconds") == 0
    assert value("replayd_log_records_committed_total") == head
    assert value("replayd_log_duplicates_total") == 1
    assert value("replayd_log_commits_total") >= 1
    assert value("replayd_log_failed_appends_total") == 0
    assert value("replayd_log_busy_appends_total") == 0
    assert value("replayd_log_write_failing") == 0
    assert value("replayd_log_queue_depth") == 0
    assert value("replayd_log_waiting_appenders") == 0
    assert value("replayd_log_queue_capacity") == ServerConfig().log_queue_size
    assert value("replayd_live_sessions") == 1
    assert value("replayd_engine_records_processed_total") == head
    assert value("replayd_engine_records_parked_total") == 1
    assert value("replayd_dead_letters") == 1
    assert value("replayd_projector_write_failing") == 0
    assert value("process_resident_memory_bytes") > 0

    theirs = samples((await other.client.get("/metrics")).text)
    assert not any(name == requests and value > 0 for (name, _), value in theirs.items())
    assert theirs[("replayd_log_head_position", ())] == 0


async def test_hostile_methods_do_not_grow_the_labels(harness: Harness) -> None:
    for method in ("BREW", "WHEN", "X-1"):
        await harness.client.request(method, "/healthz")
    found = samples((await harness.client.get("/metrics")).text)
    methods = {dict(labels)["method"] for (name, labels) in found if "http_requests" in name}
    assert methods == {"other"}  # this scrape itself is counted once it is answered
    other = (("method", "other"), ("route", "unmatched"), ("status", "405"))  # no rule matched
    assert found[("replayd_http_requests_total", other)] == 3


# -- /api/v1/dead-letters --------------------------------------------------------------------------


async def test_dead_letters_of_the_organization_newest_first(harness: Harness) -> None:
    key = await api_key(harness)
    assert (await get(harness, None, "/api/v1/dead-letters")).status_code == 401
    empty = await get(harness, key, "/api/v1/dead-letters")
    assert empty.json() == {"data": {"total": 0, "deadLetters": []}}
    broken = [make_batch(0, n, 2)[: -1 - n] for n in range(1, 4)]
    session_id = (await record_batches(harness, [make_batch(0, 9, 1), *broken]))["sessionID"]
    response = await get(harness, key, "/api/v1/dead-letters", limit=2)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["total"] == 3
    letters = data["deadLetters"]
    assert [letter["position"] for letter in letters] == [5, 4]  # newest first
    assert {letter["sessionId"] for letter in letters} == {session_id}  # a string
    assert {letter["projectId"] for letter in letters} == {harness.project.project_id}
    assert all(letter["error"] and letter["at"] >= T0 for letter in letters)
    one_project = await get(
        harness, key, "/api/v1/dead-letters", projectKey=harness.project.project_key
    )
    assert one_project.json()["data"]["total"] == 3


async def test_dead_letters_stay_in_their_organization(harness: Harness) -> None:
    await record_batches(harness, [make_batch(0, 1, 2)[:-2]])
    other_key, other_project = await trio.to_thread.run_sync(second_organization, harness)
    theirs = await get(harness, other_key, "/api/v1/dead-letters")
    assert theirs.json() == {"data": {"total": 0, "deadLetters": []}}
    mine_by_them = await get(
        harness, other_key, "/api/v1/dead-letters", projectKey=harness.project.project_key
    )
    assert (mine_by_them.status_code, mine_by_them.json()) == (
        404,
        {"errors": ["project not found."]},
    )
    their_own = await get(harness, other_key, "/api/v1/dead-letters", projectKey=other_project)
    assert their_own.json()["data"]["total"] == 0


async def test_dead_letters_refuse_a_bad_limit(harness: Harness) -> None:
    key = await api_key(harness)
    for bad in ("x", "0", "1001"):
        response = await get(harness, key, "/api/v1/dead-letters", limit=bad)
        assert response.status_code == 422, bad
        # Issue 14 point 7: the v1 envelope (was FastAPI's detail), naming the parameter.
        (message,) = response.json()["errors"]
        assert message.startswith("query.limit: "), message
