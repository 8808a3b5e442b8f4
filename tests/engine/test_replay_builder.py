"""The replay builder, survey and stream (engine.replay): items, header, safety, bounded memory."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import web_messages as wm
from engine.replay import builder as builder_module
from engine.replay.builder import ReplayBuilder
from engine.replay.sanitize import DROPPED_TAGS, HOSTILE_CSS, URL_ATTRIBUTES
from engine.replay.stream import ReplayStream
from engine.replay.walk import MessageWalk, TimedMessage
from storage.records import LogRecord
from tests.engine.builders import T0, SessionScript
from tests.engine.replay_builders import CANARY_TEXT, hostile_page, small_page

TAB = "e18efc31aa0f"


def committed(records: list, first: int = 1) -> list[LogRecord]:
    """NewRecords as the log would hand them back (positions from ``first``)."""
    return [
        LogRecord(
            first + n, r.session_id, r.project_id, r.kind, r.received_at_ms, r.payload, r.batch_key
        )
        for n, r in enumerate(records)
    ]


def items_of(script_fill, **kwargs) -> list[dict]:
    script = SessionScript(7, start_ms=T0)
    script_fill(script)
    records = committed([script.batch()])
    return ReplayBuilder(T0, **kwargs).items(MessageWalk().messages(records))


def timed(*messages: wm.WebMessage, tab: str = TAB) -> list[TimedMessage]:
    return [TimedMessage(T0, tab, m, "https://shop.test/") for m in messages]


def test_a_dropped_element_takes_its_subtree_and_later_messages() -> None:
    build = ReplayBuilder(T0)
    items = build.items(timed(
        wm.CreateDocument(),
        wm.CreateElementNode(1, 0, 0, "BODY", False),
        wm.CreateElementNode(2, 1, 0, "Script", False),
        wm.CreateTextNode(3, 2, 0),
        wm.SetNodeData(3, "alert(1)"),
        wm.CreateElementNode(4, 3, 0, "DIV", False),  # under a dropped node
        wm.SetNodeAttribute(2, "src", "https://x.test/a.js"),
        wm.MoveNode(2, 1, 0),
        wm.RemoveNode(2),
        wm.CreateElementNode(5, 99, 0, "DIV", False),  # an unknown parent
        wm.CreateElementNode(1, 0, 0, "P", False),  # a duplicate id
    ))  # fmt: skip
    assert [(i["k"], i.get("id")) for i in items] == [("doc", None), ("el", 1)]


def test_dictionaries_and_base_urls_are_resolved() -> None:
    items = items_of(small_page)
    attrs = [(i["id"], i["n"], i["v"]) for i in items if i["k"] == "attr"]
    assert (5, "class", "rows") in attrs
    assert (1, "style", 'background:url("https://shop.test/img/bg.png")') in attrs
    # An unknown dictionary key sets nothing.
    build = ReplayBuilder(T0)
    assert build.items(timed(wm.CreateDocument(), wm.SetNodeAttributeDictGlobal(0, 1, 2))) == [
        {"k": "doc", "t": 0, "tab": TAB}
    ]


def test_a_new_document_forgets_the_old_nodes() -> None:
    build = ReplayBuilder(T0)
    first = build.items(timed(wm.CreateDocument(), wm.CreateElementNode(1, 0, 0, "BODY", False)))
    assert len(first) == 2
    second = build.items(timed(wm.CreateDocument(), wm.SetNodeData(1, "x")))
    assert [i["k"] for i in second] == ["doc"]


def test_the_node_cap(monkeypatch) -> None:
    monkeypatch.setattr(builder_module, "MAX_NODES", 10)
    build = ReplayBuilder(T0)
    messages = [wm.CreateDocument()] + [wm.CreateTextNode(n, 0, 0) for n in range(1, 30)]
    items = build.items(timed(*messages))
    assert sum(1 for i in items if i["k"] == "text") == 9  # node 0 (<html>) counts too


def test_times_carry_between_batches_and_never_go_back_within_a_tab() -> None:
    script = SessionScript(7, start_ms=T0)
    small_page(script)
    first = script.batch()
    script.now = T0 - 5_000  # a batch stamped earlier than the one before it
    script.add(wm.MouseMove(1, 2))
    late = script.batch()
    out = list(MessageWalk().messages(committed([first, late])))
    assert [m.time for m in out] == sorted(m.time for m in out)
    assert all(m.tab == TAB for m in out)


def test_the_header() -> None:
    script = SessionScript(7, start_ms=T0)
    small_page(script)
    script.add(wm.MouseClick(12, 3, "row 1", "li", 10, 10))
    first = script.batch()
    script.wait(60_000)
    script.add(wm.MouseMove(5, 5))
    script.add(wm.TabChange("other"))
    script.add(wm.SetPageVisibility(True))
    script.add(wm.SetViewportSize(1024, 700))  # unchanged: no new entry
    script.add(wm.SetViewportSize(640, 480))
    stream = ReplayStream(T0)
    stream.survey(committed([first, script.batch()]))
    header = json.loads(stream.header_line())["header"]
    assert header["duration"] == 60_000
    assert header["markers"][1:] == [{"time": 0, "type": "click", "label": "row 1", "tabId": TAB}]
    assert header["markers"][0]["type"] == "location"
    assert header["inactivity"] == [{"start": 0, "end": 60_000}]
    assert header["viewports"] == [
        {"time": 0, "tabId": TAB, "width": 1024, "height": 700},
        {"time": 60_000, "tabId": TAB, "width": 640, "height": 480},
    ]
    assert header["tabChanges"] == [{"time": 60_000, "tabId": "other"}]
    assert header["visibility"] == [{"time": 60_000, "tabId": TAB, "hidden": True}]


def test_the_hostile_page() -> None:
    items = items_of(lambda s: hostile_page(s, "http://replayd.test/api/v1/projects"),
                     own_origin="http://replayd.test")  # fmt: skip
    text = json.dumps(items).lower()
    assert "javascript:" not in text and "expression(" not in text and "srcdoc" not in text
    assert "replayd.test/api" not in text
    assert not {i["tag"].lower() for i in items if i["k"] == "el"} & DROPPED_TAGS
    assert [i["id"] for i in items if i["k"] == "data" and CANARY_TEXT in i["v"]] == [12]


_TAGS = st.sampled_from(["div", "SCRIPT", "script", "svg", "iframe", "Meta", "a", "object", "p"])
_NAMES = st.sampled_from(
    ["onclick", "ONLOAD", "href", "src", "srcdoc", "style", "id", "formaction"]
)
_VALUES = st.sampled_from(["javascript:x", "x.png", "url(javascript:y)", "expression(1)", "ok"])
_IDS = st.integers(0, 12)
_MESSAGES = st.one_of(
    st.builds(wm.CreateElementNode, _IDS, _IDS, st.integers(0, 3), _TAGS, st.booleans()),
    st.builds(wm.CreateTextNode, _IDS, _IDS, st.integers(0, 3)),
    st.builds(wm.SetNodeAttribute, _IDS, _NAMES, _VALUES),
    st.builds(wm.SetNodeAttributeURLBased, _IDS, _NAMES, _VALUES, st.just("https://a.test/")),
    st.builds(wm.SetCSSData, _IDS, _VALUES),
    st.builds(wm.MoveNode, _IDS, _IDS, st.integers(0, 3)),
    st.builds(wm.RemoveNode, _IDS),
    st.just(wm.CreateDocument()),
)


@settings(max_examples=200)
@given(st.lists(_MESSAGES, max_size=40))
def test_whatever_the_messages_no_item_is_hostile(messages: list[wm.WebMessage]) -> None:
    items = ReplayBuilder(T0).items(timed(*messages))
    for item in items:
        if item["k"] == "el":
            assert item["tag"].lower() not in DROPPED_TAGS
        if item["k"] == "attr":
            assert not item["n"].lower().startswith("on")
            assert item["n"].lower() not in ("srcdoc", "formaction")
            if item["n"].lower() in URL_ATTRIBUTES:  # a URL: never a script scheme
                assert "javascript:" not in item["v"].lower()
            if item["n"].lower() == "style":
                assert not HOSTILE_CSS.search(item["v"])
        if item["k"] == "data":
            assert "expression(" not in item["v"]  # CSS data is cleaned
    # Nothing refers to a node that was not sent (since the last document).
    sent: set[int] = {0}
    for item in items:
        if item["k"] == "doc":
            sent = {0}
        elif item["k"] in ("el", "text"):
            assert item["p"] in sent
            sent.add(item["id"])
        elif item["k"] in ("attr", "data", "move", "rm"):
            assert item["id"] in sent


def _long_session_peak(batches: int) -> int:
    """Peak traced memory while streaming a session of ``batches`` batches page by page."""
    script = SessionScript(7, start_ms=T0)
    small_page(script)
    pages = [committed([script.batch()])]
    stream = ReplayStream(T0)
    tracemalloc.start()
    try:
        records = pages[0]
        stream.survey(records)
        stream.lines(records)
        for n in range(batches):
            script.wait(100)
            for m in range(200):
                script.add(wm.SetNodeData(4, f"tick {n}.{m} " + "x" * 40))
            page = committed([script.batch()], first=n + 2)
            stream.survey(page)
            assert stream.lines(page)  # built, then dropped as the route sends it
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_session() -> None:
    # Four times the session, about the same peak: nothing but per-page state is kept.
    short = _long_session_peak(25)
    long = _long_session_peak(100)
    assert long < short * 1.5, (short, long)


OWN = "http://replayd.test"
_URL_MESSAGES = st.lists(
    st.one_of(
        _MESSAGES,
        st.builds(
            wm.SetNodeAttributeURLBased,
            _IDS,
            st.sampled_from(["href", "src", "style", "srcset"]),
            st.sampled_from(["a.css", "../b.png 2x, c.png", "background:url(a.css)", "x.png"]),
            st.just("https://a.test/p/"),
        ),
        st.builds(
            wm.SetCSSDataURLBased,
            _IDS,
            st.just("p{background:url(x.png)}"),
            st.just("https://a.test/p/"),
        ),
    ),
    max_size=40,
)


def _stream_items(messages: list[wm.WebMessage], **kwargs) -> list[dict]:
    script = SessionScript(7, start_ms=T0)
    for msg in messages:
        script.add(msg)
    stream = ReplayStream(T0, own_origin=OWN, **kwargs)
    return [json.loads(line) for line in stream.lines(committed([script.batch()])).splitlines()]


@settings(max_examples=150)
@given(_URL_MESSAGES, st.sets(st.sampled_from(["https://a.test/p/a.css", "https://a.test/p/x.png",
                                               "https://a.test/b.png"])))  # fmt: skip
def test_cached_assets_change_only_their_urls(
    messages: list[wm.WebMessage], cached: set[str]
) -> None:
    """Through the cache lookup, the items are those without it, each cached URL replaced by
    our origin's ``/assets/<hash>``; the lookup is asked once per page."""
    asks: list[list[str]] = []

    def asset_paths(urls: list[str]) -> dict[str, str]:
        asks.append(list(urls))
        return {url: f"/assets/{n:064x}" for n, url in enumerate(sorted(cached)) if url in urls}

    plain = _stream_items(messages)
    through_cache = _stream_items(messages, asset_paths=asset_paths)
    expected = json.dumps(plain)
    for n, url in enumerate(sorted(cached)):
        expected = expected.replace(url, f"{OWN}/assets/{n:064x}")
    assert json.dumps(through_cache) == expected
    assert len(asks) <= 1


def test_a_cache_lookup_needs_our_origin() -> None:
    with pytest.raises(ValueError, match="own_origin"):
        ReplayStream(T0, asset_paths=lambda urls: {})
