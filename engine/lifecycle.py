"""The data lifecycle in the log: delete-user jobs and erasures, as records and domain events.

A delete-user job is four kinds of log records (``storage.records.RecordKind``), all on session 0
of the job's project, their payloads compact JSON read and written here (sans-IO):

- ``JOB_REQUESTED`` (:class:`JobRequested`, by ``DELETE /api/v1/:projectKey/users/:userId``):
  the user id and when the job may start (``start_at_ms``). The job's id is this record's
  position. This is the one record that names the user: the job's last erasure step erases it
  too, so a completed job keeps no byte of the id (``referenceId`` turns null).
- ``JOB_CANCELLED`` (:class:`JobCancelled`, by ``DELETE .../jobs/:id``).
- ``JOB_STARTED`` (:class:`JobStarted`, by the executor, ``runtime.erasure``).
- ``JOB_FINISHED`` (:class:`JobFinished`, by the executor): ``completed`` with what was erased
  (sessions, records, the positions of the ``ERASURE`` records that list the position ranges) or
  ``failed`` with ``errors``. It repeats the job's project, creation and start times, so the job
  row is whole after a rebuild even though its request record is gone.

Status (API.md 1.2): ``scheduled`` -> ``running`` -> ``completed`` | ``failed``, and
``cancelled`` from ``scheduled`` or ``running``. The first final status in log order wins
(:func:`next_status`): a cancel that lands while a step runs stops the job after that step, and
the executor's later finish record no longer changes it.

The supervisor turns these records into :class:`JobRecorded` events for the jobs projection and
each ``ERASURE`` record into :class:`SessionsErased`, upon which every projection forgets those
sessions (``projections.pipeline``) and the engine drops their live actors. A rebuild meets the
same records at the same positions (the erased ones are simply absent), hence the same state.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from engine.events import DomainEvent, RecordParked
from storage.records import Erasure, LogRecord, NewRecord, RecordKind

JOB_KINDS = frozenset(
    {RecordKind.JOB_REQUESTED, RecordKind.JOB_CANCELLED, RecordKind.JOB_STARTED,
     RecordKind.JOB_FINISHED}
)  # fmt: skip
DELETE_USER_ACTION = "delete_user_data"
USER_DELETION = "user-deletion"  # the reason of a job's erasures
RETENTION = "retention"  # the reason of the retention sweep's


class JobStatus(enum.StrEnum):
    """A job's status, as API.md 1.2 spells it."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.RUNNING})


@attrs.frozen(slots=True, kw_only=True)
class JobRequested:
    """Delete every session of ``user_id`` in the record's project, from ``start_at_ms`` on."""

    user_id: str
    start_at_ms: int


@attrs.frozen(slots=True, kw_only=True)
class JobCancelled:
    """Job ``job_id`` is not to run (any more)."""

    job_id: int


@attrs.frozen(slots=True, kw_only=True)
class JobStarted:
    """The executor began job ``job_id``."""

    job_id: int


@attrs.frozen(slots=True, kw_only=True)
class JobFinished:
    """Job ``job_id`` ended: ``completed`` (``errors`` empty) or ``failed`` (``errors`` says why).

    ``sessions`` and ``records`` count what its erasures removed; ``erasures`` are the positions
    of their ``ERASURE`` records (each lists its position ranges: :class:`storage.records.Erasure`).
    """

    job_id: int
    status: JobStatus
    created_at_ms: int
    start_at_ms: int
    sessions: int = 0
    records: int = 0
    erasures: tuple[int, ...] = ()
    errors: str = ""


JobPayload = JobRequested | JobCancelled | JobStarted | JobFinished
_KIND_OF: dict[type, RecordKind] = {
    JobRequested: RecordKind.JOB_REQUESTED,
    JobCancelled: RecordKind.JOB_CANCELLED,
    JobStarted: RecordKind.JOB_STARTED,
    JobFinished: RecordKind.JOB_FINISHED,
}


def job_record(payload: JobPayload, project_id: int, received_at_ms: int) -> NewRecord:
    """The log record of a job payload (on session 0 of the job's project)."""
    body = attrs.asdict(payload, value_serializer=_plain)
    return NewRecord(
        session_id=0,
        project_id=project_id,
        kind=_KIND_OF[type(payload)],
        received_at_ms=received_at_ms,
        payload=json.dumps(body, separators=(",", ":")).encode(),
    )


def _plain(_instance: Any, _field: Any, value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def parse_job_payload(kind: RecordKind, payload: bytes) -> JobPayload:
    """The payload of a job record of ``kind`` (``ValueError`` if it is not one)."""
    try:
        body = json.loads(payload)
        if kind == RecordKind.JOB_REQUESTED:
            return JobRequested(user_id=str(body["user_id"]), start_at_ms=int(body["start_at_ms"]))
        if kind == RecordKind.JOB_CANCELLED:
            return JobCancelled(job_id=int(body["job_id"]))
        if kind == RecordKind.JOB_STARTED:
            return JobStarted(job_id=int(body["job_id"]))
        if kind == RecordKind.JOB_FINISHED:
            return JobFinished(
                job_id=int(body["job_id"]),
                status=JobStatus(body["status"]),
                created_at_ms=int(body["created_at_ms"]),
                start_at_ms=int(body["start_at_ms"]),
                sessions=int(body["sessions"]),
                records=int(body["records"]),
                erasures=tuple(int(p) for p in body["erasures"]),
                errors=str(body["errors"]),
            )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a job payload: {error!r}") from error
    raise ValueError(f"not a job record kind: {kind!r}")


def next_status(current: JobStatus | None, payload: JobPayload) -> JobStatus | None:
    """The job's status after ``payload`` (``current`` None: the job is not known yet), or None
    when the record changes nothing (a final status stays; a start or cancel of an unknown job)."""
    if current in FINAL_STATUSES:
        return None
    if isinstance(payload, JobRequested):
        return JobStatus.SCHEDULED if current is None else None
    if isinstance(payload, JobFinished):
        return payload.status  # whole by itself: also for a job whose request is erased
    if current is None:
        return None
    if isinstance(payload, JobCancelled):
        return JobStatus.CANCELLED
    return JobStatus.RUNNING


def job_description(user_id: str | None) -> str:
    """The job's ``description`` (the reference's wording; a completed job names nobody)."""
    return f"Delete user sessions of userId = {user_id if user_id is not None else '<erased>'}"


# -- domain events --------------------------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class JobRecorded(DomainEvent):
    """A job record: ``job_id`` (the request's position), its payload; ``timestamp`` = the
    record's time (``createdAt`` of a request, ``updatedAt`` of every record)."""

    job_id: int
    payload: JobPayload


@attrs.frozen(slots=True, kw_only=True)
class SessionsErased(DomainEvent):
    """An ``ERASURE`` record: every projection forgets ``sessions`` (all of their rows).

    ``records`` erased records, for delete-user job ``job`` (0: the retention sweep's);
    ``request_erased``: the job's own request record was among them."""

    sessions: tuple[int, ...]
    reason: str
    records: int = 0
    job: int = 0
    request_erased: bool = False


def lifecycle_event(record: LogRecord) -> DomainEvent | None:
    """The domain event of a lifecycle record, None for any other record.

    Raises ``ValueError`` for a lifecycle record whose payload does not parse (the supervisor
    parks it).
    """
    if record.kind == RecordKind.ERASURE:
        erasure = Erasure.from_bytes(record.payload)
        return SessionsErased(
            position=record.position,
            session_id=0,
            project_id=record.project_id,
            timestamp=record.received_at_ms,
            sessions=erasure.sessions,
            reason=erasure.reason,
            records=erasure.count,
            job=erasure.job,
            request_erased=any(first <= erasure.job <= last for first, last in erasure.ranges),
        )
    if record.kind in JOB_KINDS:
        payload = parse_job_payload(record.kind, record.payload)
        job_id = record.position if isinstance(payload, JobRequested) else payload.job_id
        return JobRecorded(
            position=record.position,
            session_id=0,
            project_id=record.project_id,
            timestamp=record.received_at_ms,
            job_id=job_id,
            payload=payload,
        )
    return None


def lifecycle_outcome(record: LogRecord) -> tuple[list[DomainEvent], tuple[int, ...]]:
    """What the engine makes of a lifecycle record: its events and the session ids whose live
    state it drops (an erasure's sessions). A payload that does not parse gives one
    :class:`RecordParked` and drops nothing. Shared by the supervisor and the rebuild's fold, so
    the two cannot treat an erasure differently."""
    try:
        event = lifecycle_event(record)
    except ValueError as error:
        parked = RecordParked(
            position=record.position,
            session_id=record.session_id,
            project_id=record.project_id,
            timestamp=record.received_at_ms,
            error=f"{type(error).__name__}: {error}",
            kind=int(record.kind),
        )
        return [parked], ()
    if event is None:
        return [], ()
    dropped = event.sessions if isinstance(event, SessionsErased) else ()
    return [event], dropped
