"""Invariant 8 through a real server: hostile values in accepted records never stop replayd.

Each test sends what used to stop the server for good (the projector raised, ending ``serve``,
every restart and ``replayd rebuild``), checks that the server keeps answering and projected the
repaired, clamped or parked result, restarts it on the same files, then rebuilds the projections
from the log and checks the rebuild agrees with the live path table for table.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from api.cli import main
from api.operations import PROJECTOR_KEY
from engine.codec.web import encode_batch
from engine.codec.web_messages import BatchMetadata, MouseClick, SetPageLocation, TabData, Timestamp
from engine.events import INT64_MAX, DomainEvent
from engine.start_payload import WebStartPayload
from engine.supervisor import Supervisor, history_from_reader
from projections import dead_letters
from projections import events as events_projection
from projections.pipeline import ALL_PROJECTIONS, Projector
from projections.reader import ProjectionReader
from storage.log import LogReader
from storage.records import NewRecord, RecordKind
from tests.api.conftest import CHROME_UA, T0, Harness, ServerFactory, start_body
from tests.api.test_public_v1 import api_key, end_all_sessions, get, projected
from tests.projections.factories import dump_tables

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


async def stop(harness: Harness) -> None:
    await harness.client.aclose()  # an idle keep-alive connection would hold the shutdown
    harness.server.shutdown()
    await harness.server.wait_stopped()


async def still_answers(harness: Harness) -> None:
    """The ingest and the public API both answer (the server did not stop)."""
    assert (await harness.client.get("/v1/web/tags")).status_code in (200, 401)
    key = await api_key(harness)
    assert (await get(harness, key, "/api/v1/projects")).status_code == 200


async def restart_and_rebuild_agree(
    server_factory: ServerFactory, harness: Harness, tmp_path: Path
) -> dict[str, list[tuple]]:
    """Restart on the same files, stop, then rebuild: the projections must not change."""
    await stop(harness)
    again = await server_factory()
    await projected(again)
    await still_answers(again)
    await stop(again)
    projections = tmp_path / "replayd-projections.db"
    live = dump_tables(projections)
    argv = ["rebuild", "--db", str(tmp_path / "replayd.db")]
    assert await trio.to_thread.run_sync(main, argv) == 0
    assert dump_tables(projections) == live
    return live


async def reader_of(tmp_path: Path) -> ProjectionReader:
    return ProjectionReader(tmp_path / "replayd-projections.db")


# -- defect 1: lone surrogates in a start record ------------------------------------------------


async def test_lone_surrogates_in_a_start_are_repaired_not_fatal(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    harness = await server_factory()
    hostile = {
        "userID": "\ud800",
        "revID": "r\udc00",
        "timezone": "\udfffUTC",
        "referrer": "\ud800",
    }
    # The request as a tracker could send it (json.dumps writes the \ud800 escapes). Whether the
    # HTTP layer accepts or refuses it, the server must keep answering.
    response = await harness.client.post(
        "/v1/web/start",
        content=json.dumps(start_body(harness.project.project_key, **hostile)),
        headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
    )
    assert response.status_code < 500
    # And what an older server wrote into the log: the start record with those strings.
    session_id = 4_242
    payload = WebStartPayload(
        session_id=session_id,
        project_id=harness.project.project_id,
        start_timestamp=T0,
        delay=0,
        tracker_version="19.0.1",
        user_id=hostile["userID"],
        rev_id=hostile["revID"],
        timezone=hostile["timezone"],
        referrer=hostile["referrer"],
    )
    await harness.server.log.append(
        NewRecord(
            session_id=session_id,
            project_id=harness.project.project_id,
            kind=RecordKind.WEB_START,
            received_at_ms=T0,
            payload=payload.to_bytes(),
        )
    )
    await projected(harness)
    await still_answers(harness)
    reader = await reader_of(tmp_path)
    try:
        row = await reader.session(harness.project.project_id, session_id)
        assert row is not None
        assert (row.user_id, row.rev_id, row.timezone, row.referrer) == (
            "\ufffd",
            "r\ufffd",
            "\ufffdUTC",
            "\ufffd",
        )
        if response.status_code == 200:  # accepted: projected repaired as well
            started = await reader.session(
                harness.project.project_id, int(response.json()["sessionID"])
            )
            assert started is not None and started.user_id == "\ufffd"
        assert await reader.dead_letter_count() == 0  # repaired, nothing had to be parked
    finally:
        reader.close()
    await restart_and_rebuild_agree(server_factory, harness, tmp_path)


# -- defect 2: integers beyond SQLite's int64 in a batch -----------------------------------------


def _batch(header_ts: int, *messages: object, first_index: int = 1) -> bytes:
    return encode_batch(
        [
            BatchMetadata(1, 0, first_index, header_ts, "http://shop.test/"),
            Timestamp(T0),
            TabData("tab"),
            SetPageLocation("http://shop.test/", "", 0, "Shop"),
            *messages,  # type: ignore[list-item]
        ]
    )


async def test_huge_integers_in_a_batch_are_clamped_not_fatal(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    harness = await server_factory()
    key = await api_key(harness)
    start = await harness.started()
    session_id = start["sessionID"]
    batches = [
        _batch(T0, Timestamp(2**64 - 1), MouseClick(1, 10, "after huge time", "#a", 1, 1)),
        _batch(T0, MouseClick(2, 2**64 - 1, "huge hesitation", "#h", 2**64 - 1, 5), first_index=10),
        _batch(2**63 - 1, MouseClick(3, 10, "huge header time", "#m", 1, 1), first_index=20),
    ]
    garbage = batches[0][:-3]  # truncated: the engine cannot decode it and parks it
    for number, body in enumerate([*batches, garbage], start=1):
        response = await harness.upload(start["token"], body, batch=f"0_{number}_{len(body)}_kyes")
        assert response.status_code == 200, response.text
    await projected(harness)
    await still_answers(harness)
    response = await get(
        harness, key, f"/api/v1/{harness.project.project_key}/sessions/{session_id}/events"
    )
    assert response.status_code == 200, response.text
    clicks = {e["label"]: e for e in response.json()["data"] if e["type"] == "CLICK"}
    assert set(clicks) == {"after huge time", "huge hesitation", "huge header time"}
    assert clicks["huge hesitation"]["hesitation"] == INT64_MAX
    # Absurd times are not times: every event stays at the session's real time.
    assert all(T0 <= e["timestamp"] < T0 + DAY_MS for e in response.json()["data"])

    await end_all_sessions(harness, T0 + HOUR_MS)
    reader = await reader_of(tmp_path)
    try:
        row = await reader.session(harness.project.project_id, int(session_id))
        assert row is not None and row.duration is not None and 0 <= row.duration < DAY_MS
        assert await reader.dead_letter_count() == 1  # the garbage batch, nothing else
    finally:
        reader.close()
    tables = await restart_and_rebuild_agree(server_factory, harness, tmp_path)
    [letter] = tables["dead_letters"]
    assert "engine" in letter and int(session_id) in letter


# -- any other poison: parked with its error, the rest carries on --------------------------------


async def test_an_event_a_projection_cannot_store_is_parked(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A projector whose code fails for one event (an older version's bug, simulated by a
    projection that refuses one label): the event is parked, the server carries on, and
    ``replayd dead-letters retry`` with the fixed code applies it."""
    harness = await server_factory()
    start = await harness.started()
    body = _batch(T0, MouseClick(1, 10, "fine", "#f", 1, 1), MouseClick(2, 10, "bug", "#b", 1, 1))
    assert (await harness.upload(start["token"], body)).status_code == 200
    await projected(harness)
    await still_answers(harness)
    await stop(harness)
    # The buggy projector ran over the same log: replay it with the bug to park the event.
    projections = tmp_path / "replayd-projections.db"
    argv = ["rebuild", "--db", str(tmp_path / "replayd.db")]
    assert await trio.to_thread.run_sync(main, argv) == 0
    clean = dump_tables(projections)
    await _rebuild_with_buggy_events_projection(tmp_path)
    conn = sqlite3.connect(projections)
    try:
        rows = conn.execute("SELECT stage, error FROM dead_letters").fetchall()
    finally:
        conn.close()
    assert rows == [("projection:events", "RuntimeError: a bug for label 'bug'")]
    # The fixed code: retry re-runs the parked session; nothing stays parked.
    retry = ["dead-letters", "retry", "--db", str(tmp_path / "replayd.db")]
    assert await trio.to_thread.run_sync(main, retry) == 0
    assert dump_tables(projections) == clean


async def _rebuild_with_buggy_events_projection(tmp_path: Path) -> None:
    """What ``rebuild`` does, with an events projection that has a bug for one label."""

    def buggy_apply(conn: sqlite3.Connection, evs: Sequence[DomainEvent]) -> None:
        if any(getattr(e, "label", None) == "bug" for e in evs):
            raise RuntimeError("a bug for label 'bug'")
        events_projection.apply(conn, evs)

    buggy = attrs.evolve(events_projection.PROJECTION, apply=buggy_apply)
    chosen = [buggy if p.name == "events" else p for p in ALL_PROJECTIONS]
    source, history = LogReader(tmp_path / "replayd.db"), LogReader(tmp_path / "replayd.db")
    try:
        async with Projector(tmp_path / "replayd-projections.db", projections=chosen) as projector:
            await projector.reset()
            supervisor = Supervisor(history=history_from_reader(history), sink=projector.sink)
            await supervisor.run_until(source, source.head())
    finally:
        source.close()
        history.close()


# -- a full disk under the projections file -----------------------------------------------------


class SmallDisk:
    """Where the projections file goes, and a way to fill and free the space under it.

    As root (CI): a 4 MB tmpfs mounted for the test, filled to the last byte by a filler file.
    Otherwise the same SQLITE_FULL is simulated with ``PRAGMA max_page_count`` on the
    projector's connection (said loudly in the test's output: never a silent skip).
    """

    def __init__(self, directory: Path, mounted: bool) -> None:
        self.directory = directory
        self.mounted = mounted
        self._filler = directory / "filler"

    async def fill(self, projector: Projector) -> None:
        if self.mounted:
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for size in (1 << 20, 1 << 12, 1):
                    try:
                        while True:
                            os.write(fd, b"\0" * size)
                    except OSError:
                        pass  # ENOSPC: go on with smaller writes
            finally:
                os.close(fd)
        else:
            await projector.run_sync(_cap_pages, None)

    async def free(self, projector: Projector) -> None:
        if self.mounted:
            self._filler.unlink()
        else:
            await projector.run_sync(_cap_pages, 1_073_741_823)


def _cap_pages(conn: sqlite3.Connection, pages: int | None) -> None:
    if pages is None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A :class:`SmallDisk`; the tmpfs is unmounted at teardown."""
    directory = tmp_path / "small"
    directory.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        print("not root: simulating the full disk with PRAGMA max_page_count instead of a tmpfs")
        yield SmallDisk(directory, mounted=False)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(directory)], check=True)
    try:
        yield SmallDisk(directory, mounted=True)
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def _integrity(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def _click_batch(number: int) -> bytes:
    clicks = [
        MouseClick(i, 10, f"button {number}/{i} " + "x" * 400, "#b", 1, 1) for i in range(200)
    ]
    return _batch(T0, *clicks, first_index=number * 1000)


async def test_a_full_disk_under_the_projections_is_waited_out(
    server_factory: ServerFactory,
    tmp_path: Path,
    small_disk: SmallDisk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    projections = small_disk.directory / "projections.db"
    harness = await server_factory(projections_db_path=str(projections))
    assert harness.server.app is not None
    projector: Projector = harness.server.app.extensions[PROJECTOR_KEY]
    key = await api_key(harness)
    start = await harness.started()
    await projected(harness)
    await small_disk.fill(projector)

    for number in range(1, 11):
        body = _click_batch(number)
        response = await harness.upload(start["token"], body, batch=f"0_{number}_{len(body)}_kyes")
        assert response.status_code == 200, response.text  # the log is on another disk
    with trio.fail_after(20):
        while projector.statistics.write_error is None:
            await trio.sleep(0.05)
    assert "database or disk is full" in projector.statistics.write_error
    behind = projector.statistics.upto_position
    assert behind < harness.server.log.head()
    # Reads keep being served meanwhile, from what was committed.
    await still_answers(harness)
    events_path = f"/api/v1/{harness.project.project_key}/sessions/{start['sessionID']}/events"
    assert (await get(harness, key, events_path)).status_code == 200
    with trio.fail_after(20):
        while projector.statistics.write_failures < 3:
            await trio.sleep(0.05)

    await small_disk.free(projector)  # space comes back: the projector catches up by itself
    await projected(harness)
    assert projector.statistics.write_error is None
    response = await get(harness, key, events_path)
    clicks = [e for e in response.json()["data"] if e["type"] == "CLICK"]
    assert len(clicks) == 10 * 200  # nothing lost
    failing = [r for r in caplog.records if "cannot write" in r.getMessage()]
    recovered = [
        r for r in caplog.records if "writing" in r.getMessage() and "again" in r.getMessage()
    ]
    assert len(failing) == 1 and len(recovered) == 1  # one line per change, not per attempt
    await stop(harness)
    assert _integrity(projections) == [("ok",)]
    assert _integrity(tmp_path / "replayd.db") == [("ok",)]
    conn = sqlite3.connect(projections)
    try:
        assert dead_letters.count(conn) == 0  # the data was never blamed
    finally:
        conn.close()


async def test_the_engine_process_of_workers_survives_a_huge_integer(tmp_path: Path) -> None:
    """``--workers 2``: the batch used to kill the engine process (OverflowError), and with it
    the whole server; now its click is projected, clamped, and the next batch as well."""
    from tests.api.test_workers import _click_count, _start, running_server

    async with running_server(tmp_path) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
            session_id, token = await _start(http, server.project_key)
            hostile = _batch(T0, MouseClick(1, 2**64 - 1, "huge", "#h", 2**64 - 1, 1))
            normal = _batch(T0, MouseClick(2, 10, "normal", "#n", 1, 1), first_index=100)
            for number, body in enumerate((hostile, normal), start=1):
                response = await http.post(
                    "/v1/web/i",
                    content=body,
                    params={"batch": f"0_{number}_{len(body)}_kyes"},
                    headers={"Authorization": f"Bearer {token}", "DataType": "player"},
                )
                assert response.status_code == 200, response.text
            with trio.fail_after(20):
                while await _click_count(http, server, server.project_key, session_id) < 2:
                    assert server.process.returncode is None, server.stderr()
                    await trio.sleep(0.1)
        assert server.process.returncode is None
        assert "Traceback" not in server.stderr()
