"""Unit tests of the sans-IO issue detectors (engine.heuristics)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.heuristics import (
    ClickRageDetector,
    DeadClickDetector,
    Detection,
    is_bad_request,
    tracker_detects_click_issues,
)


def feed_clicks(det: ClickRageDetector, clicks: list[tuple[str, int]]) -> list[Detection]:
    found = []
    for i, (label, ts) in enumerate(clicks):
        d = det.on_click(label, f"#{label}", ts, 100 + i, "http://x/")
        if d is not None:
            found.append(d)
    d = det.flush()
    if d is not None:
        found.append(d)
    return found


def test_click_rage_three_fast_clicks_make_one_issue_at_the_first_click() -> None:
    found = feed_clicks(ClickRageDetector(), [("Buy", 1000), ("Buy", 1100), ("Buy", 1399)])
    assert found == [
        Detection(
            issue_type="click_rage",
            timestamp=1000,
            message_id=100,
            page_url="http://x/",
            context_string="Buy",
            context="#Buy",
            payload='{"Count":3}',
        )
    ]


def test_click_rage_needs_three_clicks_each_under_300_ms_apart() -> None:
    assert feed_clicks(ClickRageDetector(), [("Buy", 1000), ("Buy", 1100)]) == []
    # The third click is exactly 300 ms after the second: not part of the burst.
    assert feed_clicks(ClickRageDetector(), [("Buy", 1000), ("Buy", 1100), ("Buy", 1400)]) == []


def test_click_rage_burst_is_closed_by_another_label_and_counts_all_its_clicks() -> None:
    det = ClickRageDetector()
    assert det.on_click("A", "", 0, 1, "") is None
    for i in range(1, 5):
        assert det.on_click("A", "", i * 50, 1 + i, "") is None
    closed = det.on_click("B", "", 260, 9, "")
    assert closed is not None and closed.payload == '{"Count":5}' and closed.message_id == 1
    assert det.pending  # "B" is the start of a new (possible) burst
    assert det.flush() is None


def test_click_rage_on_time_closes_only_after_the_gap() -> None:
    det = ClickRageDetector()
    for ts in (0, 100, 200):
        det.on_click("A", "", ts, ts, "")
    assert det.on_time(499) is None  # another click at 499 could still continue it
    found = det.on_time(500)
    assert found is not None and found.payload == '{"Count":3}'
    assert not det.pending and det.flush() is None


def test_click_rage_ignores_empty_labels() -> None:
    assert feed_clicks(ClickRageDetector(), [("", 0), ("", 10), ("", 20), ("", 30)]) == []


def reference_bursts(clicks: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(label, first index, count) of every rage burst, by the definition in API.md 2.4."""
    bursts: list[tuple[str, int, int]] = []
    i = 0
    while i < len(clicks):
        j = i + 1
        while (
            j < len(clicks)
            and clicks[j][0] == clicks[i][0]
            and clicks[j][1] - clicks[j - 1][1] < 300
        ):
            j += 1
        if clicks[i][0] and j - i >= 3:
            bursts.append((clicks[i][0], i, j - i))
        i = j
    return bursts


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["", "A", "B"]), st.integers(min_value=0, max_value=450)),
        max_size=30,
    )
)
def test_click_rage_matches_the_definition(steps: list[tuple[str, int]]) -> None:
    clicks = []
    ts = 0
    for label, gap in steps:
        ts += gap
        clicks.append((label, ts))
    found = feed_clicks(ClickRageDetector(), clicks)
    assert [
        (d.context_string, d.message_id - 100, int(d.payload[9:-1])) for d in found
    ] == reference_bursts(clicks)


def test_dead_click_when_the_first_reaction_is_too_late() -> None:
    det = DeadClickDetector()
    assert det.on_click("Save", "#save", 1000, 42, "http://x/") is None
    found = det.on_reaction(1000 + 1234)
    assert found == Detection(
        issue_type="dead_click",
        timestamp=1000,
        message_id=42,
        page_url="http://x/",
        context_string="Save",
        context="#save",
    )
    assert det.on_reaction(5000) is None  # settled once


def test_no_dead_click_when_something_reacts_in_time() -> None:
    det = DeadClickDetector()
    det.on_click("Save", "", 1000, 1, "")
    assert det.on_reaction(2233) is None
    assert not det.pending
    assert det.on_time(10_000) is None and det.flush(10_000) is None


def test_dead_click_settled_by_the_next_click_or_by_time() -> None:
    det = DeadClickDetector()
    det.on_click("A", "", 0, 1, "")
    found = det.on_click("B", "", 2000, 2, "")  # nothing reacted to A for 2 s
    assert found is not None and found.context_string == "A"
    assert det.on_time(1233 + 2000) is None
    found = det.on_time(1234 + 2000)
    assert found is not None and found.context_string == "B" and not det.pending


def test_dead_click_quick_second_click_forgets_the_first() -> None:
    det = DeadClickDetector()
    det.on_click("A", "", 0, 1, "")
    assert det.on_click("A", "", 100, 2, "") is None
    assert det.on_reaction(150) is None


def test_dead_click_at_session_end_needs_enough_time() -> None:
    det = DeadClickDetector()
    det.on_click("A", "", 0, 1, "")
    assert det.flush(1000) is None  # the session stopped right after the click: no evidence
    det.on_click("A", "", 0, 1, "")
    assert det.flush(1234) is not None


def test_unlabelled_clicks_are_never_dead() -> None:
    det = DeadClickDetector()
    assert det.on_click("", "", 0, 1, "") is None
    assert not det.pending and det.flush(99_999) is None


def test_tracker_version_policy() -> None:
    assert tracker_detects_click_issues("19.0.1")
    assert tracker_detects_click_issues("20.0.0-beta.1")
    assert not tracker_detects_click_issues("18.2.0")
    assert not tracker_detects_click_issues("3.5.1")
    assert not tracker_detects_click_issues("")
    assert not tracker_detects_click_issues("latest")


def test_bad_request_threshold() -> None:
    assert not is_bad_request(200)
    assert not is_bad_request(399)
    assert is_bad_request(400)
    assert is_bad_request(503)
