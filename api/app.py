"""The Quart-trio application: blueprints, CORS for the ingest routes, JSON error answers.

``create_app`` only wires objects it is given (the log, the catalog); it starts no task. The server
(``api.server.serve``) owns their lifetimes. Every error answer is JSON ``{"error": "..."}``,
404 and 405 included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from quart import Blueprint, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from api import cors, ingest_web, openapi
from api.body_budget import admit_bodies_within
from api.body_drain import hold_answer_until_body_received
from api.config import ServerConfig
from api.errors import ApiError, error_response, retry_after_header
from api.session_directory import LogProjectLookup, SessionDirectory
from engine.ids import FlakeIdGenerator
from storage.catalog import Catalog
from storage.errors import StorageUnavailable
from storage.log import EventLog

logger = logging.getLogger(__name__)

CORS_PREFIXES_KEY = "replayd.cors_prefixes"
# Self-hosted OpenReplay puts the ingest routes under /ingest (trackers configured with
# ingestPoint "https://host/ingest" keep working); plain "/v1/..." is what our snippet uses.
INGEST_PREFIXES = ("", "/ingest")


def create_app(
    config: ServerConfig,
    *,
    catalog: Catalog,
    log: EventLog,
    clock: Callable[[], int] | None = None,
    blueprints: Iterable[Blueprint] = (),
) -> QuartTrio:
    """Build the app. ``clock`` (epoch ms) is for tests; ``blueprints`` are extra API surfaces."""
    app = QuartTrio("replayd")
    # Upper bound of what Quart buffers for one request body, whatever the route; each route then
    # applies its own (smaller or equal) limit while reading.
    max_body = max(config.beacon_size_limit, config.json_size_limit)
    app.config["MAX_CONTENT_LENGTH"] = max_body

    lookup = LogProjectLookup(log.path)
    ingest = ingest_web.WebIngest(
        config=config,
        catalog=catalog,
        log=log,
        directory=SessionDirectory(lookup),
        ids=FlakeIdGenerator(config.shard),
    )
    if clock is not None:
        ingest.clock = clock
    app.extensions[ingest_web.EXTENSION_KEY] = ingest
    app.extensions[CORS_PREFIXES_KEY] = list(ingest_web.CORS_PREFIXES)
    # Outermost: early answers wait for their body (api.body_drain); then bodies are admitted
    # within the byte budget before Quart starts buffering them (api.body_budget).
    # Quart's documented way to add ASGI middleware is to replace ``asgi_app``; its stubs type the
    # method's result as a Coroutine where hypercorn's ASGIFramework (what the wrappers return,
    # and what Hypercorn calls) says Awaitable.
    app.asgi_app = hold_answer_until_body_received(  # type: ignore[method-assign,assignment]
        admit_bodies_within(
            app.asgi_app,
            ingest.bodies,
            max_body=max_body,
            wait_s=config.append_wait_timeout,
            cors_prefixes=ingest_web.CORS_PREFIXES,
        )
    )

    for prefix in INGEST_PREFIXES:
        app.register_blueprint(
            ingest_web.bp, url_prefix=prefix or None, name=f"ingest_web{prefix.replace('/', '_')}"
        )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    # GET /api/openapi.json: every route decorated with api.openapi.operation, whatever blueprint.
    app.register_blueprint(openapi.bp)

    @app.before_request
    async def answer_preflight() -> Response | None:
        # Before routing, so that a preflight is answered even for a path the method would 405.
        if request.method == "OPTIONS" and cors.is_cors_path(
            request.path, app.extensions[CORS_PREFIXES_KEY]
        ):
            return cors.preflight_response()
        return None

    @app.after_request
    async def add_cors(response: Response) -> Response:
        # Error answers too: a browser hides a response without Allow-Origin from the tracker.
        if cors.is_cors_path(request.path, app.extensions[CORS_PREFIXES_KEY]):
            cors.add_cors_headers(response)
        return response

    @app.errorhandler(ApiError)
    async def api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, error.headers)

    @app.errorhandler(StorageUnavailable)
    async def storage_unavailable(error: StorageUnavailable) -> Response:
        # The database cannot be written (full disk, I/O error): the storage layer logged it
        # once; a retry later succeeds, so 503 + Retry-After and no traceback per request.
        return error_response(
            503, "storage unavailable, retry later", retry_after_header(error.retry_after)
        )

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, (error.description or error.name).strip())
        valid_methods = getattr(error, "valid_methods", None)  # set on werkzeug's 405
        if status == 405 and isinstance(valid_methods, list):
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
        return error_response(500, "internal server error")

    @app.after_serving
    async def close_lookup() -> None:
        lookup.close()

    return app
