"""The in-memory live sessions: kept current from events, and the Assist search over them."""

from __future__ import annotations

import attrs
import hypothesis.strategies as st
from hypothesis import given, settings

from engine import events as ev
from engine.start_info import StartInfo
from projections.live_sessions import LiveFilter, LiveSession, LiveSessions
from projections.sessions import SessionRow

from .factories import SessionScript, positioned


def started(live: LiveSessions, *scripts: SessionScript, **fields: object) -> None:
    live.apply(positioned([[s.started(**fields)] for s in scripts]))


def ids(result_sessions: list[LiveSession]) -> list[int]:
    return [s.session_id for s in result_sessions]


def test_lifecycle_updates_and_removal() -> None:
    live = LiveSessions(project_key_of=lambda pid: f"key-of-{pid}")
    s = SessionScript(session_id=11, project_id=3)
    live.apply(
        positioned(
            [
                [s.started(user_os="Windows", user_browser="Edge", user_id=None, rev_id="r1")],
                [s.title("Home"), s.user_id("u-1"), s.metadata("plan", "pro"), s.visibility(False)],
                [s.anonymous_id("a-1"), s.click()],
            ]
        )
    )
    got = live.get(3, 11)
    assert got is not None
    fields = got.assist_fields()
    assert fields == {
        "pageTitle": "Home",
        "active": False,
        "live": True,
        "sessionID": "11",
        "metadata": {"plan": "pro"},
        "userID": "u-1",
        "userAnonymousId": "a-1",
        "userUUID": "",
        "projectKey": "key-of-3",
        "revID": "r1",
        "timestamp": s.start,
        "trackerVersion": "",
        "isSnippet": False,
        "userOs": "Windows",
        "userBrowser": "Edge",
        "userBrowserVersion": "",
        "userDevice": "",
        "userDeviceType": "",
        "userCountry": "UN",  # issue 14 point 8: unknown is "UN", as in user sessions
        "userState": "",
        "userCity": "",
        "projectId": 3,
    }
    assert live.count(3) == 1 and len(live) == 1
    live.apply(positioned([[s.ended()]], first=4))
    assert live.get(3, 11) is None and live.count(3) == 0 and len(live) == 0
    # A late batch of an ended session does not bring it back.
    live.apply(positioned([[s.title("Again"), s.user_id("u-2")]], first=5))
    assert live.get(3, 11) is None


def test_load_from_session_rows() -> None:
    def row(session_id: int, duration: int | None) -> SessionRow:
        return SessionRow(
            session_id=session_id, project_id=1, start_ts=1000 + session_id, duration=duration,
            end_ts=None, user_id="u", user_anonymous_id=None, user_uuid="uuid", user_agent="",
            user_os="Linux", user_os_version="", user_browser="Chrome", user_browser_version="120",
            user_device="", user_device_type="desktop", user_country="DE", user_city="Berlin",
            user_state="BE", platform="web", timezone="", rev_id="", tracker_version="19.0.1",
            is_snippet=False, referrer="", screen_width=0, screen_height=0, device_memory=0,
            js_heap_size_limit=0, page_title="Cart", pages_count=0, events_count=0,
            errors_count=0, issue_types=(), issue_score=0, metadata={"plan": "pro"},
            first_position=1, last_position=1,
        )  # fmt: skip

    live = LiveSessions()
    started(live, SessionScript(session_id=99))
    live.load([row(1, None), row(2, 500), row(3, None)], checkpoint=42)
    assert live.checkpoint == 42
    assert ids(live.search(1).sessions) == [3, 1]  # the old content is gone, ended rows skipped
    one = live.get(1, 1)
    assert one is not None
    assert (one.page_title, one.start.user_city, one.metadata, one.start.tracker_version) == (
        "Cart",
        "Berlin",
        {"plan": "pro"},
        "19.0.1",
    )


def _populate() -> tuple[LiveSessions, dict[str, int]]:
    live = LiveSessions()
    people = {
        "alice": SessionScript(session_id=1, start=1_000),
        "bob": SessionScript(session_id=2, start=3_000),
        "carol": SessionScript(session_id=3, start=2_000),
        "dave": SessionScript(session_id=4, start=4_000),
    }
    browsers = {"alice": "Chrome", "bob": "Firefox", "carol": "Chrome Mobile", "dave": "Safari"}
    groups: list[list[ev.DomainEvent]] = []
    for name, script in people.items():
        groups.append(
            [
                script.started(
                    user_id=name.capitalize() if name != "dave" else None,
                    user_browser=browsers[name],
                    user_device_type="mobile" if name == "carol" else "desktop",
                    user_country="FR" if name in ("alice", "bob") else "US",
                )
            ]
        )
    groups.append(
        [people["alice"].metadata("Plan", "Gold"), people["bob"].metadata("plan", "silver")]
    )
    groups.append([people["carol"].title("Checkout page"), people["bob"].visibility(False)])
    live.apply(positioned(groups))
    return live, {name: s.session_id for name, s in people.items()}


def test_search_default_is_newest_first_with_pagination() -> None:
    live, _ = _populate()
    result = live.search(1)
    assert result.total == 4 and ids(result.sessions) == [4, 2, 3, 1]
    assert ids(live.search(1, order="asc").sessions) == [1, 3, 2, 4]
    assert ids(live.search(1, page=2, limit=3).sessions) == [1]
    assert ids(live.search(1, page=2, limit=3, order="ASC").sessions) == [4]
    assert live.search(1, page=3, limit=3).sessions == []
    assert live.search(2).total == 0


def test_filter_names_and_values_are_case_insensitive() -> None:
    live, p = _populate()
    assert ids(live.search(1, [LiveFilter(type="USERBROWSER", values=("chrome",))]).sessions) == [
        3,
        1,
    ]
    assert ids(
        live.search(1, [LiveFilter(type="userBrowser", values=("CHROME",), operator="is")]).sessions
    ) == [1]
    assert ids(
        live.search(1, [LiveFilter(type="userId", values=("ALICE", "bob"), operator="is")]).sessions
    ) == [2, 1]
    # Filters AND-ed.
    both = [
        LiveFilter(type="userCountry", values=("fr",)),
        LiveFilter(type="userBrowser", values=("fire",)),
    ]
    assert ids(live.search(1, both).sessions) == [p["bob"]]


def test_metadata_platform_and_has_attribute() -> None:
    live, p = _populate()
    meta = LiveFilter(type="metadata", source="PLAN", values=("gold",), operator="is")
    assert ids(live.search(1, [meta]).sessions) == [p["alice"]]
    # An unknown filter name is a metadata key (the node matcher walks into metadata).
    assert ids(live.search(1, [LiveFilter(type="plan", values=("s",))]).sessions) == [2]
    assert ids(live.search(1, [LiveFilter(type="plan")]).sessions) == [2, 1]
    # Empty value list = has the attribute: dave has no user id.
    assert ids(live.search(1, [LiveFilter(type="userId")]).sessions) == [2, 3, 1]
    assert ids(live.search(1, [LiveFilter(type="platform", values=("mobile",))]).sessions) == [
        p["carol"]
    ]
    assert ids(live.search(1, [LiveFilter(type="pageTitle", values=("checkout",))]).sessions) == [3]
    assert ids(
        live.search(1, [LiveFilter(type="active", values=("false",), operator="is")]).sessions
    ) == [2]
    assert ids(
        live.search(1, [LiveFilter(type="sessionId", values=("4",), operator="is")]).sessions
    ) == [4]
    assert live.search(1, [LiveFilter(type="nothing", values=("x",))]).total == 0


def test_sort_by_another_attribute() -> None:
    live, _ = _populate()
    assert ids(live.search(1, sort="userBrowser", order="ASC").sessions) == [1, 3, 2, 4]
    assert ids(live.search(1, sort="userBrowser").sessions) == [4, 2, 3, 1]
    # Sessions without the attribute come last in ascending order; ties keep time order.
    assert ids(live.search(1, sort="userId", order="ASC").sessions) == [1, 2, 3, 4]
    assert ids(live.search(1, sort="startTs", order="ASC").sessions) == [1, 3, 2, 4]


@settings(max_examples=60, deadline=None)
@given(
    starts=st.lists(st.integers(0, 50), min_size=0, max_size=30),
    ended=st.sets(st.integers(0, 29)),
    page=st.integers(1, 4),
    limit=st.integers(0, 8),
    ascending=st.booleans(),
    restamp=st.sets(st.integers(0, 29)),
)
def test_fast_path_matches_a_full_scan(
    starts: list[int], ended: set[int], page: int, limit: int, ascending: bool, restamp: set[int]
) -> None:
    """The unfiltered listing (sorted-list slice) equals a naive sort of the same sessions."""
    live = LiveSessions()
    scripts = [SessionScript(session_id=100 + i, start=t) for i, t in enumerate(starts)]
    live.apply(positioned([[s.started()] for s in scripts]))
    # A second start with an earlier time (continued session) moves the session in the order.
    live.apply(
        positioned(
            [[attrs_evolve_start(scripts[i])] for i in restamp if i < len(scripts)], first=500
        )
    )
    live.apply(positioned([[scripts[i].ended()] for i in ended if i < len(scripts)], first=1000))
    alive = [s for i, s in enumerate(scripts) if i not in ended]
    start_of = {
        s.session_id: (s.start - 1 if i in restamp else s.start) for i, s in enumerate(scripts)
    }
    expected = sorted((start_of[s.session_id], s.session_id) for s in alive)
    if not ascending:
        expected.reverse()
    window = expected[(page - 1) * limit : page * limit]
    order = "ASC" if ascending else "DESC"
    fast = live.search(1, order=order, page=page, limit=limit)
    # A filter every session passes forces the scanning path: same answer.
    slow = live.search(1, [LiveFilter(type="projectId")], order=order, page=page, limit=limit)
    assert fast.total == slow.total == len(alive)
    assert ids(fast.sessions) == ids(slow.sessions) == [sid for _, sid in window]


def attrs_evolve_start(script: SessionScript) -> ev.SessionStarted:
    start = script.started(platform="web")
    return ev.SessionStarted(
        position=0, session_id=start.session_id, project_id=start.project_id,
        timestamp=start.timestamp - 1, start=StartInfo(platform="web"),
    )  # fmt: skip


# -- the indexed search against a naive full scan ------------------------------------------------

_BROWSERS = ("Chrome", "Firefox", "Safari", "")
_WORDS = ("pro", "Gold", "free", "enterprise", "")


def _scan_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _naive_search(
    sessions: list[LiveSession], filters: list[LiveFilter], sort: str, descending: bool,
    page: int, limit: int,
) -> tuple[int, list[int], dict[str, dict[str, int]]]:  # fmt: skip
    """API.md 4.3 by brute force: each session's fields lower-cased, every filter tested; the
    counter tests every value of every filter against every matching session."""
    aliases = {"platform": "userdevicetype", "startts": "timestamp"}

    def texts(s: LiveSession) -> tuple[dict[str, str], dict[str, str]]:
        meta = {k.lower(): v.lower() for k, v in s.metadata.items()}
        top = {k.lower(): _scan_text(v) for k, v in s.assist_fields().items() if k != "metadata"}
        index = {k: v for k, v in top.items() if v is not None}
        return {**meta, **index}, meta

    def passes(s: LiveSession, f: LiveFilter) -> bool:
        index, meta = texts(s)
        name = f.type.lower()
        source = meta if name == "metadata" and f.source else index
        key = f.source.lower() if name == "metadata" and f.source else aliases.get(name, name)
        text = source.get(key)
        wanted = [v.lower() for v in f.values if v]
        if not wanted:
            return bool(text)
        if text is None:
            return False
        if f.operator.lower() == "is":
            return text in wanted
        return any(w in text for w in wanted)

    hits = [s for s in sessions if all(passes(s, f) for f in filters)]
    hits.sort(key=lambda s: (s.timestamp, s.session_id), reverse=descending)
    key = aliases.get(sort.lower(), sort.lower())
    if key != "timestamp":

        def by(s: LiveSession) -> tuple[int, float, str]:
            value = texts(s)[0].get(key)
            if value is None:
                return (2, 0.0, "")
            try:
                return (0, float(value), "")
            except ValueError:
                return (1, 0.0, value)

        hits.sort(key=by, reverse=descending)
    first = (page - 1) * limit
    counter: dict[str, dict[str, int]] = {}
    for f in filters:
        in_meta = f.type.lower() == "metadata" and bool(f.source)
        counts = counter.setdefault(f.source if in_meta and f.source else f.type, {})
        for value in (v for v in f.values if v):
            alone = attrs.evolve(f, values=(value,))
            counts[value] = sum(1 for s in hits if passes(s, alone))
    return len(hits), [s.session_id for s in hits[first : first + limit]], counter


# Per attribute, values that are whole texts and strict substrings of others ("fire" of
# "firefox", "u-2" of "u-22", "item 1" of "item 12"), so "is" and "contains" answer differently.
_RELEVANT = {
    "userBrowser": ("CHROME", "fire", "Firefox", "safari", "e"),
    "USERID": ("u-2", "U-22", "u-1", "u"),
    "pageTitle": ("Item 1", "item 12", "cart", "1"),
    "plan": ("pro", "Gold", "free", "enterprise", "e", "none"),
    "metadata": ("pro", "Gold", "free", "enterprise", "e", "none"),
    "active": ("true", "tru", "false"),
}


def _filter_of(
    type_: str, pool: tuple[str, ...], sources: tuple[str | None, ...]
) -> st.SearchStrategy[LiveFilter]:
    return st.builds(
        LiveFilter,
        type=st.just(type_),
        values=st.lists(st.sampled_from((*pool, "")), max_size=3).map(tuple),
        operator=st.sampled_from(("is", "contains", "IS")),
        source=st.sampled_from(sources),
    )


_filters = st.one_of(
    *[
        _filter_of(t, pool, ("plan", "PLAN") if t == "metadata" else (None,))
        for t, pool in _RELEVANT.items()
    ],
    # Odd ones: unknown names, metadata without a source, a source on a non-metadata filter.
    _filter_of("metadata", ("pro",), (None, "userBrowser")),
    _filter_of("nothing", ("x",), (None,)),
    _filter_of("platform", ("desktop", ""), (None,)),
)


@settings(max_examples=200, deadline=None)
@given(
    people=st.lists(
        st.tuples(
            st.integers(0, 20),  # start (ties: then by session id)
            st.sampled_from(_BROWSERS),
            st.sampled_from((None, "u-1", "u-2", "U-22")),
            st.sampled_from(_WORDS),  # metadata plan ("" = none)
            st.sampled_from(("", "Item 1", "item 12", "Cart")),  # page title ("" = never set)
            st.integers(0, 3).map(lambda n: n == 0),  # ended
        ),
        min_size=6,
        max_size=40,
    ),
    changes=st.lists(st.tuples(st.integers(0, 39), st.sampled_from(_WORDS)), max_size=10),
    filters=st.lists(_filters, max_size=2),
    sort=st.sampled_from(("timestamp", "startTs", "userBrowser", "userId")),
    descending=st.booleans(),
    page=st.integers(1, 4),
    limit=st.integers(0, 6),
)
def test_indexed_search_matches_a_naive_scan(
    people: list[tuple[int, str, str | None, str, str, bool]],
    changes: list[tuple[int, str]],
    filters: list[LiveFilter],
    sort: str,
    descending: bool,
    page: int,
    limit: int,
) -> None:
    """Every path of the search (inverted indexes for "is", distinct-text scans for "contains",
    sorting the matches or walking the time order) answers as a full scan does, after updates
    that move sessions between index entries and removals."""
    live = LiveSessions(project_key_of=lambda pid: "key")
    scripts = [SessionScript(session_id=200 + i, start=p[0]) for i, p in enumerate(people)]
    batches = []
    for script, (_, browser, user, plan, title, _) in zip(scripts, people, strict=True):
        batch: list[ev.DomainEvent] = [script.started(user_browser=browser, user_os="Linux")]
        if user is not None:
            batch.append(script.user_id(user))
        if plan:
            batch.append(script.metadata("plan", plan))
        if title:
            batch.append(script.title(title))
        batches.append(batch)
    live.apply(positioned(batches))
    # Updates re-index: a plan changes, or is set for the first time.
    live.apply(
        positioned(
            [[scripts[i].metadata("plan", w or "none")] for i, w in changes if i < len(scripts)],
            first=500,
        )
    )
    live.apply(
        positioned([[s.ended()] for s, p in zip(scripts, people, strict=True) if p[5]], first=900)
    )
    alive = [live.get(1, s.session_id) for s in scripts]
    sessions = [s for s in alive if s is not None]
    order = "DESC" if descending else "ASC"
    got = live.search(1, filters, sort=sort, order=order, page=page, limit=limit)
    assert (got.total, ids(got.sessions), got.counter) == _naive_search(
        sessions, filters, sort, descending, page, limit
    )


def test_contains_finds_every_distinct_text_and_both_page_strategies_agree() -> None:
    live = LiveSessions()
    browsers = ["Chrome", "Firefox", "Safari", "Edge", "chromium\0x"] * 20
    scripts = [SessionScript(session_id=300 + i, start=1000 - i) for i in range(len(browsers))]
    live.apply(
        positioned([[s.started(user_browser=b)] for s, b in zip(scripts, browsers, strict=True)])
    )
    by_browser: dict[str, list[int]] = {}
    for s, b in zip(scripts, browsers, strict=True):
        by_browser.setdefault(b, []).append(s.session_id)
    # "e" is in three distinct texts; "\0x" holds the haystack's separator (plain loop path).
    e = live.search(1, [LiveFilter(type="userBrowser", values=("E",))], limit=200)
    assert e.total == 60
    assert {s.start.user_browser for s in e.sessions} == {"Chrome", "Firefox", "Edge"}
    sep = live.search(1, [LiveFilter(type="userBrowser", values=("m\0X",))], order="ASC")
    assert ids(sep.sessions) == sorted(by_browser["chromium\0x"], key=lambda i: -i)
    # Few matches: sorted directly; many: the time order is walked. Same order either way.
    edge = [LiveFilter(type="userBrowser", values=("edge",), operator="is")]
    few = live.search(1, edge, page=2, limit=10)
    many = live.search(1, [LiveFilter(type="userBrowser", values=("r",))], limit=3)
    assert few.total == 20 and ids(few.sessions) == sorted(by_browser["Edge"])[10:20]
    newest = sorted(by_browser["Chrome"] + by_browser["Firefox"] + by_browser["Safari"]
                    + by_browser["chromium\0x"])[:3]  # fmt: skip
    assert many.total == 80 and ids(many.sessions) == newest
