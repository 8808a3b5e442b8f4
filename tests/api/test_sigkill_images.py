"""Images under a crash: `replayd serve` is SIGKILLed during a burst of concurrent uploads
(mobile screenshots, web canvas frames); every image of every upload that got a 200 must be in
the images' database after a restart, linked to its session, and read back byte for byte."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from engine.codec.mobile_images import encode_frames
from storage.images import CapturedImage, ImageStore, image_hash
from tests.api.conftest import T0
from tests.api.test_mobile_images import screenshots
from tests.api.test_sigkill import restart_once, sigkill_during_burst, start_session
from tests.soak.trackers import read_log

CLIENTS = 6
KILL_AFTER_ACKS = 60  # acknowledged uploads after which the server is killed
IMAGES_PER_UPLOAD = 3

# (session id, canvas node id or "" for screenshots, the images) per acknowledged upload
Acked = list[tuple[int, str, list[CapturedImage]]]
# Posts upload number ``seq`` of a session; returns its node id and images (after a 200).
Upload = Callable[[httpx.AsyncClient, str, int], Awaitable[tuple[str, list[CapturedImage]]]]


async def _client(
    base_url: str, project_key: str, upload: Upload, acked: Acked, enough: trio.Event
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        try:
            token, session_id = await start_session(http, project_key)
            seq = 0
            while True:
                seq += 1
                node, images = await upload(http, token, seq)
                acked.append((session_id, node, images))
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()
        except httpx.TransportError:
            return  # the server died under us: expected, that is the test


@asynccontextmanager
async def _after_a_crash(
    tmp_path: Path, upload: Upload
) -> AsyncIterator[tuple[Acked, int, ImageStore]]:
    """Burst, SIGKILL, restart: the acknowledged uploads, the project and the images' store."""
    acked: Acked = []

    async def client(base_url: str, project_key: str, _: int, enough: trio.Event) -> None:
        await _client(base_url, project_key, upload, acked, enough)

    db = await sigkill_during_burst(tmp_path, client, CLIENTS)
    assert len(acked) >= KILL_AFTER_ACKS
    await restart_once(tmp_path, db)  # it opens (and recovers) the images' database
    store = ImageStore.open(tmp_path / "replayd-images.db")
    try:
        yield acked, read_log(db)[0].project_id, store
    finally:
        store.close()


async def _screenshots(
    http: httpx.AsyncClient, token: str, seq: int
) -> tuple[str, list[CapturedImage]]:
    # Distinct images (random bytes), each a few KB as a small screenshot is; the first is the
    # same in every upload (stored once, linked each time).
    images = [CapturedImage(T0 + seq * 10, b"\xff\xd8\xff\xe0same screen")]
    images += [
        CapturedImage(T0 + seq * 10 + n, b"\xff\xd8\xff" + os.urandom(4_000))
        for n in range(1, IMAGES_PER_UPLOAD)
    ]
    response = await http.post(
        "/v1/mobile/images",
        files={"batch": (f"{seq}.tar.gz", screenshots(*((i.capture_ms, i.data) for i in images)))},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return "", images


async def _canvas_frames(
    http: httpx.AsyncClient, token: str, seq: int
) -> tuple[str, list[CapturedImage]]:
    node = str(seq % 4)  # a few canvases per session, as tracker 19 posts them
    frames = [
        CapturedImage(T0 + seq * 10 + n, b"RIFF\0\0\0\0WEBP" + os.urandom(3_000))
        for n in range(IMAGES_PER_UPLOAD)
    ]
    response = await http.post(
        "/v1/web/images",
        data={"type": "frames"},
        files={"frames": (f"{T0}_{node}.webp.frames", encode_frames(frames))},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return node, frames


async def test_acknowledged_images_survive_sigkill(tmp_path: Path) -> None:
    async with _after_a_crash(tmp_path, _screenshots) as (acked, project_id, store):
        missing = []
        for session_id, _, images in acked:
            stored = {(i.capture_ms, i.hash) for i in store.session_images(project_id, session_id)}
            for image in images:
                if (image.capture_ms, image_hash(image.data)) not in stored:
                    missing.append((session_id, image.capture_ms))
                    continue
                found = store.image(project_id, session_id, image_hash(image.data))
                assert found is not None and found[1] == image.data
        assert missing == [], f"{len(missing)} acknowledged images are not stored"
        shared = image_hash(b"\xff\xd8\xff\xe0same screen")
        assert store.frequent_hashes(project_id)[0] == shared


async def test_acknowledged_canvas_frames_survive_sigkill(tmp_path: Path) -> None:
    async with _after_a_crash(tmp_path, _canvas_frames) as (acked, project_id, store):
        missing = []
        for session_id, node, frames in acked:
            stored = {
                (f.node_id, f.capture_ms, f.hash)
                for f in store.session_canvas(project_id, session_id)
            }
            for frame in frames:
                digest = image_hash(frame.data)
                if (node, frame.capture_ms, digest) not in stored:
                    missing.append((session_id, frame.capture_ms))
                    continue
                found = store.canvas_image(project_id, session_id, digest)
                assert found is not None and found[1] == frame.data
        assert missing == [], f"{len(missing)} acknowledged canvas frames are not stored"
