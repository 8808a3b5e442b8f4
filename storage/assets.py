"""The asset cache: stylesheets, fonts and images that recordings reference, content-addressed.

Owns the tables ``asset_blobs``, ``asset_urls``, ``asset_children``, ``asset_session_refs`` and
``asset_project_bytes`` (component ``assets`` of ``storage.schema.apply_migrations``) in a SQLite
file of their own, ``<db stem>-assets.db`` beside the log. Why SQLite and not files in a folder,
and why a file apart: the same reasons as the mobile images (:mod:`storage.images`): one
transaction stores the bytes, their URL and the project's byte count together (a crash leaves no
orphaned or half-written file, and the per-project cap is exact), and SQLite allows one writer
per file, so a fetched 2 MB font never holds the log writer's or the projector's commits.

- A blob is named by the SHA-256 hex digest of its bytes and stored once, whichever project or
  URL brought it (``asset_blobs``).
- ``asset_urls`` maps (project, absolute URL) -> hash, with the content type and when it was
  fetched. The first fetch wins: a replay shows what the site served when it was recorded, even
  after the site changes the file at the same URL.
- ``asset_children``: the URLs a cached stylesheet references (its fonts, images, imports),
  rewritten to ``/assets/<hash>`` inside the cached bytes; sessions referencing the sheet
  reference those too.
- ``asset_session_refs``: which sessions referenced which URLs, so that erasing sessions
  (:meth:`AssetStore.forget_sessions`, for the delete-user jobs and retention) removes the URLs
  no other session references, and the blobs no URL references (with ``secure_delete``).
- Caps: ``max_asset_bytes`` per blob and ``max_project_bytes`` per project (the sum of the
  distinct blobs its URLs name); over a cap, :meth:`AssetStore.store` raises
  :class:`AssetTooLarge` and stores nothing.

Every method runs SQL and belongs in a worker thread. Writes share one connection under a lock;
reads have their own connection (WAL).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from os import PathLike

import attrs

from storage.schema import apply_migrations
from storage.sqlite import atomic, connect

ASSETS_COMPONENT = "assets"
ASSET_PATH_PREFIX = "/assets/"
DEFAULT_MAX_ASSET_BYTES = 10 * 2**20
DEFAULT_MAX_PROJECT_BYTES = 1 * 2**30
# How far the children of a stylesheet are followed when a session's references are noted
# (a sheet imports a sheet that names a font: depth 2).
CHILD_DEPTH = 3
_CHUNK = 500  # values per IN (...) list: far below SQLite's variable limit

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE asset_blobs (
        hash TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        stored_at_ms INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE asset_urls (
        project_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        hash TEXT NOT NULL REFERENCES asset_blobs (hash),
        content_type TEXT NOT NULL,
        fetched_at_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, url)
    ) WITHOUT ROWID;
    CREATE INDEX asset_urls_hash ON asset_urls (hash, project_id);
    CREATE TABLE asset_children (
        project_id INTEGER NOT NULL,
        parent_url TEXT NOT NULL,
        child_url TEXT NOT NULL,
        PRIMARY KEY (project_id, parent_url, child_url)
    ) WITHOUT ROWID;
    CREATE TABLE asset_session_refs (
        project_id INTEGER NOT NULL,
        session_id INTEGER NOT NULL,
        url TEXT NOT NULL,
        PRIMARY KEY (project_id, session_id, url)
    ) WITHOUT ROWID;
    CREATE INDEX asset_session_refs_url ON asset_session_refs (project_id, url);
    CREATE TABLE asset_project_bytes (
        project_id INTEGER PRIMARY KEY,
        bytes INTEGER NOT NULL
    );
    """,
]


class AssetTooLarge(ValueError):
    """The asset is over the per-asset cap, or would take its project over the per-project cap."""


@attrs.frozen(slots=True)
class StoredAsset:
    """One cached URL of a project: its blob's hash, size, type and when it was fetched."""

    url: str
    hash: str
    size: int
    content_type: str
    fetched_at_ms: int

    @property
    def path(self) -> str:
        """Where replayd serves it: ``/assets/<sha256>``."""
        return asset_path(self.hash)


def asset_hash(data: bytes) -> str:
    """The name of a blob: the SHA-256 hex digest of its bytes."""
    return hashlib.sha256(data).hexdigest()


def asset_path(digest: str) -> str:
    """The cookie-less path replayd serves a blob at."""
    return ASSET_PATH_PREFIX + digest


def _chunks(values: Sequence[str] | Sequence[int]) -> Iterable[Sequence[str] | Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class AssetStore:
    """The asset cache's SQLite database (see the module)."""

    def __init__(
        self,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        max_asset_bytes: int,
        max_project_bytes: int,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self.max_asset_bytes = max_asset_bytes
        self.max_project_bytes = max_project_bytes

    @classmethod
    def open(
        cls,
        path: str | PathLike[str],
        *,
        max_asset_bytes: int = DEFAULT_MAX_ASSET_BYTES,
        max_project_bytes: int = DEFAULT_MAX_PROJECT_BYTES,
    ) -> AssetStore:
        """Open (creating and migrating if needed) the asset cache at ``path``."""
        writer = connect(path, synchronous="NORMAL", check_same_thread=False)
        try:
            # Erased blobs are overwritten with zeros, not left in free pages (erasure means it).
            writer.execute("PRAGMA secure_delete = ON")
            apply_migrations(writer, ASSETS_COMPONENT, _MIGRATIONS)
            reader = connect(path, check_same_thread=False, create=False, query_only=True)
        except BaseException:
            writer.close()
            raise
        return cls(
            writer,
            reader,
            max_asset_bytes=max_asset_bytes,
            max_project_bytes=max_project_bytes,
        )

    def close(self) -> None:
        """Close both connections."""
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()

    # -- writes ----------------------------------------------------------------------------------

    def note_references(self, project_id: int, session_id: int, urls: Iterable[str]) -> None:
        """Record that a session referenced ``urls`` (and the children of those already cached)."""
        wanted = list(dict.fromkeys(urls))
        if not wanted:
            return
        with self._write_lock, atomic(self._writer) as conn:
            seen = set(wanted)
            level = wanted
            for _ in range(CHILD_DEPTH):
                children = [
                    child for child in _children_of(conn, project_id, level) if child not in seen
                ]
                seen.update(children)
                level = children
                if not level:
                    break
            conn.executemany(
                "INSERT INTO asset_session_refs (project_id, session_id, url) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(project_id, session_id, url) for url in seen],
            )

    def store(
        self,
        project_id: int,
        url: str,
        data: bytes,
        content_type: str,
        *,
        fetched_at_ms: int,
        children: Iterable[str] = (),
    ) -> StoredAsset:
        """Cache ``data`` as ``url`` of the project (unless the URL is cached: first fetch wins).

        ``children``: the URLs the bytes reference (a stylesheet's fonts and images).
        :class:`AssetTooLarge` when a cap would be passed; nothing is stored then.
        """
        if len(data) > self.max_asset_bytes:
            raise AssetTooLarge(f"{len(data)} bytes is over the per-asset cap")
        digest = asset_hash(data)
        with self._write_lock, atomic(self._writer) as conn:
            existing = _stored(conn, project_id, url)
            if existing is not None:
                return existing
            has_blob = (
                conn.execute(
                    "SELECT 1 FROM asset_urls INDEXED BY asset_urls_hash"
                    " WHERE hash = ? AND project_id = ? LIMIT 1",
                    (digest, project_id),
                ).fetchone()
                is not None
            )
            if not has_blob:
                used = _project_bytes(conn, project_id)
                if used + len(data) > self.max_project_bytes:
                    raise AssetTooLarge(f"the project's asset cache is full ({used} bytes)")
                conn.execute(
                    "INSERT INTO asset_project_bytes (project_id, bytes) VALUES (?, ?)"
                    " ON CONFLICT (project_id) DO UPDATE SET bytes = bytes + excluded.bytes",
                    (project_id, len(data)),
                )
            conn.execute(
                "INSERT INTO asset_blobs (hash, size, stored_at_ms, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (hash) DO NOTHING",
                (digest, len(data), fetched_at_ms, data),
            )
            conn.execute(
                "INSERT INTO asset_urls (project_id, url, hash, content_type, fetched_at_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                (project_id, url, digest, content_type, fetched_at_ms),
            )
            conn.executemany(
                "INSERT INTO asset_children (project_id, parent_url, child_url) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(project_id, url, child) for child in dict.fromkeys(children)],
            )
            # The sessions that referenced the sheet reference its children as well.
            conn.execute(
                "INSERT INTO asset_session_refs (project_id, session_id, url)"
                " SELECT r.project_id, r.session_id, c.child_url"
                " FROM asset_session_refs AS r INDEXED BY asset_session_refs_url"
                " JOIN asset_children AS c"
                " ON c.project_id = r.project_id AND c.parent_url = r.url"
                " WHERE r.project_id = ? AND r.url = ? ON CONFLICT DO NOTHING",
                (project_id, url),
            )
        return StoredAsset(url, digest, len(data), content_type, fetched_at_ms)

    def forget_sessions(self, project_id: int, session_ids: Iterable[int]) -> int:
        """Erase what these sessions of the project brought into the cache; returns URLs removed.

        A URL goes when no other session references it, a blob when no URL of any project names
        it (overwritten on disk: ``secure_delete``). The hook the delete-user jobs and retention
        call next to the projections' ``forget_sessions``.
        """
        ids = sorted(set(session_ids))
        if not ids:
            return 0
        with self._write_lock, atomic(self._writer) as conn:
            urls: set[str] = set()
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                params = (project_id, *chunk)
                urls.update(
                    row[0]
                    for row in conn.execute(
                        "SELECT url FROM asset_session_refs"
                        f" WHERE project_id = ? AND session_id IN ({marks})",
                        params,
                    )
                )
                conn.execute(
                    "DELETE FROM asset_session_refs"
                    f" WHERE project_id = ? AND session_id IN ({marks})",
                    params,
                )
            orphans = [
                url
                for url in sorted(urls)
                if conn.execute(
                    "SELECT 1 FROM asset_session_refs INDEXED BY asset_session_refs_url"
                    " WHERE project_id = ? AND url = ? LIMIT 1",
                    (project_id, url),
                ).fetchone()
                is None
            ]
            _remove_urls(conn, project_id, orphans)
        return len(orphans)

    def forget_project(self, project_id: int) -> int:
        """Erase every cached URL of a project (a deleted project); returns URLs removed."""
        with self._write_lock, atomic(self._writer) as conn:
            urls = [
                row[0]
                for row in conn.execute(
                    "SELECT url FROM asset_urls WHERE project_id = ?", (project_id,)
                )
            ]
            conn.execute("DELETE FROM asset_session_refs WHERE project_id = ?", (project_id,))
            _remove_urls(conn, project_id, urls)
            conn.execute("DELETE FROM asset_project_bytes WHERE project_id = ?", (project_id,))
        return len(urls)

    # -- reads -----------------------------------------------------------------------------------

    def cached_urls(self, project_id: int, urls: Iterable[str]) -> set[str]:
        """Which of ``urls`` the project has cached."""
        wanted = list(dict.fromkeys(urls))
        found: set[str] = set()
        with self._read_lock:
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                found.update(
                    row[0]
                    for row in self._reader.execute(
                        f"SELECT url FROM asset_urls WHERE project_id = ? AND url IN ({marks})",
                        (project_id, *chunk),
                    )
                )
        return found

    def lookup(self, project_id: int, url: str) -> StoredAsset | None:
        """The cached copy of ``url`` for the project, or None."""
        with self._read_lock:
            return _stored(self._reader, project_id, url)

    def path_of(self, project_id: int, url: str) -> str | None:
        """``(project_id, absolute_url) -> "/assets/<sha256>" | None``: the replay stream's lookup.

        The replay stream rewrites each URL of the URL-based messages (60, 61, 71, 73) with this
        (``engine.asset_refs.plain_message`` takes it as its resolver, bound to the session's
        project); None leaves the original absolute URL. ``url`` must be absolute with no
        fragment, as ``engine.asset_refs.absolute_url`` makes it.
        """
        stored = self.lookup(project_id, url)
        return None if stored is None else stored.path

    def paths_of(self, project_id: int, urls: Iterable[str]) -> dict[str, str]:
        """:meth:`path_of` for many URLs in one read: the cached ones only."""
        wanted = list(dict.fromkeys(urls))
        found: dict[str, str] = {}
        with self._read_lock:
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                for url, digest in self._reader.execute(
                    f"SELECT url, hash FROM asset_urls WHERE project_id = ? AND url IN ({marks})",
                    (project_id, *chunk),
                ):
                    found[url] = asset_path(digest)
        return found

    def blob(self, digest: str) -> tuple[str, bytes] | None:
        """(content type, bytes) of a blob by hash, or None; what ``GET /assets/<hash>`` serves."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT u.content_type, b.data FROM asset_blobs AS b"
                " JOIN asset_urls AS u INDEXED BY asset_urls_hash ON u.hash = b.hash"
                " WHERE b.hash = ? LIMIT 1",
                (digest,),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def project_bytes(self, project_id: int) -> int:
        """Bytes the project's cache holds (its distinct blobs), what the per-project cap limits."""
        with self._read_lock:
            return _project_bytes(self._reader, project_id)

    def session_urls(self, project_id: int, session_id: int) -> list[str]:
        """The URLs a session referenced (sorted), cached or not."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT url FROM asset_session_refs WHERE project_id = ? AND session_id = ?"
                " ORDER BY url",
                (project_id, session_id),
            ).fetchall()
        return [row[0] for row in rows]


def _stored(conn: sqlite3.Connection, project_id: int, url: str) -> StoredAsset | None:
    row = conn.execute(
        "SELECT u.url, u.hash, b.size, u.content_type, u.fetched_at_ms"
        " FROM asset_urls AS u JOIN asset_blobs AS b ON b.hash = u.hash"
        " WHERE u.project_id = ? AND u.url = ?",
        (project_id, url),
    ).fetchone()
    return None if row is None else StoredAsset(*row)


def _project_bytes(conn: sqlite3.Connection, project_id: int) -> int:
    row = conn.execute(
        "SELECT bytes FROM asset_project_bytes WHERE project_id = ?", (project_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _children_of(conn: sqlite3.Connection, project_id: int, urls: Sequence[str]) -> list[str]:
    found: list[str] = []
    for chunk in _chunks(urls):
        marks = ",".join("?" * len(chunk))
        found.extend(
            row[0]
            for row in conn.execute(
                "SELECT child_url FROM asset_children"
                f" WHERE project_id = ? AND parent_url IN ({marks})",
                (project_id, *chunk),
            )
        )
    return found


def _remove_urls(conn: sqlite3.Connection, project_id: int, urls: Sequence[str]) -> None:
    """Delete these URLs of the project, fix its byte count, and delete blobs nobody names."""
    for url in urls:
        row = conn.execute(
            "DELETE FROM asset_urls WHERE project_id = ? AND url = ? RETURNING hash",
            (project_id, url),
        ).fetchone()
        conn.execute(
            "DELETE FROM asset_children WHERE project_id = ? AND parent_url = ?",
            (project_id, url),
        )
        if row is None:
            continue
        digest = row[0]
        size_row = conn.execute("SELECT size FROM asset_blobs WHERE hash = ?", (digest,)).fetchone()
        still_here = conn.execute(
            "SELECT 1 FROM asset_urls INDEXED BY asset_urls_hash"
            " WHERE hash = ? AND project_id = ? LIMIT 1",
            (digest, project_id),
        ).fetchone()
        if still_here is None and size_row is not None:
            conn.execute(
                "UPDATE asset_project_bytes SET bytes = max(bytes - ?, 0) WHERE project_id = ?",
                (size_row[0], project_id),
            )
        anyone = conn.execute(
            "SELECT 1 FROM asset_urls INDEXED BY asset_urls_hash WHERE hash = ? LIMIT 1",
            (digest,),
        ).fetchone()
        if anyone is None:
            conn.execute("DELETE FROM asset_blobs WHERE hash = ?", (digest,))
