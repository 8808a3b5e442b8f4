"""engine.v3_protocol: URLEncoder, the signature, the record payload, events and the registry."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.v3_protocol import (
    Entity,
    RegistryError,
    V3Error,
    V3Event,
    V3Record,
    builtin_registry,
    group_records,
    java_urlencode,
    load_registry,
    parse_events,
    session_id_of,
    signature,
)
from tests.api.test_v3 import url_encoder


def test_urlencoder_rules() -> None:
    assert java_urlencode("a b.c-d*e_f~g") == "a+b.c-d*e_f%7Eg"
    assert java_urlencode('[{"k":"ü"}]') == "%5B%7B%22k%22%3A%22%C3%BC%22%7D%5D"
    assert java_urlencode("/?&=+%") == "%2F%3F%26%3D%2B%25"


@given(st.text())
def test_urlencoder_matches_the_rules(value: str) -> None:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return  # a lone surrogate has no UTF-8: Java writes '?', Python cannot send it at all
    assert java_urlencode(value) == url_encoder(value)


def test_signature_formula() -> None:
    pw = hashlib.sha1(b"pw").hexdigest()
    expected = hashlib.sha1(
        ("%5B%5D" + "7" + "al+ice" + "n0nce" + "secret" + pw).encode()
    ).hexdigest()
    assert signature("[]", 7, "al ice", "n0nce", "secret", pw) == expected


@given(st.text())
def test_session_id_is_positive_63_bit_and_stable(key: str) -> None:
    sid = session_id_of(key)
    assert 0 < sid < 2**63
    assert sid == session_id_of(key)


_EVENT = st.builds(
    V3Event,
    action=st.sampled_from(["START", "UPDATE", "END"]),
    type=st.sampled_from(["APPSTART", "POSITION"]),
    category=st.sampled_from(["ACTIVITY", "ENVIRONMENT"]),
    timestamp=st.integers(0, 2**31),
    session=st.just("s"),
    entities=st.lists(
        st.builds(
            Entity,
            st.text(min_size=1),
            st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.integers()),
        )
    ).map(tuple),
)


@given(st.integers(1, 2**31 - 1), st.text(), st.lists(_EVENT, max_size=5).map(tuple))
def test_record_round_trips(aid: int, user: str, events: tuple[V3Event, ...]) -> None:
    record = V3Record(aid, user, "s", events)
    assert V3Record.from_bytes(record.to_bytes()) == record
    assert record.session_key == f"{aid}:{user}:s"


def _seed_events() -> str:
    apps = [
        {"key": "app", "value": "BigBrother"},
        {"key": "package", "value": "de.thues.bigbrother"},
    ]
    return json.dumps(
        [
            {
                "action": "START",
                "type": "APPSTART",
                "timestamp": 1000,
                "session": "abcdefgh12",
                "entities": apps,
            },
            {
                "action": "END",
                "type": "APPSTART",
                "timestamp": 1106,
                "session": "abcdefgh12",
                "entities": apps,
            },
            {
                "action": "UPDATE",
                "type": "SCREEN",
                "timestamp": 1001,
                "entities": [{"key": "screen_on", "value": True}],
            },
        ]
    )


def test_parse_events_and_group() -> None:
    events = parse_events(_seed_events(), builtin_registry())
    assert [e.action for e in events] == ["START", "END", "UPDATE"]
    assert events[0].category == "ACTIVITY" and events[2].session == ""
    records = group_records(5, "u", events)
    assert [(r.session, len(r.events)) for r in records] == [("abcdefgh12", 2), ("", 1)]


@pytest.mark.parametrize(
    ("data", "code", "index"),
    [
        ("{", "invalid_json", None),
        ("{}", "invalid_data", None),
        ('[{"action":"GO","type":"SCREEN","timestamp":1}]', "invalid_action", 0),
        ('[{"action":"START","type":"NOPE","timestamp":1}]', "unknown_type", 0),
        (
            '[{"action":"START","type":"VIDEO","timestamp":1,"session":"1234567"}]',
            "invalid_session",
            0,
        ),
        (
            '[{"action":"START","type":"VIDEO","timestamp":1,"session":"' + "x" * 21 + '"}]',
            "invalid_session",
            0,
        ),
        (
            '[{"action":"START","type":"VIDEO","timestamp":1},'
            '{"action":"START","type":"APPSTART","timestamp":1,"entities":[{"key":"app"}]}]',
            "missing_required_entity",
            1,
        ),
        ('[{"action":"END","type":"VIDEO","timestamp":1}]', "invalid_session", 0),
        ('[{"action":"START","type":"VIDEO","timestamp":"1"}]', "invalid_timestamp", 0),
        ('[{"action":"START","type":"VIDEO","timestamp":1,"entities":{}}]', "invalid_entities", 0),
        (
            "[" + ",".join(['{"action":"START","type":"VIDEO","timestamp":1}'] * 1001) + "]",
            "too_many_events",
            None,
        ),
    ],
)
def test_bad_events(data: str, code: str, index: int | None) -> None:
    with pytest.raises(V3Error) as info:
        parse_events(data, builtin_registry())
    assert info.value.code == code and info.value.index == index
    assert info.value.body()["result"] == 0 and info.value.body()["APIVersion"] == 3


def test_registry_from_toml_and_json(tmp_path) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text('[types.HEARTRATE]\ncategory = "BIOLOGICAL"\nrequired = ["bpm"]\n')
    reg = load_registry(toml)
    heart = reg.get("HEARTRATE")
    assert heart is not None and heart.required == ("bpm",) and reg.get("POSITION") is not None
    js = tmp_path / "t.json"
    js.write_text('{"types": {"APPSTART": {"category": "ACTIVITY", "required": ["app"]}}}')
    app = load_registry(js).get("APPSTART")
    assert app is not None and app.required == ("app",)
    js.write_text('{"types": {"X": {"category": "FUN"}}}')
    with pytest.raises(RegistryError):
        load_registry(js)
