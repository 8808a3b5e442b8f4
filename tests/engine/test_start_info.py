"""The start facts' one field table: the start record's bytes, SessionStarted and the sessions row
all follow ``StartInfo``."""

from __future__ import annotations

import sqlite3

import attrs

from engine import events as ev
from engine.start_info import START_FIELDS, StartInfo
from engine.start_payload import WebStartPayload
from projections import sessions

# A start record exactly as the server wrote it before StartInfo existed (old logs hold these).
TODAYS_BYTES = (
    b'{"session_id":7,"project_id":2,"start_timestamp":1700000000000,"delay":-5,'
    b'"continued":false,"user_uuid":"u-1","user_id":"ann","rev_id":"r9",'
    b'"tracker_version":"16.0.1","is_snippet":true,"user_agent":"Mozilla/5.0",'
    b'"user_os":"Linux","user_os_version":"6.1","user_browser":"Chrome",'
    b'"user_browser_version":"120.0.1","user_device":"Pixel","user_device_type":"mobile",'
    b'"user_country":"DE","user_city":"Berlin","user_state":"BE","timezone":"UTC+01",'
    b'"screen_width":1280,"screen_height":800,"referrer":"https://ref.example/",'
    b'"device_memory":8192,"js_heap_size_limit":4096,"platform":"web"}'
)


def test_todays_bytes_read_and_write_back_identically() -> None:
    payload = WebStartPayload.from_bytes(TODAYS_BYTES)
    assert (payload.session_id, payload.delay, payload.user_device) == (7, -5, "Pixel")
    assert payload.to_bytes() == TODAYS_BYTES


def test_every_start_fact_is_carried_by_the_payload_and_the_sessions_row() -> None:
    row_fields = {f.name for f in attrs.fields(sessions.SessionRow)}
    assert set(START_FIELDS) <= row_fields
    assert set(START_FIELDS) <= {f.name for f in attrs.fields(WebStartPayload)}


def test_the_event_carries_the_start_info_of_the_record() -> None:
    payload = WebStartPayload.from_bytes(TODAYS_BYTES)
    start = payload.start_info()
    assert type(start) is StartInfo and start.start_info() is start
    assert all(getattr(start, name) == getattr(payload, name) for name in START_FIELDS)


def test_round_trip_start_record_to_sessions_row() -> None:
    payload = WebStartPayload.from_bytes(TODAYS_BYTES)
    event = ev.SessionStarted(
        position=1,
        session_id=payload.session_id,
        project_id=payload.project_id,
        timestamp=payload.start_timestamp,
        start=payload.start_info(),
    )
    conn = sqlite3.connect(":memory:", isolation_level=None)
    sessions.migrate(conn)
    sessions.apply(conn, [event])
    row = sessions.get_session(conn, payload.project_id, payload.session_id)
    assert row is not None
    assert {name: getattr(row, name) for name in START_FIELDS} == {
        name: getattr(payload, name) for name in START_FIELDS
    }
