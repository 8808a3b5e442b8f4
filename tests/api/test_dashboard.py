"""The dashboard through the real server: users made by the CLI, login, the session cookie, CSRF,
logout, organization scoping, the v1 API with a cookie, and the headers of every dashboard answer.
"""

from __future__ import annotations

import re
import sqlite3
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import httpx
import pytest
import trio

from api.dashboard.auth import COOKIE_NAME, CSRF_HEADER, EXTENSION_KEY, SESSION_TTL_MS
from api.dashboard.headers import CONTENT_SECURITY_POLICY, REPLAY_CONTENT_SECURITY_POLICY
from storage.catalog import DashboardUser
from tests.api.conftest import Harness
from tests.api.test_public_v1 import api_key, record_session, second_organization
from tests.test_cli import replayd

PASSWORD = "correct horse battery staple"


async def make_user(
    harness: Harness, email: str = "ann@example.test", org_id: int = 1
) -> DashboardUser:
    catalog = harness.server.catalog
    return await trio.to_thread.run_sync(lambda: catalog.create_user(email, PASSWORD, org_id))


async def login(harness: Harness, email: str, password: str = PASSWORD) -> httpx.Response:
    return await harness.client.post("/auth/login", json={"email": email, "password": password})


def cookie_of(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


class Browser:
    """What a signed-in page sends: the session cookie, and the CSRF token it read from /auth/me."""

    def __init__(self, harness: Harness, token: str, csrf: str) -> None:
        self.client = harness.client
        self.cookie = {"Cookie": f"{COOKIE_NAME}={token}"}
        self.csrf = csrf

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path, headers=self.cookie)

    async def post(
        self, path: str, *, csrf: bool = True, origin: str | None = None, json: object = None
    ) -> httpx.Response:
        headers = dict(self.cookie)
        if csrf:
            headers[CSRF_HEADER] = self.csrf
        if origin is not None:
            headers["Origin"] = origin
        return await self.client.post(path, headers=headers, json=json)


async def signed_in(harness: Harness, email: str = "ann@example.test", org_id: int = 1) -> Browser:
    await make_user(harness, email, org_id)
    response = await login(harness, email)
    assert response.status_code == 200, response.text
    token = cookie_of(response)[COOKIE_NAME].value
    harness.client.cookies.clear()  # each test says which cookie it sends
    return Browser(harness, token, response.json()["data"]["csrfToken"])


async def test_login_sets_a_strict_http_only_cookie_and_me_says_who(harness: Harness) -> None:
    user = await make_user(harness, "Ann@Example.test")
    response = await login(harness, "  ann@EXAMPLE.test")  # emails compare case-insensitively
    assert response.status_code == 200, response.text
    morsel = cookie_of(response)[COOKIE_NAME]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert not morsel["secure"]  # plain http here; https requests get Secure
    assert int(morsel["max-age"]) == SESSION_TTL_MS // 1000
    me = await harness.client.get("/auth/me", headers={"Cookie": f"{COOKIE_NAME}={morsel.value}"})
    data = me.json()["data"]
    assert (data["userId"], data["email"], data["orgId"]) == (user.user_id, "Ann@Example.test", 1)
    assert data["organization"] == "default"
    assert re.fullmatch("[0-9a-f]{64}", data["csrfToken"])
    # Only the token's hash is stored.
    conn = sqlite3.connect(harness.server.log.path)
    try:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM login_sessions")]
    finally:
        conn.close()
    assert len(stored) == 1 and morsel.value not in stored


async def test_bad_credentials_are_401_and_bad_bodies_400(harness: Harness) -> None:
    await make_user(harness)
    for email, password in (("ann@example.test", "wrong"), ("nobody@example.test", PASSWORD)):
        response = await login(harness, email, password)
        assert response.status_code == 401
        assert response.json() == {"error": "wrong email or password"}
        assert "set-cookie" not in response.headers
    foreign = await harness.client.post(
        "/auth/login",
        json={"email": "ann@example.test", "password": PASSWORD},
        headers={"Origin": "http://evil.test"},
    )
    assert (foreign.status_code, foreign.json()) == (403, {"error": "cross-origin request refused"})
    for body in (b"", b"[1]", b'{"email": 1, "password": "x"}', b"\xff", b'{"email": "a"}'):
        response = await harness.client.post("/auth/login", content=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"error"}
    assert (await harness.client.get("/auth/me")).status_code == 401


async def test_failed_logins_are_rate_limited_per_email(harness: Harness) -> None:
    await make_user(harness)
    auth = harness.server.app.extensions[EXTENSION_KEY]
    now = [1000.0]
    auth.monotonic = lambda: now[0]
    limit = auth.throttle.max_failures
    for _ in range(limit):
        assert (await login(harness, "ann@example.test", "wrong")).status_code == 401
    refused = await login(harness, "ANN@example.test")  # the right password, still refused
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    now[0] += auth.throttle.window_s
    assert (await login(harness, "ann@example.test")).status_code == 200


async def test_logout_needs_the_csrf_token_and_ends_the_session(harness: Harness) -> None:
    browser = await signed_in(harness)
    assert (await browser.post("/auth/logout", csrf=False)).status_code == 403
    assert (await browser.get("/auth/me")).status_code == 200  # still signed in
    response = await browser.post("/auth/logout")
    assert response.status_code == 204
    assert cookie_of(response)[COOKIE_NAME].value == ""  # the browser drops it
    assert (await browser.get("/auth/me")).status_code == 401
    assert (await browser.get("/api/v1/projects")).status_code == 401
    assert (await browser.get("/")).status_code == 303


async def test_a_session_expires(harness: Harness) -> None:
    browser = await signed_in(harness)
    harness.clock.now += SESSION_TTL_MS - 1
    assert (await browser.get("/auth/me")).status_code == 200
    harness.clock.now += 1
    assert (await browser.get("/auth/me")).status_code == 401


async def test_the_cookie_is_a_v1_credential_with_csrf_on_changes(harness: Harness) -> None:
    browser = await signed_in(harness)
    session_id, _ = await record_session(harness)
    key = harness.project.project_key
    projects = (await browser.get("/api/v1/projects")).json()["data"]
    assert [p["projectKey"] for p in projects] == [key]
    events = await browser.get(f"/api/v1/{key}/sessions/{session_id}/events")
    assert events.status_code == 200 and events.json()["data"]
    one = (await browser.get(f"/api/v1/{key}/sessions/{session_id}")).json()["data"]
    assert (one["sessionId"], one["userId"], one["projectId"]) == (
        session_id,
        "user-42",
        harness.project.project_id,
    )
    # A state-changing v1 call with the cookie needs the CSRF header, and no foreign Origin.
    refused = await browser.post("/api/v1/projects", csrf=False, json={"name": "x"})
    assert (refused.status_code, refused.json()) == (
        403,
        {"errors": [f"missing or wrong {CSRF_HEADER} header"]},
    )
    wrong = await browser.client.post(
        "/api/v1/projects", headers={**browser.cookie, CSRF_HEADER: "0" * 64}, json={"name": "x"}
    )
    assert wrong.status_code == 403
    foreign = await browser.post("/api/v1/projects", origin="http://evil.test", json={"name": "y"})
    assert foreign.status_code == 403
    own_origin = str(harness.client.base_url).rstrip("/")
    created = await browser.post("/api/v1/projects", origin=own_origin, json={"name": "made"})
    assert created.status_code == 200, created.text
    assert created.json()["data"]["name"] == "made"
    # API-key requests are unchanged: no CSRF token needed.
    by_key = await harness.client.post(
        "/api/v1/projects", headers={"Authorization": await api_key(harness)}, json={"name": "k"}
    )
    assert by_key.status_code == 200


async def test_another_organizations_project_is_404_for_a_cookie(harness: Harness) -> None:
    _, their_project = await trio.to_thread.run_sync(second_organization, harness)
    session_id, _ = await record_session(harness)
    mine = harness.project.project_key
    theirs = await signed_in(harness, "bob@other.test", org_id=2)
    listed = (await theirs.get("/api/v1/projects")).json()["data"]
    assert [p["projectKey"] for p in listed] == [their_project]
    for path in (
        f"/api/v1/projects/{mine}",
        f"/api/v1/{mine}/sessions/{session_id}/events",
        f"/api/v1/{mine}/sessions/{session_id}",
        f"/api/v1/{mine}/users/user-42/sessions",
        f"/api/v1/{mine}/assist/sessions",
    ):
        response = await theirs.get(path)
        assert (response.status_code, response.json()) == (404, {"errors": ["project not found."]})
    for page in (f"/projects/{mine}", f"/projects/{mine}/live", f"/projects/{mine}/sessions/1"):
        assert (await theirs.get(page)).status_code == 404
    assert (await theirs.get(f"/projects/{their_project}")).status_code == 200


async def test_pages_need_a_signed_in_user(harness: Harness) -> None:
    key = harness.project.project_key
    pages = ("/", f"/projects/{key}", f"/projects/{key}/live", f"/projects/{key}/sessions/7")
    for page in pages:
        response = await harness.client.get(page)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?" + urlencode({"next": page})
    assert (await harness.client.get("/login")).status_code == 200
    browser = await signed_in(harness)
    for page in pages:
        response = await browser.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        html = response.text
        # No inline script and no style attribute: every script is a module file of ours.
        assert re.findall(r"<script[^>]*>", html) and all(
            re.fullmatch(r'<script type="module" src="/static/pages/\w+\.js">', tag)
            for tag in re.findall(r"<script[^>]*>", html)
        )
        assert "style=" not in html and "<style" not in html


def assert_dashboard_headers(response: httpx.Response, policy: str) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == policy, response.url
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_every_dashboard_answer_carries_the_csp(harness: Harness) -> None:
    browser = await signed_in(harness)
    key = harness.project.project_key
    answers = {
        "/": 200,
        "/login": 200,
        f"/projects/{key}": 200,
        f"/projects/{key}/live": 200,
        "/projects/nope": 404,
        f"/projects/{key}/sessions/1/nothing": 404,
        "/static/app.css": 200,
        "/static/pages/session.js": 200,
        "/static/missing.js": 404,
        "/static/app.exe": 404,
        "/auth/me": 200,
        "/auth/nothing": 404,
    }
    for path, status in answers.items():
        response = await browser.get(path)
        assert response.status_code == status, path
        assert_dashboard_headers(response, CONTENT_SECURITY_POLICY)
    session_page = await browser.get(f"/projects/{key}/sessions/1")
    assert_dashboard_headers(session_page, REPLAY_CONTENT_SECURITY_POLICY)
    for policy in (CONTENT_SECURITY_POLICY, REPLAY_CONTENT_SECURITY_POLICY):
        directives = dict(d.split(" ", 1) for d in policy.split("; "))
        assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
    for response in (
        await login(harness, "x@y.z", "wrong"),
        await harness.client.post("/auth/logout"),
        await harness.client.get("/"),
    ):
        assert_dashboard_headers(response, CONTENT_SECURITY_POLICY)


async def test_static_files_have_their_types_and_revalidate(harness: Harness) -> None:
    types = {
        "/static/app.css": "text/css; charset=utf-8",
        "/static/dom.js": "text/javascript; charset=utf-8",
        "/static/pages/login.js": "text/javascript; charset=utf-8",
    }
    for path, content_type in types.items():
        response = await harness.client.get(path)  # no sign-in needed for static files
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.headers["cache-control"] == "no-cache"
        again = await harness.client.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert (again.status_code, again.content) == (304, b"")
    for path in ("/static/../routes.py", "/static/%2e%2e/routes.py", "/static/pages/../../auth.py"):
        assert (await harness.client.get(path)).status_code == 404, path


async def test_the_session_route_answers_one_session(harness: Harness) -> None:
    key = await api_key(harness)
    session_id, _ = await record_session(harness)
    base = f"/api/v1/{harness.project.project_key}/sessions"
    found = await harness.client.get(f"{base}/{session_id}", headers={"Authorization": key})
    data = found.json()["data"]
    assert data["sessionId"] == session_id and data["live"] is True and data["duration"] is None
    assert data["userBrowser"] == "Chrome" and data["userCountry"] == "UN"
    assert data["pagesCount"] >= 1 and data["platform"] == "web"
    for missing in ("1", "99999999999999999999999"):
        response = await harness.client.get(f"{base}/{missing}", headers={"Authorization": key})
        assert (response.status_code, response.json()) == (404, {"errors": ["session not found."]})
    bad = await harness.client.get(f"{base}/abc", headers={"Authorization": key})
    assert bad.status_code == 422


@pytest.mark.parametrize("from_stdin", [False, True])
async def test_user_create_then_login(harness: Harness, from_stdin: bool) -> None:
    db = harness.server.log.path
    args = ["user", "create", "cli@example.test", "--db", str(db)]

    def run() -> str:
        if from_stdin:
            result = replayd(*args, "--password-stdin", stdin="typed password\n")
            assert result.returncode == 0, result.stderr
            return "typed password"
        result = replayd(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[-1]  # the generated password, alone on the last line

    password = await trio.to_thread.run_sync(run)
    assert len(password) >= 12
    assert (await login(harness, "cli@example.test", password)).status_code == 200
    again = await trio.to_thread.run_sync(lambda: replayd(*args[:2], "CLI@example.test", *args[3:]))
    assert again.returncode == 1 and "exists already" in again.stderr
    listed = await trio.to_thread.run_sync(lambda: replayd("user", "list", "--db", str(db)))
    assert listed.stdout.strip().split("\t")[-1] == "cli@example.test"
    deleted = await trio.to_thread.run_sync(
        lambda: replayd("user", "delete", "cli@example.test", "--db", str(db))
    )
    assert deleted.returncode == 0
    assert (await login(harness, "cli@example.test", password)).status_code == 401
