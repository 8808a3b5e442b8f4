"""The data lifecycle's executor: runs the delete-user jobs and the retention sweep.

One trio task, started by :func:`runtime.engine_service.projections_service` in the engine's
nursery (it needs the projector: it waits for the projections to reflect each step). Every
``lifecycle_interval_s`` it runs the due jobs (:func:`projections.jobs.due_jobs`: ``running``
ones first, so a job a crash interrupted resumes, then ``scheduled`` ones whose ``startAt`` has
come), one after the other; every ``retention_interval_s`` it sweeps the expired sessions.

A job (records and statuses: :mod:`engine.lifecycle`):

1. appends ``JOB_STARTED`` (a resumed job is already running);
2. works in passes. Each pass first waits until the projections have applied the whole log as
   it is when the pass begins, then reads up to ``step_sessions`` sessions the sessions
   projection attributes to the user (its current ``user_id``, exact match, live sessions
   included) and erases them in one step: their images (``storage.images``), then every record
   of theirs in one log transaction (:meth:`storage.log.EventLog.erase_sessions`), whose
   ``ERASURE`` record makes every projection forget them; it waits for that to be applied, and
   checks for a cancel before the next step. A pass that finds nothing ends the job.
   **The rule for sessions recorded after the job started:** a session is erased if it is
   attributed to the user by the time of the job's last pass, which sees everything logged before
   it began; so a session that starts (or is identified) while the job runs is caught, one
   identified after the job completed needs a new job. A live session is erased with the records
   it has; the engine drops its actor, and a record of it arriving later is a new fragment that a
   later job (or the retention sweep) erases.
3. erases its own request record (the only record naming the user; ``referenceId`` turns null),
   compacts (below), then appends ``JOB_FINISHED`` ``completed`` with its counts: once a client
   sees ``completed`` no byte of the user is left. An error of a
   step (the log or a file cannot be written) appends ``failed`` with the error instead; a
   crash leaves it ``running``, and the next start resumes it.

The log writer is held by one erasure transaction at a time (``step_sessions`` sessions), and
between steps the executor waits for the projections, so ingest commits between them.

Compaction, after a job or a sweep that erased something: ``secure_delete`` (every connection,
:mod:`storage.sqlite`) has already zeroed the freed bytes in the files; a WAL ``TRUNCATE``
checkpoint of the log, the projections and the images then drops the WAL frames that still
hold them. It holds each file's writer only while it copies the WAL (bounded by SQLite's
auto-checkpoint, about 4 MB), in worker threads; a reader on an old snapshot can make it give up,
and it is retried.

Retention: a project with ``retention_days`` N > 0 loses its finished sessions that started more
than N days before now (wall-clock, the server's record clock), in the same bounded steps
(reason ``retention``, no job).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

import attrs
import trio

from engine.lifecycle import (
    RETENTION,
    USER_DELETION,
    JobFinished,
    JobStarted,
    JobStatus,
    job_record,
)
from projections import jobs, sessions
from projections.pipeline import Projector
from projections.reader import ProjectionReader
from storage.catalog import Catalog
from storage.errors import ImagesUnavailable, LogClosed, LogError
from storage.images import ImageStore
from storage.log import EventLog
from storage.records import ErasureRequest, ErasureResult
from storage.sqlite import wal_truncate

logger = logging.getLogger(__name__)

STEP_SESSIONS = 50  # sessions per erasure transaction: bounds how long it holds the log writer
DAY_MS = 86_400_000
CATCH_UP_POLL_S = 0.02
COMPACT_ATTEMPTS = 5


@attrs.define(eq=False)
class LifecycleExecutor:
    """The executor of one server (see the module docstring); run it with :meth:`run`."""

    log: EventLog
    projector: Projector
    reader: ProjectionReader
    catalog: Catalog
    images_path: str
    clock: Callable[[], int]  # epoch ms: the server's record clock
    interval_s: float = 1.0
    retention_interval_s: float = 300.0
    step_sessions: int = STEP_SESSIONS
    wake: trio.Event = attrs.field(factory=trio.Event)  # set: look for due jobs now
    _images: ImageStore | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run due jobs and sweeps until cancelled."""
        self._images = await trio.to_thread.run_sync(ImageStore.open, self.images_path)
        try:
            task_status.started()
            next_sweep = trio.current_time()
            while True:
                for job in await self.reader.run(jobs.due_jobs, self.clock()):
                    await self._run_job(job)
                if trio.current_time() >= next_sweep:
                    await self.sweep()
                    next_sweep = trio.current_time() + self.retention_interval_s
                with trio.move_on_after(self.interval_s):
                    await self.wake.wait()
                self.wake = trio.Event()
        finally:
            images, self._images = self._images, None
            images.close()

    # -- jobs ---------------------------------------------------------------------------------

    async def _run_job(self, job: jobs.JobRow) -> None:
        try:
            if job.status is JobStatus.SCHEDULED:
                await self._append_applied(JobStarted(job_id=job.job_id), job.project_id)
            if job.user_id is not None and not await self._erase_user(job, job.user_id):
                return  # cancelled meanwhile: what was erased stays erased, nothing more
            # The request record is the only one that names the user: it goes last.
            final = ErasureRequest(
                reason=USER_DELETION, project_id=job.project_id, positions=(job.job_id,),
                job=job.job_id,
            )  # fmt: skip
            await self._erase_applied(final)
            # Before the finish record: once a client sees "completed", no byte is left.
            await self.compact()
            done = await self.reader.run(jobs.get_job, job.project_id, job.job_id)
            assert done is not None
            finished = JobFinished(
                job_id=job.job_id, status=JobStatus.COMPLETED, created_at_ms=job.created_at_ms,
                start_at_ms=job.start_at_ms, sessions=done.sessions_erased,
                records=done.records_erased, erasures=done.erasures,
            )  # fmt: skip
            await self._append_applied(finished, job.project_id)
        except LogClosed:
            raise  # shutting down: the job stays running and resumes at the next start
        except (LogError, ImagesUnavailable, sqlite3.Error) as error:
            logger.error("delete-user job %d failed: %s", job.job_id, error)
            failed = JobFinished(
                job_id=job.job_id, status=JobStatus.FAILED, created_at_ms=job.created_at_ms,
                start_at_ms=job.start_at_ms, errors=f"{type(error).__name__}: {error}",
            )  # fmt: skip
            await self._append_applied(failed, job.project_id)
            return
        logger.info(
            "delete-user job %d completed: %d session(s), %d record(s) erased",
            job.job_id, done.sessions_erased, done.records_erased,
        )  # fmt: skip

    async def _erase_user(self, job: jobs.JobRow, user_id: str) -> bool:
        """The job's passes (module docstring); False when it was cancelled meanwhile."""
        while True:
            await self._caught_up(self.log.head())
            status = await self.reader.run(jobs.job_status, job.job_id)
            if status is not JobStatus.RUNNING:
                return False
            found = await self.reader.run(
                sessions.user_session_ids, job.project_id, user_id, limit=self.step_sessions
            )
            if not found:
                return True
            await self._erase_step(job.project_id, found, USER_DELETION, job.job_id)

    async def _erase_step(
        self, project_id: int, session_ids: list[int], reason: str, job_id: int
    ) -> ErasureResult:
        """Erase these sessions: images first (a crash then finds them again in the log and
        the projections), then their records, and wait for the projections to forget them."""
        images = self._images
        assert images is not None
        await trio.to_thread.run_sync(images.forget_sessions, project_id, session_ids)
        request = ErasureRequest(
            reason=reason, project_id=project_id, sessions=tuple(session_ids), job=job_id
        )
        return await self._erase_applied(request)

    async def _erase_applied(self, request: ErasureRequest) -> ErasureResult:
        result = await self.log.erase_sessions(request, received_at_ms=self.clock())
        await self._caught_up(result.position)
        return result

    async def _append_applied(self, payload: JobStarted | JobFinished, project_id: int) -> None:
        appended = await self.log.append(job_record(payload, project_id, self.clock()))
        await self._caught_up(appended.position)

    async def _caught_up(self, position: int) -> None:
        """Return once the projections have applied everything up to ``position``."""
        while self.projector.statistics.upto_position < position:
            await trio.sleep(CATCH_UP_POLL_S)

    # -- retention ----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Erase every project's expired sessions (module docstring); the number erased."""
        erased = 0
        now = self.clock()
        for project in await trio.to_thread.run_sync(self.catalog.projects_with_retention):
            cutoff = now - project.retention_days * DAY_MS
            while True:
                expired = await self.reader.run(
                    sessions.expired_session_ids,
                    project.project_id,
                    cutoff,
                    limit=self.step_sessions,
                )
                if not expired:
                    break
                await self._erase_step(project.project_id, expired, RETENTION, 0)
                erased += len(expired)
        if erased:
            logger.info("retention: erased %d expired session(s)", erased)
            await self.compact()
        return erased

    # -- compaction ---------------------------------------------------------------------------

    async def compact(self) -> bool:
        """Empty the WAL of the log, the projections and the images (module docstring); False
        when readers kept one from completing every attempt."""
        images = self._images
        assert images is not None
        for _ in range(COMPACT_ATTEMPTS):
            done = await self.log.checkpoint()
            done = await self.projector.run_sync(wal_truncate) and done
            done = await trio.to_thread.run_sync(images.checkpoint) and done
            if done:
                return True
            await trio.sleep(0.1)
        logger.warning("compaction after an erasure did not complete: a reader held a snapshot")
        return False
