"""The asset fetcher (runtime.asset_fetcher) against a real HTTP site on 127.0.0.1: the policy at
every hop, caps, timeouts, stylesheet children, and the bounded feed."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from engine.asset_policy import AllowList
from runtime.asset_fetcher import (
    AssetCacheSettings,
    AssetCacheStats,
    AssetFeed,
    AssetFetcher,
    AssetWork,
    http_client,
)
from storage.assets import AssetStore
from tests.asset_site import AssetSite

PROJECT = 1
FONT = b"wOF2" + b"\x00" * 60


@pytest.fixture
async def site(nursery: trio.Nursery) -> AssetSite:
    return await nursery.start(AssetSite().run)


@pytest.fixture
def store(tmp_path: Path) -> AssetStore:
    return AssetStore.open(tmp_path / "t-assets.db", max_asset_bytes=10_000)


async def _fetcher(store: AssetStore, **settings: object) -> AsyncIterator[AssetFetcher]:
    config = AssetCacheSettings(assets_db_path="", **settings)  # type: ignore[arg-type]
    async with http_client(config) as client:
        yield AssetFetcher(store, config, client)


@pytest.fixture
async def fetcher(store: AssetStore) -> AsyncIterator[AssetFetcher]:
    async for made in _fetcher(
        store, allow=AllowList.parse("127.0.0.1"), max_asset_bytes=10_000, timeout_s=2.0
    ):
        yield made


async def test_a_stylesheet_is_cached_with_its_font_rewritten_to_the_cache(
    site: AssetSite, fetcher: AssetFetcher, store: AssetStore
) -> None:
    site.routes["/css/a.css"] = (
        200,
        {"Content-Type": "text/css"},
        b"@font-face{font-family:F;src:url(../f.woff2)} body{color:red}",
    )
    site.routes["/f.woff2"] = (200, {"Content-Type": "application/octet-stream"}, FONT)
    sheet_url = site.url("/css/a.css")
    await fetcher.cache(PROJECT, 7, [sheet_url])
    font = store.lookup(PROJECT, site.url("/f.woff2"))
    sheet = store.lookup(PROJECT, sheet_url)
    assert font is not None and font.content_type == "font/woff2"
    assert sheet is not None and sheet.content_type == "text/css"
    blob = store.blob(sheet.hash)
    assert blob is not None
    assert (
        blob[1] == f'@font-face{{font-family:F;src:url("{font.path}")}} body{{color:red}}'.encode()
    )
    assert store.session_urls(PROJECT, 7) == sorted([sheet_url, site.url("/f.woff2")])
    # The site changes the file; the cache keeps what was recorded, and does not ask again.
    site.routes["/css/a.css"] = (200, {"Content-Type": "text/css"}, b"body{color:blue}")
    await fetcher.cache(PROJECT, 8, [sheet_url])
    assert store.lookup(PROJECT, sheet_url) == sheet
    assert site.requests.count("/css/a.css") == 1
    assert fetcher.stats.fetched == 2 and fetcher.stats.failed == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/a.css", "refused address 10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "refused address 169.254.169.254"),
        ("http://[::1]:80/a.css", "refused address ::1"),
        ("http://[::ffff:127.0.0.1]/a.css", r"refused address ::ffff:7f00:1"),
        ("http://0.0.0.0/a.css", "refused address 0.0.0.0"),
        ("file:///etc/passwd", "scheme"),
    ],
)
async def test_private_and_metadata_addresses_are_refused_and_logged(
    store: AssetStore, caplog: pytest.LogCaptureFixture, url: str, reason: str
) -> None:
    async for fetcher in _fetcher(store):  # no allow-list
        with caplog.at_level(logging.WARNING, "runtime.asset_fetcher"):
            assert await fetcher.cache_url(PROJECT, url) is None
            assert await fetcher.cache_url(PROJECT, url) is None  # tried once, logged once
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert url in messages[0]
    assert re.search(reason, messages[0])
    assert store.lookup(PROJECT, url) is None


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://127.0.0.1:8080/secret.css", "refused address 127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "refused address 169.254.169.254"),
        ("http://127.0.0.1:{port}/secret.css", "port [0-9]+ is not a web port"),
    ],
)
async def test_a_redirect_to_a_refused_address_is_not_followed(
    site: AssetSite,
    store: AssetStore,
    caplog: pytest.LogCaptureFixture,
    location: str,
    reason: str,
) -> None:
    site.routes["/redirect.css"] = (302, {"Location": location.format(port=site.port)}, b"")
    site.routes["/secret.css"] = (200, {"Content-Type": "text/css"}, b"secret{}")
    # The site's own name is allowed (so the first hop reaches it); 127.0.0.1 is not.
    async for fetcher in _fetcher(store, allow=AllowList.parse("localhost")):
        with caplog.at_level(logging.WARNING, "runtime.asset_fetcher"):
            url = site.url("/redirect.css", host="localhost")
            assert await fetcher.cache_url(PROJECT, url) is None
    assert site.requests == ["/redirect.css"]  # the redirect target was never asked
    assert re.search(reason, caplog.records[0].getMessage())
    assert store.lookup(PROJECT, url) is None


async def test_redirects_are_followed_when_every_hop_is_allowed_and_bounded(
    site: AssetSite, fetcher: AssetFetcher, store: AssetStore, caplog: pytest.LogCaptureFixture
) -> None:
    site.routes["/old.png"] = (301, {"Location": "/new.png"}, b"")
    site.routes["/new.png"] = (200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\nxx")
    stored = await fetcher.cache_url(PROJECT, site.url("/old.png"))
    assert stored is not None and stored.content_type == "image/png"
    for hop in range(6):
        site.routes[f"/loop{hop}"] = (302, {"Location": f"/loop{hop + 1}"}, b"")
    with caplog.at_level(logging.WARNING, "runtime.asset_fetcher"):
        assert await fetcher.cache_url(PROJECT, site.url("/loop0")) is None
    assert "more than 3 redirects" in caplog.records[0].getMessage()
    assert site.requests.count("/loop4") == 0


async def test_oversized_assets_are_refused_while_streaming(
    site: AssetSite, fetcher: AssetFetcher, store: AssetStore, caplog: pytest.LogCaptureFixture
) -> None:
    site.routes["/declared.png"] = (200, {"Content-Type": "image/png"}, b"\x89PNG" * 5000)

    async def undeclared(stream: trio.SocketStream) -> None:
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n"
        )
        for _ in range(100):  # 100 kB without a Content-Length; the cap is 10 kB
            await stream.send_all(b"\x89PNG" * 256)

    site.routes["/undeclared.png"] = undeclared
    with caplog.at_level(logging.WARNING, "runtime.asset_fetcher"):
        assert await fetcher.cache_url(PROJECT, site.url("/declared.png")) is None
        assert await fetcher.cache_url(PROJECT, site.url("/undeclared.png")) is None
    reasons = [r.getMessage() for r in caplog.records]
    assert "Content-Length 20000 is over the per-asset cap" in reasons[0]
    assert "body over the per-asset cap of 10000 bytes" in reasons[1]
    assert store.project_bytes(PROJECT) == 0


async def test_a_slow_site_times_out(
    site: AssetSite, store: AssetStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def never_answers(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    site.routes["/slow.css"] = never_answers
    async for fetcher in _fetcher(store, allow=AllowList.parse("127.0.0.1"), timeout_s=0.3):
        with caplog.at_level(logging.WARNING, "runtime.asset_fetcher"):
            assert await fetcher.cache_url(PROJECT, site.url("/slow.css")) is None
    assert "timed out" in caplog.records[0].getMessage()


async def test_html_scripts_and_errors_are_not_cached(
    site: AssetSite, fetcher: AssetFetcher, store: AssetStore, caplog: pytest.LogCaptureFixture
) -> None:
    site.routes["/page"] = (200, {"Content-Type": "text/html"}, b"<script>alert(1)</script>")
    site.routes["/app.js"] = (200, {"Content-Type": "application/javascript"}, b"alert(1)")
    with caplog.at_level(logging.WARNING, "runtime.asset_fetcher"):
        for path in ("/page", "/app.js", "/missing.css"):
            assert await fetcher.cache_url(PROJECT, site.url(path)) is None
    reasons = [r.getMessage() for r in caplog.records]
    assert "'text/html' is not CSS, a font or an image" in reasons[0]
    assert "'application/javascript'" in reasons[1]
    assert "HTTP 404" in reasons[2]
    assert fetcher.stats.failed == 3


async def test_the_feed_drops_and_counts_when_full() -> None:
    stats = AssetCacheStats()
    feed = AssetFeed(max_items=2, max_bytes=100, stats=stats)
    assert feed.offer(AssetWork(1, 1, b"x" * 10))
    assert feed.offer(AssetWork(1, 2, b"x" * 10))
    assert not feed.offer(AssetWork(1, 3, b"x" * 10))  # two items at most
    assert (await feed.take()).session_id == 1
    assert not feed.offer(AssetWork(1, 4, b"x" * 95))  # over the bytes
    assert feed.offer(AssetWork(1, 5, b"x" * 80))
    assert stats.dropped_records == 2
