"""The replay stream and the devtools panels through the real server (auth, scoping, gzip,
chunking of a long session, the header and the sanitised items)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import trio

from engine.codec import web_messages as wm
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_asset_cache import _cached_path
from tests.api.test_ingest_mobile import ios_start_body, mobile_project, post_start
from tests.api.test_public_v1 import api_key, get, projected, second_organization
from tests.asset_site import AssetSite
from tests.engine.builders import SessionScript
from tests.engine.replay_builders import CANARY_TEXT, hostile_page, small_page


async def upload_script(harness: Harness, token: str, script: SessionScript, batches: list) -> None:
    for number, record in enumerate(batches, start=1):
        response = await harness.upload(
            token, record.payload, batch=f"0_{number}_{len(record.payload)}_kyes"
        )
        assert response.status_code == 200, response.text
    await projected(harness)


async def recorded(harness: Harness, fill: Any) -> tuple[str, SessionScript]:
    """A started session whose batches ``fill(script) -> [records]`` makes; its id and script."""
    start = await harness.started()
    script = SessionScript(int(start["sessionID"]), start_ms=T0)
    await upload_script(harness, start["token"], script, fill(script))
    return start["sessionID"], script


def replay_lines(response: httpx.Response) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    return lines[0]["header"], lines[1:]


def two_batches(script: SessionScript) -> list:
    small_page(script)
    script.wait(40)
    script.add(wm.MouseMove(10, 20))
    script.add(wm.MouseClick(12, 30, "row 1", "li", 5000, 1000))
    first = script.batch()
    script.wait(8_000)
    script.add(wm.SetInputChecked(6, True))
    script.add(wm.ConsoleLog("warn", "careful"))
    script.add(wm.ConsoleLog("error", "broken"))
    script.request("https://api.shop.test/pay", status=502, method="POST", duration=33)
    script.add(wm.SetPageLocation("https://shop.test/done", "", 0, "Done"))
    return [first, script.batch()]


async def test_replay_header_items_and_devtools(harness: Harness) -> None:
    key = await api_key(harness)
    sid, _ = await recorded(harness, two_batches)
    base = f"/api/v1/{harness.project.project_key}/sessions/{sid}"
    header, items = replay_lines(await get(harness, key, base + "/replay"))
    assert header["startedAt"] == T0
    assert header["duration"] == 8_040
    assert header["tabs"] == ["e18efc31aa0f"]
    kinds = [(m["type"], m["label"]) for m in header["markers"]]
    assert ("click", "row 1") in kinds and ("error", "broken") in kinds
    assert ("location", "https://shop.test/done") in kinds
    assert any(t == "request" and "502" in label for t, label in kinds)
    assert header["inactivity"] == [{"start": 40, "end": 8_040}]
    viewport = {"time": 0, "tabId": "e18efc31aa0f", "width": 1024, "height": 700}
    assert header["viewports"] == [viewport]
    # The dictionary resolved, the URL-based style made absolute.
    assert {"k": "attr", "id": 5, "n": "class", "v": "rows", "t": 0, "tab": "e18efc31aa0f"} in items
    style = next(i for i in items if i["k"] == "attr" and i["n"] == "style")
    assert style["v"] == 'background:url("https://shop.test/img/bg.png")'
    assert [i["k"] for i in items[:3]] == ["loc", "vsize", "doc"]
    assert {"k": "checked", "id": 6, "v": True, "t": 8_040, "tab": "e18efc31aa0f"} in items
    times = [i["t"] for i in items]
    assert times == sorted(times)

    console = (await get(harness, key, base + "/console")).json()["data"]
    assert [(c["level"], c["value"], c["time"]) for c in console] == [
        ("warn", "careful", 8_040),
        ("error", "broken", 8_040),
    ]
    network = (await get(harness, key, base + "/network")).json()["data"]
    assert [(n["method"], n["url"], n["status"], n["duration"]) for n in network] == [
        ("POST", "https://api.shop.test/pay", 502, 33)
    ]
    assert network[0]["type"] in ("fetch", "xhr") and network[0]["tabId"] == "e18efc31aa0f"


async def test_auth_and_scoping(harness: Harness) -> None:
    key = await api_key(harness)
    sid, _ = await recorded(harness, two_batches)
    other_key, their_project = await trio.to_thread.run_sync(second_organization, harness)
    mine = harness.project.project_key
    for tail in ("replay", "console", "network"):
        path = f"/api/v1/{mine}/sessions/{sid}/{tail}"
        missing = await get(harness, None, path)
        assert (missing.status_code, missing.json()) == (401, {"errors": ["Not authenticated"]})
        # Another organization's key does not see the project at all.
        theirs = await get(harness, other_key, path)
        assert (theirs.status_code, theirs.json()) == (404, {"errors": ["project not found."]})
        # Their own project does not hold our session.
        crossed = await get(harness, other_key, f"/api/v1/{their_project}/sessions/{sid}/{tail}")
        assert (crossed.status_code, crossed.json()) == (404, {"errors": ["session not found."]})
        unknown = await get(harness, key, f"/api/v1/{mine}/sessions/12345/{tail}")
        assert (unknown.status_code, unknown.json()) == (404, {"errors": ["session not found."]})
        absurd = await get(harness, key, f"/api/v1/{mine}/sessions/{'9' * 30}/{tail}")
        assert absurd.status_code == 404


async def test_gzip_when_accepted(harness: Harness) -> None:
    key = await api_key(harness)
    sid, _ = await recorded(harness, two_batches)
    path = f"/api/v1/{harness.project.project_key}/sessions/{sid}/replay"
    plain = await harness.client.get(
        path, headers={"Authorization": key, "Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    async with harness.client.stream(
        "GET", path, headers={"Authorization": key, "Accept-Encoding": "gzip"}
    ) as zipped:
        assert zipped.headers["content-encoding"] == "gzip"
        raw = b"".join([chunk async for chunk in zipped.aiter_raw()])
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == plain.content


def long_session(script: SessionScript) -> list:
    """300 batches of 100 text changes each (30,000 items)."""
    small_page(script)
    batches = [script.batch()]
    for n in range(300):
        script.wait(100)
        for m in range(100):
            script.add(wm.SetNodeData(4, f"tick {n}.{m} " + "x" * 40))
        batches.append(script.batch())
    return batches


async def test_a_long_session_streams_in_chunks(harness: Harness) -> None:
    key = await api_key(harness)
    sid, _ = await recorded(harness, long_session)
    path = f"/api/v1/{harness.project.project_key}/sessions/{sid}/replay"
    chunks = []
    async with harness.client.stream(
        "GET", path, headers={"Authorization": key, "Accept-Encoding": "identity"}
    ) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    text = b"".join(chunks).decode()
    lines = text.splitlines()
    assert json.loads(lines[0])["header"]["duration"] == 30_000
    # The small page's three texts, and the 30,000 changes.
    assert sum(1 for line in lines if '"k":"data"' in line) == 30_000 + 3
    # Sent as it was built: many chunks, none of them the whole answer.
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < len(text) / 5


async def test_hostile_recording_is_cut_down(harness: Harness) -> None:
    key = await api_key(harness)
    api_url = f"{harness.server.url}/api/v1/projects"

    def fill(script: SessionScript) -> list:
        hostile_page(script, api_url)
        return [script.batch()]

    sid, _ = await recorded(harness, fill)
    header, items = replay_lines(
        await get(harness, key, f"/api/v1/{harness.project.project_key}/sessions/{sid}/replay")
    )
    created = {i["id"]: i["tag"].lower() for i in items if i["k"] == "el"}
    assert set(created.values()) <= {"head", "body", "svg", "a", "img", "iframe", "style", "div",
                                     "form", "link", "set"}  # fmt: skip
    text = json.dumps(items).lower()
    assert "javascript:" not in text and "expression(" not in text
    assert api_url.lower() not in text
    assert not any(i["k"] == "attr" and i["n"].lower().startswith("on") for i in items)
    frame_attributes = {i["n"] for i in items if i["k"] == "attr" and i["id"] == 13}
    assert not frame_attributes & {"srcdoc", "src"}
    # The scripts' texts never leave (a link's text with HTML in it does: it is text).
    assert not any(i.get("id") in (3, 4, 6, 7, 14, 21, 22, 23) for i in items)
    assert [i["id"] for i in items if i["k"] == "data" and CANARY_TEXT in i["v"]] == [12]
    # The recorded strings reach the markers as they are: the UI inserts them as text.
    assert any("<img" in m["label"] for m in header["markers"] if m["type"] == "click")


async def test_a_mobile_session_is_a_clear_400(harness: Harness) -> None:
    key = await api_key(harness)
    ios = await mobile_project(harness, "ios")
    response = await post_start(
        harness, ios_start_body(ios.project_key), user_agent="App/1 CFNetwork/1410 Darwin/22.6.0"
    )
    assert response.status_code == 200, response.text
    session_id = response.json()["sessionID"]
    await projected(harness)
    for tail in ("replay", "console", "network"):
        answer = await get(harness, key, f"/api/v1/{ios.project_key}/sessions/{session_id}/{tail}")
        assert answer.status_code == 400
        assert "screenshots" in answer.json()["errors"][0]


async def test_cached_assets_replace_the_recorded_urls(
    server_factory: ServerFactory, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """With the cache on, a cached stylesheet's link and a style's url() point at this origin's
    ``/assets/<sha256>``; a URL the cache does not hold stays the absolute recorded one."""
    site: AssetSite = await nursery.start(AssetSite().run)
    site.routes["/css/site.css"] = (200, {"Content-Type": "text/css"}, b"body{color:red}")
    harness = await server_factory(cache_assets=True, asset_allow="127.0.0.1")
    page = site.url("/shop/")
    missing = site.url("/img/none.png")  # a 404 on the site: never cached

    def styled(script: SessionScript) -> list:
        script.add(wm.SetPageLocation(page, "", 1, "Styled"))
        script.add(wm.CreateDocument())
        script.add(wm.CreateElementNode(1, 0, 0, "HEAD", False))
        script.add(wm.CreateElementNode(2, 1, 0, "LINK", False))
        script.add(wm.SetNodeAttribute(2, "rel", "stylesheet"))
        script.add(wm.SetNodeAttributeURLBased(2, "href", "../css/site.css", page))
        script.add(wm.CreateElementNode(3, 0, 1, "BODY", False))
        style = "background:url(../css/site.css) , url(/img/none.png)"
        script.add(wm.SetNodeAttributeURLBased(3, "style", style, page))
        return [script.batch()]

    session_id, _ = await recorded(harness, styled)
    sheet = site.url("/css/site.css")
    path = await _cached_path(tmp_path / "replayd-assets.db", harness.project.project_id, sheet)
    key = await api_key(harness)
    replay = f"/api/v1/{harness.project.project_key}/sessions/{session_id}/replay"
    _, items = replay_lines(await get(harness, key, replay))
    attrs_of = {(i["id"], i["n"]): i["v"] for i in items if i["k"] == "attr"}
    own = str(harness.client.base_url).rstrip("/")
    assert attrs_of[(2, "href")] == own + path
    assert own + path in attrs_of[(3, "style")] and missing in attrs_of[(3, "style")]
    assert sheet not in attrs_of[(3, "style")]
