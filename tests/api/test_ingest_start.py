"""POST /v1/web/start through a real server: the answer the tracker validates, the Go order of
checks, continued sessions and the WEB_START record."""

from __future__ import annotations

import gzip
import json
import uuid

from engine import tokens
from engine.ids import flake_timestamp_ms
from engine.start_payload import WebStartPayload
from storage.records import RecordKind
from tests.api.conftest import CHROME_UA, T0, Harness, ServerFactory, start_body

# Every field of the response the tracker accepted in the captured traffic (PROTOCOL.md 3.2).
OBSERVED_FIELDS = {
    "token",
    "userUUID",
    "sessionID",
    "projectID",
    "beaconSizeLimit",
    "compressionThreshold",
    "startTimestamp",
    "delay",
    "timestamp",
    "userOS",
    "userDevice",
    "userBrowser",
    "userCountry",
    "userState",
    "userCity",
    "canvasEnabled",
    "canvasQuality",
    "canvasFPS",
    "framesSupport",
}


async def test_start_answer_has_the_observed_shape_and_types(harness: Harness) -> None:
    response = await harness.start()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["access-control-allow-origin"] == "*"
    answer = response.json()
    assert set(answer) == OBSERVED_FIELDS  # and no protocolVersion: protocol 1 by default
    # What the tracker checks before accepting a start (PROTOCOL.md 3.2).
    assert isinstance(answer["token"], str) and answer["token"]
    assert isinstance(answer["userUUID"], str)
    assert isinstance(answer["sessionID"], str) and answer["sessionID"].isdigit()
    assert isinstance(answer["delay"], int)
    assert isinstance(answer["startTimestamp"], int)
    assert isinstance(answer["beaconSizeLimit"], int)
    session_id = int(answer["sessionID"])
    assert answer["projectID"] == str(harness.project.project_id)
    assert answer["startTimestamp"] == flake_timestamp_ms(session_id) == T0
    assert answer["delay"] == 16  # server now - client timestamp
    assert answer["beaconSizeLimit"] == 1_000_000
    assert answer["compressionThreshold"] == 20_000
    assert answer["timestamp"] == 0
    assert (answer["userOS"], answer["userBrowser"], answer["userDevice"]) == (
        "Linux",
        "Chrome",
        "",
    )
    assert answer["userCountry"] == ""  # 127.0.0.1
    assert uuid.UUID(answer["userUUID"]).version == 4
    assert answer["canvasEnabled"] is False
    assert (answer["canvasQuality"], answer["canvasFPS"], answer["framesSupport"]) == (
        "low",
        1,
        True,
    )
    check = tokens.verify(harness.server.catalog.token_secret(), answer["token"], T0)
    assert check.status is tokens.TokenStatus.VALID
    assert check.data == tokens.TokenData(session_id, 16, T0 + 7_200_000)


async def test_start_appends_a_web_start_record_before_answering(harness: Harness) -> None:
    answer = await harness.started(bufferDiff=2_000)
    (record,) = await harness.records()
    assert record.kind is RecordKind.WEB_START
    assert record.session_id == int(answer["sessionID"])
    assert record.project_id == harness.project.project_id
    assert record.received_at_ms == T0
    assert record.batch_key is None
    payload = WebStartPayload.from_bytes(record.payload)
    assert payload.session_id == record.session_id
    assert payload.start_timestamp == T0 - 2_000  # cold start buffered 2 s before the start
    assert payload.delay == 16
    assert payload.continued is False
    assert payload.user_uuid == answer["userUUID"]
    assert payload.user_id == "user-42"
    assert (payload.rev_id, payload.tracker_version, payload.timezone) == (
        "rev-1",
        "19.0.1",
        "UTC+00:00",
    )
    assert (payload.screen_width, payload.screen_height) == (1280, 800)
    assert (payload.user_os, payload.user_browser, payload.user_device_type) == (
        "Linux",
        "Chrome",
        "desktop",
    )
    assert payload.user_agent == CHROME_UA
    assert (payload.device_memory, payload.js_heap_size_limit) == (16384, 4395630592)


async def test_buffer_diff_of_five_minutes_or_more_is_ignored(harness: Harness) -> None:
    await harness.started(bufferDiff=5 * 60 * 1000)
    (record,) = await harness.records()
    assert WebStartPayload.from_bytes(record.payload).start_timestamp == T0


async def test_valid_user_uuid_is_kept_and_garbage_replaced(harness: Harness) -> None:
    mine = "29374deb-28cf-4df5-bac6-be92151294f4"
    assert (await harness.started(userUUID=mine))["userUUID"] == mine
    replaced = (await harness.started(userUUID="not-a-uuid"))["userUUID"]
    assert replaced != "not-a-uuid" and uuid.UUID(replaced)


async def test_continued_session_keeps_id_delay_and_expiry(harness: Harness) -> None:
    first = await harness.started()
    harness.clock.now += 60_000  # a minute later the tracker restarts (e.g. after a 401)
    second = await harness.started(
        token=first["token"], userUUID=first["userUUID"], timestamp=harness.clock.now
    )
    assert second["sessionID"] == first["sessionID"]
    assert second["delay"] == first["delay"]
    assert second["token"] == first["token"]  # the same data re-signed
    assert second["startTimestamp"] == first["startTimestamp"]
    records = await harness.records()
    assert [WebStartPayload.from_bytes(r.payload).continued for r in records] == [False, True]
    assert {r.session_id for r in records} == {int(first["sessionID"])}


async def test_bad_expired_or_foreign_tokens_start_new_sessions(harness: Harness) -> None:
    first = await harness.started()
    forged = first["token"][:-3] + ("abc" if not first["token"].endswith("abc") else "abd")
    assert (await harness.started(token=forged))["sessionID"] != first["sessionID"]
    assert (await harness.started(token=first["token"], reset=True))["sessionID"] != first[
        "sessionID"
    ]
    other = harness.server.catalog.create_project("other")
    foreign = await harness.client.post(
        "/v1/web/start",
        json=start_body(other.project_key, token=first["token"]),
        headers={"User-Agent": CHROME_UA},
    )
    assert foreign.status_code == 200
    assert foreign.json()["sessionID"] != first["sessionID"]
    harness.clock.now += 7_200_000  # the token expired exactly now: just expired is not enough
    assert (await harness.started(token=first["token"]))["sessionID"] != first["sessionID"]


async def test_do_not_record_answers_without_logging(harness: Harness) -> None:
    answer = await harness.started(doNotRecord=True)
    assert answer["token"]
    assert await harness.records() == []


async def test_gzipped_start_body_is_accepted(harness: Harness) -> None:
    body = gzip.compress(json.dumps(start_body(harness.project.project_key)).encode())
    response = await harness.client.post(
        "/v1/web/start",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": CHROME_UA,
        },
    )
    assert response.status_code == 200, response.text


async def _post_raw(harness: Harness, body: bytes, user_agent: str = CHROME_UA) -> tuple[int, dict]:
    response = await harness.client.post(
        "/v1/web/start",
        content=body,
        headers={"Content-Type": "application/json", "User-Agent": user_agent},
    )
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["access-control-allow-origin"] == "*"
    return response.status_code, response.json()


async def test_refusals_follow_the_reference_order(harness: Harness) -> None:
    key = harness.project.project_key
    ios = harness.server.catalog.create_project("app", "ios")

    def encode(**fields: object) -> bytes:
        return json.dumps(start_body(key, **fields)).encode()

    cases = [
        (b"", 400),
        (b"x" * 131_073, 413),
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (encode(width="wide"), 400),
        (encode(trackerVersion="5.9.9"), 426),
        (encode(trackerVersion="banana"), 426),
        # An old version is refused before the key is even looked at.
        (json.dumps(start_body("unknown-key-00000000", trackerVersion="3.0.0")).encode(), 426),
        (encode(projectKey=""), 403),
        (json.dumps(start_body("unknown-key-00000000")).encode(), 404),
        (json.dumps(start_body(ios.project_key)).encode(), 403),
    ]
    for body, status in cases:
        got, answer = await _post_raw(harness, body)
        assert (got, set(answer)) == (status, {"error"}), (body[:60], answer)
    assert (await _post_raw(harness, encode(), user_agent=""))[0] == 403
    # A pre-release of a recent tracker is fine; so is a UA that ua-parser cannot name.
    assert (await _post_raw(harness, encode(trackerVersion="20.0.0-beta.1")))[0] == 200
    assert (await _post_raw(harness, encode(), user_agent="SomeNewBrowser/1.0"))[0] == 200
    assert len(await harness.records()) == 2


async def test_capture_rate_miss_for_a_project_sampling_nothing(harness: Harness) -> None:
    muted = harness.server.catalog.create_project("muted", sample_rate=0)
    status, answer = await _post_raw(harness, json.dumps(start_body(muted.project_key)).encode())
    assert (status, answer) == (403, {"error": "capture rate miss"})


async def test_project_created_by_another_process_is_found(harness: Harness, tmp_path) -> None:
    from storage.catalog import Catalog

    other = Catalog.open(harness.server.log.path)  # as `replayd project create` would, elsewhere
    try:
        late = other.create_project("late")
    finally:
        other.close()
    status, _ = await _post_raw(harness, json.dumps(start_body(late.project_key)).encode())
    assert status == 200


async def test_protocol_version_is_sent_only_when_configured(server_factory: ServerFactory) -> None:
    harness = await server_factory(protocol_version=2, compression_threshold=500)
    answer = await harness.started()
    assert answer["protocolVersion"] == 2
    assert answer["compressionThreshold"] == 500


async def test_ingest_prefix_of_self_hosted_deployments_works(harness: Harness) -> None:
    response = await harness.client.post(
        "/ingest/v1/web/start",
        json=start_body(harness.project.project_key),
        headers={"User-Agent": CHROME_UA},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
