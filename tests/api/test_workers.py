"""``replayd serve --workers 2`` as a real subprocess: N ingest processes and one engine on one log.

Trackers simulated with our encoder upload in parallel over HTTP (a fresh connection per request,
so requests spread over both ingest processes); every acknowledged batch must be in the log with
gap-free positions and monotonic record time, and the public API (served by the ingest processes,
projected by the engine process) must return the events. Which process answers is made
deterministic where it matters by SIGSTOPping the other one: a stopped process cannot accept, so
the one left takes every new connection from the shared socket.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from api import openapi
from api.config import ServerConfig, default_projections_path
from api.surfaces import ASSEMBLY, build_host
from engine.ids import flake_shard
from runtime.assembly import HostParts
from runtime.pool import WorkerFailed, child_command, child_config, find_worker_failure
from storage.catalog import Catalog
from storage.log import EventLog, LogReader
from storage.records import RecordKind
from tests.api.conftest import CHROME_UA, make_batch, start_body
from tests.soak.trackers import read_until_serving

TRACKERS = 8
BATCHES_PER_TRACKER = 6
START_TIMEOUT_S = 60
# Every request on a new connection: the kernel hands each one to whichever process accepts.
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


@attrs.define
class Server:
    """A running ``replayd serve --workers 2`` and what its first start printed."""

    process: trio.Process
    url: str
    project_key: str
    api_key: str
    db: Path
    stderr_path: Path

    def ingest_pids(self) -> dict[int, int]:
        """index -> pid of the ingest processes (children of the parent, from /proc)."""
        # Every thread's list: trio starts processes from a worker thread of the parent.
        tasks = Path(f"/proc/{self.process.pid}/task").iterdir()
        children = [pid for task in tasks for pid in (task / "children").read_text().split()]
        found = {}
        for child in children:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"runtime.worker" in argv:
                found[int(argv[argv.index(b"--index") + 1])] = int(child)
        return found

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


async def _read_first_start(
    stdout: trio.abc.ReceiveStream, workers: int = 2
) -> tuple[str, str, str]:
    serving = await read_until_serving(stdout)
    assert f"({workers} ingest processes)" in serving.text, serving.text
    assert serving.project_key and serving.api_key, serving.text
    assert serving.text.count("First start") == 1  # the parent bootstraps, once
    return serving.url, serving.project_key, serving.api_key


@asynccontextmanager
async def running_server(
    tmp_path: Path, workers: int = 2, extra_args: tuple[str, ...] = ()
) -> AsyncIterator[Server]:
    """Start ``replayd serve --workers N`` on a free port with a fresh database; kill at the end."""
    db = tmp_path / "replayd.db"
    stderr_path = tmp_path / "stderr.log"
    command = [
        sys.executable, "-m", "api.cli", "serve", "--db", str(db), "--host", "127.0.0.1",
        "--port", "0", "--workers", str(workers), "--graceful-timeout", "2", *extra_args,
    ]  # fmt: skip
    with stderr_path.open("wb") as stderr:
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert process.stdout is not None
        with trio.fail_after(START_TIMEOUT_S):
            url, project_key, api_key = await _read_first_start(process.stdout, workers)
        yield Server(process, url, project_key, api_key, db, stderr_path)
    finally:
        if process.returncode is None:
            process.kill()  # the children notice (end of file on their control socket) and stop
            await process.wait()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def _until_gone(pids: list[int], timeout: float) -> None:
    with trio.fail_after(timeout):
        while any(_alive(pid) for pid in pids):
            await trio.sleep(0.05)


def _lock_holder_pid(db: Path) -> int:
    # The lock lives with the projections, in their own file next to the log's.
    conn = sqlite3.connect(default_projections_path(db))
    try:
        ((pid,),) = conn.execute("SELECT pid FROM projection_lock").fetchall()
    finally:
        conn.close()
    return pid


def _read_log(db: Path) -> list:
    with LogReader(db) as reader:
        return reader.read(0, 1_000_000)


async def _start(http: httpx.AsyncClient, project_key: str) -> tuple[int, str]:
    response = await http.post(
        "/v1/web/start",
        content=json.dumps(start_body(project_key)),
        headers={"User-Agent": CHROME_UA},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["sessionID"]), response.json()["token"]


async def _upload(http: httpx.AsyncClient, token: str, seq: int, clicks: int) -> bytes:
    # Message ids of successive batches do not overlap (first_index), like a real tracker's.
    body = make_batch(0, seq * 100, clicks=clicks)
    response = await http.post(
        "/v1/web/i",
        content=body,
        params={"batch": f"0_{seq}_{len(body)}_kyes"},
        headers={"Authorization": f"Bearer {token}", "DataType": "player"},
    )
    assert response.status_code == 200, response.text
    return body


async def _tracker(
    url: str, project_key: str, sessions: dict[int, list[tuple[bytes, int]]]
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=20.0, limits=NO_KEEPALIVE) as http:
        session_id, token = await _start(http, project_key)
        acked = sessions.setdefault(session_id, [])
        for seq in range(1, BATCHES_PER_TRACKER + 1):
            clicks = 1 + seq % 4
            acked.append((await _upload(http, token, seq, clicks), clicks))


async def _click_count(http: httpx.AsyncClient, server: Server, project_key: str, sid: int) -> int:
    response = await http.get(
        f"/api/v1/{project_key}/sessions/{sid}/events", headers={"Authorization": server.api_key}
    )
    assert response.status_code == 200, response.text
    return sum(event["type"] == "CLICK" for event in response.json()["data"])


async def _projected_clicks(
    server: Server, project_key: str, expected: dict[int, int], timeout: float = 20.0
) -> dict[int, int]:
    """Poll the public API until every session shows its clicks (or the timeout); the counts."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
        counts: dict[int, int] = {}
        with trio.move_on_after(timeout):
            while True:
                counts = {
                    sid: await _click_count(http, server, project_key, sid) for sid in expected
                }
                if counts == expected:
                    break
                await trio.sleep(0.1)
        return counts


async def _stopped(pid: int) -> None:
    """Wait until ``pid`` is really stopped (SIGSTOP is asynchronous)."""
    with trio.fail_after(5):
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            await trio.sleep(0.01)


async def test_parallel_trackers_across_ingest_processes_then_sigterm(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        workers = server.ingest_pids()
        assert sorted(workers) == [0, 1]

        # 1. Parallel trackers over fresh connections.
        sessions: dict[int, list[tuple[bytes, int]]] = {}
        async with trio.open_nursery() as nursery:
            for _ in range(TRACKERS):
                nursery.start_soon(_tracker, server.url, server.project_key, sessions)
        assert len(sessions) == TRACKERS

        # 2. Each ingest process alone (the other one SIGSTOPped): a project created through the
        #    API by one of them is known to the other (catalog cache miss -> SQLite), and a
        #    session started on one takes batches on the other (session directory -> log lookup).
        async with httpx.AsyncClient(
            base_url=server.url, timeout=10.0, limits=NO_KEEPALIVE
        ) as http:
            created = await http.post(
                "/api/v1/projects",
                json={"name": "second site"},
                headers={"Authorization": server.api_key},
            )
            assert created.status_code == 200, created.text
            second_key = created.json()["data"]["projectKey"]
            crossed: dict[int, list[tuple[bytes, int]]] = {}
            for alone in (0, 1):
                other = workers[1 - alone]
                os.kill(other, signal.SIGSTOP)
                await _stopped(other)
                try:
                    session_id, token = await _start(http, second_key)
                finally:
                    os.kill(other, signal.SIGCONT)
                assert flake_shard(session_id) == alone  # ingest process i uses shard i
                os.kill(workers[alone], signal.SIGSTOP)
                await _stopped(workers[alone])
                try:
                    crossed[session_id] = [(await _upload(http, token, 1, 3), 3)]
                finally:
                    os.kill(workers[alone], signal.SIGCONT)

        # 3. The log: every ack stored once, positions gap-free, record time monotonic.
        records = await trio.to_thread.run_sync(_read_log, server.db)
        assert [r.position for r in records] == list(range(1, len(records) + 1))
        times = [r.received_at_ms for r in records]
        assert times == sorted(times)
        stored = [(r.session_id, r.payload) for r in records if r.kind is RecordKind.WEB_BATCH]
        acked = [(sid, body) for sid, items in (sessions | crossed).items() for body, _ in items]
        assert sorted(stored) == sorted(acked)
        starts = [r for r in records if r.kind is RecordKind.WEB_START]
        assert len(starts) == TRACKERS + 2
        assert {r.project_id for r in starts if r.session_id in crossed} == {2}

        # 4. The engine process projected it all; the ingest processes serve it.
        expected = {sid: sum(c for _, c in items) for sid, items in sessions.items()}
        assert await _projected_clicks(server, server.project_key, expected) == expected
        expected_crossed = {sid: 3 for sid in crossed}
        assert await _projected_clicks(server, second_key, expected_crossed) == expected_crossed

        # Assist: every ingest process lists the live sessions the engine process projected
        # (reloaded from the sessions projection about once a second).
        async with httpx.AsyncClient(
            base_url=server.url, timeout=10.0, limits=NO_KEEPALIVE
        ) as http:
            listed: set[str] = set()
            with trio.move_on_after(10):
                while listed != {str(sid) for sid in sessions}:
                    response = await http.get(
                        f"/api/v1/{server.project_key}/assist/sessions",
                        headers={"Authorization": server.api_key},
                    )
                    assert response.status_code == 200, response.text
                    listed = {s["sessionID"] for s in response.json()["data"]["sessions"]}
                    await trio.sleep(0.2)
            assert listed == {str(sid) for sid in sessions}

        # The engine process holds the projections' lock; no ingest process took it.
        assert await trio.to_thread.run_sync(_lock_holder_pid, server.db) == server.process.pid

        # 5. SIGTERM: every process exits, gracefully.
        server.process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await server.process.wait()
        assert code == 0, server.stderr()
        await _until_gone(list(workers.values()), 5)
        assert "stopping 2 ingest processes" in server.stderr()


async def test_an_ingest_process_serves_every_registered_surface(tmp_path: Path) -> None:
    # The ingest processes build their app from api.surfaces.SURFACES, as a single process does:
    # the routes one of them documents are the routes of an app of every registered surface.
    catalog = await trio.to_thread.run_sync(Catalog.open, tmp_path / "local.db")
    try:
        config = ServerConfig(db_path=str(tmp_path / "local.db"))
        parts = HostParts(config=config, catalog=catalog, log=EventLog(config.db_path), clock=None)
        expected = set(openapi.describe(build_host(parts).app)["paths"])
    finally:
        catalog.close()
    # One path of each surface that has documented routes (openapi.json itself is not listed).
    assert {"/v1/web/start", "/ingest/v1/web/start", "/api/v1/projects", "/healthz"} <= expected
    async with running_server(tmp_path, workers=1) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            response = await http.get("/api/openapi.json")
        assert response.status_code == 200, response.text
        assert set(response.json()["paths"]) == expected


async def test_a_killed_ingest_process_takes_the_server_down(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        workers = server.ingest_pids()
        os.kill(workers[1], signal.SIGKILL)
        with trio.fail_after(30):
            code = await server.process.wait()
        assert code == 1
        await _until_gone([workers[0]], 5)
        assert f"ingest process 1 (pid {workers[1]}) exited unexpectedly (killed by SIGKILL)" in (
            server.stderr()
        )


async def test_ingest_processes_stop_when_the_parent_is_killed(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        workers = server.ingest_pids()
        server.process.kill()
        await server.process.wait()
        # End of file on their control socket: they shut down on their own, no orphan serves.
        await _until_gone(list(workers.values()), 15)


# -- the pieces, without processes ------------------------------------------------------------


def test_workers_setting_and_each_ingest_process_shard() -> None:
    config = ServerConfig.from_env({"REPLAYD_WORKERS": "3", "REPLAYD_SHARD": "10"})
    assert config.workers == 3
    assert [child_config(config, i).shard for i in range(3)] == [10, 11, 12]
    assert {child_config(config, i).workers for i in range(3)} == {0}
    assert ServerConfig().workers == 0  # single process by default
    with pytest.raises(ValueError):
        ServerConfig(workers=-1)
    with pytest.raises(ValueError, match="shard"):
        ServerConfig(workers=2, shard=0xFFFF)


def test_child_command_carries_the_whole_config() -> None:
    config = ServerConfig(db_path="x.db", port=0, workers=2, graceful_timeout=1.5)
    command = child_command(config, ASSEMBLY, 1, 7, 9, "DEBUG")
    assert command[:3] == [sys.executable, "-m", "runtime.worker"]
    assert command[command.index("--assembly") + 1] == "api.surfaces:ASSEMBLY"
    sent = json.loads(command[command.index("--config") + 1])
    assert ServerConfig(**sent) == child_config(config, 1)
    assert command[command.index("--listen-fd") + 1] == "7"


def test_worker_failure_is_found_inside_exception_groups() -> None:
    failure = WorkerFailed(1, 42, "exited unexpectedly")
    group = BaseExceptionGroup("outer", [ValueError("x"), ExceptionGroup("inner", [failure])])
    assert find_worker_failure(group) is failure
    assert find_worker_failure(ValueError("x")) is None
    assert str(failure) == "ingest process 1 (pid 42) exited unexpectedly"
