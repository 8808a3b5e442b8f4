"""CORS preflights as a browser sends them, the small endpoints around ingest, and JSON errors."""

from __future__ import annotations

import json

from tests.api.conftest import CHROME_UA, Harness

ORIGIN = "http://127.0.0.1:8801"


async def test_preflights_allow_what_the_tracker_asks_for(harness: Harness) -> None:
    # The four preflights of PROTOCOL.md 0.4, as Chromium sent them in the captured traffic.
    cases = [
        ("/v1/web/start", "POST", "content-type"),
        ("/v1/web/tags", "GET", "authorization"),
        ("/v1/web/i?batch=0_1_3239_kyes", "POST", "authorization,datatype"),
        ("/v1/web/i?batch=0_1_3239_kyes", "POST", "authorization,content-encoding,datatype"),
        ("/ingest/v1/web/i?batch=0_1_3239_kyes", "POST", "authorization,datatype"),
    ]
    for path, method, requested in cases:
        response = await harness.client.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": requested,
                "User-Agent": CHROME_UA,
            },
        )
        assert response.status_code in (200, 204), path
        headers = response.headers
        assert headers["access-control-allow-origin"] == "*"
        allowed_methods = {m.strip() for m in headers["access-control-allow-methods"].split(",")}
        assert method in allowed_methods
        allowed_headers = {
            h.strip().lower() for h in headers["access-control-allow-headers"].split(",")
        }
        assert set(requested.split(",")) <= allowed_headers
        assert headers["access-control-max-age"] == "86400"


async def test_tags_need_a_valid_token(harness: Harness) -> None:
    token = (await harness.started())["token"]
    response = await harness.client.get(
        "/v1/web/tags", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json() == {"tags": []}
    assert response.headers["access-control-allow-origin"] == "*"
    assert (await harness.client.get("/v1/web/tags")).status_code == 401
    bad = await harness.client.get("/v1/web/tags", headers={"Authorization": "Bearer x.y.z.w"})
    assert bad.status_code == 401 and set(bad.json()) == {"error"}


async def test_stubs_for_old_trackers_and_unsupported_features(harness: Harness) -> None:
    start = await harness.started()
    auth = {"Authorization": f"Bearer {start['token']}"}
    flags = await harness.client.post("/v1/web/feature-flags", json={}, headers=auth)
    assert (flags.status_code, flags.json()) == (200, {"flags": []})
    assert (await harness.client.post("/v1/web/feature-flags", json={})).status_code == 401
    conditions = await harness.client.get(f"/v1/web/conditions/{start['projectID']}", headers=auth)
    assert (conditions.status_code, conditions.json()) == (200, {"conditions": []})
    report = {
        "trackerVersion": "14.0.0",
        "projectKey": harness.project.project_key,
        "doNotTrack": True,
        "reason": "dnt",
    }
    not_started = await harness.client.post("/v1/web/not-started", content=json.dumps(report))
    assert (not_started.status_code, not_started.json()) == (200, {})
    assert (await harness.client.post("/v1/web/not-started", content=b"{oops")).status_code == 400
    # Canvas uploads (tests/api/test_canvas.py): a form without a file stores nothing, 200.
    images = await harness.client.post(
        "/v1/web/images", headers=auth, files={"type": (None, "frames")}
    )
    assert (images.status_code, images.content) == (200, b"")
    preflight = await harness.client.options(
        "/v1/web/images",
        headers={"Origin": "https://shop.test", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert len(await harness.records()) == 1  # only the start: none of these log anything


async def test_unknown_routes_and_methods_answer_json(harness: Harness) -> None:
    missing = await harness.client.get("/v1/web/nothing-here")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error"}
    assert missing.headers["access-control-allow-origin"] == "*"
    wrong_method = await harness.client.get("/v1/web/start")
    assert wrong_method.status_code == 405
    assert set(wrong_method.json()) == {"error"}
    elsewhere = await harness.client.get("/nowhere")
    assert elsewhere.status_code == 404 and set(elsewhere.json()) == {"error"}
