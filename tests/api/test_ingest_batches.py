"""POST /v1/web/i through a real server: auth, size caps, gzip, DataType routing, dedupe, and every
acknowledged batch found byte-identical in the log."""

from __future__ import annotations

import gzip
import sqlite3

import trio

from engine import tokens
from engine.codec.web import decode_batch
from engine.codec.web_messages import MouseClick
from storage.records import RecordKind
from tests.api.conftest import FIXTURES, T0, Harness, ServerFactory, make_batch

CAPTURED = (FIXTURES / "web-basic" / "batch-001.bin").read_bytes()
CAPTURED_GZIP = (FIXTURES / "real-tracker" / "shop-page0-batch1.gzip.bin").read_bytes()
CAPTURED_GZIP_PLAIN = (FIXTURES / "real-tracker" / "shop-page0-batch1.bin").read_bytes()


async def batches(harness: Harness) -> list:
    return [r for r in await harness.records() if r.kind is not RecordKind.WEB_START]


async def test_captured_and_encoded_batches_are_stored_byte_identical(harness: Harness) -> None:
    start = await harness.started()
    sent = {"0_1": CAPTURED}
    for seq in range(2, 6):
        sent[f"0_{seq}"] = make_batch(0, seq * 10, clicks=seq)
    for key, body in sent.items():
        response = await harness.upload(start["token"], body, batch=f"{key}_{len(body)}_kyes")
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["access-control-allow-origin"] == "*"
    stored = await batches(harness)
    assert [r.payload for r in stored] == list(sent.values())
    assert [r.batch_key.split("#")[0] for r in stored] == list(sent)
    assert {(r.kind, r.session_id, r.project_id, r.received_at_ms) for r in stored} == {
        (RecordKind.WEB_BATCH, int(start["sessionID"]), harness.project.project_id, T0)
    }
    # The stored bytes still decode to what our encoder wrote.
    assert decode_batch(stored[-1].payload)[-1] == MouseClick(5, 10, "button 4", "#b4", 430, 200)


async def test_missing_forged_and_expired_tokens_get_401(harness: Harness) -> None:
    start = await harness.started()
    token = start["token"]
    verified = tokens.verify(harness.server.catalog.token_secret(), token, T0).data
    assert verified is not None
    forged = tokens.sign(b"another secret" * 3, verified)
    for bad, headers in [
        (None, {}),
        (forged, {}),
        ("garbage", {}),
        (None, {"Authorization": token}),
    ]:
        response = await harness.upload(bad, CAPTURED, headers=headers)
        assert response.status_code == 401
        assert set(response.json()) == {"error"}
        assert response.headers["access-control-allow-origin"] == "*"
    harness.clock.now = T0 + 7_200_000 + 30_000  # expired 30 s ago: no longer "just expired"
    assert (await harness.upload(token, CAPTURED)).status_code == 401
    assert await batches(harness) == []


async def test_just_expired_token_stores_the_batch_then_answers_401(harness: Harness) -> None:
    start = await harness.started()
    harness.clock.now = T0 + 7_200_000 + 29_000
    response = await harness.upload(start["token"], CAPTURED)
    assert response.status_code == 401
    (stored,) = await batches(harness)
    assert stored.payload == CAPTURED


async def test_token_of_a_session_without_start_record_gets_401(harness: Harness) -> None:
    probe = await harness.started(doNotRecord=True)
    assert (await harness.upload(probe["token"], CAPTURED)).status_code == 401


async def test_gzip_body_is_stored_gunzipped(harness: Harness) -> None:
    start = await harness.started()
    response = await harness.upload(
        start["token"], CAPTURED_GZIP, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200
    (stored,) = await batches(harness)
    assert stored.payload == CAPTURED_GZIP_PLAIN


async def test_size_limits_and_empty_or_corrupt_bodies(server_factory: ServerFactory) -> None:
    harness = await server_factory(beacon_size_limit=4_000, decompressed_size_limit=8_000)
    token = (await harness.started())["token"]
    assert (await harness.upload(token, b"\x51" * 4_000, batch="0_1")).status_code == 200
    too_big = await harness.upload(token, b"\x51" * 4_001, batch="0_2")
    assert too_big.status_code == 413 and set(too_big.json()) == {"error"}

    async def chunks():  # no Content-Length: the cap applies while reading
        for _ in range(10):
            yield b"\x51" * 1_000

    streamed = await harness.client.post(
        "/v1/web/i",
        content=chunks(),
        params={"batch": "0_3"},
        headers={"Authorization": f"Bearer {token}", "DataType": "player"},
    )
    assert streamed.status_code == 413
    bomb = gzip.compress(b"\0" * 100_000)  # 100 kB of zeros gzip to ~100 bytes
    assert len(bomb) < 4_000
    response = await harness.upload(token, bomb, batch="0_4", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert (await harness.upload(token, b"", batch="0_5")).status_code == 400
    assert (
        await harness.upload(token, b"not gzip", batch="0_6", headers={"Content-Encoding": "gzip"})
    ).status_code == 400
    assert (
        await harness.upload(
            token, gzip.compress(b"abc")[:-4], batch="0_7", headers={"Content-Encoding": "gzip"}
        )
    ).status_code == 400
    assert (
        await harness.upload(token, b"abc", batch="0_8", headers={"Content-Encoding": "br"})
    ).status_code == 415
    assert [r.batch_key.split("#")[0] for r in await batches(harness)] == ["0_1"]


async def test_data_types_route_to_record_kinds(harness: Harness) -> None:
    token = (await harness.started())["token"]
    player, assets = make_batch(0, 0, 2, version=2), make_batch(0, 3, 1, version=3)
    visual = player + assets
    assert (
        await harness.upload(
            token,
            visual,
            batch="0_1_9_kyes",
            data_type="visual",
            params={"split": str(len(player))},
        )
    ).status_code == 200
    for seq, data_type in enumerate(["assets", "devtools", "analytics", "all", None], start=2):
        body = make_batch(0, seq * 10, 1)
        assert (
            await harness.upload(token, body, batch=f"0_{seq}_1_kno", data_type=data_type)
        ).status_code == 200
    stored = await batches(harness)
    assert [(r.kind, r.batch_key.split("#")[0]) for r in stored] == [
        (RecordKind.WEB_BATCH, "0_1"),
        (RecordKind.WEB_ASSETS, "0_1:assets"),
        (RecordKind.WEB_ASSETS, "0_2:assets"),
        (RecordKind.WEB_BATCH, "0_3:devtools"),
        (RecordKind.WEB_BATCH, "0_4:analytics"),
        (RecordKind.WEB_BATCH, "0_5"),
        (RecordKind.WEB_BATCH, "0_6"),
    ]
    assert (stored[0].payload, stored[1].payload) == (player, assets)
    assert stored[0].position + 1 == stored[1].position


async def test_visual_batch_needs_a_split_inside_the_body(harness: Harness) -> None:
    token = (await harness.started())["token"]
    body = make_batch(0, 0, 2)
    for split in [None, "0", str(len(body)), "-3", "x"]:
        params = {} if split is None else {"split": split}
        response = await harness.upload(token, body, data_type="visual", params=params)
        assert response.status_code == 400, split
    assert (await harness.upload(token, body, data_type="movie")).status_code == 400
    assert await batches(harness) == []


async def test_retried_batch_is_stored_once_and_acknowledged_again(harness: Harness) -> None:
    token = (await harness.started())["token"]
    body = make_batch(0, 0, 3)
    first = await harness.upload(token, body, batch="0_1_200_kyes")
    # The tracker's retry carries a retry tag; a gzipped retry has the same content.
    again = await harness.upload(token, body, batch="0_1_200_kyes_network:503")
    zipped = await harness.upload(
        token, gzip.compress(body), batch="0_1_200_kno", headers={"Content-Encoding": "gzip"}
    )
    assert (first.status_code, again.status_code, zipped.status_code) == (200, 200, 200)
    (stored,) = await batches(harness)
    assert stored.payload == body
    assert harness.server.log.statistics().duplicates == 2


async def test_batches_without_usable_batch_parameter_still_dedupe(harness: Harness) -> None:
    token = (await harness.started())["token"]
    one, two = make_batch(0, 0, 1), make_batch(0, 5, 2)
    for body, batch in [(one, None), (one, None), (two, "garbage"), (two, "x_y")]:
        assert (await harness.upload(token, body, batch=batch)).status_code == 200
    assert [r.payload for r in await batches(harness)] == [one, two]


async def test_two_tabs_of_one_session_with_the_same_counters_are_both_kept(
    harness: Harness,
) -> None:
    token = (await harness.started())["token"]
    tab_a, tab_b = make_batch(0, 0, 1, tab="aaaaaaaaaaaa"), make_batch(0, 0, 1, tab="bbbbbbbbbbbb")
    for body in (tab_a, tab_b):
        assert (await harness.upload(token, body, batch="0_1_50_kyes")).status_code == 200
    assert [r.payload for r in await batches(harness)] == [tab_a, tab_b]


async def test_uploads_keep_working_after_a_restart(server_factory: ServerFactory) -> None:
    first = await server_factory()
    start = await first.started()
    # An idle keep-alive connection would hold the graceful shutdown for its whole timeout.
    await first.client.aclose()
    first.server.shutdown()
    await first.server.wait_stopped()
    # Same database, new process state: the session -> project map comes back from the log.
    second = await server_factory()
    body = make_batch(0, 0, 2)
    assert (await second.upload(start["token"], body)).status_code == 200
    stored = [r for r in await second.records() if r.kind is RecordKind.WEB_BATCH]
    assert [(r.payload, r.project_id) for r in stored] == [(body, first.project.project_id)]


async def test_full_log_queue_answers_503_only_after_the_bounded_wait(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(log_queue_size=1, append_wait_timeout=0.3)
    token = (await harness.started())["token"]
    log = harness.server.log
    # Hold SQLite's write lock from another connection: the writer blocks inside its transaction.
    blocker = sqlite3.connect(log.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    results: dict[str, int] = {}

    async def send(key: str) -> None:
        results[key] = (
            await harness.upload(token, make_batch(0, int(key[2:]), 1), batch=key)
        ).status_code

    async def until(condition) -> None:
        while not condition():
            await trio.sleep(0.01)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, "0_1")  # taken by the writer, which then waits for the lock
            await until(lambda: log.statistics().queued == 0 and log.statistics().commits == 1)
            await trio.sleep(0.05)
            nursery.start_soon(send, "0_2")  # fills the one-slot queue
            await until(lambda: log.statistics().queued == 1)
            await send("0_3")  # no room for 0.3 s: 503
            blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert results == {"0_1": 200, "0_2": 200, "0_3": 503}
    assert [r.batch_key.split("#")[0] for r in await batches(harness)] == ["0_1", "0_2"]
