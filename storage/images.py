"""Mobile screenshots and web canvas frames, content-addressed: each image stored once, linked
to sessions by time.

Owns the tables ``image_blobs``, ``image_links``, ``image_usage`` and ``canvas_frames`` (the web
tracker's canvas uploads: a frame is linked to a canvas node of a session) (migrated through
``storage.schema.apply_migrations`` under the component name ``images``) in a SQLite file of their
own (``<db stem>-images.db`` beside the log by default). Why a file apart from the log's: SQLite
has one writer per file, and writing a 10 MB upload (with its fsync) in the log's file would hold
the log writer's commits behind it; in the catalog's file (which is the log's) the same. A blob
table rather than files beside the database: one transaction links every image of an upload
(stored all together or not at all), durability is SQLite's (WAL, ``synchronous=FULL``: the
commit is fsynced before :meth:`ImageStore.store` returns) with no fsync-and-rename dance of our
own, and a crash leaves no half-written or orphaned file.

The name of an image is the SHA-256 hex digest of its bytes; its content type is sniffed from
them (Android sends WebP named ``.jpeg``). A link is (project, session, capture time, hash); the
same upload sent again adds nothing. ``image_usage`` counts the links per (project, hash), so the
hashes a project stores most often (``imagesHashList``) are one indexed read, not a scan.

Every method runs SQL and belongs in a worker thread (``trio.to_thread.run_sync``). Writes share
one connection under a lock; reads have their own connection (WAL: readers never wait for the
writer).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from os import PathLike

import attrs

from storage.errors import ImagesUnavailable, is_database_wide
from storage.schema import apply_migrations
from storage.sqlite import atomic, connect, wal_truncate

IMAGES_COMPONENT = "images"
HASH_LIST_MAX = 40  # the reference's MAX_RETURNING_COUNT (MOBILE.md 2.9)
OTHER_CONTENT_TYPE = "application/octet-stream"

_MIGRATIONS: list[str] = [
    # 1: blobs by hash, links to sessions, per-project use counts.
    # The links are WITHOUT ROWID: the primary key is the row, so listing a session's images in
    # capture order (the second index) and finding one image of a session (the key) touch only
    # that session's rows. The blobs keep a rowid: their rows are large, and SQLite stores a big
    # row best in a rowid table (a WITHOUT ROWID row should stay small).
    """
    CREATE TABLE image_blobs (
        hash TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        stored_at_ms INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE image_links (
        project_id INTEGER NOT NULL,
        session_id INTEGER NOT NULL,
        hash TEXT NOT NULL REFERENCES image_blobs (hash),
        capture_ms INTEGER NOT NULL,
        received_at_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, session_id, hash, capture_ms)
    ) WITHOUT ROWID;
    CREATE INDEX image_links_capture ON image_links (project_id, session_id, capture_ms);
    CREATE TABLE image_usage (
        project_id INTEGER NOT NULL,
        hash TEXT NOT NULL,
        uses INTEGER NOT NULL,
        last_used_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, hash)
    ) WITHOUT ROWID;
    -- imagesHashList: a project's most used hashes, read from the front of this index (it holds
    -- the hash too: the primary key of a WITHOUT ROWID table is part of every index on it).
    CREATE INDEX image_usage_most_used ON image_usage (project_id, uses DESC, last_used_ms DESC);
    """,
    # 2: the web tracker's canvas frames (/v1/web/images): the same blobs, linked to a session's
    # canvas node by capture time. Not counted in image_usage: imagesHashList is the mobile SDKs'.
    """
    CREATE TABLE canvas_frames (
        project_id INTEGER NOT NULL,
        session_id INTEGER NOT NULL,
        node_id TEXT NOT NULL,
        capture_ms INTEGER NOT NULL,
        hash TEXT NOT NULL REFERENCES image_blobs (hash),
        received_at_ms INTEGER NOT NULL,
        PRIMARY KEY (project_id, session_id, node_id, capture_ms, hash)
    ) WITHOUT ROWID;
    CREATE INDEX canvas_frames_hash ON canvas_frames (project_id, session_id, hash);
    -- Erasure asks whether any frame still names a blob.
    CREATE INDEX canvas_frames_by_hash ON canvas_frames (hash);
    """,
    # 3: erasing a session's images (forget_sessions) drops a blob no link names any more: this
    # index answers "is this hash linked anywhere" without a scan of every link.
    """
    CREATE INDEX image_links_hash ON image_links (hash);
    """,
]


@attrs.frozen(slots=True)
class CapturedImage:
    """One screenshot as an upload carries it: when it was captured (epoch ms) and its bytes."""

    capture_ms: int
    data: bytes


@attrs.frozen(slots=True)
class StoredImage:
    """One image of a session: its hash, capture time (epoch ms), size in bytes and content type."""

    hash: str
    capture_ms: int
    size: int
    content_type: str


@attrs.frozen(slots=True)
class CanvasFrame:
    """One frame of a session's canvas: the canvas node, capture time (epoch ms), its image."""

    node_id: str
    capture_ms: int
    hash: str
    size: int
    content_type: str


@attrs.frozen(slots=True)
class StoreResult:
    """What one upload added: new links (to this session) and new blobs (never stored before)."""

    linked: int
    new_blobs: int


def image_hash(data: bytes) -> str:
    """The name of an image: the SHA-256 hex digest of its bytes."""
    return hashlib.sha256(data).hexdigest()


def sniff_content_type(data: bytes) -> str:
    """The image type the bytes say (JPEG, WebP, PNG), else ``application/octet-stream``.

    Only magic numbers: the SDKs' file names lie (Android R+ sends lossless WebP as ``.jpeg``).
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return OTHER_CONTENT_TYPE


@contextlib.contextmanager
def _unavailable_on_database_errors(what: str) -> Iterator[None]:
    """A full disk, an I/O error or a write lock held too long: 503 material, not a 500."""
    try:
        yield
    except sqlite3.Error as error:
        busy = (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY
        if busy or is_database_wide(error):
            raise ImagesUnavailable(f"could not {what}: {error}") from error
        raise


class ImageStore:
    """The images' SQLite database (see the module)."""

    def __init__(self, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | PathLike[str]) -> ImageStore:
        """Open (creating and migrating if needed) the images' database at ``path``."""
        # check_same_thread=False: used from worker threads, one at a time (the locks).
        # synchronous=FULL: a commit is on disk before the upload is acknowledged.
        writer = connect(path, synchronous="FULL", check_same_thread=False)
        try:
            apply_migrations(writer, IMAGES_COMPONENT, _MIGRATIONS)
            reader = connect(path, check_same_thread=False, create=False, query_only=True)
        except BaseException:
            writer.close()
            raise
        return cls(writer, reader)

    def close(self) -> None:
        """Close both connections."""
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()

    def store(
        self,
        project_id: int,
        session_id: int,
        images: Iterable[CapturedImage],
        *,
        received_at_ms: int,
    ) -> StoreResult:
        """Store every image of one upload and link it to the session, in one transaction.

        ``images`` is consumed inside the transaction, one image at a time (an upload is unpacked
        while it is stored, so it is never all in memory at once); if iterating raises, nothing of
        the upload is stored. Returns once the commit is durable.
        """
        linked = new_blobs = 0
        with (
            self._write_lock,
            _unavailable_on_database_errors("store the images"),
            atomic(self._writer) as conn,
        ):
            for image in images:
                blob, link = _store_one(conn, project_id, session_id, image, received_at_ms)
                new_blobs += blob
                linked += link
        return StoreResult(linked=linked, new_blobs=new_blobs)

    def store_canvas(
        self,
        project_id: int,
        session_id: int,
        frames: Iterable[tuple[str, CapturedImage]],
        *,
        received_at_ms: int,
    ) -> StoreResult:
        """Store the ``(canvas node id, image)`` frames of one canvas upload in one transaction.

        As :meth:`store`: consumed inside the transaction, all or nothing, durable on return.
        """
        linked = new_blobs = 0
        with (
            self._write_lock,
            _unavailable_on_database_errors("store the canvas frames"),
            atomic(self._writer) as conn,
        ):
            for node_id, image in frames:
                digest, blob = _store_blob(conn, image, received_at_ms)
                new_blobs += blob
                linked += conn.execute(
                    "INSERT INTO canvas_frames"
                    " (project_id, session_id, node_id, capture_ms, hash, received_at_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (project_id, session_id, node_id, image.capture_ms, digest, received_at_ms),
                ).rowcount
        return StoreResult(linked=linked, new_blobs=new_blobs)

    def session_canvas(self, project_id: int, session_id: int) -> list[CanvasFrame]:
        """A session's canvas frames by node id, then capture time; [] for an unknown session."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT f.node_id, f.capture_ms, f.hash, b.size, b.content_type"
                " FROM canvas_frames AS f JOIN image_blobs AS b ON b.hash = f.hash"
                " WHERE f.project_id = ? AND f.session_id = ?"
                " ORDER BY f.node_id, f.capture_ms, f.hash",
                (project_id, session_id),
            ).fetchall()
        return [CanvasFrame(*row) for row in rows]

    def canvas_image(
        self, project_id: int, session_id: int, digest: str
    ) -> tuple[str, bytes] | None:
        """(content type, bytes) of one canvas frame of this session by hash, or None."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT b.content_type, b.data"
                " FROM canvas_frames AS f INDEXED BY canvas_frames_hash"
                " JOIN image_blobs AS b ON b.hash = f.hash"
                " WHERE f.project_id = ? AND f.session_id = ? AND f.hash = ? LIMIT 1",
                (project_id, session_id, digest),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def forget_canvas(self, project_id: int, session_ids: Iterable[int]) -> int:
        """Erase the canvas frames of these sessions of the project; returns the frames removed.

        A blob goes too when no screenshot link or canvas frame names it any more. The hook the
        delete-user jobs and retention call for the web sessions they erase.
        """
        ids = sorted(set(session_ids))
        with (
            self._write_lock,
            _unavailable_on_database_errors("erase the canvas frames"),
            atomic(self._writer) as conn,
        ):
            return _forget_canvas(conn, project_id, ids)

    def session_images(self, project_id: int, session_id: int) -> list[StoredImage]:
        """A session's images in capture order (then by hash); [] for an unknown session."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT l.hash, l.capture_ms, b.size, b.content_type"
                " FROM image_links AS l INDEXED BY image_links_capture"
                " JOIN image_blobs AS b ON b.hash = l.hash"
                " WHERE l.project_id = ? AND l.session_id = ?"
                " ORDER BY l.capture_ms, l.hash",
                (project_id, session_id),
            ).fetchall()
        return [StoredImage(*row) for row in rows]

    def image(
        self, project_id: int, session_id: int, digest: str
    ) -> tuple[StoredImage, bytes] | None:
        """One image of a session by hash (its first capture time) and its bytes, or None when
        this session of this project has no such image (another project's image included)."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT b.hash, l.capture_ms, b.size, b.content_type, b.data"
                " FROM image_links AS l JOIN image_blobs AS b ON b.hash = l.hash"
                " WHERE l.project_id = ? AND l.session_id = ? AND l.hash = ?"
                " ORDER BY l.capture_ms LIMIT 1",
                (project_id, session_id, digest),
            ).fetchone()
        if row is None:
            return None
        return StoredImage(*row[:4]), row[4]

    def frequent_hashes(self, project_id: int, limit: int = HASH_LIST_MAX) -> list[str]:
        """The hashes this project links most often (then most recently), at most ``limit``
        (``imagesHashList`` of the mobile start answer; [] for a new project)."""
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT hash FROM image_usage INDEXED BY image_usage_most_used"
                " WHERE project_id = ? ORDER BY uses DESC, last_used_ms DESC LIMIT ?",
                (project_id, min(limit, HASH_LIST_MAX)),
            ).fetchall()
        return [row[0] for row in rows]

    def forget_sessions(self, project_id: int, session_ids: Sequence[int]) -> int:
        """Erase the images of these sessions of the project (the data lifecycle: user deletion,
        retention): their links, their share of the usage counts, and every blob no other link
        names, and their canvas frames; one transaction. Returns the links and frames removed.
        ``secure_delete`` (storage.sqlite) zeroes the freed bytes; :meth:`checkpoint` then empties
        the WAL."""
        removed = 0
        with (
            self._write_lock,
            _unavailable_on_database_errors("erase the images"),
            atomic(self._writer) as conn,
        ):
            for session_id in session_ids:
                rows = conn.execute(
                    "DELETE FROM image_links WHERE project_id = ? AND session_id = ?"
                    " RETURNING hash",
                    (project_id, session_id),
                ).fetchall()
                removed += len(rows)
                uses = collections.Counter(str(row[0]) for row in rows)
                for digest, count in uses.items():
                    conn.execute(
                        "UPDATE image_usage SET uses = uses - ? WHERE project_id = ? AND hash = ?",
                        (count, project_id, digest),
                    )
                    conn.execute(
                        "DELETE FROM image_usage WHERE project_id = ? AND hash = ? AND uses <= 0",
                        (project_id, digest),
                    )
                    conn.execute(
                        "DELETE FROM image_blobs WHERE hash = ? AND NOT EXISTS"
                        " (SELECT 1 FROM image_links WHERE hash = ?) AND NOT EXISTS"
                        " (SELECT 1 FROM canvas_frames INDEXED BY canvas_frames_by_hash"
                        " WHERE hash = ?)",
                        (digest, digest, digest),
                    )
            # The web tracker's canvas frames of these sessions go in the same transaction.
            removed += _forget_canvas(conn, project_id, sorted(set(session_ids)))
        return removed

    def checkpoint(self) -> bool:
        """Empty the images' WAL into their file (:func:`storage.sqlite.wal_truncate`)."""
        with self._write_lock, _unavailable_on_database_errors("checkpoint the images"):
            return wal_truncate(self._writer)


def _forget_canvas(conn: sqlite3.Connection, project_id: int, ids: Sequence[int]) -> int:
    """Delete the canvas frames of these sessions and every blob nothing names any more (inside
    the caller's transaction); returns the frames removed."""
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        hashes = [
            row[0]
            for row in conn.execute(
                "DELETE FROM canvas_frames"
                f" WHERE project_id = ? AND session_id IN ({marks}) RETURNING hash",
                (project_id, *chunk),
            )
        ]
        removed += len(hashes)
        for digest in set(hashes):
            conn.execute(
                "DELETE FROM image_blobs WHERE hash = ?"
                " AND NOT EXISTS (SELECT 1 FROM canvas_frames"
                " INDEXED BY canvas_frames_by_hash WHERE hash = ?)"
                " AND NOT EXISTS (SELECT 1 FROM image_links WHERE hash = ?)",
                (digest, digest, digest),
            )
    return removed


def _store_one(
    conn: sqlite3.Connection,
    project_id: int,
    session_id: int,
    image: CapturedImage,
    received_at_ms: int,
) -> tuple[bool, bool]:
    """Store one image (unless its hash is stored) and link it; (new blob?, new link?)."""
    digest, new_blob = _store_blob(conn, image, received_at_ms)
    new_link = conn.execute(
        "INSERT INTO image_links (project_id, session_id, hash, capture_ms, received_at_ms)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (project_id, session_id, digest, image.capture_ms, received_at_ms),
    ).rowcount
    if new_link:
        conn.execute(
            "INSERT INTO image_usage (project_id, hash, uses, last_used_ms) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (project_id, hash) DO UPDATE SET uses = uses + 1,"
            " last_used_ms = max(last_used_ms, excluded.last_used_ms)",
            (project_id, digest, received_at_ms),
        )
    return new_blob, new_link > 0


def _store_blob(
    conn: sqlite3.Connection, image: CapturedImage, received_at_ms: int
) -> tuple[str, bool]:
    """Store the image's bytes unless its hash is stored; (its hash, new blob?)."""
    digest = image_hash(image.data)
    new_blob = conn.execute(
        "INSERT INTO image_blobs (hash, size, content_type, stored_at_ms, data)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
        (digest, len(image.data), sniff_content_type(image.data), received_at_ms, image.data),
    ).rowcount
    return digest, new_blob > 0
