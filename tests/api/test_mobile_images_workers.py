"""Screenshots under ``replayd serve --workers 2``: both ingest processes open (and migrate) the
one images' file and write it at the same time; every acknowledged image is listed by either."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import trio

from storage.images import image_hash
from tests.api.conftest import T0
from tests.api.test_mobile_images import screenshots
from tests.api.test_workers import NO_KEEPALIVE, _start, running_server

CLIENTS = 4
UPLOADS = 5


async def test_two_ingest_processes_share_the_images_file(tmp_path: Path) -> None:
    acked: dict[int, set[str]] = {}

    async with running_server(tmp_path) as server:

        async def client() -> None:
            # A fresh connection per request: uploads spread over both ingest processes.
            async with httpx.AsyncClient(
                base_url=server.url, timeout=20.0, limits=NO_KEEPALIVE
            ) as http:
                session_id, token = await _start(http, server.project_key)
                mine = acked.setdefault(session_id, set())
                for seq in range(UPLOADS):
                    images = [(T0 + seq * 10 + n, os.urandom(2_000)) for n in range(2)]
                    response = await http.post(
                        "/v1/mobile/images",
                        files={"batch": ("x.tar.gz", screenshots(*images), "application/gzip")},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    assert response.status_code == 200, response.text
                    mine.update(image_hash(data) for _, data in images)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(CLIENTS):
                    nursery.start_soon(client)
            async with httpx.AsyncClient(base_url=server.url, limits=NO_KEEPALIVE) as http:
                for session_id, hashes in acked.items():
                    for _ in range(2):  # likely one answer from each process
                        response = await http.get(
                            f"/api/v1/{server.project_key}/sessions/{session_id}/images",
                            headers={"Authorization": server.api_key},
                        )
                        assert response.status_code == 200, response.text
                        assert {i["hash"] for i in response.json()["data"]} == hashes
    assert len(acked) == CLIENTS
