"""The dashboard in headless Chromium against a real ``replayd serve``: sign in through the login
page, the projects, the live sessions, a session's page, and the sessions list.

The recorded session is hostile: its user id, page title, click label, custom event and error are
HTML that would run script if a page inserted it as markup. Each page must show those strings as
text, run nothing (the canary ``window.__pwned`` stays unset) and report no Content-Security-Policy
violation for our own pages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from engine.codec.web import encode_batch
from engine.codec.web_messages import (
    BatchMetadata,
    CustomEvent,
    JSException,
    MouseClick,
    SetPageLocation,
    TabData,
    Timestamp,
)
from storage.images import image_hash
from tests.api.conftest import CHROME_UA, start_body
from tests.api.test_ingest_mobile import IOS_UA, ios_start_body
from tests.api.test_mobile_images import JPEG_1 as JPEG
from tests.api.test_mobile_images import member, tar_gz
from tests.e2e.harness import BrowserRun, ReplaydServer, poll

pytestmark = pytest.mark.e2e

EMAIL = "e2e@example.test"
HOSTILE_USER = '<img src=x onerror="window.__pwned=1">'
HOSTILE_TITLE = "<script>window.__pwned=2</script>Cart"
HOSTILE_URL = "https://shop.test/<b>cart</b>"
HOSTILE_LABEL = '<img src=x onerror="window.__pwned=3">Buy'
HOSTILE_EVENT = "<svg onload=window.__pwned=4>"
HOSTILE_ERROR = '<iframe srcdoc="<script>parent.__pwned=5</script>"></iframe>boom'
SEARCH_PATH = "/api/v1/{project_key}/sessions/search"
# Collected in every page before its own scripts run. (The test's own waits pass functions, not
# strings: a string predicate is eval'd in the page, which our CSP refuses, rightly.)
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def record_hostile_session(replayd: ReplaydServer) -> str:
    """Start a session and upload one batch of hostile strings; returns its id once projected."""
    with httpx.Client(base_url=replayd.base_url, timeout=10.0) as client:
        start = client.post(
            "/v1/web/start",
            content=json.dumps(start_body(replayd.project_key, userID=HOSTILE_USER)),
            headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
        )
        assert start.status_code == 200, start.text
        started = start.json()
        now = int(time.time() * 1000)
        batch = encode_batch(
            [
                BatchMetadata(1, 0, 0, now, HOSTILE_URL),
                Timestamp(now),
                TabData("tab-1"),
                SetPageLocation(HOSTILE_URL, "", now, HOSTILE_TITLE),
                Timestamp(now + 1500),
                MouseClick(1, 10, HOSTILE_LABEL, "#buy", 500, 500),
                Timestamp(now + 3000),
                CustomEvent(HOSTILE_EVENT, json.dumps({"html": HOSTILE_LABEL})),
                Timestamp(now + 4500),
                JSException("Error", HOSTILE_ERROR, "[]", "{}"),
            ]
        )
        upload = client.post(
            "/v1/web/i",
            content=batch,
            params={"batch": "0_1_100_kyes"},
            headers={"Authorization": f"Bearer {started['token']}", "DataType": "player"},
        )
        assert upload.status_code == 200, upload.text
    session_id = str(started["sessionID"])
    with replayd.api() as api:

        def projected() -> bool:
            answer = api.get(f"/api/v1/{replayd.project_key}/sessions/{session_id}/events")
            return {"CLICK", "ERROR", "CUSTOM"} <= {e["type"] for e in answer.json()["data"]}

        assert poll(projected), "the hostile session was not projected"
    return session_id


def dashboard_stack(
    replayd_factory: Callable[..., ReplaydServer],
    browser_factory: Callable[[], BrowserRun],
    env: dict[str, str] | None = None,
) -> tuple[ReplaydServer, str, BrowserRun]:
    """A server with a user and a hostile session, and a browser signed in through /login."""
    replayd = replayd_factory(env).setup()
    password = replayd.cli("user", "create", EMAIL)  # the generated one, on the last line
    replayd.start()
    session_id = record_hostile_session(replayd)
    return replayd, session_id, sign_in(replayd, password, browser_factory())


def sign_in(replayd: ReplaydServer, password: str, run: BrowserRun) -> BrowserRun:
    """Sign in through the login page (a wrong password first), from a page that needs it."""
    run.context.add_init_script(WATCH_CSP)
    page = run.page
    page.goto(f"{replayd.base_url}/projects/{replayd.project_key}/live")
    # Signed out: sent to the login page, and back to the page asked for once signed in.
    page.wait_for_url(f"{replayd.base_url}/login?next=*")
    page.fill("#email", EMAIL)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    page.wait_for_function("() => document.getElementById('login-error').textContent !== ''")
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{replayd.base_url}/projects/{replayd.project_key}/live")
    assert page.text_content("#who") == EMAIL
    page.click("a.brand")
    page.wait_for_selector("#projects")
    return run


def assert_safe(run: BrowserRun) -> None:
    """Nothing recorded ran, no CSP violation, no uncaught error on the current page."""
    page = run.page
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__csp") == []
    assert not [line for line in run.console if "Content Security Policy" in line], run.console
    assert not run.page_errors, run.page_errors
    # No recorded markup became an element (our pages make no <img>, <svg> or <iframe> of data;
    # the one iframe is the player's replay frame, whose own safety is test_replay_player's).
    made = """() => [...document.querySelectorAll('main img, main svg, main iframe')]
        .filter((e) => e !== window.replayd?.frame()).length"""
    assert page.evaluate(made) == 0


def test_dashboard_pages_show_hostile_strings_as_text(
    replayd_factory: Callable[..., ReplaydServer], browser_factory: Callable[[], BrowserRun]
) -> None:
    replayd, session_id, run = dashboard_stack(replayd_factory, browser_factory)
    page, key = run.page, replayd.project_key
    assert page.locator(f"#projects a[href='/projects/{key}']").count() == 1
    assert_safe(run)

    # Live sessions (Assist): the session is still open.
    page.click(f"#projects a[href='/projects/{key}/live']")
    page.wait_for_url(f"{replayd.base_url}/projects/{key}/live")
    row = page.locator(f"#live-sessions tr[data-session-id='{session_id}']")
    row.wait_for()
    assert row.locator("td.user").text_content() == HOSTILE_USER
    assert row.locator("td.title").text_content() == HOSTILE_TITLE
    assert "1 live session" in (page.text_content("#live-total") or "")
    assert_safe(run)

    # The session's page: metadata, timeline, the errors panel.
    row.locator("a").click()
    page.wait_for_url(f"{replayd.base_url}/projects/{key}/sessions/{session_id}")
    page.wait_for_selector("#timeline .event")
    assert page.text_content("#session-meta dd[data-fact=User]") == HOSTILE_USER
    assert page.text_content("#session-meta dd[data-fact=Browser]").startswith("Chrome")
    kinds = page.eval_on_selector_all(
        "#timeline .event",
        "els => els.map(e => [e.dataset.type, e.querySelector('.what').textContent])",
    )
    assert ["LOCATION", HOSTILE_URL] in kinds
    assert ["CLICK", HOSTILE_LABEL] in kinds
    assert any(kind == "CUSTOM" and what.startswith(HOSTILE_EVENT) for kind, what in kinds)
    assert ["ERROR", f"Error · {HOSTILE_ERROR}"] in kinds
    page.click("#tab-errors")
    assert page.text_content("#panel-errors li .what") == HOSTILE_ERROR
    # The player's automation contract (issue 13 part 5); a click on an event seeks it.
    page.wait_for_function("() => window.replayd !== undefined")
    page.evaluate("window.replayd.seek(0)")
    state = page.evaluate("window.replayd.state()")
    assert set(state) >= {"time", "duration", "startedAt", "playing"}
    assert page.evaluate("window.replayd.frame().tagName") == "IFRAME"
    page.locator("#timeline .event[data-type=CLICK]").click()
    page.wait_for_function("() => window.replayd.state().time >= 1000")
    assert page.locator("#timeline li.current .event[data-type=CLICK]").count() == 1
    assert page.locator("#panel-errors li.current").count() == 0  # the error comes later
    assert_safe(run)

    page.click("#logout")
    page.wait_for_url(replayd.base_url + "/login")
    page.goto(f"{replayd.base_url}/projects/{key}")
    page.wait_for_url(f"{replayd.base_url}/login?next=*")


def test_sessions_list_shows_hostile_strings_as_text(
    replayd_factory: Callable[..., ReplaydServer], browser_factory: Callable[[], BrowserRun]
) -> None:
    # Search lists finished sessions only (API.md 2.5): this server ends a session one second
    # after its last batch (the engine's clock ticker then ends it without more traffic).
    replayd, session_id, run = dashboard_stack(
        replayd_factory, browser_factory, {"REPLAYD_INACTIVITY_TIMEOUT_MS": "1000"}
    )
    page, key = run.page, replayd.project_key
    search = SEARCH_PATH.format(project_key=key)
    with replayd.api() as api:

        def listed() -> bool:
            answer = api.post(search, json={"limit": 10, "page": 1})
            return session_id in {s["sessionId"] for s in answer.json()["data"]["sessions"]}

        assert poll(listed, timeout=30.0), "the session never ended"
    page.click(f"#projects a[href='/projects/{key}']")
    row = page.locator(f"#sessions tr[data-session-id='{session_id}']")
    row.wait_for()
    assert row.locator("td.user").text_content() == HOSTILE_USER
    page.fill("#filter-user", "someone else")
    page.click("#filters button[type=submit]")
    page.wait_for_function("() => !document.querySelector('#sessions tbody tr')")
    page.fill("#filter-user", HOSTILE_USER)
    page.click("#filters button[type=submit]")
    row.wait_for()
    assert_safe(run)


def test_a_mobile_sessions_page_shows_its_screenshots_in_time(
    replayd_factory: Callable[..., ReplaydServer], browser_factory: Callable[[], BrowserRun]
) -> None:
    replayd = replayd_factory().setup()
    app_key = replayd.cli("project", "create", "ios app", "--platform", "ios")
    password = replayd.cli("user", "create", EMAIL)
    replayd.start()
    first, second = JPEG + b"first", JPEG + b"second"
    with httpx.Client(base_url=replayd.base_url, timeout=10.0) as client:
        start = client.post(
            "/v1/mobile/start", json=ios_start_body(app_key), headers={"User-Agent": IOS_UA}
        )
        assert start.status_code == 200, start.text
        session_id, token = start.json()["sessionID"], start.json()["token"]
        now = int(time.time() * 1000)
        archive = tar_gz(
            member(f"{now}_1_{now}.jpeg", first), member(f"{now}_1_{now + 3000}.jpeg", second)
        )
        upload = client.post(
            "/v1/mobile/images",
            data={"projectKey": app_key},
            files={"batch": ("1-2.tar.gz", archive, "application/gzip")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert upload.status_code == 200, upload.text
    with replayd.api() as api:
        path = f"/api/v1/{app_key}/sessions/{session_id}"
        assert poll(
            lambda: (
                api.get(path).status_code == 200
                and len(api.get(path + "/images").json()["data"]) == 2
            )
        )
    run = browser_factory()
    page = run.page
    run.context.add_init_script(WATCH_CSP)
    page.goto(f"{replayd.base_url}/projects/{app_key}/sessions/{session_id}")
    sign_in_here = page.url
    assert "/login?next=" in sign_in_here
    page.fill("#email", EMAIL)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#screen")
    assert page.get_attribute("#screen", "src").endswith("/images/" + image_hash(first))
    assert page.text_content("#session-meta dd[data-fact=Platform]") == "ios"
    # Moving through time shows the screenshot of that moment.
    page.locator("#screen-time").evaluate(
        "(slider) => { slider.value = slider.max; slider.dispatchEvent(new Event('input')); }"
    )
    assert page.get_attribute("#screen", "src").endswith("/images/" + image_hash(second))
    assert page.evaluate("window.__pwned") is None and page.evaluate("window.__csp") == []
