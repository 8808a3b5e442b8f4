"""The web codec against batches the real tracker (19.0.1, headless Chromium) actually sent.

The fixtures in tests/fixtures/real-tracker/ come from the e2e shop scenario (see the README
there): page 0 of the session (every interaction of the index page), page 1 (after a link
navigation continued the session) and the page-0 batch as it was on the wire, gzip-compressed.
The values asserted here are the ones the scenario's site and driver produce.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from engine.codec.web import (
    BatchMetadata,
    CustomEvent,
    InputChange,
    IssueEvent,
    JSException,
    Metadata,
    MouseClick,
    NetworkRequest,
    PageLoadTiming,
    SetInputValue,
    SetPageLocation,
    TabData,
    Timestamp,
    UnknownMessage,
    UserID,
    decode_batch,
    encode_batch,
    iter_frames,
    iter_messages,
    message_id,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "real-tracker"
PAGE0 = FIXTURES / "shop-page0-batch1.bin"
PAGE0_GZIP = FIXTURES / "shop-page0-batch1.gzip.bin"
PAGE1 = FIXTURES / "shop-page1-batch1.bin"
SECRET = "hunter2-SeCrEt-e2e"  # what the driver typed into the password field
M = TypeVar("M")


def load(path: Path) -> bytes:
    return path.read_bytes()


def of_type(messages: Sequence[object], cls: type[M]) -> list[M]:
    return [m for m in messages if isinstance(m, cls)]


def the(message: object, cls: type[M]) -> M:
    """``message``, checked to be a ``cls``."""
    assert isinstance(message, cls), message
    return message


@pytest.mark.parametrize("path", [PAGE0, PAGE1], ids=["page0", "page1"])
def test_every_message_is_known_and_the_frames_tile_the_batch(path: Path) -> None:
    data = load(path)
    messages = decode_batch(data)
    assert not of_type(messages, UnknownMessage)
    frames = list(iter_frames(data))
    assert len(frames) == len(messages)
    # Each body ends exactly where the next frame's type byte is (4 bytes of type + size).
    for (_, _, end), (_, next_start, _) in itertools.pairwise(frames):
        assert next_start == end + 4
    assert frames[-1][2] == len(data)


@pytest.mark.parametrize("path", [PAGE0, PAGE1], ids=["page0", "page1"])
def test_reencoding_gives_the_tracker_bytes_back(path: Path) -> None:
    data = load(path)
    assert encode_batch(decode_batch(data)) == data


@pytest.mark.parametrize("path", [PAGE0, PAGE1], ids=["page0", "page1"])
def test_batch_starts_with_the_writer_header(path: Path) -> None:
    messages = decode_batch(load(path))
    head = messages[:5]
    # PROTOCOL.md 5.3: 81, 0, 118 from the batch writer, then 0, 118 of the first chunk.
    assert [type(m) for m in head] == [BatchMetadata, Timestamp, TabData, Timestamp, TabData]
    meta = the(head[0], BatchMetadata)
    assert meta.version == 1
    assert meta.first_index == 0
    tab, again = the(head[2], TabData), the(head[4], TabData)
    assert tab.tab_id == again.tab_id and len(tab.tab_id) == 12
    assert meta.timestamp == the(head[1], Timestamp).timestamp  # server-aligned ms


def test_page0_header_and_locations() -> None:
    messages = decode_batch(load(PAGE0))
    meta = the(messages[0], BatchMetadata)
    assert meta.page_no == 0
    assert meta.location.endswith("/index.html")
    first, spa = of_type(messages, SetPageLocation)
    assert first.url.endswith("/index.html")
    assert first.document_title == "replayd e2e shop"
    assert first.navigation_start > 0  # a real page load
    assert spa.url.endswith("/checkout/step-2")
    assert spa.referrer == first.url
    assert spa.navigation_start == 0  # pushState: no page load


def test_page0_load_timing_is_relative_to_navigation_start() -> None:
    (timing,) = of_type(decode_batch(load(PAGE0)), PageLoadTiming)
    steps = [
        timing.request_start,
        timing.response_start,
        timing.response_end,
        timing.dom_content_loaded_event_start,
        timing.dom_content_loaded_event_end,
        timing.load_event_start,
        timing.load_event_end,
    ]
    assert steps == sorted(steps)  # milliseconds since navigation start, in page-load order
    assert 0 < timing.load_event_end < 30_000
    assert 0 < timing.first_paint <= timing.first_contentful_paint


def test_page0_clicks_in_order_with_labels() -> None:
    clicks = of_type(decode_batch(load(PAGE0)), MouseClick)
    assert [c.label for c in clicks] == [
        "Sign in",
        "Add to cart",
        "Checkout",
        "Rage button",
        "Rage button",
        "Rage button",
        "Break things",
        "Load missing thing",
        "Next step",
    ]
    assert clicks[0].selector == "#identify"
    for click in clicks:
        # Hundredths of a percent of the page (PROTOCOL.md 7).
        assert 0 <= click.normalized_x <= 10000 and 0 <= click.normalized_y <= 10000


def test_page0_user_id_and_metadata() -> None:
    messages = decode_batch(load(PAGE0))
    assert [m.id for m in of_type(messages, UserID)] == ["user-42"]
    assert [(m.key, m.value) for m in of_type(messages, Metadata)] == [("plan", "pro")]


def test_page0_inputs_plain_text_and_hidden_password() -> None:
    data = load(PAGE0)
    messages = decode_batch(data)
    name, password = of_type(messages, InputChange)
    assert (name.value, name.value_masked, name.label) == ("Ada Lovelace", False, "#full-name")
    assert (password.value, password.value_masked, password.label) == ("", True, "#secret")
    assert name.input_duration >= 0 and password.input_duration >= 0
    # The password field is "hidden": SetInputValue carries mask -1 and no value.
    hidden = [m for m in of_type(messages, SetInputValue) if m.id == password.id]
    assert hidden and all(m.mask == -1 and m.value == "" for m in hidden)
    assert SECRET.encode() not in data


def test_page0_custom_event_payload() -> None:
    (event,) = of_type(decode_batch(load(PAGE0)), CustomEvent)
    assert event.name == "checkout"
    assert json.loads(event.payload) == {"items": 2, "total": 49.5, "currency": "EUR"}


def test_page0_js_exception() -> None:
    (error,) = of_type(decode_batch(load(PAGE0)), JSException)
    assert error.name == "Error"
    assert error.message == "e2e boom: checkout exploded"
    frames = json.loads(error.payload)
    assert frames[0]["fileName"].endswith("/app.js")
    assert json.loads(error.metadata) == {}


def test_page0_failed_fetch() -> None:
    (request,) = of_type(decode_batch(load(PAGE0)), NetworkRequest)
    assert (request.type, request.method, request.status) == ("fetch", "GET", 404)
    assert request.url.endswith("/api/missing-thing?q=1")
    # capturePayload: GET "body" = the query parameters; the response body is captured too.
    assert json.loads(json.loads(request.request)["body"]) == {"q": "1"}
    assert json.loads(json.loads(request.response)["body"]) == {"error": "not found"}
    assert request.transferred_body_size == len('{"error":"not found"}')


def test_page0_click_rage_issue_from_the_tracker() -> None:
    messages = decode_batch(load(PAGE0))
    (issue,) = of_type(messages, IssueEvent)
    assert issue.type == "click_rage"
    assert issue.context_string == "Rage button"
    assert issue.context == "#rage"
    assert json.loads(issue.payload) == {"Count": 3}
    assert issue.url.endswith("/index.html")
    # The issue carries a server-aligned time within the batch's span.
    times = [m.timestamp for m in of_type(messages, Timestamp)]
    assert min(times) <= issue.timestamp <= max(times)


def test_page0_interactions_come_in_the_order_they_happened() -> None:
    kinds = [
        type(m).__name__
        for m in decode_batch(load(PAGE0))
        if isinstance(m, MouseClick | InputChange | CustomEvent | JSException | NetworkRequest)
    ]
    assert kinds.index("InputChange") < kinds.index("CustomEvent") < kinds.index("JSException")
    assert kinds.index("JSException") < kinds.index("NetworkRequest")


def test_message_ids_follow_the_backend_numbering() -> None:
    data = load(PAGE1)
    indexed = list(iter_messages(data))
    meta = the(indexed[0][1], BatchMetadata)
    assert meta.page_no == 1
    ids = [message_id(meta, index) for index, _ in indexed]
    assert ids[0] == 1 << 32  # page 1, first index 0
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_selective_decoding_keeps_the_indexes() -> None:
    data = load(PAGE0)
    everything = dict(iter_messages(data))
    wanted = frozenset({MouseClick.TYPE_ID, IssueEvent.TYPE_ID})
    some = list(iter_messages(data, wanted))
    assert some and all(everything[index] == msg for index, msg in some)
    assert {type(msg) for _, msg in some} == {MouseClick, IssueEvent}


def test_page1_continues_the_session_on_page_two() -> None:
    messages = decode_batch(load(PAGE1))
    (location,) = of_type(messages, SetPageLocation)
    assert location.url.endswith("/page2.html")
    assert location.referrer.endswith("/checkout/step-2")  # the SPA URL it was left from
    assert location.document_title == "replayd e2e page two"
    assert [c.label for c in of_type(messages, MouseClick)] == ["Confirm order"]


def test_gzip_batch_as_sent_on_the_wire() -> None:
    wire = load(PAGE0_GZIP)
    assert wire[:2] == b"\x1f\x8b"  # Content-Encoding: gzip, a plain gzip member
    assert len(wire) < len(load(PAGE0))
    assert decode_batch(gzip.decompress(wire)) == decode_batch(load(PAGE0))
