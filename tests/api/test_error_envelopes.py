"""One error envelope per API generation, through a real server (issue 14 point 7).

Everything under ``/api/v1`` answers ``{"errors": ["..."]}`` (unknown routes, wrong methods,
oversized bodies, overload and validation included); everything else, web ingest first,
``{"error": "..."}``.
"""

from __future__ import annotations

import httpx

from api import ingest_web
from api.config import ServerConfig
from tests.api.conftest import Harness, ServerFactory
from tests.api.test_public_v1 import api_key


def v1_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"errors"}, body
    (message,) = body["errors"]
    assert isinstance(message, str) and message
    return message


def plain_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body["error"]


async def test_unknown_routes_and_methods_under_api_v1_answer_the_v1_envelope(
    harness: Harness,
) -> None:
    key = await api_key(harness)
    auth = {"Authorization": key}
    for path in ("/api/v1", "/api/v1/nope", f"/api/v1/{harness.project.project_key}/a/b/c"):
        v1_error(await harness.client.get(path, headers=auth), 404)
    wrong_method = await harness.client.put("/api/v1/projects", headers=auth, json={})
    v1_error(wrong_method, 405)
    assert set(wrong_method.headers["Allow"].split(", ")) >= {"GET", "POST"}
    deleted = await harness.client.delete(f"/api/v1/projects/{harness.project.project_key}")
    v1_error(deleted, 405)
    # Validation and the routes' own errors: the same envelope.
    message = v1_error(await harness.client.get("/api/v1/dead-letters?limit=x", headers=auth), 422)
    assert message.startswith("query.limit: ")
    v1_error(await harness.client.get("/api/v1/projects"), 401)


async def test_other_paths_keep_the_plain_envelope(harness: Harness) -> None:
    for path in ("/nope", "/api/v1x/projects", "/api/v2/projects", "/v1/web/nope"):
        plain_error(await harness.client.get(path), 404)
    plain_error(await harness.client.get("/v1/web/start"), 405)  # POST only
    plain_error(await harness.client.post("/v1/web/i", content=b"x"), 401)


async def test_oversized_bodies_answer_the_envelope_of_their_path(harness: Harness) -> None:
    key = await api_key(harness)
    config = ServerConfig(db_path="unused")  # the defaults the harness runs with
    huge = b"x" * (max(config.beacon_size_limit, config.json_size_limit) + 1)
    headers = {"Authorization": key, "Content-Type": "application/json"}
    v1_error(await harness.client.post("/api/v1/projects", content=huge, headers=headers), 413)
    start = await harness.client.post(
        "/v1/web/start", content=huge, headers={"Content-Type": "application/json"}
    )
    plain_error(start, 413)


async def test_a_full_body_budget_answers_503_in_the_envelope_of_its_path(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(ingest_body_bytes=5000, append_wait_timeout=0.2)
    assert harness.server.app is not None
    key = await api_key(harness)
    bodies = harness.server.app.extensions[ingest_web.EXTENSION_KEY].bodies
    bodies.take(5000)  # another request holds the whole budget
    try:
        created = await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json={"name": "busy"}
        )
        assert v1_error(created, 503) == "server busy, retry later"
        assert int(created.headers["Retry-After"]) >= 1
        started = await harness.start()
        assert plain_error(started, 503) == "server busy, retry later"
    finally:
        bodies.release(5000)
    assert (
        await harness.client.post(
            "/api/v1/projects", headers={"Authorization": key}, json={"name": "busy"}
        )
    ).status_code == 200
