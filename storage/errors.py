"""Storage errors shared by the log and the catalog, whatever the backend behind them.

The log's errors (:class:`LogError` and its subclasses) are raised by :class:`storage.log.EventLog`
and by every log recorder (:mod:`storage.recorder`), so callers (the engine, the API) name no
backend. The API answers :class:`StorageUnavailable` (and its subclasses, e.g.
:class:`LogUnavailable`) with 503 and ``Retry-After``: the failure is the machine's (full disk,
I/O error, read-only file), not the request's, and it heals by itself. Knows nothing of HTTP;
:func:`is_database_wide` knows SQLite's result codes (the catalog and the SQLite recorder share it).
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


class ImagesUnavailable(StorageUnavailable):
    """An image upload could not be stored because the images' database cannot be written."""


def is_database_wide(error: BaseException) -> bool:
    """Whether ``error`` is a failure of the database as a whole (classified by its result code)."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.Error)
        and code is not None
        and (code & 0xFF) in _DATABASE_WIDE_CODES
    )


class LogError(Exception):
    """Base class of the log's errors."""


class LogClosed(LogError):
    """The writer is not running (not started yet, or shut down). The record was not stored."""


class LogOverloaded(LogError):
    """The append queue stayed full for ``wait_timeout`` seconds, or another writer held the
    database's write lock too long. The record was not stored.

    The API answers 503 with ``Retry-After``; a retry is safe.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LogErasureRefused(LogError, ValueError):
    """An erasure was asked to erase what must stay (an erasure record). Nothing was deleted."""


class LogWriteFailed(LogError):
    """The transaction that held the record failed; it was not stored (see ``__cause__``)."""


class LogUnavailable(LogError, StorageUnavailable):
    """The log database as a whole cannot be written (disk full, I/O error, read-only file).

    Nothing was stored; the API answers 503 with ``Retry-After: retry_after``. The writer keeps
    going and succeeds again by itself once the cause is gone (space freed, say).
    """
