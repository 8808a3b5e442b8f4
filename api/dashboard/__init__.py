"""The dashboard served at ``/``: pages, login sessions, static files (REPLAY.md 3 and 5).

``routes`` holds the blueprint (pages, ``/auth/*``, ``/static/*``), ``auth`` the login sessions
that the public API v1 also accepts as a credential, ``throttle`` the login rate limit and
``headers`` the Content-Security-Policy and the other headers of every dashboard answer.
"""
