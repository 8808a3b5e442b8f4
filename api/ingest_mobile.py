"""Mobile SDK ingest over HTTP: ``/v1/mobile/start|i|late|conditions`` and the old ``/v1/ios/*``.

Wire behaviour follows MOBILE.md 2.2-2.4, 2.6 and 2.8 and the reference Go backend's order of
checks; the start decisions themselves are sans-IO (:mod:`engine.mobile_start`). As on web, the
request path never decodes SDK messages: a batch is checked (token, session, size, gzip), appended
to the log as opaque bytes (MOBILE_BATCH, MOBILE_LATE) and acknowledged only after the commit.

Decisions taken on purpose where the reference backend's behaviour is a quirk:

* a sampling miss is decided per device (``engine.mobile_start.sampled_in``), still as a 403:
  iOS retries a refused start every 5 s for ever, so a per-request roll would record everyone;
* ``/late`` accepts a just-expired token (Go refuses it with 401, which looks unintended: the late
  batch would be lost, as the SDK sends it once per app start with the previous run's token);
* a body is gunzipped when it starts with the gzip magic, whatever ``Content-Encoding`` says
  (Android sends the header over raw bytes when its gzip step failed); over the size limit is
  413, not Go's 500;
* the old ``/v1/ios/start`` takes ``projectKey`` or the README's encoded ``projectID``, never a
  plain project id, and does not check the tracker version (those SDKs predate the 1.0.9 floor).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from quart import Blueprint, Response, current_app

from api import ingest_mobile_images
from api import ingest_mobile_schema as docs
from api import ingest_web_schema as web_docs
from api.errors import ApiError, json_response
from api.ingest_web import (
    MAX_REV_ID_LENGTH,
    MAX_TIMEZONE_LENGTH,
    MAX_TRACKER_VERSION_LENGTH,
    BodyReader,
    Ingest,
    IngestRequest,
    canonical_uuid,
    decode_content,
    gunzip_off_loop,
    may_be_project_key,
    number_field,
    parse_json_object,
    read_body,
    text_field,
    token_message,
    typed_field,
)
from api.openapi import operation
from engine import client_info, tokens
from engine.ids import flake_timestamp_ms
from engine.mobile_start import (
    LEGACY_PROJECT_ID_REFUSED,
    MOBILE_PLATFORMS,
    MobileStartRequest,
    mobile_tracker_version_ok,
    parse_project_id,
    sampled_in,
    start_payload,
)
from storage.catalog import Project
from storage.records import NewRecord, RecordKind

EXTENSION_KEY = "replayd.ingest_mobile"
CORS_PREFIXES = ("/v1/mobile/", "/ingest/v1/mobile/", "/v1/ios/", "/ingest/v1/ios/")
# What the reference backend answers by default (MOBILE_FPS, MOBILE_QUALITY): one capture a
# second, JPEG quality "low". Android ignores both and uses its local options.
MOBILE_FPS = 1
MOBILE_QUALITY = "low"
GZIP_MAGIC = b"\x1f\x8b"
MAX_DEVICE_TEXT_LENGTH = 128  # OS version, device identifier or type, platform
_PROJECT_NOT_FOUND = "project doesn't exist or is not active"

bp = Blueprint("ingest_mobile", __name__)


@attrs.define(eq=False)
class MobileIngest(Ingest):
    """The state behind the mobile ingest routes (one per app)."""

    # The start answer's imagesHashList of a project; the app's image store once it is wired
    # (api.surfaces), outside a request context too (the raw routes have none).
    images_hash_list: Callable[[int], Awaitable[list[str]]] = ingest_mobile_images.images_hash_list

    # -- POST /v1/mobile/start, /v1/ios/start --------------------------------------------------

    async def start(self, *, legacy: bool) -> Response:
        """Start (or continue) a mobile session: Quart's route (``legacy``: ``/v1/ios/start``)."""
        answer = await self.start_session(IngestRequest.of_request(), read_body, legacy=legacy)
        return json_response(answer)

    async def start_session(
        self, head: IngestRequest, body_of: BodyReader, *, legacy: bool = False
    ) -> dict[str, Any]:
        """Start (or continue) a mobile session; the answer's JSON object (refusals: ApiError)."""
        limit = self.config.json_size_limit
        if head.content_length == 0:
            raise ApiError(400, "request body is empty")
        if head.content_length is not None and head.content_length > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        body = await body_of(limit)
        if not body:
            raise ApiError(400, "request body is empty")
        data = parse_json_object(await decode_content(body, head.content_encoding, limit))
        req = _start_request(data)
        if legacy:  # the old route was iOS only (its UserOS was hard-coded "IOS")
            req = attrs.evolve(req, platform="ios")
        project = await (self._legacy_project(data) if legacy else self._project(data))
        if project.platform not in MOBILE_PLATFORMS:
            raise ApiError(403, "project doesn't support mobile sessions")
        if not legacy and not mobile_tracker_version_ok(req.tracker_version):
            raise ApiError(426, "tracker version not supported")

        now = self.clock()
        previous = await self.continued_session_of(req.token, project, now)
        user_uuid = canonical_uuid(req.user_uuid) or str(uuid.uuid4())
        user_agent = client_info.cap_user_agent(head.user_agent)
        if previous is not None:
            session_id, expiry_ms = previous.session_id, previous.expiry_ms
            start_timestamp = flake_timestamp_ms(session_id)
        else:
            if not sampled_in(project.project_id, user_uuid, project.sample_rate):
                raise ApiError(403, "capture rate miss")
            # Native clients always send one (CFNetwork on iOS, Dalvik on Android).
            if not user_agent.strip():
                raise ApiError(403, "browser not recognized")
            session_id = self.ids.next_id(now)
            ttl = project.max_session_duration_ms
            expiry_ms = now + (ttl if ttl > 0 else self.config.token_ttl_ms)
            # Mobile message timestamps are the device's clock (delay 0), and so is the start:
            # the session's duration is measured on one clock.
            start_timestamp = req.timestamp if req.timestamp > 0 else flake_timestamp_ms(session_id)
        token = tokens.sign(self.secret, tokens.TokenData(session_id, 0, expiry_ms))

        if not req.do_not_record:
            payload = start_payload(
                req,
                session_id=session_id,
                project_id=project.project_id,
                start_timestamp=start_timestamp,
                continued=previous is not None,
                user_uuid=user_uuid,
                user_agent=user_agent,
                user_country=client_info.country_of_ip(self.client_ip_of(head)),
            )
            record = NewRecord(
                session_id=session_id,
                project_id=project.project_id,
                kind=RecordKind.MOBILE_START,
                received_at_ms=now,
                payload=payload.to_bytes(),
            )
            await self.append([record])
            self.directory.remember(session_id, project.project_id)

        # Every key the iOS decoder requires, with its type (MOBILE.md 2.2): a missing or
        # mistyped one makes the SDK stop silently.
        return {
            "token": token,
            "userUUID": user_uuid,
            "sessionID": str(session_id),
            "projectID": str(project.project_id),
            "fps": MOBILE_FPS,
            "quality": MOBILE_QUALITY,
            "beaconSizeLimit": self.beacon_limit(project),
            "framesSupport": True,
            "imagesHashList": await self.images_hash_list(project.project_id),
        }

    async def _project(self, data: dict[str, Any]) -> Project:
        key = typed_field(data, "projectKey", str, "")
        if not key:
            raise ApiError(403, "projectKey value required")
        return await self._project_by_key(key)

    async def _project_by_key(self, key: str) -> Project:
        if not may_be_project_key(key):
            raise ApiError(400, "projectKey is not a valid project key")
        return _active(await self.catalog.find_project_by_key(key))

    async def _legacy_project(self, data: dict[str, Any]) -> Project:
        """The project of an old start: ``projectKey``, else the encoded ``projectID``."""
        key = typed_field(data, "projectKey", str, "")
        if key:
            return await self._project_by_key(key)
        raw = typed_field(data, "projectID", (int, str), None)
        if raw is None:
            raise ApiError(403, "projectKey or projectID value required")
        project_id = parse_project_id(raw)
        if project_id is None:
            raise ApiError(400, LEGACY_PROJECT_ID_REFUSED)
        return _active(await self.catalog.find_project(project_id))

    # -- POST /v1/mobile/i, /v1/mobile/late (and the /v1/ios names) ---------------------------

    async def upload(self, *, late: bool) -> Response:
        """Store one batch (MOBILE_BATCH, or MOBILE_LATE when ``late``), then 200 empty."""
        await self.store_batch(IngestRequest.of_request(), read_body, late=late)
        return Response(b"", status=200)

    async def store_batch(
        self, head: IngestRequest, body_of: BodyReader, *, late: bool = False
    ) -> None:
        """Check one upload, read its body with ``body_of(limit)`` and append it; returns once
        it committed (refusals: ApiError)."""
        now = self.clock()
        check = tokens.verify_bearer(self.secret, head.authorization, now)
        if check.data is None or not (late or check.status is tokens.TokenStatus.VALID):
            # /i wants a live token (a just-expired one too is refused, as in Go: iOS then starts
            # a new session); /late takes any token we signed, expired or not.
            raise ApiError(401, token_message(check.status))
        session_id = check.data.session_id
        project_id = await self.directory.project_of(session_id)
        if project_id is None:
            # Never recorded (never started, or a doNotRecord start): nothing to attach it to.
            raise ApiError(401, "unknown session")
        project = await self.catalog.find_project(project_id)
        if project is None or not project.active or project.platform not in MOBILE_PLATFORMS:
            raise ApiError(401, "not a session of an active mobile project")

        limit = self.beacon_limit(project)
        if head.content_length is not None and head.content_length > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        body = await body_of(limit)
        if body.startswith(GZIP_MAGIC):
            body = await gunzip_off_loop(body, self.config.decompressed_size_limit)
        if not body:
            raise ApiError(400, "request body is empty")
        record = NewRecord(
            session_id=session_id,
            project_id=project_id,
            kind=RecordKind.MOBILE_LATE if late else RecordKind.MOBILE_BATCH,
            received_at_ms=now,
            payload=body,
            # An identical resend (the SDKs resend a failed batch) is stored once.
            batch_key=hashlib.blake2b(body, digest_size=16).hexdigest(),
        )
        await self.append([record])


def _active(project: Project | None) -> Project:
    if project is None or not project.active:
        raise ApiError(404, _PROJECT_NOT_FOUND)
    return project


def _start_request(data: dict[str, Any]) -> MobileStartRequest:
    """The typed fields of a start body (a wrong type is a 400, as Go's decoder answers)."""

    def device_text(key: str) -> str:
        return text_field(data, key, MAX_DEVICE_TEXT_LENGTH) or ""

    return MobileStartRequest(
        tracker_version=text_field(data, "trackerVersion", MAX_TRACKER_VERSION_LENGTH) or "",
        token=typed_field(data, "token", str, ""),
        rev_id=text_field(data, "revID", MAX_REV_ID_LENGTH) or "",
        user_uuid=typed_field(data, "userUUID", str, ""),
        user_os_version=device_text("userOSVersion"),
        user_device=device_text("userDevice"),
        user_device_type=device_text("userDeviceType"),
        timestamp=number_field(data, "timestamp"),
        timezone=text_field(data, "timezone", MAX_TIMEZONE_LENGTH) or "",
        device_memory=number_field(data, "deviceMemory"),
        do_not_record=typed_field(data, "doNotRecord", bool, False),
        platform=device_text("platform"),
        width=number_field(data, "width"),
        height=number_field(data, "height"),
    )


# -- routes ------------------------------------------------------------------------------------


def _ingest() -> MobileIngest:
    return current_app.extensions[EXTENSION_KEY]


_START_REPLIES = web_docs.replies(
    docs.START_OK,
    *(400, 404, 408, 413, 415, 500, 503),
    s403=docs.START_FORBIDDEN,
)
_BATCH_REPLIES = web_docs.replies(
    docs.EMPTY_OK, *(400, 404, 408, 413, 500, 503), s401=docs.UNAUTHORIZED
)
_LATE_REPLIES = web_docs.replies(
    docs.EMPTY_OK, *(400, 404, 408, 413, 500, 503), s401=docs.LATE_UNAUTHORIZED
)


@bp.post("/v1/mobile/start")
@operation(
    "Start or continue a mobile session",
    tags=docs.TAGS,
    body=docs.START_BODY,
    body_required=True,
    responses={**_START_REPLIES, 426: docs.UPGRADE},
)
async def mobile_start() -> Response:
    return await _ingest().start(legacy=False)


@bp.get("/v1/mobile/conditions/<int:project_id>")
@operation(
    "Recording conditions (none: record as usual)",
    tags=docs.TAGS,
    security=docs.TOKEN,
    parameters=[web_docs.CONDITIONS_PROJECT],
    responses=web_docs.replies(docs.CONDITIONS, 401, 404),
)
async def mobile_conditions(project_id: int) -> Response:
    # A token is required, as the EE backend does; conditional recording is not implemented.
    _ingest().require_valid_token()
    return json_response({"conditions": []})


@bp.post("/v1/ios/start")
@operation(
    "Start an iOS session (the old route: projectKey or the encoded projectID)",
    tags=docs.TAGS,
    body=docs.LEGACY_START_BODY,
    body_required=True,
    responses=_START_REPLIES,
)
async def ios_start() -> Response:
    return await _ingest().start(legacy=True)


def _batch_route(path: str, name: str, summary: str, *, late: bool) -> None:
    """Register ``POST path``: a batch (MOBILE_BATCH), or a late one (MOBILE_LATE)."""

    async def view() -> Response:
        return await _ingest().upload(late=late)

    view.__name__ = view.__qualname__ = name
    described = operation(
        summary,
        tags=docs.TAGS,
        security=docs.TOKEN,
        body=docs.BATCH_BODY,
        body_required=True,
        responses=_LATE_REPLIES if late else _BATCH_REPLIES,
    )(view)
    bp.add_url_rule(path, name, described, methods=["POST"])


_LATE = "Store a late batch (the last one of a previous run; its token may have expired)"
for _path, _name, _summary, _late in (
    ("/v1/mobile/i", "mobile_batch", "Store a batch of SDK messages", False),
    ("/v1/mobile/late", "mobile_late", _LATE, True),
    ("/v1/ios/append", "ios_append", "Store a batch (the old route's first name)", False),
    ("/v1/ios/i", "ios_batch", "Store a batch (the old route)", False),
    ("/v1/ios/late", "ios_late", f"{_LATE} (the old route)", True),
):
    _batch_route(_path, _name, _summary, late=_late)
