"""The headers of every dashboard answer: a strict Content-Security-Policy and its companions.

Our own pages load scripts, styles, images and API answers from this origin only, and no inline
script or style anywhere (REPLAY.md 5.4 item 9): a recorded string that slipped into the DOM as
markup still could not run. The session page also hosts the player's replay iframe, which is
``about:blank`` and so *inherits this page's policy*; recorded pages bring ``<style>`` elements,
``style`` attributes and stylesheets, images, fonts and media from their own hosts. That page
therefore adds, for styles, images, fonts and media only, ``'unsafe-inline'`` (styles) and the
``http:``/``https:`` schemes; ``script-src`` stays ``'self'`` there too, so nothing recorded can
run, sandbox or not. What this costs: the viewer's browser fetches the recorded site's assets
itself (the site learns someone watches; an asset proxy would avoid it, REPLAY.md 5.4 item 11).
"""

from __future__ import annotations

from quart import Response

_BASE_DIRECTIVES: dict[str, str] = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "connect-src": "'self'",
    "frame-src": "'self'",
    "child-src": "'self'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# What the replay iframe (same policy, inherited) needs for the recorded site's look.
_REPLAY_DIRECTIVES: dict[str, str] = {
    "style-src": "'self' 'unsafe-inline' https: http:",
    "img-src": "'self' data: blob: https: http:",
    "font-src": "'self' data: https: http:",
    "media-src": "'self' data: blob: https: http:",
}


def _policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}" for name, value in directives.items())


CONTENT_SECURITY_POLICY = _policy(_BASE_DIRECTIVES)
"""The policy of every dashboard answer but the session page."""
REPLAY_CONTENT_SECURITY_POLICY = _policy(_BASE_DIRECTIVES | _REPLAY_DIRECTIVES)
"""The policy of the session page (the player's replay iframe inherits it)."""

_PAGE_PATHS = ("/", "/login", "/projects")
_PREFIXES = ("/projects/", "/static/", "/auth/")


def is_dashboard_path(path: str) -> bool:
    """True for the paths the dashboard serves (pages, static files, ``/auth/*``)."""
    return path in _PAGE_PATHS or path.startswith(_PREFIXES)


def add_security_headers(response: Response, policy: str = CONTENT_SECURITY_POLICY) -> None:
    """Set the CSP (unless the route set its own) and the other headers of a dashboard answer."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", policy)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"  # frame-ancestors 'none' for browsers without CSP 2
