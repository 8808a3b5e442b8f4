"""Login sessions of the dashboard: the cookie, the CSRF token, who is signed in.

A login creates a server-side session (a random token; the catalog stores its SHA-256 with an
expiry) and sets it as the cookie ``replayd_session`` (``HttpOnly; SameSite=Strict; Path=/``, plus
``Secure`` over https). The CSRF token is an HMAC of the session token with the server's secret,
so it needs no storage and dies with the session; ``GET /auth/me`` hands it to the page, which
sends it as ``X-CSRF-Token`` on every state-changing call. :func:`csrf_problem` checks it (in
constant time) and, when the browser sent an ``Origin``, that it is this host.

The public API v1 accepts a valid session cookie as a credential (``api.public_v1``): it calls
:func:`request_login_session` and :func:`csrf_problem`, so the dashboard's pages read everything
through the v1 routes with the organization scoping of the signed-in user.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import attrs
import trio
from quart import current_app, request
from quart_trio import QuartTrio

from api.dashboard.throttle import LoginThrottle
from engine.supervisor import wall_clock_ms
from storage.catalog import Catalog, DashboardUser

EXTENSION_KEY = "replayd.dashboard"
COOKIE_NAME = "replayd_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_MS = 12 * 3600 * 1000  # a working day; then sign in again
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A token is 43 characters (32 random bytes, URL-safe base64): anything much longer is not one
# and is refused before it costs a thread hop.
_TOKEN_MAX_CHARS = 128
_CSRF_CONTEXT = b"replayd dashboard csrf\x00"


@attrs.define(eq=False)
class DashboardAuth:
    """What the dashboard's routes and the v1 credential check share in one process."""

    catalog: Catalog
    throttle: LoginThrottle = attrs.Factory(LoginThrottle)
    clock: Callable[[], int] = wall_clock_ms  # epoch ms: session expiry
    monotonic: Callable[[], float] = time.monotonic  # the login throttle's time

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token of a login session (HMAC-SHA256 with the server's secret)."""
        mac = hmac.new(self.catalog.token_secret(), _CSRF_CONTEXT + session_token.encode(),
                       hashlib.sha256)  # fmt: skip
        return mac.hexdigest()


@attrs.frozen(slots=True)
class LoginSession:
    """The signed-in user of a request, its session token and that session's CSRF token."""

    token: str
    user: DashboardUser
    csrf_token: str


def install(app: QuartTrio, catalog: Catalog, clock: Callable[[], int] | None = None) -> None:
    """Give the dashboard (and the v1 credential check) its object."""
    auth = DashboardAuth(catalog)
    if clock is not None:
        auth.clock = clock
    app.extensions[EXTENSION_KEY] = auth


def dashboard_auth() -> DashboardAuth | None:
    """The app's :class:`DashboardAuth`, or None where the dashboard is not served."""
    return current_app.extensions.get(EXTENSION_KEY)


async def request_login_session() -> LoginSession | None:
    """The unexpired login session of the request's cookie, or None (no cookie, unknown token,
    expired, or no dashboard in this process)."""
    auth = dashboard_auth()
    token = request.cookies.get(COOKIE_NAME)
    if auth is None or not token or len(token) > _TOKEN_MAX_CHARS:
        return None
    user = await trio.to_thread.run_sync(auth.catalog.login_session_user, token, auth.clock())
    if user is None:
        return None
    return LoginSession(token=token, user=user, csrf_token=auth.csrf_token(token))


def origin_problem() -> str | None:
    """Why the request's ``Origin`` is refused (another host, or ``null``), None if it is absent
    or this host. The host is compared, not the scheme: behind a TLS-terminating proxy the
    browser says https while the request reaches us as http."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    try:
        host = urlsplit(origin).netloc
    except ValueError:
        host = ""
    if not host or host.lower() != request.host.lower():
        return "cross-origin request refused"
    return None


def csrf_problem(session: LoginSession) -> str | None:
    """Why a request authenticated by ``session`` may not go on, or None: safe methods always
    may; any other needs this session's ``X-CSRF-Token`` and no foreign ``Origin``."""
    if request.method in SAFE_METHODS:
        return None
    problem = origin_problem()
    if problem is not None:
        return problem
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        return f"missing or wrong {CSRF_HEADER} header"
    return None
