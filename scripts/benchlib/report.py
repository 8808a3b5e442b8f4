"""The one table: rows from every section's results, the machine, and BENCHMARKS.md.

Every figure sits next to the ceiling or reference it is measured against in the same run, with
the ratio and the target of issue 5 as PASS/MISS. Informational rows have no verdict.
"""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

import attrs
from benchlib.common import ROOT, percentile


@attrs.frozen
class Row:
    area: str
    measure: str
    replayd: str
    reference: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""  # PASS / MISS / CHECK / "" (information)


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def rate(x: float, unit: str = "/s") -> str:
    """12,345 -> '12.3k/s'."""
    if x >= 1e6:
        return f"{x / 1e6:.2f}M{unit}"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k{unit}"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k{unit}"
    return f"{x:.0f}{unit}"


def ms(x: float) -> str:
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# -- machine -----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python, SQLite, date, commit, load at start."""
    import psutil

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        ).stdout.strip()
        commit = f"{commit}{' + local changes' if dirty else ''}" if commit else "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores ({psutil.cpu_count(logical=False)} physical)",
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "SQLite": sqlite3.sqlite_version,
        "Date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Commit": commit,
        "Load average at start": " ".join(f"{x:.2f}" for x in load),
    }


# -- rows per section --------------------------------------------------------------------------


def _load_cell(run, *, volume: bool = True) -> str:
    lat = run.latencies_ms
    mb = f" · {run.mb_per_s:.1f} MB/s" if volume else ""
    return (
        f"{run.req_per_s:,.0f} req/s{mb} · p50 {ms(percentile(lat, 50))}"
        f" · p99 {ms(percentile(lat, 99))}"
    )


def ingest_rows(cases, trackers: int) -> list[Row]:
    rows = []
    for c in cases:
        mode = f", --workers {c.workers}" if c.workers else ""
        errs = c.replayd.errors
        note = f" · errors {errs}" if errs else ""
        rows.append(
            Row(
                "Ingest",
                f"`/v1/web/i` {c.body_size // 1024} KB bodies, {trackers} trackers{mode}",
                _load_cell(c.replayd) + note,
                "ceiling: " + _load_cell(c.ceiling),
                ratio(c.replayd.req_per_s, c.ceiling.req_per_s),
                ">= 0.90x",
                verdict(c.ratio >= 0.9 and not errs),
            )
        )
    if cases:
        harder = all(c.ceiling.req_per_s > c.replayd.req_per_s for c in cases)
        gen_cpu = max(max(c.ceiling.loadgen_cpu, c.replayd.loadgen_cpu) for c in cases)
        srv = ", ".join(
            f"{c.body_size // 1024} KB {c.ceiling.server_cpu:.2f}/{c.replayd.server_cpu:.2f}"
            for c in cases
        )
        rows.append(
            Row(
                "Ingest",
                "load generator is not the bottleneck"
                + (f" (--workers {cases[0].workers})" if cases[0].workers else ""),
                f"generator CPU <= {gen_cpu:.2f} core; server CPU (ceiling/replayd, cores): {srv}",
                "ceiling driven harder than replayd at every size: " + ("yes" if harder else "NO"),
                "",
                "ceiling > replayd, generator < 0.8 core",
                "PASS" if harder and gen_cpu < 0.8 else "CHECK",
            )
        )
    return rows


def start_rows(cases, trackers: int) -> list[Row]:
    """Session starts against the ceiling's fixed-answer start handler (target 0.8x)."""
    rows = []
    for c in cases:
        errs = c.replayd.errors
        rows.append(
            Row(
                "Starts",
                f"`{c.route}` new sessions, {trackers} trackers",
                _load_cell(c.replayd, volume=False) + (f" · errors {errs}" if errs else ""),
                "fixed-answer start: " + _load_cell(c.ceiling, volume=False),
                ratio(c.replayd.req_per_s, c.ceiling.req_per_s),
                ">= 0.80x",
                verdict(c.ratio >= 0.8 and not errs),
            )
        )
    return rows


def statement_rows(counts) -> list[Row]:
    """SQLite statements per request, from the server's counters (target: only the append)."""
    rows = []
    for c in counts:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(c.by_keyword.items()))
        engine = ", ".join(f"{k} {v:.2f}" for k, v in sorted(c.engine.items()))
        upload = c.route.endswith("/i")
        rows.append(
            Row(
                "Statements",
                f"SQLite statements per `{c.route}` ({c.requests:,} requests counted)",
                f"{c.total:.2f} per request: {parts or 'none'}",
                f"besides the log writer's append: {c.besides_append():.2f}"
                + (f"; the engine meanwhile, per request: {engine}" if engine else ""),
                "",
                "only the append" if upload else "",
                verdict(c.besides_append() == 0) if upload else "",
            )
        )
    return rows


def engine_rows(watches, ceiling, per_core_target: float = 300_000) -> list[Row]:
    """``watches``: (label, EngineWatch, server cores busy in the window) of replayd's ingest runs.

    The run with the highest ingest rate is reported. Per core: the messages projected in the
    window over the CPU-seconds the whole server used meanwhile (ingest included, so a lower
    bound for the engine alone); a drain of at least 2 s after the load (the engine alone, the
    projections' checkpoint moving chunk by chunk) gives a second, direct figure.
    """
    usable = [(label, w, cores) for label, w, cores in watches if w is not None]
    if not usable or not any(w.wired for _, w, _ in usable):
        return [
            Row(
                "Engine",
                "live decode+project",
                "engine not running in `replayd serve` (no projection checkpoint moved)",
                f"decode loop: {rate(ceiling.msgs_per_s)}",
                "",
                f">= {rate(per_core_target, ' msgs')}/core",
                "MISS",
            )
        ]
    label, peak, cores = max(usable, key=lambda lwc: lwc[1].ingested_msgs_per_s)
    live = peak.projected_msgs_per_s
    per_core = live / cores if cores > 0 else live
    how = f"{rate(per_core, ' msgs')} per server core-second (server {cores:.2f} cores busy)"
    capacity = per_core
    if peak.drained_after_s is not None and peak.drained_after_s >= 2.0:
        drain = peak.drain_msgs_per_core_s or peak.drain_msgs_per_s
        how += f"; drain after the load: {rate(drain, ' msgs')} per core-second"
        capacity = max(capacity, drain)
    rows = [
        Row(
            "Engine",
            f"live decode+project at peak ingest ({label})",
            f"{rate(live, ' msgs/s')} projected while ingesting "
            f"{rate(peak.ingested_msgs_per_s, ' msgs/s')}; {how}",
            f"decode loop ({ceiling.wanted_label}): {rate(ceiling.msgs_per_s, ' msgs/s')}; "
            f"full decode {rate(ceiling.full_msgs_per_s, ' msgs/s')}"
            + (
                ""
                if ceiling.mobile_msgs_per_s is None
                else f"; mobile full decode {rate(ceiling.mobile_msgs_per_s, ' msgs/s')}"
            ),
            ratio(capacity, ceiling.msgs_per_s),
            f">= {rate(per_core_target, ' msgs/s')}/core",
            verdict(capacity >= per_core_target),
        ),
    ]
    drained = (
        f"caught up {peak.drained_after_s:.1f} s after the load stopped"
        if peak.drained_after_s is not None
        else f"not caught up within the drain timeout (checkpoint {peak.final_checkpoint:,}"
        f" of {peak.final_head:,} records)"
    )
    rows.append(
        Row(
            "Engine",
            f"projection lag at peak ingest ({label})",
            f"max {peak.max_lag_records:,} records "
            f"(~{peak.max_lag_records * peak.msgs_per_record:,.0f} msgs) behind the log; "
            f"{drained}",
        )
    )
    return rows


def rebuild_rows(r) -> list[Row]:
    own = f"; it reports {r.rebuild.own_s:.1f} s" if r.rebuild.own_s else ""
    secs = (
        f"{r.seconds:.2f} s = {r.rebuild.wall_s:.2f} s wall - {r.empty_wall_s:.2f} s for an "
        f"empty log{own}"
    )
    rows = [
        Row(
            "Rebuild",
            f"`replayd rebuild` of {r.log.messages:,} msgs ({r.log.records:,} records)",
            f"{rate(r.msgs_per_s, ' msgs/s')} ({secs})",
            f"decode loop: {rate(r.ceiling.msgs_per_s, ' msgs/s')}",
            ratio(r.msgs_per_s, r.ceiling.msgs_per_s),
            ">= 250k msgs/s",
            verdict(r.msgs_per_s >= 250_000),
        ),
        Row(
            "Rebuild",
            f"vs `eventsourcing` replaying {r.eventsourcing.events:,} events from SQLite",
            f"{rate(r.msgs_per_s, ' msgs/s')}",
            f"eventsourcing: {rate(r.eventsourcing.replay_per_s, ' events/s')}",
            ratio(r.msgs_per_s, r.eventsourcing.replay_per_s),
            ">= 10x",
            verdict(r.msgs_per_s >= 10 * r.eventsourcing.replay_per_s),
        ),
    ]
    if r.short is not None:
        sh = r.short
        rows.append(
            Row(
                "Rebuild",
                f"`replayd rebuild` of {sh.sessions:,} short sessions (a start and one ~1 KB batch"
                f" each, {sh.records:,} records)",
                f"{rate(sh.sessions_per_s, ' sessions/s')} ({sh.seconds:.2f} s ="
                f" {sh.rebuild.wall_s:.2f} s wall - {sh.empty_wall_s:.2f} s for an empty log)",
                f"the same records read through `LogReader`: "
                f"{rate(sh.read_sessions_per_s, ' sessions/s')}",
                ratio(sh.sessions_per_s, sh.read_sessions_per_s),
                ">= 50k sessions/s",
                verdict(sh.sessions_per_s >= 50_000),
            )
        )
    return rows


def _lat(lat, empty_label: str = "") -> str:
    extra = ""
    if lat.errors:
        extra += f" · {lat.errors} errors ({lat.note})"
    if empty_label and lat.n:
        extra += f" · {lat.empty}/{lat.n} {empty_label}"
    return f"p50 {ms(lat.p50_ms)} · p99 {ms(lat.p99_ms)} (n={lat.n}){extra}"


def _stored(stored: int, wanted: int) -> str:
    """How many stored sessions a section measured over (and how many it wanted, if fewer)."""
    return f"{stored:,} stored sessions" + ("" if stored >= wanted else f" (of {wanted:,} wanted)")


def query_rows(q) -> list[Row]:
    stored = _stored(q.stored, q.stored_wanted)
    live = f"{q.live:,} listed live of {q.live_wanted:,} started"
    ok_ev = q.events.errors == 0 and q.events.n > 0 and q.events.empty == 0
    ok_live = q.live_search.errors == 0 and q.live_search.n > 0
    rows = [
        Row(
            "Queries",
            f"session events `GET /api/v1/{{key}}/sessions/{{id}}/events`, {stored}",
            _lat(q.events, "answers without events"),
            "empty GET: " + _lat(q.floor),
            ratio(q.events.p99_ms, q.floor.p99_ms) + " (p99)",
            "p99 < 5 ms",
            verdict(ok_ev and q.events.p99_ms < 5),
        ),
        Row(
            "Queries",
            f"Assist live search `POST .../assist/sessions`, {live}",
            _lat(q.live_search, "searches matched nothing"),
            "empty GET: " + _lat(q.floor),
            ratio(q.live_search.p99_ms, q.floor.p99_ms) + " (p99)",
            "p99 < 10 ms",
            verdict(ok_live and q.live >= q.live_wanted * 0.99 and q.live_search.p99_ms < 10),
        ),
    ]
    st = q.stored_set
    if st is not None and st.rebuild_run is not None:
        per_s = st.sessions / st.rebuild_s if st.rebuild_s else 0.0
        probe = (
            f"{st.probe_sessions:,}-session probe: "
            f"{rate(st.probe_sessions / (st.probe.own_s or st.probe.wall_s), ' sessions/s')}"
            if st.probe is not None
            else ""
        )
        probe_rate = (
            st.probe_sessions / (st.probe.own_s or st.probe.wall_s) if st.probe is not None else 0
        )
        rows.append(
            Row(
                "Rebuild",
                f"`replayd rebuild` of the query data set: {st.sessions:,} stored sessions"
                f" ({len(st.with_events):,} with a batch)",
                f"{st.rebuild_s:.1f} s ({rate(per_s, ' sessions/s')};"
                f" {st.rebuild_run.wall_s:.1f} s wall)",
                probe,
                ratio(per_s, probe_rate) if probe_rate else "",
                "1,000,000 sessions in < 30 s",
                verdict(st.sessions >= 1_000_000 and st.rebuild_s < 30),
            )
        )
    if q.note:
        rows.append(Row("Queries", "data set", q.note))
    rows.append(
        Row(
            "Queries",
            "data set build",
            f"{q.stored:,} sessions appended through the log"
            + (f" in {st.append_s:.1f} s" if st is not None else "")
            + f" and projected by `replayd rebuild` in {q.rebuild_s:.1f} s; "
            f"{q.live_wanted:,} live sessions started over HTTP in {q.live_start_s:.1f} s",
        )
    )
    return rows


def search_rows(r) -> list[Row]:
    """Session search (issue 15): p50/p99 per typical search, against the same client's floor."""
    stored = _stored(r.stored, r.stored_wanted)
    rows = []
    for c in r.cases:
        ok = c.latency.errors == 0 and c.latency.n > 0
        rows.append(
            Row(
                "Search",
                f"{c.name}, {stored}, ~{c.median_total:,} matches",
                _lat(c.latency, "searches matched nothing"),
                "empty GET: " + _lat(r.floor),
                ratio(c.latency.p99_ms, r.floor.p99_ms) + " (p99)",
                "p99 < 50 ms" if c.selective else "(unselective: as measured)",
                verdict(ok and c.latency.p99_ms < 50) if c.selective else ("" if ok else "MISS"),
            )
        )
    notes = [r.note] if r.note else []
    build = f"{r.stored:,} sessions projected by `replayd rebuild` in {r.rebuild_s:.1f} s"
    return (
        rows
        + [Row("Search", "data set", n) for n in notes]
        + [Row("Search", "data set build", build)]
    )


def replay_rows(r) -> list[Row]:
    """Replay (issue 13): the stream of a long session against reading its records from the
    log, and the player's backward seek against its forward seek to the end."""
    session = f"{r.minutes}-minute session, {r.dom_messages:,} DOM messages, {r.records:,} records"
    read = f"log read of its records: {ms(r.log_read_s * 1000)}"
    size = f"{r.stream_lines:,} lines, {mb(r.stream_bytes)}"
    rows = [
        Row("Replay", f"stream to the first line (the header), {session}",
            ms(r.first_line_s * 1000), read, ratio(r.first_line_s, r.log_read_s)),
        Row("Replay", f"stream to the end, {session}", f"{ms(r.stream_s * 1000)} ({size})",
            read, ratio(r.stream_s, r.log_read_s)),
    ]  # fmt: skip
    if r.seek_backward_ms is None or r.seek_forward_ms is None:
        rows.append(Row("Replay", "player seeks in Chromium", "not measured: " + r.player_note))
    else:
        rows.append(
            Row("Replay", "player: seek back from the end to 1 s (Chromium)",
                ms(r.seek_backward_ms), f"seek from the start to the end: {ms(r.seek_forward_ms)}",
                ratio(r.seek_backward_ms, r.seek_forward_ms))
        )  # fmt: skip
    return rows


def memory_rows(m, ingest_rss: int = 0, stored=None) -> list[Row]:
    """Idle and live RSS; with ``ingest_rss`` (peak during the 64 KB ingest run) and ``stored``
    (the query data set's ``StoredSet``: its full rebuild and its probe) their rows too."""
    rows = _memory_base_rows(m)
    if ingest_rss:
        rows.append(
            Row(
                "Memory",
                "RSS during the 64 KB ingest run (peak, sampled every 100 ms)",
                mb(ingest_rss),
                f"idle: {mb(m.idle_rss)}",
                ratio(ingest_rss, m.idle_rss),
                "< 300 MB",
                verdict(ingest_rss < 300e6),
            )
        )
    if stored is not None and stored.rebuild_run is not None and stored.rebuild_run.peak_rss:
        probe_rss = stored.probe.peak_rss if stored.probe is not None else 0
        reference = f"idle server: {mb(m.idle_rss)}"
        if probe_rss:
            reference += f"; rebuild of {stored.probe_sessions:,} sessions: {mb(probe_rss)}"
        rows.append(
            Row(
                "Memory",
                f"RSS during `replayd rebuild` of {stored.sessions:,} sessions (peak, every 50 ms)",
                mb(stored.rebuild_run.peak_rss),
                reference,
                ratio(stored.rebuild_run.peak_rss, probe_rss or m.idle_rss)
                + (" (vs the small rebuild)" if probe_rss else ""),
                "does not grow with the log: <= 1.5x the small rebuild's",
                verdict(bool(probe_rss) and stored.rebuild_run.peak_rss <= 1.5 * probe_rss),
            )
        )
    return rows


def _memory_base_rows(m) -> list[Row]:
    listed = (
        "live count not verifiable (no Assist list)"
        if m.live_listed < 0
        else f"{m.live_listed:,} listed live"
    )
    live_note = (
        f"{m.live_started:,} started, {listed}"
        + ("" if m.caught_up else ", engine not caught up")
        + f"; {m.where}"
    )
    if m.live_listed < 0 or not m.caught_up:
        live_ok = "CHECK" if m.live_rss < 300e6 else "MISS"
    else:
        live_ok = verdict(m.live_rss < 300e6 and m.live_listed >= m.live_wanted * 0.99)
    return [
        Row(
            "Memory",
            "RSS idle (fresh server)",
            mb(m.idle_rss),
            f"ceiling server idle: {mb(m.floor_rss)}",
            ratio(m.idle_rss, m.floor_rss),
            "< 80 MB",
            verdict(m.idle_rss < 80e6),
        ),
        Row(
            "Memory",
            f"RSS with {m.live_wanted:,} live sessions ({live_note})",
            mb(m.live_rss),
            f"idle: {mb(m.idle_rss)}",
            ratio(m.live_rss, m.idle_rss),
            "< 300 MB",
            live_ok,
        ),
    ]


# -- output ------------------------------------------------------------------------------------


HEADER = (
    "Area",
    "Measure",
    "replayd",
    "Ceiling / reference (same run)",
    "Ratio",
    "Target",
    "Result",
)


def table(rows: list[Row]) -> str:
    """A Markdown table (also readable as plain text)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for r in rows:
        cells = (
            r.area,
            r.measure,
            r.replayd,
            r.reference,
            r.ratio,
            r.target,
            f"**{r.result}**" if r.result else "",
        )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def document(
    rows: list[Row], info: dict[str, str], notes: list[str], command: str, seconds: float
) -> str:
    """The whole BENCHMARKS.md."""
    parts = [
        "# Benchmarks",
        "",
        f"Written by `{command}` (took {seconds / 60:.1f} min). Every figure is measured next to "
        "its ceiling or reference in the same run; targets are those of issue 5.",
        "",
        "## Machine",
        "",
        *[f"- **{k}**: {v}" for k, v in info.items()],
        "",
        "## Results",
        "",
        table(rows),
        "",
    ]
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


def hostile_rows(h) -> list[Row]:
    """The unrelated tracker's p99 under bursts of hostile starts, against ordinary bursts."""
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(h.hostile_statuses.items()))

    def lat(values: list[float]) -> str:
        return (
            f"p50 {ms(percentile(values, 50))} · p99 {ms(percentile(values, 99))} (n={len(values)})"
        )

    return [
        Row(
            "Hostile input",
            "unrelated 1 KB `/v1/web/i` uploads during bursts of 8 concurrent starts with "
            "distinct 60 KB User-Agents (HTTP/2), a burst every 0.5 s",
            f"{lat(h.attacked_ms)}; hostile starts answered: {h.hostile_starts} ({statuses})",
            f"same bursts, ordinary agent: {lat(h.ordinary_ms)}; no other traffic: "
            f"{lat(h.idle_ms)}",
            ratio(h.attacked_p99, h.ordinary_p99) + " (p99)",
            "p99 <= 2x ordinary",
            verdict(h.attacked_p99 <= 2 * h.ordinary_p99),
        )
    ]


def stall_rows(st) -> list[Row]:
    """Loop stalls (issue 9): ``/healthz`` latency while a big session is read, and in the
    ingest process of ``--workers 1`` over many live sessions."""
    idle, loaded = st.events_idle, st.events_loaded
    return [
        Row(
            "Loop stalls",
            f"`/healthz` back to back while a {st.events:,}-event session's events are read "
            "back to back",
            loaded.describe() + f"; events reads p50 {ms(percentile(st.events_reads_ms, 50))}",
            "no other traffic: " + idle.describe(),
            ratio(loaded.max, idle.max) + " (max)",
            "no loop stall",
            "",
        ),
        Row(
            "Loop stalls",
            f"`/healthz` back to back on the ingest process of `--workers 1`, {st.live:,} live "
            f"sessions ({st.live_listed:,} listed), one tracker uploading a batch every 0.1 s",
            st.live_probe.describe(),
            "no live sessions: " + st.live_idle.describe(),
            ratio(st.live_probe.max, st.live_idle.max) + " (max)",
            "no loop stall",
            "",
        ),
    ]


def erase_rows(er) -> list[Row]:
    """Delete-user job (issue 15 part 3): its time for a user with many sessions under ingest,
    and what it costs the trackers (req/s during vs before, in the same run)."""
    return [
        Row(
            "Data lifecycle",
            f"delete-user job, a user with {er.victim_sessions:,} sessions among "
            f"{er.other_sessions:,}, while trackers upload back to back",
            f"job {er.job_s:.2f} s ({er.sessions_erased:,} sessions, {er.records_erased:,} "
            f"records erased); ingest {er.during_req_s:.0f} req/s, p99 {ms(er.during_p99_ms)}, "
            f"max {ms(er.during_max_ms)}",
            f"before the job: {er.before_req_s:.0f} req/s, max {ms(er.before_max_ms)}",
            ratio(er.during_req_s, er.before_req_s) + " (req/s)",
            "completes; ingest keeps going",
            verdict(er.sessions_erased == er.victim_sessions and er.during_req_s > 0),
        )
    ]
