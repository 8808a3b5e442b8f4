"""End to end: the real tracker records a page in Chromium, and the player replays it faithfully
(the same canonical DOM digest at every step, seeking forward and backward); a hostile recording
made with our encoder replays without running anything.

The player is the dashboard's: :func:`open_session_player` creates a user, signs in through
``POST /auth/login`` and opens ``/projects/<key>/sessions/<id>`` under its real
Content-Security-Policy, then drives ``window.replayd.{seek, state, frame}``.
"""

from __future__ import annotations

import difflib
import json
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.codec import web_messages as wm
from engine.codec.mobile_images import encode_frames
from storage.images import CapturedImage
from tests.api.conftest import CHROME_UA, start_body
from tests.e2e.harness import BrowserRun, ReplaydServer, SiteServer, poll
from tests.e2e.test_real_tracker import start_response, start_stack
from tests.engine.builders import SessionScript
from tests.engine.replay_builders import CANARY, CANARY_TEXT, HOSTILE_JS, hostile_page

pytestmark = pytest.mark.e2e

VIEWER_EMAIL = "viewer@example.test"
DIGEST_JS = (Path(__file__).resolve().parent / "digest.js").read_text()
SETTLE_JS = (
    "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame("
    "() => setTimeout(done, 150))))"
)
# How long after its stamp a step is shown: the stamp's batch and the tracker's sampled
# messages (scrolls) land within it, and the next step starts well after (STEP_GAP_MS).
SHOW_AFTER_STAMP_MS = 300
STEP_GAP_MS = 500


def sign_in(run: BrowserRun, replayd: ReplaydServer) -> None:
    """Create a dashboard user and sign ``run``'s browser in through ``POST /auth/login`` (the
    cookie lands in the browser context: its request API shares the context's cookie jar)."""
    password = replayd.cli("user", "create", VIEWER_EMAIL)  # the generated one
    answer = run.context.request.post(
        f"{replayd.base_url}/auth/login",
        data=json.dumps({"email": VIEWER_EMAIL, "password": password}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 200, answer.text()


def open_session_player(
    browser_factory: Callable[[], BrowserRun],
    replayd: ReplaydServer,
    session_id: str,
    *,
    csp: bool = True,
    forged_stream: str | None = None,
) -> BrowserRun:
    """A fresh browser, signed in, showing the dashboard's page of ``session_id`` with its stream
    loaded; the page's ``window.replayd.{seek, state, frame}`` drive the player.

    ``csp=False`` drops the page's Content-Security-Policy (to test the sandbox and the
    sanitizers alone); ``forged_stream`` replaces the server's replay stream (to test the
    player's own defences)."""
    run = browser_factory()
    sign_in(run, replayd)
    page = run.page
    base = replayd.base_url
    page_url = f"{base}/projects/{replayd.project_key}/sessions/{session_id}"
    replay_url = f"{base}/api/v1/{replayd.project_key}/sessions/{session_id}/replay"
    if not csp:

        def without_csp(route: Any) -> None:
            answer = route.fetch()
            headers = {
                name: value
                for name, value in answer.headers.items()
                if name.lower() != "content-security-policy"
            }
            route.fulfill(response=answer, headers=headers)

        page.route(page_url, without_csp)
    if forged_stream is not None:
        page.route(
            replay_url,
            lambda route: route.fulfill(
                status=200, content_type="application/x-ndjson", body=forged_stream
            ),
        )
    page.goto(page_url)
    assert page.url == page_url, f"not signed in: sent to {page.url}"
    # A function, not a string: a string predicate is eval'd in the page, which its CSP refuses.
    page.wait_for_function("() => window.replayd !== undefined", timeout=10_000)
    page.evaluate("window.replayd.seek(0)")  # resolves once the whole stream is in
    return run


def web_start(replayd: ReplaydServer, timestamp: int) -> tuple[str, str]:
    """Start a web session over HTTP; its id and token."""
    with httpx.Client(base_url=replayd.base_url, timeout=10.0) as client:
        started = client.post(
            "/v1/web/start",
            content=json.dumps(start_body(replayd.project_key, timestamp=timestamp)),
            headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
        )
    assert started.status_code == 200, started.text
    return str(started.json()["sessionID"]), started.json()["token"]


def started_session(replayd: ReplaydServer) -> str:
    """A web session that exists (so its dashboard page opens) and has recorded nothing."""
    session_id, _ = web_start(replayd, int(time.time() * 1000))
    with replayd.api() as api:
        path = f"/api/v1/{replayd.project_key}/sessions/{session_id}"
        assert poll(lambda: api.get(path).status_code == 200), "the session was not projected"
    return session_id


def replay_lines(replayd: ReplaydServer, session_id: str) -> list[dict[str, Any]]:
    with replayd.api() as api:
        response = api.get(f"/api/v1/{replayd.project_key}/sessions/{session_id}/replay")
    if response.status_code != 200:
        return []
    return [json.loads(line) for line in response.text.splitlines()]


def stamp_times(lines: list[dict[str, Any]]) -> dict[int, int]:
    """Step number -> the time of its ``data-step`` stamp in the stream."""
    return {
        int(item["v"]): item["t"]
        for item in lines[1:]
        if item.get("k") == "attr" and item.get("n") == "data-step"
    }


def frame_digest(run: BrowserRun) -> str:
    return str(run.page.evaluate(f"({DIGEST_JS})(window.replayd.frame().contentDocument)"))


def assert_same(live: str, replayed: str, what: str) -> None:
    diff = "\n".join(
        difflib.unified_diff(live.splitlines(), replayed.splitlines(), "live", "replay")
    )
    assert live == replayed, f"{what}: the replay differs from the live page:\n{diff}"


def assert_nothing_ran(player: BrowserRun) -> None:
    """Play the whole replay, then: no canary global (page or frame), no console output from the
    recording, no request to the canary URL on replayd's API."""
    page = player.page
    page.evaluate("window.replayd.seek(window.replayd.state().duration)")
    page.evaluate(SETTLE_JS)
    page.wait_for_timeout(300)
    assert page.evaluate(f"window.{CANARY}") is None
    assert page.evaluate(f"window.replayd.frame().contentWindow.{CANARY}") is None
    assert not [line for line in player.console if CANARY_TEXT in line], player.console
    seen = [r.url for r in player.requests.collect()]
    assert not [url for url in seen if "canary=replayd" in url], seen


def test_the_replay_shows_each_step_as_it_was(
    replayd_factory: Callable[..., ReplaydServer],
    site_factory: Callable[[dict[str, Any]], SiteServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    replayd, site = start_stack(replayd_factory, site_factory)
    run = browser_factory()
    page = run.page
    page.goto(site.url("/replay.html"))
    run.wait_tracker_started()
    live: dict[int, str] = {}

    def step(number: int, action: Callable[[], object]) -> None:
        action()
        page.evaluate(SETTLE_JS)
        page.evaluate(f"document.body.dataset.step = '{number}'")
        page.evaluate(SETTLE_JS)
        live[number] = str(page.evaluate(f"({DIGEST_JS})(document)"))
        page.wait_for_timeout(STEP_GAP_MS)

    def reload() -> None:
        # The tracker's own upload at unload is cut off by the navigation in headless Chromium
        # (the request never completes): flush the first page's messages first.
        run.flush()
        page.goto(site.url("/replay.html"))  # a new page load: a new CreateDocument
        run.wait_tracker_started()

    step(1, lambda: None)
    step(2, lambda: [page.click("#add-row") for _ in range(3)])
    step(3, lambda: page.fill("#nickname", "Grace Hopper"))
    step(4, lambda: page.check("#agree"))
    step(5, lambda: page.evaluate("document.getElementById('scroller').scrollTop = 120"))
    step(6, lambda: page.click("#spa-nav"))
    step(7, reload)
    run.flush()
    starts = {start_response(r)["sessionID"] for r in run.requests.starts(replayd.base_url)}
    assert len(starts) == 1, f"the reload should continue the session: {starts}"
    (session_id,) = starts

    def all_stamped() -> list[dict[str, Any]]:
        lines = replay_lines(replayd, session_id)
        return lines if len(stamp_times(lines)) == 7 else []

    lines = poll(all_stamped, timeout=15.0)
    assert lines, f"the stream never held the 7 stamps: {replay_lines(replayd, session_id)[:1]}"
    stamps = stamp_times(lines)
    assert sorted(stamps) == list(range(1, 8))
    assert [stamps[n] for n in range(1, 8)] == sorted(stamps.values())
    # Every step shows in the digest, so a seek that lands on the wrong step fails.
    assert len(set(live.values())) == 7
    assert live[2].count("<li class=row>") == 3 and "value=Grace Hopper" in live[3]
    assert "checked=true" in live[4] and "scroll=0,120" in live[5] and "SPA step 2" in live[6]
    assert "scroll=0,0" in live[7] and "type=text value=>" in live[7]  # a fresh page

    player = open_session_player(browser_factory, replayd, session_id)
    for order in (range(1, 8), range(7, 0, -1)):
        for number in order:
            shown_at = stamps[number] + SHOW_AFTER_STAMP_MS
            player.page.evaluate("(ms) => window.replayd.seek(ms)", shown_at)
            assert_same(live[number], frame_digest(player), f"step {number}")
    state = player.page.evaluate("window.replayd.state()")
    assert state["startedAt"] > 0 and state["duration"] >= stamps[7]
    assert not player.page_errors, player.page_errors


def test_a_hostile_recording_replays_without_running_anything(
    replayd_factory: Callable[..., ReplaydServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    replayd = replayd_factory().setup().start()
    canary_url = f"{replayd.base_url}/api/v1/projects?canary=replayd"
    now = int(time.time() * 1000)
    with httpx.Client(base_url=replayd.base_url, timeout=10.0) as client:
        started = client.post(
            "/v1/web/start",
            content=json.dumps(start_body(replayd.project_key, timestamp=now)),
            headers={"Content-Type": "application/json", "User-Agent": CHROME_UA},
        )
        assert started.status_code == 200, started.text
        session_id, token = started.json()["sessionID"], started.json()["token"]
        script = SessionScript(int(session_id), start_ms=now)
        hostile_page(script, canary_url)
        script.wait(500)
        record = script.batch()
        uploaded = client.post(
            "/v1/web/i",
            content=record.payload,
            headers={"Authorization": f"Bearer {token}", "DataType": "player"},
            params={"batch": f"0_1_{len(record.payload)}_kyes"},
        )
        assert uploaded.status_code == 200, uploaded.text
    assert poll(lambda: replay_lines(replayd, session_id), timeout=10.0)

    # The dashboard's own page and policy, as a viewer sees it.
    player = open_session_player(browser_factory, replayd, session_id)
    page = player.page
    assert_nothing_ran(player)
    frame = "window.replayd.frame()"
    # What the frame holds: the harmless part of the page, nothing that could run or navigate.
    found = page.evaluate(
        f"""() => {{
            const doc = {frame}.contentDocument;
            const all = [...doc.querySelectorAll('*')];
            return {{
                tags: [...new Set(all.map((e) => e.localName))].sort(),
                handlers: all.flatMap((e) => [...e.attributes].map((a) => a.name))
                    .filter((n) => n.startsWith('on') || n === 'srcdoc'),
                links: all.map((e) => e.getAttribute('href') || e.getAttribute('xlink:href') || '')
                    .filter((v) => /script:/i.test(v)),
                frames: [...doc.querySelectorAll('iframe')].map((f) => f.getAttribute('sandbox')),
                linkText: doc.querySelector('body > a')?.textContent ?? null,
                sandbox: {frame}.getAttribute('sandbox'),
            }};
        }}"""
    )
    assert set(found["tags"]) <= {"html", "head", "body", "svg", "a", "img", "iframe", "style",
                                  "div", "form", "link", "set"}, found  # fmt: skip
    assert found["handlers"] == [] and found["links"] == [], found
    assert found["frames"] == ["allow-same-origin"] and found["sandbox"] == "allow-same-origin"
    # Recorded HTML in a text node stays text.
    assert found["linkText"] is not None and "<img" in found["linkText"]
    # The player's own UI shows recorded strings (marker labels, the page title) as text only.
    ui = page.evaluate(
        """() => ({
            markup: document.querySelectorAll('#player img, #player script').length,
            titles: [...document.querySelectorAll('#player [title]')].map((e) => e.title),
            page: document.querySelector('#player').textContent,
        })"""
    )
    assert ui["markup"] == 0, ui
    assert any("<img" in title for title in ui["titles"]), ui
    assert not player.page_errors, player.page_errors


def forged_item(kind: str, **fields: Any) -> str:
    return json.dumps({"t": 10, "tab": "t1", "k": kind, **fields}) + "\n"


def test_the_player_alone_holds_against_a_forged_stream(
    replayd_factory: Callable[..., ReplaydServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    """A stream that never went through the server's sanitizer (a forged answer, a bug): the
    player's own checks, the frame's sandbox and its node creation must hold on their own."""
    replayd = replayd_factory().setup().start()
    canary_url = f"{replayd.base_url}/api/v1/projects?canary=replayd"
    js = "javascript:" + HOSTILE_JS
    header = {"version": 1, "startedAt": 1, "duration": 100, "tabs": ["t1"],
              "markers": [{"time": 10, "type": "click", "label": "<img src=x onerror=alert(1)>",
                           "tabId": "t1"}],
              "inactivity": [], "viewports": [], "tabChanges": [], "visibility": [],
              "truncated": False}  # fmt: skip
    stream = json.dumps({"header": header}) + "\n" + "".join([
        forged_item("doc"),
        forged_item("el", id=1, p=0, i=0, tag="HEAD", svg=False),
        forged_item("el", id=2, p=0, i=1, tag="BODY", svg=False),
        forged_item("el", id=3, p=2, i=0, tag="SCRIPT", svg=False),
        forged_item("text", id=4, p=3, i=0),
        forged_item("data", id=4, v=HOSTILE_JS),
        forged_item("el", id=5, p=2, i=1, tag="IMG", svg=False),
        forged_item("attr", id=5, n="onerror", v=HOSTILE_JS),
        forged_item("attr", id=5, n="src", v=canary_url),
        forged_item("el", id=6, p=2, i=2, tag="A", svg=False),
        forged_item("attr", id=6, n="href", v=js),
        forged_item("el", id=7, p=2, i=3, tag="IFRAME", svg=False),
        forged_item("attr", id=7, n="srcdoc", v=f"<script>{HOSTILE_JS}</script>"),
        forged_item("attr", id=7, n="sandbox", v="allow-scripts allow-same-origin"),
        forged_item("el", id=8, p=2, i=4, tag="DIV", svg=False),
        forged_item("attr", id=8, n="style", v=f"background:url({canary_url})"),
        forged_item("el", id=9, p=1, i=0, tag="STYLE", svg=False),
        forged_item("text", id=10, p=9, i=0),
        forged_item("data", id=10, v=f"body{{background:url({canary_url})}}"),
        forged_item("ss", op="replace", sheet=1, v=f"@import url({canary_url});"),
        forged_item("ss", op="add", sheet=1, id=0),
        forged_item("el", id=11, p=2, i=5, tag="svg", svg=True),
        forged_item("el", id=12, p=11, i=0, tag="script", svg=True),
        forged_item("el", id=13, p=2, i=6, tag="IMG", svg=False),
        forged_item("attr", id=13, n="src", v="data:,x"),
        forged_item("attr", id=13, n="ONERROR", v=HOSTILE_JS),
    ])  # fmt: skip
    session_id = started_session(replayd)
    player = open_session_player(
        browser_factory, replayd, session_id, csp=False, forged_stream=stream
    )
    page = player.page
    assert_nothing_ran(player)
    found = page.evaluate(
        """() => {
            const doc = window.replayd.frame().contentDocument;
            const all = [...doc.querySelectorAll('*')];
            return {
                tags: all.map((e) => e.localName),
                attributes: all.flatMap(
                    (e) => [...e.attributes].map((a) => `${a.name}=${a.value}`)),
                sheets: doc.adoptedStyleSheets.length,
            };
        }"""
    )
    assert "script" not in found["tags"], found
    assert not [a for a in found["attributes"] if a.lower().startswith(("on", "srcdoc", "href=j"))]
    assert "sandbox=allow-same-origin" in found["attributes"], found
    assert not [a for a in found["attributes"] if "canary" in a], found
    assert not player.page_errors, player.page_errors


def test_frames_shadow_roots_sheets_and_seeking_on_a_synthetic_stream(
    replayd_factory: Callable[..., ReplaydServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    """Player behaviour on a hand-made stream: a nested frame's document, a shadow root, adopted
    sheets made in the frame's realm, a select valued before its options, moves, removals, masks,
    scrolls; and every moment looks the same reached forward or backward."""
    replayd = replayd_factory().setup().start()

    def at(t: int, kind: str, tab: str = "t1", **fields: Any) -> str:
        return json.dumps({"t": t, "tab": tab, "k": kind, **fields}) + "\n"

    header = {"version": 1, "startedAt": 1, "duration": 500, "tabs": ["t1", "t2"], "markers": [],
              "inactivity": [], "viewports": [{"time": 0, "tabId": "t1", "width": 800,
                                               "height": 600}],
              "tabChanges": [{"time": 0, "tabId": "t1"}, {"time": 450, "tabId": "t2"}],
              "visibility": [], "truncated": False}  # fmt: skip
    stream = json.dumps({"header": header}) + "\n" + "".join([
        at(0, "doc"),
        at(0, "el", id=1, p=0, i=0, tag="HEAD", svg=False),
        at(0, "el", id=2, p=0, i=1, tag="BODY", svg=False),
        at(0, "el", id=3, p=2, i=0, tag="SELECT", svg=False),
        at(0, "input", id=3, v="b", mask=0),  # before its options exist
        at(0, "el", id=4, p=3, i=0, tag="OPTION", svg=False),
        at(0, "attr", id=4, n="value", v="a"),
        at(0, "el", id=5, p=3, i=1, tag="OPTION", svg=False),
        at(0, "attr", id=5, n="value", v="b"),
        at(100, "el", id=10, p=2, i=1, tag="IFRAME", svg=False),
        at(100, "frame", frame=10, id=11),
        at(100, "el", id=12, p=11, i=0, tag="HTML", svg=False),
        at(100, "el", id=13, p=12, i=0, tag="BODY", svg=False),
        at(100, "text", id=14, p=13, i=0),
        at(100, "data", id=14, v="inside the frame"),
        at(200, "el", id=20, p=2, i=2, tag="DIV", svg=False),
        at(200, "attr", id=20, n="id", v="host"),
        at(200, "frame", frame=20, id=21),
        at(200, "el", id=22, p=21, i=0, tag="P", svg=False),
        at(200, "text", id=23, p=22, i=0),
        at(200, "data", id=23, v="in the shadow"),
        at(200, "ss", op="replace", sheet=1, v="p { color: rgb(1, 2, 3); }"),
        at(200, "ss", op="add", sheet=1, id=21),
        at(200, "ss", op="insert", sheet=2, v="body { margin: 7px; }", i=0),
        at(200, "ss", op="add", sheet=2, id=0),
        at(300, "el", id=30, p=2, i=3, tag="INPUT", svg=False),
        at(300, "input", id=30, v="", mask=4),
        at(300, "move", id=20, p=2, i=0),
        at(300, "rm", id=3),
        at(300, "el", id=31, p=2, i=4, tag="DIV", svg=False),
        at(300, "attr", id=31, n="data-digest-scroll", v="1"),
        at(300, "attr", id=31, n="style", v="height: 40px; overflow: auto"),
        at(300, "el", id=32, p=31, i=0, tag="DIV", svg=False),
        at(300, "attr", id=32, n="style", v="height: 400px"),
        at(300, "scroll", id=31, x=0, y=50),
        at(400, "rm", id=10),
        # A second tab, shown from 450 on.
        at(10, "doc", tab="t2"),
        at(10, "el", tab="t2", id=1, p=0, i=0, tag="BODY", svg=False),
        at(10, "attr", tab="t2", id=1, n="id", v="second-tab"),
    ])  # fmt: skip
    player = open_session_player(
        browser_factory, replayd, started_session(replayd), forged_stream=stream
    )
    page = player.page
    facts = """() => {
        const doc = window.replayd.frame().contentDocument;
        const host = doc.getElementById('host');
        const frame = doc.querySelector('iframe');
        return {
            select: doc.querySelector('select')?.value ?? null,
            frameText: frame?.contentDocument?.body?.textContent ?? null,
            frameSandbox: frame?.getAttribute('sandbox') ?? null,
            shadowText: host?.shadowRoot?.textContent ?? null,
            shadowColour: host ? getComputedStyle(host.shadowRoot.querySelector('p')).color : null,
            bodyMargin: getComputedStyle(doc.body).marginTop,
            masked: doc.querySelector('input')?.value ?? null,
            first: doc.body.firstElementChild?.id ?? null,
            scrolled: doc.querySelector('[data-digest-scroll]')?.scrollTop ?? null,
            bodyId: doc.body?.id ?? null,
        };
    }"""
    moments = (50, 150, 250, 350, 400, 500)
    forward = {}
    for ms in moments:
        page.evaluate("(ms) => window.replayd.seek(ms)", ms)
        forward[ms] = (page.evaluate(facts), frame_digest(player))
    assert forward[50][0]["select"] == "b"
    assert forward[150][0]["frameText"] == "inside the frame"
    assert forward[150][0]["frameSandbox"] == "allow-same-origin"
    assert forward[250][0]["shadowText"] == "in the shadow"
    assert forward[250][0]["shadowColour"] == "rgb(1, 2, 3)"
    assert forward[250][0]["bodyMargin"] == "7px"
    assert forward[350][0]["masked"] == "****" and forward[350][0]["first"] == "host"
    assert forward[350][0]["select"] is None and forward[350][0]["scrolled"] == 50
    assert forward[400][0]["frameText"] is None and forward[400][0]["bodyId"] == ""
    assert forward[500][0]["bodyId"] == "second-tab"
    for ms in reversed(moments):
        page.evaluate("(ms) => window.replayd.seek(ms)", ms)
        assert (page.evaluate(facts), frame_digest(player)) == forward[ms], ms
    assert not player.page_errors, player.page_errors


def solid_png(red: int, green: int, blue: int, size: int = 4) -> bytes:
    """A ``size``-pixel square PNG of one colour (8-bit RGB, no filter)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes((red, green, blue)) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def test_the_player_draws_a_canvas_frame_of_the_replay_time(
    replayd_factory: Callable[..., ReplaydServer],
    browser_factory: Callable[[], BrowserRun],
) -> None:
    """Canvas frames uploaded as tracker 19 sends them (``/v1/web/images``, keyed by the
    CanvasNode's node id, epoch-ms times): each seek shows the frame of its moment."""
    replayd = replayd_factory({"REPLAYD_RECORD_CANVAS": "1"}).setup().start()
    now = int(time.time() * 1000)
    session_id, token = web_start(replayd, now)
    script = SessionScript(int(session_id), start_ms=now)
    script.add(wm.CreateDocument())
    script.add(wm.CreateElementNode(1, 0, 0, "HEAD", False))
    script.add(wm.CreateElementNode(2, 0, 1, "BODY", False))
    script.add(wm.CreateElementNode(3, 2, 0, "CANVAS", False))
    script.add(wm.SetNodeAttribute(3, "width", "4"))
    script.add(wm.SetNodeAttribute(3, "height", "4"))
    script.add(wm.CanvasNode("3", now))
    script.wait(4000)
    script.add(wm.MouseMove(1, 1))  # the session lasts past the last frame
    record = script.batch()
    red, blue = solid_png(220, 20, 20), solid_png(20, 20, 220)
    with httpx.Client(base_url=replayd.base_url, timeout=10.0) as client:
        auth = {"Authorization": f"Bearer {token}"}
        uploaded = client.post(
            "/v1/web/i",
            content=record.payload,
            headers={**auth, "DataType": "player"},
            params={"batch": f"0_1_{len(record.payload)}_kyes"},
        )
        assert uploaded.status_code == 200, uploaded.text
        frames = encode_frames([CapturedImage(now + 1000, red), CapturedImage(now + 2500, blue)])
        sent = client.post(
            "/v1/web/images",
            data={"type": "frames"},
            files={"frames": (f"{now}_3.png.frames", frames)},
            headers=auth,
        )
        assert sent.status_code == 200, sent.text
    assert poll(lambda: len(replay_lines(replayd, session_id)) > 1, timeout=10.0)
    started_at = replay_lines(replayd, session_id)[0]["header"]["startedAt"]

    player = open_session_player(browser_factory, replayd, session_id)
    pixel = """async (ms) => {
        await window.replayd.seek(ms);
        const canvas = window.replayd.frame().contentDocument.querySelector('canvas');
        return [...canvas.getContext('2d').getImageData(1, 1, 1, 1).data];
    }"""
    at = {name: epoch - started_at for name, epoch in (("red", now + 1000), ("blue", now + 2500))}
    shown = {ms: player.page.evaluate(pixel, ms) for ms in (at["red"] - 500, at["red"] + 200,
                                                              at["blue"] + 200)}  # fmt: skip
    assert shown[at["red"] - 500] == [0, 0, 0, 0]  # before the first frame: nothing drawn
    assert shown[at["red"] + 200] == [220, 20, 20, 255]
    assert shown[at["blue"] + 200] == [20, 20, 220, 255]
    assert player.page.evaluate(pixel, at["red"] + 200) == [220, 20, 20, 255]  # backward
    assert not player.page_errors, player.page_errors
