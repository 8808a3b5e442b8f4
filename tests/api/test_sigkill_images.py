"""Images under a crash: `replayd serve` is SIGKILLed during a burst of concurrent screenshot
uploads; every image of every upload that got a 200 must be in the images' database after a
restart, linked to its session, and read back byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import trio

from storage.images import ImageStore, image_hash
from tests.api.conftest import T0
from tests.api.test_mobile_images import screenshots
from tests.api.test_sigkill import serve_command, sigkill_during_burst, start_session
from tests.soak.trackers import read_log, read_until_serving

CLIENTS = 6
KILL_AFTER_ACKS = 60  # acknowledged uploads after which the server is killed
IMAGES_PER_UPLOAD = 3

Acked = list[tuple[int, list[tuple[int, bytes]]]]  # (session id, [(capture ms, bytes)]) per upload


async def _client(base_url: str, project_key: str, acked: Acked, enough: trio.Event) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        try:
            token, session_id = await start_session(http, project_key)
            seq = 0
            while True:
                seq += 1
                # Distinct images (random bytes), each a few KB as a small screenshot is; the
                # first is the same in every upload (stored once, linked each time).
                images = [(T0 + seq * 10, b"\xff\xd8\xff\xe0same screen")]
                images += [
                    (T0 + seq * 10 + n, b"\xff\xd8\xff" + os.urandom(4_000))
                    for n in range(1, IMAGES_PER_UPLOAD)
                ]
                response = await http.post(
                    "/v1/mobile/images",
                    files={"batch": (f"{session_id}-{seq}.tar.gz", screenshots(*images))},
                    data={"projectKey": project_key},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert response.status_code == 200, response.text
                acked.append((session_id, images))
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()
        except httpx.TransportError:
            return  # the server died under us: expected, that is the test


async def test_acknowledged_images_survive_sigkill(tmp_path: Path) -> None:
    acked: Acked = []

    async def client(base_url: str, project_key: str, _: int, enough: trio.Event) -> None:
        await _client(base_url, project_key, acked, enough)

    db = await sigkill_during_burst(tmp_path, client, CLIENTS)
    assert len(acked) >= KILL_AFTER_ACKS
    # A restart opens (and recovers) the images' database as the crash left it.
    with (tmp_path / "restart.log").open("wb") as stderr, trio.fail_after(30):
        restarted = await trio.lowlevel.open_process(
            serve_command(db), stdout=subprocess.PIPE, stderr=stderr
        )
        assert restarted.stdout is not None
        await read_until_serving(restarted.stdout)
        restarted.send_signal(signal.SIGTERM)
        assert await restarted.wait() == 0

    project_id = read_log(db)[0].project_id
    store = ImageStore.open(tmp_path / "replayd-images.db")
    try:
        missing = []
        for session_id, images in acked:
            stored = {(i.capture_ms, i.hash) for i in store.session_images(project_id, session_id)}
            for capture_ms, data in images:
                if (capture_ms, image_hash(data)) not in stored:
                    missing.append((session_id, capture_ms))
                    continue
                found = store.image(project_id, session_id, image_hash(data))
                assert found is not None and found[1] == data
        assert missing == [], f"{len(missing)} acknowledged images are not stored"
        shared = image_hash(b"\xff\xd8\xff\xe0same screen")
        assert store.frequent_hashes(project_id)[0] == shared
    finally:
        store.close()
