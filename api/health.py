"""What /readyz and /metrics report: the engine's lag behind the log, and whether replayd can write.

The figures that every process can know are read from the database files (so the ingest
processes of ``serve --workers N`` report the same lag as a single process does): the log head
and record times through :class:`storage.log.LogReader`, the projections' lowest checkpoint and
the dead-letter count through :class:`projections.reader.ProjectionReader`. The lag is measured
in records (head minus checkpoint) and in record time (the head record's time minus the time of
the record at the checkpoint), never with the wall clock. The reads run in worker threads, one at
a time, and a result is reused for ``FIGURES_MAX_AGE_S``: a flood of probes costs at most a few
small reads per second.
"""

from __future__ import annotations

import os

import attrs
import trio

from api.config import ServerConfig
from projections.reader import ProjectionReader
from storage.errors import LogClosed
from storage.log import EventLog
from storage.sqlite_recorder import LogReader

# Probes (a load balancer's, every few seconds) and scrapes share one read per this interval.
FIGURES_MAX_AGE_S = 0.5


@attrs.frozen(slots=True, kw_only=True)
class EngineFigures:
    """The log head, the projections' checkpoint, the lag between them, the parked records."""

    head: int
    checkpoint: int
    lag_records: int
    lag_seconds: float
    dead_letters: int


def engine_figures(
    *, head: int, head_time_ms: int, checkpoint: int, checkpoint_time_ms: int, dead_letters: int
) -> EngineFigures:
    """The lag from the positions and their record times (never negative: the two files are
    read one after the other, so the checkpoint may be read older than the head)."""
    lag_records = max(0, head - checkpoint)
    lag_ms = max(0, head_time_ms - checkpoint_time_ms) if lag_records else 0
    return EngineFigures(
        head=head,
        checkpoint=checkpoint,
        lag_records=lag_records,
        lag_seconds=lag_ms / 1000,
        dead_letters=dead_letters,
    )


class FiguresSource:
    """Reads :class:`EngineFigures` from the log's and the projections' files (see module doc)."""

    def __init__(
        self,
        log_path: str | os.PathLike[str],
        projections: ProjectionReader,
        *,
        max_age_s: float = FIGURES_MAX_AGE_S,
    ) -> None:
        self._log_path = os.fspath(log_path)
        self._log_reader: LogReader | None = None  # opened on first use, in a worker thread
        self._projections = projections
        self._max_age_s = max_age_s
        self._lock = trio.Lock()  # one read at a time; waiters then take its result
        self._last: tuple[float, EngineFigures] | None = None

    async def read(self) -> EngineFigures:
        """Fresh figures, or those read less than ``max_age_s`` ago."""
        async with self._lock:
            if self._last is not None and trio.current_time() - self._last[0] < self._max_age_s:
                return self._last[1]
            # The checkpoint first: the head read after it is never behind it.
            progress = await self._projections.engine_progress()
            figures = await trio.to_thread.run_sync(
                self._with_log, progress.checkpoint, progress.dead_letters
            )
            self._last = (trio.current_time(), figures)
            return figures

    def _with_log(self, checkpoint: int, dead_letters: int) -> EngineFigures:
        # Worker thread (one at a time: under the lock of read()).
        if self._log_reader is None:
            self._log_reader = LogReader(self._log_path)
        head, head_time = self._log_reader.newest()
        at_checkpoint = head_time if head <= checkpoint else self._log_reader.time_at(checkpoint)
        return engine_figures(
            head=head,
            head_time_ms=head_time,
            checkpoint=checkpoint,
            checkpoint_time_ms=head_time if at_checkpoint is None else at_checkpoint,
            dead_letters=dead_letters,
        )

    def close(self) -> None:
        """Close the log connection (after serving: no read is under way then); the projection
        reader is the caller's."""
        if self._log_reader is not None:
            self._log_reader.close()
            self._log_reader = None


async def log_writer_running(log: EventLog) -> bool:
    """Whether this process's log writer accepts appends.

    ``EventLog`` has no public state flag, but ``wait_for_position`` raises :class:`LogClosed`
    at once once the writer stopped, and otherwise waits for the next commit, which the expired
    deadline cuts short at its first checkpoint.
    """
    with trio.move_on_after(0):
        try:
            await log.wait_for_position(log.head())
        except LogClosed:
            return False
    return True


def readiness_problems(
    config: ServerConfig,
    *,
    writer_running: bool,
    log_write_error: str | None,
    projector_write_error: str | None,
    figures: EngineFigures | None,
    figures_error: str | None = None,
) -> list[str]:
    """Why this process is not ready (empty: ready). ``figures`` None: they could not be read."""
    problems = []
    if not writer_running:
        problems.append("the log writer is not running")
    if log_write_error is not None:
        problems.append(f"the log cannot write: {log_write_error}")
    if projector_write_error is not None:
        problems.append(f"the projector cannot write: {projector_write_error}")
    if figures is None:
        problems.append(f"the engine's progress cannot be read: {figures_error}")
        return problems
    if figures.lag_records > config.ready_max_lag_records:
        problems.append(
            f"the engine is {figures.lag_records} records behind the log"
            f" (more than {config.ready_max_lag_records})"
        )
    if figures.lag_seconds > config.ready_max_lag_seconds:
        problems.append(
            f"the engine is {figures.lag_seconds:g} s of record time behind the log"
            f" (more than {config.ready_max_lag_seconds:g} s)"
        )
    return problems
