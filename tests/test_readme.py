"""The README's promises to a newcomer stay true (issue 14, point 10): the settings it lists and
the timings of "What to expect" are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from api.config import SETTINGS, ServerConfig
from engine.supervisor import DEFAULT_INACTIVITY_TIMEOUT_MS
from runtime.engine_service import CLOCK_TICK_INTERVAL_S

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_every_setting_is_in_the_configuration_table() -> None:
    table = _section("Configuration")
    missing = [s.env for s in SETTINGS if f"| `{s.env}` | `{s.flag}" not in table]
    assert missing == []


def test_what_to_expect_gives_the_real_timings() -> None:
    expect = _section("What to expect")
    assert f"after {DEFAULT_INACTIVITY_TIMEOUT_MS // 1000} s without a batch" in expect
    assert f"checked every {CLOCK_TICK_INTERVAL_S:.0f} s" in expect
    assert ServerConfig().inactivity_timeout_ms == DEFAULT_INACTIVITY_TIMEOUT_MS
    assert "every 30 s" in expect  # PROTOCOL.md 4.2: the tracker's batch timer


def test_what_is_not_there_yet_is_short() -> None:
    missing = _section("What is not there yet")
    assert 0 < len(missing.split()) < 80
    assert "PostgreSQL" in missing
    # Search, the dashboard, v2 and the data lifecycle are all there now, as v3 is.
    for feature in ("v3", "dashboard", "search", "v2"):
        assert feature not in missing
