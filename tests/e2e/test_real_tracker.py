"""End to end: the unmodified OpenReplay tracker 19.0.1 in headless Chromium against a real replayd.

The browser visits a small shop site (``site/``): it signs in, clicks, types a name and a password,
sends a custom event, rage-clicks, throws, fetches a missing URL, navigates with pushState and by
link. replayd runs as a subprocess (``replayd serve``) with its own database; everything is asserted
through its public API and, for the password, by reading the SQLite file itself. Separate tests
cover a reload (same session), an expired token (the tracker's 401 path: a new session) and
gzip-compressed uploads. Each test prints the table of requests the browser made (run with -s).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.codec.web import (
    BatchMetadata,
    MouseClick,
    PageLoadTiming,
    SetPageLocation,
    decode_batch,
)
from tests.e2e.harness import (
    BrowserRun,
    ReplaydServer,
    SeenRequest,
    SiteServer,
    capture_dir,
    poll,
)

pytestmark = pytest.mark.e2e

FULL_NAME = "Ada Lovelace"
SECRET = "hunter2-SeCrEt-e2e"  # typed into the password field; must never be stored in clear
CHECKOUT_PAYLOAD = {"items": 2, "total": 49.5, "currency": "EUR"}  # as in site/app.js
LINK_LABEL = "Go to page two"
EXPECTED_CLICKS = [
    "Sign in",
    "Add to cart",
    "Checkout",
    "Rage button",
    "Rage button",
    "Rage button",
    "Break things",
    "Load missing thing",
    "Next step",
    "Confirm order",
]

# Names of replayd's settings (api/config.py): environment variables of ``replayd serve``.
TOKEN_TTL_ENV = "REPLAYD_TOKEN_TTL_MS"
COMPRESSION_THRESHOLD_ENV = "REPLAYD_COMPRESSION_THRESHOLD"


# -- helpers -------------------------------------------------------------------------------------


def start_stack(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    env: dict[str, str] | None = None,
) -> tuple[ReplaydServer, SiteServer]:
    """A replayd with a project and an API key, and the site configured to track into it."""
    replayd = replayd_factory(env).setup().start()
    site = site_factory({"projectKey": replayd.project_key, "ingestPoint": replayd.ingest_point})
    return replayd, site


def api_data(api: httpx.Client, path: str) -> Any:
    """GET a public API path; return the ``data`` member of the 200 answer."""
    response = api.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()["data"]


def session_events(replayd: ReplaydServer, session_id: str) -> list[dict[str, Any]]:
    with replayd.api() as api:
        return api_data(api, f"/api/v1/{replayd.project_key}/sessions/{session_id}/events")


def wait_for_events(
    replayd: ReplaydServer, session_id: str, ready: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Poll the events endpoint (bounded) until ``ready`` holds: projection lag, not timing."""
    last: list[list[dict[str, Any]]] = [[]]

    def fetch() -> bool:
        last[0] = session_events(replayd, session_id)
        return ready(last[0])

    poll(fetch, timeout=10.0)
    return last[0]


def has(events: list[dict[str, Any]], type_: str, **fields: Any) -> bool:
    return any(e["type"] == type_ and all(e.get(k) == v for k, v in fields.items()) for e in events)


def start_response(request: SeenRequest) -> dict[str, Any]:
    assert request.status == 200, f"/v1/web/start answered {request.status}"
    return json.loads(request.response_body)


def print_summary(run: BrowserRun, title: str, replayd: ReplaydServer, site: SiteServer) -> None:
    print()
    print(run.requests.summary(title, {replayd.base_url: "replayd", site.base_url: "site"}))
    print("(CORS preflights are answered before Playwright sees a request; they are not listed.)")


def dump_captures(run: BrowserRun, replayd: ReplaydServer, prefix: str) -> None:
    """With REPLAYD_E2E_CAPTURE_DIR set, keep the uploaded batches (how the fixtures were made)."""
    folder = capture_dir()
    if folder is None:
        return
    for i, request in enumerate(run.requests.batches(replayd.base_url), start=1):
        meta = decode_batch(request.decoded_body())[0]
        assert isinstance(meta, BatchMetadata)
        name = f"{prefix}-page{meta.page_no}-batch{i}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.bin").write_bytes(request.decoded_body())
        if request.body != request.decoded_body():
            (folder / f"{name}.gzip.bin").write_bytes(request.body)


def strings_in_database(db: Path) -> list[str]:
    """Every text/blob value of every table of the database (read-only, WAL included)."""
    found: list[str] = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        found.append(value.decode("utf-8", "replace"))
                    elif isinstance(value, str):
                        found.append(value)
    finally:
        conn.close()
    return found


def open_page(run: BrowserRun, site: SiteServer, path: str = "/index.html") -> dict[str, Any]:
    run.page.goto(site.url(path))
    return run.wait_tracker_started()


def drive_shop_scenario(run: BrowserRun, site: SiteServer) -> None:
    """The user story: sign in, shop, type, rage-click, break things, navigate (SPA and link)."""
    page = run.page
    open_page(run, site)
    # The tracker reports PageLoadTiming from a 0.9 s ticker once the load event has ended; let
    # it go out before the interactions so the first LOCATION carries its timings.
    page.wait_for_function("performance.timing.loadEventEnd > 0")
    page.wait_for_timeout(1500)
    page.click("#identify")  # setUserID("user-42") + setMetadata("plan", "pro")
    page.click("#add-to-cart")
    page.fill("#full-name", FULL_NAME)
    page.fill("#secret", SECRET)  # focusing it blurs the name field: InputChange for the name
    page.click("#checkout")  # blurs the password field; tracker.event("checkout", ...)
    page.locator("#rage").click(click_count=3)  # three clicks within a few ms: click_rage
    page.click("#boom")  # an uncaught Error thrown from a timer
    page.click("#fetch-missing")
    page.wait_for_function("document.getElementById('fetch-status').textContent === 'status 404'")
    page.click("#spa-nav")  # history.pushState: a LOCATION without a page load
    # The tracker polls document.URL every second tick (~60 ms): let it see the SPA URL.
    page.wait_for_function("location.pathname === '/checkout/step-2'")
    page.wait_for_timeout(300)
    # The unload-time flush of page one is not reliably delivered when the next page replaces
    # it (the worker dies with the page), so flush explicitly and let the upload finish first.
    run.flush()
    page.click("#to-page2")  # a real navigation: pagehide flushes, page two continues the session
    page.wait_for_url("**/page2.html")
    run.wait_tracker_started()
    page.wait_for_function("performance.timing.loadEventEnd > 0")
    page.wait_for_timeout(1500)  # PageLoadTiming of page two, as on page one
    page.click("#confirm")
    run.flush()


def sent_messages(run: BrowserRun, replayd: ReplaydServer) -> list[Any]:
    """Every message the tracker uploaded to replayd, decoded with our codec (in upload order)."""
    messages: list[Any] = []
    for request in run.requests.batches(replayd.base_url):
        messages.extend(decode_batch(request.decoded_body()))
    return messages


def load_timings_by_url(sent: list[Any]) -> dict[str, PageLoadTiming]:
    """The PageLoadTiming the tracker sent for each loaded page, keyed by the page's URL."""
    timings: dict[str, PageLoadTiming] = {}
    loaded_url = ""
    for message in sent:
        if isinstance(message, SetPageLocation) and message.navigation_start:
            loaded_url = message.url  # a real load (pushState locations have no start)
        elif isinstance(message, PageLoadTiming):
            timings[loaded_url] = message
    return timings


def assert_location_timings(location: dict[str, Any], timing: PageLoadTiming) -> None:
    assert location["firstPaintTime"] == timing.first_paint
    assert location["firstContentfulPaintTime"] == timing.first_contentful_paint
    assert location["loadTime"] == timing.load_event_end - timing.load_event_start
    assert location["domContentLoadedTime"] == (
        timing.dom_content_loaded_event_end - timing.dom_content_loaded_event_start
    )
    assert location["domBuildingTime"] == (
        timing.dom_content_loaded_event_start - timing.response_end
    )
    assert location["responseTime"] == timing.response_end - timing.response_start
    assert location["responseEnd"] == timing.response_end
    assert location["ttfb"] == timing.response_start - timing.request_start


def index_of(events: list[dict[str, Any]], type_: str, start: int = 0, **fields: Any) -> int:
    """Position of the first event at or after ``start`` with this type and these fields."""
    for i in range(start, len(events)):
        event = events[i]
        if event["type"] == type_ and all(event.get(k) == v for k, v in fields.items()):
            return i
    raise AssertionError(f"no {type_} {fields} at or after #{start} in {summarize(events)}")


def summarize(events: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['type']}:{e.get('label') or e.get('name') or e.get('url') or e.get('issueType') or ''}"
        for e in events
    ]


# -- the tests -----------------------------------------------------------------------------------


def test_shop_scenario_is_recorded_and_served_by_the_public_api(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    replayd, site = start_stack(replayd_factory, site_factory)
    run = browser_factory()
    drive_shop_scenario(run, site)
    print_summary(run, "shop scenario", replayd, site)
    dump_captures(run, replayd, "shop")

    # -- the wire: two starts (index, then page two continuing with the token), 200 everywhere
    starts = run.requests.starts(replayd.base_url)
    assert len(starts) == 2, [s.path for s in starts]
    first, second = start_response(starts[0]), start_response(starts[1])
    session_id = first["sessionID"]
    assert session_id.isdigit() and second["sessionID"] == session_id
    assert json.loads(starts[1].body)["token"] == first["token"]
    batches = run.requests.batches(replayd.base_url)
    assert len(batches) >= 2 and {b.status for b in batches} == {200}
    assert all(b.headers.get("authorization", "").startswith("Bearer ") for b in batches)
    assert not run.page_errors[1:], run.page_errors  # only the deliberate error was thrown
    assert run.page_errors == ["e2e boom: checkout exploded"]

    sent = sent_messages(run, replayd)
    assert SECRET.encode() not in b"".join(b.decoded_body() for b in batches)

    # -- the event list, once every upload is projected
    events = wait_for_events(
        replayd, session_id, lambda evs: has(evs, "CLICK", label="Confirm order")
    )
    assert events, "no events projected"
    assert all(e["sessionId"] == session_id for e in events)
    assert events == sorted(events, key=lambda e: (e["timestamp"], e["messageId"]))

    # Each milestone comes after the previous one, in the order the user did things.
    i_index = index_of(events, "LOCATION", path="/index.html")
    i_sign_in = index_of(events, "CLICK", i_index, label="Sign in")
    i_cart = index_of(events, "CLICK", i_sign_in, label="Add to cart")
    i_name = index_of(events, "INPUT", i_cart, label="#full-name")
    i_password = index_of(events, "INPUT", i_name, label="#secret")
    i_checkout = index_of(events, "CLICK", i_password, label="Checkout")
    i_custom = index_of(events, "CUSTOM", i_checkout, name="checkout")
    i_rage = index_of(events, "CLICK", i_custom, label="Rage button")
    i_rage3 = index_of(
        events,
        "CLICK",
        index_of(events, "CLICK", i_rage + 1, label="Rage button") + 1,
        label="Rage button",
    )
    # The tracker dates its click_rage issue at the first click of the series.
    i_issue = index_of(events, "ISSUE", i_rage, issueType="click_rage")
    i_boom = index_of(events, "CLICK", i_rage3, label="Break things")
    i_error = index_of(events, "ERROR", i_boom, name="Error")
    i_fetch = index_of(events, "CLICK", i_boom, label="Load missing thing")
    # The page's click handler starts the fetch before the tracker's document-level listener
    # stamps the click, so the request (dated at its start) may sort a millisecond before it.
    i_request = index_of(events, "REQUEST", i_boom, status=404)
    assert -500 <= events[i_request]["timestamp"] - events[i_fetch]["timestamp"] <= 5_000
    i_next = index_of(events, "CLICK", max(i_error, i_request, i_issue), label="Next step")
    i_spa = index_of(events, "LOCATION", i_next, path="/checkout/step-2")
    i_page2 = index_of(events, "LOCATION", i_spa, path="/page2.html")
    index_of(events, "CLICK", i_page2, label="Confirm order")

    # LOCATION: URL parts and, for each page load, the timings the tracker sent for it
    # (PageLoadTiming, ms from navigation start; the reference backend's derived metrics).
    index = events[i_index]
    assert index["url"] == site.url("/index.html")
    assert index["host"] == site.base_url.removeprefix("http://")
    timings = load_timings_by_url(sent)
    assert set(timings) == {site.url("/index.html"), site.url("/page2.html")}
    for i_page in (i_index, i_page2):
        assert_location_timings(events[i_page], timings[events[i_page]["url"]])
    assert events[i_spa]["loadTime"] is None  # pushState: no load, no timings
    assert events[i_spa]["referrer"] == site.url("/index.html")
    assert events[i_page2]["referrer"] == site.url("/checkout/step-2")

    # Every click, once: what the tracker sent is what the API serves. The link click travels in
    # the unload flush of page one, which may or may not leave the dying page (a browser race;
    # when it does, Playwright does not always report that request), so it is left out here.
    clicks = [e["label"] for e in events if e["type"] == "CLICK" and e["label"] != LINK_LABEL]
    sent_clicks = [m.label for m in sent if isinstance(m, MouseClick) and m.label != LINK_LABEL]
    assert clicks == sent_clicks == EXPECTED_CLICKS
    assert events[i_sign_in]["selector"] == "#identify"

    # INPUT: the name in plain text; the password hidden by the tracker and never stored.
    assert events[i_name]["value"] == FULL_NAME
    assert events[i_password]["value"] in ("", None)
    assert SECRET not in json.dumps(events)

    custom = events[i_custom]
    payload = custom["payload"]
    assert (json.loads(payload) if isinstance(payload, str) else payload) == CHECKOUT_PAYLOAD

    error = events[i_error]
    assert error["message"] == "e2e boom: checkout exploded"

    request = events[i_request]
    assert request["method"] == "GET"
    assert request["success"] is False
    assert request["url"] == site.url("/api/missing-thing?q=1")

    issue = events[i_issue]
    assert issue["contextString"] == "Rage button"
    issue_payload = issue["payload"]
    assert (json.loads(issue_payload) if isinstance(issue_payload, str) else issue_payload) == {
        "Count": 3
    }

    # -- the session through the users endpoints
    with replayd.api() as api:
        sessions = poll(
            lambda: api_data(api, f"/api/v1/{replayd.project_key}/users/user-42/sessions")
        )
        (session,) = [s for s in sessions if s["sessionId"] == session_id]
        assert session["userId"] == "user-42"
        assert session["userOs"] == "Linux"
        assert "Chrome" in session["userBrowser"]
        assert session["userUuid"] == first["userUUID"]
        assert session["pagesCount"] == 3  # index, the SPA step, page two
        assert session["errorsCount"] >= 1
        assert session["eventsCount"] >= len(EXPECTED_CLICKS)
        # The user summary counts finished sessions only (API.md 1.2 #6), and sessions end after
        # inactivity in record time, which this test does not wait for.
        assert api_data(api, f"/api/v1/{replayd.project_key}/users/user-42") is None

    # -- metadata: the v1 user-sessions shape has no field for it, so read the sessions projection;
    # and every record of the real tracker was applied (none parked as undecodable).
    conn = sqlite3.connect(f"file:{replayd.projections_db}?mode=ro", uri=True)
    try:
        (metadata,) = conn.execute(
            "SELECT metadata FROM sessions WHERE session_id = ?", (int(session_id),)
        ).fetchone()
        parked = conn.execute("SELECT position, error FROM dead_letters").fetchall()
    finally:
        conn.close()
    assert json.loads(metadata) == {"plan": "pro"}
    assert parked == []

    # -- the password is nowhere in the databases: the log and catalog file, the projections
    # file; nor in their bytes (-wal and -shm included)
    files = [replayd.db, replayd.projections_db]
    assert all(path.exists() for path in files)
    for db in files:
        assert not [text for text in strings_in_database(db) if SECRET in text], db.name
    scanned = [path for db in files for path in db.parent.glob(db.name + "*")]
    assert {path.name for path in scanned} >= {f"{db.name}-wal" for db in files}
    for path in scanned:
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_reload_keeps_the_session(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    replayd, site = start_stack(replayd_factory, site_factory)
    run = browser_factory()
    open_page(run, site)
    run.page.click("#add-to-cart")
    run.flush()
    run.page.reload()
    run.wait_tracker_started()
    run.page.click("#checkout")
    run.flush()
    print_summary(run, "reload", replayd, site)

    starts = run.requests.starts(replayd.base_url)
    assert len(starts) == 2
    first, second = start_response(starts[0]), start_response(starts[1])
    assert json.loads(starts[1].body)["token"] == first["token"]
    assert second["sessionID"] == first["sessionID"]
    pages = []
    for batch in run.requests.batches(replayd.base_url):
        meta = decode_batch(batch.decoded_body())[0]
        assert isinstance(meta, BatchMetadata)
        pages.append(meta.page_no)
    pages.sort()
    assert pages == [0, 1]  # the reload is page 1 of the same session

    events = wait_for_events(
        replayd, first["sessionID"], lambda evs: has(evs, "CLICK", label="Checkout")
    )
    assert has(events, "CLICK", label="Add to cart")
    assert len([e for e in events if e["type"] == "LOCATION"]) == 2


def test_expired_token_makes_the_tracker_start_a_new_session(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    ttl_ms = 2500
    # A project created by the CLI has no lifetime of its own: the server's setting applies.
    replayd = replayd_factory({TOKEN_TTL_ENV: str(ttl_ms)}).setup()
    replayd.start()
    site = site_factory({"projectKey": replayd.project_key, "ingestPoint": replayd.ingest_point})
    run = browser_factory()
    open_page(run, site)
    run.page.click("#add-to-cart")
    # Let the token expire; the next upload is then answered 401.
    run.page.wait_for_timeout(ttl_ms + 500)
    run.page.evaluate("window.tracker.forceFlushBatch()")
    # 401 -> the tracker drops that batch and calls /v1/web/start again with the old token.

    def restarted() -> bool:
        run.page.wait_for_timeout(50)
        answered = [s for s in run.requests.starts(replayd.base_url) if s.response_body]
        return len(answered) >= 2

    assert poll(restarted, timeout=10.0), run.requests.summary("no restart")
    run.page.click("#checkout")
    run.flush()
    print_summary(run, "expired token", replayd, site)

    statuses = [b.status for b in run.requests.batches(replayd.base_url)]
    assert statuses[0] == 401 and statuses[-1] == 200, statuses
    first_start, second_start = run.requests.starts(replayd.base_url)[:2]
    old, new = start_response(first_start), start_response(second_start)
    assert json.loads(second_start.body)["token"] == old["token"]
    assert new["sessionID"] != old["sessionID"]
    assert new["userUUID"] == old["userUUID"]  # same browser, new session

    events = wait_for_events(
        replayd, new["sessionID"], lambda evs: has(evs, "CLICK", label="Checkout")
    )
    assert has(events, "LOCATION", path="/index.html")  # the restart re-sends the location


def test_gzip_batches_are_decoded_and_stored(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    replayd, site = start_stack(replayd_factory, site_factory, {COMPRESSION_THRESHOLD_ENV: "500"})
    run = browser_factory()
    open_page(run, site)
    run.page.click("#add-to-cart")
    run.page.fill("#full-name", FULL_NAME)
    run.page.click("#checkout")
    run.flush()
    print_summary(run, "gzip", replayd, site)

    (response,) = [start_response(s) for s in run.requests.starts(replayd.base_url)]
    assert response["compressionThreshold"] == 500
    gzipped = [
        b
        for b in run.requests.batches(replayd.base_url)
        if b.headers.get("content-encoding") == "gzip"
    ]
    assert gzipped, run.requests.summary("no gzip upload")
    assert all(b.status == 200 and b.body[:2] == b"\x1f\x8b" for b in gzipped)

    # The log keeps the batch as the tracker built it, i.e. gunzipped (storage/records.py).
    conn = sqlite3.connect(f"file:{replayd.db}?mode=ro", uri=True)
    try:
        stored = {bytes(row[0]) for row in conn.execute("SELECT payload FROM log")}
    finally:
        conn.close()
    for batch in gzipped:
        assert batch.decoded_body() in stored

    events = wait_for_events(
        replayd, response["sessionID"], lambda evs: has(evs, "CLICK", label="Checkout")
    )
    assert has(events, "CLICK", label="Add to cart")
    assert has(events, "INPUT", label="#full-name", value=FULL_NAME)
