"""Mobile batches under a crash: `replayd serve` is SIGKILLed during a burst of concurrent SDK
uploads (gzipped `/v1/mobile/i` batches and uncompressed `/v1/mobile/late` ones, as iOS sends its
late file); every batch that got a 200 must be in the log, gunzipped, after the crash."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import trio

from engine.codec.mobile_messages import MobileBatchMeta, MobileClickEvent, encode_batch
from storage.catalog import Catalog
from storage.records import RecordKind
from tests.api.test_ingest_mobile import DEVICE_TS, IOS_UA, ios_start_body
from tests.api.test_sigkill import sigkill_during_burst
from tests.soak.trackers import read_log

CLIENTS = 6
KILL_AFTER_ACKS = 60  # acknowledged batches after which the server is killed

Acked = list[tuple[int, RecordKind, bytes]]  # (session id, record kind, messages) per batch


def _messages(client_no: int, seq: int) -> bytes:
    """A batch unlike every other one (its digest is its retry key): BatchMeta, then taps."""
    first_index = seq * 10
    taps = [
        MobileClickEvent(DEVICE_TS + seq * 100 + n, f"Button {client_no}.{n}", 10 * n, 20)
        for n in range(1 + seq % 5)
    ]
    return encode_batch([MobileBatchMeta(DEVICE_TS + seq * 100, first_index), *taps])


async def _client(
    base_url: str, project_key: str, client_no: int, acked: Acked, enough: trio.Event
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        try:
            body = ios_start_body(project_key, userUUID=None)
            start = await http.post(
                "/v1/mobile/start", content=json.dumps(body), headers={"User-Agent": IOS_UA}
            )
            assert start.status_code == 200, start.text
            token, session_id = start.json()["token"], int(start.json()["sessionID"])
            seq = 0
            while True:
                seq += 1
                messages = _messages(client_no, seq)
                headers = {"Authorization": f"Bearer {token}"}
                if seq % 3:
                    kind, path = RecordKind.MOBILE_BATCH, "/v1/mobile/i"
                    content = gzip.compress(messages)
                    headers["Content-Encoding"] = "gzip"
                else:  # iOS sends its late-messages file uncompressed, with no Content-Type
                    kind, path, content = RecordKind.MOBILE_LATE, "/v1/mobile/late", messages
                response = await http.post(path, content=content, headers=headers)
                assert response.status_code == 200, response.text
                acked.append((session_id, kind, messages))
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()
        except httpx.TransportError:
            return  # the server died under us: expected, that is the test


async def test_acknowledged_mobile_batches_survive_sigkill(tmp_path: Path) -> None:
    catalog = Catalog.open(tmp_path / "replayd.db")
    try:
        app = catalog.create_project("App", "ios")
    finally:
        catalog.close()
    acked: Acked = []

    async def client(base_url: str, project_key: str, client_no: int, enough: trio.Event) -> None:
        await _client(base_url, project_key, client_no, acked, enough)

    db = await sigkill_during_burst(tmp_path, client, CLIENTS, project_key=app.project_key)
    assert len(acked) >= KILL_AFTER_ACKS

    records = read_log(db)
    mobile = {RecordKind.MOBILE_BATCH, RecordKind.MOBILE_LATE}
    stored = {(r.session_id, r.kind, r.payload) for r in records if r.kind in mobile}
    missing = [item for item in acked if item not in stored]
    assert missing == [], f"{len(missing)} acknowledged mobile batches are not in the log"
    assert sum(r.kind is RecordKind.MOBILE_START for r in records) == CLIENTS
