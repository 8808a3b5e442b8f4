"""Session starts and SQLite statements per request (issue 16 parts 2 and 6).

Starts: the same generator posts new-session starts back to back (32 trackers, one in flight
each, the real tracker's start body; the iOS SDK's for the mobile start) to the ceiling server's
fixed-answer start handler and to ``replayd serve`` on a fresh database, alternately; the best run
of each is kept, as for the uploads.

Statements: one more ``replayd serve --count-sql-statements`` (single process) is loaded with
starts, then with 1 KB uploads; ``/metrics`` is read before and after each window, and the
statements each kind of connection ran in it are divided by the requests the server answered on
that route in it (both counters of the server itself, no guess). The engine's connections (log
reader, projector) run in the same process and are reported apart: they follow the log, they are
not part of a request.
"""

from __future__ import annotations

import http.client
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import attrs
from benchlib import common, profile
from benchlib.common import LoadRun, log
from benchlib.loadgen import LoadSpec

# The load generator's mode -> (route, platform of the project it needs)
START_MODES = {"starts": ("/v1/web/start", "web"), "mobile-starts": ("/v1/mobile/start", "ios")}
# Connections that serve requests (the others follow the log: the engine's).
REQUEST_CONNECTIONS = ("log writer", "catalog", "session directory", "other")
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+-]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@attrs.frozen
class StartSettings:
    trackers: int = 32
    warmup_s: float = 1.0
    duration_s: float = 5.0
    repeat: int = 2
    modes: tuple[str, ...] = tuple(START_MODES)


@attrs.frozen
class StartCase:
    """One start route: the ceiling's best run and replayd's."""

    mode: str
    ceiling: LoadRun
    replayd: LoadRun

    @property
    def route(self) -> str:
        return START_MODES[self.mode][0]

    @property
    def ratio(self) -> float:
        return self.replayd.req_per_s / self.ceiling.req_per_s if self.ceiling.req_per_s else 0.0


@attrs.frozen
class StatementCounts:
    """Statements per answered request of one route, by connection (and in all)."""

    route: str
    requests: int
    per_connection: dict[str, float]  # connection -> statements per request
    by_keyword: dict[str, float]  # "connection KEYWORD" -> statements per request
    engine: dict[str, float]  # the engine's connections, per request of the window (apart)

    @property
    def total(self) -> float:
        return sum(self.per_connection.values())

    def besides_append(self) -> float:
        """Statements per request on connections other than the log writer's."""
        return sum(v for k, v in self.per_connection.items() if k != "log writer")


def _spec(port: int, key: str, mode: str, s: StartSettings, seed: int) -> LoadSpec:
    return LoadSpec(
        port=port,
        project_key=key,
        trackers=s.trackers,
        warmup_s=s.warmup_s,
        duration_s=s.duration_s,
        seed=seed,
        mode=mode,
    )


def _project(db: Path, platform: str) -> str:
    """A project of ``platform`` in ``db`` (created with the database if needed); its key."""
    out = common.replayd(
        "project", "create", f"bench-{platform}", "--platform", platform, "--db", str(db),
        "--create",
    )  # fmt: skip
    return out[-1].strip()


def run(s: StartSettings) -> list[StartCase]:
    """Every start route: ceiling then replayd, alternately, ``repeat`` times; best kept."""
    cases = []
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        for mode in s.modes:
            route, platform = START_MODES[mode]
            best_ceiling: LoadRun | None = None
            best: LoadRun | None = None
            for r in range(s.repeat):
                with common.ceiling_server() as (child, port):
                    ceiling = common.run_load(_spec(port, "ceiling", mode, s, 3), 1, child.pid)
                log(f"{route} ({r + 1}/{s.repeat}): ceiling {ceiling.req_per_s:.0f} req/s")
                db = Path(tmp) / f"{mode}-{r}.db"
                key = _project(db, platform)
                with common.replayd_server(db) as (child, port):
                    rd = _profiled_load(_spec(port, key, mode, s, 4), child.pid, f"{mode}-{r}")
                log(
                    f"{route} ({r + 1}/{s.repeat}): replayd {rd.req_per_s:.0f} req/s"
                    f" (errors {rd.errors or 'none'})"
                )
                if best_ceiling is None or ceiling.req_per_s > best_ceiling.req_per_s:
                    best_ceiling = ceiling
                if best is None or rd.req_per_s > best.req_per_s:
                    best = rd
            assert best is not None and best_ceiling is not None
            cases.append(StartCase(mode, best_ceiling, best))
    return cases


def _profiled_load(spec: LoadSpec, pid: int, name: str) -> LoadRun:
    """``run_load`` against replayd, sampled by py-spy in its window with ``--profile``."""
    sampled: list = []

    def on_window(*_: float) -> None:
        if profile.PROFILE_DIR is not None:
            out = profile.PROFILE_DIR / f"{name}.collapsed"
            sampled.append((profile.record(pid, spec.duration_s, out), out))

    run = common.run_load(spec, 1, pid, on_window=on_window)
    for recording in sampled:
        profile.finish(*recording)
    return run


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of ``GET /metrics``: (name, sorted labels) -> value."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        return parse_metrics(conn.getresponse().read().decode())
    finally:
        conn.close()


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The labelled samples of a Prometheus text page: (name, sorted labels) -> value."""
    samples = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found:
            labels = tuple(sorted(_LABEL.findall(found["labels"])))
            samples[(found["name"], labels)] = float(found["value"])
    return samples


def _statements_between(before: dict, after: dict, route: str) -> StatementCounts:
    def delta(key) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = sum(
        delta(key)
        for key in after
        if key[0] == "replayd_http_requests_total" and ("route", route) in key[1]
    )
    per_connection: dict[str, float] = defaultdict(float)
    by_keyword: dict[str, float] = {}
    engine: dict[str, float] = defaultdict(float)
    for key in after:
        if key[0] != "replayd_sqlite_statements_total":
            continue
        labels = dict(key[1])
        count = delta(key)
        if not count or not requests:
            continue
        connection = labels["connection"]
        if connection in REQUEST_CONNECTIONS:
            per_connection[connection] += count / requests
            by_keyword[f"{connection} {labels['statement']}"] = count / requests
        else:
            engine[connection] += count / requests
    return StatementCounts(route, int(requests), dict(per_connection), by_keyword, dict(engine))


def statements(s: StartSettings, body_size: int = 1024) -> list[StatementCounts]:
    """Statements per ``/v1/web/start`` and per ``/v1/web/i`` on one counting server."""
    out = []
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "statements.db"
        key = _project(db, "web")
        extra = ("--count-sql-statements",)
        with common.replayd_server(db, extra=extra) as (child, port):
            for mode, route in (("starts", "/v1/web/start"), ("batches", "/v1/web/i")):
                spec = attrs.evolve(_spec(port, key, mode, s, 5), body_size=body_size)
                marks: dict[str, dict] = {}

                def mark_window(*_: float, marks: dict[str, dict] = marks) -> None:
                    marks["before"] = scrape(port)

                # From the window's start: the uploads' own starts (before GO) are not in it.
                common.run_load(spec, 1, child.pid, on_window=mark_window)
                counts = _statements_between(marks["before"], scrape(port), route)
                log(
                    f"statements per {route}: {counts.total:.2f} "
                    f"({counts.by_keyword}; engine {counts.engine})"
                )
                out.append(counts)
    return out
