"""The registry of HTTP surfaces, and the host the runtime serves them with.

Every process that serves HTTP (the single process, each ingest process of ``--workers``) builds
the same app from :data:`SURFACES`, so a new API (mobile ingest, the v3 events API, the dashboard)
is one :class:`api.app.Surface` entry here: its blueprint, where it is mounted, its CORS paths,
and the functions that give its routes their objects. The runtime (``runtime/``) never imports
this layer: it is handed :data:`ASSEMBLY` (by the CLI and the tests), and an ingest process finds
it by its name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs
from quart_trio import QuartTrio

from api import (
    assets,
    ingest_canvas,
    ingest_mobile,
    ingest_mobile_images,
    ingest_raw,
    ingest_web,
    openapi,
    operations,
    public_v1,
    public_v1_images,
    public_v1_jobs,
    public_v1_replay,
    public_v1_search,
    public_v1_session,
    public_v1_v3,
    public_v2,
    v3,
)
from api.app import Surface, SurfaceParts, create_app
from api.config import ServerConfig
from api.dashboard import auth as dashboard_auth
from api.dashboard import routes as dashboard
from api.disconnects import QuietDisconnects
from api.session_directory import LogProjectLookup, SessionDirectory
from engine.ids import FlakeIdGenerator
from engine.supervisor import wall_clock_ms
from projections.live_sessions import LiveSessions
from runtime.assembly import Assembly, EngineObjects, HostParts

# Self-hosted OpenReplay puts the ingest routes under /ingest (trackers configured with
# ingestPoint "https://host/ingest" keep working); plain "/v1/..." is what our snippet uses.
INGEST_PREFIXES = ("", "/ingest")
IngestT = TypeVar("IngestT", bound=ingest_web.Ingest)


_INGEST_SHARED_KEY = "replayd.ingest_shared"


@attrs.frozen(slots=True)
class _IngestShared:
    """What every ingest surface of one app shares: one flake id generator (two generators of
    one shard would hand out the same id in the same millisecond) and one session directory."""

    ids: FlakeIdGenerator
    directory: SessionDirectory


def _ingest_shared(app: QuartTrio, parts: SurfaceParts) -> _IngestShared:
    shared = app.extensions.get(_INGEST_SHARED_KEY)
    if shared is None:
        lookup = LogProjectLookup(parts.process.log.path)
        shared = _IngestShared(FlakeIdGenerator(parts.config.shard), SessionDirectory(lookup))
        app.extensions[_INGEST_SHARED_KEY] = shared

        @app.after_serving
        async def close_lookup() -> None:
            lookup.close()

    return shared


def _ingest_state(cls: type[IngestT], app: QuartTrio, parts: SurfaceParts) -> IngestT:
    process = parts.process
    shared = _ingest_shared(app, parts)
    ingest = cls(
        config=parts.config,
        catalog=process.catalog,
        log=process.log,
        directory=shared.directory,
        ids=shared.ids,
        bodies=parts.bodies,
    )
    if process.clock is not None:
        ingest.clock = process.clock
    return ingest


def _install_ingest_web(app: QuartTrio, parts: SurfaceParts) -> None:
    app.extensions[ingest_web.EXTENSION_KEY] = _ingest_state(ingest_web.WebIngest, app, parts)


def _raw_ingest_web(app: QuartTrio) -> dict[str, ingest_raw.RawRoute]:
    # Counted in /metrics like the Quart routes (whose counting hook this route bypasses).
    ops: operations.Operations | None = app.extensions.get(operations.EXTENSION_KEY)
    ingest = app.extensions[ingest_web.EXTENSION_KEY]
    routes = ingest_raw.web_ingest_routes(ingest, None if ops is None else ops.metrics.observe)
    return {prefix + path: route for prefix in INGEST_PREFIXES for path, route in routes.items()}


def _raw_ingest_mobile(app: QuartTrio) -> dict[str, ingest_raw.RawRoute]:
    ops: operations.Operations | None = app.extensions.get(operations.EXTENSION_KEY)
    ingest = app.extensions[ingest_mobile.EXTENSION_KEY]
    observe = None if ops is None else ops.metrics.observe
    routes = ingest_raw.mobile_ingest_routes(ingest, observe)
    return {prefix + path: route for prefix in INGEST_PREFIXES for path, route in routes.items()}


def _install_ingest_mobile(app: QuartTrio, parts: SurfaceParts) -> None:
    ingest = _ingest_state(ingest_mobile.MobileIngest, app, parts)
    app.extensions[ingest_mobile.EXTENSION_KEY] = ingest


def _install_mobile_images(app: QuartTrio, parts: SurfaceParts) -> None:
    images = ingest_mobile_images.install(
        app, parts.config, parts.process.catalog, parts.process.log
    )
    if parts.process.clock is not None:
        images.clock = parts.process.clock
    mobile = app.extensions.get(ingest_mobile.EXTENSION_KEY)
    if mobile is not None:
        mobile.images_hash_list = images.frequent_hashes


def _install_v3(app: QuartTrio, parts: SurfaceParts) -> None:
    api = v3.install(app, parts.config, _ingest_state(ingest_web.WebIngest, app, parts))
    if parts.process.clock is not None:
        api.clock = parts.process.clock


def _provide_v3(app: QuartTrio, objects: EngineObjects) -> None:
    v3.provide(app, objects.reader)


def _provide_public_v1(app: QuartTrio, objects: EngineObjects) -> None:
    public_v1.install(app, objects.catalog, objects.reader)


def _install_dashboard(app: QuartTrio, parts: SurfaceParts) -> None:
    dashboard_auth.install(app, parts.process.catalog, parts.process.clock)


def _install_jobs(app: QuartTrio, parts: SurfaceParts) -> None:
    process = parts.process
    public_v1_jobs.install(app, process.log, process.clock or wall_clock_ms)


def _install_operations(app: QuartTrio, parts: SurfaceParts) -> None:
    operations.install(app, parts.config, parts.process.log)  # /healthz, /readyz, /metrics


def _provide_operations(app: QuartTrio, objects: EngineObjects) -> None:
    if objects.projector is not None:  # only where the engine runs
        app.extensions[operations.PROJECTOR_KEY] = objects.projector
    if objects.supervisor is not None:
        app.extensions[operations.SUPERVISOR_KEY] = objects.supervisor


SURFACES: tuple[Surface, ...] = (
    Surface(
        "ingest_web",
        ingest_web.bp,
        url_prefixes=INGEST_PREFIXES,
        cors_prefixes=ingest_web.CORS_PREFIXES,
        install=_install_ingest_web,
        raw_routes=_raw_ingest_web,
    ),
    # The mobile SDKs' routes (/v1/mobile/*, the old /v1/ios/*), also under /ingest.
    Surface(
        "ingest_mobile",
        ingest_mobile.bp,
        url_prefixes=INGEST_PREFIXES,
        cors_prefixes=ingest_mobile.CORS_PREFIXES,
        install=_install_ingest_mobile,
        raw_routes=_raw_ingest_mobile,
    ),
    Surface("public_v1", public_v1.bp, provide=_provide_public_v1),
    # The public API v2 (/v2/api/public/*, /public/*): the v1 handlers, v2's auth and envelope.
    Surface("public_v2", public_v2.bp, url_prefixes=public_v2.URL_PREFIXES),
    # Mobile screenshots (its store also serves the public API's images).
    Surface(
        "ingest_mobile_images",
        ingest_mobile_images.bp,
        url_prefixes=INGEST_PREFIXES,
        cors_prefixes=ingest_mobile_images.CORS_PREFIXES,
        install=_install_mobile_images,
        body_limits=ingest_mobile_images.body_limits,
    ),
    Surface("public_v1_images", public_v1_images.bp),
    # GET /api/v1/:projectKey/sessions/:sessionId (the dashboard's session page reads it).
    Surface("public_v1_session", public_v1_session.bp),
    # The web tracker's canvas frames (POST /v1/web/images), into the images' store above.
    Surface(
        "ingest_canvas",
        ingest_canvas.bp,
        url_prefixes=INGEST_PREFIXES,
        body_limits=ingest_canvas.body_limits,
    ),
    # GET /assets/<sha256>: the asset cache's stylesheets, fonts and images (cookie-less).
    Surface("assets", assets.bp, install=assets.install),
    # Delete-user jobs (runtime.erasure runs them).
    Surface("public_v1_jobs", public_v1_jobs.bp, install=_install_jobs),
    # The replay stream of a web session and its devtools panels (console, network).
    Surface("public_v1_replay", public_v1_replay.bp, install=public_v1_replay.install),
    # The version 3 generic events API (/3/*, V3.md): signed calls of the Learning Context client.
    Surface("v3", v3.bp, install=_install_v3, provide=_provide_v3, body_limits=v3.body_limits),
    # Reports over the v3 generic events API: intervals and per-type totals.
    Surface("public_v1_v3", public_v1_v3.bp),
    # Session search over the finished sessions (API.md 3).
    Surface("public_v1_search", public_v1_search.bp),
    Surface("operations", operations.bp, install=_install_operations, provide=_provide_operations),
    # The dashboard at / (pages, /auth/*, /static/*); its cookie is a v1 credential too.
    Surface("dashboard", dashboard.bp, install=_install_dashboard),
    # GET /api/openapi.json: every route decorated with api.openapi.operation, whatever surface.
    Surface("openapi", openapi.bp),
)


@attrs.define(eq=False)
class SurfaceHost:
    """The HTTP host of one process (:class:`runtime.assembly.Host`): the app of its surfaces."""

    app: QuartTrio
    surfaces: tuple[Surface, ...]
    record_clock: Callable[[], int]

    @property
    def asgi(self) -> Any:
        """The app as Hypercorn serves it."""
        # A client hanging up mid-answer is a debug line, not an ASGI traceback (api.disconnects).
        return QuietDisconnects(self.app)

    def provide(self, objects: EngineObjects) -> None:
        """Hand each surface the projection services' objects."""
        for surface in self.surfaces:
            if surface.provide is not None:
                surface.provide(self.app, objects)

    def provide_live(self, live: LiveSessions) -> None:
        """The live sessions the public API (Assist) and /metrics read."""
        self.app.extensions[public_v1.LIVE_SESSIONS_KEY] = live


def build_host(parts: HostParts, surfaces: Iterable[Surface] = SURFACES) -> SurfaceHost:
    """The host of ``surfaces`` (every registered one unless told) for one process."""
    chosen = tuple(surfaces)
    app = create_app(parts, surfaces=chosen)
    clock = parts.clock if parts.clock is not None else wall_clock_ms
    return SurfaceHost(app=app, surfaces=chosen, record_clock=clock)


# What ``replayd serve`` runs (its name is how an ingest process of --workers finds it).
ASSEMBLY = Assembly(name=f"{__name__}:ASSEMBLY", config_type=ServerConfig, build_host=build_host)
