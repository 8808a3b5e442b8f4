"""Delete-user jobs and retention through a real server (issue 15 parts 3 and 4).

Sessions are recorded as a tracker records them; jobs are asked for through ``/api/v1``; the
executor (runtime.erasure) runs inside the server. The byte test then reads every file of the
database (log, projections, images, each with its -wal) for the erased user's id, a metadata
value and a unique click label, in the encodings the tracker's requests carry them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import trio

from api.config import ServerConfig
from engine.lifecycle import JobStarted, job_record
from projections.rebuild import rebuild
from storage.records import ErasureRequest
from tests.api.conftest import T0, Harness, ServerFactory
from tests.api.test_public_v1 import api_key, end_all_sessions, projected
from tests.engine.builders import SessionScript
from tests.projections.factories import PROJECTION_TABLES, dump_tables

VICTIM = "erase-me-7f3a"
SECRET_META = "meta-secret-91c2"
SECRET_LABEL = "label-unique-5d1e"
KEEPER = "keeper"
FAST = {"lifecycle_interval_s": 0.05}
DAY_MS = 86_400_000


async def record(harness: Harness, user_id: str, *, label: str, meta: str, at: int = T0) -> str:
    """One session of ``user_id`` (set at start and by a message), a metadata value and a click
    labelled ``label``; returns its id."""
    harness.clock.now = at
    start = await harness.started(userID=user_id)
    script = SessionScript(int(start["sessionID"]), start_ms=at)
    script.visit("https://shop.test/", title="Shop")
    script.wait(10)
    script.user_id(user_id)
    script.metadata("plan", meta)
    script.click(label, selector="#buy")
    batch = script.batch()
    response = await harness.upload(
        start["token"], batch.payload, batch=f"0_1_{len(batch.payload)}_kyes"
    )
    assert response.status_code == 200, response.text
    await projected(harness)
    return str(start["sessionID"])


async def call(harness: Harness, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return await harness.client.request(method, path, headers={"Authorization": key}, **kw)


async def job_reaches(harness: Harness, key: str, job_id: int, status: str) -> dict[str, Any]:
    """Poll the job until it has ``status``; its object."""
    path = f"/api/v1/{harness.project.project_key}/jobs/{job_id}"
    with trio.fail_after(30):
        while True:
            response = await call(harness, key, "GET", path)
            assert response.status_code == 200, response.text
            job = response.json()["data"]
            if job["status"] == status:
                return job
            assert job["status"] in ("scheduled", "running"), job
            await trio.sleep(0.05)


async def answers_of(harness: Harness, key: str, session_ids: list[str], user: str) -> Any:
    """What the API says of a user and of some sessions."""
    base = f"/api/v1/{harness.project.project_key}"
    out: dict[str, Any] = {
        "sessions": (await call(harness, key, "GET", f"{base}/users/{user}/sessions")).json(),
        "user": (await call(harness, key, "GET", f"{base}/users/{user}")).json(),
    }
    for sid in session_ids:
        out[sid] = (await call(harness, key, "GET", f"{base}/sessions/{sid}/events")).json()
    return out


def encodings(text: str) -> list[bytes]:
    """``text`` as the requests carry it (UTF-8 in batches and JSON, JSON's escapes) and as a
    database could (UTF-16)."""
    return [
        text.encode(),
        json.dumps(text).encode(),
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
    ]


def database_files(db_path: Path) -> list[Path]:
    """Every file of the database beside ``db_path``: log, projections, images and their WALs."""
    files = sorted(p for p in db_path.parent.iterdir() if p.name.startswith(db_path.stem))
    assert any(p.name.endswith("-wal") for p in files)
    return files


def leftovers(db_path: Path, secrets: list[str]) -> list[tuple[str, str]]:
    found = []
    for path in database_files(db_path):
        data = path.read_bytes()
        for secret in secrets:
            if any(form in data for form in encodings(secret)):
                found.append((path.name, secret))
    return found


async def test_a_deleted_user_leaves_no_byte_others_stay_and_rebuild_agrees(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    harness = await server_factory(**FAST)
    key = await api_key(harness)
    config = ServerConfig(db_path=str(tmp_path / "replayd.db"))
    db_path = Path(config.db_path)
    victims = [
        await record(harness, VICTIM, label=SECRET_LABEL, meta=SECRET_META, at=T0 + i)
        for i in range(3)
    ]
    kept = [await record(harness, KEEPER, label="Keep me", meta="gold", at=T0 + 10 + i)
            for i in range(2)]  # fmt: skip
    await end_all_sessions(harness, T0 + 10 * 60_000)
    # A session of the victim still live when the job runs is erased too.
    victims.append(await record(harness, VICTIM, label=SECRET_LABEL, meta=SECRET_META,
                                at=T0 + 11 * 60_000))  # fmt: skip
    before = await answers_of(harness, key, kept, KEEPER)
    assert len(before["sessions"]["data"]) == 2
    assert leftovers(db_path, [VICTIM, SECRET_META, SECRET_LABEL])  # the test can see them

    response = await call(
        harness, key, "DELETE", f"/api/v1/{harness.project.project_key}/users/{VICTIM}"
    )
    assert response.status_code == 200, response.text
    scheduled = response.json()["data"]
    # The job as the projections have it when the answer is made: the executor may have taken
    # it already (it looks every 50 ms here).
    assert scheduled["status"] in ("scheduled", "running")
    assert scheduled["referenceId"] == VICTIM
    assert scheduled["action"] == "delete_user_data"
    assert scheduled["startAt"] == scheduled["createdAt"] == harness.clock.now
    job = await job_reaches(harness, key, scheduled["jobId"], "completed")
    assert job["referenceId"] is None and job["errors"] is None
    assert job["sessionsErased"] == 4
    assert job["recordsErased"] == 4 * 2 + 1  # start and batch of each, and the request

    assert await answers_of(harness, key, kept, KEEPER) == before
    gone = await answers_of(harness, key, victims, VICTIM)
    assert gone["sessions"]["data"] == [] and gone["user"]["data"] is None
    assert all(gone[sid]["data"] == [] for sid in victims)
    assert leftovers(db_path, [VICTIM, SECRET_META, SECRET_LABEL]) == []
    # The other user's bytes are still there (the search would find them).
    assert leftovers(db_path, [KEEPER, "Keep me"])

    await harness.client.aclose()
    harness.server.shutdown()
    await harness.server.wait_stopped()
    live = dump_tables(Path(config.projections_db_path), (*PROJECTION_TABLES, "jobs"))
    await rebuild(config.db_path, config.projections_db_path)
    assert dump_tables(Path(config.projections_db_path), (*PROJECTION_TABLES, "jobs")) == live


async def test_cancel_before_start_and_409_for_a_second_job(harness: Harness) -> None:
    key = await api_key(harness)
    sid = await record(harness, VICTIM, label="x", meta="y")
    base = f"/api/v1/{harness.project.project_key}"
    later = {"startAt": harness.clock.now + 3_600_000}
    first = await call(harness, key, "DELETE", f"{base}/users/{VICTIM}", json=later)
    job = first.json()["data"]
    assert (job["status"], job["startAt"]) == ("scheduled", later["startAt"])
    again = await call(harness, key, "DELETE", f"{base}/users/{VICTIM}")
    assert again.status_code == 409
    assert again.json() == {"errors": ["a job for this user is already scheduled or running"]}

    cancelled = await call(harness, key, "DELETE", f"{base}/jobs/{job['jobId']}")
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "cancelled"
    twice = await call(harness, key, "DELETE", f"{base}/jobs/{job['jobId']}")
    assert twice.status_code == 400
    assert twice.json() == {"errors": ["The request job has already been cancelled."]}
    listed = (await call(harness, key, "GET", f"{base}/jobs")).json()["data"]
    assert [(j["jobId"], j["status"]) for j in listed] == [(job["jobId"], "cancelled")]
    unknown = await call(harness, key, "GET", f"{base}/jobs/999999")
    assert (unknown.status_code, unknown.json()) == (404, {"errors": ["Job not found."]})
    # Nothing was erased; once cancelled, a new job may be asked for.
    events = await call(harness, key, "GET", f"{base}/sessions/{sid}/events")
    assert events.json()["data"] != []
    third = await call(harness, key, "DELETE", f"{base}/users/{VICTIM}", json=later)
    assert third.status_code == 200


async def test_a_job_for_an_unknown_user_completes_with_nothing_erased(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(**FAST)
    key = await api_key(harness)
    await record(harness, KEEPER, label="k", meta="m")
    path = f"/api/v1/{harness.project.project_key}/users/nobody-at-all"
    job = (await call(harness, key, "DELETE", path)).json()["data"]
    done = await job_reaches(harness, key, job["jobId"], "completed")
    assert (done["sessionsErased"], done["recordsErased"]) == (0, 1)  # only its own request
    sessions = await call(harness, key, "GET", f"/api/v1/{harness.project.project_key}"
                          f"/users/{KEEPER}/sessions")  # fmt: skip
    assert len(sessions.json()["data"]) == 1


async def test_a_job_interrupted_by_a_restart_resumes_and_completes(
    server_factory: ServerFactory,
) -> None:
    # The first server never looks for due jobs after its first look (a long interval).
    first = await server_factory(lifecycle_interval_s=3600)
    key = await api_key(first)
    victims = [await record(first, VICTIM, label="v", meta="w", at=T0 + i) for i in range(3)]
    path = f"/api/v1/{first.project.project_key}/users/{VICTIM}"
    job = (await call(first, key, "DELETE", path)).json()["data"]
    # What a crash after the job's start and first step leaves: a running job, one session gone.
    log = first.server.log
    await log.append(job_record(JobStarted(job_id=job["jobId"]), first.project.project_id, T0))
    await log.erase_sessions(
        ErasureRequest(reason="user-deletion", project_id=first.project.project_id,
                       sessions=(int(victims[0]),), job=job["jobId"]),
        received_at_ms=T0,
    )  # fmt: skip
    await projected(first)
    running = (await call(first, key, "GET", f"/api/v1/{first.project.project_key}"
                          f"/jobs/{job['jobId']}")).json()["data"]  # fmt: skip
    assert (running["status"], running["sessionsErased"]) == ("running", 1)
    await first.client.aclose()
    first.server.shutdown()
    await first.server.wait_stopped()

    second = await server_factory(**FAST)
    done = await job_reaches(second, key, job["jobId"], "completed")
    assert done["sessionsErased"] == 3


async def test_retention_erases_an_expired_session_and_keeps_a_fresh_one(
    server_factory: ServerFactory,
) -> None:
    harness = await server_factory(lifecycle_interval_s=0.05, retention_interval_s=0.05)
    key = await api_key(harness)
    project = harness.project
    old = await record(harness, KEEPER, label="old", meta="o", at=T0)
    await end_all_sessions(harness, T0 + 10 * 60_000)
    fresh_at = T0 + 2 * DAY_MS
    fresh = await record(harness, KEEPER, label="fresh", meta="f", at=fresh_at)
    await end_all_sessions(harness, fresh_at + 10 * 60_000)
    updated = await trio.to_thread.run_sync(
        harness.server.catalog.set_retention_days, project.project_id, 1
    )
    assert updated is not None and updated.retention_days == 1
    shown = await call(harness, key, "GET", f"/api/v1/projects/{project.project_key}")
    assert shown.json()["data"]["retentionDays"] == 1
    sessions_path = f"/api/v1/{project.project_key}/users/{KEEPER}/sessions"
    with trio.fail_after(20):
        while True:
            listed = (await call(harness, key, "GET", sessions_path)).json()["data"]
            if [s["sessionId"] for s in listed] == [fresh]:
                break
            assert {s["sessionId"] for s in listed} <= {old, fresh}
            await trio.sleep(0.05)
    events = await call(harness, key, "GET", f"/api/v1/{project.project_key}/sessions/{old}/events")
    assert events.json()["data"] == []


async def test_the_v2_jobs_routes_answer_in_v2s_envelope(harness: Harness) -> None:
    """v2 (API.md 1.3) serves the same jobs through its Bearer key and ``{"error"}`` envelope:
    409 for a second job of one user, a paged list newest first, 400 for a non-integer id."""
    key = await api_key(harness)
    await record(harness, VICTIM, label="x", meta="y")
    bearer = {"Authorization": f"Bearer {key}"}
    base = f"/public/{harness.project.project_key}"
    later = {"startAt": harness.clock.now + 3_600_000}
    first = await harness.client.request(
        "DELETE", f"{base}/users/{VICTIM}", headers=bearer, json=later
    )
    assert first.status_code == 200, first.text
    job = first.json()["data"]
    assert job["status"] == "scheduled"
    again = await harness.client.request("DELETE", f"/v2/api{base}/users/{VICTIM}", headers=bearer)
    assert (again.status_code, again.json()) == (
        409,
        {"error": "a job for this user is already scheduled or running"},
    )
    listed = await harness.client.get(f"{base}/jobs", headers=bearer, params={"limit": 5})
    assert [j["jobId"] for j in listed.json()["data"]] == [job["jobId"]]
    one = await harness.client.get(f"{base}/jobs/{job['jobId']}", headers=bearer)
    assert one.json()["data"] == job
    bad = await harness.client.get(f"{base}/jobs/abc", headers=bearer)
    assert bad.status_code == 400 and "error" in bad.json()
    cancelled = await harness.client.delete(f"{base}/jobs/{job['jobId']}", headers=bearer)
    assert cancelled.json()["data"]["status"] == "cancelled"
    twice = await harness.client.delete(f"{base}/jobs/{job['jobId']}", headers=bearer)
    assert (twice.status_code, twice.json()) == (
        400,
        {"error": "The request job has already been cancelled."},
    )
    # v2 takes a Bearer key only: the bare key of v1 is a bare 401.
    bare = await harness.client.get(f"{base}/jobs", headers={"Authorization": key})
    assert (bare.status_code, bare.content) == (401, b"")
