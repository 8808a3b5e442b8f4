"""Fixtures of the API tests: a real replayd server on 127.0.0.1 (port 0) with a real SQLite file.

``server_factory(**config)`` starts ``runtime.process.serve`` (every surface of ``api.surfaces``)
in the test's trio run and returns its ``RunningServer``; every server is shut down gracefully at
teardown. Time on the request path comes from ``clock`` (a settable epoch-ms clock) so that
delays, start timestamps and token expiry are exact; the log writer and SQLite use no clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from api.assets import asset_cache_services
from api.config import ServerConfig
from api.surfaces import ASSEMBLY
from engine.codec.web import encode_batch
from engine.codec.web_messages import BatchMetadata, MouseClick, SetPageLocation, TabData, Timestamp
from runtime.process import RunningServer, serve
from storage.catalog import Project

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The User-Agent of the headless Chromium in the captured traffic (fixtures/web-basic).
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36"
)
T0 = 1_795_418_019_165  # the clock reading of the captured traffic (ms)


def make_batch(
    page_no: int, first_index: int, clicks: int, tab: str = "e18efc31aa0f", version: int = 1
) -> bytes:
    """A protocol batch made by our encoder: header, then ``clicks`` clicks."""
    messages = [
        BatchMetadata(version, page_no, first_index, T0, "http://shop.test/"),
        Timestamp(T0),
        TabData(tab),
        SetPageLocation("http://shop.test/", "", 0, "Shop"),
    ]
    messages += [MouseClick(i + 1, 10, f"button {i}", f"#b{i}", 430, 200) for i in range(clicks)]
    return encode_batch(messages)


@attrs.define
class FakeClock:
    """Epoch milliseconds that only move when a test moves them."""

    now: int = T0

    def __call__(self) -> int:
        return self.now


def start_body(project_key: str, **fields: Any) -> dict[str, Any]:
    """A start request body shaped like tracker 19.0.1's (PROTOCOL.md 3.1), fields overridable."""
    body: dict[str, Any] = {
        "userUUID": None,
        "projectKey": project_key,
        "revID": "rev-1",
        "trackerVersion": "19.0.1",
        "isSnippet": False,
        "timestamp": T0 - 16,
        "doNotRecord": False,
        "bufferDiff": 0,
        "userID": "user-42",
        "deviceMemory": 16384,
        "jsHeapSizeLimit": 4395630592,
        "timezone": "UTC+00:00",
        "assistOnly": False,
        "width": 1280,
        "height": 800,
        "referrer": "",
    }
    body.update(fields)
    return body


@attrs.define
class Harness:
    """One running server, its clock and an HTTP client speaking to it like the tracker does."""

    server: RunningServer
    clock: FakeClock
    client: httpx.AsyncClient
    project: Project

    async def start(self, **fields: Any) -> httpx.Response:
        return await self.client.post(
            "/v1/web/start",
            content=json.dumps(start_body(self.project.project_key, **fields)),
            headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
        )

    async def started(self, **fields: Any) -> dict[str, Any]:
        response = await self.start(**fields)
        assert response.status_code == 200, response.text
        return response.json()

    async def upload(
        self,
        token: str | None,
        body: bytes,
        *,
        batch: str | None = "0_1_100_kyes",
        data_type: str | None = "player",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if data_type is not None:
            all_headers["DataType"] = data_type
        all_headers.update(headers or {})
        query = dict(params or {})
        if batch is not None:
            query["batch"] = batch
        return await self.client.post("/v1/web/i", content=body, headers=all_headers, params=query)

    async def records(self) -> list[Any]:
        return await self.server.log.read(0, 10_000)


ServerFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def server_factory(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    async with trio.open_nursery() as nursery:
        harnesses: list[Harness] = []

        async def make(db_name: str = "replayd.db", **overrides: Any) -> Harness:
            clock = FakeClock()
            config = ServerConfig(db_path=str(tmp_path / db_name), port=0, **overrides)
            server = await nursery.start(
                partial(
                    serve,
                    config,
                    assembly=ASSEMBLY,
                    handle_signals=False,
                    clock=clock,
                    # What `replayd serve` adds: the asset cache's fetcher with cache_assets.
                    extra_services=asset_cache_services(config),
                )
            )
            client = httpx.AsyncClient(base_url=server.url, timeout=10.0)
            projects = server.catalog.list_projects()
            project = projects[0] if projects else server.catalog.create_project("test")
            harness = Harness(server, clock, client, project)
            harnesses.append(harness)
            return harness

        yield make
        for harness in harnesses:
            await harness.client.aclose()
            harness.server.shutdown()


@pytest.fixture
async def harness(server_factory: ServerFactory) -> Harness:
    return await server_factory()
