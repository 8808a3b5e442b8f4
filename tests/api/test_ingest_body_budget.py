"""Upload bodies held by the ingest routes share one process-wide byte budget: over it an upload
is held (slowed down), and only after the bounded wait answered 503 + Retry-After."""

from __future__ import annotations

import trio

from api import ingest_web

from .conftest import ServerFactory, make_batch


async def test_uploads_wait_for_room_then_503_and_go_through_once_it_frees(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(ingest_body_bytes=5000, append_wait_timeout=2.0)
    assert harness.server.app is not None
    bodies = harness.server.app.extensions[ingest_web.EXTENSION_KEY].bodies
    token = (await harness.started())["token"]
    batch = make_batch(0, 1, 20)
    assert (await harness.upload(token, batch)).status_code == 200
    assert bodies.used == 0  # given back after the answer

    bodies.take(5000)  # another upload holds the whole budget
    refused = await harness.upload(token, batch, batch="0_2")
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]
    assert len(await harness.records()) == 2  # the start and batch 1; nothing of batch 2

    answers: list[int] = []

    async def upload() -> None:
        answers.append((await harness.upload(token, batch, batch="0_2")).status_code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upload)
        while not bodies.waiting:
            await trio.sleep(0.01)
        assert answers == []  # held, not answered
        bodies.release(5000)
    assert answers == [200]
    assert bodies.used == 0
