"""Delete-user jobs in the public API v1 (API.md 1.2 #7-#10, with the 409 of 1.3).

- ``DELETE /api/v1/<projectKey>/users/<userId>`` (optional body ``{"startAt": epoch ms}``)
  schedules a job and answers the job object (status ``scheduled``, or already ``running``
  when the executor took it before the answer was made: the answer is the jobs projection's).
  Unlike the reference (next UTC midnight) ``startAt`` is now unless the body asks for later; the
  executor (``runtime.erasure``) starts it within ``lifecycle_interval_s``. A second job for a
  user whose job is still scheduled or running answers **409** ``{"errors": ["a job for this user is
  already scheduled or running"]}`` on v1 as on v2 (the reference's v1 scheduled duplicates; a
  duplicate would only find nothing to erase).
- ``GET .../jobs`` lists the project's jobs, newest first (v2's order; all of them, or a page with
  ``limit`` 1-200 (out of range: 50) and ``page`` >= 1).
- ``GET .../jobs/<jobId>`` answers one job; 404 ``Job not found.`` (the reference's v1 answered
  ``{}`` with 200, its v2 404: one answer for both here).
- ``DELETE .../jobs/<jobId>`` cancels a scheduled or running job (a running one stops after its
  step under way; what it erased stays erased); 400 ``The request job has already been
  <status>.`` when it is completed, failed or cancelled; 404 when unknown.

The job object: ``jobId, description, status, projectId, action ("delete_user_data"),
referenceId (the user id; null once completed: the job forgets whom it erased), createdAt,
updatedAt, startAt, errors`` (API.md 1.2), plus ``sessionsErased`` and ``recordsErased``.

A request appends its job record to the log (``engine.lifecycle``) and answers once the jobs
projection has applied it, reading the job from there; one lock per app makes "is there an
active job for this user?" and the append one step. Auth: :func:`api.public_v1.authorized_project`
only. No SQL here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio
from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio

from api import public_v1_schema as schema
from api.errors import json_response, v1_errors
from api.openapi import INTEGER, STRING, Parameter, component, json_object, json_reply, nullable
from api.public_v1 import (
    INT64_MAX,
    V1Error,
    V1ValidationError,
    authorized_project,
    int64_param,
    json_body,
    projection_reader,
)
from engine.lifecycle import (
    DELETE_USER_ACTION,
    FINAL_STATUSES,
    JobCancelled,
    JobPayload,
    JobRequested,
    JobStatus,
    job_description,
    job_record,
)
from projections import jobs
from projections.base import read_checkpoint
from storage.log import EventLog

EXTENSION_KEY = "replayd.public_v1_jobs"
PAGE_LIMIT_MAX = 200
PAGE_LIMIT_DEFAULT = 50
# How long a request waits for the jobs projection to show its record (the engine's lag).
APPLIED_WAIT_S = 10.0
_APPLIED_POLL_S = 0.01

bp = Blueprint("public_v1_jobs", __name__, url_prefix="/api/v1")


@attrs.define(eq=False)
class JobsApi:
    """What the routes use: the log (to append job records) and the clock that stamps them."""

    log: EventLog
    clock: Callable[[], int]
    lock: trio.Lock = attrs.field(factory=trio.Lock)


def install(app: QuartTrio, log: EventLog, clock: Callable[[], int]) -> JobsApi:
    """Give the blueprint its objects (the reader comes from :mod:`api.public_v1`)."""
    api = JobsApi(log=log, clock=clock)
    app.extensions[EXTENSION_KEY] = api
    return api


def _api() -> JobsApi:
    return current_app.extensions[EXTENSION_KEY]


@bp.errorhandler(V1Error)
async def _v1_error(error: V1Error) -> Response:
    return json_response(v1_errors(error.message), error.status)


JOB = component(
    "Job",
    json_object(
        {
            "jobId": INTEGER,
            "description": STRING,
            "status": {"enum": [status.value for status in JobStatus]},
            "projectId": INTEGER,
            "action": {"enum": [DELETE_USER_ACTION]},
            "referenceId": {**nullable(STRING), "description": "The user id; null once completed"},
            "createdAt": schema.INT64,
            "updatedAt": schema.INT64,
            "startAt": schema.INT64,
            "errors": nullable(STRING),
            "sessionsErased": INTEGER,
            "recordsErased": INTEGER,
        },
        ["jobId", "description", "status", "projectId", "action", "referenceId", "createdAt",
         "updatedAt", "startAt", "errors"],
    ),
)  # fmt: skip
JOB_ID = Parameter("job_id", "path", {"type": "string", "pattern": "^-?[0-9]+$"}, "The job's id")
START_AT_BODY = nullable(
    json_object(
        {
            "startAt": {
                **nullable(schema.INT64),
                "description": "Not before this (epoch ms); null or absent: now",
            }
        }
    )
)
CONFLICT = json_reply("A job for this user is already scheduled or running", schema.V1_ERRORS)
BEHIND = json_reply("The job is recorded but the projections lag behind", schema.V1_ERRORS)
ALREADY_DONE = json_reply("The job is already completed, failed or cancelled", schema.V1_ERRORS)


def job_json(row: jobs.JobRow) -> dict[str, Any]:
    """The job object of API.md 1.2 (plus what was erased so far)."""
    return {
        "jobId": row.job_id,
        "description": job_description(row.user_id),
        "status": row.status.value,
        "projectId": row.project_id,
        "action": DELETE_USER_ACTION,
        "referenceId": row.user_id,
        "createdAt": row.created_at_ms,
        "updatedAt": row.updated_at_ms,
        "startAt": row.start_at_ms,
        "errors": row.errors,
        "sessionsErased": row.sessions_erased,
        "recordsErased": row.records_erased,
    }


async def _append_applied(payload: JobPayload, project_id: int) -> int:
    """Append a job record; return its position once the jobs projection has applied it."""
    api = _api()
    appended = await api.log.append(job_record(payload, project_id, api.clock()))
    reader = projection_reader()
    with trio.move_on_after(APPLIED_WAIT_S):
        while await reader.run(read_checkpoint, jobs.NAME) < appended.position:
            await trio.sleep(_APPLIED_POLL_S)
        return appended.position
    raise V1Error(503, "the job is recorded; the projections are behind, ask for it shortly")


async def _job_or_404(project_id: int, job_id: int) -> jobs.JobRow:
    row = await projection_reader().run(jobs.get_job, project_id, job_id)
    if row is None:
        raise V1Error(404, "Job not found.")
    return row


def _job_id(raw: str) -> int:
    job_id = int64_param(raw, ["path", "jobId"])
    assert job_id is not None
    return job_id


async def _start_at(now_ms: int) -> int:
    """The job's start: the body's ``startAt`` if later than now, else now."""
    body = await json_body()
    if body is None:
        return now_ms
    if not isinstance(body, dict):
        raise V1ValidationError(["body"], "Input should be a valid dictionary")
    start_at = body.get("startAt")
    if start_at is None:
        return now_ms
    if type(start_at) is not int or not schema.INT64_MIN <= start_at <= schema.INT64_MAX:
        raise V1ValidationError(["body", "startAt"], "Input should be a valid integer (epoch ms)")
    return max(start_at, now_ms)


@bp.delete("/<project_key>/users/<user_id>")
@schema.v1_operation(
    "Schedule a job that erases every session of a user",
    parameters=[schema.PROJECT_KEY, schema.USER_ID],
    body={"application/json": START_AT_BODY},
    responses={
        **schema.replies(schema.data_reply("The job, scheduled", JOB), 401, 404, 422),
        409: CONFLICT,
        503: BEHIND,
    },
)
async def delete_user(project_key: str, user_id: str) -> Response:
    project = await authorized_project(project_key)
    api = _api()
    start_at = await _start_at(api.clock())
    reader = projection_reader()
    async with api.lock:  # the check and the append are one step
        active = await reader.run(jobs.active_job_of_user, project.project_id, user_id)
        if active is not None:
            raise V1Error(409, "a job for this user is already scheduled or running")
        job_id = await _append_applied(
            JobRequested(user_id=user_id, start_at_ms=start_at), project.project_id
        )
    return json_response({"data": job_json(await _job_or_404(project.project_id, job_id))})


def _page() -> tuple[int, int]:
    """``(limit, offset)`` of the query's ``limit``/``page`` (all jobs when neither is given)."""
    raw_limit, raw_page = request.args.get("limit"), request.args.get("page")
    if raw_limit is None and raw_page is None:
        return -1, 0
    limit = int64_param(raw_limit, ["query", "limit"]) or PAGE_LIMIT_DEFAULT
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        limit = PAGE_LIMIT_DEFAULT  # API.md 1.3: out of range means the default
    page = int64_param(raw_page, ["query", "page"]) or 1
    if page < 1:
        raise V1ValidationError(["query", "page"], "Input should be greater than or equal to 1")
    # SQLite binds a 64-bit OFFSET: a page beyond it holds no job (and must not be a 500).
    return limit, min((page - 1) * limit, INT64_MAX)


PAGE_PARAMETERS = (
    Parameter("limit", "query", INTEGER, "Page size 1-200 (else 50); all jobs when absent"),
    Parameter("page", "query", INTEGER, "Page number from 1"),
)


@bp.get("/<project_key>/jobs")
@schema.v1_operation(
    "The project's delete-user jobs, newest first",
    parameters=[schema.PROJECT_KEY, *PAGE_PARAMETERS],
    responses=schema.replies(schema.list_reply("The jobs", JOB), 401, 404, 422),
)
async def list_jobs(project_key: str) -> Response:
    project = await authorized_project(project_key)
    limit, offset = _page()
    rows = await projection_reader().run(
        jobs.list_jobs, project.project_id, limit=limit, offset=offset
    )
    return json_response({"data": [job_json(row) for row in rows]})


@bp.get("/<project_key>/jobs/<job_id>")
@schema.v1_operation(
    "One delete-user job",
    parameters=[schema.PROJECT_KEY, JOB_ID],
    responses=schema.replies(schema.data_reply("The job", JOB), 401, 404, 422),
)
async def get_job(project_key: str, job_id: str) -> Response:
    project = await authorized_project(project_key)
    row = await _job_or_404(project.project_id, _job_id(job_id))
    return json_response({"data": job_json(row)})


@bp.delete("/<project_key>/jobs/<job_id>")
@schema.v1_operation(
    "Cancel a scheduled or running delete-user job",
    parameters=[schema.PROJECT_KEY, JOB_ID],
    responses={
        **schema.replies(schema.data_reply("The job, cancelled", JOB), 401, 404, 422),
        400: ALREADY_DONE,
        503: BEHIND,
    },
)
async def cancel_job(project_key: str, job_id: str) -> Response:
    project = await authorized_project(project_key)
    wanted = _job_id(job_id)
    async with _api().lock:
        row = await _job_or_404(project.project_id, wanted)
        if row.status in FINAL_STATUSES:
            raise V1Error(400, f"The request job has already been {row.status.value}.")
        await _append_applied(JobCancelled(job_id=wanted), project.project_id)
    return json_response({"data": job_json(await _job_or_404(project.project_id, wanted))})
