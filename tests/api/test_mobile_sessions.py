"""A mobile session end to end: the SDK's routes in, the public API out (the engine side is the
mobile session actor's): an iOS and an Android session, a late batch after the end."""

from __future__ import annotations

import gzip
from typing import Any

from engine.codec.mobile_messages import (
    MobileBatchMeta,
    MobileClickEvent,
    MobileCrash,
    MobileNetworkCall,
    MobileUserID,
    encode_batch,
    encode_message,
)
from engine.mobile_start import encode_project_id
from storage.images import image_hash
from tests.api.conftest import T0, Harness
from tests.api.test_ingest_mobile import (
    ANDROID_UA,
    DEVICE_TS,
    android_start_body,
    ios_start_body,
    mobile_project,
    post_batch,
    post_start,
)
from tests.api.test_mobile_images import JPEG_1, JPEG_2, screenshots
from tests.api.test_public_v1 import api_key, end_all_sessions, get, projected


async def _session(
    harness: Harness, body: dict[str, Any], user_agent: str, user: str
) -> tuple[str, str]:
    response = await post_start(harness, body, user_agent=user_agent)
    assert response.status_code == 200, response.text
    answer = response.json()
    token = answer["token"]
    first = encode_batch(
        [
            MobileBatchMeta(DEVICE_TS + 10, 0),
            MobileUserID(DEVICE_TS + 11, user),
            MobileClickEvent(DEVICE_TS + 12, "Login", 150, 420),
            MobileClickEvent(DEVICE_TS + 900, "Pay", 30, 700),
        ]
    )
    headers = {"Content-Encoding": "gzip"}
    assert (await post_batch(harness, token, gzip.compress(first), headers=headers)).is_success
    return answer["sessionID"], token


async def test_ios_and_android_sessions_with_a_late_batch_after_the_end(harness: Harness) -> None:
    ios = await mobile_project(harness, "ios", max_session_duration_ms=60_000)
    android = await mobile_project(harness, "android")
    ios_id, ios_token = await _session(
        harness, ios_start_body(ios.project_key), "App/1 CFNetwork/1410 Darwin/22.6.0", "ann"
    )
    android_id, _ = await _session(
        harness, android_start_body(android.project_key), ANDROID_UA, "bob"
    )
    await end_all_sessions(harness, T0 + 600_000)

    # The next app start: the previous run's last batch and its crash, with the old token.
    harness.clock.now = T0 + 600_000
    late = encode_batch(
        [MobileBatchMeta(DEVICE_TS + 5_000, 3), MobileClickEvent(DEVICE_TS + 4_000, "Back", 5, 5)]
    )
    bare_crash = encode_message(MobileCrash(DEVICE_TS + 4_500, "SIGABRT", "abort", "#0 main"))
    for body in (late, bare_crash):
        response = await post_batch(harness, ios_token, body, path="/v1/mobile/late")
        assert response.status_code == 200, response.text
    await end_all_sessions(harness, T0 + 1_200_000)
    await projected(harness)

    key = await api_key(harness)
    events = await get(harness, key, f"/api/v1/{ios.project_key}/sessions/{ios_id}/events")
    assert events.status_code == 200, events.text
    data = events.json()["data"]
    taps = [e["label"] for e in data if e["type"] == "TAP"]
    assert taps == ["Login", "Pay", "Back"]
    crashes = [e for e in data if e["type"] == "CRASH"]
    assert [(c["name"], c["reason"]) for c in crashes] == [("SIGABRT", "abort")]

    sessions = await get(harness, key, f"/api/v1/{ios.project_key}/users/ann/sessions")
    [ann] = sessions.json()["data"]
    assert ann["sessionId"] == ios_id
    assert (ann["userOs"], ann["startTs"]) == ("IOS", DEVICE_TS)  # the start's device time
    assert ann["userDevice"] == "iPhone 14 Plus"
    assert ann["eventsCount"] == 3
    # Measured to the late batch's flush (its BatchMeta counts, MOBILE.md 5.5), on the device clock.
    assert ann["duration"] == 5_000

    sessions = await get(harness, key, f"/api/v1/{android.project_key}/users/bob/sessions")
    [bob] = sessions.json()["data"]
    assert (bob["sessionId"], bob["userOs"], bob["userDevice"]) == (
        android_id,
        "Android",
        "panther",
    )
    assert bob["duration"] == 900


async def test_old_ios_routes_and_the_android_quirk_come_back_through_the_public_api(
    harness: Harness,
) -> None:
    """The README's ``/v1/ios/*`` routes (encoded projectID, append, late, images) and an Android
    ``MobileNetworkCall`` written the Android way (status as 4 big-endian bytes, request and
    response swapped, MOBILE.md 3.7) read back as events, session fields and images."""
    ios = await mobile_project(harness, "ios")
    android = await mobile_project(harness, "android")
    key = await api_key(harness)

    # iOS through the old routes: the project named by its encoded projectID.
    old_start = {
        "projectID": encode_project_id(ios.project_id),
        "trackerVersion": "1.0.14",
        "userUUID": "6E0B0C8A-5C61-4A4B-9D3D-2F3C1C7C5E11",
        "userOSVersion": "16.4",
        "userDevice": "iPhone12,1",
        "timestamp": DEVICE_TS,
    }
    response = await post_start(harness, old_start, path="/v1/ios/start")
    assert response.status_code == 200, response.text
    ios_id, ios_token = response.json()["sessionID"], response.json()["token"]
    appended = encode_batch(
        [MobileBatchMeta(DEVICE_TS + 10, 0), MobileClickEvent(DEVICE_TS + 20, "Open", 1, 2)]
    )
    response = await post_batch(harness, ios_token, appended, path="/v1/ios/append")
    assert response.status_code == 200, response.text
    images = screenshots((T0 + 30, JPEG_1), (T0 + 40, JPEG_2))
    response = await harness.client.post(
        "/v1/ios/images",
        data={"projectKey": ios.project_key},
        files={"file": (image_hash(JPEG_1), JPEG_1, "image/jpeg")},
        headers={"Authorization": f"Bearer {ios_token}"},
    )
    assert response.status_code == 200, response.text
    response = await harness.client.post(
        "/v1/mobile/images",
        data={"projectKey": ios.project_key},
        files={"batch": (f"{ios_id}-1.tar.gz", images, "application/gzip")},
        headers={"Authorization": f"Bearer {ios_token}"},
    )
    assert response.status_code == 200, response.text

    # Android: a 404 network call in Android's encoding, gzipped.
    android_id, android_token = await _session(
        harness, android_start_body(android.project_key), ANDROID_UA, "cy"
    )
    call = MobileNetworkCall(
        DEVICE_TS + 950,
        "request",
        "GET",
        "https://api.example.com/cart",
        '{"body":"q","headers":{}}',
        '{"body":"missing","headers":{}}',
        404,
        87,
        status_int32=True,
    )
    quirky = encode_batch([MobileBatchMeta(DEVICE_TS + 960, 3), call], platform="android")
    assert quirky.endswith(b"\x00\x00\x01\x94\x57")  # the bytes MOBILE.md 3.7 describes
    headers = {"Content-Encoding": "gzip"}
    response = await post_batch(harness, android_token, gzip.compress(quirky), headers=headers)
    assert response.status_code == 200, response.text

    await end_all_sessions(harness, T0 + 600_000)
    await projected(harness)

    events = await get(harness, key, f"/api/v1/{ios.project_key}/sessions/{ios_id}/events")
    assert [(e["type"], e.get("label")) for e in events.json()["data"]] == [("TAP", "Open")]
    listed = await get(harness, key, f"/api/v1/{ios.project_key}/sessions/{ios_id}/images")
    assert listed.status_code == 200, listed.text
    assert sorted(i["hash"] for i in listed.json()["data"]) == sorted(
        [image_hash(JPEG_1), image_hash(JPEG_1), image_hash(JPEG_2)]
    )

    events = await get(harness, key, f"/api/v1/{android.project_key}/sessions/{android_id}/events")
    data = events.json()["data"]
    [request] = [e for e in data if e["type"] == "REQUEST"]
    assert (request["method"], request["url"], request["status"], request["duration"]) == (
        "GET",
        "https://api.example.com/cart",
        404,
        87,
    )
    assert request["success"] is False
    assert [e["type"] for e in data].count("TAP") == 2  # what followed the call still decodes
    assert any(e["type"] == "ISSUE" for e in data)  # a failed request is an issue


async def test_assist_lists_a_live_mobile_session(harness: Harness) -> None:
    ios = await mobile_project(harness, "ios")
    session_id, _ = await _session(
        harness, ios_start_body(ios.project_key), "App/1 CFNetwork/1410 Darwin/22.6.0", "dee"
    )
    await projected(harness)
    key = await api_key(harness)
    listed = await harness.client.get(
        f"/api/v1/{ios.project_key}/assist/sessions", headers={"Authorization": key}
    )
    assert listed.status_code == 200, listed.text
    [live] = listed.json()["data"]["sessions"]
    assert (live["sessionID"], live["userOs"], live["userDevice"], live["userID"]) == (
        session_id,
        "IOS",
        "iPhone 14 Plus",
        "dee",
    )
