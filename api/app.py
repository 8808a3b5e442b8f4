"""The Quart-trio application: its surfaces, CORS for their browser routes, JSON error answers.

A :class:`Surface` is one HTTP API of replayd (web ingest, the public API, operations; mobile, v3
and the dashboard next): its blueprint, where it is mounted, which of its paths answer CORS, and
how it gets its objects. The registry of surfaces is :data:`api.surfaces.SURFACES`.

``create_app`` only wires objects it is given (the log, the catalog); it starts no task. The
runtime (``runtime.process.serve``) owns their lifetimes. Every error answer is JSON, 404 and 405
included, in the envelope of the API generation its path belongs to (:mod:`api.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from quart import Blueprint, Response, request
from quart_trio import QuartTrio
from quart_trio.wrappers import TrioRequest
from werkzeug.exceptions import HTTPException

from api import cors
from api.body_budget import admit_bodies_within
from api.body_drain import hold_answer_until_body_received
from api.config import ServerConfig
from api.errors import ApiError, error_response, retry_after_header
from runtime.assembly import EngineObjects, HostParts
from storage.budget import ByteBudget
from storage.errors import StorageUnavailable

logger = logging.getLogger(__name__)

CORS_PREFIXES_KEY = "replayd.cors_prefixes"


@attrs.frozen(slots=True)
class SurfaceParts:
    """What a surface's ``install`` gets when the app is built (before any service runs)."""

    process: HostParts  # the process's settings, catalog, log and request-path clock
    # Request bodies admitted at once, process-wide (api.body_budget gates every surface on it).
    bodies: ByteBudget

    @property
    def config(self) -> ServerConfig:
        """The process's settings, as this layer's own class (the runtime knows them by shape)."""
        return _server_config(self.process)


@attrs.frozen(slots=True)
class Surface:
    """One HTTP surface of replayd: a registry entry of :data:`api.surfaces.SURFACES`."""

    name: str
    blueprint: Blueprint
    # Where the blueprint is mounted ("" = where it says); one registration per prefix.
    url_prefixes: tuple[str, ...] = ("",)
    # Paths that browsers call cross-origin: preflights answered, CORS headers on every answer.
    cors_prefixes: tuple[str, ...] = ()
    # Gives the routes their objects when the app is built.
    install: Callable[[QuartTrio, SurfaceParts], None] | None = None
    # Gives the routes the projection services' objects, once those run.
    provide: Callable[[QuartTrio, EngineObjects], None] | None = None
    # Path prefix -> the largest body its routes read, for routes that read more than the app's
    # default (the larger of the batch and JSON limits); the request is capped at it.
    body_limits: Callable[[ServerConfig], Mapping[str, int]] | None = None


def _server_config(process: HostParts) -> ServerConfig:
    if not isinstance(process.config, ServerConfig):
        raise TypeError(f"the HTTP surfaces need a ServerConfig, not {type(process.config)}")
    return process.config


def create_app(process: HostParts, *, surfaces: Iterable[Surface]) -> QuartTrio:
    """Build the app serving ``surfaces`` (in order) with the objects of ``process``."""
    surfaces = list(surfaces)
    config = _server_config(process)
    parts = SurfaceParts(process=process, bodies=ByteBudget(config.ingest_body_bytes))
    # No static folder of its own: the dashboard serves /static/ (api.dashboard.routes).
    app = QuartTrio("replayd", static_folder=None)
    # Upper bound of what Quart buffers for one request body: the app's default, or the larger
    # limit a surface declares for its paths; each route then applies its own (smaller or equal)
    # limit while reading.
    default_max = max(config.beacon_size_limit, config.json_size_limit)
    app.config["MAX_CONTENT_LENGTH"] = default_max
    larger = {
        prefix: limit
        for surface in surfaces
        if surface.body_limits is not None
        for prefix, limit in surface.body_limits(config).items()
        if limit > default_max
    }

    prefixes = tuple(larger)

    def max_body(path: str) -> int:
        # Called twice per request: one C-level startswith answers every path of the default.
        if not path.startswith(prefixes):
            return default_max
        return next(v for prefix, v in larger.items() if path.startswith(prefix))

    app.request_class = _sized_requests(app.request_class, max_body)

    for surface in surfaces:
        if surface.install is not None:
            surface.install(app, parts)
    cors_prefixes = tuple(prefix for surface in surfaces for prefix in surface.cors_prefixes)
    app.extensions[CORS_PREFIXES_KEY] = list(cors_prefixes)
    # Outermost: early answers wait for their body (api.body_drain); then bodies are admitted
    # within the byte budget before Quart starts buffering them (api.body_budget).
    # Quart's documented way to add ASGI middleware is to replace ``asgi_app``; its stubs type the
    # method's result as a Coroutine where hypercorn's ASGIFramework (what the wrappers return,
    # and what Hypercorn calls) says Awaitable.
    app.asgi_app = hold_answer_until_body_received(  # type: ignore[method-assign,assignment]
        admit_bodies_within(
            app.asgi_app,
            parts.bodies,
            max_body=max_body,
            wait_s=config.append_wait_timeout,
            cors_prefixes=cors_prefixes,
        )
    )

    for surface in surfaces:
        for prefix in surface.url_prefixes:
            app.register_blueprint(
                surface.blueprint,
                url_prefix=prefix or None,
                name=f"{surface.blueprint.name}{prefix.replace('/', '_')}",
            )

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
        return error_response(error.status, error.message, error.headers, path=request.path)

    @app.errorhandler(StorageUnavailable)
    async def storage_unavailable(error: StorageUnavailable) -> Response:
        # The database cannot be written (full disk, I/O error): the storage layer logged it
        # once; a retry later succeeds, so 503 + Retry-After and no traceback per request.
        return error_response(
            503,
            "storage unavailable, retry later",
            retry_after_header(error.retry_after),
            path=request.path,
        )

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = (error.description or error.name).strip()
        response = error_response(status, message, path=request.path)
        valid_methods = getattr(error, "valid_methods", None)  # set on werkzeug's 405
        if status == 405 and isinstance(valid_methods, list):
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
        return error_response(500, "internal server error", path=request.path)

    return app


def _sized_requests(base: type[TrioRequest], max_body: Callable[[str], int]) -> type[TrioRequest]:
    """``base`` (Quart's request class) with the body cap of each request's path, not the
    app-wide ``MAX_CONTENT_LENGTH`` (a 10 MB image upload must not raise every route's cap)."""

    class SizedRequest(base):  # type: ignore[misc,valid-type]  # a class made at run time
        def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
            kwargs["max_content_length"] = max_body(path)
            super().__init__(method, scheme, path, *args, **kwargs)

    return SizedRequest
