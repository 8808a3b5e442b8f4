"""Point-in-time copies of SQLite files with SQLite's online backup API, and checks of a copy.

:func:`copy_database` copies one database while other processes keep writing it: the copy is
made in a single backup step, which reads the source inside one read transaction (in WAL mode
that blocks no writer) and so is the database as of one instant, whatever commits meanwhile. It
is written beside its destination under a temporary name and renamed into place once complete,
so a destination name only ever holds a whole copy.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import attrs

from storage.sqlite import connect

_PARTIAL_SUFFIX = ".partial"


@attrs.frozen(slots=True)
class CopyResult:
    """One copied file: where from, where to, and its size in bytes."""

    source: str
    destination: str
    size: int


def copy_database(
    source: str | os.PathLike[str], destination: str | os.PathLike[str]
) -> CopyResult:
    """Copy the SQLite database at ``source`` to ``destination`` (replaced if it exists).

    Raises ``FileNotFoundError`` when ``source`` does not exist (a backup never creates one).
    """
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise FileNotFoundError(f"no database at {source}")
    partial = destination.with_name(destination.name + _PARTIAL_SUFFIX)
    remove_database(partial)
    src = connect(source, create=False, query_only=True)
    try:
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            # pages=-1: every page in one step, so the copy is one snapshot of the source (a
            # stepped copy restarts whenever another process writes between steps).
            src.backup(dst, pages=-1)
            # The copy keeps the source's WAL mode; fold it back into the one file before it is
            # renamed, so the destination is a single self-contained file.
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(partial, destination)
    return CopyResult(str(source), str(destination), destination.stat().st_size)


def restore_database(backup: str | os.PathLike[str], target: str | os.PathLike[str]) -> CopyResult:
    """Make ``target`` a copy of the database file ``backup`` (nothing may have ``target`` open).

    The target's stale ``-wal``/``-shm`` files go first: SQLite would otherwise replay a log of
    the old database onto the restored one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_database(target)
    result = copy_database(backup, target)
    # Back to WAL, the mode every process of replayd opens its files in (storage.sqlite.connect).
    connect(target, create=False).close()
    return result


def integrity_errors(path: str | os.PathLike[str]) -> list[str]:
    """What ``PRAGMA integrity_check`` reports on the database at ``path`` (empty when sound)."""
    conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True)
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def remove_database(path: str | os.PathLike[str]) -> None:
    """Delete the database file at ``path`` and its journal files (missing ones are fine)."""
    path = Path(path)
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        path.with_name(name).unlink(missing_ok=True)
