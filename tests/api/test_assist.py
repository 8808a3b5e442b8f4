"""Assist live sessions through a real server: list and search with filters, sort and paging.

Sessions are started and fed the way a tracker does it (``/v1/web/start`` + encoder-made batches);
the engine keeps the live-session objects current and the routes read them.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from api.public_v1_schema import ASSIST_FILTER_TYPES
from storage.catalog import DEFAULT_ORG_ID
from tests.api.conftest import T0, Harness
from tests.api.test_public_v1 import end_all_sessions, projected
from tests.engine.builders import SessionScript


async def api_key(harness: Harness) -> str:
    return await trio.to_thread.run_sync(
        lambda: harness.server.catalog.create_api_key(DEFAULT_ORG_ID)
    )


async def live_session(
    harness: Harness, user_id: str | None, *, title: str, metadata: dict[str, str]
) -> str:
    """Start a session, visit a page and set metadata; return its id."""
    start = await harness.started(userID=user_id)
    script = SessionScript(int(start["sessionID"]), start_ms=T0)
    script.visit(f"https://shop.test/{title.lower()}", title=title)
    for key, value in metadata.items():
        script.metadata(key, value)
    batch = script.batch()
    response = await harness.upload(start["token"], batch.payload, batch="0_1")
    assert response.status_code == 200, response.text
    harness.clock.now += 1_000  # newer sessions start later
    return start["sessionID"]


async def search(harness: Harness, key: str, body: Any) -> httpx.Response:
    return await harness.client.post(
        f"/api/v1/{harness.project.project_key}/assist/sessions",
        headers={"Authorization": key},
        json=body,
    )


async def test_list_and_search_live_sessions(harness: Harness) -> None:
    key = await api_key(harness)
    ann = await live_session(harness, "Ann", title="Cart", metadata={"plan": "Pro"})
    bob = await live_session(harness, "bob", title="Checkout", metadata={"plan": "free"})
    anon = await live_session(harness, None, title="Home", metadata={})
    await projected(harness)
    base = f"/api/v1/{harness.project.project_key}/assist/sessions"

    listed = (await harness.client.get(base, headers={"Authorization": key})).json()["data"]
    assert listed["total"] == 3
    assert [s["sessionID"] for s in listed["sessions"]] == [anon, bob, ann]  # newest first
    first = listed["sessions"][2]
    assert (first["userID"], first["pageTitle"], first["live"], first["metadata"]) == (
        "Ann", "Cart", True, {"plan": "Pro"},
    )  # fmt: skip
    assert first["projectKey"] == harness.project.project_key
    assert first["userBrowser"] == "Chrome" and first["timestamp"] == T0

    by_user = await harness.client.get(
        base, headers={"Authorization": key}, params={"userId": "bob"}
    )
    assert [s["sessionID"] for s in by_user.json()["data"]["sessions"]] == [bob]

    # Names and values are case-insensitive; "is" = equality, default = substring.
    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [s["sessionID"] for s in response.json()["data"]["sessions"]]

    assert ids(await search(harness, key, {"filters": [{"type": "USERID", "value": ["ann"]}]})) == [
        ann
    ]
    assert (
        ids(
            await search(
                harness, key, {"filters": [{"type": "userId", "value": "an", "operator": "is"}]}
            )
        )
        == []
    )
    assert ids(
        await search(
            harness,
            key,
            {"filters": [{"type": "metadata", "source": "plan", "value": ["PRO", "fre"]}]},
        )
    ) == [bob, ann]
    # An empty value list means "has the attribute".
    assert ids(await search(harness, key, {"filters": [{"type": "userId", "value": []}]})) == [
        bob,
        ann,
    ]
    # Sort, order and paging.
    assert ids(await search(harness, key, {"order": "asc", "limit": 2})) == [ann, bob]
    assert ids(await search(harness, key, {"order": "ASC", "limit": 2, "page": 2})) == [anon]
    assert ids(await search(harness, key, {"sort": "pageTitle", "order": "ASC"})) == [
        ann,
        bob,
        anon,
    ]
    total = (await search(harness, key, {"limit": 1})).json()["data"]["total"]
    assert total == 3
    no_body = await harness.client.post(base, headers={"Authorization": key})
    assert no_body.json()["data"]["total"] == 3

    # Ended sessions leave the list.
    await end_all_sessions(harness, T0 + 600_000)
    assert (await search(harness, key, {})).json()["data"] == {
        "total": 0,
        "sessions": [],
        "counter": {},  # issue 14 point 8: the answer has a counter now
    }


async def test_bad_search_bodies_are_422_and_auth_is_required(harness: Harness) -> None:
    key = await api_key(harness)
    for body in ({"filters": "x"}, {"filters": [{"value": ["a"]}]}, {"order": "UP"},
                 {"limit": 0}, {"limit": 500}, {"page": 0}, [1, 2]):  # fmt: skip
        response = await search(harness, key, body)
        assert response.status_code == 422, body
        assert set(response.json()) == {"errors"}  # issue 14 point 7: was FastAPI's detail
    broken = await harness.client.post(
        f"/api/v1/{harness.project.project_key}/assist/sessions",
        headers={"Authorization": key, "Content-Type": "application/json"},
        content=b"{nope",
    )
    assert broken.status_code == 422
    assert (await search(harness, "wrong-key", {})).status_code == 401
    missing = await harness.client.post(
        "/api/v1/aaaaaaaaaaaaaaaaaaaa/assist/sessions", headers={"Authorization": key}, json={}
    )
    assert (missing.status_code, missing.json()) == (404, {"errors": ["project not found."]})


async def test_the_answer_counts_matches_per_filter_value(harness: Harness) -> None:
    """Issue 14 point 8: the Assist answer lacked ``counter`` (API.md 4.3)."""
    key = await api_key(harness)
    await live_session(harness, "ann", title="Cart", metadata={"plan": "Pro"})
    await live_session(harness, "anna", title="Cart", metadata={"plan": "free"})
    await live_session(harness, "bob", title="Home", metadata={"plan": "pro"})
    await projected(harness)
    body = {
        "filters": [
            {"type": "userId", "value": ["ann", "bob", "zed"]},  # contains: "ann" is in "anna"
            {"type": "metadata", "source": "plan", "value": ["PRO"], "operator": "is"},
            {"type": "pageTitle", "value": []},  # has the attribute: no value to count
        ],
        "limit": 1,
    }
    data = (await search(harness, key, body)).json()["data"]
    assert data["total"] == 2 and len(data["sessions"]) == 1  # counts are over every page
    assert data["counter"] == {
        "userId": {"ann": 1, "bob": 1, "zed": 0},
        "plan": {"PRO": 2},
        "pageTitle": {},
    }
    nothing = await search(harness, key, {"filters": [{"type": "userId", "value": ["zed"]}]})
    assert nothing.json()["data"] == {"total": 0, "sessions": [], "counter": {"userId": {"zed": 0}}}
    listed = await harness.client.get(
        f"/api/v1/{harness.project.project_key}/assist/sessions",
        headers={"Authorization": key},
        params={"userId": "bob"},
    )
    assert listed.json()["data"]["counter"] == {"userId": {"bob": 1}}


async def test_an_unknown_country_is_un_in_assist_and_in_user_sessions(harness: Harness) -> None:
    """Issue 14 point 8: the same session said "UN" in user sessions and "" in Assist."""
    key = await api_key(harness)
    session_id = await live_session(harness, "ann", title="Cart", metadata={})  # from 127.0.0.1
    await projected(harness)
    base = f"/api/v1/{harness.project.project_key}"
    listed = await harness.client.get(f"{base}/assist/sessions", headers={"Authorization": key})
    (live,) = listed.json()["data"]["sessions"]
    (recorded,) = (
        await harness.client.get(f"{base}/users/ann/sessions", headers={"Authorization": key})
    ).json()["data"]
    assert live["sessionID"] == recorded["sessionId"] == session_id
    assert live["userCountry"] == recorded["userCountry"] == "UN"
    # And a filter on it finds the session.
    found = await search(harness, key, {"filters": [{"type": "userCountry", "value": ["un"]}]})
    assert found.json()["data"]["total"] == 1


async def test_every_known_filter_type_finds_the_session_it_describes(harness: Harness) -> None:
    """Each accepted type (issue 14 point 7: the others are 422) names a field of the live
    object, so that a filter on the session's own value finds it."""
    key = await api_key(harness)
    await live_session(harness, "ann", title="Cart", metadata={"plan": "Pro"})
    await projected(harness)
    (live,) = (
        await harness.client.get(
            f"/api/v1/{harness.project.project_key}/assist/sessions",
            headers={"Authorization": key},
        )
    ).json()["data"]["sessions"]
    by_name = {name.lower(): value for name, value in live.items()}
    checked = []
    for kind in ASSIST_FILTER_TYPES:
        if kind == "metadata":
            flt: dict[str, Any] = {"type": kind, "source": "plan", "value": ["pro"]}
        else:
            value = by_name["userdevicetype" if kind == "platform" else kind.lower()]
            if value in ("", None):
                continue  # nothing to find by (no device name from a desktop browser, ...)
            flt = {"type": kind, "value": [str(value).lower()], "operator": "is"}
        found = await search(harness, key, {"filters": [flt]})
        assert found.json()["data"]["total"] == 1, (kind, flt)
        checked.append(kind)
    assert len(checked) >= 12, checked
