"""The sans-IO decisions of a mobile start: versions, sampling, device fields, old project ids."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.ios_devices import IOS_DEVICE_NAMES, ios_device_name, ios_device_type
from engine.mobile_start import (
    MobileStartRequest,
    decode_project_id,
    encode_project_id,
    mobile_device,
    mobile_tracker_version_ok,
    sampled_in,
    start_payload,
)
from engine.start_payload import WebStartPayload


def test_tracker_version_floor_is_1_0_9() -> None:
    for ok in ("1.0.9", "1.0.14", "1.0.10", "1.1", "2", "1.0.9-beta.1", "v1.0.22"):
        assert mobile_tracker_version_ok(ok), ok
    for old in ("1.0.8", "0.9.99", "", "N/A", "1.0.x", "1.0.0.9", "9" * 10 + ".0.0"):
        assert not mobile_tracker_version_ok(old), old


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_encoded_project_ids_decode_back(project_id: int) -> None:
    encoded = encode_project_id(project_id)
    assert 1 << 52 <= encoded < 1 << 53
    assert decode_project_id(encoded) == project_id


def test_decoding_follows_the_reference_formula_and_refuses_plain_ids() -> None:
    # decoded = ((encoded - 2^52) * 4212451012670231) mod 2^52, valid only <= 2^32 - 1.
    encoded = (1 << 52) + 12345
    expected = (12345 * 4212451012670231) % (1 << 52)
    assert decode_project_id(encoded) == (expected if expected <= (1 << 32) - 1 else None)
    assert decode_project_id(encode_project_id(1)) == 1
    for plain in (0, 1, 42, (1 << 32) - 1, (1 << 52) - 1, 1 << 53):
        assert decode_project_id(plain) is None, plain
    # Most numbers of the encoded range name no project (the id must fit 32 bits).
    assert decode_project_id((1 << 52) + 1) is None


def test_ios_model_identifiers_map_to_names() -> None:
    assert ios_device_name("iPhone14,8") == "iPhone 14 Plus"
    assert ios_device_name("iPhone12,1") == "iPhone 11"
    assert ios_device_name("iPhone14,6") == "iPhone SE (3rd generation)"
    assert ios_device_name("iPhone17,1") == "iPhone 16 Pro"
    assert ios_device_name("iPad13,18") == "iPad (10th generation)"
    assert ios_device_name("arm64") == "Simulator"
    assert ios_device_name("panther") == "panther"  # an Android codename passes through
    assert ios_device_name("iPhone99,1") == "iPhone99,1"
    assert len(set(IOS_DEVICE_NAMES)) == len(IOS_DEVICE_NAMES)
    assert all(name for name in IOS_DEVICE_NAMES.values())


def test_device_type_comes_from_the_identifier_on_ios() -> None:
    assert ios_device_type("iPhone14,8") == "mobile"
    assert ios_device_type("iPad8,1") == "tablet"
    assert ios_device_type("AppleTV6,2") == "other"
    ios = mobile_device("", "iPad8,1", "iPhone 14 Pro")  # the SDK's type is ignored on iOS
    assert (ios.platform, ios.user_os, ios.user_device, ios.user_device_type) == (
        "ios",
        "IOS",
        "iPad Pro (11-inch)",
        "tablet",
    )
    assert mobile_device("iOS", "iPhone14,8", "").platform == "ios"
    android = mobile_device("android", "panther", "tablet")
    assert (android.platform, android.user_os, android.user_device, android.user_device_type) == (
        "android",
        "Android",
        "panther",
        "tablet",
    )
    assert mobile_device("flutter", "x", "mobile").platform == "android"


def test_sampling_is_decided_per_device() -> None:
    devices = [f"00000000-0000-4000-8000-{n:012d}" for n in range(2000)]
    assert all(sampled_in(1, d, 100) for d in devices)
    assert not any(sampled_in(1, d, 0) for d in devices)
    kept = [d for d in devices if sampled_in(1, d, 30)]
    assert 0.25 < len(kept) / len(devices) < 0.35
    # The same device gets the same answer every time (a retried start does not roll again).
    assert [sampled_in(1, d, 30) for d in devices] == [sampled_in(1, d, 30) for d in devices]
    assert [sampled_in(1, d, 30) for d in devices] != [sampled_in(2, d, 30) for d in devices]


def test_start_payload_is_the_web_start_shape_with_the_device_facts() -> None:
    req = MobileStartRequest(
        tracker_version="1.0.14",
        rev_id="N/A",
        user_os_version="17.2",
        user_device="iPhone14,8",
        user_device_type="iPhone 14 Plus",
        timestamp=1_700_000_000_000,
        timezone="UTC+02:00",
        device_memory=4096,
        width=390,
        height=844,
    )
    payload = start_payload(
        req,
        session_id=7,
        project_id=3,
        start_timestamp=1_700_000_000_000,
        continued=False,
        user_uuid="u",
        user_agent="App/1 CFNetwork/1410 Darwin/22.6.0",
        user_country="DE",
    )
    again = WebStartPayload.from_bytes(payload.to_bytes())
    assert again == payload
    assert (again.platform, again.user_os, again.user_device, again.user_device_type) == (
        "ios",
        "IOS",
        "iPhone 14 Plus",
        "mobile",
    )
    assert (again.delay, again.device_memory, again.js_heap_size_limit) == (0, 4096, 4096)
    assert (again.screen_width, again.screen_height, again.user_os_version) == (390, 844, "17.2")
