"""Ingest benchmark: replayd's ``/v1/web/i`` (durable ack) against the framework ceiling.

For each body size, the same load generator (same trackers, headers and bodies) drives first the
ceiling server (an empty quart-trio handler on Hypercorn) and then a real ``replayd serve`` on a
fresh database; replayd answers an upload only after its record committed. While replayd is
loaded, :mod:`benchlib.engine` watches the projections follow the log (engine figures).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import attrs
from benchlib import common, engine, profile
from benchlib.common import LoadRun, log
from benchlib.loadgen import LoadSpec


@attrs.frozen
class IngestCase:
    """One body size: the ceiling's run, replayd's run and what the engine did meanwhile."""

    body_size: int
    ceiling: LoadRun
    replayd: LoadRun
    engine: engine.EngineWatch | None
    workers: int | None = None

    @property
    def ratio(self) -> float:
        return self.replayd.req_per_s / self.ceiling.req_per_s if self.ceiling.req_per_s else 0.0


@attrs.frozen
class IngestSettings:
    sizes: tuple[int, ...] = (1024, 16384, 65536)
    trackers: int = 32
    procs: int = 1
    warmup_s: float = 1.0
    duration_s: float = 5.0
    drain_timeout_s: float = 30.0
    workers: int | None = None  # replayd serve --workers N (split mode), None = single process
    # Runs per server and size, alternating ceiling and replayd; the best of each is kept, which
    # filters out bursts of unrelated load on a shared machine (both sides get the same chance).
    repeat: int = 1


def _spec(port: int, key: str, size: int, s: IngestSettings, seed: int) -> LoadSpec:
    return LoadSpec(
        port=port,
        project_key=key,
        trackers=s.trackers,
        body_size=size,
        warmup_s=s.warmup_s,
        duration_s=s.duration_s,
        seed=seed,
    )


def run_ceiling(size: int, s: IngestSettings) -> LoadRun:
    """The load against the empty handler."""
    with common.ceiling_server() as (child, port):
        return common.run_load(_spec(port, "ceiling", size, s, seed=1), s.procs, child.pid)


def run_replayd(size: int, s: IngestSettings, workdir: Path) -> tuple[LoadRun, engine.EngineWatch]:
    """The load against replayd on a fresh database, with the engine watched meanwhile."""
    db = workdir / f"ingest-{size}-{s.workers or 1}.db"
    keys = common.create_keys(db)
    from benchlib import batches

    # the average message count of the trackers' batches turns records into messages
    per = [
        batches.make_batch(size, seed=(2 * 100) * 10_000 + i).messages
        for i in range(min(s.trackers, 8))
    ]
    msgs_per_record = sum(per) / len(per)
    watched: dict[str, object] = {}

    with common.replayd_server(db, workers=s.workers) as (child, port):

        def on_window(w_start: float, w_end: float) -> None:
            watched["thread"], watched["watch"] = engine.watch(
                db, msgs_per_record, w_start, w_end, s.drain_timeout_s, child.pid
            )
            if profile.PROFILE_DIR is not None:
                out = profile.PROFILE_DIR / f"ingest-{size // 1024}k-w{s.workers or 0}.collapsed"
                watched["profile"] = (profile.record(child.pid, s.duration_s, out), out)

        run = common.run_load(
            _spec(port, keys.project_key, size, s, seed=2), s.procs, child.pid, on_window=on_window
        )
        if "profile" in watched:
            profile.finish(*watched["profile"])  # type: ignore[misc]
        thread = watched.get("thread")
        if thread is not None:
            thread.join(s.drain_timeout_s + 5)  # type: ignore[attr-defined]
    return run, watched.get("watch")  # type: ignore[return-value]


def run(s: IngestSettings, ceilings: dict[int, LoadRun] | None = None) -> list[IngestCase]:
    """Every body size: ceiling then replayd, back to back (both see the same machine), repeated.

    ``ceilings`` (by body size) reuses ceiling runs made earlier in the same run (the split mode
    is compared with the same ceiling as the single-process mode).
    """
    cases = []
    mode = f" --workers {s.workers}" if s.workers else ""
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        for size in s.sizes:
            kb = f"{size // 1024} KB"
            best_ceiling = ceilings.get(size) if ceilings else None
            best: tuple[LoadRun, engine.EngineWatch] | None = None
            for r in range(s.repeat):
                if not ceilings:
                    ceiling = run_ceiling(size, s)
                    log(f"ingest {kb} ({r + 1}/{s.repeat}): ceiling {ceiling.req_per_s:.0f} req/s")
                    if best_ceiling is None or ceiling.req_per_s > best_ceiling.req_per_s:
                        best_ceiling = ceiling
                rd, watch = run_replayd(size, s, Path(tmp))
                log(
                    f"ingest {kb} ({r + 1}/{s.repeat}): replayd{mode} {rd.req_per_s:.0f} req/s"
                    f" (errors {rd.errors or 'none'})"
                )
                if best is None or rd.req_per_s > best[0].req_per_s:
                    best = (rd, watch)
            assert best is not None and best_ceiling is not None
            cases.append(IngestCase(size, best_ceiling, best[0], best[1], s.workers))
    return cases
