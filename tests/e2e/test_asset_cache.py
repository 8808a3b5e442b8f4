"""End to end: the real tracker records a page styled by an external stylesheet; replayd with
``REPLAYD_CACHE_ASSETS=1`` (and ``REPLAYD_ASSET_ALLOW=127.0.0.1``: the test site is on loopback)
caches it; the site then restyles, and the cached copy is still the recorded style.

The style is checked in Chromium twice: a replayd page links the cached path directly, and the
dashboard's session page replays the recording, whose replay stream points the link at the cached
copy (``/assets/<sha256>``): the computed color inside the replay iframe is the recorded one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.config import default_assets_path
from storage.assets import AssetStore
from tests.e2e.harness import BrowserRun, ReplaydServer, SiteServer, poll
from tests.e2e.test_real_tracker import open_page, start_response, start_stack
from tests.e2e.test_replay_player import open_session_player
from tests.soak.trackers import read_log

pytestmark = pytest.mark.e2e

RECORDED = b"#styled { color: rgb(10, 120, 30); } @font-face { font-family: R; src: url(r.woff2); }"
RESTYLED = b"#styled { color: rgb(200, 0, 0); }"
FONT = b"wOF2" + bytes(60)


def test_a_recorded_stylesheet_keeps_its_style_after_the_site_changes(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    replayd, site = start_stack(
        replayd_factory,
        site_factory,
        {"REPLAYD_CACHE_ASSETS": "1", "REPLAYD_ASSET_ALLOW": "127.0.0.1"},
    )
    site.files["/css/recorded.css"] = ("text/css", RECORDED)
    site.files["/css/r.woff2"] = ("font/woff2", FONT)
    run = browser_factory()
    started = open_page(run, site, "/styled.html")
    assert started["success"] is True, started
    styled = "getComputedStyle(document.getElementById('styled')).color"
    assert run.page.evaluate(styled) == "rgb(10, 120, 30)"
    run.page.click("#styled")  # something to send besides the DOM
    run.flush()

    project_id = read_log(replayd.db)[0].project_id
    sheet_url = site.url("/css/recorded.css")
    store = AssetStore.open(Path(default_assets_path(replayd.db)))
    try:
        path = poll(lambda: store.path_of(project_id, sheet_url), timeout=20.0)
        assert path, f"{sheet_url} was not cached; the site saw {site.hits}"
        font = store.lookup(project_id, site.url("/css/r.woff2"))
        assert font is not None and font.content_type == "font/woff2"
    finally:
        store.close()

    site.files["/css/recorded.css"] = ("text/css", RESTYLED)
    answer = httpx.get(replayd.base_url + path, timeout=10.0)
    assert answer.status_code == 200
    assert answer.text == RECORDED.decode().replace("url(r.woff2)", f'url("{font.path}")')

    # A page of replayd's origin, like the replay iframe, styled by the cached copy.
    page = run.page
    page.goto(replayd.base_url + "/healthz")
    color = page.evaluate(
        """async (href) => {
            const link = document.createElement('link');
            link.rel = 'stylesheet';
            link.href = href;
            const loaded = new Promise((ok, fail) => { link.onload = ok; link.onerror = fail; });
            document.head.appendChild(link);
            await loaded;
            const h1 = document.createElement('h1');
            h1.id = 'styled';
            document.body.appendChild(h1);
            return getComputedStyle(h1).color;
        }""",
        path,
    )
    assert color == "rgb(10, 120, 30)"

    # The dashboard's replay of the session: the iframe's link is the cached copy.
    (start,) = run.requests.starts(replayd.base_url)
    session_id = str(start_response(start)["sessionID"])
    player = open_session_player(browser_factory, replayd, session_id)
    replayed = player.page.evaluate(
        """async () => {
            await window.replayd.seek(window.replayd.state().duration);
            const doc = window.replayd.frame().contentDocument;
            const link = doc.querySelector('link[rel=stylesheet]');
            if (!link.sheet) {
                await new Promise((ok) => { link.onload = ok; link.onerror = ok; });
            }
            return {
                href: link.getAttribute('href'),
                color: getComputedStyle(doc.getElementById('styled')).color,
            };
        }"""
    )
    assert replayed == {"href": replayd.base_url + path, "color": "rgb(10, 120, 30)"}, replayed
    assert not player.page_errors, player.page_errors
