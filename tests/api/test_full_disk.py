"""A full disk under the log: every write route answers 503 + Retry-After with a JSON body, reads
keep answering, acknowledged batches stay intact, and ingest works again once space returns."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.storage.small_disk import SmallDisk, small_disk

from .conftest import Harness, ServerFactory, make_batch


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    # Requested before server_factory by the test, so the server stops before the unmount.
    with small_disk(tmp_path) as small:
        yield small


def assert_unavailable(response: httpx.Response, envelope: str = "error") -> None:
    """503 + Retry-After, with a message in ``envelope`` (``errors`` under /api/v1)."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()[envelope]


async def upload_until_refused(
    harness: Harness, token: str, first: int
) -> tuple[int, httpx.Response]:
    """Upload batches first, first+1, ... until one is refused; the WAL may take a few first."""
    n = first
    while True:
        assert n < first + 300, "the full disk never refused an upload"
        response = await harness.upload(token, make_batch(0, n, 200), batch=f"0_{n}")
        if response.status_code != 200:
            return n, response
        n += 1


async def test_full_disk_answers_503_and_recovers(
    disk: SmallDisk, server_factory: ServerFactory, tmp_path: Path
) -> None:
    harness = await server_factory(
        db_name=str(disk.directory / "replayd.db"),
        projections_db_path=str(tmp_path / "projections.db"),
    )
    disk.cap_pages = harness.server.log.set_max_page_count
    key = await trio.to_thread.run_sync(harness.server.catalog.create_api_key)
    token = (await harness.started())["token"]
    for n in range(1, 4):
        assert (
            await harness.upload(token, make_batch(0, n, 200), batch=f"0_{n}")
        ).status_code == 200
    acknowledged = [r.payload for r in await harness.records()]

    await disk.fill()
    refused_at, refused = await upload_until_refused(harness, token, 4)
    assert_unavailable(refused)
    acknowledged = [r.payload for r in await harness.records()]  # those the WAL still took
    assert_unavailable(
        await harness.upload(token, make_batch(0, refused_at, 200), batch=f"0_{refused_at}")
    )
    assert_unavailable(await harness.start())
    if disk.mounted:  # the catalog shares the log's file, hence its disk (not its page cap)
        created = await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json={"name": "full"}
        )
        assert_unavailable(created, "errors")  # issue 14 point 7: the v1 envelope there
    assert harness.server.log.statistics().write_error is not None

    # Reads keep answering, and what was acknowledged is intact.
    listed = await harness.client.get("/api/v1/projects", headers={"Authorization": key})
    assert listed.status_code == 200
    assert [r.payload for r in await harness.records()] == acknowledged

    await disk.free()
    again = await harness.upload(token, make_batch(0, refused_at, 200), batch=f"0_{refused_at}")
    assert again.status_code == 200, again.text
    assert (await harness.start()).status_code == 200
    if disk.mounted:
        created = await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json={"name": "full"}
        )
        assert created.status_code == 200, created.text
    assert harness.server.log.statistics().write_error is None
    stored = [r.payload for r in await harness.records()]
    assert stored[: len(acknowledged)] == acknowledged
    assert make_batch(0, refused_at, 200) in stored
    conn = sqlite3.connect(harness.server.log.path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
