"""Public API v2 through a real server: the v1 handlers under ``/v2/api/public`` and ``/public``
with v2's Bearer auth (bare 401s), bodies, pages and ``{"error"}`` envelope (API.md 1.1, 1.3).

Each route is checked against its v1 counterpart on the same recorded data: the same objects,
in v2's pages.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from tests.api.conftest import T0, Harness
from tests.api.test_assist import live_session
from tests.api.test_public_v1 import (
    api_key,
    end_all_sessions,
    projected,
    record_session,
    second_organization,
)

PREFIXES = ("/v2/api/public", "/public")
WINDOW = {"startTimestamp": T0 - 60_000, "endTimestamp": T0 + 3_600_000}


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


async def v1(harness: Harness, key: str, path: str, **params: Any) -> Any:
    response = await harness.client.get(
        f"/api/v1{path}", headers={"Authorization": key}, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def v2(
    harness: Harness, key: str | None, method: str, path: str, body: Any = None, **params: Any
) -> httpx.Response:
    return await harness.client.request(
        method, f"/v2/api/public{path}", headers=bearer(key), json=body, params=params
    )


async def v2_data(harness: Harness, key: str, method: str, path: str, body: Any = None) -> Any:
    response = await v2(harness, key, method, path, body)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_bearer_auth_and_bare_401s(harness: Harness) -> None:
    key = await api_key(harness)
    project = harness.project.project_key
    for prefix in PREFIXES:
        ok = await harness.client.get(f"{prefix}/projects", headers=bearer(key))
        assert ok.status_code == 200, prefix
        for headers in ({}, {"Authorization": key}, bearer("not-a-key"), {"Authorization": ""}):
            for path in ("/projects", f"/{project}/users/ann"):
                response = await harness.client.get(f"{prefix}{path}", headers=headers)
                # v2 answers a caller it does not know a 401 with nothing in it.
                assert (response.status_code, response.content) == (401, b""), (headers, path)
    lower = await harness.client.get("/public/projects", headers={"Authorization": f"bearer {key}"})
    assert lower.status_code == 200


async def test_projects_answer_what_v1_answers(harness: Harness) -> None:
    key = await api_key(harness)
    project = harness.project.project_key
    listed_v1 = await v1(harness, key, "/projects")
    listed_v2 = await v2_data(harness, key, "GET", "/projects")
    # v2 keeps projectId in the list; the rest is v1's object.
    assert [{k: v for k, v in p.items() if k != "projectId"} for p in listed_v2] == listed_v1
    assert listed_v2[0]["projectId"] == harness.project.project_id
    one = await v2_data(harness, key, "GET", f"/projects/{project}")
    assert one == await v1(harness, key, f"/projects/{project}") == listed_v2[0]
    unknown = await v2(harness, key, "GET", "/projects/aaaaaaaaaaaaaaaaaaaa")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "project not found."})

    created = await v2_data(harness, key, "POST", "/projects", {"name": "Shop 2"})
    assert (created["name"], created["platform"]) == ("Shop 2", "web")
    assert created == await v1(harness, key, f"/projects/{created['projectKey']}")
    again = await v2(harness, key, "POST", "/projects", {"name": "shop 2"})
    assert (again.status_code, again.json()) == (400, {"error": "name already exists."})
    nameless = await v2(harness, key, "POST", "/projects", {"platform": "web"})
    assert (nameless.status_code, nameless.json()) == (400, {"error": "body.name: is required"})
    bad = await v2(harness, key, "POST", "/projects", {"name": "x", "platform": "tv"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("body.platform: ")


async def test_a_key_never_sees_another_organizations_project(harness: Harness) -> None:
    other_key, theirs = await trio.to_thread.run_sync(second_organization, harness)
    session_id, _ = await record_session(harness)
    await end_all_sessions(harness, T0 + 600_000)
    mine = harness.project.project_key
    listed = await v2_data(harness, other_key, "GET", "/projects")
    assert [p["projectKey"] for p in listed] == [theirs]
    detail = await v2(harness, other_key, "GET", f"/projects/{mine}")
    assert (detail.status_code, detail.json()) == (404, {"error": "project not found."})
    for method, path, body in (
        ("GET", f"/{mine}/users/user-42", None),
        ("POST", f"/{mine}/users", {}),
        ("POST", f"/{mine}/users/user-42/sessions", WINDOW),
        ("POST", f"/{mine}/sessions/{session_id}/events", {**WINDOW, "limit": 10, "page": 1}),
        ("GET", f"/{mine}/assist/sessions", None),
        ("POST", f"/{mine}/assist/sessions", {}),
    ):
        response = await v2(harness, other_key, method, path, body)
        # v2's authorizer: a project the key does not own is a 401, before any handler.
        assert (response.status_code, response.content) == (401, b""), path


async def test_users_answer_what_v1_answers(harness: Harness) -> None:
    key = await api_key(harness)
    project = harness.project.project_key
    first, _ = await record_session(harness, user_id="ann")
    harness.clock.now += 5_000
    second = (await harness.started(userID="ann"))["sessionID"]
    await harness.started(userID="bob")
    harness.clock.now += 1_000
    await harness.started(userID="Annabel")
    await end_all_sessions(harness, T0 + 600_000)

    ann_v1 = await v1(harness, key, f"/{project}/users/ann")
    ann = await v2_data(harness, key, "GET", f"/{project}/users/ann")
    assert ann == {
        "$user_id": "ann", "$first_event_at": T0, "$last_seen": T0 + 5_000, **ann_v1,
    }  # fmt: skip
    nobody = await v2(harness, key, "GET", f"/{project}/users/nobody")
    assert (nobody.status_code, nobody.json()) == (404, {"error": "user not found"})
    too_long = await v2(harness, key, "GET", f"/{project}/users/{'u' * 257}")
    assert too_long.status_code == 400

    sessions_v1 = await v1(harness, key, f"/{project}/users/ann/sessions")
    page = await v2_data(harness, key, "POST", f"/{project}/users/ann/sessions", WINDOW)
    assert page["total"] == 2
    assert [{k: v for k, v in s.items() if k != "endTs"} for s in page["sessions"]] == sessions_v1
    assert [s["sessionId"] for s in page["sessions"]] == [first, second]
    assert all(s["endTs"] == s["startTs"] + s["duration"] for s in page["sessions"])
    newest = await v2_data(
        harness, key, "POST", f"/{project}/users/ann/sessions",
        {**WINDOW, "sortOrder": "desc", "limit": 1, "page": 1},
    )  # fmt: skip
    assert (newest["total"], [s["sessionId"] for s in newest["sessions"]]) == (2, [second])
    later = await v2_data(
        harness, key, "POST", f"/{project}/users/ann/sessions",
        {"startTimestamp": T0 + 1, "endTimestamp": T0 + 3_600_000},
    )  # fmt: skip
    assert [s["sessionId"] for s in later["sessions"]] == [second]
    for body in ({}, {"startTimestamp": T0}, {**WINDOW, "endTimestamp": T0 - 60_000},
                 {**WINDOW, "limit": 201}, {**WINDOW, "startTimestamp": 5}):  # fmt: skip
        response = await v2(harness, key, "POST", f"/{project}/users/ann/sessions", body)
        assert response.status_code == 400 and "error" in response.json(), body

    found = await v2_data(harness, key, "POST", f"/{project}/users", {"query": "ANN"})
    assert found["total"] == 2
    assert [u["$user_id"] for u in found["users"]] == ["Annabel", "ann"]  # last seen first
    assert found["users"][1] == ann
    by_q = await v2(harness, key, "POST", f"/{project}/users", {"query": "bob"}, q="annab")
    assert [u["userId"] for u in by_q.json()["data"]["users"]] == ["Annabel"]
    paged = await v2_data(
        harness, key, "POST", f"/{project}/users",
        {"sortBy": "$user_id", "sortOrder": "asc", "limit": 2, "page": 2},
    )  # fmt: skip
    assert (paged["total"], [u["userId"] for u in paged["users"]]) == (3, ["bob"])
    filtered = await v2(harness, key, "POST", f"/{project}/users", {"filters": [{"name": "x"}]})
    assert filtered.status_code == 400


async def test_session_events_answer_what_v1_answers(harness: Harness) -> None:
    key = await api_key(harness)
    project = harness.project.project_key
    session_id, _ = await record_session(harness)
    events_v1 = await v1(harness, key, f"/{project}/sessions/{session_id}/events")
    path = f"/{project}/sessions/{session_id}/events"
    everything = {**WINDOW, "limit": 200, "page": 1}

    page = await v2_data(harness, key, "POST", path, everything)
    assert page == {"total": len(events_v1), "events": events_v1}
    paged = await v2_data(harness, key, "POST", path, {**everything, "limit": 3, "page": 2})
    assert paged == {"total": len(events_v1), "events": events_v1[3:6]}
    newest = await v2_data(harness, key, "POST", path, {**everything, "sortOrder": "desc"})
    assert newest["events"] == events_v1[::-1]

    clicks = await v2_data(
        harness, key, "POST", path,
        {**everything, "filters": [{"name": "$event_name", "operator": "is", "value": ["CLICK"]}]},
    )  # fmt: skip
    assert clicks["events"] == [e for e in events_v1 if e["type"] == "CLICK"] != []
    slow = await v2_data(
        harness, key, "POST", path,
        {**everything, "filters": [{"name": "status", "operator": ">=", "value": [500]},
                                   {"name": "url", "operator": "contains", "value": ["PAY"]}]},
    )  # fmt: skip
    assert [e["type"] for e in slow["events"]] == ["REQUEST"]
    columns = await v2_data(harness, key, "POST", path, {**everything, "columns": ["label"]})
    assert columns["events"] == [
        {k: e[k] for k in ("sessionId", "messageId", "timestamp", "type", "label") if k in e}
        for e in events_v1
    ]
    late = events_v1[-1]["timestamp"]
    window = {"startTimestamp": late, "endTimestamp": late + 1, "limit": 200, "page": 1}
    assert (await v2_data(harness, key, "POST", path, window))["events"] == [
        e for e in events_v1 if e["timestamp"] == late
    ]
    unknown = await v2_data(harness, key, "POST", f"/{project}/sessions/1/events", everything)
    assert unknown == {"total": 0, "events": []}
    for body in ({}, WINDOW, {**everything, "filters": [{"name": "type", "operator": "near"}]},
                 {**everything, "filters": [{"name": "status", "operator": "<", "value": ["x"]}]},
                 {**everything, "page": 0}):  # fmt: skip
        response = await v2(harness, key, "POST", path, body)
        assert response.status_code == 400 and "error" in response.json(), body
    not_int = await v2(harness, key, "POST", f"/{project}/sessions/abc/events", everything)
    assert not_int.status_code == 400 and not_int.json()["error"].startswith("path.sessionId")


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_assist_answers_what_v1_answers(harness: Harness, prefix: str) -> None:
    key = await api_key(harness)
    project = harness.project.project_key
    ann = await live_session(harness, "Ann", title="Cart", metadata={"plan": "Pro"})
    bob = await live_session(harness, "bob", title="Checkout", metadata={"plan": "free"})
    await projected(harness)
    listed_v1 = await v1(harness, key, f"/{project}/assist/sessions")
    url = f"{prefix}/{project}/assist/sessions"
    listed = await harness.client.get(url, headers=bearer(key))
    assert listed.json()["data"] == listed_v1
    assert [s["sessionID"] for s in listed_v1["sessions"]] == [bob, ann]
    by_user = await harness.client.get(url, headers=bearer(key), params={"userId": "bob"})
    assert [s["sessionID"] for s in by_user.json()["data"]["sessions"]] == [bob]

    async def ids(body: Any) -> list[str]:
        response = await harness.client.post(url, headers=bearer(key), json=body)
        assert response.status_code == 200, response.text
        return [s["sessionID"] for s in response.json()["data"]["sessions"]]

    # v2 spells v1's "type" as "name"; zero values take the defaults; other names are metadata.
    assert await ids({"filters": [{"name": "userId", "operator": "is", "value": ["ann"]}]}) == [ann]
    assert await ids({"filters": [{"name": "plan", "value": ["FREE"]}], "limit": 0}) == [bob]
    assert await ids({"filters": [{"name": "METADATA", "source": "plan", "value": ["pro"]}]}) == [
        ann
    ]
    assert await ids({"order": "asc", "page": 0, "sort": ""}) == [ann, bob]
    assert await ids({"limit": 1, "page": 2}) == [ann]
    bad = await harness.client.post(url, headers=bearer(key), json={"limit": 500})
    assert bad.status_code == 400 and bad.json()["error"].startswith("body.limit")


async def test_unknown_paths_and_bad_json_use_the_v2_envelope(harness: Harness) -> None:
    key = await api_key(harness)
    for prefix in PREFIXES:
        missing = await harness.client.get(f"{prefix}/nothing/here/at/all", headers=bearer(key))
        assert missing.status_code == 404 and set(missing.json()) == {"error"}
        wrong = await harness.client.delete(f"{prefix}/projects", headers=bearer(key))
        assert wrong.status_code == 405 and set(wrong.json()) == {"error"}
    broken = await harness.client.post(
        "/public/projects", headers={**bearer(key), "Content-Type": "application/json"},
        content=b"{not json",
    )  # fmt: skip
    assert broken.status_code == 400 and broken.json()["error"].startswith("body: ")


async def test_real_v2_answers_match_the_described_schemas(harness: Harness) -> None:
    """Answers carrying recorded data fit the OpenAPI description (the fuzzer mostly sees
    empty pages: it cannot record a session)."""
    import jsonschema_rs

    spec = (await harness.client.get("/api/openapi.json")).json()
    key = await api_key(harness)
    project = harness.project.project_key
    session_id, _ = await record_session(harness, user_id="ann")
    await end_all_sessions(harness, T0 + 600_000)
    prefix = "/v2/api/public/{project_key}"
    for method, template, path, body in (
        ("GET", "/v2/api/public/projects", "/projects", None),
        ("POST", f"{prefix}/users", f"/{project}/users", {}),
        ("GET", f"{prefix}/users/{{user_id}}", f"/{project}/users/ann", None),
        ("POST", f"{prefix}/users/{{user_id}}/sessions", f"/{project}/users/ann/sessions", WINDOW),
        (
            "POST",
            f"{prefix}/sessions/{{session_id}}/events",
            f"/{project}/sessions/{session_id}/events",
            {**WINDOW, "limit": 200, "page": 1},
        ),
    ):
        data = await v2_data(harness, key, method, path, body)
        assert data, path  # something real was checked
        reply = spec["paths"][template][method.lower()]["responses"]["200"]
        schema = {**reply["content"]["application/json"]["schema"], **spec}
        validator = jsonschema_rs.validator_for(schema)
        errors = [str(e) for e in validator.iter_errors({"data": data})]
        assert not errors, (path, errors)
