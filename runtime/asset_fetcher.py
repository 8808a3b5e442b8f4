"""The asset cache service (``--cache-assets``): fetches what recordings reference by URL.

One trio task tree in the service nursery, started only when ``REPLAYD_CACHE_ASSETS=1``:

- the **tap** follows the log's live tail (as the engine does:
  :func:`runtime.engine_service.log_tail`) and offers every web batch record to an
  :class:`AssetFeed`: bounded in records and in bytes, never waiting; a full feed drops the
  record and counts it (the cache is best effort, the log and the engine are not slowed by it);
- ``concurrency`` **workers** take records from the feed, find the URLs they reference
  (:func:`engine.asset_refs.batch_references`, in a worker thread), note them for the session
  (:meth:`storage.assets.AssetStore.note_references`: erasure needs to know) and fetch the ones
  the project has not cached and this process has not tried yet.

A fetch obeys :mod:`engine.asset_policy` at every hop: the URL is checked, its name resolved
once, every address checked, and the request goes to the checked address itself (the ``Host``
header and TLS SNI carry the name, so the certificate is still verified against it): DNS
rebinding cannot switch it. Redirects are followed by hand, each one re-checked, at most
``max_redirects``. The whole fetch (every hop) has ``timeout_s``; the body is counted as it
streams (decoded, so a gzip bomb stops at the cap). Only CSS, fonts and images are kept
(:func:`engine.asset_policy.asset_content_type`). A stylesheet's own references are fetched
first (``css_depth`` levels) and rewritten inside it to ``/assets/<hash>``, so that a cached
sheet works when the site is gone. Every failure is logged once, with its reason.

The HTTP client is httpx (on trio through anyio): a well-kept client with streaming bodies,
timeouts and TLS, so none of that is ours to get wrong.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from functools import partial
from urllib.parse import urljoin

import attrs
import httpx
import trio

from engine.asset_policy import (
    STYLESHEET_TYPE,
    AllowList,
    AssetRefused,
    UrlTarget,
    address_literal,
    asset_content_type,
    check_url,
    choose_address,
)
from engine.asset_refs import batch_references, css_references, rewrite_css
from engine.supervisor import wall_clock_ms
from runtime.context import ServiceContext
from runtime.engine_service import log_tail
from storage.assets import (
    DEFAULT_MAX_ASSET_BYTES,
    DEFAULT_MAX_PROJECT_BYTES,
    AssetStore,
    AssetTooLarge,
    StoredAsset,
)
from storage.records import LogRecord, RecordKind

logger = logging.getLogger(__name__)

_WEB_KINDS = frozenset({RecordKind.WEB_BATCH, RecordKind.WEB_ASSETS})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_CHILDREN = 64  # references of one stylesheet followed (a hostile sheet may name thousands)
ATTEMPTED_MAX = 100_000  # (project, URL) pairs remembered as tried before the memory is reset
USER_AGENT = "replayd-asset-cache"


class AssetFetchFailed(Exception):
    """A fetch that went wrong for a reason worth one log line (status, size, timeout)."""


@attrs.frozen(slots=True, kw_only=True)
class AssetCacheSettings:
    """What the asset cache service needs (from ``ServerConfig`` in ``api.cli``)."""

    assets_db_path: str
    allow: AllowList = attrs.field(factory=AllowList)
    max_asset_bytes: int = DEFAULT_MAX_ASSET_BYTES
    max_project_bytes: int = DEFAULT_MAX_PROJECT_BYTES
    timeout_s: float = 10.0
    max_redirects: int = 3
    css_depth: int = 2
    concurrency: int = 4
    queue_records: int = 256
    queue_bytes: int = 16 * 2**20


@attrs.define(slots=True)
class AssetCacheStats:
    """Counters of the service (for logs, tests and /metrics)."""

    fetched: int = 0
    failed: int = 0
    dropped_records: int = 0


@attrs.frozen(slots=True)
class AssetWork:
    """One record's worth of work: a web batch of a session of a project."""

    project_id: int
    session_id: int
    payload: bytes


class AssetFeed:
    """A bounded queue between the log tap and the workers; :meth:`offer` never waits."""

    def __init__(self, max_items: int, max_bytes: int, stats: AssetCacheStats) -> None:
        self._send, self._receive = trio.open_memory_channel[AssetWork](max_items)
        self._max_bytes = max_bytes
        self._bytes = 0
        self._stats = stats

    def offer(self, work: AssetWork) -> bool:
        """Queue ``work`` unless the feed is full (then it is dropped and counted)."""
        if self._bytes and self._bytes + len(work.payload) > self._max_bytes:
            self._stats.dropped_records += 1
            return False
        try:
            self._send.send_nowait(work)
        except trio.WouldBlock:
            self._stats.dropped_records += 1
            return False
        self._bytes += len(work.payload)
        return True

    async def take(self) -> AssetWork:
        """The next work item (waits for one)."""
        work = await self._receive.receive()
        self._bytes -= len(work.payload)
        return work


@attrs.frozen(slots=True)
class _Fetched:
    url: str  # after redirects
    content_type: str  # the server's header
    data: bytes


class AssetFetcher:
    """Fetches and caches the URLs of web batches (see the module)."""

    def __init__(
        self,
        store: AssetStore,
        settings: AssetCacheSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        stats: AssetCacheStats | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.stats = stats if stats is not None else AssetCacheStats()
        self._client = client
        self._clock = clock
        self._attempted: set[tuple[int, str]] = set()

    async def work_on(self, feed: AssetFeed) -> None:
        """Take work from ``feed`` forever (one of the service's workers)."""
        while True:
            work = await feed.take()
            urls = await trio.to_thread.run_sync(batch_references, work.payload)
            if urls:
                await self.cache(work.project_id, work.session_id, urls)

    async def cache(self, project_id: int, session_id: int, urls: list[str]) -> None:
        """Note that the session referenced ``urls`` and cache those not cached yet."""
        store = self.store
        await trio.to_thread.run_sync(store.note_references, project_id, session_id, urls)
        fresh = [url for url in urls if (project_id, url) not in self._attempted]
        if not fresh:
            return
        cached = await trio.to_thread.run_sync(store.cached_urls, project_id, fresh)
        for url in fresh:
            if url not in cached:
                await self.cache_url(project_id, url)

    async def cache_url(self, project_id: int, url: str, depth: int = 0) -> StoredAsset | None:
        """Fetch and store one URL (once per process), its stylesheet children first; None when
        it could not be cached (logged once, with the reason)."""
        key = (project_id, url)
        if key in self._attempted:
            return await trio.to_thread.run_sync(self.store.lookup, project_id, url)
        if len(self._attempted) >= ATTEMPTED_MAX:
            self._attempted.clear()  # what is cached is known to the store; retry the rest
        self._attempted.add(key)
        try:
            fetched = await self.fetch(url)
            content_type = asset_content_type(fetched.content_type, fetched.data)
            if content_type is None:
                raise AssetRefused(f"type {fetched.content_type!r} is not CSS, a font or an image")
            data: bytes = fetched.data
            children: tuple[str, ...] = ()
            if content_type == STYLESHEET_TYPE:
                data, children = await self._with_cached_children(project_id, fetched, depth)
            stored = await trio.to_thread.run_sync(
                partial(
                    self.store.store,
                    project_id,
                    url,
                    data,
                    content_type,
                    fetched_at_ms=self._clock(),
                    children=children,
                )
            )
        except (AssetRefused, AssetFetchFailed, AssetTooLarge, httpx.HTTPError, OSError) as error:
            self.stats.failed += 1
            reason = str(error) or type(error).__name__
            logger.warning(
                "asset not cached (project %d): %s: %s",
                project_id,
                url,
                reason,
                extra={"event": "asset_failed", "project_id": project_id, "url": url},
            )
            return None
        self.stats.fetched += 1
        return stored

    async def _with_cached_children(
        self, project_id: int, sheet: _Fetched, depth: int
    ) -> tuple[bytes, tuple[str, ...]]:
        """The sheet's bytes with its references rewritten to the cached copies, and those refs."""
        text = sheet.data.decode("utf-8", "replace")
        children = tuple(css_references(text, sheet.url)[:MAX_CHILDREN])
        paths: dict[str, str] = {}
        if depth < self.settings.css_depth:
            for child in children:
                stored = await self.cache_url(project_id, child, depth + 1)
                if stored is not None:
                    paths[child] = stored.path
        rewritten = await trio.to_thread.run_sync(rewrite_css, text, sheet.url, paths.get)
        return rewritten.encode("utf-8"), children

    async def fetch(self, url: str) -> _Fetched:
        """GET ``url`` under the policy (every hop checked), within ``timeout_s``."""
        with trio.move_on_after(self.settings.timeout_s):
            return await self._follow(url)
        raise AssetFetchFailed(f"timed out after {self.settings.timeout_s} s")

    async def _follow(self, url: str) -> _Fetched:
        for _ in range(self.settings.max_redirects + 1):
            target = check_url(url, self.settings.allow)
            address = await self._address(target)
            request = self._client.build_request(
                "GET",
                _connect_url(target, address),
                headers={"Host": target.host_header, "User-Agent": USER_AGENT},
                extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
            )
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location", "")
                    if not location:
                        raise AssetFetchFailed(f"HTTP {response.status_code} without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise AssetFetchFailed(f"HTTP {response.status_code}")
                data = await self._body(response)
                return _Fetched(url, response.headers.get("content-type", ""), data)
            finally:
                await response.aclose()
        raise AssetRefused(f"more than {self.settings.max_redirects} redirects")

    async def _address(self, target: UrlTarget) -> str:
        literal = address_literal(target.host)
        if literal is not None:
            resolved = [str(literal)]
        else:
            infos = await trio.socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            resolved = [str(info[4][0]) for info in infos]
        return choose_address(target, resolved, self.settings.allow)

    async def _body(self, response: httpx.Response) -> bytes:
        limit = self.settings.max_asset_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise AssetTooLarge(f"Content-Length {declared} is over the per-asset cap")
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise AssetTooLarge(f"body over the per-asset cap of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _connect_url(target: UrlTarget, address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{target.scheme}://{host}:{target.port}{target.target}"


def http_client(settings: AssetCacheSettings) -> httpx.AsyncClient:
    """The fetcher's client: no redirects (followed by hand), no proxies from the environment,
    no cookies kept, the settings' timeout per operation."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.timeout_s),
        cookies=None,
        limits=httpx.Limits(max_connections=settings.concurrency * 2),
    )


async def asset_cache_service(
    ctx: ServiceContext,
    *,
    settings: AssetCacheSettings,
    task_status: trio.TaskStatus[AssetFetcher] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the tap and the workers until cancelled (see the module); reports the fetcher."""
    store = await trio.to_thread.run_sync(
        partial(
            AssetStore.open,
            settings.assets_db_path,
            max_asset_bytes=settings.max_asset_bytes,
            max_project_bytes=settings.max_project_bytes,
        )
    )
    try:
        async with http_client(settings) as client, trio.open_nursery() as nursery:
            fetcher = AssetFetcher(store, settings, client)
            feed = AssetFeed(settings.queue_records, settings.queue_bytes, fetcher.stats)
            for _ in range(settings.concurrency):
                nursery.start_soon(fetcher.work_on, feed)
            after = ctx.log.head()
            async with log_tail(ctx, after) as (source, _head):
                logger.info("asset cache on (%s)", settings.assets_db_path)
                task_status.started(fetcher)
                async for records in source:
                    _offer_web_batches(feed, records)
    finally:
        with contextlib.suppress(Exception):
            await trio.to_thread.run_sync(store.close)


def _offer_web_batches(feed: AssetFeed, records: list[LogRecord]) -> None:
    for record in records:
        if record.kind in _WEB_KINDS and record.payload:
            feed.offer(AssetWork(record.project_id, record.session_id, record.payload))
