"""The v3 events API through the real server, signed exactly as the published Java client signs.

The signer below is written from ``java.net.URLEncoder``'s documented rules, not with
``engine.v3_protocol``: a mistake there must not cancel out here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.v3_protocol import V3Record
from storage.records import RecordKind
from storage.v3_catalog import V3App, V3Catalog
from tests.api.conftest import Harness, ServerFactory
from tests.api.test_public_v1 import api_key, get, projected

_KEPT = set(string.ascii_letters + string.digits + ".-*_")
_NONCE_ALPHABET = string.digits + string.ascii_lowercase


def url_encoder(value: str) -> str:
    """``URLEncoder.encode(value, "UTF-8")``: space as ``+``; ``. - * _`` and alphanumerics kept;
    everything else (``~`` too) ``%XX`` in upper-case hex of the UTF-8 bytes."""
    out = []
    for ch in value:
        if ch in _KEPT:
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class JavaClient:
    """de.contextdata.ContextData as observed on the wire: the five fields in order, POST as a
    form without a charset, GET in the query string."""

    def __init__(self, http: httpx.AsyncClient, app: V3App, user: str, password: str) -> None:
        self.http, self.app, self.user, self.password = http, app, user, password
        self.last_nonce = ""

    def fields(self, data: str, *, nonce: str | None = None, secret: str | None = None) -> str:
        nonce = nonce or "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(55))
        self.last_nonce = nonce
        h = _sha1(
            url_encoder(data)
            + str(self.app.aid)
            + url_encoder(self.user)
            + url_encoder(nonce)
            + (secret if secret is not None else self.app.secret)
            + _sha1(self.password)
        )
        pairs = [("nonce", nonce), ("aid", str(self.app.aid)), ("user", self.user), ("data", data)]
        pairs.append(("h", h))
        return "&".join(f"{k}={url_encoder(v)}" for k, v in pairs)

    async def post(self, interface: str, data: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(
            f"/3/{interface}",
            content=self.fields(data, **kwargs).encode("utf-8"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def get(self, interface: str, data: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(f"/3/{interface}?{self.fields(data, **kwargs)}")


APPS = [
    {"key": "app", "value": "BigBrother"},
    {"key": "package", "value": "de.thues.bigbrother"},
]
SESSION = "k3n9q0w2z8x7c6v5b4n1"  # 20 characters, like StudyMe's RandomString.randomString(20)


def seed_example() -> list[dict[str, Any]]:
    """The seed page's example: BigBrother started and ended, 106 s apart."""
    return [
        {"action": "START", "type": "APPSTART", "timestamp": 1_370_000_000, "session": SESSION,
         "entities": APPS},
        {"action": "END", "type": "APPSTART", "timestamp": 1_370_000_106, "session": SESSION,
         "entities": APPS},
    ]  # fmt: skip


async def _setup(harness: Harness, tmp_path: Path) -> JavaClient:
    v3 = V3Catalog.open(tmp_path / "replayd.db")
    try:
        app = v3.create_app("BigBrother", harness.project.project_id)
    finally:
        v3.close()
    anonymous = JavaClient(harness.client, app, "", "")
    registered = await anonymous.post(
        "user/new", json.dumps({"name": "hendrik ~ü", "pass": "pw ü*", "email": "h@example.org"})
    )
    assert registered.status_code == 200 and registered.json() == {"APIVersion": 3, "result": 1}
    return JavaClient(harness.client, app, "hendrik ~ü", "pw ü*")


async def _v3_records(harness: Harness) -> list[V3Record]:
    return [
        V3Record.from_bytes(r.payload)
        for r in await harness.records()
        if r.kind == RecordKind.V3_EVENT
    ]


async def test_the_seed_example_signed_as_the_java_client(harness: Harness, tmp_path: Path) -> None:
    client = await _setup(harness, tmp_path)
    test = await client.get("user/test", "{}")
    assert test.status_code == 200 and test.json()["result"] == 1
    update = await client.post("events/update", json.dumps(seed_example()))
    assert update.status_code == 200, update.text
    assert update.json() == {"APIVersion": 3, "result": 1}
    (record,) = await _v3_records(harness)
    assert (record.aid, record.user, record.session) == (client.app.aid, client.user, SESSION)
    assert [(e.action, e.timestamp, e.category) for e in record.events] == [
        ("START", 1_370_000_000, "ACTIVITY"),
        ("END", 1_370_000_106, "ACTIVITY"),
    ]
    stored = [r for r in await harness.records() if r.kind == RecordKind.V3_EVENT]
    assert stored[0].project_id == harness.project.project_id
    assert stored[0].session_key == f"{client.app.aid}:{client.user}:{SESSION}"


async def test_one_post_is_one_record_per_session_and_data_may_ride_the_query(
    harness: Harness, tmp_path: Path
) -> None:
    client = await _setup(harness, tmp_path)
    screen = {"action": "UPDATE", "type": "SCREEN", "timestamp": 5,
              "entities": [{"key": "screen_on", "value": None}]}  # fmt: skip
    data = json.dumps([*seed_example(), screen])
    fields = client.fields(data)
    # data in the query string, the other four in the form
    query = "&".join(p for p in fields.split("&") if p.startswith("data="))
    form = "&".join(p for p in fields.split("&") if not p.startswith("data="))
    response = await harness.client.post(
        f"/3/events/update?{query}",
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    records = await _v3_records(harness)
    assert [(r.session, len(r.events)) for r in records] == [(SESSION, 2), ("", 1)]
    assert records[1].events[0].entities[0].value is None


def _event(**fields: Any) -> dict[str, Any]:
    return {"action": "START", "type": "VIDEO", "timestamp": 1, **fields}


BAD_DATA = [
    ("[", 400, "invalid_json", None),
    ('{"action":"START"}', 400, "invalid_data", None),
    (json.dumps([_event(), _event(type="NOSUCHTYPE")]), 400, "unknown_type", 1),
    (json.dumps([_event(session="1234567")]), 400, "invalid_session", 0),
    (json.dumps([_event(session="x" * 21)]), 400, "invalid_session", 0),
    (
        json.dumps([_event(), _event(), _event(type="APPSTART", entities=APPS[:1])]),
        400,
        "missing_required_entity",
        2,
    ),
    (json.dumps([_event()] * 1001), 413, "too_many_events", None),
]


@pytest.mark.parametrize(("data", "status", "code", "index"), BAD_DATA)
async def test_bad_data_is_refused_whole(
    harness: Harness, tmp_path: Path, data: str, status: int, code: str, index: int | None
) -> None:
    client = await _setup(harness, tmp_path)
    response = await client.post("events/update", data)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["APIVersion"] == 3 and body["result"] == 0 and body["code"] == code
    assert body["reason"] and body.get("index") == index
    assert await _v3_records(harness) == []


async def test_authentication_failures(harness: Harness, tmp_path: Path) -> None:
    client = await _setup(harness, tmp_path)
    data = json.dumps(seed_example())

    async def refused(response: httpx.Response, code: str) -> None:
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["result"] == 0 and body["code"] == code
        assert body["reason"].startswith("Authentication failed")

    await refused(await client.post("events/update", data, secret="x" * 50), "bad_signature")
    fields = client.fields(data).replace("&h=", "&h=0")  # a bad signature
    bad = await harness.client.post(
        "/3/events/update",
        content=fields.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await refused(bad, "bad_signature")
    assert (await client.post("events/update", data)).status_code == 200
    replayed = await client.post("events/update", data, nonce=client.last_nonce)
    await refused(replayed, "replayed_nonce")
    wrong_user = JavaClient(harness.client, client.app, "nobody", "pw")
    await refused(await wrong_user.get("user/test", "{}"), "unknown_user")
    wrong_password = JavaClient(harness.client, client.app, client.user, "not it")
    await refused(await wrong_password.get("user/test", "{}"), "bad_signature")
    no_app = await harness.client.get("/3/user/test", params={"nonce": "n", "aid": "0", "h": "x"})
    await refused(no_app, "unknown_app")
    await refused(await harness.client.get("/3/user/test"), "authentication_failed")
    assert len(await _v3_records(harness)) == 1  # only the good batch


async def test_registration_routes_and_methods(harness: Harness, tmp_path: Path) -> None:
    client = await _setup(harness, tmp_path)
    again = await JavaClient(harness.client, client.app, "", "").post(
        "user/new", json.dumps({"name": client.user, "pass": "x", "email": ""})
    )
    assert again.status_code == 409 and again.json()["reason"] == "User already exists"
    # unsigned, as Tracking-Time registered (the app's id names the project)
    unsigned = await harness.client.post(
        "/3/user/new",
        data={"aid": str(client.app.aid), "data": json.dumps({"name": "tt", "pass": "p"})},
    )
    assert unsigned.status_code == 200 and unsigned.json()["result"] == 1
    assert (await JavaClient(harness.client, client.app, "tt", "p").get("user/test", "")).is_success
    wrong = await harness.client.get("/3/events/update")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    missing = await harness.client.get("/3/nothing/here")
    assert missing.status_code == 404
    assert missing.json() == {
        "APIVersion": 3,
        "result": 0,
        "reason": missing.json()["reason"],
        "code": "not_found",
    }


async def test_registry_from_the_configured_file(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    types = tmp_path / "types.toml"
    types.write_text('[types.HEARTRATE]\ncategory = "BIOLOGICAL"\nrequired = ["bpm"]\n')
    harness = await server_factory(v3_types=str(types))
    client = await _setup(harness, tmp_path)
    beat = {"action": "UPDATE", "type": "HEARTRATE", "timestamp": 9}
    missing = await client.post("events/update", json.dumps([beat]))
    assert missing.json()["code"] == "missing_required_entity"
    beat["entities"] = [{"key": "bpm", "value": 61}]
    assert (await client.post("events/update", json.dumps([beat]))).status_code == 200
    ((event,),) = [r.events for r in await _v3_records(harness)]
    assert event.category == "BIOLOGICAL"


async def _shown(client: JavaClient, query: dict[str, Any]) -> dict[str, Any]:
    response = await client.get("events/show", json.dumps(query))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["APIVersion"], body["result"]) == (3, 1)
    assert body["total_events"] == len(body["events"])
    return body


async def test_show_delete_and_values_over_the_seed_example(
    harness: Harness, tmp_path: Path
) -> None:
    client = await _setup(harness, tmp_path)
    screen = {"action": "UPDATE", "type": "SCREEN", "timestamp": 1_370_000_050,
              "entities": [{"key": "screen_on", "value": None}]}  # fmt: skip
    assert (await client.post("events/update", json.dumps([*seed_example(), screen]))).is_success
    await projected(harness)

    everything = await _shown(client, {"model": "COMPLETE"})
    start, shown_screen, end = everything["events"]
    assert [(e["action"], e["type"], e["timestamp"], e["session"]) for e in (start, end)] == [
        ("START", "APPSTART", 1_370_000_000, SESSION),
        ("END", "APPSTART", 1_370_000_106, SESSION),
    ]
    assert start["entities"] == end["entities"] == APPS
    assert shown_screen["session"] == "" and shown_screen["entities"] == [{"key": "screen_on"}]
    assert end["id"] == start["id"] + 1  # position * 1000 + index, one record for the session
    only_apps = await _shown(
        client,
        {"type": "APPSTART", "category": "ACTIVITY", "source": "MOBILE",
         "start": 1_370_000_000, "end": 1_370_000_100, "entities": APPS[:1]},
    )  # fmt: skip
    assert [e["id"] for e in only_apps["events"]] == [start["id"]]
    assert (await _shown(client, {"entities": [{"key": "app", "value": "other"}]}))["events"] == []
    assert (await _shown(client, {}))["total_events"] == 3
    empty_data = await client.get("events/show", "")  # as an empty filter
    assert empty_data.status_code == 200 and empty_data.json()["total_events"] == 3

    key = await api_key(harness)
    intervals = f"/api/v1/{harness.project.project_key}/v3/intervals"
    (interval,) = (await get(harness, key, intervals, type="APPSTART")).json()["data"]["intervals"]
    assert (interval["startEventId"], interval["endEventId"]) == (start["id"], end["id"])
    assert interval["duration"] == 106 and interval["user"] == client.user

    values = await client.get("entities/values", json.dumps({"type": "APPSTART", "key": "app"}))
    assert values.status_code == 200, values.text
    assert values.json() == {"APIVersion": 3, "result": 1, "values": ["BigBrother"]}

    deleted = await client.post("events/delete", json.dumps({"id": str(end["id"])}))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"APIVersion": 3, "result": 1}
    (record,) = [r for r in await harness.records() if r.kind == RecordKind.V3_DELETE]
    assert record.session_key == f"{client.app.aid}:{client.user}:{SESSION}"
    assert json.loads(record.payload) == {"aid": client.app.aid, "user": client.user,
                                          "id": end["id"]}  # fmt: skip
    await projected(harness)
    after = await _shown(client, {"type": "APPSTART"})
    assert [e["id"] for e in after["events"]] == [start["id"]]
    # the engine side reopens the interval of a deleted END
    (reopened,) = (await get(harness, key, intervals)).json()["data"]["intervals"]
    assert (reopened["startEventId"], reopened["end"], reopened["duration"]) == (
        start["id"],
        None,
        None,
    )
    gone = await client.post("events/delete", json.dumps({"id": end["id"]}))
    assert gone.status_code == 404 and gone.json()["code"] == "unknown_event"
    assert gone.json()["result"] == 0 and gone.json()["reason"]
    # another user of the project does not see, nor delete, these events
    other = JavaClient(harness.client, client.app, "tt", "p")
    registered = await harness.client.post(
        "/3/user/new", data={"aid": str(client.app.aid), "data": '{"name":"tt","pass":"p"}'}
    )
    assert registered.is_success
    assert (await _shown(other, {}))["events"] == []
    refused = await other.post("events/delete", json.dumps({"id": start["id"]}))
    assert refused.status_code == 404
    assert len([r for r in await harness.records() if r.kind == RecordKind.V3_DELETE]) == 1


BAD_READS = [
    ("events/show", "[]", "invalid_data"),
    ("events/show", "{", "invalid_json"),
    ("events/show", '{"model":"SPECIFIC"}', "invalid_filter"),
    ("events/show", '{"start":"yesterday"}', "invalid_filter"),
    ("events/show", '{"end":1' + "0" * 400 + "}", "invalid_filter"),
    ("events/show", '{"entities":[{"value":1}]}', "invalid_filter"),
    ("entities/values", '{"type":"APPSTART"}', "invalid_filter"),
]


@pytest.mark.parametrize(("interface", "data", "code"), BAD_READS)
async def test_bad_filters_are_400(
    harness: Harness, tmp_path: Path, interface: str, data: str, code: str
) -> None:
    client = await _setup(harness, tmp_path)
    response = await client.get(interface, data)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code and response.json()["result"] == 0


@pytest.mark.parametrize("data", ['{"id":0}', '{"id":"12a"}', '{"id":true}', "{}", "[1]"])
async def test_bad_delete_ids_are_400(harness: Harness, tmp_path: Path, data: str) -> None:
    client = await _setup(harness, tmp_path)
    response = await client.post("events/delete", data)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_data"


async def test_reads_and_deletions_need_a_good_signature(harness: Harness, tmp_path: Path) -> None:
    client = await _setup(harness, tmp_path)
    wrong = "x" * 50
    calls = [
        await client.get("events/show", "{}", secret=wrong),
        await client.get("entities/values", '{"type":"APPSTART","key":"app"}', secret=wrong),
        await client.post("events/delete", '{"id":1000}', secret=wrong),
        await JavaClient(harness.client, client.app, client.user, "no").get("events/show", "{}"),
        await harness.client.get("/3/events/show", params={"data": "{}"}),
    ]
    for response in calls:
        assert response.status_code == 403, response.text
        assert response.json()["reason"].startswith("Authentication failed")
    ok = await client.get("events/show", "{}")
    replayed = await client.get("events/show", "{}", nonce=client.last_nonce)
    assert ok.status_code == 200 and replayed.json()["code"] == "replayed_nonce"
