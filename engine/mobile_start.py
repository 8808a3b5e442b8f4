"""The decisions of a mobile session start (MOBILE.md 2.2, 2.8 and 5.6), without I/O.

``/v1/mobile/start`` and the old ``/v1/ios/start`` (``api.ingest_mobile``) read the request and the
project; what follows from them is decided here: the tracker version check, the sampling roll, the
device fields, the old README's encoded ``projectID``, and the MOBILE_START payload (the web start
payload's shape, delay 0).
"""

from __future__ import annotations

import hashlib

import attrs

from engine.ios_devices import ios_device_name, ios_device_type
from engine.start_info import StartInfo
from engine.start_payload import WebStartPayload

MOBILE_PLATFORMS = ("ios", "android")
"""Project platforms that record mobile sessions (and only those)."""
MIN_MOBILE_TRACKER_VERSION = (1, 0, 9)
_MAX_VERSION_DIGITS = 9  # per semver part: int() of a 5,000-digit string raises ValueError


def semver_at_least(version: str, minimum: tuple[int, int, int]) -> bool:
    """True for a semver ``>= minimum`` (a leading ``v`` and a ``-pre`` / ``+build`` suffix are
    cut off first; missing parts count as 0)."""
    core = version.strip().removeprefix("v").split("-", 1)[0].split("+", 1)[0]
    parts = core.split(".")
    if not 1 <= len(parts) <= 3 or not all(
        p.isascii() and p.isdigit() and len(p) <= _MAX_VERSION_DIGITS for p in parts
    ):
        return False
    numbers = tuple(int(p) for p in parts) + (0,) * (3 - len(parts))
    return numbers >= minimum


def mobile_tracker_version_ok(version: str) -> bool:
    """The mobile SDK is at least 1.0.9 (MOBILE.md 2.2; an older one gets 426)."""
    return semver_at_least(version, MIN_MOBILE_TRACKER_VERSION)


def sampled_in(project_id: int, user_uuid: str, sample_rate: int) -> bool:
    """Whether a new session of this device is recorded, at ``sample_rate`` percent.

    Decided per device, not per request: the iOS SDK retries a refused start every 5 s without
    end (MOBILE.md 2.2), so a fresh dice roll per request (the reference backend's) records every
    device sooner or later and only costs requests. Hashing the project and the device's UUID
    gives the same answer to every retry: ``sample_rate`` percent of the devices are recorded.
    """
    if sample_rate >= 100:
        return True
    digest = hashlib.blake2b(f"{project_id}:{user_uuid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < sample_rate


# -- the old README's numeric projectID (backend/services/http/project_id.go) -------------------

_ID_BASE = 1 << 52
_ID_MULTIPLIER = 4212451012670231  # odd, so invertible modulo 2^52
_ID_INVERSE = pow(_ID_MULTIPLIER, -1, _ID_BASE)
_MAX_PROJECT_ID = (1 << 32) - 1


def encode_project_id(project_id: int) -> int:
    """The number an old iOS SDK was configured with for ``project_id`` (in [2^52, 2^53))."""
    if not 0 <= project_id <= _MAX_PROJECT_ID:
        raise ValueError(f"project id {project_id} cannot be encoded")
    return _ID_BASE + (project_id * _ID_INVERSE) % _ID_BASE


def decode_project_id(encoded: int) -> int | None:
    """The project id an encoded ``projectID`` names; None when it is not a valid encoding
    (a plain project id is not one: it is far below 2^52)."""
    if not _ID_BASE <= encoded < 2 * _ID_BASE:
        return None
    project_id = ((encoded - _ID_BASE) * _ID_MULTIPLIER) % _ID_BASE
    return project_id if project_id <= _MAX_PROJECT_ID else None


LEGACY_PROJECT_ID_REFUSED = (
    "projectID is not an encoded project id (replayd project list prints it)"
)
"""What the old routes answer (400) for a ``projectID`` that :func:`parse_project_id` refuses."""


def parse_project_id(raw: int | str) -> int | None:
    """The project id an old SDK's ``projectID`` names, given as a JSON number or a decimal
    string (a form field); None when it is neither or not a valid encoding."""
    if isinstance(raw, str):
        text = raw.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 20):
            return None
        raw = int(text)
    return decode_project_id(raw)


# -- device fields and the start payload --------------------------------------------------------


@attrs.frozen(slots=True)
class MobileDevice:
    """The session's platform and device facts (MOBILE.md 5.6)."""

    platform: str  # "ios" | "android"
    user_os: str  # "IOS" | "Android"
    user_device: str
    user_device_type: str


def mobile_device(platform: str, user_device: str, user_device_type: str) -> MobileDevice:
    """The device facts of a start: ``platform`` empty or ``ios`` (any case) is iOS, anything
    else Android (as in the reference backend, which also sends every other value down the
    Android path; we store the platform as ``android`` so that it is always one of two).

    The model identifier is mapped to a name on both platforms (an Android codename is unknown to
    the table and kept). iOS's device type comes from the identifier, the SDK's own is ignored.
    """
    name = ios_device_name(user_device)
    if platform.strip().lower() in ("", "ios"):
        return MobileDevice("ios", "IOS", name, ios_device_type(user_device))
    return MobileDevice("android", "Android", name, user_device_type)


@attrs.frozen(slots=True, kw_only=True)
class MobileStartRequest:
    """The fields of a mobile start request that the server uses (already type-checked)."""

    tracker_version: str = ""
    token: str = ""
    rev_id: str = ""
    user_uuid: str = ""
    user_os_version: str = ""
    user_device: str = ""
    user_device_type: str = ""
    timestamp: int = 0
    timezone: str = ""
    device_memory: int = 0
    do_not_record: bool = False
    platform: str = ""
    width: int = 0
    height: int = 0


def start_payload(
    req: MobileStartRequest,
    *,
    session_id: int,
    project_id: int,
    start_timestamp: int,
    continued: bool,
    user_uuid: str,
    user_agent: str,
    user_country: str,
) -> WebStartPayload:
    """The MOBILE_START payload: the request's facts, the device mapping and the server's ids.

    ``delay`` is 0: mobile timestamps are the device's clock and are stored as sent. The memory
    size goes to both memory columns, as the reference backend stores it.
    """
    device = mobile_device(req.platform, req.user_device, req.user_device_type)
    info = StartInfo(
        user_uuid=user_uuid,
        rev_id=req.rev_id,
        tracker_version=req.tracker_version,
        user_agent=user_agent,
        user_os=device.user_os,
        user_os_version=req.user_os_version,
        user_device=device.user_device,
        user_device_type=device.user_device_type,
        user_country=user_country,
        timezone=req.timezone,
        screen_width=req.width,
        screen_height=req.height,
        device_memory=req.device_memory,
        js_heap_size_limit=req.device_memory,
        platform=device.platform,
    )
    return WebStartPayload(
        session_id=session_id,
        project_id=project_id,
        start_timestamp=start_timestamp,
        delay=0,
        continued=continued,
        **attrs.asdict(info, recurse=False),
    )
