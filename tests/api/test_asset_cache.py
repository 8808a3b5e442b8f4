"""The asset cache through the real server: ``serve --cache-assets`` with a recording that links
a stylesheet of a real site on 127.0.0.1 (allowed explicitly), then ``GET /assets/<sha256>``.

The replay stream (another branch) points a replay at :meth:`storage.assets.AssetStore.path_of`;
here the test asks the store the same question and fetches the path over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.codec.web import encode_batch
from engine.codec.web_messages import (
    BatchMetadata,
    SetNodeAttributeURLBased,
    SetPageLocation,
    TabData,
    Timestamp,
)
from storage.assets import AssetStore
from tests.api.conftest import T0, Harness, ServerFactory
from tests.asset_site import AssetSite

FONT = b"wOF2" + bytes(range(60))
SHEET = b"@font-face{font-family:Recorded;src:url(fonts/r.woff2)} body{color:rgb(1, 2, 3)}"


@pytest.fixture
async def site(nursery: trio.Nursery) -> AssetSite:
    made: AssetSite = await nursery.start(AssetSite().run)
    made.routes["/css/site.css"] = (200, {"Content-Type": "text/css; charset=utf-8"}, SHEET)
    made.routes["/css/fonts/r.woff2"] = (200, {"Content-Type": "font/woff2"}, FONT)
    return made


def _linking(url: str, page: str) -> bytes:
    return encode_batch(
        [
            BatchMetadata(1, 0, 1, T0, page),
            Timestamp(T0),
            TabData("tab-1"),
            SetPageLocation(page, "", 0, "Styled page"),
            SetNodeAttributeURLBased(5, "href", url, page),
        ]
    )


async def _record(harness: Harness, href: str, page: str) -> int:
    started = await harness.started()
    response = await harness.upload(started["token"], _linking(href, page))
    assert response.status_code == 200, response.text
    return int(started["sessionID"])


async def _cached_path(path: Path, project_id: int, url: str) -> str:
    store = await trio.to_thread.run_sync(AssetStore.open, path)
    try:
        with trio.fail_after(20):
            while (found := await trio.to_thread.run_sync(store.path_of, project_id, url)) is None:
                await trio.sleep(0.05)
        return found
    finally:
        store.close()


async def test_a_recorded_stylesheet_is_served_as_recorded_after_the_site_changes(
    server_factory: ServerFactory, site: AssetSite, tmp_path: Path
) -> None:
    harness = await server_factory(cache_assets=True, asset_allow="127.0.0.1")
    page = site.url("/shop/")
    await _record(harness, "../css/site.css", page)
    sheet_url = site.url("/css/site.css")
    assets_db = tmp_path / "replayd-assets.db"
    sheet_path = await _cached_path(assets_db, harness.project.project_id, sheet_url)
    font_path = await _cached_path(
        assets_db, harness.project.project_id, site.url("/css/fonts/r.woff2")
    )

    # The site restyles; the replay's stylesheet is still the recorded one.
    site.routes["/css/site.css"] = (200, {"Content-Type": "text/css"}, b"body{color:blue}")
    await _record(harness, sheet_url, page)
    answer = await harness.client.get(sheet_path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert answer.text == SHEET.decode().replace("url(fonts/r.woff2)", f'url("{font_path}")')
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "sandbox" in answer.headers["content-security-policy"]
    assert answer.headers["cross-origin-resource-policy"] == "same-origin"
    assert "set-cookie" not in answer.headers
    font = await harness.client.get(font_path, headers={"Cookie": "session=ignored"})
    assert (font.status_code, font.headers["content-type"], font.content) == (
        200,
        "font/woff2",
        FONT,
    )
    again = await harness.client.get(font_path, headers={"If-None-Match": font.headers["etag"]})
    assert again.status_code == 304
    assert site.requests.count("/css/site.css") == 1  # first fetch wins


async def test_unknown_and_malformed_hashes_are_404_json(server_factory: ServerFactory) -> None:
    harness = await server_factory(cache_assets=True)
    for path in ("/assets/" + "0" * 64, "/assets/nothex", "/assets/" + "A" * 64):
        answer = await harness.client.get(path)
        assert answer.status_code == 404
        assert answer.json() == {"error": "asset not found"}


async def test_without_the_allow_list_loopback_is_not_fetched(
    server_factory: ServerFactory, site: AssetSite, tmp_path: Path
) -> None:
    harness = await server_factory(cache_assets=True)
    session_id = await _record(harness, site.url("/css/site.css"), site.url("/"))
    store = await trio.to_thread.run_sync(AssetStore.open, tmp_path / "replayd-assets.db")
    try:
        with trio.fail_after(20):  # the reference is noted once the fetcher saw the record
            while not await trio.to_thread.run_sync(
                store.session_urls, harness.project.project_id, session_id
            ):
                await trio.sleep(0.05)
        assert store.lookup(harness.project.project_id, site.url("/css/site.css")) is None
    finally:
        store.close()
    assert site.requests == []


async def test_with_the_cache_off_nothing_is_fetched_and_assets_are_404(
    server_factory: ServerFactory, site: AssetSite, tmp_path: Path
) -> None:
    harness = await server_factory(asset_allow="127.0.0.1")
    await _record(harness, site.url("/css/site.css"), site.url("/"))
    answer = await harness.client.get("/assets/" + "0" * 64)
    assert answer.status_code == 404
    assert not (tmp_path / "replayd-assets.db").exists()
    assert site.requests == []
