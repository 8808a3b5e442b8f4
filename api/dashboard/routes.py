"""The dashboard's routes: its pages, ``/auth/*`` and the static files of ``static/``.

Pages are one HTML shell each (a title, the stylesheet, one ES module): they carry no data, so no
recorded string is ever part of our markup; each page's module reads the public API v1 with the
session cookie and builds its DOM with ``createElement``/``textContent``. A page needs a
signed-in user (else 303 to ``/login?next=<path>``), and a project page a project of the user's
organization (else 404).

``POST /auth/login`` with ``{"email", "password"}`` sets the session cookie (401 on bad
credentials, 429 after too many failures in 5 minutes: 10 for that email, 100 for that address);
``POST /auth/logout`` ends the session (CSRF token required); ``GET /auth/me`` says who is signed
in, in which organization, and the CSRF token. Errors answer ``{"error": "..."}``
(:mod:`api.errors`). Every answer under these paths carries the headers of
:mod:`api.dashboard.headers`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import trio
from quart import Blueprint, Response, request
from werkzeug.security import safe_join

from api.dashboard import auth as dashboard_auth_module
from api.dashboard.auth import (
    COOKIE_NAME,
    SESSION_TTL_MS,
    DashboardAuth,
    LoginSession,
    csrf_problem,
    origin_problem,
    request_login_session,
)
from api.dashboard.headers import (
    REPLAY_CONTENT_SECURITY_POLICY,
    add_security_headers,
    is_dashboard_path,
)
from api.dashboard.throttle import ADDRESS, EMAIL
from api.errors import ApiError, json_response
from storage.catalog import DashboardUser, email_key

STATIC_DIR = Path(__file__).resolve().parent / "static"
# What /static serves, by suffix; any other file is a 404 (nothing is served as a guessed type).
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
}
# The files are not named by their content, so a browser asks again each time (cheap: a 304
# when the ETag still matches) and a new release shows at once.
STATIC_CACHE_CONTROL = "no-cache"
EMAIL_MAX_CHARS = 320
PASSWORD_MAX_CHARS = 1024

bp = Blueprint("dashboard", __name__)


def _auth() -> DashboardAuth:
    auth = dashboard_auth_module.dashboard_auth()
    if auth is None:
        raise ApiError(503, "the dashboard is not served by this process")
    return auth


@bp.after_app_request
async def _dashboard_headers(response: Response) -> Response:
    # After the app's error handlers too: a 404 of an unknown page or file carries the CSP.
    if is_dashboard_path(request.path):
        add_security_headers(response)
    return response


# -- pages -----------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Page:
    """One page: its title and its ES module under ``static/pages/``."""

    title: str
    module: str

    def html(self) -> str:
        """The shell: no inline script or style, no data; the module builds the rest."""
        return (
            "<!doctype html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{self.title} · replayd</title>\n"
            '<link rel="stylesheet" href="/static/app.css">\n'
            f'<script type="module" src="/static/pages/{self.module}.js"></script>\n'
            '</head>\n<body>\n<main id="main"><p class="muted">Loading…</p></main>\n'
            "</body>\n</html>\n"
        )


LOGIN_PAGE = Page("Sign in", "login")
PROJECTS_PAGE = Page("Projects", "projects")
SESSIONS_PAGE = Page("Sessions", "sessions")
LIVE_PAGE = Page("Live sessions", "live")
SESSION_PAGE = Page("Session", "session")


def _page(page: Page, status: int = 200, policy: str | None = None) -> Response:
    response = Response(page.html(), status=status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    if policy is not None:
        response.headers["Content-Security-Policy"] = policy
    return response


async def _signed_in() -> LoginSession | Response:
    session = await request_login_session()
    if session is None:
        # Back to this page once signed in (the login page takes only a path of ours).
        location = "/login?" + urlencode({"next": request.path})
        return Response(b"", status=303, headers={"Location": location})
    return session


async def _project_page(project_key: str, page: Page, policy: str | None = None) -> Response:
    session = await _signed_in()
    if isinstance(session, Response):
        return session
    project = await _auth().catalog.find_project_by_key(project_key)
    if project is None or project.org_id != session.user.org_id:
        raise ApiError(404, "project not found")
    return _page(page, policy=policy)


@bp.get("/")
async def projects_page() -> Response:
    session = await _signed_in()
    return session if isinstance(session, Response) else _page(PROJECTS_PAGE)


@bp.get("/login")
async def login_page() -> Response:
    return _page(LOGIN_PAGE)


@bp.get("/projects/<project_key>")
async def sessions_page(project_key: str) -> Response:
    return await _project_page(project_key, SESSIONS_PAGE)


@bp.get("/projects/<project_key>/live")
async def live_page(project_key: str) -> Response:
    return await _project_page(project_key, LIVE_PAGE)


@bp.get("/projects/<project_key>/sessions/<session_id>")
async def session_page(project_key: str, session_id: str) -> Response:
    # The player's replay iframe inherits this page's policy (api.dashboard.headers).
    return await _project_page(project_key, SESSION_PAGE, REPLAY_CONTENT_SECURITY_POLICY)


# -- /auth -----------------------------------------------------------------------------------------


async def _login_fields() -> tuple[str, str]:
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ApiError(400, 'a JSON body {"email": ..., "password": ...} is expected') from None
    if not isinstance(body, dict):
        raise ApiError(400, 'a JSON body {"email": ..., "password": ...} is expected')
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        raise ApiError(400, "email and password must be non-empty strings")
    if len(email) > EMAIL_MAX_CHARS or len(password) > PASSWORD_MAX_CHARS:
        raise ApiError(400, "email or password too long")
    return email, password


def _client_address() -> str:
    # The peer address Hypercorn reports (X-Forwarded-For is not trusted for a rate limit).
    return request.remote_addr or ""


async def _me_json(auth: DashboardAuth, session_user: DashboardUser, csrf: str) -> dict[str, Any]:
    name = await trio.to_thread.run_sync(auth.catalog.organization_name, session_user.org_id)
    return {
        "userId": session_user.user_id,
        "email": session_user.email,
        "orgId": session_user.org_id,
        "organization": name,
        "csrfToken": csrf,
    }


@bp.post("/auth/login")
async def login() -> Response:
    auth = _auth()
    problem = origin_problem()
    if problem is not None:
        raise ApiError(403, problem)
    email, password = await _login_fields()
    keys = [(EMAIL, email_key(email)), (ADDRESS, _client_address())]
    wait = auth.throttle.retry_after(keys, auth.monotonic())
    if wait is not None:
        raise ApiError(
            429, "too many failed logins; retry later", {"Retry-After": str(max(1, int(wait)))}
        )
    user = await trio.to_thread.run_sync(auth.catalog.check_login, email, password)
    if user is None:
        auth.throttle.failed(keys, auth.monotonic())
        raise ApiError(401, "wrong email or password")
    auth.throttle.succeeded(keys[0])
    token = await trio.to_thread.run_sync(
        auth.catalog.create_login_session, user.user_id, auth.clock(), SESSION_TTL_MS
    )
    response = json_response({"data": await _me_json(auth, user, auth.csrf_token(token))})
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=SESSION_TTL_MS // 1000,
        path="/",
        secure=request.scheme == "https",
        httponly=True,
        samesite="Strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _session_or_401() -> LoginSession:
    session = await request_login_session()
    if session is None:
        raise ApiError(401, "not signed in")
    return session


@bp.post("/auth/logout")
async def logout() -> Response:
    session = await _session_or_401()
    problem = csrf_problem(session)
    if problem is not None:
        raise ApiError(403, problem)
    await trio.to_thread.run_sync(_auth().catalog.delete_login_session, session.token)
    response = Response(b"", status=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    return response


@bp.get("/auth/me")
async def me() -> Response:
    session = await _session_or_401()
    response = json_response({"data": await _me_json(_auth(), session.user, session.csrf_token)})
    response.headers["Cache-Control"] = "no-store"
    return response


# -- static files ----------------------------------------------------------------------------------


def _read_static(path: str) -> tuple[bytes, str] | None:
    """The bytes of a file under ``static/`` and its ETag, or None (not there, or outside)."""
    joined = safe_join(str(STATIC_DIR), path)
    if joined is None:
        return None
    target = Path(joined)
    if not target.is_file():
        return None
    data = target.read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@bp.get("/static/<path:path>")
async def static_file(path: str) -> Response:
    content_type = CONTENT_TYPES.get(Path(path).suffix.lower())
    found = None if content_type is None else await trio.to_thread.run_sync(_read_static, path)
    if found is None or content_type is None:
        raise ApiError(404, "not found")
    data, etag = found
    headers = {"Cache-Control": STATIC_CACHE_CONTROL, "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    return Response(data, content_type=content_type, headers=headers)
