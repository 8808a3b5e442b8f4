"""Search benchmark: p50/p99 of five typical session searches over stored sessions (issue 15).

Data: the query benchmark's stored sessions (:func:`benchlib.queries.prepare_stored`, start
records and batches appended to the log and projected by ``replayd rebuild``): they vary in
country (5), browser (3) and user id (50,000 users), and a subset has a page, clicks, inputs, a
later checkout page and, one in ten of them, a ``TypeError``. If the rebuild cannot project the
wanted count within the budget the section measures what fit and says so.

Searches (``POST /api/v1/{key}/sessions/search``, one keep-alive client, one at a time, limit 50):
selective ones (target p99 < 50 ms) -- a user id, country + browser + an error, a click label
then the checkout page -- and unselective ones, reported as measured: every session of a week
sorted by start, a duration range. The same client's empty GET on the ceiling server is the
floor measured in the same run.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from benchlib import common, queries
from benchlib.common import log
from benchlib.queries import Latency

DAY_MS = 86_400_000
# Click labels the stored sessions' batches use (benchlib.batches.session_events_batch).
CLICK_LABELS = ("add to cart", "free shipping", "new arrivals", "size guide", "running shoe")
SELECTIVE_P99_MS = 50.0


@attrs.frozen
class SearchSettings:
    stored_sessions: int = 1_000_000
    sessions_with_events: int = 2_000
    requests: int = 200  # per search
    rebuild_budget_s: float = 100.0


@attrs.frozen
class SearchCase:
    name: str
    selective: bool
    latency: Latency
    median_total: int  # sessions matching, median over the requests


@attrs.frozen
class SearchResult:
    stored_wanted: int
    stored: int
    rebuild_s: float
    cases: list[SearchCase]
    floor: Latency
    note: str = ""


# (rng, now, sessions stored) -> the search's filters, sort and window.
Body = Callable[[random.Random, int, int], dict[str, Any]]


def _user(rng: random.Random, _now: int, stored: int) -> dict[str, Any]:
    # Session i has user i % 50,000: a user that has sessions (20 of them at 1M).
    user = f"user-{rng.randrange(min(stored, 50_000))}"
    return {"filters": [{"type": "userId", "value": [user]}]}


def _country_browser_error(rng: random.Random, _now: int, _stored: int) -> dict[str, Any]:
    # The generator's sessions with a TypeError are all in DE (session i: country i % 5).
    return {
        "filters": [
            {"type": "userCountry", "value": ["DE"]},
            {"type": "userBrowser", "value": [rng.choice(("Chrome", "Firefox", "Safari"))]},
            {"type": "error", "value": ["TypeError"], "operator": "is"},
        ]
    }


def _click_then_page(rng: random.Random, _now: int, _stored: int) -> dict[str, Any]:
    return {
        "eventsOrder": "then",
        "filters": [
            {"type": "click", "value": [rng.choice(CLICK_LABELS)], "operator": "is"},
            {"type": "location", "value": ["/checkout"], "operator": "is"},
        ],
    }


def _week(rng: random.Random, now: int, _stored: int) -> dict[str, Any]:
    start = now - rng.randint(8, 29) * DAY_MS
    return {
        "startTimestamp": start,
        "endTimestamp": start + 7 * DAY_MS,
        "sort": "startTs",
        "order": "desc",
    }


def _duration(rng: random.Random, _now: int, _stored: int) -> dict[str, Any]:
    # Unselective in cost (no index on the duration: the window is read), few matches (only
    # the sessions with events last that long).
    return {"filters": [{"type": "duration", "value": [rng.choice((10_000, 30_000)), None]}]}


SEARCHES: tuple[tuple[str, bool, Body], ...] = (
    ("userId is", True, _user),
    ("userCountry + userBrowser + error is", True, _country_browser_error),
    ("click label then location (`then`)", True, _click_then_page),
    ("every session of a week, by startTs", False, _week),
    ("duration range", False, _duration),
)


def _requests(
    project_key: str, body: Body, n: int, rng: random.Random, now: int, stored: int
) -> list:
    path = f"/api/v1/{project_key}/sessions/search"
    # The stored sessions lie in the last 30 days: that is the window unless the search says.
    window = {"startTimestamp": now - 31 * DAY_MS, "endTimestamp": now, "limit": 50}
    return [
        ("POST", path, json.dumps({**window, **body(rng, now, stored)}).encode()) for _ in range(n)
    ]


def run(s: SearchSettings) -> SearchResult:
    """Build the stored sessions, start replayd on them, measure each search."""
    rng = random.Random(15)
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "search.db"
        keys = common.create_keys(db)
        stored, rebuild_s, _with_events, note = queries.prepare_stored(
            db,
            keys.project_id,
            queries.QuerySettings(
                stored_sessions=s.stored_sessions,
                sessions_with_events=s.sessions_with_events,
                rebuild_budget_s=s.rebuild_budget_s,
            ),
        )
        log(f"search: {stored:,} sessions projected in {rebuild_s:.1f} s; starting replayd")
        cases = []
        with common.replayd_server(db) as (_child, port):
            client = queries.QueryClient(port, [("Authorization", keys.api_key)])
            try:
                now = int(time.time() * 1000)
                for name, selective, body in SEARCHES:
                    totals: list[int] = []

                    def empty(payload: bytes, totals: list[int] = totals) -> bool:
                        data = json.loads(payload)["data"]
                        totals.append(int(data["total"]))
                        return not data["sessions"]

                    reqs = _requests(keys.project_key, body, s.requests + 10, rng, now, stored)
                    latency = queries.measure(client, reqs, warmup=10, is_empty=empty)
                    median = sorted(totals)[len(totals) // 2] if totals else 0
                    cases.append(SearchCase(name, selective, latency, median))
                    log(f"search: {name}: p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms")
            finally:
                client.close()
    floor = queries.floor_latency(s.requests)
    return SearchResult(s.stored_sessions, stored, rebuild_s, cases, floor, note)
