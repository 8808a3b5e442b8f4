"""The benchmark driver behind ``scripts/bench``: runs the sections, prints ONE table, writes it.

Sections: ingest, engine, rebuild, queries, memory (issue 5); starts (issue 16: the web and mobile
session starts against a fixed-answer start handler, and the SQLite statements per start and per
upload from the server's own counters); hostile (issue 8: an unrelated
tracker's latency while starts with huge User-Agents arrive); stalls (issue 9: the loop's
latency while a 20,000-event session is read, and in ``--workers`` over 10,000 live sessions);
search (issue 15: p50/p99 of five typical session searches over stored sessions); replay (issue
13: a 30-minute session's replay stream and the player's backward seek in Chromium).
``--only a,b`` runs a subset and ``--quick`` shrinks every size (for a try-out in about a minute
or two). A full run writes
BENCHMARKS.md at the repository root; a subset or quick run writes only with ``--out PATH``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import attrs
from benchlib import (
    common,
    engine,
    erase,
    hostile,
    ingest,
    memory,
    profile,
    queries,
    rebuild,
    replay,
    report,
    search,
    stalls,
    starts,
)
from benchlib.common import log

SECTIONS = (
    "ingest",
    "engine",
    "starts",
    "rebuild",
    "queries",
    "memory",
    "hostile",
    "stalls",
    "erase",
    "search",
    "replay",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    p.add_argument("--quick", action="store_true", help="small sizes and short runs (try-out)")
    p.add_argument(
        "--out",
        default=None,
        help="write the table here (default: BENCHMARKS.md for a full run, "
        "nothing for --only/--quick)",
    )
    p.add_argument("--trackers", type=int, default=None, help="concurrent simulated trackers")
    p.add_argument("--duration", type=float, default=None, help="seconds per ingest run")
    p.add_argument("--loadgen-procs", type=int, default=1, help="load generator processes")
    p.add_argument(
        "--workers",
        default="auto",
        help="also run ingest against `replayd serve --workers N` (split ingest/engine "
        "mode): N or N,M,..., 0 = never, auto = 1,2 when the server supports it",
    )
    p.add_argument("--sizes", default=None, help="ingest body sizes in KB, e.g. 1,16,64")
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="ingest runs per server and size, best kept (default 2, quick 1)",
    )
    p.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="also sample replayd with py-spy (ingest window, a second rebuild, the "
        "query mixes) and write collapsed stacks and top lists into DIR",
    )
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    if args.profile:
        profile.PROFILE_DIR = Path(args.profile).resolve()
        profile.PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    info = report.machine()
    quick = args.quick
    full = set(args.sections) == set(SECTIONS) and not quick
    rows: list[report.Row] = []
    notes: list[str] = []
    failed: list[str] = []

    sizes = (
        tuple(int(k) * 1024 for k in args.sizes.split(",")) if args.sizes else (1024, 16384, 65536)
    )
    ing = ingest.IngestSettings(
        sizes=sizes,
        trackers=args.trackers or (16 if quick else 32),
        procs=args.loadgen_procs,
        warmup_s=0.5 if quick else 1.0,
        duration_s=args.duration or (2.0 if quick else 5.0),
        drain_timeout_s=10.0 if quick else 30.0,
        repeat=args.repeat or (1 if quick else 2),
    )
    workers: tuple[int, ...] = ()
    if args.workers == "auto":
        if ("ingest" in args.sections or "engine" in args.sections) and common.supports_workers():
            workers = (1, 2)
    else:
        workers = tuple(n for n in (int(w) for w in args.workers.split(",")) if n > 0)

    def section(name: str, fn) -> None:
        if name not in args.sections:
            return
        t0 = time.monotonic()
        try:
            rows.extend(fn())
        except Exception as exc:  # noqa: BLE001 - a broken section must not hide the others
            failed.append(name)
            traceback.print_exc()
            first_line = str(exc).splitlines()[0][:160] if str(exc) else ""
            rows.append(
                report.Row(
                    name.capitalize(),
                    "section failed",
                    f"{type(exc).__name__}: {first_line}",
                    result="MISS",
                )
            )
        log(f"{name}: {time.monotonic() - t0:.0f} s")

    # Ingest (and the engine, watched while replayd is loaded).
    cases: list[ingest.IngestCase] = []

    def do_ingest() -> list[report.Row]:
        cases.extend(ingest.run(ing))
        ceilings = {c.body_size: c.ceiling for c in cases}
        for n in workers:
            cases.extend(ingest.run(_with_workers(ing, n), ceilings))
        rows_ = report.ingest_rows([c for c in cases if not c.workers], ing.trackers)
        for n in workers:
            rows_ += report.ingest_rows([c for c in cases if c.workers == n], ing.trackers)
        return rows_

    def do_engine() -> list[report.Row]:
        if not cases:  # engine without the ingest section: replayd at the largest size only
            cases.extend(_engine_only(ing))
        ceiling = engine.decode_ceiling(engine.loader_bodies(max(ing.sizes)), seconds=2.0)
        watched = [
            (f"{c.body_size // 1024} KB", c.engine, c.replayd.server_cpu)
            for c in cases
            if not c.workers
        ]
        split = [
            (f"{c.body_size // 1024} KB, --workers {c.workers}", c.engine, c.replayd.server_cpu)
            for c in cases
            if c.workers == 1  # the engine row of the split mode, as before
        ]
        rows_ = report.engine_rows(watched, ceiling)
        if split:
            rows_ += report.engine_rows(split, ceiling)
        return rows_

    section("ingest", do_ingest)
    section("engine", do_engine)

    def do_starts() -> list[report.Row]:
        settings = starts.StartSettings(
            trackers=ing.trackers,
            warmup_s=ing.warmup_s,
            duration_s=ing.duration_s,
            repeat=ing.repeat,
        )
        counts = starts.statements(attrs.evolve(settings, duration_s=min(3.0, ing.duration_s)))
        return report.start_rows(starts.run(settings), ing.trackers) + report.statement_rows(counts)

    section("starts", do_starts)

    section(
        "rebuild",
        lambda: report.rebuild_rows(
            rebuild.run(
                min_messages=200_000 if quick else 1_000_000,
                short_sessions=20_000 if quick else 200_000,
            )
        ),
    )
    query_result: list[queries.QueryResult] = []

    def do_queries() -> list[report.Row]:
        # The stored-session build is what scales with time: give it what is left of a 9-minute
        # run after the ~2.5 minutes the live sessions, the queries and the memory section need.
        left = 9 * 60 - (time.monotonic() - t_start) - 150
        settings = (
            queries.QuerySettings(
                stored_sessions=20_000,
                sessions_with_events=1_000,
                live_sessions=1_000,
                requests=200,
                rebuild_budget_s=30,
            )
            if quick
            else queries.QuerySettings(rebuild_budget_s=max(30.0, min(100.0, left)))
        )
        query_result.append(queries.run(settings))
        return report.query_rows(query_result[0])

    section("queries", do_queries)

    # the query server already held the live sessions: its RSS is the "live" memory figure
    def do_memory() -> list[report.Row]:
        result = memory.run(
            live=1_000 if quick else 10_000,
            from_queries=query_result[0] if query_result else None,
        )
        largest = [c for c in cases if not c.workers and c.body_size == max(ing.sizes)]
        return report.memory_rows(
            result,
            ingest_rss=largest[0].engine.peak_rss if largest and largest[0].engine else 0,
            stored=query_result[0].stored_set if query_result else None,
        )

    section("memory", do_memory)

    section(
        "hostile",
        lambda: report.hostile_rows(
            hostile.run(hostile.HostileSettings(duration_s=2.0 if quick else 5.0))
        ),
    )

    section(
        "stalls",
        lambda: report.stall_rows(
            stalls.run(
                stalls.StallSettings(events=5_000, live=2_000, duration_s=2.0)
                if quick
                else stalls.StallSettings()
            )
        ),
    )

    section(
        "erase",
        lambda: report.erase_rows(
            erase.run(
                erase.EraseSettings(victim_sessions=200, other_sessions=1_000, baseline_s=2.0)
                if quick
                else erase.EraseSettings()
            )
        ),
    )

    section(
        "search",
        lambda: report.search_rows(
            search.run(
                search.SearchSettings(
                    stored_sessions=20_000, sessions_with_events=1_000, requests=50,
                    rebuild_budget_s=30,
                )
                if quick
                else search.SearchSettings()
            )
        ),
    )  # fmt: skip

    section(
        "replay",
        lambda: report.replay_rows(
            replay.run(
                replay.ReplaySettings(minutes=5, dom_messages=20_000)
                if quick
                else replay.ReplaySettings()
            )
        ),
    )

    elapsed = time.monotonic() - t_start
    notes += [
        "Ingest: the same generator process(es) drive both servers with the same trackers, "
        "headers and encoder-made bodies (uncompressed, `DataType: player`), one batch in flight "
        "per tracker on keep-alive connections; replayd answers after the record's commit "
        f"(durable ack). Per size the ceiling and replayd run alternately, {ing.repeat} time(s) "
        "each, and the best run of each is kept; replayd gets a fresh database every run.",
        "Ingest, split mode: `--workers N` rows are the same load against N ingest processes "
        "(and the engine in the parent), compared with the single process's ceiling runs.",
        "Starts: every tracker posts new-session starts back to back (the real tracker's start "
        "body; the iOS SDK's for the mobile start) to the ceiling's fixed-answer start handler "
        "and to replayd on a fresh database, alternately, best run of each kept. Statements: a "
        "separate `serve --count-sql-statements` (sqlite3's trace callback on every connection) "
        "is loaded with starts and then with 1 KB uploads; the statements each connection ran "
        "in the window over the requests the server counted on that route (both from its "
        "/metrics). The engine's connections are shown apart: they follow the log.",
        "Latencies are client-side (request sent -> response parsed), so the ingest rows include "
        "queueing behind the other trackers' requests; the query rows send one request at a time.",
        "Engine: the projections' lowest checkpoint is sampled every 100 ms while replayd is under "
        "ingest load; records convert to tracker messages by their known count per batch. Per "
        "core = messages projected / CPU-seconds of the whole server in the same window.",
        "Rebuild: the log is written with `EventLog.append_many` (sessions' start records and "
        "encoder-made 16 KB batches); its time is the command's wall time less that of the same "
        "command on an empty log (interpreter start-up, imports, migrations). eventsourcing gets "
        "the same number of events in its SQLite application recorder (bulk insert, not timed) "
        "and replays them through its notification log (pages of 1,000), its mapper back to "
        "domain events and an in-memory fold.",
        "Queries: stored sessions are start records spread over 29 days (so they end in record "
        "time), some with a batch of ~25 events (a location, 20 clicks, 4 inputs), projected by "
        "`replayd rebuild`; live sessions are started over HTTP (start + a first batch with a "
        "user id, metadata, a page and a click) right before the measurement.",
        "Memory: RSS of the server's whole process tree (psutil).",
        "Hostile input: one keep-alive client uploads 1 KB batches of a normal session one at a "
        "time: alone, then during bursts of 8 concurrent `/v1/web/start` (one every 0.5 s) with "
        "an ordinary browser agent, then during the same bursts with a fresh random 60 KB "
        "User-Agent per start, sent over HTTP/2 with prior knowledge (64 KB of headers allowed); "
        "one server, windows of the same length.",
        "Loop stalls: `GET /healthz` (answered on the trio loop, no database) is sent back to "
        "back on one keep-alive connection; ms/s stalled sums, per second, the latency above the "
        "window's median of the probes slower than 10 ms. The big session's events are read back "
        "to back by a second client; the live sessions are start records projected by "
        "`replayd rebuild`, served by `serve --workers 1`.",
        "Data lifecycle: the log holds one user's sessions spread among others' (a start and "
        "a one-click batch each, projected by `replayd rebuild`); 4 keep-alive trackers upload "
        "1 KB batches back to back, alone and then while `DELETE /api/v1/<key>/users/<id>` "
        "runs; the job's time is from that request to `completed` (polled every 50 ms).",
        "Replay: one web session's start and encoder-made batches of DOM changes (one every "
        "5 s), appended with `EventLog.append_many` and projected by `replayd rebuild`; the "
        "stream is read uncompressed over one connection after a warm-up read; the player runs "
        "in Chromium on the dashboard's session page, its seeks timed by the page's own clock "
        "(the `window.replayd.seek` promise).",
        "The 2 cores are shared by the server, the load generator and the driver; background load "
        "on the machine (see the load averages) lowers every figure, ceilings included. Load "
        "average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ".",
    ]
    if args.profile:
        notes.insert(0, "PROFILED run: py-spy sampled replayd during the measurements.")
    if quick:
        notes.insert(0, "QUICK run: reduced sizes; not comparable with the targets' data sizes.")
    if failed:
        notes.insert(0, f"Sections that failed: {', '.join(failed)} (see the run's stderr).")
    command = "scripts/bench " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = report.document(rows, info, notes, command.strip(), elapsed)
    print(report.table(rows))
    print(f"\n({elapsed / 60:.1f} min)")
    out = args.out or ("BENCHMARKS.md" if full else None)
    if out:
        path = out if os.path.isabs(out) else str(common.ROOT / out)
        with open(path, "w", encoding="utf-8") as f:
            f.write(doc)
        log(f"wrote {out}")
    return 1 if failed else 0


def _with_workers(s: ingest.IngestSettings, workers: int) -> ingest.IngestSettings:
    return attrs.evolve(s, workers=workers)


def _engine_only(s: ingest.IngestSettings) -> list[ingest.IngestCase]:
    """Engine without the ingest section: replayd runs at the largest size only (no ceiling)."""
    size = max(s.sizes)
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        run, watch = ingest.run_replayd(size, s, Path(tmp))
    return [ingest.IngestCase(size, run, run, watch)]


if __name__ == "__main__":
    sys.exit(main())
