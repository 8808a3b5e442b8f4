"""Crash-test helpers: a ``replayd serve`` subprocess that can be SIGKILLed and restarted, simulated
web trackers that upload through it, and a client-side ledger of everything it acknowledged.

The trackers behave as ``@openreplay/tracker`` does on the wire (PROTOCOL.md): ``/v1/web/start``,
then batches made with the project's encoder, one batch in flight at a time; a 503 or a broken
connection retries the same batch (same ``batch`` query, same bytes: the log stores it once), a
401 starts again with the old token (which continues the session) and drops that batch. Every
200 goes into the :class:`Ledger`; :func:`missing_acks` then checks the log against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import attrs
import httpx
import trio

from storage.log import LogReader
from storage.records import LogRecord, RecordKind
from tests.api.conftest import CHROME_UA, make_batch, start_body

SERVE_TIMEOUT_S = 60  # a cold start of the server, on a loaded 2-core machine
RETRY_AFTER_CAP_S = 0.5  # the tracker honours Retry-After; capped so a test round stays short


@attrs.frozen
class Serving:
    """What ``replayd serve`` printed up to its "serving" line."""

    url: str
    project_key: str | None  # printed on the first start of a database only
    api_key: str | None  # likewise
    text: str  # all of stdout so far


async def read_until_serving(stdout: trio.abc.ReceiveStream) -> Serving:
    """Read ``replayd serve``'s stdout until it says where it serves."""
    text = ""
    while True:
        chunk = await stdout.receive_some(4096)
        assert chunk, f"replayd serve exited early; stdout so far:\n{text}"
        text += chunk.decode()
        serving = re.search(r"replayd serving .* on (http://\S+)", text)
        if serving:
            project_key = re.search(r"project key: (\w+)", text)
            api_key = re.search(r"API key: +(\w+)", text)
            return Serving(
                serving.group(1),
                project_key.group(1) if project_key else None,
                api_key.group(1) if api_key else None,
                text,
            )


def serve_command(db: Path, projections_db: Path, workers: int = 0) -> list[str]:
    """``replayd serve`` on a free loopback port with the given files."""
    return [
        sys.executable, "-m", "api.cli", "serve", "--db", str(db),
        "--projections-db", str(projections_db), "--host", "127.0.0.1", "--port", "0",
        "--workers", str(workers), "--graceful-timeout", "2",
    ]  # fmt: skip


@attrs.define
class ServerProcess:
    """One ``replayd serve`` at a time on the same files, restarted after each kill.

    Each start gets a new port (port 0): trackers ask :meth:`wait_up` for the current URL. The
    server runs in its own process group so that a kill takes its ingest processes too (a crash
    of the whole machine, not of one process).
    """

    db: Path
    projections_db: Path
    stderr_path: Path
    workers: int = 0
    url: str | None = None
    project_key: str | None = None
    starts: int = 0
    _process: trio.Process | None = None
    _up: trio.Event = attrs.Factory(trio.Event)

    async def start(self) -> None:
        """Start the server and wait until it serves."""
        assert self._process is None
        with self.stderr_path.open("ab") as stderr:
            self._process = await trio.lowlevel.open_process(
                serve_command(self.db, self.projections_db, self.workers),
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert self._process.stdout is not None
        with trio.fail_after(SERVE_TIMEOUT_S):
            serving = await read_until_serving(self._process.stdout)
        self.project_key = self.project_key or serving.project_key
        assert self.project_key, "the first start printed no project key"
        self.url = serving.url
        self.starts += 1
        self._up.set()

    async def wait_up(self) -> str:
        """The URL of the running server, waiting for a restart if it is down."""
        while self.url is None:
            await self._up.wait()
        return self.url

    def _down(self) -> trio.Process:
        assert self._process is not None
        process, self._process = self._process, None
        self.url = None
        self._up = trio.Event()
        return process

    async def kill(self) -> None:
        """SIGKILL the server and its ingest processes at once, mid-whatever they were doing."""
        process = self._down()
        children = child_pids(process.pid)  # before the kill: orphans get a new parent
        os.kill(process.pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await process.wait()
        assert process.returncode == -signal.SIGKILL, self.stderr()
        assert len(children) == self.workers, children

    async def stop(self) -> None:
        """SIGTERM: the graceful shutdown; it must exit with status 0."""
        process = self._down()
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await process.wait()
        assert code == 0, self.stderr()

    async def aclose(self) -> None:
        """Kill whatever still runs (test teardown)."""
        if self._process is not None:
            await self.kill()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-5000:]


def child_pids(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc, every thread's list: trio starts
    processes from worker threads)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


@attrs.frozen
class Ack:
    """One acknowledged batch, as the client knows it."""

    session_id: int
    batch: str  # the ``batch`` query parameter, e.g. "0_7_312_kyes"
    digest: str  # SHA-256 of the bytes sent


@attrs.define
class Ledger:
    """Everything the server acknowledged to the trackers, and how often they had to retry."""

    acks: list[Ack] = attrs.Factory(list)
    starts: int = 0
    retried_503: int = 0
    reconnects: int = 0
    restarts_401: int = 0


class Retry(Exception):
    """The request must be sent again (503, or the connection broke)."""


async def _post(
    server: ServerProcess, http: httpx.AsyncClient, ledger: Ledger, path: str, **request: object
) -> httpx.Response:
    """POST until the answer is neither a 503 nor a broken connection (the tracker's retry)."""
    while True:
        url = await server.wait_up()
        try:
            response = await http.post(url + path, **request)  # type: ignore[arg-type]
        except httpx.TransportError:
            ledger.reconnects += 1
            await trio.sleep(0.05)
            continue
        if response.status_code == 503:
            ledger.retried_503 += 1
            await trio.sleep(min(float(response.headers.get("Retry-After", 1)), RETRY_AFTER_CAP_S))
            continue
        return response


async def tracker(
    server: ServerProcess, ledger: Ledger, rng: random.Random, stop: trio.Event
) -> None:
    """One simulated tracker: start, then batches one at a time until ``stop`` is set."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        token: str | None = None
        session_id = 0
        seq = first_index = 0
        while not stop.is_set():
            if token is None or seq == 0:
                body = start_body(server.project_key or "", **({"token": token} if token else {}))
                answer = await _post(
                    server, http, ledger, "/v1/web/start",
                    content=json.dumps(body), headers={"User-Agent": CHROME_UA},
                )  # fmt: skip
                assert answer.status_code == 200, answer.text
                ledger.starts += 1
                token, session_id = answer.json()["token"], int(answer.json()["sessionID"])
                seq = max(seq, 1)
            clicks = rng.randint(1, 30)
            batch = make_batch(0, first_index, clicks=clicks)
            query = f"0_{seq}_{len(batch)}_kyes"
            response = await _post(
                server, http, ledger, "/v1/web/i", content=batch, params={"batch": query},
                headers={"Authorization": f"Bearer {token}", "DataType": "player"},
            )  # fmt: skip
            if response.status_code == 401:
                ledger.restarts_401 += 1  # the tracker drops this batch and starts again
                seq = 0
                continue
            assert response.status_code == 200, (response.status_code, response.text)
            ledger.acks.append(Ack(session_id, query, hashlib.sha256(batch).hexdigest()))
            seq += 1
            first_index += 4 + clicks  # header, timestamp, tab, location, then the clicks


def read_log(db: Path) -> list[LogRecord]:
    """Every record of the log, read through the log's own reader."""
    with LogReader(db) as reader:
        return reader.read(0, 10_000_000)


def missing_acks(records: Sequence[LogRecord], acks: Sequence[Ack]) -> list[Ack]:
    """The acknowledged batches not found byte for byte in ``records`` (checked: stored once)."""
    keys = Counter((r.session_id, r.batch_key) for r in records if r.kind is RecordKind.WEB_BATCH)
    duplicated = [key for key, count in keys.items() if count > 1]
    assert duplicated == [], f"batches stored more than once: {duplicated[:5]}"
    stored = {
        (r.session_id, (r.batch_key or "").split("#", 1)[0], hashlib.sha256(r.payload).hexdigest())
        for r in records
        if r.kind is RecordKind.WEB_BATCH
    }
    return [
        ack for ack in acks
        if (ack.session_id, "_".join(ack.batch.split("_")[:2]), ack.digest) not in stored
    ]  # fmt: skip
