"""``GET /assets/<sha256>``: the asset cache's bytes, on a cookie-less path of their own.

A replayed recording's stylesheets, fonts and images point here (the replay stream rewrites the
URL-based messages with :meth:`storage.assets.AssetStore.path_of`), so the viewer's browser asks
replayd, not the recorded site: the replay keeps its styling after the site changes, fonts and
CSS have no CORS trouble, and the site never learns that someone watches (REPLAY.md 5.4, 11).

The path needs no credential (a SHA-256 is not guessable, and what is cached is what a public
site served) and reads none: the route ignores cookies and sets none. What it serves is
restricted to what a page's styling needs:

- only CSS, fonts and images (:data:`engine.asset_policy.SERVABLE_TYPES`), never HTML or
  scripts, with ``X-Content-Type-Options: nosniff`` so the browser keeps to the type;
- ``Content-Security-Policy: default-src 'none'; ...; sandbox``: an SVG opened on its own runs
  no script and loads nothing but replayd's assets;
- ``Cross-Origin-Resource-Policy: same-origin`` (only replayd's pages embed them) and
  ``Referrer-Policy: no-referrer``;
- ``Cache-Control: public, max-age=31536000, immutable`` and the hash as ``ETag``: the bytes of a
  name never change.

Also :func:`asset_cache_services`, which ``replayd serve --cache-assets`` adds to the server.
"""

from __future__ import annotations

import os
import re
from functools import partial

import attrs
import trio
from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio

from api.app import SurfaceParts
from api.config import ServerConfig
from api.errors import ApiError
from api.openapi import STRING, Parameter, Reply, error_reply, operation
from engine.asset_policy import SERVABLE_TYPES, AllowList
from runtime.asset_fetcher import AssetCacheSettings, asset_cache_service
from runtime.context import Service
from storage.assets import AssetStore

EXTENSION_KEY = "replayd.assets"
HASH_PATTERN = "^[0-9a-f]{64}$"
_HASH_RE = re.compile(HASH_PATTERN)
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline' 'self'; img-src 'self' data:;"
        " font-src 'self' data:; sandbox"
    ),
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}

bp = Blueprint("assets", __name__)

_ASSET_HASH = Parameter(
    "asset_hash", "path", {**STRING, "pattern": HASH_PATTERN}, "SHA-256 of the bytes (hex)"
)
_ASSET_REPLY = Reply(
    "The cached bytes, with their content type",
    {media: {"type": "string", "format": "binary"} for media in sorted(SERVABLE_TYPES)},
)


@attrs.define(eq=False)
class ServedAssets:
    """The route's state: the cache's store, opened when serving starts if the cache exists."""

    path: str
    enabled: bool
    store: AssetStore | None = None

    async def open(self) -> None:
        # A server that never cached anything has no file: nothing to open, every hash is 404.
        if self.enabled or os.path.exists(self.path):
            self.store = await trio.to_thread.run_sync(AssetStore.open, self.path)

    async def close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            await trio.to_thread.run_sync(store.close)


def install(app: QuartTrio, parts: SurfaceParts) -> None:
    """The route's store in ``app.extensions``, open while the app serves."""
    config = parts.config
    served = ServedAssets(path=config.assets_db_path, enabled=config.cache_assets)
    app.extensions[EXTENSION_KEY] = served

    @app.before_serving
    async def open_store() -> None:
        await served.open()

    @app.after_serving
    async def close_store() -> None:
        await served.close()


def opened_store() -> AssetStore | None:
    """The app's asset cache (None when this server has none): for the replay stream, which
    rewrites the URL-based messages with :meth:`storage.assets.AssetStore.paths_of`."""
    served: ServedAssets = current_app.extensions[EXTENSION_KEY]
    return served.store


def asset_cache_services(config: ServerConfig) -> list[Service]:
    """The services ``serve`` runs for the asset cache: its fetcher when ``cache_assets``."""
    if not config.cache_assets:
        return []
    settings = AssetCacheSettings(
        assets_db_path=config.assets_db_path,
        allow=AllowList.parse(config.asset_allow),
        max_asset_bytes=config.asset_max_bytes,
        max_project_bytes=config.asset_project_bytes,
        timeout_s=config.asset_timeout,
    )
    return [partial(asset_cache_service, settings=settings)]


@bp.get("/assets/<asset_hash>")
@operation(
    "A cached stylesheet, font or image of a recording, by the SHA-256 of its bytes",
    tags=["Replay"],
    parameters=[_ASSET_HASH],
    responses={
        200: _ASSET_REPLY,
        304: Reply("Not modified (the ETag is the hash)", {}),
        404: error_reply("No such asset"),
    },
)
async def asset(asset_hash: str) -> Response:
    store = opened_store()
    found = (
        await trio.to_thread.run_sync(store.blob, asset_hash)
        if store is not None and _HASH_RE.fullmatch(asset_hash)
        else None
    )
    # A type outside the servable set cannot be stored by the fetcher; refused here all the same.
    if found is None or found[0] not in SERVABLE_TYPES:
        raise ApiError(404, "asset not found")
    content_type, data = found
    etag = f'"{asset_hash}"'
    headers = {**ASSET_HEADERS, "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    return Response(data, content_type=content_type, headers=headers)
