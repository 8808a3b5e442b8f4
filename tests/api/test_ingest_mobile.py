"""Mobile ingest through the real server: ``/v1/mobile/*`` and the old ``/v1/ios/*`` (MOBILE.md 2).

Message bodies are made by the mobile codec's encoder (checked against MOBILE.md 6's bytes): the
request path stores them opaquely, so their exact bytes come back from the log.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx

from engine import tokens
from engine.codec.mobile_messages import (
    MobileBatchMeta,
    MobileClickEvent,
    MobileCrash,
    decode_batch,
    encode_batch,
    encode_message,
)
from engine.mobile_start import encode_project_id
from engine.start_payload import WebStartPayload
from storage.catalog import Project
from storage.records import RecordKind
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_public_v1 import end_all_sessions

IOS_UA = "ShopApp/3 CFNetwork/1410.0.3 Darwin/22.6.0"
ANDROID_UA = "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 7 Build/UQ1A.240205.004)"
DEVICE_TS = T0 - 250  # the device clock is a little behind the server's


def batch(first_index: int = 0, taps: int = 2) -> bytes:
    """A normal batch: MobileBatchMeta (107), then MobileClickEvent (100) taps."""
    messages: list[Any] = [MobileBatchMeta(DEVICE_TS, first_index)]
    messages += [MobileClickEvent(DEVICE_TS + 1 + n, f"Login {n}", 150, 420) for n in range(taps)]
    return encode_batch(messages)


def crash() -> bytes:
    """A bare MobileCrash (97), as the SDKs' crash file holds it: no BatchMeta in front."""
    return encode_message(MobileCrash(DEVICE_TS + 9, "NSRangeException", "index 3", "#0 main"))


def test_the_encoder_writes_the_spec_examples() -> None:
    # MOBILE.md 6, examples 1 and 2, byte for byte: what these tests upload is the SDKs' framing.
    meta = encode_message(MobileBatchMeta(1_700_000_000_000, 0))
    assert meta.hex(" ") == "6b 80 d0 95 ff bc 31 01 00"
    click = encode_message(MobileClickEvent(1_700_000_000_001, "Login", 150, 420))
    assert click.hex(" ") == "64 81 d0 95 ff bc 31 0a 05 4c 6f 67 69 6e 96 01 a4 03"
    assert [type(m) for m in decode_batch(batch(taps=2)).messages] == [
        MobileBatchMeta,
        MobileClickEvent,
        MobileClickEvent,
    ]
    assert decode_batch(crash()).messages == [
        MobileCrash(DEVICE_TS + 9, "NSRangeException", "index 3", "#0 main")
    ]


def ios_start_body(project_key: str | None, **fields: Any) -> dict[str, Any]:
    """What the iOS SDK (1.0.14) sends: no platform, the model identifier as userDevice."""
    body: dict[str, Any] = {
        "projectKey": project_key,
        "trackerVersion": "1.0.14",
        "revID": "N/A",
        "userUUID": "6E0B0C8A-5C61-4A4B-9D3D-2F3C1C7C5E11",
        "userOSVersion": "17.2",
        "userDevice": "iPhone14,8",
        "userDeviceType": "iPhone 14 Plus",
        "timestamp": DEVICE_TS,
        "timezone": "UTC+02:00",
        "deviceMemory": 5_898_240,
        "doNotRecord": False,
        "width": 428,
        "height": 926,
        "performances": {"physicalMemory": 6039797760, "processorCount": 6, "orientation": 1},
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def android_start_body(project_key: str, **fields: Any) -> dict[str, Any]:
    """What the Android SDK (1.0.10) sends: platform "android", the Build.DEVICE codename."""
    body = ios_start_body(
        project_key,
        trackerVersion="1.0.10",
        userUUID="0d6f4a8e-3c1b-4f7e-9a55-7c2b8e1f0a33",
        userOSVersion="14",
        userDevice="panther",
        userDeviceType="tablet",
        platform="android",
        width=1080,
        height=2400,
    )
    body.update(fields)
    return body


async def mobile_project(harness: Harness, platform: str = "ios", **settings: Any) -> Project:
    return harness.server.catalog.create_project(f"{platform} app", platform, **settings)


async def post_start(
    harness: Harness,
    body: dict[str, Any] | bytes,
    *,
    path: str = "/v1/mobile/start",
    user_agent: str = IOS_UA,
    content_type: str = "application/json",
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, "User-Agent": user_agent}
    return await harness.client.post(path, content=content, headers=headers)


async def started(harness: Harness, body: dict[str, Any], **options: Any) -> dict[str, Any]:
    response = await post_start(harness, body, **options)
    assert response.status_code == 200, response.text
    return response.json()


async def post_batch(
    harness: Harness,
    token: str | None,
    body: bytes,
    *,
    path: str = "/v1/mobile/i",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    all_headers.update(headers or {})
    return await harness.client.post(path, content=body, headers=all_headers)


def _payloads(records: list[Any], kind: RecordKind) -> list[Any]:
    return [r for r in records if r.kind is kind]


def _check_answer_types(answer: dict[str, Any], project: Project) -> None:
    # The iOS decoder's required keys and types (MOBILE.md 2.2): a mismatch stops the SDK.
    assert isinstance(answer["token"], str) and answer["token"]
    assert isinstance(answer["userUUID"], str)
    assert isinstance(answer["sessionID"], str) and answer["sessionID"].isdigit()
    assert answer["projectID"] == str(project.project_id)
    assert type(answer["fps"]) is int and answer["fps"] == 1
    assert answer["quality"] == "low"
    assert type(answer["beaconSizeLimit"]) is int
    assert answer["framesSupport"] is True
    assert answer["imagesHashList"] == []


async def test_ios_shaped_start_answers_every_key_and_records_the_device(harness: Harness) -> None:
    project = await mobile_project(harness, "ios", max_session_duration_ms=3_600_000)
    answer = await started(harness, ios_start_body(project.project_key))
    _check_answer_types(answer, project)
    assert answer["userUUID"] == "6e0b0c8a-5c61-4a4b-9d3d-2f3c1c7c5e11"  # canonical form

    [record] = _payloads(await harness.records(), RecordKind.MOBILE_START)
    assert (record.session_id, record.project_id) == (int(answer["sessionID"]), project.project_id)
    assert record.session_key == "" and record.batch_key is None
    start = WebStartPayload.from_bytes(record.payload)
    assert (start.platform, start.user_os, start.user_os_version) == ("ios", "IOS", "17.2")
    assert (start.user_device, start.user_device_type) == ("iPhone 14 Plus", "mobile")
    assert (start.delay, start.start_timestamp, start.continued) == (0, DEVICE_TS, False)
    assert (start.device_memory, start.js_heap_size_limit) == (5_898_240, 5_898_240)
    assert (start.screen_width, start.screen_height, start.timezone) == (428, 926, "UTC+02:00")
    assert (start.tracker_version, start.rev_id, start.user_agent) == ("1.0.14", "N/A", IOS_UA)
    check = tokens.verify(harness.server.catalog.token_secret(), answer["token"], harness.clock())
    assert check.status is tokens.TokenStatus.VALID and check.data is not None
    assert check.data.delay == 0
    assert check.data.expiry_ms == harness.clock() + 3_600_000  # the project's max duration


async def test_android_shaped_start_keeps_the_codename_and_the_sent_type(harness: Harness) -> None:
    project = await mobile_project(harness, "android")
    answer = await started(
        harness,
        android_start_body(project.project_key),
        user_agent=ANDROID_UA,
        content_type="application/json; charset=utf-8",
    )
    _check_answer_types(answer, project)
    [record] = _payloads(await harness.records(), RecordKind.MOBILE_START)
    start = WebStartPayload.from_bytes(record.payload)
    assert (start.platform, start.user_os, start.user_os_version) == ("android", "Android", "14")
    assert (start.user_device, start.user_device_type) == ("panther", "tablet")
    assert (start.screen_width, start.screen_height) == (1080, 2400)


async def test_start_checks_in_the_reference_order(harness: Harness) -> None:
    ios = await mobile_project(harness, "ios")
    web = harness.project

    async def status(body: dict[str, Any] | bytes, **options: Any) -> tuple[int, str]:
        response = await post_start(harness, body, **options)
        assert response.headers["content-type"] == "application/json"
        return response.status_code, response.json().get("error", "")

    assert (await status(b""))[0] == 400
    assert (await status(b"{not json"))[0] == 400
    assert (await status(b"[]"))[0] == 400
    assert (await status(ios_start_body(ios.project_key, width="wide")))[0] == 400
    assert await status(ios_start_body(None)) == (403, "projectKey value required")
    # A wrong type is refused before the project is looked at, as Go's decoder does.
    assert (await status(ios_start_body(None, timestamp="now")))[0] == 400
    assert await status(ios_start_body("nosuchkey0000000000x")) == (
        404,
        "project doesn't exist or is not active",
    )
    assert await status(ios_start_body(web.project_key)) == (
        403,
        "project doesn't support mobile sessions",
    )
    # The platform check comes before the version check.
    assert (await status(ios_start_body(web.project_key, trackerVersion="1.0.0")))[0] == 403
    assert await status(ios_start_body(ios.project_key, trackerVersion="1.0.8")) == (
        426,
        "tracker version not supported",
    )
    assert (await status(ios_start_body(ios.project_key, trackerVersion=None)))[0] == 426
    assert await status(ios_start_body(ios.project_key), user_agent="") == (
        403,
        "browser not recognized",
    )
    assert (await status(ios_start_body(ios.project_key, trackerVersion="1.0.9-rc1")))[0] == 200
    too_big = json.dumps(ios_start_body(ios.project_key, revID="x" * 200_000)).encode()
    assert (await status(too_big))[0] == 413
    assert len(_payloads(await harness.records(), RecordKind.MOBILE_START)) == 1


async def test_sampling_refuses_a_device_on_every_retry(harness: Harness) -> None:
    never = await mobile_project(harness, "ios", sample_rate=0)
    for _ in range(3):  # the iOS SDK retries every 5 s: always the same answer
        response = await post_start(harness, ios_start_body(never.project_key))
        assert (response.status_code, response.json()) == (403, {"error": "capture rate miss"})
    assert not _payloads(await harness.records(), RecordKind.MOBILE_START)


async def test_do_not_record_answers_without_recording(harness: Harness) -> None:
    project = await mobile_project(harness, "ios")
    answer = await started(harness, ios_start_body(project.project_key, doNotRecord=True))
    _check_answer_types(answer, project)
    assert not _payloads(await harness.records(), RecordKind.MOBILE_START)
    # Its token names no recorded session: a batch is refused (the SDK starts again).
    response = await post_batch(harness, answer["token"], batch())
    assert (response.status_code, response.json()) == (401, {"error": "unknown session"})


async def test_a_valid_token_in_the_start_continues_the_session(harness: Harness) -> None:
    project = await mobile_project(harness, "ios")
    first = await started(harness, ios_start_body(project.project_key))
    harness.clock.now += 10_000
    again = await started(harness, ios_start_body(project.project_key, token=first["token"]))
    assert again["sessionID"] == first["sessionID"]
    starts = _payloads(await harness.records(), RecordKind.MOBILE_START)
    assert [WebStartPayload.from_bytes(r.payload).continued for r in starts] == [False, True]
    # Another project's token starts a new session.
    other = await mobile_project(harness, "android")
    body = android_start_body(other.project_key, token=first["token"])
    assert (await started(harness, body))["sessionID"] != first["sessionID"]


async def test_mobile_project_is_refused_on_web_start(harness: Harness) -> None:
    project = await mobile_project(harness, "android")
    harness.project = project
    response = await harness.start()
    assert (response.status_code, response.json()) == (
        403,
        {"error": "project is not a web project"},
    )


async def test_gzip_batch_is_stored_raw_once_after_commit(harness: Harness) -> None:
    project = await mobile_project(harness, "ios")
    answer = await started(harness, ios_start_body(project.project_key))
    body = batch()
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    for _ in range(2):  # the SDK resends a batch whose answer it did not get: stored once
        response = await post_batch(harness, answer["token"], gzip.compress(body), headers=headers)
        assert (response.status_code, response.content) == (200, b"")
    [record] = _payloads(await harness.records(), RecordKind.MOBILE_BATCH)
    assert (record.session_id, record.project_id) == (int(answer["sessionID"]), project.project_id)
    assert record.payload == body
    assert record.batch_key is not None and len(record.batch_key) == 32
    int(record.batch_key, 16)  # a hex digest of the body


async def test_gzip_is_detected_by_its_magic_not_by_the_header(harness: Harness) -> None:
    project = await mobile_project(harness, "android")
    body = android_start_body(project.project_key)
    answer = await started(harness, body, user_agent=ANDROID_UA)
    token = answer["token"]
    raw = batch(first_index=0, taps=1)
    zipped = batch(first_index=1, taps=3)
    # Android's failed gzip step: the header says gzip, the bytes are raw.
    lying = await post_batch(harness, token, raw, headers={"Content-Encoding": "gzip"})
    assert lying.status_code == 200
    # Gzip bytes without the header.
    assert (await post_batch(harness, token, gzip.compress(zipped))).status_code == 200
    payloads = [r.payload for r in _payloads(await harness.records(), RecordKind.MOBILE_BATCH)]
    assert payloads == [raw, zipped]


async def test_batch_tokens_and_bodies_are_checked(server_factory: ServerFactory) -> None:
    harness = await server_factory(decompressed_size_limit=200_000)
    project = await mobile_project(harness, "ios", max_session_duration_ms=60_000)
    answer = await started(harness, ios_start_body(project.project_key))
    token = answer["token"]

    async def status(token: str | None, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
        response = await post_batch(harness, token, body, headers=headers)
        return response.status_code, response.json() if response.content else {}

    secret = harness.server.catalog.token_secret()
    forged = tokens.sign(b"another secret", tokens.TokenData(int(answer["sessionID"]), 0, T0 + 1))
    never = tokens.sign(secret, tokens.TokenData(12345, 0, T0 + 60_000))
    assert await status(None, batch()) == (401, {"error": "missing or invalid token"})
    assert (await status(forged, batch()))[0] == 401
    assert (await status("garbage", batch()))[0] == 401
    assert await status(never, batch()) == (401, {"error": "unknown session"})
    web_token = (await harness.started())["token"]
    assert (await status(web_token, batch()))[0] == 401  # a web session is not a mobile one
    assert await status(token, b"") == (400, {"error": "request body is empty"})
    assert (await status(token, b"\x1f\x8b\x08 not really gzip"))[0] == 400
    assert (await status(token, gzip.compress(b"\0" * 200_001)))[0] == 413  # decompressed cap
    over = (await post_batch(harness, token, b"\1" * 1_000_001)).status_code
    assert over == 413  # compressed cap (Go answers 500)
    assert (await status(token, batch()))[0] == 200
    harness.clock.now += 60_000 + 1_000  # just expired (< 30 s ago): refused on /i, not stored
    assert await status(token, batch(taps=5)) == (401, {"error": "token expired"})
    harness.clock.now += 60_000
    assert await status(token, batch(taps=6)) == (401, {"error": "token expired"})
    assert len(_payloads(await harness.records(), RecordKind.MOBILE_BATCH)) == 1


async def test_late_batch_with_an_expired_token_after_the_session_ended(harness: Harness) -> None:
    project = await mobile_project(harness, "ios", max_session_duration_ms=60_000)
    answer = await started(harness, ios_start_body(project.project_key))
    token, session_id = answer["token"], int(answer["sessionID"])
    headers = {"Content-Encoding": "gzip"}
    assert (await post_batch(harness, token, gzip.compress(batch()), headers=headers)).is_success
    await end_all_sessions(harness, T0 + 600_000)
    harness.clock.now = T0 + 600_000  # the next app start: the token expired long ago
    late = batch(first_index=2, taps=1)
    # iOS sends the late batch and its crash file uncompressed, without Content-Encoding.
    for body in (late, crash()):
        response = await post_batch(harness, token, body, path="/v1/mobile/late")
        assert (response.status_code, response.content) == (200, b"")
    records = _payloads(await harness.records(), RecordKind.MOBILE_LATE)
    assert [r.payload for r in records] == [late, crash()]
    assert {(r.session_id, r.project_id) for r in records} == {(session_id, project.project_id)}
    # The same token is refused on /i.
    assert (await post_batch(harness, token, batch(), path="/v1/mobile/i")).status_code == 401


async def test_late_batch_tokens(harness: Harness) -> None:
    project = await mobile_project(harness, "android", max_session_duration_ms=60_000)
    answer = await started(harness, android_start_body(project.project_key), user_agent=ANDROID_UA)
    token = answer["token"]
    secret = harness.server.catalog.token_secret()
    never = tokens.sign(secret, tokens.TokenData(98765, 0, T0 - 600_000))  # expired, never recorded
    forged = tokens.sign(b"not ours", tokens.TokenData(int(answer["sessionID"]), 0, T0))

    async def late(token: str | None, body: bytes) -> int:
        headers = {"Content-Encoding": "gzip"}
        return (
            await post_batch(harness, token, body, path="/v1/mobile/late", headers=headers)
        ).status_code

    assert await late(None, gzip.compress(crash())) == 401
    assert await late(forged, gzip.compress(crash())) == 401
    assert await late(never, gzip.compress(crash())) == 401
    harness.clock.now += 60_000 + 5_000  # just expired: accepted on /late (a decision, see module)
    assert await late(token, gzip.compress(crash())) == 200  # Android gzips its crash file
    [record] = _payloads(await harness.records(), RecordKind.MOBILE_LATE)
    assert record.payload == crash()


async def test_conditions_need_a_token(harness: Harness) -> None:
    project = await mobile_project(harness, "ios")
    answer = await started(harness, ios_start_body(project.project_key))
    path = f"/v1/mobile/conditions/{answer['projectID']}"
    headers = {"Authorization": f"Bearer {answer['token']}"}
    response = await harness.client.get(path, headers=headers)
    assert (response.status_code, response.json()) == (200, {"conditions": []})
    assert (await harness.client.get(path)).status_code == 401
    assert (await harness.client.get("/ingest" + path, headers=headers)).status_code == 200


async def test_routes_answer_under_ingest_with_cors(harness: Harness) -> None:
    project = await mobile_project(harness, "ios")
    preflight = await harness.client.options(
        "/ingest/v1/mobile/start",
        headers={"Origin": "https://app.test", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    answer = await started(
        harness, ios_start_body(project.project_key), path="/ingest/v1/mobile/start"
    )
    response = await post_batch(harness, answer["token"], batch(), path="/ingest/v1/mobile/i")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    refused = await post_batch(harness, None, batch(), path="/ingest/v1/mobile/late")
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"


async def test_old_ios_routes_with_project_key_and_encoded_project_id(harness: Harness) -> None:
    project = await mobile_project(harness, "ios")
    old_body = {
        "trackerVersion": "1.0.3",  # older than today's floor: the old routes do not check it
        "revID": "1",
        "userUUID": "",
        "userOSVersion": "12.1",
        "userDevice": "iPhone10,3",
        "userDeviceType": "iPhone X",
        "performance": {},
    }
    encoded = encode_project_id(project.project_id)
    by_key = await started(
        harness, {**old_body, "projectKey": project.project_key}, path="/v1/ios/start"
    )
    by_number = await started(harness, {**old_body, "projectID": encoded}, path="/v1/ios/start")
    by_text = await started(
        harness,
        {**old_body, "projectID": str(encoded), "platform": "android"},  # iOS all the same
        path="/ingest/v1/ios/start",
    )
    for answer in (by_key, by_number, by_text):
        _check_answer_types(answer, project)
    starts = _payloads(await harness.records(), RecordKind.MOBILE_START)
    assert {r.project_id for r in starts} == {project.project_id}
    assert len({r.session_id for r in starts}) == 3
    assert {WebStartPayload.from_bytes(r.payload).platform for r in starts} == {"ios"}
    device = WebStartPayload.from_bytes(starts[0].payload)
    assert (device.platform, device.user_device, device.user_device_type) == (
        "ios",
        "iPhone X",
        "mobile",
    )

    async def status(body: dict[str, Any]) -> tuple[int, str]:
        response = await post_start(harness, body, path="/v1/ios/start")
        return response.status_code, response.json().get("error", "")

    # A plain project id is not an encoded one: refused, never taken for another project.
    assert (await status({**old_body, "projectID": project.project_id}))[0] == 400
    assert (await status({**old_body, "projectID": "12abc"}))[0] == 400
    assert (await status(old_body))[0] == 403
    assert (await status({**old_body, "projectID": encode_project_id(9999)}))[0] == 404
    web = encode_project_id(harness.project.project_id)
    assert await status({**old_body, "projectID": web}) == (
        403,
        "project doesn't support mobile sessions",
    )

    token = by_number["token"]
    for path in ("/v1/ios/append", "/v1/ios/i", "/ingest/v1/ios/i"):
        body = batch(first_index=len(path), taps=1)
        assert (await post_batch(harness, token, gzip.compress(body), path=path)).status_code == 200
    assert (await post_batch(harness, token, crash(), path="/v1/ios/late")).status_code == 200
    assert (await post_batch(harness, None, crash(), path="/v1/ios/late")).status_code == 401
    records = await harness.records()
    assert len(_payloads(records, RecordKind.MOBILE_BATCH)) == 3
    assert [r.payload for r in _payloads(records, RecordKind.MOBILE_LATE)] == [crash()]


async def test_start_answers_match_the_described_schema(harness: Harness) -> None:
    import jsonschema_rs

    spec = (await harness.client.get("/api/openapi.json")).json()
    project = await mobile_project(harness, "ios")
    old_body = {"projectID": encode_project_id(project.project_id), "trackerVersion": "1.0.3"}
    for path, body in (
        ("/v1/mobile/start", ios_start_body(project.project_key)),
        ("/ingest/v1/ios/start", old_body),
    ):
        answer = await started(harness, body, path=path)
        reply = spec["paths"][path]["post"]["responses"]["200"]
        schema = {**reply["content"]["application/json"]["schema"], **spec}
        errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(answer)]
        assert not errors, (path, errors)


async def test_country_comes_from_the_client_ip(server_factory: ServerFactory) -> None:
    harness = await server_factory(trust_x_forwarded_for=True)
    project = await mobile_project(harness, "ios")
    response = await harness.client.post(
        "/v1/mobile/start",
        json=ios_start_body(project.project_key),
        headers={"User-Agent": IOS_UA, "X-Forwarded-For": "81.2.69.160, 10.0.0.1"},
    )
    assert response.status_code == 200, response.text
    [record] = _payloads(await harness.records(), RecordKind.MOBILE_START)
    assert WebStartPayload.from_bytes(record.payload).user_country == "GB"
