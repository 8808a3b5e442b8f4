"""The public API v1's images of a mobile session: the list, and one image by its hash.

``GET /api/v1/<projectKey>/sessions/<sessionId>/images`` answers ``{"data": [{"hash",
"captureTime", "size", "contentType"}, ...]}`` in capture order; ``.../images/<hash>`` answers the
image's bytes with its sniffed content type. Authenticated and scoped as every v1 route
(:func:`api.public_v1.authorized_project`): an image linked to another project's session is 404,
as an unknown one. The images come from the store that :mod:`api.ingest_mobile_images` opens.
"""

from __future__ import annotations

import re

import trio
from quart import Blueprint, Response

from api import ingest_mobile_images
from api import public_v1_schema as schema
from api.errors import json_response, v1_errors
from api.openapi import INTEGER, STRING, Parameter, Reply, component, json_object
from api.public_v1 import V1Error, V1ValidationError, authorized_project, path_session_id
from storage.images import OTHER_CONTENT_TYPE, StoredImage

HASH_PATTERN = "^[0-9a-f]{64}$"
_HASH_RE = re.compile(HASH_PATTERN)
IMAGE_TYPES = ("image/jpeg", "image/webp", "image/png", OTHER_CONTENT_TYPE)
# An image never changes under its hash: a client may keep it as long as it likes.
_IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",  # served as the type its bytes say, never as HTML
}

bp = Blueprint("public_v1_images", __name__, url_prefix="/api/v1")

SESSION_IMAGE = component(
    "SessionImage",
    json_object(
        {
            "hash": {**STRING, "pattern": HASH_PATTERN, "description": "SHA-256 of the bytes"},
            "captureTime": {**schema.INT64, "description": "When it was captured (epoch ms)"},
            "size": {**INTEGER, "minimum": 1, "description": "Bytes"},
            "contentType": {"enum": list(IMAGE_TYPES)},
        },
        ["hash", "captureTime", "size", "contentType"],
    ),
)
IMAGE_HASH = Parameter(
    "image_hash", "path", {**STRING, "pattern": HASH_PATTERN}, "The image's SHA-256 (hex)"
)
_IMAGE_REPLY = Reply(
    "The image, with the content type its bytes say",
    {media: {"type": "string", "format": "binary"} for media in IMAGE_TYPES},
)


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


def image_json(image: StoredImage) -> dict[str, object]:
    """One entry of the list."""
    return {
        "hash": image.hash,
        "captureTime": image.capture_ms,
        "size": image.size,
        "contentType": image.content_type,
    }


@bp.get("/<project_key>/sessions/<session_id>/images")
@schema.v1_operation(
    "The screenshots of a mobile session, in capture order",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID],
    responses=schema.replies(
        schema.list_reply("The images (none for an unknown session)", SESSION_IMAGE), 401, 404, 422
    ),
)
async def session_images(project_key: str, session_id: str) -> Response:
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    if sid is None:
        return json_response({"data": []})
    store = ingest_mobile_images.opened_store()
    images = await trio.to_thread.run_sync(store.session_images, project.project_id, sid)
    return json_response({"data": [image_json(image) for image in images]})


@bp.get("/<project_key>/sessions/<session_id>/images/<image_hash>")
@schema.v1_operation(
    "One screenshot of a mobile session, by its hash",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID, IMAGE_HASH],
    responses=schema.replies(_IMAGE_REPLY, 401, 404, 422),
)
async def session_image(project_key: str, session_id: str, image_hash: str) -> Response:
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    if not _HASH_RE.fullmatch(image_hash):
        raise V1ValidationError(["path", "hash"], "a SHA-256 in lower-case hex is expected")
    store = ingest_mobile_images.opened_store()
    found = (
        None
        if sid is None
        else await trio.to_thread.run_sync(store.image, project.project_id, sid, image_hash)
    )
    if found is None:
        raise V1Error(404, "image not found.")
    image, data = found
    return Response(data, content_type=image.content_type, headers=_IMAGE_HEADERS)
