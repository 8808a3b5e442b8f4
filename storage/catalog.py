"""The catalog: organizations, projects, organization API keys, server settings (token secret).

Owns the tables ``organizations``, ``projects``, ``api_keys``, ``settings`` and the dashboard's
``users`` and ``login_sessions`` (passwords as scrypt hashes, session tokens as SHA-256), migrated
through ``storage.schema.apply_migrations`` under the component name ``catalog``. Knows nothing
of the tracker protocol. API keys are stored as SHA-256 hex digests only: the plaintext is
returned once by ``create_api_key`` and never kept.

Projects are cached in memory: ``/v1/web/start`` looks its project up on every request and must not
touch SQLite for that. Projects created through this object go straight into the cache; a key (or
id) the cache does not know is looked up in SQLite once (so projects created by another process,
e.g. the CLI or another ingest process of ``serve --workers``, show up) and an unknown one is
remembered as unknown for a few seconds. Projects are never updated in place, so a cached project is
not stale.

The ``cached_*`` methods answer from memory only, without the lock (a worker thread may hold it for
a slow write): they are what the trio thread calls. Every other method may run SQL and belongs in a
worker thread (``trio.to_thread.run_sync``); a lock serialises the connection. What is remembered
about unknown keys is bounded in count and size, so a client sending random keys cannot grow it.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from os import PathLike
from typing import TypeVar

import attrs
import trio

from storage.errors import CatalogUnavailable, is_database_wide
from storage.passwords import check_password, decoy_hash, hash_password
from storage.schema import apply_migrations
from storage.sqlite import atomic, connect

DEFAULT_ORG_ID = 1
# 0 = no project-specific lifetime: the server's setting (REPLAYD_TOKEN_TTL_MS, 2 h by default, the
# reference backend's database default) applies, so one setting changes it for every project.
DEFAULT_MAX_SESSION_DURATION_MS = 0
PLATFORMS = ("web", "ios", "android")
PROJECT_KEY_LENGTH = 20
API_KEY_LENGTH = 20  # same length as the reference backend's organization API keys
TOKEN_SECRET_SETTING = "token_secret"
K = TypeVar("K", str, int)

_ALPHANUMERIC = string.ascii_letters + string.digits
_NEGATIVE_TTL_S = 5.0  # how long an unknown project key stays "unknown" without asking SQLite
# Bound on remembered unknown keys and ids (a scan of random keys must not grow memory) ...
_NEGATIVE_MAX = 10_000
# ... and on the length of a remembered key: a longer one is asked about every time (in a worker
# thread), so 10,000 remembered keys hold at most ~1 MB whatever clients send.
_NEGATIVE_KEY_MAX_CHARS = 64
# How long a verified API key is trusted from memory (see Catalog.revoke_api_key).
_VERIFIED_TTL_S = 5.0
# An API key is listed and revoked by the start of its hash: the key itself is never stored.
API_KEY_ID_LENGTH = 12
# Bytes of randomness in a dashboard login session's token (URL-safe base64 in the cookie).
SESSION_TOKEN_BYTES = 32

_MIGRATIONS: list[str] = [
    # 1: organizations, projects, API keys, settings. org_id is on every project and key so that
    # several organizations can share one database later; today everything belongs to org 1.
    """
    CREATE TABLE organizations (
        org_id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE projects (
        project_id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations (org_id),
        project_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        platform TEXT NOT NULL CHECK (platform IN ('web', 'ios', 'android')),
        active INTEGER NOT NULL DEFAULT 1,
        sample_rate INTEGER NOT NULL DEFAULT 100,
        max_session_duration_ms INTEGER NOT NULL DEFAULT 0,
        save_request_payloads INTEGER NOT NULL DEFAULT 0,
        beacon_size INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX projects_org ON projects (org_id, project_id);
    CREATE TABLE api_keys (
        key_hash TEXT PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations (org_id),
        created_at_ms INTEGER NOT NULL,
        label TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: dashboard users and their login sessions. ``email_key`` is the case-folded email, the
    # unique one (SQLite's NOCASE folds ASCII only); ``email`` keeps what was typed. A login
    # session is stored by the SHA-256 of its token, never the token, and goes with its user.
    """
    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations (org_id),
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE login_sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
    );
    CREATE INDEX login_sessions_user ON login_sessions (user_id);
    CREATE INDEX login_sessions_expiry ON login_sessions (expires_at_ms);
    """,
]


@attrs.frozen(slots=True, kw_only=True)
class Project:
    """One project (a tracked site or app). ``project_key`` is the public key the tracker sends."""

    project_id: int
    org_id: int
    project_key: str
    name: str
    platform: str
    active: bool
    sample_rate: int  # percent of new sessions recorded (0-100)
    max_session_duration_ms: int  # token lifetime of a session
    save_request_payloads: bool
    beacon_size: int  # max batch size for this project; 0 = the server default
    created_at_ms: int


_PROJECT_COLUMNS = (
    "project_id, org_id, project_key, name, platform, active, sample_rate, "
    "max_session_duration_ms, save_request_payloads, beacon_size, created_at_ms"
)


def _project(row: tuple) -> Project:
    return Project(
        project_id=row[0],
        org_id=row[1],
        project_key=row[2],
        name=row[3],
        platform=row[4],
        active=bool(row[5]),
        sample_rate=row[6],
        max_session_duration_ms=row[7],
        save_request_payloads=bool(row[8]),
        beacon_size=row[9],
        created_at_ms=row[10],
    )


@attrs.frozen(slots=True, kw_only=True)
class ApiKeyInfo:
    """What is known of a stored API key: never the key (only its hash is stored)."""

    key_id: str  # the first API_KEY_ID_LENGTH hex digits of the key's SHA-256
    org_id: int
    created_at_ms: int
    label: str


@attrs.frozen(slots=True, kw_only=True)
class DashboardUser:
    """A person who signs in to the dashboard; sees the projects of ``org_id`` only."""

    user_id: int
    org_id: int
    email: str
    created_at_ms: int


class UserExists(Exception):
    """A dashboard user with that email (whatever its case) exists already."""


def email_key(email: str) -> str:
    """The form emails are compared in: trimmed and case-folded."""
    return email.strip().casefold()


def hash_api_key(key: str) -> str:
    """The stored form of an API key (SHA-256 hex; keys are random, so no salt is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _random_alphanumeric(length: int) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def _writing(what: str) -> Iterator[None]:
    """Turn a database-wide failure of a catalog write (full disk, ...) into CatalogUnavailable."""
    try:
        yield
    except sqlite3.Error as error:
        if is_database_wide(error):
            raise CatalogUnavailable(f"could not {what}: {error}") from error
        raise


def _cached(
    known: dict[K, Project], unknown: dict[K, float], key: K
) -> tuple[bool, Project | None]:
    """``(True, project or None)`` if memory knows ``key``, else ``(False, None)``.

    No lock: single dict reads are atomic under the GIL, and the trio thread must not wait for a
    worker thread holding the lock through a slow write.
    """
    project = known.get(key)
    if project is not None:
        return True, project
    until = unknown.get(key)
    if until is not None and until > time.monotonic():
        return True, None
    return False, None


def _remember_unknown(unknown: dict[K, float], key: K) -> None:
    """Remember ``key`` as unknown for a while, never more than ``_NEGATIVE_MAX`` of them."""
    if len(unknown) >= _NEGATIVE_MAX:
        unknown.clear()
    unknown[key] = time.monotonic() + _NEGATIVE_TTL_S


class Catalog:
    """Projects, organizations, API keys and settings in one SQLite database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._by_key: dict[str, Project] = {}
        self._by_id: dict[int, Project] = {}
        self._unknown_keys: dict[str, float] = {}  # key -> monotonic time until which it is unknown
        self._unknown_ids: dict[int, float] = {}  # the same for project ids
        # Hash of a verified API key -> (its organization, monotonic time until which memory may
        # answer). Bounded in time because `replayd api-key revoke` runs in another process: a
        # revoked key stops working here within _VERIFIED_TTL_S.
        self._verified_keys: dict[str, tuple[int, float]] = {}
        with self._lock:
            apply_migrations(conn, "catalog", _MIGRATIONS)
            conn.execute(
                "INSERT OR IGNORE INTO organizations (org_id, name, created_at_ms)"
                " VALUES (?, ?, ?)",
                (DEFAULT_ORG_ID, "default", _now_ms()),
            )
            self._secret = self._load_or_create_secret()
            for row in conn.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects"):
                self._remember(_project(row))

    @classmethod
    def open(cls, path: str | PathLike[str]) -> Catalog:
        """Open (creating if needed) the catalog in the SQLite database at ``path``."""
        # check_same_thread=False: the server calls in from worker threads (trio.to_thread);
        # self._lock serialises every use of the connection.
        return cls(connect(path, check_same_thread=False))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # -- settings --------------------------------------------------------------------------------

    def _load_or_create_secret(self) -> bytes:
        # INSERT OR IGNORE, then read back: two processes opening a new database get one secret.
        self._conn.execute(
            "INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)",
            (TOKEN_SECRET_SETTING, secrets.token_bytes(32).hex()),
        )
        (value,) = self._conn.execute(
            "SELECT value FROM settings WHERE name = ?", (TOKEN_SECRET_SETTING,)
        ).fetchone()
        return bytes.fromhex(value)

    def token_secret(self) -> bytes:
        """The HMAC secret for session tokens (32 random bytes, generated on first open)."""
        return self._secret

    # -- projects --------------------------------------------------------------------------------

    def _remember(self, project: Project) -> None:
        self._by_key[project.project_key] = project
        self._by_id[project.project_id] = project
        self._unknown_keys.pop(project.project_key, None)
        self._unknown_ids.pop(project.project_id, None)

    def create_project(
        self,
        name: str,
        platform: str = "web",
        *,
        org_id: int = DEFAULT_ORG_ID,
        sample_rate: int = 100,
        max_session_duration_ms: int = DEFAULT_MAX_SESSION_DURATION_MS,
        save_request_payloads: bool = False,
        beacon_size: int = 0,
    ) -> Project:
        """Create a project with a fresh random 20-character key."""
        if platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {', '.join(PLATFORMS)}")
        if not 0 <= sample_rate <= 100:
            raise ValueError("sample_rate must be within 0..100")
        with self._lock, _writing("create the project"):
            while True:
                key = _random_alphanumeric(PROJECT_KEY_LENGTH)
                try:
                    cursor = self._conn.execute(
                        "INSERT INTO projects (org_id, project_key, name, platform, sample_rate, "
                        "max_session_duration_ms, save_request_payloads, beacon_size,"
                        " created_at_ms)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            org_id,
                            key,
                            name,
                            platform,
                            sample_rate,
                            max_session_duration_ms,
                            int(save_request_payloads),
                            beacon_size,
                            _now_ms(),
                        ),
                    )
                except sqlite3.IntegrityError as error:
                    if "project_key" in str(error):
                        continue  # a key collision (62^20 keys: practically never); draw again
                    raise
                break
            row = self._conn.execute(
                f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE project_id = ?", (cursor.lastrowid,)
            ).fetchone()
            project = _project(row)
            self._remember(project)
            return project

    def cached_project_by_key(self, project_key: str) -> tuple[bool, Project | None]:
        """From memory only: ``(True, project or None)`` if the cache knows, else ``(False, None)``.

        The request path calls this first and ``get_project_by_key`` (in a worker thread) only when
        the cache cannot answer.
        """
        return _cached(self._by_key, self._unknown_keys, project_key)

    def cached_project(self, project_id: int) -> tuple[bool, Project | None]:
        """:meth:`cached_project_by_key` by project id (then ``get_project`` in a worker thread)."""
        return _cached(self._by_id, self._unknown_ids, project_id)

    async def find_project_by_key(self, project_key: str) -> Project | None:
        """:meth:`get_project_by_key` for the trio thread: memory, else SQLite in a thread."""
        known, project = self.cached_project_by_key(project_key)
        if known:
            return project
        return await trio.to_thread.run_sync(self.get_project_by_key, project_key)

    async def find_project(self, project_id: int) -> Project | None:
        """:meth:`get_project` for the trio thread: memory, else SQLite in a worker thread."""
        known, project = self.cached_project(project_id)
        if known:
            return project
        return await trio.to_thread.run_sync(self.get_project, project_id)

    async def find_api_key(self, key: str) -> int | None:
        """:meth:`verify_api_key` for the trio thread: memory, else SQLite in a worker thread."""
        org_id = self.cached_api_key(key)
        if org_id is not None:
            return org_id
        return await trio.to_thread.run_sync(self.verify_api_key, key)

    def get_project_by_key(self, project_key: str) -> Project | None:
        """The project with this public key (active or not), or None."""
        known, project = self.cached_project_by_key(project_key)
        if known:
            return project
        project = self._select_project("project_key", project_key)
        if project is None and len(project_key) <= _NEGATIVE_KEY_MAX_CHARS:
            _remember_unknown(self._unknown_keys, project_key)
        return project

    def get_project(self, project_id: int) -> Project | None:
        """The project with this id, or None."""
        known, project = self.cached_project(project_id)
        if known:
            return project
        project = self._select_project("project_id", project_id)
        if project is None:
            _remember_unknown(self._unknown_ids, project_id)
        return project

    def _select_project(self, column: str, value: str | int) -> Project | None:
        """The project whose ``column`` is ``value``, from SQLite (and then remembered)."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE {column} = ?", (value,)
            ).fetchone()
            if row is None:
                return None
            project = _project(row)
            self._remember(project)
            return project

    def list_projects(self, org_id: int = DEFAULT_ORG_ID) -> list[Project]:
        """All projects of an organization, oldest first (read from SQLite, not the cache)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE org_id = ? ORDER BY project_id",
                (org_id,),
            ).fetchall()
            projects = [_project(row) for row in rows]
            for project in projects:
                self._remember(project)
            return projects

    # -- API keys --------------------------------------------------------------------------------

    def create_api_key(self, org_id: int = DEFAULT_ORG_ID, label: str = "") -> str:
        """Create an organization API key; returns the plaintext, which is not stored anywhere."""
        key = _random_alphanumeric(API_KEY_LENGTH)
        with self._lock, _writing("create the API key"):
            self._conn.execute(
                "INSERT INTO api_keys (key_hash, org_id, created_at_ms, label) VALUES (?, ?, ?, ?)",
                (hash_api_key(key), org_id, _now_ms(), label),
            )
        return key

    def cached_api_key(self, key: str) -> int | None:
        """From memory only: the organization of a key verified lately, else None (ask SQLite)."""
        verified = self._verified_keys.get(hash_api_key(key)) if key else None
        if verified is None or verified[1] < time.monotonic():
            return None
        return verified[0]

    def verify_api_key(self, key: str) -> int | None:
        """The organization id the key belongs to, or None for an unknown key."""
        if not key:
            return None
        key_hash = hash_api_key(key)
        with self._lock:
            row = self._conn.execute(
                "SELECT org_id FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            if row is not None:
                self._verified_keys[key_hash] = (row[0], time.monotonic() + _VERIFIED_TTL_S)
        return None if row is None else row[0]

    def api_key_count(self, org_id: int = DEFAULT_ORG_ID) -> int:
        """How many API keys an organization has (the first ``serve`` creates one if none)."""
        with self._lock:
            (count,) = self._conn.execute(
                "SELECT count(*) FROM api_keys WHERE org_id = ?", (org_id,)
            ).fetchone()
        return count

    def list_api_keys(self, org_id: int = DEFAULT_ORG_ID) -> list[ApiKeyInfo]:
        """The API keys of an organization, oldest first, each named by its id (hash prefix)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key_hash, org_id, created_at_ms, label FROM api_keys WHERE org_id = ?"
                " ORDER BY created_at_ms, key_hash",
                (org_id,),
            ).fetchall()
        return [
            ApiKeyInfo(key_id=h[:API_KEY_ID_LENGTH], org_id=o, created_at_ms=t, label=label)
            for h, o, t, label in rows
        ]

    def revoke_api_key(self, key_or_id: str, org_id: int = DEFAULT_ORG_ID) -> ApiKeyInfo | None:
        """Delete the API key given in full or by its id (from :meth:`list_api_keys`).

        Returns what was deleted, or None when no key matches. Raises ValueError when an id
        matches several keys. Other processes stop accepting the key within ``_VERIFIED_TTL_S``.
        """
        if len(key_or_id) == API_KEY_LENGTH:  # the key itself

            def matches(key_hash: str) -> bool:
                return key_hash == hash_api_key(key_or_id)

        elif len(key_or_id) >= API_KEY_ID_LENGTH and all(c in string.hexdigits for c in key_or_id):

            def matches(key_hash: str) -> bool:
                return key_hash.startswith(key_or_id.lower())

        else:
            return None
        with self._lock, _writing("revoke the API key"):
            # An organization has a handful of keys: filtering them here keeps the SQL plain.
            rows = [
                row
                for row in self._conn.execute(
                    "SELECT key_hash, org_id, created_at_ms, label FROM api_keys WHERE org_id = ?",
                    (org_id,),
                )
                if matches(row[0])
            ]
            if len(rows) > 1:
                raise ValueError(f"{key_or_id} names {len(rows)} keys; give more of the id")
            if not rows:
                return None
            key_hash, org, created, label = rows[0]
            self._conn.execute("DELETE FROM api_keys WHERE key_hash = ?", (key_hash,))
            self._verified_keys.pop(key_hash, None)
        return ApiKeyInfo(
            key_id=key_hash[:API_KEY_ID_LENGTH], org_id=org, created_at_ms=created, label=label
        )

    def delete_project(self, project_id: int) -> bool:
        """Delete the project's catalog row; False when there is none.

        The project's recorded data is not touched here: the caller refuses (or erases through
        the data lifecycle) first. A running server's cache keeps knowing the project, so this is
        for a stopped server (``replayd project delete`` checks).
        """
        with self._lock, _writing("delete the project"):
            deleted = self._conn.execute(
                "DELETE FROM projects WHERE project_id = ?", (project_id,)
            ).rowcount
            project = self._by_id.pop(project_id, None)
            if project is not None:
                self._by_key.pop(project.project_key, None)
        return deleted > 0

    # -- dashboard users and their login sessions ------------------------------------------------

    def organization_name(self, org_id: int) -> str | None:
        """The name of an organization, or None if there is none with that id."""
        with self._lock:
            row = self._conn.execute(
                "SELECT name FROM organizations WHERE org_id = ?", (org_id,)
            ).fetchone()
        return None if row is None else row[0]

    def create_user(self, email: str, password: str, org_id: int = DEFAULT_ORG_ID) -> DashboardUser:
        """A new dashboard user (password stored as a scrypt hash); :class:`UserExists` if the
        email is taken in any case; ValueError for an empty email or password."""
        email = email.strip()
        if not email or not password:
            raise ValueError("the email and the password must not be empty")
        stored = hash_password(password)  # the slow part, outside the lock
        created = _now_ms()
        with self._lock, _writing("create the user"):
            try:
                cursor = self._conn.execute(
                    "INSERT INTO users (org_id, email, email_key, password_hash, created_at_ms)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (org_id, email, email_key(email), stored, created),
                )
            except sqlite3.IntegrityError as error:
                if "email_key" in str(error):
                    raise UserExists(email) from error
                raise
        assert cursor.lastrowid is not None
        return DashboardUser(
            user_id=cursor.lastrowid, org_id=org_id, email=email, created_at_ms=created
        )

    def list_users(self, org_id: int | None = None) -> list[DashboardUser]:
        """Dashboard users (of one organization, or all), oldest first."""
        where, args = ("", ()) if org_id is None else (" WHERE org_id = ?", (org_id,))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users{where} ORDER BY user_id", args
            ).fetchall()
        return [_user(row) for row in rows]

    def delete_user(self, email: str) -> DashboardUser | None:
        """Delete the user with that email (any case) and its login sessions; None if none."""
        with self._lock, _writing("delete the user"):
            row = self._conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE email_key = ?", (email_key(email),)
            ).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM users WHERE user_id = ?", (row[0],))
        return _user(row)

    def check_login(self, email: str, password: str) -> DashboardUser | None:
        """The user whose email and password these are, else None. An unknown email costs one
        scrypt too, so the time taken does not tell whether the account exists."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE email_key = ?",
                (email_key(email),),
            ).fetchone()
        if row is None:
            check_password(password, decoy_hash())
            return None
        return _user(row[:-1]) if check_password(password, row[-1]) else None

    def create_login_session(self, user_id: int, now_ms: int, ttl_ms: int) -> str:
        """A new login session of the user, valid for ``ttl_ms``; returns its token (only the
        token's SHA-256 is stored). Expired sessions are removed in the same transaction."""
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
        with self._lock, _writing("create the login session"), atomic(self._conn):
            self._conn.execute("DELETE FROM login_sessions WHERE expires_at_ms <= ?", (now_ms,))
            self._conn.execute(
                "INSERT INTO login_sessions (token_hash, user_id, created_at_ms, expires_at_ms)"
                " VALUES (?, ?, ?, ?)",
                (hash_api_key(token), user_id, now_ms, now_ms + ttl_ms),
            )
        return token

    def login_session_user(self, token: str, now_ms: int) -> DashboardUser | None:
        """The user of an unexpired login session token, else None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join('u.' + c for c in _USER_COLUMNS.split(', '))}"
                " FROM login_sessions s JOIN users u ON u.user_id = s.user_id"
                " WHERE s.token_hash = ? AND s.expires_at_ms > ?",
                (hash_api_key(token), now_ms),
            ).fetchone()
        return None if row is None else _user(row)

    def delete_login_session(self, token: str) -> bool:
        """End a login session (logout); False if there was none."""
        with self._lock, _writing("delete the login session"):
            deleted = self._conn.execute(
                "DELETE FROM login_sessions WHERE token_hash = ?", (hash_api_key(token),)
            ).rowcount
        return deleted > 0


_USER_COLUMNS = "user_id, org_id, email, created_at_ms"


def _user(row: tuple) -> DashboardUser:
    return DashboardUser(user_id=row[0], org_id=row[1], email=row[2], created_at_ms=row[3])
