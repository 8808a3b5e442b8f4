"""The v3 API's apps, users and seen nonces (V3.md 3, 9.1).

Owns the tables ``v3_apps``, ``v3_users`` and ``v3_nonces`` (component ``v3_catalog`` of
``storage.schema.apply_migrations``), in the catalog's database. An app (positive integer id, 50
lower-case alphanumeric characters of secret) belongs to a project; users belong to the app's
project, so every app of a project sees them. A user's password is stored twice: as an scrypt
hash (what a login checks) and as the SHA-1 hex the published client's signature is built on
(compatibility only: the signature cannot be checked without it).

Every method runs SQL: call it from a worker thread (``trio.to_thread.run_sync``); a lock
serialises the connection.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import string
import threading
import time
from os import PathLike

import attrs

from storage.passwords import check_password, hash_password
from storage.schema import apply_migrations
from storage.sqlite import atomic, connect

APP_SECRET_LENGTH = 50
_SECRET_ALPHABET = string.ascii_lowercase + string.digits

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE v3_apps (
        aid INTEGER PRIMARY KEY CHECK (aid > 0),
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX v3_apps_project ON v3_apps (project_id);
    CREATE TABLE v3_users (
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        password_scrypt TEXT NOT NULL,
        password_sha1 TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, name)
    );
    CREATE TABLE v3_nonces (
        aid INTEGER NOT NULL,
        user TEXT NOT NULL,
        nonce TEXT NOT NULL,
        seen_at_ms INTEGER NOT NULL,
        PRIMARY KEY (aid, user, nonce)
    );
    CREATE INDEX v3_nonces_seen ON v3_nonces (seen_at_ms);
    """,
]


@attrs.frozen(slots=True)
class V3App:
    """A registered v3 app: its id (``aid``), project and secret."""

    aid: int
    project_id: int
    name: str
    secret: str


@attrs.frozen(slots=True)
class V3User:
    """A v3 user of a project (no password: only its hashes are stored)."""

    project_id: int
    name: str
    email: str
    password_sha1: str


class UserExists(Exception):
    """``user/new`` for a name the project already has."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class V3Catalog:
    """Apps, users and nonces of the v3 API in one SQLite database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._lock:
            apply_migrations(conn, "v3_catalog", _MIGRATIONS)

    @classmethod
    def open(cls, path: str | PathLike[str]) -> V3Catalog:
        """Open (creating the tables if needed) the v3 catalog in the database at ``path``."""
        return cls(connect(path, check_same_thread=False))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def create_app(self, name: str, project_id: int) -> V3App:
        """A new app of the project with a fresh 50-character secret."""
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(APP_SECRET_LENGTH))
        with self._lock, atomic(self._conn):
            cursor = self._conn.execute(
                "INSERT INTO v3_apps (project_id, name, secret, created_at_ms) VALUES (?, ?, ?, ?)",
                (project_id, name, secret, _now_ms()),
            )
            aid = cursor.lastrowid
        assert aid is not None and aid > 0
        return V3App(aid, project_id, name, secret)

    def get_app(self, aid: int) -> V3App | None:
        """The app ``aid``, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT aid, project_id, name, secret FROM v3_apps WHERE aid = ?", (aid,)
            ).fetchone()
        return V3App(*row) if row else None

    def create_user(self, project_id: int, name: str, email: str, password: str) -> V3User:
        """Register a user of the project; :class:`UserExists` if the name is taken."""
        sha1 = hashlib.sha1(password.encode("utf-8")).hexdigest()
        scrypt = hash_password(password)
        with self._lock:
            try:
                with atomic(self._conn):
                    self._conn.execute(
                        "INSERT INTO v3_users (project_id, name, email, password_scrypt,"
                        " password_sha1, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                        (project_id, name, email, scrypt, sha1, _now_ms()),
                    )
            except sqlite3.IntegrityError as exc:
                raise UserExists(name) from exc
        return V3User(project_id, name, email, sha1)

    def get_user(self, project_id: int, name: str) -> V3User | None:
        """The user ``name`` of the project, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT project_id, name, email, password_sha1 FROM v3_users"
                " WHERE project_id = ? AND name = ?",
                (project_id, name),
            ).fetchone()
        return V3User(*row) if row else None

    def check_login(self, project_id: int, name: str, password: str) -> bool:
        """True if the user exists and the password matches its scrypt hash."""
        with self._lock:
            row = self._conn.execute(
                "SELECT password_scrypt FROM v3_users WHERE project_id = ? AND name = ?",
                (project_id, name),
            ).fetchone()
        return row is not None and check_password(password, row[0])

    def use_nonce(self, aid: int, user: str, nonce: str, window_ms: int) -> bool:
        """Record the nonce as seen; False if (aid, user, nonce) was already seen within the
        window. Nonces older than the window are forgotten in the same transaction."""
        now = _now_ms()
        with self._lock, atomic(self._conn):
            self._conn.execute("DELETE FROM v3_nonces WHERE seen_at_ms < ?", (now - window_ms,))
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO v3_nonces (aid, user, nonce, seen_at_ms)"
                " VALUES (?, ?, ?, ?)",
                (aid, user, nonce, now),
            )
            return cursor.rowcount == 1
