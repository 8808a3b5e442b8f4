"""What every SQL projection is made of, and the checkpoint table they share.

A projection is a read model built from domain events. Each one owns a few tables (created by its
``migrate``), an ``apply(conn, events)`` that folds a list of events into them, and a ``reset`` that
empties them and forgets the projection's checkpoint. The checkpoint is the log position up to which
the projection has applied every event; it lives in ``projection_checkpoints`` and is always written
in the same transaction as the rows derived up to it (DESIGN.md invariant 5).

This module owns no projection's tables; it never opens a transaction itself (callers do, with
``storage.sqlite.atomic``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

import attrs

from engine.events import DomainEvent
from storage.schema import apply_migrations

CHECKPOINTS_COMPONENT = "projection_checkpoints"
CHECKPOINTS_STEPS: list[str] = [
    """
    CREATE TABLE projection_checkpoints (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    );
    """,
]


@attrs.frozen(slots=True, kw_only=True)
class SqlProjection:
    """One SQL read model: its name (the checkpoint key) and its three operations.

    ``apply`` receives only the events this projection has not applied yet (see
    :func:`unapplied`); it must not commit: the caller commits its rows and the new checkpoint
    together. The result must not depend on how the events are split into calls (the projector
    splits a delivery to isolate an event that fails). ``forget_sessions`` removes what the
    projection derived from those sessions (``replayd dead-letters retry`` re-applies them;
    an erasure, ``engine.lifecycle.SessionsErased``, calls it at the erasure's place in the
    events).

    ``lifecycle``: the projection reads the data lifecycle's events
    (``engine.lifecycle.JobRecorded`` and ``SessionsErased``) and ``apply`` gets only those;
    every other projection never sees them.
    """

    name: str
    migrate: Callable[[sqlite3.Connection], None]
    apply: Callable[[sqlite3.Connection, Sequence[DomainEvent]], None]
    reset: Callable[[sqlite3.Connection], None]
    forget_sessions: Callable[[sqlite3.Connection, Sequence[int]], None]
    lifecycle: bool = False


def migrate_checkpoints(conn: sqlite3.Connection) -> None:
    """Create the shared checkpoint table if it is missing."""
    apply_migrations(conn, CHECKPOINTS_COMPONENT, CHECKPOINTS_STEPS)


def read_checkpoint(conn: sqlite3.Connection, name: str) -> int:
    """The position up to which projection ``name`` is applied (0 = nothing yet)."""
    row = conn.execute(
        "SELECT position FROM projection_checkpoints WHERE name = ?", (name,)
    ).fetchone()
    return int(row[0]) if row else 0


def read_checkpoints(conn: sqlite3.Connection) -> dict[str, int]:
    """Every stored checkpoint by projection name."""
    return {
        str(n): int(p) for n, p in conn.execute("SELECT name, position FROM projection_checkpoints")
    }


def write_checkpoint(conn: sqlite3.Connection, name: str, position: int) -> None:
    """Record that projection ``name`` has applied everything up to ``position``."""
    conn.execute(
        "INSERT INTO projection_checkpoints (name, position) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, position),
    )


def forget_checkpoint(conn: sqlite3.Connection, name: str) -> None:
    """Drop projection ``name``'s checkpoint (its next replay starts at position 0)."""
    conn.execute("DELETE FROM projection_checkpoints WHERE name = ?", (name,))


def unapplied(events: Sequence[DomainEvent], checkpoint: int) -> list[DomainEvent]:
    """The events a projection at ``checkpoint`` still has to apply (position above), in order."""
    return [e for e in events if e.position > checkpoint]
