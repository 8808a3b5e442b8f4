"""Web tracker ingest over HTTP: ``/v1/web/start``, ``/v1/web/i`` and the small endpoints around.

Wire behaviour follows PROTOCOL.md (sections 3, 4 and 8) and the reference Go backend's order of
checks. The request path never decodes tracker messages: a batch is checked (token, size, gzip,
DataType/split), appended to the log as opaque bytes, and acknowledged only after the append
returned, i.e. after the commit (DESIGN.md invariant 1).

Status codes matter to the tracker: 401 means "start again" (it drops the batch and calls start with
its old token); any other status >= 400 is retried 10 times and then recording stops for good.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, request

from api import ingest_web_schema as docs
from api.config import ServerConfig
from api.errors import ApiError, json_response, retry_after_header
from api.openapi import error_reply, json_reply, operation
from api.session_directory import SessionDirectory
from engine import client_info, tokens
from engine.ids import FlakeIdGenerator, flake_timestamp_ms
from engine.mobile_start import semver_at_least
from engine.start_info import StartInfo
from engine.start_payload import WebStartPayload
from storage.budget import ByteBudget
from storage.catalog import Catalog, Project
from storage.errors import LogClosed, LogOverloaded, LogUnavailable, LogWriteFailed
from storage.log import EventLog
from storage.records import NewRecord, RecordKind

logger = logging.getLogger(__name__)

EXTENSION_KEY = "replayd.ingest_web"
CORS_PREFIXES = ("/v1/web/", "/ingest/v1/web/")
MIN_TRACKER_VERSION = (6, 0, 0)
MAX_BUFFER_DIFF_MS = 5 * 60 * 1000  # a cold-start buffer older than this is not trusted (as in Go)
BODY_READ_TIMEOUT_S = 60.0  # a client that trickles its body is cut off (408) after this
_THREAD_GUNZIP_BYTES = 64 * 1024  # gunzip bigger bodies in a worker thread, off the event loop
# Free-text start fields are cut to these many characters (a tracker must not lose its session over
# a long referrer, so they are never refused for length); the stored record holds the cut value.
MAX_USER_ID_LENGTH = 256
MAX_REV_ID_LENGTH = 128
MAX_TIMEZONE_LENGTH = 64
MAX_REFERRER_LENGTH = 4096  # what browsers themselves send at most (Chrome cuts at 4 KB)
MAX_TRACKER_VERSION_LENGTH = 64
MAX_PROJECT_KEY_LENGTH = 64  # keys are 20 characters; a longer one is refused before any lookup
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# DataType header of a WEB_BATCH upload -> suffix of its batch key (assets/visual handled apart)
_BATCH_DATATYPES = {
    "": "",
    "all": "",
    "player": "",
    "devtools": ":devtools",
    "analytics": ":analytics",
}

bp = Blueprint("ingest_web", __name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.define(eq=False)
class Ingest:
    """The state and the shared steps of an ingest surface (web, mobile): one per surface."""

    config: ServerConfig
    catalog: Catalog
    log: EventLog
    directory: SessionDirectory
    ids: FlakeIdGenerator
    clock: Callable[[], int] = _now_ms
    rng: random.Random = attrs.field(factory=random.Random)
    agents: client_info.UserAgentParser = attrs.field(factory=client_info.UserAgentParser)
    # Request bodies admitted at once (process-wide): the ASGI gate of api.body_budget takes from
    # it before Quart buffers a body, so waiting requests hold no body in memory.
    bodies: ByteBudget = attrs.field(
        default=attrs.Factory(lambda s: ByteBudget(s.config.ingest_body_bytes), takes_self=True)
    )

    @property
    def secret(self) -> bytes:
        return self.catalog.token_secret()

    def beacon_limit(self, project: Project | None) -> int:
        """The project's batch size limit, never above the server's (that bounds request memory)."""
        if project is not None and 0 < project.beacon_size < self.config.beacon_size_limit:
            return project.beacon_size
        return self.config.beacon_size_limit

    # -- shared steps --------------------------------------------------------------------------

    def check_token(self, now_ms: int) -> tokens.TokenCheck:
        return bearer_token_check(self.secret, now_ms)

    def require_valid_token(self) -> tokens.TokenData:
        check = self.check_token(self.clock())
        if check.status is not tokens.TokenStatus.VALID or check.data is None:
            raise ApiError(401, token_message(check.status))
        return check.data

    def client_ip(self) -> str:
        """The client address of Quart's current request (see :meth:`client_ip_of`)."""
        return self.client_ip_of(IngestRequest.of_request())

    def client_ip_of(self, head: IngestRequest) -> str:
        """The client's address: the first of ``X-Forwarded-For`` behind a trusted proxy."""
        if self.config.trust_x_forwarded_for and head.forwarded_for:
            return head.forwarded_for.split(",")[0].strip()
        return head.remote_addr

    async def append(self, records: list[NewRecord]) -> None:
        try:
            await self.log.append_many(records, wait_timeout=self.config.append_wait_timeout)
        except LogOverloaded as error:
            # Only after the bounded wait: until then the request was simply held (back-pressure).
            raise ApiError(
                503, "server busy, retry later", {"Retry-After": str(int(error.retry_after))}
            ) from None
        except LogClosed:
            raise ApiError(503, "server shutting down", {"Retry-After": "1"}) from None
        except LogUnavailable as error:
            # Full disk or I/O error: the log said so once, loudly; no traceback per request.
            raise ApiError(
                503, "storage unavailable, retry later", retry_after_header(error.retry_after)
            ) from None
        except LogWriteFailed:
            logger.exception("log append failed")
            raise ApiError(500, "could not store the data") from None

    async def continued_session_of(
        self, token: str, project: Project, now: int
    ) -> tokens.TokenData | None:
        """The session ``token`` continues, or None for a new session.

        As in the reference backend the token must verify and not be expired (a just-expired token
        starts a new session). One check more: the session must be recorded under this project
        (a token of another project's session must not mix the two projects' data).
        """
        if not token:
            return None
        check = tokens.verify(self.secret, token, now)
        if check.status is not tokens.TokenStatus.VALID or check.data is None:
            return None
        owner = await self.directory.project_of(check.data.session_id)
        if owner != project.project_id:
            # Another project's session, or one never recorded (a doNotRecord probe's token):
            # a new session, so that every continued session has its first start in the log.
            return None
        return check.data


@attrs.define(eq=False)
class WebIngest(Ingest):
    """The state behind the web ingest routes (one per app)."""

    # -- POST /v1/web/start ---------------------------------------------------------------------

    async def start(self) -> Response:
        """Start (or continue) a session: Quart's route, when the raw one is not in front."""
        return json_response(await self.start_session(IngestRequest.of_request(), read_body))

    async def start_session(self, head: IngestRequest, body_of: BodyReader) -> dict[str, Any]:
        """Start (or continue) a session; the answer's JSON object. A refusal is an ApiError,
        logged with its reason (is the site sending, with the right key? is the operator's
        first question)."""
        attempt = _StartAttempt()
        try:
            return await self._start(head, body_of, attempt)
        except ApiError as error:
            _log_refused_start(error, attempt.project_key, self.client_ip_of(head))
            raise

    async def _start(
        self, head: IngestRequest, body_of: BodyReader, attempt: _StartAttempt
    ) -> dict[str, Any]:
        """Checks in the reference backend's order, log, answer."""
        limit = self.config.json_size_limit
        if head.content_length == 0:
            raise ApiError(400, "request body is empty")
        if head.content_length is not None and head.content_length > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        body = await body_of(limit)
        if not body:
            raise ApiError(400, "request body is empty")
        body = await decode_content(body, head.content_encoding, limit)
        data = parse_json_object(body)
        req = _StartRequest.from_json(data)
        attempt.project_key = req.project_key
        if not tracker_version_ok(req.tracker_version):
            raise ApiError(426, "please upgrade the tracker version")
        if not req.project_key:
            raise ApiError(403, "projectKey value required")
        if not may_be_project_key(req.project_key):
            # No lookup: SQLite cannot bind a lone surrogate, and every unknown key is remembered
            # for a while (huge ones would fill memory).
            raise ApiError(400, "projectKey is not a valid project key")
        project = await self.catalog.find_project_by_key(req.project_key)
        if project is None or not project.active:
            raise ApiError(404, "project doesn't exist")
        if project.platform != "web":
            raise ApiError(403, "project is not a web project")
        # Only the first 1 KB of the agent is parsed and stored (engine.client_info).
        user_agent = client_info.cap_user_agent(head.user_agent)
        # An empty User-Agent is refused (the reference backend refuses any UA it cannot parse).
        # A non-empty one that ua-parser calls "Other" is accepted on purpose: new or rare browsers
        # must not lose their sessions because a regex list is behind.
        if not user_agent.strip():
            raise ApiError(403, "user agent is missing")

        now = self.clock()
        previous = await self.continued_session(req, project, now)
        if previous is None and self.rng.randrange(100) >= project.sample_rate:
            raise ApiError(403, "capture rate miss")

        if previous is not None:
            session_id, delay, expiry_ms = previous.session_id, previous.delay, previous.expiry_ms
            start_timestamp = flake_timestamp_ms(session_id)
            session_start = start_timestamp
        else:
            session_id = self.ids.next_id(now)
            delay = now - req.timestamp if req.timestamp > 0 else 0
            ttl = project.max_session_duration_ms if project.max_session_duration_ms > 0 else None
            expiry_ms = now + (ttl or self.config.token_ttl_ms)
            start_timestamp = flake_timestamp_ms(session_id)
            session_start = start_timestamp
            if 0 < req.buffer_diff < MAX_BUFFER_DIFF_MS:
                session_start = now - req.buffer_diff  # cold start: the session began earlier
        token = tokens.sign(self.secret, tokens.TokenData(session_id, delay, expiry_ms))
        user_uuid = canonical_uuid(req.user_uuid) or str(uuid.uuid4())
        info = await self.agents.parse(user_agent)
        country = client_info.country_of_ip(self.client_ip_of(head))

        if not req.do_not_record:
            start = info.applied_to(
                StartInfo(
                    user_uuid=user_uuid,
                    user_id=req.user_id,
                    rev_id=req.rev_id,
                    tracker_version=req.tracker_version,
                    is_snippet=req.is_snippet,
                    user_agent=user_agent,
                    user_country=country,
                    timezone=req.timezone,
                    screen_width=req.width,
                    screen_height=req.height,
                    referrer=req.referrer,
                    device_memory=req.device_memory,
                    js_heap_size_limit=req.js_heap_size_limit,
                )
            )
            payload = WebStartPayload(
                session_id=session_id,
                project_id=project.project_id,
                start_timestamp=session_start,
                delay=delay,
                continued=previous is not None,
                **attrs.asdict(start, recurse=False),
            )
            record = NewRecord(
                session_id=session_id,
                project_id=project.project_id,
                kind=RecordKind.WEB_START,
                received_at_ms=now,
                payload=payload.to_bytes(),
            )
            await self.append([record])
            self.directory.remember(session_id, project.project_id)

        answer: dict[str, Any] = {
            "token": token,
            "userUUID": user_uuid,
            "sessionID": str(session_id),
            "projectID": str(project.project_id),
            "beaconSizeLimit": self.beacon_limit(project),
            "compressionThreshold": self.config.compression_threshold,
            "startTimestamp": start_timestamp,
            "delay": delay,
            "timestamp": 0,
            "userOS": info.os,
            "userDevice": info.device,
            "userBrowser": info.browser,
            "userCountry": country,
            "userState": "",
            "userCity": "",
            # The tracker records canvases (and POSTs /v1/web/images) only when this is true.
            "canvasEnabled": self.config.record_canvas,
            "canvasQuality": "low",
            "canvasFPS": 1,
            "framesSupport": True,
        }
        # Absent means protocol 1 to the tracker (one "player" stream); 2 only when configured.
        if self.config.protocol_version != 1:
            answer["protocolVersion"] = self.config.protocol_version
        return answer

    async def continued_session(
        self, req: _StartRequest, project: Project, now: int
    ) -> tokens.TokenData | None:
        """The session the request's token continues (none on ``reset``)."""
        if req.reset:
            return None
        return await self.continued_session_of(req.token, project, now)

    # -- POST /v1/web/i -------------------------------------------------------------------------

    async def upload(self) -> Response:
        """Store one batch (two records for a "visual" one), then answer 200 with an empty body.

        Served by Quart only when the raw ASGI route (:mod:`api.ingest_raw`) is not in front.
        """
        await self.store_batch(IngestRequest.of_request(), read_body)
        return Response(b"", status=200)

    async def store_batch(self, upload: IngestRequest, body_of: BodyReader) -> None:
        """Check one upload, read its body with ``body_of(limit)`` and append it; returns once
        the records committed. Every refusal is an :class:`ApiError` (a just-expired token: after
        the batch is stored)."""
        now = self.clock()
        check = tokens.verify_bearer(self.secret, upload.authorization, now)
        if not check.accepted or check.data is None:
            raise ApiError(401, token_message(check.status))
        session_id = check.data.session_id
        project = await session_project(self.directory, self.catalog, session_id)
        project_id = project.project_id

        limit = self.beacon_limit(project)
        if upload.content_length is not None and upload.content_length > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        body = await body_of(limit)
        if not body:
            raise ApiError(400, "request body is empty")
        body = await decode_content(
            body, upload.content_encoding, self.config.decompressed_size_limit
        )
        if not body:
            raise ApiError(400, "request body is empty")

        data_type = upload.data_type.strip().lower()
        batch_param = upload.batch

        def record(kind: RecordKind, payload: bytes, suffix: str) -> NewRecord:
            return NewRecord(
                session_id=session_id,
                project_id=project_id,
                kind=kind,
                received_at_ms=now,
                payload=payload,
                batch_key=batch_key(batch_param, payload, suffix),
            )

        if data_type == "assets":
            records = [record(RecordKind.WEB_ASSETS, body, ":assets")]
        elif data_type == "visual":
            split = _parse_split(upload.split, len(body))
            records = [
                record(RecordKind.WEB_BATCH, body[:split], ""),
                record(RecordKind.WEB_ASSETS, body[split:], ":assets"),
            ]
        elif data_type in _BATCH_DATATYPES:
            records = [record(RecordKind.WEB_BATCH, body, _BATCH_DATATYPES[data_type])]
        else:
            raise ApiError(400, f"unknown DataType {data_type!r}")
        # Both parts of a visual batch go in one transaction: stored together or not at all.
        await self.append(records)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "batch of session %d (project %d): %s, %d bytes",
                session_id,
                project_id,
                data_type or "player",
                len(body),
                extra={
                    "session_id": session_id,
                    "project_id": project_id,
                    "data_type": data_type or "player",
                    "bytes": len(body),
                },
            )
        if check.status is tokens.TokenStatus.JUST_EXPIRED:
            # Stored, but the tracker must start a new session now (as the reference backend does).
            raise ApiError(401, "token expired")


BodyReader = Callable[[int], Awaitable[bytes]]
"""Reads a request's whole body, refusing more than the given limit (413) or a trickle (408)."""


@attrs.frozen(slots=True, kw_only=True)
class IngestRequest:
    """What an ingest request (a start, an upload) says besides its body: the headers and query
    parameters the routes read, parsed by either Quart's routes or the raw ASGI ones."""

    authorization: str = ""
    content_encoding: str = ""
    content_length: int | None = None
    data_type: str = ""
    user_agent: str = ""
    forwarded_for: str = ""  # X-Forwarded-For (used behind a trusted proxy only)
    remote_addr: str = ""  # the peer's address
    batch: str = ""  # the ``batch`` query parameter (dedupe counters)
    split: str = ""  # the ``split`` query parameter of a visual batch

    @classmethod
    def of_request(cls) -> IngestRequest:
        """The head of Quart's current request."""
        headers = request.headers
        return cls(
            authorization=headers.get("Authorization", ""),
            content_encoding=headers.get("Content-Encoding", ""),
            content_length=request.content_length,
            data_type=headers.get("DataType", ""),
            user_agent=headers.get("User-Agent", ""),
            forwarded_for=headers.get("X-Forwarded-For", ""),
            remote_addr=request.remote_addr or "",
            batch=request.args.get("batch", ""),
            split=request.args.get("split", ""),
        )


@attrs.define
class _StartAttempt:
    """What a /v1/web/start told before it was refused (for the log line)."""

    project_key: str | None = None


# Refusals an operator must see (the site is misconfigured or too old); the others (bad bodies,
# a busy server) are routine, and sampling out is the project's own choice.
_LOUD_REFUSALS = frozenset({403, 404, 426})


def _log_refused_start(error: ApiError, project_key: str | None, client: str) -> None:
    if error.message == "capture rate miss":
        level = logging.DEBUG
    else:
        level = logging.WARNING if error.status in _LOUD_REFUSALS else logging.INFO
    if not logger.isEnabledFor(level):
        return
    key = _loggable(project_key)
    logger.log(
        level,
        "refused /v1/web/start (%d %s): project key %r, client %s",
        error.status,
        error.message,
        key,
        client or "-",
        extra={
            "event": "start_refused",
            "status": error.status,
            "reason": error.message,
            "project_key": key,
            "client": client,
        },
    )


def token_message(status: tokens.TokenStatus) -> str:
    if status is tokens.TokenStatus.INVALID:
        return "missing or invalid token"
    return "token expired"


def _parse_split(raw: str, length: int) -> int:
    try:
        split = int(raw)
    except ValueError:
        raise ApiError(400, "a visual batch needs a numeric split parameter") from None
    if not 0 < split < length:
        raise ApiError(400, "split must be inside the batch")
    return split


def bearer_token_check(secret: bytes, now_ms: int) -> tokens.TokenCheck:
    """The request's ``Authorization: Bearer <token>`` checked (INVALID when there is none)."""
    return tokens.verify_bearer(secret, request.headers.get("Authorization", ""), now_ms)


async def session_project(
    directory: SessionDirectory, catalog: Catalog, session_id: int
) -> Project:
    """The active project of a token's session; 401 when there is none (start again)."""
    project_id = await directory.project_of(session_id)
    if project_id is None:
        # A token we signed for a session with no start record (e.g. a doNotRecord probe): make
        # the tracker start again, which records a start.
        raise ApiError(401, "unknown session")
    project = await catalog.find_project(project_id)
    if project is None or not project.active:
        raise ApiError(401, "project doesn't exist")
    return project


def batch_key(batch_param: str, payload: bytes, suffix: str = "") -> str:
    """The dedupe key of a stored upload: ``"<pageNo>_<seq><suffix>#<payload digest>"``.

    ``pageNo_seq`` comes from the ``batch`` query parameter (its first two parts; a retry appends
    a retry tag after them); ``suffix`` names the stream (``:assets``, ``:devtools``, ...). The
    digest of the (gunzipped) payload is added because several tabs can share one session, each
    with its own page and batch counters starting at 0_1: two different batches must not be taken
    for retries of each other, while a retry resends the same bytes and still dedupes. Without a
    usable parameter the key is the suffix and digest alone.
    """
    digest = hashlib.blake2b(payload, digest_size=8).hexdigest()
    parts = batch_param.split("_")
    counters = ""
    if len(parts) >= 2 and all(p.isascii() and p.isdigit() and len(p) <= 12 for p in parts[:2]):
        counters = f"{int(parts[0])}_{int(parts[1])}"
    return f"{counters}{suffix}#{digest}"


# -- request helpers ---------------------------------------------------------------------------


async def read_body(limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without buffering beyond it."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    buffer = bytearray()
    with trio.move_on_after(BODY_READ_TIMEOUT_S) as scope:
        # The request's body cap (api.app: the app's largest limit, or its path's) caps what
        # Quart buffers for a lying or missing Content-Length; this loop applies the route's.
        async for chunk in request.body:
            buffer += chunk
            if len(buffer) > limit:
                raise ApiError(413, f"request body larger than {limit} bytes")
    if scope.cancelled_caught:
        raise ApiError(408, "request body not received in time")
    return bytes(buffer)


async def maybe_gunzip(body: bytes, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` (capping the output at ``limit``); other bodies unchanged."""
    return await decode_content(body, request.headers.get("Content-Encoding", ""), limit)


async def decode_content(body: bytes, content_encoding: str, limit: int) -> bytes:
    """``body`` with its ``Content-Encoding`` undone (gzip only; 415 for others)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, f"unsupported Content-Encoding {encoding!r}")
    return await gunzip_off_loop(body, limit)


async def gunzip_off_loop(body: bytes, limit: int) -> bytes:
    """``gunzip``, in a worker thread for a body big enough to stall the event loop."""
    if len(body) > _THREAD_GUNZIP_BYTES:
        return await trio.to_thread.run_sync(gunzip, body, limit)
    return gunzip(body, limit)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` (one or more members); 413 past ``limit`` bytes, 400 if corrupt."""
    out = bytearray()
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            # max_length stops a decompression bomb after limit + 1 bytes (it is >= 1 here).
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise ApiError(413, f"decompressed body larger than {limit} bytes")
            if not inflater.eof:
                raise ApiError(400, "truncated gzip body")
            rest = inflater.unused_data
    except zlib.error:
        raise ApiError(400, "body is not valid gzip") from None
    return bytes(out)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object from ``body`` (400 otherwise)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):  # integers past 4,300 digits are a ValueError too
        raise ApiError(400, "bad JSON") from None
    except RecursionError:  # e.g. 100,000 nested arrays: the parser gives up, nothing else does
        raise ApiError(400, "bad JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad JSON: an object is expected")
    return data


def tracker_version_ok(version: str) -> bool:
    """True for a semver ``>= 6.0.0`` (a ``-pre`` or ``+build`` suffix is cut off first)."""
    return semver_at_least(version, MIN_TRACKER_VERSION)


def canonical_uuid(value: str) -> str | None:
    """``value`` as a canonical lower-case UUID, or None if it is not one (stored only so)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:  # lone surrogates included: they are not hex digits
        return None


def clean_text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, each lone surrogate replaced by U+FFFD.

    JSON may carry an unpaired ``\\ud800`` escape; Python decodes it into a string that cannot be
    encoded as UTF-8, so SQLite (the projections) would fail on it for ever. Repairing it keeps the
    session; the text was broken on the client already.
    """
    value = value[:limit]
    if not value.isascii():
        value = _LONE_SURROGATE.sub("\ufffd", value)
    return value


def may_be_project_key(key: str) -> bool:
    return len(key) <= MAX_PROJECT_KEY_LENGTH and key.isascii() and key.isprintable()


def text_field(data: dict[str, Any], key: str, limit: int) -> str | None:
    """A string field cleaned for storage (see ``clean_text``), None when absent or null."""
    value = typed_field(data, key, str, None)
    return None if value is None else clean_text(value, limit)


def _loggable(value: object) -> str | None:
    """A reported value fit for one log line: strings cut to 200 characters, other types named
    only (a nested or huge value must not make a huge or failing log line)."""
    if value is None:
        return None
    if isinstance(value, str):
        return clean_text(value, 200)
    return f"<{type(value).__name__}>"


def typed_field(
    data: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any
) -> Any:
    value = data.get(key)
    if value is None:
        return default
    # bool is an int in Python but not a number in JSON terms.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ApiError(400, f"bad JSON: {key} has the wrong type")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_INT64 = 1 << 63


def number_field(data: dict[str, Any], key: str) -> int:
    value = typed_field(data, key, (int, float), 0)
    try:
        number = int(value)
    except (OverflowError, ValueError):  # Infinity / NaN, which Python's json accepts
        raise ApiError(400, f"bad JSON: {key} is not a finite number") from None
    if not -_INT64 <= number < _INT64:
        raise ApiError(400, f"bad JSON: {key} is out of range")
    return number


@attrs.frozen(slots=True, kw_only=True)
class _StartRequest:
    """The fields of a start request that the server uses (wrong types are a 400, as in Go)."""

    project_key: str
    tracker_version: str
    token: str
    reset: bool
    user_uuid: str
    user_id: str | None
    rev_id: str
    is_snippet: bool
    timestamp: int
    do_not_record: bool
    buffer_diff: int
    device_memory: int
    js_heap_size_limit: int
    timezone: str
    width: int
    height: int
    referrer: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _StartRequest:
        return cls(
            # Checked, never stored as given: the key must name a project (may_be_project_key),
            # the token must verify, the UUID is stored in canonical form or replaced.
            project_key=typed_field(data, "projectKey", str, ""),
            token=typed_field(data, "token", str, ""),
            user_uuid=typed_field(data, "userUUID", str, ""),
            # Stored: cut and repaired (clean_text).
            tracker_version=text_field(data, "trackerVersion", MAX_TRACKER_VERSION_LENGTH) or "",
            user_id=text_field(data, "userID", MAX_USER_ID_LENGTH),
            rev_id=text_field(data, "revID", MAX_REV_ID_LENGTH) or "",
            reset=typed_field(data, "reset", bool, False),
            is_snippet=typed_field(data, "isSnippet", bool, False),
            timestamp=number_field(data, "timestamp"),
            do_not_record=typed_field(data, "doNotRecord", bool, False),
            buffer_diff=number_field(data, "bufferDiff"),
            device_memory=number_field(data, "deviceMemory"),
            js_heap_size_limit=number_field(data, "jsHeapSizeLimit"),
            timezone=text_field(data, "timezone", MAX_TIMEZONE_LENGTH) or "",
            width=number_field(data, "width"),
            height=number_field(data, "height"),
            referrer=text_field(data, "referrer", MAX_REFERRER_LENGTH) or "",
        )


# -- routes ------------------------------------------------------------------------------------


def _ingest() -> WebIngest:
    return current_app.extensions[EXTENSION_KEY]


@bp.post("/v1/web/start")
@operation(
    "Start or continue a session",
    tags=docs.TAGS,
    body=docs.START_BODY,
    body_required=True,
    responses=docs.replies(
        json_reply("The session token and settings", docs.START_ANSWER),
        *(400, 404, 408, 413, 415, 500, 503),
        s403=error_reply("No project key, not a web project, no User-Agent, or sampled out"),
        s426=error_reply("The tracker is older than 6.0.0"),
    ),
)
async def start_session() -> Response:
    return await _ingest().start()


@bp.post("/v1/web/i")
@operation(
    "Store a batch of tracker messages",
    tags=docs.TAGS,
    security=docs.TOKEN,
    parameters=[docs.DATA_TYPE, docs.BATCH, docs.SPLIT],
    body=docs.BATCH_BODY,
    body_required=True,
    responses=docs.replies(docs.EMPTY_OK, *(400, 401, 404, 408, 413, 415, 500, 503)),
)
async def upload_batch() -> Response:
    return await _ingest().upload()


@bp.get("/v1/web/tags")
@operation(
    "Tags to watch (none)",
    tags=docs.TAGS,
    security=docs.TOKEN,
    responses=docs.replies(docs.listing("tags"), 401, 404),
)
async def tags() -> Response:
    _ingest().require_valid_token()
    return json_response({"tags": []})


@bp.post("/v1/web/feature-flags")
@operation(
    "Feature flags (none)",
    tags=docs.TAGS,
    security=docs.TOKEN,
    responses=docs.replies(docs.listing("flags"), 401, 404, 413),
)
async def feature_flags() -> Response:
    # Trackers <= 16.x ask; the reference backend keeps a stub with this answer.
    _ingest().require_valid_token()
    return json_response({"flags": []})


@bp.get("/v1/web/conditions/<int:project_id>")
@operation(
    "Recording conditions (none: record as usual)",
    tags=docs.TAGS,
    security=docs.TOKEN,
    parameters=[docs.CONDITIONS_PROJECT],
    responses=docs.replies(docs.listing("conditions"), 401, 404),
)
async def conditions(project_id: int) -> Response:
    # Conditional recording is not implemented: no conditions means "record as usual".
    _ingest().require_valid_token()
    return json_response({"conditions": []})


@bp.post("/v1/web/not-started")
@operation(
    "Why a tracker did not start (logged, not stored)",
    tags=docs.TAGS,
    body=docs.NOT_STARTED_BODY,
    responses=docs.replies(
        json_reply("Noted", {"type": "object", "maxProperties": 0}), *(400, 404, 408, 413, 415)
    ),
)
async def not_started() -> Response:
    """Trackers <= 14.x report here why they did not start. Nothing is stored: the report names no
    session, so it is only logged (at info level: it is routine, e.g. doNotTrack)."""
    ingest = _ingest()
    body = await maybe_gunzip(
        await read_body(ingest.config.json_size_limit), ingest.config.json_size_limit
    )
    data = parse_json_object(body)
    logger.info(
        "tracker did not start: project=%r version=%r reason=%r",
        *(_loggable(data.get(key)) for key in ("projectKey", "trackerVersion", "reason")),
    )
    return json_response({})
