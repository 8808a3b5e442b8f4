"""Mobile screenshot uploads: ``POST /v1/mobile/images`` (MOBILE.md 2.5) and the old
``POST /v1/ios/images`` (2.8), also under ``/ingest``.

Both are multipart bodies with a Bearer session token. The current route carries one file part:
a gzip of a tar of ``<firstTs>_1_<captureTs>.jpeg`` files, or (form value ``type=frames``) of a
frames stream (:mod:`engine.codec.mobile_images`). The old route carries a ``projectKey`` and
one plain image per file part, named by its hash. Either way the images are stored
content-addressed and linked to the token's session (:mod:`storage.images`), and the answer is
200 only after that commit.

Multipart parsing is werkzeug's sans-IO ``MultipartDecoder`` (the parser Quart's own form
parsing runs on), fed as the body arrives. Not ``request.files``: Quart's form parsing answers a
malformed body with an empty form (it cannot be told from "no file", which the reference answers
200) and spools files to temporary files on disk; the decoder raises on malformed input (400
here) and lets this module keep the one file part it needs in memory, bounded by the body limit,
and drop the rest as it streams by. Unpacking and SQLite run in a worker thread.

Also :func:`images_hash_list`, the ``imagesHashList`` of the mobile start answer (2.9).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import BinaryIO

import attrs
import trio
from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from api import ingest_mobile_images_schema as docs
from api.config import ServerConfig
from api.errors import ApiError
from api.ingest_web import (
    BODY_READ_TIMEOUT_S,
    MAX_PROJECT_KEY_LENGTH,
    bearer_token_check,
    session_project,
)
from api.openapi import error_reply, operation
from api.session_directory import LogProjectLookup, SessionDirectory
from engine import tokens
from engine.codec.mobile_images import (
    ImageArchiveError,
    ImageArchiveTooLarge,
    unpack_frames,
    unpack_tar,
)
from engine.mobile_start import LEGACY_PROJECT_ID_REFUSED, parse_project_id
from engine.supervisor import wall_clock_ms
from storage.catalog import Catalog, Project
from storage.images import CapturedImage, ImageStore, StoreResult
from storage.log import EventLog

logger = logging.getLogger(__name__)

EXTENSION_KEY = "replayd.mobile_images"
ROUTES = ("/v1/mobile/images", "/v1/ios/images")
PATHS = (*ROUTES, *(f"/ingest{route}" for route in ROUTES))
CORS_PREFIXES = PATHS
# Text fields are tiny (projectKey, type); a longer one is cut, never kept whole in memory.
MAX_FIELD_CHARS = 256
# Parts of one body: the SDKs send two or three; the old route one per image.
MAX_PARTS = 2_000
# The unpacked images of one upload, in all, at most this many times the body limit (a gzip
# bomb stops there; JPEG and WebP do not compress, so a real upload unpacks to about its size).
UNPACKED_FACTOR = 2

bp = Blueprint("ingest_mobile_images", __name__)


@attrs.define(eq=False)
class MobileImages:
    """The state behind the image routes (one per app): the store is opened when serving starts."""

    config: ServerConfig
    catalog: Catalog
    directory: SessionDirectory
    images_path: str
    clock: Callable[[], int] = wall_clock_ms
    store: ImageStore | None = None
    # One upload is written at a time anyway (one write lock per SQLite file): the others wait
    # here, on the trio side, rather than as blocked worker threads.
    writers: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))

    async def open(self) -> None:
        self.store = await trio.to_thread.run_sync(ImageStore.open, self.images_path)

    async def close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            await trio.to_thread.run_sync(store.close)

    async def frequent_hashes(self, project_id: int) -> list[str]:
        """``imagesHashList`` for a mobile start answer: the project's most stored hashes."""
        return await trio.to_thread.run_sync(self.opened().frequent_hashes, project_id)

    def opened(self) -> ImageStore:
        if self.store is None:
            raise ApiError(503, "server starting or stopping", {"Retry-After": "1"})
        return self.store

    async def session_of_token(self) -> tuple[int, Project]:
        """The token's session and its project; 401 for any token that is not valid now."""
        check = bearer_token_check(self.catalog.token_secret(), self.clock())
        # Unlike a batch, a just-expired token is refused too (the reference's images handler).
        if check.status is not tokens.TokenStatus.VALID or check.data is None:
            invalid = check.status is tokens.TokenStatus.INVALID
            raise ApiError(401, "missing or invalid token" if invalid else "token expired")
        session_id = check.data.session_id
        return session_id, await session_project(self.directory, self.catalog, session_id)

    async def save(
        self, project: Project, session_id: int, images: Callable[[], Iterator[CapturedImage]]
    ) -> StoreResult:
        """Unpack and store in a worker thread; 200-worthy only once this returns (committed)."""
        return await self.write(
            lambda store, received_at_ms: store.store(
                project.project_id, session_id, images(), received_at_ms=received_at_ms
            )
        )

    async def write(self, write: Callable[[ImageStore, int], StoreResult]) -> StoreResult:
        """Run ``write(store, received_at_ms)`` (unpacking and storing) in a worker thread; bad
        archives are 400, oversized ones 413."""
        store = self.opened()
        received_at_ms = self.clock()

        def unpack_and_store() -> StoreResult:
            return write(store, received_at_ms)

        try:
            return await trio.to_thread.run_sync(unpack_and_store, limiter=self.writers)
        except ImageArchiveTooLarge as error:
            raise ApiError(413, str(error)) from None
        except ImageArchiveError as error:
            raise ApiError(400, str(error)) from None

    @property
    def unpacked_limit(self) -> int:
        return UNPACKED_FACTOR * self.config.images_size_limit


@attrs.define
class UploadForm:
    """A multipart body as far as the routes need it: text fields (cut) and kept file parts."""

    received: int = 0
    fields: dict[str, str] = attrs.field(factory=dict)
    # The kept file parts, each as the chunks it arrived in (joined once, when it is unpacked:
    # one copy of the bytes, not one per chunk).
    files: list[list[bytes]] = attrs.field(factory=list)
    # The kept file parts' names (the filename of their part header), in the same order.
    file_names: list[str] = attrs.field(factory=list)


def _boundary() -> bytes:
    """The multipart boundary of the request; 415 when the body is not multipart/form-data."""
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise ApiError(415, "multipart/form-data with a boundary expected")
    if not boundary.isascii() or len(boundary) > 200:  # RFC 2046: at most 70 characters
        raise ApiError(400, "bad multipart boundary")
    return boundary.encode("ascii")


async def _read_form(boundary: bytes, limit: int, *, max_files: int | None) -> UploadForm:
    """Decode the body as it arrives: at most ``limit`` bytes (413), 408 when it trickles in."""
    form = UploadForm()
    decoder = MultipartDecoder(boundary, max_parts=MAX_PARTS)
    field: tuple[str, bytearray] | None = None  # the text field being read: (name, value)
    file: list[bytes] | None = None  # the kept file part being read (None: its data is dropped)

    def handle(event: object) -> None:
        nonlocal field, file
        if isinstance(event, Field):
            field, file = (event.name, bytearray()), None
        elif isinstance(event, File):
            field, file = None, None
            if max_files is None or len(form.files) < max_files:
                file = []
                form.files.append(file)
                form.file_names.append(event.filename or "")
        elif isinstance(event, Data) and field is not None:
            name, value = field
            value += event.data[: max(MAX_FIELD_CHARS - len(value), 0)]
            if not event.more_data:
                form.fields.setdefault(name, value.decode("utf-8", "replace"))
        elif isinstance(event, Data) and file is not None and event.data:
            file.append(event.data)

    def drain() -> None:
        event = decoder.next_event()
        while not isinstance(event, NeedData | Epilogue):
            handle(event)
            event = decoder.next_event()

    try:
        with trio.move_on_after(BODY_READ_TIMEOUT_S) as scope:
            async for chunk in request.body:
                form.received += len(chunk)
                if form.received > limit:
                    raise ApiError(413, f"request body larger than {limit} bytes")
                decoder.receive_data(chunk)
                drain()
        if scope.cancelled_caught:
            raise ApiError(408, "request body not received in time")
        if form.received:
            decoder.receive_data(None)
            drain()
    except RequestEntityTooLarge:
        raise ApiError(413, f"more than {MAX_PARTS} multipart parts") from None
    except ValueError as error:  # UnicodeDecodeError (a part header) included
        raise ApiError(400, f"malformed multipart body: {error}") from None
    if not form.received:
        raise ApiError(400, "request body is empty")
    return form


async def read_upload(*, max_files: int | None) -> tuple[MobileImages, int, Project, UploadForm]:
    """The checks of both routes in the reference's order (token 401, empty 400, too large 413,
    not multipart 415), then the body: the state, the session, its project and the form."""
    ingest = _ingest()
    session_id, project = await ingest.session_of_token()
    limit = ingest.config.images_size_limit
    if request.content_length == 0:
        raise ApiError(400, "request body is empty")
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    form = await _read_form(_boundary(), limit, max_files=max_files)
    return ingest, session_id, project, form


def _ingest() -> MobileImages:
    return current_app.extensions[EXTENSION_KEY]


def body_limits(config: ServerConfig) -> dict[str, int]:
    """The routes' body cap (the app's default is the batch limit, ten times smaller)."""
    return dict.fromkeys(PATHS, config.images_size_limit)


def opened_store() -> ImageStore:
    """The app's image store (503 while the app is not serving)."""
    return _ingest().opened()


async def images_hash_list(project_id: int) -> list[str]:
    """``imagesHashList`` for a mobile start answer: the project's most stored hashes (<= 40)."""
    return await _ingest().frequent_hashes(project_id)


def install(app: QuartTrio, config: ServerConfig, catalog: Catalog, log: EventLog) -> MobileImages:
    """The routes' state in ``app.extensions``; the store opens when the app starts serving and
    closes, with the session lookup in the log, when it stops."""
    lookup = LogProjectLookup(log.path)
    images = MobileImages(
        config=config,
        catalog=catalog,
        directory=SessionDirectory(lookup),
        images_path=config.images_db_path,
    )
    app.extensions[EXTENSION_KEY] = images

    @app.before_serving
    async def open_store() -> None:
        await images.open()

    @app.after_serving
    async def close_store() -> None:
        await images.close()
        lookup.close()

    return images


# -- routes ------------------------------------------------------------------------------------


@bp.post("/v1/mobile/images")
@operation(
    "Store screenshots (a gzipped tar, or a gzipped frames stream with type=frames)",
    tags=docs.TAGS,
    security=docs.TOKEN,
    body=docs.MOBILE_BODY,
    body_required=True,
    responses=docs.replies(*(400, 401, 404, 408, 413, 415, 503)),
)
async def mobile_images() -> Response:
    ingest, session_id, project, form = await read_upload(max_files=1)
    if not form.files:
        # The reference answers 200 too (and logs it): there is nothing to store.
        logger.warning("image upload without a file part (session %d)", session_id)
        return Response(b"", status=200)
    chunks = form.files[0]
    unpack = unpack_frames if form.fields.get("type") == "frames" else unpack_tar
    limit_image, limit_total = ingest.config.images_size_limit, ingest.unpacked_limit

    def images() -> Iterator[CapturedImage]:
        # BytesIO shares the joined bytes (no second copy); the chunks are freed at once.
        source: BinaryIO = io.BytesIO(b"".join(chunks))
        chunks.clear()
        return unpack(source, max_image=limit_image, max_total=limit_total)

    await ingest.save(project, session_id, images)
    return Response(b"", status=200)


@bp.post("/v1/ios/images")
@operation(
    "Store screenshots, one file part per image (the original README's form)",
    tags=docs.TAGS,
    security=docs.TOKEN,
    body=docs.IOS_BODY,
    body_required=True,
    responses=docs.replies(
        *(400, 401, 404, 408, 413, 415, 503),
        s403=error_reply("The project named is not the token's session's project"),
    ),
)
async def ios_images() -> Response:
    ingest, session_id, project, form = await read_upload(max_files=None)
    named = await _form_project(ingest.catalog, form.fields)
    if named.project_id != project.project_id:
        raise ApiError(403, "the project named is not the session's project")
    # Files are named by their hash, but by which hash function the old SDK's source does not
    # say: the name is not checked (a refused name would lose an image), the store names each
    # image by its own SHA-256. The form has no capture time: the time it was received is used.
    captured_ms = ingest.clock()

    def images() -> Iterator[CapturedImage]:
        return (CapturedImage(captured_ms, b"".join(file)) for file in form.files if file)

    await ingest.save(project, session_id, images)
    return Response(b"", status=200)


async def _form_project(catalog: Catalog, fields: dict[str, str]) -> Project:
    """The project a ``/v1/ios/images`` form names: ``projectKey``, else the original README's
    encoded ``projectID`` as on ``/v1/ios/start`` (400 without either, 404 unknown)."""
    key = fields.get("projectKey", "").strip()
    if not key:
        encoded = fields.get("projectID", "").strip()
        if not encoded:
            raise ApiError(400, "projectKey value required")
        project_id = parse_project_id(encoded)
        if project_id is None:
            raise ApiError(400, LEGACY_PROJECT_ID_REFUSED)
        project = await catalog.find_project(project_id)
        if project is None or not project.active:
            raise ApiError(404, "project doesn't exist")
        return project
    if len(key) > MAX_PROJECT_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise ApiError(400, "projectKey is not a valid project key")
    project = await catalog.find_project_by_key(key)
    if project is None or not project.active:
        raise ApiError(404, "project doesn't exist")
    return project
