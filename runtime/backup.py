"""``replayd backup`` and ``replayd restore``: every SQLite file of a database, copied out and back.

A database is up to three files (``api.config.ServerConfig`` names them): the log and the catalog
(``--db``), the projections (``<db stem>-projections.db``) and the mobile images
(``<db stem>-images.db``). ``backup`` copies each existing one into a directory under its own
file name with SQLite's online backup API (:func:`storage.backup.copy_database`) while a server
keeps running; ``restore`` copies the log and the images back once no server holds the
database, then rebuilds the projections from the restored log.

Each copy is one file as of one instant; the files are copied one after another, projections
first and the log last, so a backup's projections are never ahead of its log (a projection
checkpoint past the log's head would skip what the log gets next). They may be behind: the
engine of a server started on the restored files catches up, and ``restore`` rebuilds anyway.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from projections import rebuild
from projections.pipeline import ProjectionsBusy, check_lock_free
from storage.backup import copy_database, integrity_errors, remove_database, restore_database


@attrs.frozen(slots=True)
class DatabaseFiles:
    """The SQLite files of one database: the log (with the catalog), projections, images."""

    log: str
    projections: str
    images: str

    def in_backup_order(self) -> tuple[str, ...]:
        """Projections first, the log last (see the module's docstring)."""
        return (self.projections, self.images, self.log)


def _fail(command: str, message: str) -> int:
    print(f"replayd {command}: {message}", file=sys.stderr, flush=True)
    return 1


def _names(files: Sequence[str]) -> dict[str, str] | None:
    """File name -> path, or None when two files share a name (a backup holds one of each)."""
    names = {os.path.basename(path): path for path in files}
    return names if len(names) == len(files) else None


def _same_directory(directory: Path, database: str) -> bool:
    """Whether ``directory`` is where ``database`` lives (a copy there would replace it)."""
    home = os.path.dirname(os.path.abspath(database))
    if not (directory.exists() and os.path.exists(home)):
        return False
    return os.path.samefile(directory, home)


def run_backup(directory: str, files: DatabaseFiles) -> int:
    """``replayd backup DIR``: the exit code (one line on stderr when it fails)."""
    if not os.path.isfile(files.log):
        return _fail("backup", f"no database at {files.log}")
    ordered = [path for path in files.in_backup_order() if os.path.isfile(path)]
    if _names(ordered) is None:
        return _fail("backup", "two database files have the same name: set them apart")
    target = Path(directory)
    if _same_directory(target, files.log):
        return _fail("backup", f"{directory} holds the database itself: back up somewhere else")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for path in ordered:
            copied = copy_database(path, target / os.path.basename(path))
            errors = integrity_errors(copied.destination)
            if errors:
                return _fail("backup", f"the copy of {path} fails its integrity check: {errors[0]}")
            print(f"backed up {path} -> {copied.destination} ({copied.size} bytes)", flush=True)
    except (OSError, sqlite3.Error) as error:
        return _fail("backup", f"{error} (nothing under its final name is a partial copy)")
    return 0


def run_restore(directory: str, files: DatabaseFiles) -> int:
    """``replayd restore DIR``: copy the backup's files over the database's, then rebuild."""
    source = Path(directory)
    if _same_directory(source, files.log):
        return _fail("restore", f"{directory} holds the database itself, not a backup of it")
    backup_of = {path: source / os.path.basename(path) for path in files.in_backup_order()}
    if not backup_of[files.log].is_file():
        return _fail("restore", f"no backup of {os.path.basename(files.log)} in {directory}")
    try:
        # The lock the projector of a running server holds (the same check as `serve`).
        check_lock_free(files.projections)
    except ProjectionsBusy as error:
        return _fail("restore", f"{error}; stop the server first")
    # The backup's projections are not copied back: restore rebuilds them from the restored log,
    # and the copy still names the lock holder of the server it was taken from.
    present = [
        (path, copy)
        for path, copy in backup_of.items()
        if copy.is_file() and path != files.projections
    ]
    try:
        for _, copy in present:  # all checked before anything is overwritten
            errors = integrity_errors(copy)
            if errors:
                return _fail("restore", f"{copy} fails its integrity check: {errors[0]}")
        for path, copy in present:
            restore_database(copy, path)
            print(f"restored {copy} -> {path}", flush=True)
        # Derived data of the database being replaced: rebuilt below from the restored log.
        remove_database(files.projections)
    except (OSError, sqlite3.Error) as error:
        return _fail("restore", str(error))
    return rebuild.run_command(files.log, files.projections, None)
