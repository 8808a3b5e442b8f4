"""Storage errors shared by the log and the catalog: a database that cannot be written at all.

Knows SQLite's result codes, nothing of HTTP. The API answers :class:`StorageUnavailable` (and its
subclasses, e.g. ``storage.log.LogUnavailable``) with 503 and ``Retry-After``: the failure is the
machine's (full disk, I/O error, read-only file), not the request's, and it heals by itself.
"""

from __future__ import annotations

import sqlite3

# How long a client is told to wait when the database cannot be written: long enough for an
# operator (or a log rotation) to free space, short enough that no session waits for long.
UNAVAILABLE_RETRY_AFTER_S = 5.0

# Primary result codes (the low byte of an extended code) that concern the database file as a
# whole rather than the rows of one request: retrying the same request later can succeed.
_DATABASE_WIDE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,  # disk (or max_page_count) full
        sqlite3.SQLITE_IOERR,  # every SQLITE_IOERR_* (write, fsync, short read, ...)
        sqlite3.SQLITE_READONLY,  # file or directory made read-only, or a read-only mount
        sqlite3.SQLITE_CANTOPEN,  # the journal / WAL file cannot be created
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_NOLFS,
        sqlite3.SQLITE_PROTOCOL,  # WAL lock protocol failure
        sqlite3.SQLITE_PERM,
    }
)


class StorageUnavailable(Exception):
    """The database cannot be written right now; nothing was stored. Retry after ``retry_after``."""

    def __init__(self, message: str, *, retry_after: float = UNAVAILABLE_RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CatalogUnavailable(StorageUnavailable):
    """A catalog write (project, API key) failed because the database cannot be written."""


def is_database_wide(error: BaseException) -> bool:
    """Whether ``error`` is a failure of the database as a whole (classified by its result code)."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.Error)
        and code is not None
        and (code & 0xFF) in _DATABASE_WIDE_CODES
    )
