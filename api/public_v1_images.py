"""The public API v1's images of a mobile session: the list, and one image by its hash.

``GET /api/v1/<projectKey>/sessions/<sessionId>/images`` answers ``{"data": [{"hash",
"captureTime", "size", "contentType"}, ...]}`` in capture order; ``.../images/<hash>`` answers the
image's bytes with its sniffed content type. Authenticated and scoped as every v1 route
(:func:`api.public_v1.authorized_project`): an image linked to another project's session is 404,
as an unknown one. The images come from the store that :mod:`api.ingest_mobile_images` opens.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import trio
from quart import Blueprint, Response

from api import ingest_mobile_images
from api import public_v1_schema as schema
from api.errors import json_response, v1_errors
from api.openapi import INTEGER, STRING, Parameter, Reply, component, json_object
from api.public_v1 import V1Error, V1ValidationError, authorized_project, path_session_id
from storage.images import OTHER_CONTENT_TYPE, CanvasFrame, ImageStore, StoredImage

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
    def lookup(store: ImageStore, project_id: int, sid: int) -> tuple[str, bytes] | None:
        found = store.image(project_id, sid, image_hash)
        return None if found is None else (found[0].content_type, found[1])

    return await _one_image(project_key, session_id, image_hash, lookup, "image not found.")


async def _one_image(
    project_key: str,
    session_id: str,
    image_hash: str,
    lookup: Callable[[ImageStore, int, int], tuple[str, bytes] | None],
    not_found: str,
) -> Response:
    """The bytes ``lookup(store, project id, session id)`` finds (a worker thread), or 404."""
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    if not _HASH_RE.fullmatch(image_hash):
        raise V1ValidationError(["path", "hash"], "a SHA-256 in lower-case hex is expected")
    store = ingest_mobile_images.opened_store()
    found = (
        None
        if sid is None
        else await trio.to_thread.run_sync(lookup, store, project.project_id, sid)
    )
    if found is None:
        raise V1Error(404, not_found)
    content_type, data = found
    return Response(data, content_type=content_type, headers=_IMAGE_HEADERS)


# -- canvas frames of a web session (api.ingest_canvas) ------------------------------------------

CANVAS_FRAME = component(
    "CanvasFrame",
    json_object(
        {
            "timestamp": {**schema.INT64, "description": "When it was captured (epoch ms)"},
            "hash": {**STRING, "pattern": HASH_PATTERN, "description": "SHA-256 of the bytes"},
            "size": {**INTEGER, "minimum": 1, "description": "Bytes"},
            "contentType": {"enum": list(IMAGE_TYPES)},
            "url": {**STRING, "description": "Where the bytes are: .../canvas/<hash>"},
        },
        ["timestamp", "hash", "size", "contentType", "url"],
    ),
)
SESSION_CANVAS = component(
    "SessionCanvas",
    json_object(
        {
            "nodeId": {**STRING, "description": "The canvas node (CanvasNode's NodeId)"},
            "frames": {"type": "array", "items": CANVAS_FRAME},
        },
        ["nodeId", "frames"],
    ),
)


def canvas_json(project_key: str, session_id: str, frames: list[CanvasFrame]) -> list[object]:
    """The list answer: one entry per canvas node, its frames in capture order."""
    nodes: dict[str, list[dict[str, object]]] = {}
    for frame in frames:
        nodes.setdefault(frame.node_id, []).append(
            {
                "timestamp": frame.capture_ms,
                "hash": frame.hash,
                "size": frame.size,
                "contentType": frame.content_type,
                "url": f"/api/v1/{project_key}/sessions/{session_id}/canvas/{frame.hash}",
            }
        )
    return [{"nodeId": node, "frames": node_frames} for node, node_frames in nodes.items()]


@bp.get("/<project_key>/sessions/<session_id>/canvas")
@schema.v1_operation(
    "The canvas frames of a web session, by canvas node, in capture order",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID],
    responses=schema.replies(
        schema.list_reply("The canvases (none for an unknown session)", SESSION_CANVAS),
        401,
        404,
        422,
    ),
)
async def session_canvas(project_key: str, session_id: str) -> Response:
    project = await authorized_project(project_key)
    sid = path_session_id(session_id)
    if sid is None:
        return json_response({"data": []})
    store = ingest_mobile_images.opened_store()
    frames = await trio.to_thread.run_sync(store.session_canvas, project.project_id, sid)
    return json_response({"data": canvas_json(project.project_key, str(sid), frames)})


@bp.get("/<project_key>/sessions/<session_id>/canvas/<image_hash>")
@schema.v1_operation(
    "One canvas frame of a web session, by its hash",
    parameters=[schema.PROJECT_KEY, schema.SESSION_ID, IMAGE_HASH],
    responses=schema.replies(_IMAGE_REPLY, 401, 404, 422),
)
async def session_canvas_frame(project_key: str, session_id: str, image_hash: str) -> Response:
    def lookup(store: ImageStore, project_id: int, sid: int) -> tuple[str, bytes] | None:
        return store.canvas_image(project_id, sid, image_hash)

    return await _one_image(project_key, session_id, image_hash, lookup, "canvas frame not found.")
