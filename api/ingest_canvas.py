"""Canvas uploads of the web tracker: ``POST /v1/web/images`` (PROTOCOL.md 8), also under /ingest.

A multipart body with the session's Bearer token, as the tracker sends it when the start answer
says ``canvasEnabled: true`` (``--record-canvas``): a ``frames`` file part named
``<createdAt>_<canvasNodeId>.<ext>.frames`` holding a frames stream, or (older trackers) one
``snapshot`` part per image named ``<createdAt>_<canvasNodeId>_<captureMs>.<ext>``
(:mod:`engine.codec.canvas`). The frames are stored through the images' store
(:meth:`storage.images.ImageStore.store_canvas`: content-addressed, linked to the session's canvas
node by capture time), and the answer is 200 only after that commit. The checks, limits and
errors are the mobile image routes' (:mod:`api.ingest_mobile_images`, whose state and multipart
reader this reuses): 401 for a bad token, 400 for a malformed body or a file name of neither
form, 413 over ``--images-size-limit``, 415 when not multipart.

The player reads them back through ``GET /api/v1/<projectKey>/sessions/<id>/canvas``
(:mod:`api.public_v1_images`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

from quart import Blueprint, Response

from api import ingest_mobile_images_schema as docs
from api.config import ServerConfig
from api.errors import ApiError
from api.ingest_mobile_images import read_upload
from api.openapi import STRING, json_object, operation
from engine.codec.canvas import CanvasFileName, parse_canvas_file_name
from engine.codec.mobile_images import ImageArchiveTooLarge, unpack_plain_frames
from storage.images import CapturedImage

logger = logging.getLogger(__name__)

ROUTE = "/v1/web/images"
PATHS = (ROUTE, f"/ingest{ROUTE}")
# Canvases of one upload: the tracker sends one canvas per request (or its snapshots).
MAX_CANVAS_FILES = 1_000

bp = Blueprint("ingest_canvas", __name__)

_BODY = {
    "multipart/form-data": json_object(
        {
            "type": {**STRING, "description": "`frames` with a frames file"},
            "frames": {
                "type": "string",
                "format": "binary",
                "description": "`<createdAt>_<canvasNodeId>.<ext>.frames`: "
                "`[u64 LE capture ms][u32 LE size][image]`... (not gzipped)",
            },
            "snapshot": {
                "type": "string",
                "format": "binary",
                "description": "older trackers: one image per part, named "
                "`<createdAt>_<canvasNodeId>_<captureMs>.<ext>`",
            },
        }
    )
}


def body_limits(config: ServerConfig) -> dict[str, int]:
    """The route's body cap: the image uploads' (the app's default is the batch limit)."""
    return dict.fromkeys(PATHS, config.images_size_limit)


@bp.post(ROUTE)
@operation(
    "Store canvas frames (a frames file, or snapshot files)",
    tags=("web ingest",),
    security=docs.TOKEN,
    body=_BODY,
    body_required=True,
    responses=docs.replies(*(400, 401, 404, 408, 413, 415, 503)),
)
async def canvas_images() -> Response:
    ingest, session_id, project, form = await read_upload(max_files=MAX_CANVAS_FILES)
    if not form.files:
        logger.warning("canvas upload without a file part (session %d)", session_id)
        return Response(b"", status=200)
    names: list[CanvasFileName] = []
    for raw in form.file_names:
        name = parse_canvas_file_name(raw)
        if name is None:
            raise ApiError(
                400,
                "canvas file names are <createdAt>_<nodeId>.<ext>.frames or"
                " <createdAt>_<nodeId>_<captureMs>.<ext>",
            )
        names.append(name)
    files = form.files
    limit_image, limit_total = ingest.config.images_size_limit, ingest.unpacked_limit

    def frames() -> Iterator[tuple[str, CapturedImage]]:
        for name, chunks in zip(names, files, strict=True):
            data = b"".join(chunks)
            chunks.clear()
            if name.capture_ms is None:
                stream = io.BytesIO(data)
                for image in unpack_plain_frames(
                    stream, max_image=limit_image, max_total=limit_total
                ):
                    yield name.node_id, image
            elif len(data) > limit_image:
                raise ImageArchiveTooLarge(f"a snapshot of {len(data)} bytes is over {limit_image}")
            elif data:
                yield name.node_id, CapturedImage(name.capture_ms, data)

    await ingest.write(
        lambda store, received_at_ms: store.store_canvas(
            project.project_id, session_id, frames(), received_at_ms=received_at_ms
        )
    )
    return Response(b"", status=200)
