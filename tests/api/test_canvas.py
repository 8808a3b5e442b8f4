"""Canvas uploads through a real server (``POST /v1/web/images``, as tracker 19 sends them) and
their public API (``/api/v1/<projectKey>/sessions/<sessionId>/canvas[/<hash>]``)."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from engine.codec.mobile_images import encode_frames
from storage.images import CapturedImage, image_hash
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_mobile_images import rows
from tests.api.test_public_v1 import api_key, get, second_organization

WEBP_1 = b"RIFF\x10\x00\x00\x00WEBPVP8L" + b"canvas frame one" * 20
WEBP_2 = b"RIFF\x10\x00\x00\x00WEBPVP8L" + b"canvas frame two" * 20
PNG = b"\x89PNG\r\n\x1a\n" + b"snapshot" * 30


async def session(harness: Harness) -> tuple[str, int]:
    started = await harness.started()
    return started["token"], int(started["sessionID"])


async def send_frames(
    harness: Harness, token: str | None, node: str, frames: list[tuple[int, bytes]], **kw: Any
) -> httpx.Response:
    """One canvas's frames as tracker 19 posts them (framesSupport: true)."""
    body = encode_frames(CapturedImage(ts, data) for ts, data in frames)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await harness.client.post(
        kw.get("path", "/v1/web/images"),
        data={"type": "frames"},
        files={"frames": (kw.get("name", f"{T0}_{node}.webp.frames"), body)},
        headers=headers,
    )


async def canvas(harness: Harness, key: str, session_id: int) -> list[dict[str, Any]]:
    path = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/canvas"
    response = await get(harness, key, path)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_frames_and_snapshots_come_back_by_canvas_node(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    response = await send_frames(harness, token, "12", [(T0 + 100, WEBP_1), (T0 + 1100, WEBP_2)])
    assert (response.status_code, response.content) == (200, b"")
    # Older trackers: one snapshot part per image, through /ingest, as self-hosting configures it.
    response = await harness.client.post(
        "/ingest/v1/web/images",
        files=[
            ("snapshot", (f"{T0}_7_{T0 + 50}.png", PNG)),
            ("snapshot", (f"{T0}_7_{T0 + 60}.png", WEBP_1)),
        ],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    base = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/canvas"

    def frame(ts: int, data: bytes, content_type: str) -> dict[str, Any]:
        digest = image_hash(data)
        return {"timestamp": ts, "hash": digest, "size": len(data), "contentType": content_type,
                "url": f"{base}/{digest}"}  # fmt: skip

    assert await canvas(harness, key, session_id) == [
        {"nodeId": "12", "frames": [frame(T0 + 100, WEBP_1, "image/webp"),
                                     frame(T0 + 1100, WEBP_2, "image/webp")]},
        {"nodeId": "7", "frames": [frame(T0 + 50, PNG, "image/png"),
                                    frame(T0 + 60, WEBP_1, "image/webp")]},
    ]  # fmt: skip
    one = await get(harness, key, f"{base}/{image_hash(PNG)}")
    assert (one.status_code, one.content, one.headers["content-type"]) == (200, PNG, "image/png")
    assert one.headers["x-content-type-options"] == "nosniff"
    # Stored once although two canvases and a resend carry it; not a mobile screenshot.
    again = await send_frames(harness, token, "12", [(T0 + 100, WEBP_1)])
    assert again.status_code == 200
    assert rows(harness, "SELECT count(*) FROM image_blobs") == [(3,)]
    assert rows(harness, "SELECT count(*) FROM canvas_frames") == [(4,)]
    assert rows(harness, "SELECT count(*) FROM image_links") == [(0,)]
    images = await get(
        harness, key, f"/api/v1/{harness.project.project_key}/sessions/{session_id}/images"
    )
    assert images.json() == {"data": []}


async def test_the_start_answer_enables_canvas_only_when_configured(
    server_factory: ServerFactory,
) -> None:
    off = await server_factory()
    assert (await off.started())["canvasEnabled"] is False
    on = await server_factory("other.db", record_canvas=True)
    answer = await on.started()
    assert answer["canvasEnabled"] is True and answer["framesSupport"] is True


async def test_bad_uploads_get_a_clear_4xx_and_store_nothing(server_factory: ServerFactory) -> None:
    harness = await server_factory(images_size_limit=20_000)
    token, _ = await session(harness)
    frames = [(T0, WEBP_1)]
    assert (await send_frames(harness, None, "1", frames)).status_code == 401
    assert (await send_frames(harness, "not-a-token", "1", frames)).status_code == 401
    for name in ("../../etc/passwd", "12.webp.frames", f"{T0}_1.webp", f"{T0}_a b.webp.frames"):
        bad = await send_frames(harness, token, "1", frames, name=name)
        assert bad.status_code == 400, name
        assert "canvas file names" in bad.json()["error"]
    truncated = await harness.client.post(
        "/v1/web/images",
        files={"frames": (f"{T0}_1.webp.frames", encode_frames([CapturedImage(T0, WEBP_1)])[:-3])},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert truncated.status_code == 400 and "truncated" in truncated.json()["error"]
    big = await send_frames(harness, token, "1", [(T0, b"\x89PNG" * 6000)])
    assert big.status_code == 413
    not_multipart = await harness.client.post(
        "/v1/web/images", content=b"x", headers={"Authorization": f"Bearer {token}"}
    )
    assert not_multipart.status_code == 415
    assert set(not_multipart.json()) == {"error"}
    assert rows(harness, "SELECT count(*) FROM canvas_frames") == [(0,)]


async def test_canvas_frames_are_scoped_to_their_project(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    assert (await send_frames(harness, token, "3", [(T0, WEBP_1)])).status_code == 200
    mine = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/canvas"
    other = await trio.to_thread.run_sync(harness.server.catalog.create_project, "other")
    theirs = f"/api/v1/{other.project_key}/sessions/{session_id}/canvas"
    assert (await get(harness, key, theirs)).json() == {"data": []}
    response = await get(harness, key, f"{theirs}/{image_hash(WEBP_1)}")
    assert (response.status_code, response.json()) == (404, {"errors": ["canvas frame not found."]})
    other_key, _ = await trio.to_thread.run_sync(second_organization, harness)
    for path in (mine, f"{mine}/{image_hash(WEBP_1)}"):
        response = await get(harness, other_key, path)
        assert (response.status_code, response.json()) == (404, {"errors": ["project not found."]})
        assert (await get(harness, None, path)).status_code == 401
    for path, status in (
        (f"{mine}/{image_hash(WEBP_1).upper()}", 422),
        (f"{mine}/{image_hash(WEBP_2)}", 404),
        (f"/api/v1/{harness.project.project_key}/sessions/abc/canvas", 422),
        (f"/api/v1/{harness.project.project_key}/sessions/{2**64}/canvas", 200),
    ):
        assert (await get(harness, key, path)).status_code == status, path
