"""Invariant 1 under a crash: `replayd serve` is SIGKILLed during a burst of concurrent uploads;
every batch that got a 200 must be in the log, and positions must stay gap-free."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

from storage.records import RecordKind
from tests.api.conftest import CHROME_UA, make_batch, start_body
from tests.soak.trackers import read_log, read_until_serving

# A client of the burst: (base URL, project key, client number, set once enough was acknowledged).
Client = Callable[[str, str, int, trio.Event], Awaitable[None]]
CLIENTS = 8
KILL_AFTER_ACKS = 80  # total acknowledged batches after which the server is killed


async def start_session(http: httpx.AsyncClient, project_key: str) -> tuple[str, int]:
    """A new session through ``/v1/web/start``: its token and id."""
    start = await http.post(
        "/v1/web/start",
        content=json.dumps(start_body(project_key)),
        headers={"User-Agent": CHROME_UA},
    )
    assert start.status_code == 200, start.text
    return start.json()["token"], int(start.json()["sessionID"])


def serve_command(db: Path) -> list[str]:
    """``replayd serve`` on the given database, on a free port of 127.0.0.1."""
    return [sys.executable, "-m", "api.cli", "serve", "--db", str(db), "--host", "127.0.0.1",
            "--port", "0"]  # fmt: skip


async def restart_once(tmp_path: Path, db: Path) -> None:
    """Start `replayd serve` on the crashed files (it recovers them), then stop it cleanly."""
    with (tmp_path / "restart.log").open("wb") as stderr, trio.fail_after(30):
        restarted = await trio.lowlevel.open_process(
            serve_command(db), stdout=subprocess.PIPE, stderr=stderr
        )
        assert restarted.stdout is not None
        await read_until_serving(restarted.stdout)
        restarted.send_signal(signal.SIGTERM)
        assert await restarted.wait() == 0


async def _client(
    base_url: str, project_key: str, client_no: int, acked: list, enough: trio.Event
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        try:
            token, session_id = await start_session(http, project_key)
            seq = 0
            while True:
                seq += 1
                body = make_batch(0, seq * 100 + client_no, clicks=1 + seq % 7)
                response = await http.post(
                    "/v1/web/i",
                    content=body,
                    params={"batch": f"0_{seq}_{len(body)}_kyes"},
                    headers={"Authorization": f"Bearer {token}", "DataType": "player"},
                )
                assert response.status_code == 200, response.text
                acked.append((session_id, body))
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()
        except httpx.TransportError:
            return  # the server died under us: expected, that is the test


async def sigkill_during_burst(
    tmp_path: Path, client: Client, clients: int, project_key: str | None = None
) -> Path:
    """Serve the database ``tmp_path/replayd.db`` (new unless the caller made it), run
    ``clients`` copies of ``client`` (base URL, project key, client number, the event it sets once
    enough was acknowledged) and SIGKILL the server as soon as that event is set, requests in
    flight; returns the database's path. The project is ``project_key``, else the default project
    the first start of a new database prints."""
    db = tmp_path / "replayd.db"
    command = serve_command(db)
    with (tmp_path / "stderr.log").open("wb") as stderr, trio.fail_after(60):
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, stderr=stderr)
        try:
            assert process.stdout is not None
            serving = await read_until_serving(process.stdout)
            base_url, project_key = serving.url, project_key or serving.project_key
            assert project_key is not None
            enough = trio.Event()
            async with trio.open_nursery() as nursery:
                for client_no in range(clients):
                    nursery.start_soon(client, base_url, project_key, client_no, enough)
                await enough.wait()
                process.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == -signal.SIGKILL
    return db


async def test_acknowledged_batches_survive_sigkill(tmp_path: Path) -> None:
    acked: list[tuple[int, bytes]] = []

    async def client(base_url: str, project_key: str, client_no: int, enough: trio.Event) -> None:
        await _client(base_url, project_key, client_no, acked, enough)

    db = await sigkill_during_burst(tmp_path, client, CLIENTS)
    assert len(acked) >= KILL_AFTER_ACKS

    records = read_log(db)
    assert [r.position for r in records] == list(range(1, len(records) + 1))
    stored = {(r.session_id, r.payload) for r in records if r.kind is RecordKind.WEB_BATCH}
    missing = [item for item in acked if item not in stored]
    assert missing == [], f"{len(missing)} acknowledged batches are not in the log"
    assert sum(r.kind is RecordKind.WEB_START for r in records) == CLIENTS
