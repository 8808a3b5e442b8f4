"""SQLite connection helpers shared by the log, the catalog and the projections.

Owns how a connection is opened (WAL, busy timeout, ``synchronous``, foreign keys, explicit
transactions, ``secure_delete``) and the ``atomic`` transaction context manager. Holds no schema
and no queries.

Every connection runs with ``PRAGMA secure_delete = ON``: SQLite then overwrites with zeros
whatever it frees (a deleted row, the old copy of an updated row, a page that leaves a b-tree).
Only then does an erasure (user deletion, retention) leave no copy of the erased bytes in free
space of the files; the write-ahead log's old frames are the one other place, emptied by
:func:`wal_truncate`. It costs a memset per freed cell and writes of freed pages, not reads.

Connections are opened with ``isolation_level=None``: the :mod:`sqlite3` module then never opens a
transaction behind our back, so every transaction is the one ``atomic`` (or the caller) began.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
DEFAULT_BUSY_TIMEOUT_MS = 5000

# Savepoint names only need to be unique among the savepoints open on one connection; a global
# counter is the simplest way to get that (``next`` on ``itertools.count`` is atomic under the GIL).
_savepoint_ids = itertools.count(1)


class StatementCounts:
    """How many SQL statements the connections of this process ran, by what each connection is
    for (its ``label``) and the statement's first keyword (SELECT, INSERT, BEGIN...).

    A diagnostic (``serve --count-sql-statements``, the benchmark's statements per request):
    while off, connections are opened without a trace callback and nothing is counted. SQLite
    calls the callback once per statement run (each row of an ``executemany`` included), in
    whatever thread runs it, hence the lock.
    """

    def __init__(self) -> None:
        self.enabled = False
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def watch(self, conn: sqlite3.Connection, label: str) -> None:
        """Count the statements of ``conn`` under ``label`` (when counting is on)."""
        if not self.enabled:
            return

        def counted(statement: str) -> None:
            keyword = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
            with self._lock:
                self._counts[(label, keyword)] += 1

        conn.set_trace_callback(counted)

    def snapshot(self) -> dict[tuple[str, str], int]:
        """``(label, keyword) -> statements run`` so far."""
        with self._lock:
            return dict(self._counts)


STATEMENTS = StatementCounts()
"""The process's statement counts (off unless the server was started to count them)."""


def connect(
    path: str | os.PathLike[str],
    *,
    label: str = "other",
    synchronous: str = "FULL",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    check_same_thread: bool = True,
    create: bool = True,
    query_only: bool = False,
) -> sqlite3.Connection:
    """Open a connection in WAL mode with ``busy_timeout``, ``synchronous`` and foreign keys on.

    ``create=False`` refuses to create a missing database file (readers must not conjure an empty
    database). ``query_only=True`` makes SQLite refuse every write on this connection.
    ``check_same_thread=False`` is for a connection owned by one logical user that hops between
    worker threads (``trio.to_thread``), never for sharing a connection between concurrent users.
    ``label`` says what the connection is for in :data:`STATEMENTS`.
    """
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(
            f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}, not {synchronous!r}"
        )
    target = Path(path)
    if create:
        target.parent.mkdir(parents=True, exist_ok=True)
        database, uri = str(target), False
    else:
        # mode=rw: open an existing file read-write (WAL readers need the -shm file) but never
        # create one.
        database, uri = target.absolute().as_uri() + "?mode=rw", True
    conn = sqlite3.connect(
        database,
        uri=uri,
        isolation_level=None,
        check_same_thread=check_same_thread,
        # Our own busy_timeout pragma below is authoritative; this only covers the open itself.
        timeout=busy_timeout_ms / 1000,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        journal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(journal).lower() != "wal":
            raise sqlite3.OperationalError(f"could not switch {target} to WAL (got {journal!r})")
        conn.execute(f"PRAGMA synchronous = {mode}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")  # see the module docstring
        if query_only:
            conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    STATEMENTS.watch(conn, label)
    return conn


def wal_truncate(conn: sqlite3.Connection) -> bool:
    """``PRAGMA wal_checkpoint(TRUNCATE)``: copy every WAL frame into the database file and cut
    the WAL to 0 bytes. True when it completed; False when a reader on an older snapshot kept it
    from doing so (after the busy timeout): the caller tries again later. Holds the write lock
    while it copies, so it takes as long as the WAL is big (bounded by the auto-checkpoint)."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(busy) == 0


@contextlib.contextmanager
def atomic(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: ``BEGIN IMMEDIATE``/``COMMIT``, rolled back on error.

    Nested use (the connection is already in a transaction) opens a ``SAVEPOINT`` instead, so a
    helper that needs atomicity can be called both on its own and inside a larger transaction.
    ``IMMEDIATE`` takes the write lock up front: a writer waits (``busy_timeout``) at ``BEGIN``
    rather than failing half-way through with a lock upgrade error.
    """
    if conn.in_transaction:
        name = f"replayd_sp_{next(_savepoint_ids)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return

    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (I/O error) may leave the transaction open; SQLite may also have rolled
        # it back already (some errors do), hence the check.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
