"""Session search through a real server: ``POST /api/v1/:projectKey/sessions/search``.

Sessions with known attributes and event sequences are recorded as a tracker records them
(``/v1/web/start`` from a client address and browser of our choosing, then batches of the real
codec), and found (or not) by each filter type and operator, by ``then`` order, by combinations;
paging and sort hold; a key never sees another organization's sessions; bad payloads are 422s
naming the field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from engine.codec.mobile_messages import MobileCrash, encode_message
from tests.api.conftest import T0, Harness, ServerFactory, start_body
from tests.api.test_ingest_mobile import DEVICE_TS, ios_start_body, mobile_project, post_batch
from tests.api.test_mobile_sessions import _session as mobile_session
from tests.api.test_openapi import spec_of
from tests.api.test_public_v1 import (
    api_key,
    end_all_sessions,
    projected,
    second_organization,
)
from tests.engine.builders import SessionScript

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
WINDOW = {"startTimestamp": T0 - 60_000, "endTimestamp": T0 + 3_600_000}


async def record(
    harness: Harness, *, at: int, ip: str, agent: str, user_id: str | None, script: Any
) -> str:
    """Start a session at ``at`` from ``ip`` with browser ``agent``; ``script(s)`` adds its
    messages (one batch). Returns the session id."""
    harness.clock.now = at
    response = await harness.client.post(
        "/v1/web/start",
        content=json.dumps(start_body(harness.project.project_key, userID=user_id, timestamp=at)),
        headers={
            "Content-Type": "application/json",
            "User-Agent": agent,
            "X-Forwarded-For": ip,
        },
    )
    assert response.status_code == 200, response.text
    start = response.json()
    s = SessionScript(int(start["sessionID"]), start_ms=at)
    script(s)
    batch = s.batch()
    uploaded = await harness.upload(start["token"], batch.payload, batch="0_1_100_kyes")
    assert uploaded.status_code == 200, uploaded.text
    return str(start["sessionID"])


def _ann(s: SessionScript) -> None:
    s.visit("https://shop.test/home?utm_source=news&utm_medium=mail&utm_campaign=spring")
    s.anonymous_id("anon-a")
    s.metadata("plan", "pro")
    s.wait(100)
    s.click("Add to cart", selector="#add")
    s.wait(100)
    s.visit("https://shop.test/cart")
    s.input("email", "a@b.c")
    s.request("https://api.shop.test/pay?x=1", status=502, method="POST", duration=800)
    s.js_exception("TypeError", "x is undefined")
    s.custom_event("checkout")
    s.state_action("cart/add")
    s.graphql("GetCart")
    s.wait(1_000)


def _bob(s: SessionScript) -> None:
    s.visit("https://shop.test/cart")
    s.wait(100)
    s.click("Add to cart", selector="div.product > button")
    s.request("https://api.shop.test/pay", status=200, duration=40)
    s.js_exception("RangeError", "Invalid array length")
    s.wait(5_000)


def _cat(s: SessionScript) -> None:
    s.visit("https://shop.test/home")
    s.click("100% off_sale")
    s.issue_event("dead_click", context_string="100% off_sale")
    s.wait(20_000)


@pytest.fixture
async def shop(server_factory: ServerFactory) -> tuple[Harness, str, dict[str, str]]:
    """A server with sessions ann (DE, Chrome), bob (US, Firefox), cat (GB, Chrome, no user):
    ``(harness, api key, name -> session id)``."""
    harness = await server_factory(trust_x_forwarded_for=True)
    ids = {
        "ann": await record(harness, at=T0, ip="5.9.0.1", agent=CHROME, user_id="ann",
                            script=_ann),
        "bob": await record(harness, at=T0 + 1_000, ip="8.8.8.8", agent=FIREFOX, user_id="bob",
                            script=_bob),
        "cat": await record(harness, at=T0 + 2_000, ip="81.2.69.142", agent=CHROME, user_id=None,
                            script=_cat),
    }  # fmt: skip
    await end_all_sessions(harness, T0 + 3_000_000)
    return harness, await api_key(harness), ids


async def search(harness: Harness, key: str, body: Any, project_key: str | None = None) -> Any:
    response = await harness.client.post(
        f"/api/v1/{project_key or harness.project.project_key}/sessions/search",
        headers={"Authorization": key},
        content=json.dumps(body),
    )
    return response


async def found(shop: tuple[Harness, str, dict[str, str]], body: dict[str, Any]) -> set[str]:
    harness, key, ids = shop
    response = await search(harness, key, {**WINDOW, **body})
    assert response.status_code == 200, (body, response.text)
    data = response.json()["data"]
    names = {v: k for k, v in ids.items()}
    got = {names[s["sessionId"]] for s in data["sessions"]}
    assert data["total"] == len(got), body
    return got


def f(type_: str, value: Any = None, operator: str | None = None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, **more}
    if value is not None:
        out["value"] = value if isinstance(value, list) else [value]
    if operator is not None:
        out["operator"] = operator
    return out


async def test_the_session_object(shop: tuple[Harness, str, dict[str, str]]) -> None:
    import jsonschema_rs

    harness, key, ids = shop
    response = await search(harness, key, {**WINDOW, "filters": [f("userId", "ann")]})
    assert response.status_code == 200, response.text
    [ann] = response.json()["data"]["sessions"]
    assert ann["sessionId"] == ids["ann"] and ann["projectId"] == harness.project.project_id
    assert (ann["userId"], ann["userAnonymousId"], ann["userCountry"]) == ("ann", "anon-a", "DE")
    assert (ann["userBrowser"], ann["userDeviceType"], ann["platform"]) == (
        "Chrome",
        "desktop",
        "web",
    )
    assert (ann["utmSource"], ann["utmMedium"], ann["utmCampaign"]) == ("news", "mail", "spring")
    assert ann["metadata"] == {"plan": "pro"}
    assert ann["pagesCount"] == 2 and ann["errorsCount"] == 1 and ann["startTs"] == T0
    assert ann["duration"] > 0 and ann["favorite"] is False
    spec = await spec_of(harness)
    path = spec["paths"]["/api/v1/{project_key}/sessions/search"]["post"]
    schema = {**path["responses"]["200"]["content"]["application/json"]["schema"], **spec}
    errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(response.json())]
    assert not errors, errors


SESSION_FILTERS: list[tuple[list[dict[str, Any]], set[str]]] = [
    ([], {"ann", "bob", "cat"}),
    ([f("userBrowser", "Chrome")], {"ann", "cat"}),
    ([f("userBrowser", "chrome")], set()),  # is: case-sensitive
    ([f("userBrowser", "chrome", "contains")], {"ann", "cat"}),  # contains: any case
    ([f("userBrowser", "FIRE", "startsWith")], {"bob"}),
    ([f("userBrowser", "fox", "endsWith")], {"bob"}),
    ([f("userBrowser", ["Chrome", "Firefox"], "isNot")], set()),  # isNot: values AND-ed
    ([f("userBrowser", "rom", "notContains")], {"bob"}),
    ([f("userCountry", ["DE", "US"])], {"ann", "bob"}),
    ([f("userCountry", "GB", "isNot")], {"ann", "bob"}),
    ([f("userId", "ann")], {"ann"}),
    ([f("userId", operator="isAny")], {"ann", "bob"}),
    ([f("userId", operator="isUndefined")], {"cat"}),
    ([f("userIdIos", "bob")], {"bob"}),  # the mobile spelling of the same filter
    ([f("USERID", "bob")], {"bob"}),  # the pre-1.10 spelling
    ([f("userAnonymousId", "anon-a")], {"ann"}),
    ([f("userOs", "Linux")], {"ann", "bob", "cat"}),
    ([f("userDeviceType", "desktop")], {"ann", "bob", "cat"}),
    ([f("platform", "mobile")], set()),
    ([f("revId", "rev-1")], {"ann", "bob", "cat"}),
    ([f("referrer", operator="isUndefined")], {"ann", "bob", "cat"}),
    ([f("utmSource", "news")], {"ann"}),
    ([f("utmCampaign", "SPR", "startsWith")], {"ann"}),
    ([f("utmMedium", operator="isAny")], {"ann"}),
    ([f("metadata", "pro", source="plan")], {"ann"}),
    ([f("metadata", "pro", "isNot", source="plan")], {"bob", "cat"}),
    ([f("issue", "dead_click")], {"cat"}),
    ([f("issue", "dead_click", "isNot")], {"ann", "bob"}),
    ([f("issue", operator="isAny"), f("userCountry", "GB")], {"cat"}),
    ([f("eventsCount", 3, ">=")], {"ann", "bob", "cat"}),
    ([f("pagesCount", 2, "=")], {"ann"}),
    ([f("errorsCount", 0, ">")], {"ann", "bob"}),
    # Combinations: AND-ed.
    ([f("userBrowser", "Chrome"), f("userCountry", "DE")], {"ann"}),
    ([f("userBrowser", "Chrome"), f("userId", operator="isAny")], {"ann"}),
]


@pytest.mark.parametrize(("filters", "expected"), SESSION_FILTERS)
async def test_session_filters(
    shop: tuple[Harness, str, dict[str, str]], filters: list[dict[str, Any]], expected: set[str]
) -> None:
    assert await found(shop, {"filters": filters}) == expected


async def test_duration_range(shop: tuple[Harness, str, dict[str, str]]) -> None:
    harness, key, ids = shop
    data = (await search(harness, key, WINDOW)).json()["data"]
    names = {v: k for k, v in ids.items()}
    durations = {names[s["sessionId"]]: s["duration"] for s in data["sessions"]}
    values = sorted(set(durations.values()))
    assert len(values) > 1, durations  # the ranges below tell sessions apart
    for low, high in [(values[0], values[0]), (values[1], None), (None, values[-2]), (0, None)]:
        expected = {
            n for n, d in durations.items()
            if (low is None or d >= low) and (high is None or d <= high)
        }  # fmt: skip
        assert await found(shop, {"filters": [f("duration", [low, high])]}) == expected


EVENT_FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({"filters": [f("click", "Add to cart")]}, {"ann", "bob"}),
    ({"filters": [f("click", "add to", "contains")]}, {"ann", "bob"}),
    ({"filters": [f("click", "100%", "startsWith")]}, {"cat"}),  # % is no wildcard
    ({"filters": [f("click", "f_sale", "endsWith")]}, {"cat"}),
    ({"filters": [f("click", "Add to cart", "isNot")]}, {"cat"}),
    ({"filters": [f("click", "add", "notContains")]}, {"cat"}),
    ({"filters": [f("click", operator="isAny")]}, {"ann", "bob", "cat"}),
    ({"filters": [f("click", "#add", "selectorIs")]}, {"ann"}),
    ({"filters": [f("click", "button", "selectorContains")]}, {"bob"}),
    ({"filters": [f("click", "Add to cart", "on")]}, {"ann", "bob"}),  # 3.4's other spelling
    ({"filters": [f("input", "email")]}, {"ann"}),
    ({"filters": [f("input", "email", source=["a@b.c"])]}, {"ann"}),
    ({"filters": [f("input", "email", source=["nope"])]}, set()),
    ({"filters": [f("location", "/home")]}, {"ann", "cat"}),
    ({"filters": [f("location", "/cart")]}, {"ann", "bob"}),
    ({"filters": [f("location", "CART", "contains")]}, {"ann", "bob"}),
    ({"filters": [f("custom", "checkout")]}, {"ann"}),
    ({"filters": [f("request", "/pay")]}, {"ann", "bob"}),  # the path, not the whole URL
    (
        {"filters": [f("request", "/pay", filters=[f("status", 500, ">=")])]},
        {"ann"},
    ),
    (
        {"filters": [f("request", "/pay", filters=[f("fetchMethod", "POST")])]},
        {"ann"},
    ),
    (
        {"filters": [f("request", "/pay", filters=[f("duration", 100, "<")])]},
        {"bob"},
    ),
    # Both properties of one request: bob's request is fast but not a 5xx.
    (
        {
            "filters": [
                f(
                    "request",
                    operator="isAny",
                    filters=[f("status", 500, ">="), f("duration", 100, "<")],
                )
            ]
        },
        set(),
    ),
    ({"filters": [f("graphql", "GetCart")]}, {"ann"}),
    ({"filters": [f("stateAction", "cart/add")]}, {"ann"}),
    ({"filters": [f("error", "TypeError")]}, {"ann"}),  # by name
    ({"filters": [f("error", "Invalid array length")]}, {"bob"}),  # or by message
    ({"filters": [f("error", "undefined", "contains")]}, {"ann"}),
    ({"filters": [f("error", "x", source=["js_exception"])]}, set()),
    ({"filters": [f("error", operator="isAny", source=["js_exception"])]}, {"ann", "bob"}),
    # then: in this order within the session; and: all; or: any.
    ({"filters": [f("click", "Add to cart"), f("location", "/cart")]}, {"ann"}),
    ({"filters": [f("location", "/cart"), f("click", "Add to cart")]}, {"bob"}),
    (
        {"filters": [f("location", "/home"), f("click", operator="isAny"), f("location", "/cart")]},
        {"ann"},
    ),
    (
        {"eventsOrder": "and", "filters": [f("location", "/cart"), f("click", "Add to cart")]},
        {"ann", "bob"},
    ),
    (
        {"eventsOrder": "or", "filters": [f("custom", "checkout"), f("click", "100% off_sale")]},
        {"ann", "cat"},
    ),
    (
        {"eventsOrder": "OR", "filters": [f("click", "Add to cart", "isNot"), f("custom", "x")]},
        {"cat"},
    ),
    # Session and event filters together.
    ({"filters": [f("userCountry", "US"), f("location", "/cart")]}, {"bob"}),
    (
        {"filters": [f("userBrowser", "Chrome"), f("userCountry", "DE"), f("error", "TypeError")]},
        {"ann"},
    ),
    ({"filters": [f("userCountry", "US"), f("error", "TypeError")]}, set()),
]


@pytest.mark.parametrize(("body", "expected"), EVENT_FILTERS)
async def test_event_filters(
    shop: tuple[Harness, str, dict[str, str]], body: dict[str, Any], expected: set[str]
) -> None:
    assert await found(shop, body) == expected


async def test_paging_and_sort(shop: tuple[Harness, str, dict[str, str]]) -> None:
    harness, key, ids = shop
    by_id = {v: k for k, v in ids.items()}

    async def names(**body: Any) -> tuple[int, list[str]]:
        response = await search(harness, key, {**WINDOW, **body})
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        return data["total"], [by_id[s["sessionId"]] for s in data["sessions"]]

    assert await names() == (3, ["cat", "bob", "ann"])  # default: startTs DESC
    assert await names(sort="startTs", order="asc") == (3, ["ann", "bob", "cat"])
    assert await names(sort="datetime", order="ASC") == (3, ["ann", "bob", "cat"])
    assert await names(sort="userCountry", order="asc") == (3, ["ann", "cat", "bob"])
    assert await names(sort="user_country", order="desc") == (3, ["bob", "cat", "ann"])
    assert (await names(sort="eventsCount"))[1][0] == "ann"
    pages = [await names(sort="startTs", order="asc", limit=2, page=p) for p in (1, 2, 3)]
    assert pages == [(3, ["ann", "bob"]), (3, ["cat"]), (3, [])]
    # The window bounds the start.
    assert await names(startTimestamp=T0 + 500, endTimestamp=T0 + 1_500) == (1, ["bob"])


async def test_mobile_event_filters(harness: Harness) -> None:
    ios = await mobile_project(harness, "ios")
    session_id, token = await mobile_session(
        harness, ios_start_body(ios.project_key), "App/1 CFNetwork/1410 Darwin/22.6.0", "ann"
    )  # taps "Login" then "Pay"
    await end_all_sessions(harness, T0 + 600_000)
    # The next app start sends the previous run's crash (as in test_mobile_sessions).
    harness.clock.now = T0 + 600_000
    crash = encode_message(MobileCrash(DEVICE_TS + 960, "SIGABRT", "abort", "#0 main"))
    response = await post_batch(harness, token, crash, path="/v1/mobile/late")
    assert response.status_code == 200, response.text
    await end_all_sessions(harness, T0 + 1_200_000)
    key = await api_key(harness)
    window = {"startTimestamp": DEVICE_TS - 60_000, "endTimestamp": DEVICE_TS + 3_600_000}
    for filters, hit in (
        ([f("tap", "Login"), f("tap", "Pay")], True),
        ([f("tap", "Pay"), f("tap", "Login")], False),
        ([f("clickMobile", "Pay")], True),
        ([f("crash", "SIGABRT")], True),
        ([f("crash", "abort")], True),  # the reason
        ([f("swipe", operator="isAny")], False),
        ([f("userId", "ann"), f("tap", "log", "startsWith")], True),
    ):
        response = await search(harness, key, {**window, "filters": filters}, ios.project_key)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert [s["sessionId"] for s in data["sessions"]] == ([session_id] if hit else []), filters


async def test_a_key_never_sees_another_organizations_sessions(
    shop: tuple[Harness, str, dict[str, str]],
) -> None:
    harness, mine, _ids = shop
    other_key, their_project = await trio.to_thread.run_sync(second_organization, harness)
    response = await search(harness, other_key, WINDOW)
    assert (response.status_code, response.json()) == (404, {"errors": ["project not found."]})
    theirs = await search(harness, other_key, WINDOW, their_project)
    assert theirs.status_code == 200 and theirs.json()["data"] == {"total": 0, "sessions": []}
    assert (await search(harness, mine, WINDOW, their_project)).status_code == 404
    missing = await harness.client.post(
        f"/api/v1/{harness.project.project_key}/sessions/search", json=WINDOW
    )
    assert missing.status_code == 401


async def test_live_sessions_are_not_searched(harness: Harness) -> None:
    key = await api_key(harness)
    await record(harness, at=T0, ip="5.9.0.1", agent=CHROME, user_id="ann", script=_cat)
    await projected(harness)
    assert (await search(harness, key, WINDOW)).json()["data"]["total"] == 0
    await end_all_sessions(harness, T0 + 3_000_000)
    assert (await search(harness, key, WINDOW)).json()["data"]["total"] == 1


INVALID: list[tuple[Any, str]] = [
    ([], "body: Input should be a valid object"),
    ({"limit": 0}, "body.limit: "),
    ({"limit": 201}, "body.limit: "),
    ({"page": 0}, "body.page: "),
    ({"page": "2"}, "body.page: "),
    ({"order": "up"}, "body.order: "),
    ({"eventsOrder": "later"}, "body.eventsOrder: "),
    ({"sort": "password"}, "body.sort: Unknown sort 'password'"),
    ({"startTimestamp": 10, "endTimestamp": 5}, "body.endTimestamp: "),
    ({"startTimestamp": 2**64}, "body.startTimestamp: "),
    ({"filters": {}}, "body.filters: "),
    ({"filters": ["userId"]}, "body.filters.0: "),
    ({"filters": [{"value": ["a"]}]}, "body.filters.0.type: Field required"),
    ({"filters": [f("userId", "a"), f("nope", "a")]}, "body.filters.1.type: Unknown filter type"),
    ({"filters": [f("userId", "a", "like")]}, "body.filters.0.operator: Unknown operator 'like'"),
    ({"filters": [f("userId", [{"a": 1}])]}, "body.filters.0.value.0: "),
    ({"filters": [f("eventsCount", "x", ">")]}, "body.filters.0.value.0: "),
    ({"filters": [f("eventsCount", 1, "contains")]}, "body.filters.0.operator: "),
    ({"filters": [f("duration", [5, 1])]}, "body.filters.0.value: min is greater than max"),
    ({"filters": [f("duration", [1, 2, 3])]}, "body.filters.0.value: "),
    ({"filters": [f("metadata", "pro")]}, "body.filters.0.source: "),
    ({"filters": [f("location", "/", "selectorIs")]}, "body.filters.0.operator: "),
    (
        {"filters": [f("request", "/", filters=[f("colour", "red")])]},
        "body.filters.0.filters.0.type: request events have no property 'colour'",
    ),
    ({"filters": [f("userId", "a", isEvent="yes")]}, "body.filters.0.isEvent: "),
    ({"filters": [f("userId", ["a"] * 101)]}, "body.filters.0.value: At most 100 values"),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
async def test_invalid_payloads_are_422_naming_the_field(
    harness: Harness, body: Any, message: str
) -> None:
    key = await api_key(harness)
    response = await search(harness, key, body)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error.startswith(message), error


async def test_no_body_and_malformed_json(harness: Harness) -> None:
    key = await api_key(harness)
    url = f"/api/v1/{harness.project.project_key}/sessions/search"
    empty = await harness.client.post(url, headers={"Authorization": key})
    assert empty.status_code == 200 and empty.json()["data"] == {"total": 0, "sessions": []}
    broken = await harness.client.post(url, headers={"Authorization": key}, content=b"{")
    assert broken.status_code == 422 and broken.json()["errors"][0].startswith("body: JSON")


async def test_other_methods_are_405_not_a_session_named_search(harness: Harness) -> None:
    key = await api_key(harness)
    url = f"/api/v1/{harness.project.project_key}/sessions/search"
    response = await harness.client.get(url, headers={"Authorization": key})
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert "errors" in response.json()


async def test_v2_search_answers_what_v1_answers(shop: tuple[Harness, str, dict[str, str]]) -> None:
    """``/public/:projectKey/sessions/search`` (and under ``/v2/api``) is v1's handler with v2's
    Bearer key and envelope: the same page of sessions; a bad field is a 400 naming it."""
    harness, key, _ = shop
    body = {**WINDOW, "filters": [f("userBrowser", ["Chrome"], "is")], "sort": "startTs"}
    v1 = (await search(harness, key, body)).json()["data"]
    assert v1["total"] == 2
    project = harness.project.project_key
    for prefix in ("/public", "/v2/api/public"):
        v2 = await harness.client.post(
            f"{prefix}/{project}/sessions/search",
            headers={"Authorization": f"Bearer {key}"},
            content=json.dumps(body),
        )
        assert v2.status_code == 200, v2.text
        assert v2.json()["data"] == v1
    bad = await harness.client.post(
        f"/public/{project}/sessions/search",
        headers={"Authorization": f"Bearer {key}"},
        content=json.dumps({"filters": [{"type": "userBrowser", "operator": "like"}]}),
    )
    assert bad.status_code == 400 and "operator" in bad.json()["error"]
    bare = await harness.client.post(
        f"/public/{project}/sessions/search", headers={"Authorization": key}, content="{}"
    )
    assert (bare.status_code, bare.content) == (401, b"")
