"""What the server logs (issue 14, point 1): access lines, refused starts, batches, sessions.

A real server (``server_factory``) in the test's trio run; the lines are read with ``caplog``.
The JSON format and ``--no-access-log`` of the command line are in tests/test_cli.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from tests.api.conftest import CHROME_UA, ServerFactory, make_batch, start_body


def _field(record: logging.LogRecord, name: str) -> Any:
    """A structured field of a line (``extra=`` of the logging call)."""
    return record.__dict__[name]


def _records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


async def _wait_for(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    with trio.fail_after(10):
        while True:
            for record in caplog.records:
                if text in record.getMessage():
                    return record
            await trio.sleep(0.02)


async def test_one_access_line_per_request_with_its_fields(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    harness = await server_factory()
    started = await harness.started()
    assert (await harness.upload(started["token"], make_batch(0, 0, 2))).status_code == 200
    await _wait_for(caplog, "POST /v1/web/i 200")
    start_line, batch_line = _records(caplog, "replayd.access")
    assert batch_line.getMessage().startswith("POST /v1/web/i 200 0 B ")
    fields = {k: _field(start_line, k) for k in ("method", "path", "status", "client")}
    assert fields == dict(method="POST", path="/v1/web/start", status=200, client="127.0.0.1")
    assert _field(start_line, "bytes") > 0 and _field(start_line, "ms") >= 0


async def test_no_access_log_when_turned_off(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    harness = await server_factory(access_log=False)
    await harness.started()
    assert _records(caplog, "replayd.access") == []


async def test_a_refused_start_is_logged_with_its_reason(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    harness = await server_factory()
    wrong = await harness.client.post(
        "/v1/web/start",
        content=json.dumps(start_body("x" * 20)),
        headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
    )
    assert wrong.status_code == 404
    assert (await harness.start(trackerVersion="3.0.0")).status_code == 426
    refused = [
        r for r in _records(caplog, "api.ingest_web") if r.__dict__.get("event") == "start_refused"
    ]
    assert [(r.levelno, _field(r, "status"), _field(r, "reason")) for r in refused] == [
        (logging.WARNING, 404, "project doesn't exist"),
        (logging.WARNING, 426, "please upgrade the tracker version"),
    ]
    assert refused[0].getMessage() == (
        "refused /v1/web/start (404 project doesn't exist): project key 'xxxxxxxxxxxxxxxxxxxx',"
        " client 127.0.0.1"
    )
    assert _field(refused[1], "project_key") == harness.project.project_key


async def test_sessions_starting_and_ending_and_batches_are_logged(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await server_factory(inactivity_timeout_ms=1_000)
    started = await harness.started()
    session_id = int(started["sessionID"])
    assert (await harness.upload(started["token"], make_batch(0, 0, 2))).status_code == 200
    batch = await _wait_for(caplog, f"batch of session {session_id}")
    assert batch.levelno == logging.DEBUG and _field(batch, "data_type") == "player"
    assert _field(batch, "bytes") > 0
    begun = await _wait_for(caplog, f"session {session_id} started")
    assert begun.levelno == logging.INFO
    assert _field(begun, "project_id") == harness.project.project_id
    assert "Chrome" in begun.getMessage() and _field(begun, "event") == "session_started"
    # Record time moves past the inactivity timeout (another session's start): the first ends.
    harness.clock.now += 5_000
    await harness.started(userID="someone else")
    ended = await _wait_for(caplog, f"session {session_id} ended after")
    assert _field(ended, "event") == "session_ended" and _field(ended, "session_id") == session_id


async def test_a_parked_record_is_logged(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    harness = await server_factory()
    started = await harness.started()
    garbage = b"\xff" * 64  # not a protocol batch: the engine parks it as a dead letter
    assert (await harness.upload(started["token"], garbage)).status_code == 200
    parked = await _wait_for(caplog, "parked record at position")
    assert parked.levelno == logging.WARNING and _field(parked, "event") == "record_parked"
    assert _field(parked, "session_id") == int(started["sessionID"])
    assert "replayd dead-letters list" in parked.getMessage()
