"""/healthz, /readyz, /metrics and /api/v1/dead-letters with ``replayd serve --workers 1``.

The ingest process answers them; the figures it reports (log head, checkpoint, lag, dead letters)
come from the database files written by the engine process. The engine lag is made real by
SIGSTOPping the engine process: the ingest process keeps appending, nothing projects.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.api.conftest import make_batch
from tests.api.test_operations import readyz_until, samples
from tests.api.test_workers import _start, _stopped, running_server


async def _upload(http: httpx.AsyncClient, token: str, seq: int, body: bytes) -> None:
    response = await http.post(
        "/v1/web/i",
        content=body,
        params={"batch": f"0_{seq}_{len(body)}_k"},
        headers={"Authorization": f"Bearer {token}", "DataType": "player"},
    )
    assert response.status_code == 200, response.text


async def test_operations_routes_in_the_ingest_process(tmp_path: Path) -> None:
    extra = ("--ready-max-lag-records", "0")
    async with (
        running_server(tmp_path, workers=1, extra_args=extra) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10.0) as http,
    ):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        session_id, token = await _start(http, server.project_key)
        await _upload(http, token, 1, make_batch(0, 1, 2))
        await _upload(http, token, 2, make_batch(0, 100, 2)[:-2])  # truncated: parked
        ready = await readyz_until(
            http, 200, lambda b: b["head"] == 3 and b["deadLetters"] == 1 and b["liveSessions"]
        )
        assert (ready["checkpoint"], ready["lagRecords"], ready["liveSessions"]) == (3, 0, 1)

        found = samples((await http.get("/metrics")).text)
        route = (("method", "POST"), ("route", "/v1/web/i"), ("status", "200"))
        assert found[("replayd_http_requests_total", route)] == 2
        assert found[("replayd_log_records_committed_total", ())] == 3  # this process's writer
        assert found[("replayd_log_head_position", ())] == 3
        assert found[("replayd_engine_lag_records", ())] == 0
        assert found[("replayd_dead_letters", ())] == 1
        assert found[("replayd_live_sessions", ())] == 1
        assert found[("process_resident_memory_bytes", ())] > 0
        # The engine's own counters live in the engine process, which serves no HTTP.
        assert not any(name.startswith("replayd_engine_records") for name, _ in found)

        letters = await http.get("/api/v1/dead-letters", headers={"Authorization": server.api_key})
        data = letters.json()["data"]
        assert data["total"] == 1 and data["deadLetters"][0]["sessionId"] == str(session_id)

        engine = server.process.pid
        os.kill(engine, signal.SIGSTOP)
        await _stopped(engine)
        try:
            await _upload(http, token, 3, make_batch(0, 200, 1))  # ingest goes on without it
            lagging = await readyz_until(http, 503)
            assert (lagging["head"], lagging["checkpoint"], lagging["lagRecords"]) == (4, 3, 1)
            assert lagging["reasons"] == ["the engine is 1 records behind the log (more than 0)"]
        finally:
            os.kill(engine, signal.SIGCONT)
        caught_up = await readyz_until(http, 200)
        assert caught_up["checkpoint"] == caught_up["head"] == 4
