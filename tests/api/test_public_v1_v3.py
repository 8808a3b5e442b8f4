"""The public v1 reports over v3 sessions through a real server: intervals and per-type totals.

V3_EVENT / V3_DELETE records are appended to the server's log as ``/3/events/update`` and
``/3/events/delete`` append them; the engine and the projector run inside the server.
"""

from __future__ import annotations

from engine.v3_protocol import event_id
from storage.records import NewRecord
from tests.api.conftest import T0, Harness
from tests.api.test_public_v1 import api_key, get, projected
from tests.engine.v3_builders import v3_delete, v3_event, v3_record

SESSION = "bigbrother01"


async def append(harness: Harness, *records: NewRecord) -> list[int]:
    results = await harness.server.log.append_many(list(records))
    await projected(harness)
    return [r.position for r in results]


async def test_the_seed_pages_interval_of_106_s_with_totals_paging_and_a_deletion(
    harness: Harness,
) -> None:
    project = harness.project.project_id
    key = await api_key(harness)
    base = f"/api/v1/{harness.project.project_key}/v3"
    app = {"app": "BigBrother"}
    start, end = 1_395_136_800, 1_395_136_906
    (first, second, _) = await append(
        harness,
        v3_record(
            "alice",
            SESSION,
            [v3_event("START", "APPSTART", start, app), v3_event("END", "APPSTART", end, app)],
            received_at=T0,
            project_id=project,
        ),
        v3_record(
            "alice",
            "screen-session",
            [v3_event("START", "SCREEN", start + 5, {"on": True})],
            received_at=T0,
            project_id=project,
        ),
        v3_record(  # a point event: no interval
            "bob", "", [v3_event("START", "POSITION", start)], received_at=T0, project_id=project
        ),
    )
    response = await get(harness, key, f"{base}/intervals")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["total"], data["page"], data["limit"]) == (2, 1, 100)
    appstart, screen = data["intervals"]
    assert appstart == {
        "startEventId": event_id(first, 0),
        "endEventId": event_id(first, 1),
        "aid": 7,
        "user": "alice",
        "session": SESSION,
        "type": "APPSTART",
        "start": start,
        "end": end,
        "duration": 106,
        "entities": [{"key": "app", "value": "BigBrother"}],
    }
    assert (screen["startEventId"], screen["end"], screen["duration"]) == (
        event_id(second, 0),
        None,
        None,
    )
    filtered = await get(harness, key, f"{base}/intervals", type="APPSTART", user="alice")
    assert [i["type"] for i in filtered.json()["data"]["intervals"]] == ["APPSTART"]
    later = await get(harness, key, f"{base}/intervals", **{"from": start + 1, "to": end})
    assert [i["type"] for i in later.json()["data"]["intervals"]] == ["SCREEN"]
    paged = await get(harness, key, f"{base}/intervals", page=2, limit=1)
    assert paged.json()["data"]["total"] == 2
    assert [i["type"] for i in paged.json()["data"]["intervals"]] == ["SCREEN"]

    totals = await get(harness, key, f"{base}/totals")
    assert totals.status_code == 200, totals.text
    assert totals.json() == {
        "data": [
            {"type": "APPSTART", "count": 1, "closed": 1, "totalDuration": 106},
            {"type": "SCREEN", "count": 1, "closed": 0, "totalDuration": 0},
        ]
    }

    # Deleting the END reopens the interval: no duration any more.
    await append(
        harness,
        v3_delete("alice", SESSION, event_id(first, 1), received_at=T0 + 1, project_id=project),
    )
    totals = await get(harness, key, f"{base}/totals", type="APPSTART")
    assert totals.json()["data"] == [
        {"type": "APPSTART", "count": 1, "closed": 0, "totalDuration": 0}
    ]


async def test_the_reports_check_the_key_the_project_and_the_query(harness: Harness) -> None:
    key = await api_key(harness)
    base = f"/api/v1/{harness.project.project_key}/v3"
    for path in ("intervals", "totals"):
        assert (await get(harness, None, f"{base}/{path}")).status_code == 401
        missing = await get(harness, key, f"/api/v1/nope/v3/{path}")
        assert missing.json() == {"errors": ["project not found."]}
        bad = await get(harness, key, f"{base}/{path}", **{"from": "yesterday"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0].startswith("query.from: ")
    for params in ({"limit": 0}, {"limit": 1001}, {"page": 0}):
        response = await get(harness, key, f"{base}/intervals", **params)
        assert response.status_code == 422, params
    empty = await get(harness, key, f"{base}/intervals")
    assert empty.json() == {"data": {"total": 0, "page": 1, "limit": 100, "intervals": []}}
    assert (await get(harness, key, f"{base}/totals")).json() == {"data": []}
