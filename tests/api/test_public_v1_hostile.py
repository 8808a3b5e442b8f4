"""Hostile requests to the public API v1 through a real server: each answers a clear 4xx.

Every test here reproduces a request that once answered 500 or was accepted wrongly (issue 8), and
checks that the server still serves normally afterwards.
"""

from __future__ import annotations

from typing import Any

import httpx

from api.public_v1_schema import ASSIST_FILTER_TYPES
from tests.api.conftest import Harness
from tests.api.test_public_v1 import api_key, get


async def post(harness: Harness, key: str, path: str, content: bytes) -> httpx.Response:
    return await harness.client.post(
        path, headers={"Authorization": key, "Content-Type": "application/json"}, content=content
    )


async def assert_still_serving(harness: Harness, key: str) -> None:
    listing = await get(harness, key, "/api/v1/projects")
    assert listing.status_code == 200, listing.text


def assert_422(response: httpx.Response, loc: list[str]) -> str:
    """A 422 in the v1 envelope whose message names the field at ``loc``; returns the message.

    (Issue 14 point 7: this was FastAPI's ``{"detail": [{"loc": ...}]}``.)
    """
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"errors"}, body
    (message,) = body["errors"]
    assert message.startswith(".".join(loc) + ": "), message
    return message


async def test_deeply_nested_assist_search_is_422(harness: Harness) -> None:
    key = await api_key(harness)
    path = f"/api/v1/{harness.project.project_key}/assist/sessions"
    for depth in (100_000, 990):  # past the parser's recursion limit, and just below it
        nested = b"[" * depth + b"]" * depth
        assert_422(await post(harness, key, path, nested), ["body"])
        as_filter = b'{"filters": [{"type": "userId", "value": ' + nested + b"}]}"
        response = await post(harness, key, path, as_filter)
        assert response.status_code == 422, response.text
    await assert_still_serving(harness, key)


async def test_non_utf8_json_is_422(harness: Harness) -> None:
    key = await api_key(harness)
    response = await post(harness, key, "/api/v1/projects", '{"name": "caf\xe9"}'.encode("latin-1"))
    assert_422(response, ["body"])
    search = await post(
        harness, key, f"/api/v1/{harness.project.project_key}/assist/sessions", b'{"sort": "\xff"}'
    )
    assert_422(search, ["body"])
    await assert_still_serving(harness, key)


async def test_out_of_range_dates_are_422(harness: Harness) -> None:
    key = await api_key(harness)
    path = f"/api/v1/{harness.project.project_key}/users/ann/sessions"
    for name in ("start_date", "end_date"):
        for value in ("-99999999999999999999", str(2**63)):
            assert_422(await get(harness, key, path, **{name: value}), ["query", name])
    # The int64 bounds themselves are fine.
    edge = await get(harness, key, path, start_date=str(-(2**63)), end_date=str(2**63 - 1))
    assert (edge.status_code, edge.json()) == (200, {"data": []})
    await assert_still_serving(harness, key)


async def test_broken_project_body_is_422_and_creates_nothing(harness: Harness) -> None:
    key = await api_key(harness)
    before = harness.server.catalog.list_projects()
    for body in (b"{bad", b'{"name": "x"', b"nul\x00l"):
        assert_422(await post(harness, key, "/api/v1/projects", body), ["body"])
    assert harness.server.catalog.list_projects() == before
    # An empty body still creates the default project (as the reference does).
    created = await post(harness, key, "/api/v1/projects", b"")
    assert created.status_code == 200 and created.json()["data"]["name"] == "my first project"


async def test_project_name_length_is_capped(harness: Harness) -> None:
    key = await api_key(harness)
    before = harness.server.catalog.list_projects()
    for name in ("a" * 100_000, "a" * 201, "a" + " " * 200):
        response = await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json={"name": name}
        )
        message = assert_422(response, ["body", "name"])
        assert "at most 200 characters" in message
        assert len(response.content) < 2_000  # the oversized input is not echoed back whole
    assert harness.server.catalog.list_projects() == before
    longest = await harness.client.post(
        "/api/v1/projects", headers={"Authorization": key}, json={"name": "b" * 200}
    )
    assert longest.status_code == 200 and longest.json()["data"]["name"] == "b" * 200


async def test_project_names_with_control_characters_are_422(harness: Harness) -> None:
    key = await api_key(harness)
    for name in ("abc\n", "\tabc", "   "):
        response = await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json={"name": name}
        )
        assert_422(response, ["body", "name"])


async def test_unknown_assist_operator_is_422(harness: Harness) -> None:
    key = await api_key(harness)
    path = f"/api/v1/{harness.project.project_key}/assist/sessions"
    for operator in ("startsWith", "", "IS "):
        body: dict[str, Any] = {
            "filters": [{"type": "userId", "value": ["ann"], "operator": operator}]
        }
        response = await harness.client.post(path, headers={"Authorization": key}, json=body)
        assert_422(response, ["body", "filters", "0", "operator"])
    for accepted in ("is", "contains", None):
        body = {"filters": [{"type": "userId", "value": ["ann"], "operator": accepted}]}
        response = await harness.client.post(path, headers={"Authorization": key}, json=body)
        assert response.status_code == 200, (accepted, response.text)


async def test_falsy_non_default_assist_fields_are_422(harness: Harness) -> None:
    key = await api_key(harness)
    path = f"/api/v1/{harness.project.project_key}/assist/sessions"
    for body, loc in (
        ({"filters": ""}, ["body", "filters"]),
        ({"filters": 0}, ["body", "filters"]),
        ({"order": ""}, ["body", "order"]),
        ({"page": False}, ["body", "page"]),
    ):
        response = await harness.client.post(path, headers={"Authorization": key}, json=body)
        assert_422(response, loc)


async def test_unknown_assist_filter_types_are_422(harness: Harness) -> None:
    """Issue 14 point 7: an unknown filter type answered 200 with nothing found."""
    key = await api_key(harness)
    path = f"/api/v1/{harness.project.project_key}/assist/sessions"
    for kind in ("userName", "user_id", "metadata.plan", "x" * 10_000):
        body: dict[str, Any] = {"filters": [{"type": "userId", "value": ["a"]}, {"type": kind}]}
        response = await harness.client.post(path, headers={"Authorization": key}, json=body)
        message = assert_422(response, ["body", "filters", "1", "type"])
        assert "Unknown filter type" in message and "userBrowser" in message  # lists the known
        assert len(response.content) < 2_000
    # A metadata filter names its key in source.
    for source in (None, ""):
        body = {"filters": [{"type": "metadata", "source": source, "value": ["x"]}]}
        response = await harness.client.post(path, headers={"Authorization": key}, json=body)
        assert_422(response, ["body", "filters", "0", "source"])
    # Every known type, in both of the reference's spellings, is accepted.
    for kind in ASSIST_FILTER_TYPES:
        for spelled in (kind, kind.upper()):
            body = {"filters": [{"type": spelled, "value": ["x"], "source": "plan"}]}
            response = await harness.client.post(path, headers={"Authorization": key}, json=body)
            assert response.status_code == 200, (spelled, response.text)
    await assert_still_serving(harness, key)
