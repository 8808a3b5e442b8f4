"""Rebuild: drop projections and replay the whole log into them through the engine.

The replay folds the log (read with a ``LogReader`` up to the head found at the start) through the
same session states as the live path's actors, scheduled by :class:`engine.fold.LogFold` (the
supervisor's rules without a trio task per session, in a worker thread), into the same sink
(:class:`projections.pipeline.Projector`, in large deliveries), so the result equals what the
live path produced (DESIGN.md invariant 6), provided the inactivity timeout is the server's.

Two files: the log is read from ``db_path`` (read-only: never written, not even migrated) and the
projections are emptied and rewritten in ``projections_db_path``, their own file (the server keeps
them apart so the log writer never waits for the projector's write lock). Deleting the projections
file and rebuilding gives back the same projections.

Must not run while a server writes the same projections: the projector's advisory lock refuses
(:class:`projections.pipeline.ProjectionsBusy`) while a live process holds it. Stop the server,
rebuild, start the server again (its live sessions reload from the rebuilt sessions table). An
interrupted rebuild leaves consistent projections with checkpoints where it stopped: a server (or
a new rebuild) carries on from there.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import attrs
import trio

from engine.actor_types import DEFAULT_REGISTRY, ActorRegistry
from engine.events import DomainEvent
from engine.fold import LogFold
from engine.supervisor import DEFAULT_INACTIVITY_TIMEOUT_MS
from projections.base import SqlProjection
from projections.pipeline import ALL_PROJECTIONS, PROJECTIONS_BY_NAME, ProjectionsBusy, Projector
from storage.schema import LOG_COMPONENT, schema_version
from storage.sqlite import connect
from storage.sqlite_recorder import LogReader

# A delivery (one projector transaction and checkpoint) per this many records or payload bytes:
# large, because a rebuild's cost per delivery (a commit, the statements' set-up) is paid once
# for thousands of short sessions; bounded, so that memory does not grow with the log.
DEFAULT_CHUNK_RECORDS = 10_000
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024


@attrs.frozen(slots=True, kw_only=True)
class RebuildResult:
    """What a rebuild did: which projections, how many records and events, how long."""

    projections: tuple[str, ...]
    records: int
    events: int
    seconds: float
    messages: int = 0  # tracker messages walked in the replayed batches

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float(self.messages)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float(self.records)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float(self.events)

    def summary(self) -> str:
        """One line for humans: what was rebuilt and at what rate."""
        return (
            f"rebuilt {', '.join(self.projections)}: {self.records} records,"
            f" {self.messages} messages, {self.events} events in {self.seconds:.1f} s"
            f" ({self.records_per_second:,.0f} records/s, {self.messages_per_second:,.0f}"
            f" messages/s, {self.events_per_second:,.0f} events/s)"
        )


def choose_projections(names: Sequence[str] | None) -> tuple[SqlProjection, ...]:
    """The projections named (all when ``names`` is empty or None); ValueError for unknown names."""
    if not names:
        return ALL_PROJECTIONS
    unknown = sorted(set(names) - PROJECTIONS_BY_NAME.keys())
    if unknown:
        raise ValueError(
            f"unknown projection(s) {', '.join(unknown)}; known: {', '.join(PROJECTIONS_BY_NAME)}"
        )
    # In the canonical order, each once.
    return tuple(p for p in ALL_PROJECTIONS if p.name in set(names))


class Progress:
    """A one-line progress report on a text stream, redrawn (``\\r``) at most each ``interval``."""

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_draw = float("-inf")

    def update(self, records: int, events: int, messages: int = 0, *, force: bool = False) -> None:
        """Redraw: ``records`` of ``total`` done, ``events`` produced, ``messages`` walked."""
        now = self.clock()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        self.stream.write("\r" + self.line(records, events, now - self.started, messages))
        self.stream.flush()

    def line(self, records: int, events: int, elapsed: float, messages: int = 0) -> str:
        """The text of one redraw."""
        rate = records / elapsed if elapsed > 0 else 0.0
        message_rate = messages / elapsed if elapsed > 0 else 0.0
        event_rate = events / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * records / self.total if self.total else 100.0
        eta = f"ETA {max(self.total - records, 0) / rate:,.0f} s" if rate > 0 else "ETA --"
        return (
            f"rebuild: {records:,}/{self.total:,} records ({percent:5.1f}%)"
            f"  {rate:,.0f} records/s  {message_rate:,.0f} messages/s"
            f"  {event_rate:,.0f} events/s  {eta}   "
        )

    def finish(self, records: int, events: int, messages: int = 0) -> None:
        """Draw the final state and end the line."""
        self.update(records, events, messages, force=True)
        self.stream.write("\n")
        self.stream.flush()


async def rebuild(
    db_path: str | os.PathLike[str],
    projections_db_path: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    *,
    inactivity_timeout_ms: int = DEFAULT_INACTIVITY_TIMEOUT_MS,
    registry: ActorRegistry = DEFAULT_REGISTRY,
    chunk_size: int = DEFAULT_CHUNK_RECORDS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RebuildResult:
    """Empty the chosen projections (all by default) and replay the log from position 0 into them.

    The log is read from ``db_path``; the projections live in ``projections_db_path``.

    ``registry`` routes records to actor types (default: the web type). ``progress`` (e.g.
    ``sys.stderr``) gets a live progress line. Raises
    :class:`~projections.pipeline.ProjectionsBusy` when a server holds the projections.
    """
    chosen = choose_projections(names)
    started = clock()
    counts = {"events": 0, "records": 0, "messages": 0}
    async with (
        Projector(projections_db_path, projections=chosen, holder="rebuild") as projector,
        trio.open_nursery() as nursery,
    ):
        # Pipelined: the engine decodes the next chunk while the projector writes this one.
        await nursery.start(projector.write_behind)
        await projector.reset()
        # A database that never received traffic has no log table yet: an empty log, and
        # nothing to replay (the log file is only read, so the table is not created here).
        if not await trio.to_thread.run_sync(_has_log, db_path):
            nursery.cancel_scope.cancel()
            return RebuildResult(
                projections=tuple(p.name for p in chosen),
                records=0,
                events=0,
                seconds=clock() - started,
            )
        source = await trio.to_thread.run_sync(LogReader, db_path)
        history = await trio.to_thread.run_sync(LogReader, db_path)
        try:
            head = await trio.to_thread.run_sync(source.head)
            bar = Progress(progress, head, clock=clock) if progress is not None else None
            fold = LogFold(
                history=history, inactivity_timeout_ms=inactivity_timeout_ms, registry=registry
            )

            def read_and_fold(after: int) -> tuple[int, list[DomainEvent]]:
                records = source.read(after, min(chunk_size, head - after), chunk_bytes)
                records = [r for r in records if r.position <= head]
                return (records[-1].position if records else head), fold.fold(records)

            position = 0
            while position < head:
                # The fold of the next chunk (a worker thread) overlaps the projector's write of
                # this one (its own thread): sqlite3 releases the GIL while SQLite works.
                position, events = await trio.to_thread.run_sync(read_and_fold, position)
                await projector.sink(events, position)
                counts["events"] += len(events)
                if bar is not None:
                    bar.update(position, counts["events"], fold.counters.messages_processed)
            await projector.drain()
            counts["messages"] = fold.counters.messages_processed
            # Records replayed, not the head: erased records leave gaps in positions.
            counts["records"] = fold.counters.records_processed
            if bar is not None:
                bar.finish(head, counts["events"], counts["messages"])
        finally:
            source.close()
            history.close()
        nursery.cancel_scope.cancel()  # stops the writer; leaving the projector releases the lock
    return RebuildResult(
        projections=tuple(p.name for p in chosen),
        records=counts["records"],
        events=counts["events"],
        seconds=clock() - started,
        messages=counts["messages"],
    )


def _has_log(db_path: str | os.PathLike[str]) -> bool:
    if not os.path.exists(db_path):
        return False  # no file, no log: opened read-only, so it is not created either
    conn = connect(db_path, create=False, query_only=True)
    try:
        return schema_version(conn, LOG_COMPONENT) > 0
    finally:
        conn.close()


def run_command(db_path: str, projections_db_path: str, names: Sequence[str] | None) -> int:
    """``replayd rebuild``: rebuild with a progress line on stderr, the final rate on stdout.

    Reads the log in ``db_path``, rewrites the projections in ``projections_db_path`` (created if
    missing). Returns the exit code: 0 done, 1 when the database is missing or a server holds
    the lock.
    """
    if not os.path.exists(db_path):
        print(f"replayd rebuild: no database at {db_path}", file=sys.stderr)
        return 1
    if os.path.abspath(db_path) == os.path.abspath(projections_db_path):
        print("replayd rebuild: the projections file must not be the log's file", file=sys.stderr)
        return 1
    try:
        result = trio.run(
            functools.partial(rebuild, db_path, projections_db_path, names, progress=sys.stderr)
        )
    except ProjectionsBusy as error:
        print(f"replayd rebuild: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0
