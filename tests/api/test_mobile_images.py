"""Mobile screenshot uploads through a real server (``/v1/mobile/images``, ``/v1/ios/images``) and
the images of the public API (``/api/v1/<projectKey>/sessions/<sessionId>/images[/<hash>]``).

Sessions are started with ``/v1/web/start`` (a token is a token; the image routes only need the
session and its project), images go in as the SDKs send them (multipart, a gzipped tar or frames
stream), and what is stored is read back through the public API and, for "stored once", from the
images' SQLite file itself.
"""

from __future__ import annotations

import gzip
import io
import os
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import httpx
import trio

from api.ingest_mobile_images import EXTENSION_KEY, images_hash_list
from engine import tokens
from engine.codec.mobile_images import encode_frames
from engine.mobile_start import encode_project_id
from storage.images import CapturedImage, image_hash
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_ingest_mobile import ios_start_body, mobile_project, started
from tests.api.test_public_v1 import api_key, get, second_organization

JPEG_1 = b"\xff\xd8\xff\xe0" + b"first screen" * 50
JPEG_2 = b"\xff\xd8\xff\xe0" + b"second screen" * 50
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8L" + b"android lossless" * 40  # named .jpeg, as Android does


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> Any:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, link, 0o644, len(data)
    return info, data


def tar_gz(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buffer.getvalue())


def screenshots(*images: tuple[int, bytes]) -> bytes:
    """The SDKs' tar.gz: ``<firstTs>_1_<captureTs>.jpeg`` entries."""
    return tar_gz(*(member(f"{T0}_1_{ts}.jpeg", data) for ts, data in images))


async def session(harness: Harness) -> tuple[str, int]:
    started = await harness.started()
    return started["token"], int(started["sessionID"])


async def upload(
    harness: Harness,
    token: str | None,
    file: bytes | None,
    *,
    fields: dict[str, str] | None = None,
    path: str = "/v1/mobile/images",
    filename: str = "123-456.tar.gz",
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    files = None if file is None else {"batch": (filename, file, "application/gzip")}
    form = {"projectKey": harness.project.project_key, **(fields or {})}
    return await harness.client.post(path, data=form, files=files, headers=headers)


async def listed(harness: Harness, key: str, session_id: int) -> list[dict[str, Any]]:
    path = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/images"
    response = await get(harness, key, path)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def images_db(harness: Harness) -> Path:
    log = Path(harness.server.log.path)
    return log.with_name(f"{log.stem}-images{log.suffix}")


def rows(harness: Harness, sql: str) -> list[tuple]:
    with sqlite3.connect(images_db(harness)) as conn:
        return conn.execute(sql).fetchall()


async def test_a_tar_of_images_comes_back_through_the_public_api(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    first = screenshots((T0 + 100, JPEG_1), (T0 + 200, WEBP), (T0 + 300, JPEG_2))
    response = await upload(harness, token, first)
    assert (response.status_code, response.content) == (200, b"")

    images = await listed(harness, key, session_id)
    assert images == [
        {"hash": image_hash(JPEG_1), "captureTime": T0 + 100, "size": len(JPEG_1),
         "contentType": "image/jpeg"},
        {"hash": image_hash(WEBP), "captureTime": T0 + 200, "size": len(WEBP),
         "contentType": "image/webp"},
        {"hash": image_hash(JPEG_2), "captureTime": T0 + 300, "size": len(JPEG_2),
         "contentType": "image/jpeg"},
    ]  # fmt: skip
    base = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/images"
    for data, content_type in ((JPEG_1, "image/jpeg"), (WEBP, "image/webp")):
        one = await get(harness, key, f"{base}/{image_hash(data)}")
        assert one.status_code == 200
        assert (one.content, one.headers["content-type"]) == (data, content_type)
        assert one.headers["x-content-type-options"] == "nosniff"

    # A second session (through /ingest, as self-hosted SDKs are configured) repeats an image.
    other_token, other_session = await session(harness)
    second = screenshots((T0 + 900, JPEG_1), (T0 + 950, b"\xff\xd8\xffnew"))
    response = await upload(harness, other_token, second, filename="x.tar.gz")
    assert response.status_code == 200
    response = await harness.client.post(
        "/ingest/v1/mobile/images",
        files={"batch": ("x.tar.gz", second, "application/gzip")},
        headers={"Authorization": f"Bearer {other_token}"},
    )
    assert response.status_code == 200  # a resend: stored once, linked once
    assert [i["captureTime"] for i in await listed(harness, key, other_session)] == [
        T0 + 900,
        T0 + 950,
    ]
    assert rows(harness, "SELECT count(*) FROM image_blobs") == [(4,)]
    links = rows(harness, f"SELECT count(*) FROM image_links WHERE hash = '{image_hash(JPEG_1)}'")
    assert links == [(2,)]
    assert len(await listed(harness, key, session_id)) == 3  # the first session is unchanged

    # imagesHashList: the most linked first; [] for a project with no images.
    app = harness.server.app
    assert app is not None
    async with app.app_context():
        hashes = await images_hash_list(harness.project.project_id)
        assert hashes[0] == image_hash(JPEG_1) and len(hashes) == 4
        empty = await trio.to_thread.run_sync(harness.server.catalog.create_project, "new", "ios")
        assert await images_hash_list(empty.project_id) == []


async def test_a_frames_stream(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    frames = [CapturedImage(T0 + 5, JPEG_1), CapturedImage(T0 + 6, JPEG_2)]
    body = gzip.compress(encode_frames(frames))
    response = await upload(harness, token, body, fields={"type": "frames"}, filename="1-2.gz")
    assert response.status_code == 200
    assert [(i["hash"], i["captureTime"]) for i in await listed(harness, key, session_id)] == [
        (image_hash(JPEG_1), T0 + 5),
        (image_hash(JPEG_2), T0 + 6),
    ]


async def test_only_the_first_file_part_is_read(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    response = await harness.client.post(
        "/v1/mobile/images",
        files=[
            ("batch", ("a.tar.gz", screenshots((T0, JPEG_1)), "application/gzip")),
            ("other", ("b.tar.gz", screenshots((T0, JPEG_2)), "application/gzip")),
        ],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert [i["hash"] for i in await listed(harness, key, session_id)] == [image_hash(JPEG_1)]
    # No file at all: 200 as in the reference, nothing stored.
    fields_only = b'--B\r\nContent-Disposition: form-data; name="projectKey"\r\n\r\nk\r\n--B--\r\n'
    response = await harness.client.post(
        "/v1/mobile/images",
        content=fields_only,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "multipart/form-data; boundary=B",
        },
    )
    assert response.status_code == 200
    assert len(await listed(harness, key, session_id)) == 1


async def test_tokens_are_checked_first(harness: Harness) -> None:
    token, session_id = await session(harness)
    secret = harness.server.catalog.token_secret()
    body = screenshots((T0, JPEG_1))
    expired = tokens.sign(secret, tokens.TokenData(session_id, 0, T0 - 60_000))
    just_expired = tokens.sign(secret, tokens.TokenData(session_id, 0, T0 - 1_000))
    never_started = tokens.sign(secret, tokens.TokenData(12345, 0, T0 + 60_000))
    for bad in (None, "x", "forged." + token, expired, just_expired, never_started):
        response = await upload(harness, bad, body)
        assert response.status_code == 401, (bad, response.text)
        assert response.json()["error"]
    assert rows(harness, "SELECT count(*) FROM image_links") == [(0,)]


async def test_bad_bodies_get_a_clear_4xx(server_factory: ServerFactory) -> None:
    harness = await server_factory(images_size_limit=60_000)
    token, _ = await session(harness)
    auth = {"Authorization": f"Bearer {token}"}

    async def post(content: bytes, content_type: str | None) -> httpx.Response:
        headers = dict(auth) if content_type is None else {**auth, "Content-Type": content_type}
        return await harness.client.post("/v1/mobile/images", content=content, headers=headers)

    bomb = tar_gz(*(member(f"1_1_{n}.jpeg", bytes([n]) * 50_000) for n in range(4)))
    cases = [
        (await post(b"", "multipart/form-data; boundary=x"), 400),
        (await post(b"x" * 70_000, "multipart/form-data; boundary=x"), 413),
        (await post(b"{}", "application/json"), 415),
        (await post(b"--x--\r\n", "multipart/form-data"), 415),
        (await post(b"--x--\r\n", None), 415),
        (await post(b"no boundary in here", "multipart/form-data; boundary=x"), 400),
        (await upload(harness, token, b"not gzip at all"), 400),
        (await upload(harness, token, gzip.compress(b"not a tar" * 100)), 400),
        (await upload(harness, token, screenshots((T0, JPEG_1))[:-20]), 400),  # truncated gzip
        # A gzip bomb (a few KB, 200 KB unpacked) stops at twice the body limit.
        (await upload(harness, token, bomb), 413),
        (await upload(harness, token, b"\0" * 13, fields={"type": "frames"}), 400),
    ]

    async def chunks():  # no Content-Length: the cap applies while the body is read
        for _ in range(10):
            yield b"--x\r\n" + b"y" * 10_000

    chunked = await harness.client.post(
        "/v1/mobile/images",
        content=chunks(),
        headers={**auth, "Content-Type": "multipart/form-data; boundary=x"},
    )
    cases.append((chunked, 413))
    for response, status in cases:
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]
    assert rows(harness, "SELECT count(*) FROM image_links") == [(0,)]


def _files_under(*roots: Path) -> set[Path]:
    return {Path(d, f) for root in roots for d, _, fs in os.walk(root) for f in fs}


async def test_a_hostile_tar_writes_nothing_outside(harness: Harness, tmp_path: Path) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    before = _files_under(tmp_path, Path.cwd())
    hostile = tar_gz(
        member("../../../1_1_1.jpeg", b"\xff\xd8\xffescape"),
        member(f"{tmp_path}/1_1_2.jpeg", b"\xff\xd8\xffabsolute"),
        member("1_1_3.jpeg", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        member("1_1_4.jpeg", kind=tarfile.LNKTYPE, link="../../etc/passwd"),
        member("sub", kind=tarfile.DIRTYPE),
        member("sub/1_1_5.jpeg", b"\xff\xd8\xffin a directory"),
        member("1_1_6.jpeg", kind=tarfile.CHRTYPE),
        member(f"{T0}_1_{T0 + 7}.jpeg", JPEG_1),
    )
    assert (await upload(harness, token, hostile)).status_code == 200
    assert [i["hash"] for i in await listed(harness, key, session_id)] == [image_hash(JPEG_1)]
    # An entry claiming 8 GiB is refused, and nothing of its upload is stored.
    raw = bytearray(gzip.decompress(screenshots((T0 + 8, JPEG_2))))
    raw[124:136], raw[148:156] = b"77777777777\0", b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    response = await upload(harness, token, gzip.compress(bytes(raw)))
    assert response.status_code == 413, response.text
    assert len(await listed(harness, key, session_id)) == 1
    created = _files_under(tmp_path, Path.cwd()) - before
    assert {path.name for path in created} <= {
        "replayd-images.db", "replayd-images.db-wal", "replayd-images.db-shm"
    }  # fmt: skip


async def test_images_are_scoped_to_their_project(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    assert (await upload(harness, token, screenshots((T0, JPEG_1)))).status_code == 200
    mine = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/images"
    other = await trio.to_thread.run_sync(harness.server.catalog.create_project, "other", "ios")
    theirs = f"/api/v1/{other.project_key}/sessions/{session_id}/images"
    assert (await get(harness, key, theirs)).json() == {"data": []}
    response = await get(harness, key, f"{theirs}/{image_hash(JPEG_1)}")
    assert (response.status_code, response.json()) == (404, {"errors": ["image not found."]})
    other_key, _ = await trio.to_thread.run_sync(second_organization, harness)
    for path in (mine, f"{mine}/{image_hash(JPEG_1)}"):
        response = await get(harness, other_key, path)
        assert (response.status_code, response.json()) == (404, {"errors": ["project not found."]})
        assert (await get(harness, None, path)).status_code == 401
    for path, status in (
        (f"{mine}/{image_hash(JPEG_1).upper()}", 422),
        (f"{mine}/{image_hash(JPEG_2)}", 404),
        (f"/api/v1/{harness.project.project_key}/sessions/abc/images", 422),
        (f"/api/v1/{harness.project.project_key}/sessions/{2**64}/images", 200),
    ):
        assert (await get(harness, key, path)).status_code == status, path


async def test_the_old_ios_route_stores_files_named_by_hash(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    harness.clock.now = T0 + 42
    files = [
        ("file", (image_hash(JPEG_1), JPEG_1, "image/jpeg")),
        ("file", ("not-our-hash", JPEG_2, "image/jpeg")),
    ]

    async def post(fields: dict[str, str], path: str = "/v1/ios/images") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await harness.client.post(path, data=fields, files=files, headers=headers)

    other = await trio.to_thread.run_sync(harness.server.catalog.create_project, "other", "ios")
    for fields, status in (
        ({}, 400),
        ({"projectID": "1"}, 400),  # a plain project id: only the README's encoding is taken
        ({"projectID": str(encode_project_id(other.project_id))}, 403),
        ({"projectKey": "unknownunknownunknow"}, 404),
        ({"projectKey": other.project_key}, 403),
    ):
        response = await post(fields)
        assert response.status_code == status, (fields, response.text)
    assert await listed(harness, key, session_id) == []
    response = await post({"projectKey": harness.project.project_key}, "/ingest/v1/ios/images")
    assert response.status_code == 200, response.text
    expected = sorted([(image_hash(JPEG_1), T0 + 42), (image_hash(JPEG_2), T0 + 42)])
    assert (
        sorted((i["hash"], i["captureTime"]) for i in await listed(harness, key, session_id))
        == expected
    )
    # The project named by the old README's encoded projectID, as /v1/ios/start takes it: the
    # same files again add nothing.
    encoded = encode_project_id(harness.project.project_id)
    response = await post({"projectID": str(encoded)})
    assert response.status_code == 200, response.text
    assert (
        sorted((i["hash"], i["captureTime"]) for i in await listed(harness, key, session_id))
        == expected
    )


async def test_a_mobile_start_answers_the_hashes_the_project_stores(harness: Harness) -> None:
    """``imagesHashList`` of ``/v1/mobile/start`` (MOBILE.md 2.9) is what the store holds most."""
    app = await mobile_project(harness)
    first = await started(harness, ios_start_body(app.project_key))
    assert first["imagesHashList"] == []
    body = screenshots((T0 + 1, JPEG_1), (T0 + 2, JPEG_2), (T0 + 3, JPEG_1))
    response = await harness.client.post(
        "/v1/mobile/images",
        data={"projectKey": app.project_key},
        files={"batch": ("1-2.tar.gz", body, "application/gzip")},
        headers={"Authorization": f"Bearer {first['token']}"},
    )
    assert response.status_code == 200, response.text
    second = await started(harness, ios_start_body(app.project_key, userUUID=None))
    assert second["imagesHashList"][0] == image_hash(JPEG_1)  # linked twice: the most used
    assert sorted(second["imagesHashList"]) == sorted([image_hash(JPEG_1), image_hash(JPEG_2)])


async def test_the_answers_match_the_openapi_description(harness: Harness) -> None:
    import jsonschema_rs

    from tests.api.test_openapi import spec_of

    spec = await spec_of(harness)
    key = await api_key(harness)
    token, session_id = await session(harness)
    assert (
        await upload(harness, token, screenshots((T0, JPEG_1), (T0 + 1, WEBP)))
    ).status_code == 200
    template = "/api/v1/{project_key}/sessions/{session_id}/images"
    reply = spec["paths"][template]["get"]["responses"]["200"]
    schema = {**reply["content"]["application/json"]["schema"], **spec}
    answer = {"data": await listed(harness, key, session_id)}
    assert len(answer["data"]) == 2
    assert [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(answer)] == []
    one = spec["paths"][f"{template}/{{image_hash}}"]["get"]["responses"]["200"]
    assert set(one["content"]) >= {"image/jpeg", "image/webp"}
    for prefix in ("", "/ingest"):
        for route in ("mobile", "ios"):
            operation = spec["paths"][f"{prefix}/v1/{route}/images"]["post"]
            assert operation["security"] == [{"sessionToken": []}]
            assert "multipart/form-data" in operation["requestBody"]["content"]


async def test_uploads_larger_than_a_batch_are_accepted_up_to_the_images_limit(
    harness: Harness,
) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    big = b"\xff\xd8\xff" + os.urandom(3_000_000)  # incompressible, three times a batch's limit
    assert (await upload(harness, token, screenshots((T0, big)))).status_code == 200
    assert [i["size"] for i in await listed(harness, key, session_id)] == [len(big)]
    too_big = await upload(harness, token, os.urandom(10_000_000))  # plus the multipart framing
    assert too_big.status_code == 413, too_big.text
    # The public API keeps its own (the app's default) cap.
    response = await harness.client.post(
        "/api/v1/projects", content=b" " * 2_000_000, headers={"Authorization": key}
    )
    assert response.status_code == 413


async def test_a_full_images_database_answers_503_then_recovers(harness: Harness) -> None:
    key = await api_key(harness)
    token, session_id = await session(harness)
    app = harness.server.app
    assert app is not None
    store = app.extensions[EXTENSION_KEY].store
    assert store is not None
    writer = store._writer  # the store's own connection: cap its file where it is now

    def cap(pages: int | None) -> None:
        with store._write_lock:
            if pages is None:
                (pages,) = writer.execute("PRAGMA page_count").fetchone()
            writer.execute(f"PRAGMA max_page_count = {pages}")

    await trio.to_thread.run_sync(cap, None)
    big = b"\xff\xd8\xff" + os.urandom(200_000)
    response = await upload(harness, token, screenshots((T0, big)))
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert await listed(harness, key, session_id) == []
    await trio.to_thread.run_sync(cap, 1_000_000)  # space again: the retry succeeds
    assert (await upload(harness, token, screenshots((T0, big)))).status_code == 200
    assert len(await listed(harness, key, session_id)) == 1
