"""Following the sessions table from another process: what changed, read off the loop, applied.

An ingest process of ``serve --workers`` keeps a copy of the live sessions by reading only the
live rows whose ``last_position`` moved (:func:`read_live_update`); the copy it ends up with must
be the one a full reload gives, whatever happened in between.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from engine import events as ev
from projections import live_sessions, sessions
from projections.base import write_checkpoint
from projections.live_sessions import LiveChanges, LiveFilter, LiveSessions, read_live_update
from storage.sqlite import atomic

from .factories import SessionScript, positioned


def key_of(project_id: int) -> str:
    return f"key-{project_id}"


class Table:
    """The sessions projection of ``conn``, fed record by record (one position per record)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.position = 0

    def record(self, *groups: Sequence[ev.DomainEvent]) -> None:
        events = positioned(list(groups), first=self.position + 1)
        self.position += len(groups)
        with atomic(self.conn):
            sessions.apply(self.conn, events)
            write_checkpoint(self.conn, sessions.NAME, self.position)


def view(live: LiveSessions) -> tuple[object, ...]:
    """What Assist can see: every page in time order, and index-backed searches."""
    everything = live.search(1, limit=10_000)
    by_user = live.search(1, [LiveFilter(type="userId", values=("u-2",), operator="is")])
    by_plan = live.search(1, [LiveFilter(type="metadata", source="plan", values=("pro",))])
    titled = live.search(1, [LiveFilter(type="pageTitle", values=("cart",))])
    return everything, by_user, by_plan, titled, live.checkpoint


def refresh(conn: sqlite3.Connection, current: LiveSessions) -> LiveSessions | LiveChanges | None:
    return read_live_update(conn, key_of, (current.checkpoint, current.session_ids()))


def full(conn: sqlite3.Connection) -> LiveSessions:
    fresh = read_live_update(conn, key_of)
    assert isinstance(fresh, LiveSessions)
    return fresh


def test_changes_applied_give_what_a_full_reload_gives(conn: sqlite3.Connection) -> None:
    table = Table(conn)
    scripts = [SessionScript(session_id=100 + i) for i in range(6)]
    table.record(*[[s.started()] for s in scripts])
    current = full(conn)
    assert len(current) == 6 and current.get(1, 100) is not None
    assert current.get(1, 100).project_key == "key-1"  # type: ignore[union-attr]

    # Nothing moved: nothing is read.
    assert refresh(conn, current) is None

    # A user id, metadata, a title, an end, a new session, and a batch that changes nothing
    # Assist shows (its last_position moves all the same).
    late = SessionScript(session_id=200)
    table.record(
        [scripts[0].user_id("u-2")],
        [scripts[1].metadata("plan", "pro")],
        [scripts[2].title("Cart")],
        [scripts[3].ended()],
        [late.started()],
        [scripts[4].click()],
    )
    changes = refresh(conn, current)
    assert isinstance(changes, LiveChanges)
    # Only the live rows that moved are read (the ended one is known by its absence).
    assert {s.session_id for s in changes.sessions} == {100, 101, 102, 104, 200}
    current.apply_changes(changes)
    assert view(current) == view(full(conn))
    assert current.get(1, 103) is None and current.get(1, 200) is not None
    assert refresh(conn, current) is None


def test_many_changes_or_a_rebuilt_table_make_a_fresh_copy(
    conn: sqlite3.Connection, monkeypatch
) -> None:
    table = Table(conn)
    scripts = [SessionScript(session_id=300 + i) for i in range(5)]
    table.record(*[[s.started()] for s in scripts])
    current = full(conn)

    # More changes than the loop may apply: the worker thread builds the whole copy instead.
    monkeypatch.setattr(live_sessions, "LIVE_CHANGES_INLINE_MAX", 2)
    table.record(*[[s.user_id(f"u-{i}")] for i, s in enumerate(scripts[:3])])
    fresh = refresh(conn, current)
    assert isinstance(fresh, LiveSessions) and fresh is not current
    assert view(fresh) == view(full(conn))

    # A checkpoint behind the copy's (the projections were rebuilt): a full read.
    with atomic(conn):
        write_checkpoint(conn, sessions.NAME, 1)
    again = refresh(conn, fresh)
    assert isinstance(again, LiveSessions) and again.checkpoint == 1


def test_no_table_yet_reads_as_nothing(tmp_path: Path) -> None:
    from storage.sqlite import connect

    bare = connect(tmp_path / "bare.db")
    try:
        first = read_live_update(bare, key_of)
        assert isinstance(first, LiveSessions) and len(first) == 0 and first.checkpoint == 0
        assert read_live_update(bare, key_of, (0, frozenset())) is None
    finally:
        bare.close()
