"""Public API v1 through a real server: auth, projects, a session's events, a user's sessions.

Sessions are recorded the way a tracker records them (``/v1/web/start``, then batches encoded by
the real codec and uploaded with the session token); the engine and the projector run inside the
server, and the tests read what they projected through ``/api/v1/...``.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections import Counter
from typing import Any

import httpx
import trio

from api.cli import build_parser
from api.openapi import OPENAPI_PATH
from api.operations import PROJECTOR_KEY
from storage.catalog import DEFAULT_ORG_ID, PLATFORMS
from tests.api.conftest import T0, Harness, ServerFactory
from tests.engine.builders import SessionScript, clock_tick


async def api_key(harness: Harness, org_id: int = DEFAULT_ORG_ID) -> str:
    return await trio.to_thread.run_sync(lambda: harness.server.catalog.create_api_key(org_id))


async def get(harness: Harness, key: str | None, path: str, **params: Any) -> httpx.Response:
    headers = {} if key is None else {"Authorization": key}
    return await harness.client.get(path, headers=headers, params=params)


async def projected(harness: Harness) -> None:
    """Wait until the projector has applied everything the log holds."""
    assert harness.server.app is not None
    projector = harness.server.app.extensions[PROJECTOR_KEY]
    with trio.fail_after(10):
        while projector.statistics.upto_position < harness.server.log.head():
            await trio.sleep(0.01)


async def end_all_sessions(harness: Harness, at: int) -> None:
    """What the clock ticker does: a tick far enough ahead ends every session (record time)."""
    await harness.server.log.append(clock_tick(at))
    await projected(harness)


async def record_session(harness: Harness, user_id: str | None = "user-42") -> tuple[str, dict]:
    """Start a session and upload two batches with one event of every kind; returns (id, marks)."""
    start = await harness.started(userID=user_id)
    script = SessionScript(int(start["sessionID"]), start_ms=T0)
    marks: dict[str, Any] = {}
    marks["page"] = script.visit(
        "https://shop.test/cart?step=2#x", title="Cart", referrer="https://search.test/q?a=1"
    )
    script.wait(20)
    marks["timing"] = script.load_timing(
        request_start=10, response_start=60, response_end=90, dom_content_loaded_event_start=200,
        dom_content_loaded_event_end=250, load_event_start=400, load_event_end=420,
        first_paint=150, first_contentful_paint=160,
    )  # fmt: skip
    script.web_vital("LCP", "812")
    script.wait(30)
    marks["click"] = script.click("Add to cart", selector="#add", x=4512, y=1000)
    script.wait(30)
    marks["input"] = script.input("email", "a***@b.c")
    first = script.batch()
    script.wait(1_000)
    marks["custom"] = script.custom_event("checkout", '{"total": 12}')
    marks["error"] = script.js_exception("TypeError", "x is undefined")
    marks["request"] = script.request(
        "https://api.shop.test/pay?x=1", status=502, method="POST", duration=33
    )
    marks["graphql"] = script.graphql("GetCart")
    marks["state"] = script.state_action("cart/add")
    marks["issue"] = script.issue_event("mouse_thrashing", context_string="ctx", payload='{"a": 1}')
    second = script.batch()
    for number, record in enumerate((first, second), start=1):
        response = await harness.upload(
            start["token"], record.payload, batch=f"0_{number}_{len(record.payload)}_kyes"
        )
        assert response.status_code == 200, response.text
    await projected(harness)
    return start["sessionID"], marks


# -- auth ------------------------------------------------------------------------------------------


async def test_missing_and_wrong_keys_are_401_and_bearer_is_accepted(harness: Harness) -> None:
    key = await api_key(harness)
    missing = await get(harness, None, "/api/v1/projects")
    assert (missing.status_code, missing.json()) == (401, {"errors": ["Not authenticated"]})
    wrong = await get(harness, "not-a-key", "/api/v1/projects")
    assert (wrong.status_code, wrong.json()) == (401, {"errors": ["Invalid API Key"]})
    blank = await get(harness, "", "/api/v1/projects")
    assert blank.status_code == 401 and blank.json() == {"errors": ["Not authenticated"]}
    for header in (key, f"Bearer {key}", f"bearer  {key}"):
        response = await get(harness, header, "/api/v1/projects")
        assert response.status_code == 200, header


# -- projects --------------------------------------------------------------------------------------


async def test_projects_list_get_and_create(harness: Harness) -> None:
    key = await api_key(harness)
    listing = (await get(harness, key, "/api/v1/projects")).json()["data"]
    assert [p["projectKey"] for p in listing] == [harness.project.project_key]
    assert "projectId" not in listing[0]
    assert listing[0]["name"] == harness.project.name and listing[0]["platform"] == "web"

    one = await get(harness, key, f"/api/v1/projects/{harness.project.project_key}")
    # Issue 14 point 8: one serializer, so the list item is the project object less projectId.
    assert one.json() == {"data": {"projectId": harness.project.project_id, **listing[0]}}
    unknown = await get(harness, key, "/api/v1/projects/aaaaaaaaaaaaaaaaaaaa")
    assert (unknown.status_code, unknown.json()) == (404, {"errors": ["project not found."]})

    created = await harness.client.post(
        "/api/v1/projects",
        headers={"Authorization": key},
        json={"name": "Shop #2 - é/à", "platform": "ios"},
    )
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    assert (data["name"], data["platform"], data["saveRequestPayloads"]) == (
        "Shop #2 - é/à",
        "ios",
        False,
    )
    # Issue 14 point 8: gdpr.sampleRate is the project's sample rate (it said 33 while the list
    # said 100), and the new project answers what reading it back answers.
    assert data["gdpr"] == {
        "maskEmails": True,
        "sampleRate": 100,
        "maskNumbers": False,
        "defaultInputMode": "obscured",
    }
    assert (data["sampleRate"], data["firstRecordedSessionAt"]) == (100, None)
    assert len(data["projectKey"]) == 20
    fetched = await get(harness, key, f"/api/v1/projects/{data['projectKey']}")
    assert fetched.json()["data"] == data
    listed = (await get(harness, key, "/api/v1/projects")).json()["data"]
    assert len(listed) == 2
    assert {k: v for k, v in data.items() if k != "projectId"} in listed

    default = await harness.client.post("/api/v1/projects", headers={"Authorization": key}, json={})
    assert default.json()["data"]["name"] == "my first project"


async def test_project_creation_rules(harness: Harness) -> None:
    key = await api_key(harness)

    async def create(body: Any) -> httpx.Response:
        return await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json=body
        )

    assert (await create({"name": "Alpha"})).status_code == 200
    duplicate = await create({"name": "  aLPHA "})
    assert (duplicate.status_code, duplicate.json()) == (400, {"errors": ["name already exists."]})
    for bad, field in (
        ({"name": "no <script>"}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": 12}, "body.name"),
        ({"platform": "windows"}, "body.platform"),
        (["x"], "body"),
    ):
        response = await create(bad)
        assert response.status_code == 422, bad
        # Issue 14 point 7: the v1 envelope, the message naming the field (was FastAPI's detail).
        (message,) = response.json()["errors"]
        assert message.startswith(f"{field}: "), (bad, message)
    assert (await harness.client.post("/api/v1/projects", json={"name": "B"})).status_code == 401


async def test_every_platform_the_catalog_knows_can_be_created(harness: Harness) -> None:
    """Issue 14 point 8: the CLI created android projects, POST refused them; both take the
    catalog's list now."""
    key = await api_key(harness)
    for platform in PLATFORMS:
        response = await harness.client.post(
            "/api/v1/projects",
            headers={"Authorization": key},
            json={"name": f"app {platform}", "platform": platform},
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["platform"] == platform
    created = {p.name: p.platform for p in harness.server.catalog.list_projects()}
    assert {created[f"app {p}"] for p in PLATFORMS} == set(PLATFORMS) == {"web", "ios", "android"}


async def test_the_cli_offers_the_platforms_the_api_takes(harness: Harness) -> None:
    """The other half of the android mismatch: ``replayd project create --platform`` offers the
    same list (the catalog's) as POST /api/v1/projects and its OpenAPI description."""
    parser = build_parser()

    def subcommand(of: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        (commands,) = [a for a in of._actions if isinstance(a, argparse._SubParsersAction)]
        return commands.choices[name]

    create = subcommand(subcommand(parser, "project"), "create")
    (platform,) = [a for a in create._actions if "--platform" in a.option_strings]
    assert tuple(platform.choices or ()) == PLATFORMS
    spec = (await harness.client.get(OPENAPI_PATH)).json()
    assert spec["components"]["schemas"]["NewProject"]["properties"]["platform"]["enum"] == list(
        PLATFORMS
    )


async def test_first_recorded_session_at_is_set_once_a_session_is_recorded(
    harness: Harness,
) -> None:
    """Issue 14 point 8: it stayed null after sessions were recorded."""
    key = await api_key(harness)
    path = f"/api/v1/projects/{harness.project.project_key}"
    assert (await get(harness, key, path)).json()["data"]["firstRecordedSessionAt"] is None
    await record_session(harness)
    harness.clock.now += 60_000
    await harness.started(userID="later")  # a later session does not move it
    await projected(harness)
    assert (await get(harness, key, path)).json()["data"]["firstRecordedSessionAt"] == T0
    (listed,) = (await get(harness, key, "/api/v1/projects")).json()["data"]
    assert listed["firstRecordedSessionAt"] == T0
    # Another project of the organization has recorded nothing.
    other = await trio.to_thread.run_sync(lambda: harness.server.catalog.create_project("other"))
    fresh = await get(harness, key, f"/api/v1/projects/{other.project_key}")
    assert fresh.json()["data"]["firstRecordedSessionAt"] is None


def second_organization(harness: Harness) -> tuple[str, str]:
    """Organization 2 with an API key and a project "theirs": ``(api key, project key)``."""
    conn = sqlite3.connect(harness.server.log.path)  # the catalog shares the database file
    try:
        conn.execute(
            "INSERT INTO organizations (org_id, name, created_at_ms) VALUES (2, 'other', 0)"
        )
        conn.commit()
    finally:
        conn.close()
    catalog = harness.server.catalog
    return catalog.create_api_key(2), catalog.create_project("theirs", org_id=2).project_key


async def test_a_key_never_sees_another_organizations_projects(harness: Harness) -> None:
    other_key, their_project = await trio.to_thread.run_sync(second_organization, harness)
    mine = await api_key(harness)
    session_id, _ = await record_session(harness)
    theirs = (await get(harness, other_key, "/api/v1/projects")).json()["data"]
    assert [p["projectKey"] for p in theirs] == [their_project]
    for path in (
        f"/api/v1/projects/{harness.project.project_key}",
        f"/api/v1/{harness.project.project_key}/sessions/{session_id}/events",
        f"/api/v1/{harness.project.project_key}/users/user-42/sessions",
        f"/api/v1/{harness.project.project_key}/users/user-42",
    ):
        response = await get(harness, other_key, path)
        assert (response.status_code, response.json()) == (
            404,
            {"errors": ["project not found."]},
        ), path
    assert (await get(harness, mine, f"/api/v1/projects/{their_project}")).status_code == 404
    # The same name in another organization is no duplicate.
    response = await harness.client.post(
        "/api/v1/projects",
        headers={"Authorization": other_key},
        json={"name": harness.project.name},
    )
    assert response.status_code == 200


# -- events ----------------------------------------------------------------------------------------


async def test_session_events_of_every_type(harness: Harness) -> None:
    key = await api_key(harness)
    session_id, marks = await record_session(harness)
    response = await get(
        harness, key, f"/api/v1/{harness.project.project_key}/sessions/{session_id}/events"
    )
    assert response.status_code == 200
    events = response.json()["data"]
    # ERROR and the 502 REQUEST bring their own ISSUE rows (js_exception, bad_request).
    assert Counter(e["type"] for e in events) == Counter(
        ["LOCATION", "CLICK", "INPUT", "CUSTOM", "ERROR", "REQUEST", "GRAPHQL", "STATEACTION"]
        + ["ISSUE"] * 3
    )
    assert all(e["sessionId"] == session_id and isinstance(e["sessionId"], str) for e in events)
    keys = [(e["timestamp"], e["messageId"]) for e in events]
    assert keys == sorted(keys)
    by_type = {e["type"]: e for e in events}

    location = by_type["LOCATION"]
    assert (location["messageId"], location["timestamp"]) == (
        marks["page"].message_id,
        marks["page"].timestamp,
    )
    assert {
        k: location[k]
        for k in ("host", "path", "query", "referrer", "baseReferrer", "url", "value")
    } == {
        "host": "shop.test",
        "path": "/cart",
        "query": "step=2",
        "referrer": "https://search.test/q?a=1",
        "baseReferrer": "https://search.test/q",
        "url": "https://shop.test/cart?step=2#x",
        "value": "/cart",
    }
    timings = {
        "ttfb": 50, "responseTime": 30, "domBuildingTime": 110, "domContentLoadedTime": 50,
        "loadTime": 20, "firstPaintTime": 150, "firstContentfulPaintTime": 160, "responseEnd": 90,
    }  # fmt: skip
    assert {k: location[k] for k in timings} == timings
    # Issue 14 point 8: an object, no longer a JSON string inside the JSON.
    assert location["webVitals"] == {"LCP": "812"}

    click = by_type["CLICK"]
    assert (click["messageId"], click["label"], click["selector"]) == (
        marks["click"].message_id,
        "Add to cart",
        "#add",
    )
    assert (click["url"], click["path"], click["normalizedX"], click["normalizedY"]) == (
        "https://shop.test/cart?step=2#x", "/cart", 45.12, 10.0,
    )  # fmt: skip
    assert isinstance(click["hesitation"], int)
    assert (by_type["INPUT"]["label"], by_type["INPUT"]["value"]) == ("email", "a***@b.c")
    assert {"duration", "hesitation"} <= by_type["INPUT"].keys()
    assert (by_type["CUSTOM"]["name"], by_type["CUSTOM"]["payload"]) == ("checkout", {"total": 12})
    error = by_type["ERROR"]
    assert (error["name"], error["message"], error["source"]) == (
        "TypeError",
        "x is undefined",
        "js_exception",
    )
    request = by_type["REQUEST"]
    expected_request = {
        "url": "https://api.shop.test/pay?x=1", "method": "POST", "status": 502, "duration": 33,
        "success": False,
    }  # fmt: skip
    assert {k: request[k] for k in expected_request} == expected_request
    assert (by_type["GRAPHQL"]["name"], by_type["STATEACTION"]["name"]) == ("GetCart", "cart/add")
    issues = [e for e in events if e["type"] == "ISSUE"]
    assert {i["issueType"] for i in issues} == {"js_exception", "mouse_thrashing", "bad_request"}
    thrash = next(i for i in issues if i["issueType"] == "mouse_thrashing")
    assert (thrash["contextString"], thrash["payload"]) == ("ctx", {"a": 1})


async def test_session_events_unknown_foreign_and_malformed_ids(harness: Harness) -> None:
    key = await api_key(harness)
    session_id, _ = await record_session(harness)
    base = f"/api/v1/{harness.project.project_key}/sessions"
    assert (await get(harness, key, f"{base}/12345/events")).json() == {"data": []}
    assert (await get(harness, key, f"{base}/{2**70}/events")).json() == {"data": []}
    malformed = await get(harness, key, f"{base}/abc/events")
    assert malformed.status_code == 422
    # Issue 14 point 7: the v1 envelope (was FastAPI's detail), naming the parameter.
    (message,) = malformed.json()["errors"]
    assert message.startswith("path.sessionId: ")
    # The session belongs to another project of the same organization: not visible there.
    other = await trio.to_thread.run_sync(lambda: harness.server.catalog.create_project("other"))
    response = await get(harness, key, f"/api/v1/{other.project_key}/sessions/{session_id}/events")
    assert response.json() == {"data": []}
    assert (await get(harness, None, f"{base}/{session_id}/events")).status_code == 401
    missing = await get(harness, key, f"/api/v1/aaaaaaaaaaaaaaaaaaaa/sessions/{session_id}/events")
    assert (missing.status_code, missing.json()) == (404, {"errors": ["project not found."]})


# -- users -----------------------------------------------------------------------------------------


async def test_user_sessions_and_summary(harness: Harness) -> None:
    key = await api_key(harness)
    base = f"/api/v1/{harness.project.project_key}/users"
    first, _ = await record_session(harness, user_id="ann")
    harness.clock.now += 5_000
    second = (await harness.started(userID="ann"))["sessionID"]
    await harness.started(userID="bob")
    await projected(harness)

    sessions = (await get(harness, key, f"{base}/ann/sessions")).json()["data"]
    assert [s["sessionId"] for s in sessions] == [first, second]
    assert all(isinstance(s["sessionId"], str) for s in sessions)
    one = sessions[0]
    assert set(one) == {
        "projectId", "sessionId", "userUuid", "userId", "userOs", "userBrowser", "userDevice",
        "userCountry", "startTs", "duration", "eventsCount", "pagesCount", "errorsCount",
    }  # fmt: skip
    assert (one["projectId"], one["userId"], one["startTs"], one["duration"]) == (
        harness.project.project_id, "ann", T0, None,
    )  # fmt: skip
    assert (one["pagesCount"], one["errorsCount"], one["eventsCount"]) == (1, 1, 11)
    assert (one["userOs"], one["userBrowser"], one["userCountry"]) == ("Linux", "Chrome", "UN")
    assert isinstance(one["userUuid"], str) and len(one["userUuid"]) == 36
    # start_date / end_date bound startTs, inclusively.
    assert [
        s["sessionId"]
        for s in (await get(harness, key, f"{base}/ann/sessions", start_date=T0 + 5_000)).json()[
            "data"
        ]
    ] == [second]
    assert [
        s["sessionId"]
        for s in (await get(harness, key, f"{base}/ann/sessions", end_date=T0)).json()["data"]
    ] == [first]
    assert (await get(harness, key, f"{base}/ann/sessions", start_date="x")).status_code == 422
    assert (await get(harness, key, f"{base}/nobody/sessions")).json() == {"data": []}

    # Only finished sessions count for the summary.
    assert (await get(harness, key, f"{base}/ann")).json() == {"data": None}
    await end_all_sessions(harness, T0 + 600_000)
    assert (await get(harness, key, f"{base}/ann")).json() == {
        "data": {"userId": "ann", "sessionCount": 2, "lastSeen": T0 + 5_000, "firstSeen": T0}
    }
    ended = (await get(harness, key, f"{base}/ann/sessions")).json()["data"]
    assert all(isinstance(s["duration"], int) for s in ended)


async def test_user_sessions_are_capped_at_fifty(server_factory: ServerFactory) -> None:
    harness = await server_factory()
    key = await api_key(harness)
    for _ in range(52):
        harness.clock.now += 1
        await harness.started(userID="busy")
    await projected(harness)
    sessions = (
        await get(harness, key, f"/api/v1/{harness.project.project_key}/users/busy/sessions")
    ).json()["data"]
    assert len(sessions) == 50
    ids = [int(s["sessionId"]) for s in sessions]
    assert ids == sorted(ids)
