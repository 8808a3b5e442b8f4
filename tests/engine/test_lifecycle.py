"""Job records (engine.lifecycle): payloads round-trip, and the status rules of API.md 1.2."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.lifecycle import (
    JobCancelled,
    JobFinished,
    JobRecorded,
    JobRequested,
    JobStarted,
    JobStatus,
    lifecycle_event,
    next_status,
)
from storage.records import LogRecord

ints = st.integers(min_value=0, max_value=2**62)
payloads = st.one_of(
    st.builds(JobRequested, user_id=st.text(), start_at_ms=ints),
    st.builds(JobCancelled, job_id=ints),
    st.builds(JobStarted, job_id=ints),
    st.builds(
        JobFinished,
        job_id=ints,
        status=st.sampled_from([JobStatus.COMPLETED, JobStatus.FAILED]),
        created_at_ms=ints,
        start_at_ms=ints,
        sessions=ints,
        records=ints,
        erasures=st.lists(ints, max_size=5).map(tuple),
        errors=st.text(),
    ),
)


@given(payloads, st.integers(min_value=1, max_value=2**40))
def test_job_records_round_trip_through_the_log_shape(payload, position: int) -> None:
    from engine.lifecycle import job_record

    new = job_record(payload, project_id=3, received_at_ms=99)
    stored = LogRecord(position, new.session_id, new.project_id, new.kind, new.received_at_ms,
                       new.payload)  # fmt: skip
    event = lifecycle_event(stored)
    assert isinstance(event, JobRecorded)
    assert event.payload == payload and (event.project_id, event.timestamp) == (3, 99)
    expected_id = position if isinstance(payload, JobRequested) else payload.job_id
    assert event.job_id == expected_id


def test_statuses_move_forward_and_the_first_final_one_wins() -> None:
    requested = JobRequested(user_id="u", start_at_ms=0)
    finished = JobFinished(job_id=1, status=JobStatus.COMPLETED, created_at_ms=0, start_at_ms=0)
    assert next_status(None, requested) is JobStatus.SCHEDULED
    assert next_status(JobStatus.SCHEDULED, JobStarted(job_id=1)) is JobStatus.RUNNING
    assert next_status(JobStatus.RUNNING, JobCancelled(job_id=1)) is JobStatus.CANCELLED
    assert next_status(JobStatus.CANCELLED, finished) is None  # a cancel landed first
    assert next_status(JobStatus.RUNNING, finished) is JobStatus.COMPLETED
    assert next_status(None, finished) is JobStatus.COMPLETED  # its request was erased
    assert next_status(None, JobStarted(job_id=1)) is None
    assert next_status(JobStatus.COMPLETED, JobCancelled(job_id=1)) is None
