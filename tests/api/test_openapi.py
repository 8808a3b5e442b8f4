"""The OpenAPI description (``GET /api/openapi.json``) and schemathesis against a real server.

The schemathesis run fuzzes every described operation of a running replayd (a project, an org API
key and a valid session token are set up first) and fails on any 5xx, transport error, timeout or
answer the description does not allow (status, content type, headers, body schema), on invalid
input that is accepted, and on a route that ignores its authentication. Its JUnit report is read
back to check that every operation was actually exercised: none may be skipped silently.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import trio

from api.openapi import OPENAPI_PATH
from storage.records import RecordKind
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_public_v1 import api_key, end_all_sessions, record_session

# Endpoints of the app that are deliberately not in the description: the dashboard's pages,
# static files and /auth/* (a browser's, not an API client's).
UNDESCRIBED_ENDPOINTS = {
    f"dashboard.{name}"
    for name in (
        "projects_page",
        "login_page",
        "sessions_page",
        "live_page",
        "session_page",
        "login",
        "logout",
        "me",
        "static_file",
    )
} | {
    # Only answers 405 (Allow: POST) for the search path's other methods, which the session
    # route would otherwise take for a session id "search".
    "public_v1_search.search_other_methods",
}
# Bounded run: examples per operation, seconds per request, seconds for the whole run.
MAX_EXAMPLES = 40
REQUEST_TIMEOUT_S = 5
RUN_TIMEOUT_S = 240
SEED = 8  # fixed: a CI failure can be replayed exactly
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
)


async def spec_of(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get(OPENAPI_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def operations_of(spec: dict[str, Any]) -> set[str]:
    return {op["operationId"] for item in spec["paths"].values() for op in item.values()}


async def test_every_route_is_described(harness: Harness) -> None:
    spec = await spec_of(harness)
    assert spec["openapi"].startswith("3.")
    app = harness.server.app
    assert app is not None
    described = {op_id.rsplit(".", 1)[0] for op_id in operations_of(spec)}
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    # A new route must be decorated with api.openapi.operation (or listed above, with a reason).
    assert endpoints - UNDESCRIBED_ENDPOINTS == described
    paths = spec["paths"]
    for prefix in ("", "/ingest"):
        for route in ("start", "i", "tags", "not-started", "feature-flags", "images"):
            assert f"{prefix}/v1/web/{route}" in paths
        assert f"{prefix}/v1/web/conditions/{{project_id}}" in paths
        for route in ("mobile/start", "mobile/i", "mobile/late", "ios/start", "ios/append"):
            assert f"{prefix}/v1/{route}" in paths
        for route in ("ios/i", "ios/late", "mobile/conditions/{project_id}"):
            assert f"{prefix}/v1/{route}" in paths
    assert paths["/v1/mobile/late"]["post"]["security"] == [{"sessionToken": []}]
    assert paths["/v1/web/i"]["post"]["security"] == [{"sessionToken": []}]
    assert paths["/api/v1/projects"]["get"]["security"] == [{"orgApiKey": []}]
    assert paths["/v1/web/start"]["post"]["security"] == []
    schemes = spec["components"]["securitySchemes"]
    assert schemes["orgApiKey"] == {**schemes["orgApiKey"], "in": "header", "name": "Authorization"}
    assert schemes["sessionToken"]["scheme"] == "bearer"


async def test_real_answers_match_the_described_schemas(harness: Harness) -> None:
    """Answers carrying data (recorded events, a user's sessions, live sessions) fit the schemas
    (schemathesis alone mostly sees empty lists: it cannot record a session)."""
    import jsonschema_rs

    spec = await spec_of(harness)
    key = await api_key(harness)
    session_id, _ = await record_session(harness, user_id="ann")
    base = f"/api/v1/{harness.project.project_key}"

    async def check(template: str, path: str) -> None:
        response = await harness.client.get(path, headers={"Authorization": key})
        assert response.status_code == 200, (path, response.text)
        assert response.json()["data"], path  # something real was checked
        reply = spec["paths"][template]["get"]["responses"]["200"]
        schema = {**reply["content"]["application/json"]["schema"], **spec}
        errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(response.json())]
        assert not errors, (path, errors)

    await check("/api/v1/projects", "/api/v1/projects")
    prefix = "/api/v1/{project_key}"
    await check(f"{prefix}/sessions/{{session_id}}/events", f"{base}/sessions/{session_id}/events")
    await check(f"{prefix}/sessions/{{session_id}}", f"{base}/sessions/{session_id}")
    await check(f"{prefix}/assist/sessions", f"{base}/assist/sessions")
    await end_all_sessions(harness, T0 + 600_000)  # the summary counts finished sessions only
    await check(f"{prefix}/users/{{user_id}}/sessions", f"{base}/users/ann/sessions")
    await check(f"{prefix}/users/{{user_id}}", f"{base}/users/ann")


def _config(key: str, token: str, project_key: str, mobile_key: str) -> str:
    """schemathesis.toml: the checks, credentials per security scheme, the real project in every
    path (and often, or the mobile project, in start bodies), and what operations answer by
    design: canvas images are not enabled (501, the one 5xx allowed, checked apart), and a start
    request's project and tracker version are checked first (403, 404, 426)."""
    checks = "\n".join(f"{name}.enabled = true" for name in CHECKS)
    return f"""
[checks]
enabled = false
{checks}

[auth.openapi.orgApiKey]
api_key = "{key}"

[auth.openapi.orgApiKeyBearer]
bearer = "{key}"

[auth.openapi.sessionToken]
bearer = "{token}"

[dictionaries.project_keys]
values = ["{project_key}", "{mobile_key}"]

[dictionaries.tracker_versions]
values = ["19.0.1", "1.0.14"]

[parameters]
"path.project_key" = "{project_key}"
# Often the real project and a current tracker in a start request's body, so that fuzzing gets
# past its 404 and 426 to the real start path.
"body.projectKey" = {{ dictionary = "project_keys", probability = 0.7 }}
"body.trackerVersion" = {{ dictionary = "tracker_versions", probability = 0.7 }}

[[operations]]
include-path-regex = "/v1/(web|mobile|ios)/start$"
checks.negative_data_rejection.expected-statuses = [400, 403, 404, 413, 415, 426]
"""


def _junit_cases(report: Path) -> list[ElementTree.Element]:
    return list(ElementTree.parse(report).getroot().iter("testcase"))


async def test_schemathesis_finds_nothing(server_factory: ServerFactory, tmp_path: Path) -> None:
    harness = await server_factory()
    key = await api_key(harness)
    token = (await harness.started())["token"]
    spec = await spec_of(harness)

    config = tmp_path / "schemathesis.toml"
    mobile = harness.server.catalog.create_project("app", "ios")
    config.write_text(_config(key, token, harness.project.project_key, mobile.project_key))
    junit = tmp_path / "junit.xml"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", harness.server.url + OPENAPI_PATH,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--request-timeout", str(REQUEST_TIMEOUT_S),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(junit),
    ]  # fmt: skip
    with trio.fail_after(RUN_TIMEOUT_S):
        result = await trio.run_process(
            command, cwd=tmp_path, capture_stdout=True, stderr=sys.stderr, check=False
        )  # in tmp_path: schemathesis keeps a cache directory in its working directory
    output = result.stdout.decode(errors="replace")
    (tmp_path / "schemathesis.out").write_text(output)  # kept for reading after a failure
    assert result.returncode == 0, output

    cases = _junit_cases(junit)
    tested = {case.get("name") for case in cases}
    # Every described operation but the description itself (schemathesis does not fuzz the
    # document it loaded; test_every_route_is_described fetches it).
    expected = {
        f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
    } - {f"GET {OPENAPI_PATH}"}
    assert expected <= tested, (expected - tested, output[-5_000:])
    skipped = [case.get("name") for case in cases if case.find("skipped") is not None]
    assert not skipped, (skipped, output[-5_000:])
    # The fuzzer reached the real start path (sessions beyond the one started above).
    records = await harness.records()
    starts = [r for r in records if r.kind is RecordKind.WEB_START]
    assert len(starts) > 1, output[-5_000:]
    assert any(r.kind is RecordKind.MOBILE_START for r in records), output[-5_000:]
    # The server is still fine after all that.
    assert (await harness.client.get("/api/v1/projects", headers={"Authorization": key})).is_success
