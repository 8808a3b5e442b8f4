"""``replayd dead-letters list`` and ``retry``: look at what was parked, and re-run it after a fix.

Retry re-derives the sessions that have parked records (of one project, or all) with the code
installed now, so that records and events that a bug parked and that now apply are no longer
parked; those that still fail stay parked with their (new) error. For each such session it:

1. replays the whole log through the engine supervisor, as ``rebuild`` does, but hands the
   supervisor only that session's records: every other record becomes a clock tick at the same
   position and time, so the log clock, and with it where each session ends, is exactly the
   rebuild's, while no other session is decoded;
2. in ONE transaction of the projections' file, forgets what every projection derived from those
   sessions (rows and dead letters) and applies the replayed events up to each projection's
   checkpoint, parking the events that still fail (``projections.pipeline.apply_isolating``).

The checkpoints do not move, so the result is what a full ``replayd rebuild`` would give, at the
cost of reading the log once. Like ``rebuild`` it takes the projections' lock: stop the server
first.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from collections.abc import Iterable, Sequence

import attrs
import trio

from engine.actor_types import DEFAULT_REGISTRY, ActorRegistry
from engine.events import DomainEvent
from engine.supervisor import DEFAULT_INACTIVITY_TIMEOUT_MS, Supervisor, history_from_reader
from projections import dead_letters
from projections.pipeline import ProjectionsBusy, Projector
from storage.records import LogRecord, RecordKind
from storage.sqlite import connect
from storage.sqlite_recorder import LogReader


@attrs.frozen(slots=True, kw_only=True)
class RetryResult:
    """What a retry did: the sessions re-run, and the dead letters before and after."""

    sessions: tuple[int, ...]
    parked_before: int
    parked_after: int

    def summary(self) -> str:
        """One line for humans."""
        return (
            f"retried {len(self.sessions)} session(s): {self.parked_before} dead letter(s)"
            f" before, {self.parked_after} remain"
        )


class _OnlySessions:
    """A log reader that shows the records of ``wanted`` sessions and ticks for all others.

    Dead letters name sessions by id, so a keyed record (v3) is shown when its session id is
    wanted; keyed sessions sharing that id still re-run as separate actors, each with its own
    history read by its session key (:class:`engine.supervisor.ReaderHistory`)."""

    def __init__(self, reader: LogReader, wanted: Iterable[int]) -> None:
        self._reader = reader
        self._wanted = frozenset(wanted)

    def read(self, after: int, limit: int, max_bytes: int | None = None) -> list[LogRecord]:
        # The byte bound applies to the real payloads (what is held in memory while reading).
        return [self._masked(r) for r in self._reader.read(after, limit, max_bytes)]

    def _masked(self, record: LogRecord) -> LogRecord:
        if record.session_id in self._wanted or record.kind == RecordKind.CLOCK_TICK:
            return record
        # Same position and time: the supervisor's clock and ends do not change.
        return LogRecord(
            position=record.position,
            session_id=0,
            project_id=0,
            kind=RecordKind.CLOCK_TICK,
            received_at_ms=record.received_at_ms,
            payload=b"",
        )

    def read_session(self, session_id: int, before: int | None = None) -> list[LogRecord]:
        return self._reader.read_session(session_id, before)

    def read_keyed_session(self, session_key: str, before: int | None = None) -> list[LogRecord]:
        return self._reader.read_keyed_session(session_key, before)

    def head(self) -> int:
        return self._reader.head()

    def activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[int, int]]:
        return self._reader.activity(upto_position, window_ms, kinds)

    def keyed_activity(
        self, upto_position: int, window_ms: int, kinds: Iterable[int]
    ) -> tuple[int, dict[str, int]]:
        return self._reader.keyed_activity(upto_position, window_ms, kinds)


def _parked(projections_db_path: str | os.PathLike[str], project_id: int | None) -> tuple[int, ...]:
    conn = connect(projections_db_path, create=False, query_only=True)
    try:
        return tuple(dead_letters.parked_sessions(conn, project_id))
    finally:
        conn.close()


async def retry(
    db_path: str | os.PathLike[str],
    projections_db_path: str | os.PathLike[str],
    *,
    project_id: int | None = None,
    inactivity_timeout_ms: int = DEFAULT_INACTIVITY_TIMEOUT_MS,
    registry: ActorRegistry = DEFAULT_REGISTRY,
    chunk_size: int = 1000,
) -> RetryResult:
    """Re-run the sessions with dead letters (see the module docstring).

    Raises :class:`~projections.pipeline.ProjectionsBusy` while a server holds the projections.
    """
    async with Projector(projections_db_path, holder="dead-letters retry") as projector:
        parked_before = await projector.run_sync(dead_letters.count, project_id)
        wanted = await trio.to_thread.run_sync(_parked, projections_db_path, project_id)
        if not wanted:
            return RetryResult(sessions=(), parked_before=0, parked_after=0)
        upto = max(projector.checkpoints.values(), default=0)
        replayed: list[DomainEvent] = []

        async def collect(events: list[DomainEvent], upto_position: int) -> None:
            replayed.extend(events)

        source = await trio.to_thread.run_sync(LogReader, db_path)
        history = await trio.to_thread.run_sync(LogReader, db_path)
        try:
            supervisor = Supervisor(
                history=history_from_reader(history),
                sink=collect,
                inactivity_timeout_ms=inactivity_timeout_ms,
                registry=registry,
            )
            await supervisor.run_until(_OnlySessions(source, wanted), upto, chunk_size=chunk_size)
        finally:
            source.close()
            history.close()
        await projector.replace_sessions(wanted, replayed)
        parked_after = await projector.run_sync(dead_letters.count, project_id)
    return RetryResult(sessions=wanted, parked_before=parked_before, parked_after=parked_after)


def run_retry_command(db_path: str, projections_db_path: str, project_id: int | None) -> int:
    """``replayd dead-letters retry``: 0 when done (some may remain parked), 1 when refused."""
    if not os.path.exists(db_path):
        print(f"replayd dead-letters retry: no database at {db_path}", file=sys.stderr)
        return 1
    if not os.path.exists(projections_db_path):
        print("replayd dead-letters retry: no projections yet (nothing parked)")
        return 0
    try:
        result = trio.run(
            functools.partial(retry, db_path, projections_db_path, project_id=project_id)
        )
    except ProjectionsBusy as error:
        print(f"replayd dead-letters retry: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def format_letters(letters: Sequence[dead_letters.DeadLetter]) -> list[str]:
    """One tab-separated line per dead letter: position, session, project, stage, at, error."""
    return [
        f"{d.position}\t{d.session_id}\t{d.project_id}\t{d.stage}\t{d.at}\t{d.error}"
        for d in letters
    ]


def run_list_command(projections_db_path: str, project_id: int | None, limit: int) -> int:
    """``replayd dead-letters list``: the newest dead letters first, then their total count."""
    if not os.path.exists(projections_db_path):
        print("0 dead letters (no projections yet)")
        return 0
    conn = connect(projections_db_path, create=False, query_only=True)
    try:
        try:
            letters = dead_letters.recent(conn, project_id=project_id, limit=limit)
            total = dead_letters.count(conn, project_id)
        except sqlite3.OperationalError as error:  # an empty file: no table yet
            if "no such table" not in str(error):
                raise
            letters, total = [], 0
    finally:
        conn.close()
    print("position\tsession\tproject\tstage\tat\terror")
    for line in format_letters(letters):
        print(line)
    print(f"{total} dead letter(s)" + (f" in project {project_id}" if project_id else ""))
    return 0
