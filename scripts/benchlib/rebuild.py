"""Rebuild benchmark: ``replayd rebuild`` of a >= 1M-message log, next to two references.

The log is written THROUGH the log: ``EventLog.append_many`` of ``NewRecord``s whose payloads are
a ``WebStartPayload`` per session and batches made by our encoder (as the ingest route stores
them), never rows inserted behind the log's back. Then the real command runs as a subprocess.

References, same run, same number of tracker messages:
* the decode ceiling: the actor's decode loop over the same batch bodies (``benchlib.engine``);
* the ``eventsourcing`` library (PyPI, bench-only): the same number of events in its SQLite
  application recorder, replayed the library's way (notification log pages, mapper back to
  domain events, folded into an in-memory projection).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import trio
from benchlib import batches, common, engine, profile
from benchlib.common import log

BASE_TS = 1_795_418_019_299  # ms; the capture day of PROTOCOL.md's fixtures


@attrs.frozen
class LogStats:
    records: int
    messages: int
    body_bytes: int
    seconds: float
    sample_bodies: list[bytes] = attrs.field(factory=list, repr=False)  # the batches it repeats


def start_payload(project_id: int, session_id: int, ts: int, i: int) -> bytes:
    """The ``WebStartPayload`` bytes of generated session ``i`` (as the ingest route makes them)."""
    from engine.start_payload import WebStartPayload

    return WebStartPayload(
        session_id=session_id,
        project_id=project_id,
        start_timestamp=ts,
        delay=0,
        user_uuid=str(uuid.UUID(int=session_id)),
        user_id=f"user-{i % 50_000}",
        rev_id="rev-1",
        tracker_version="19.0.1",
        user_agent=batches.USER_AGENT,
        user_os="Linux",
        user_browser="Chrome",
        user_browser_version="126.0.0",
        user_device="",
        user_device_type="desktop",
        user_country=_COUNTRIES[i % len(_COUNTRIES)],
        timezone="UTC+01:00",
        screen_width=1280,
        screen_height=800,
        referrer="https://www.example.org/",
    ).to_bytes()


_COUNTRIES = ("DE", "FR", "US", "GB", "BR")


class StartPayloads:
    """Fast ``start_payload``: its bytes for sentinel values, with the varying values substituted.

    A million starts through ``attrs.asdict`` + ``json.dumps`` would cost the run a minute and a
    half; the template is checked against the real ``to_bytes`` so it cannot drift from it.
    """

    _SID, _TS, _UUID, _USER, _CC = (
        987_654_321_987_654,
        123_123_123_123_123,
        "UUID-SENTINEL",
        "USER-SENTINEL",
        "CC-SENTINEL",
    )

    def __init__(self, project_id: int):
        from engine.start_payload import WebStartPayload

        self.project_id = project_id
        base = WebStartPayload.from_bytes(start_payload(project_id, 1, 1, 0))
        sample = attrs.evolve(
            base,
            session_id=self._SID,
            start_timestamp=self._TS,
            user_uuid=self._UUID,
            user_id=self._USER,
            user_country=self._CC,
        )
        text = sample.to_bytes().decode()
        for sentinel in (self._SID, self._TS, self._UUID, self._USER, self._CC):
            assert text.count(str(sentinel)) == 1, sentinel
        self.template = (
            text.replace(str(self._SID), "{sid}")
            .replace(str(self._TS), "{ts}")
            .replace(self._UUID, "{uuid}")
            .replace(self._USER, "{user}")
            .replace(self._CC, "{cc}")
        )
        self.template = self.template.replace("{", "{{").replace("}", "}}")
        for name in ("sid", "ts", "uuid", "user", "cc"):
            self.template = self.template.replace("{{" + name + "}}", "{" + name + "}")
        for i, sid in ((0, 1_234_567), (7, 98_765_432_123), (49_999, 2**62 + 5)):
            if self(sid, 1_795_418_019_299 + i, i) != start_payload(
                project_id, sid, 1_795_418_019_299 + i, i
            ):
                raise AssertionError("the start payload template drifted from to_bytes")

    def __call__(self, session_id: int, ts: int, i: int) -> bytes:
        return self.template.format(
            sid=session_id,
            ts=ts,
            uuid=uuid.UUID(int=session_id),
            user=f"user-{i % 50_000}",
            cc=_COUNTRIES[i % len(_COUNTRIES)],
        ).encode()


def start_record(
    project_id: int, session_id: int, ts: int, i: int, payloads: StartPayloads | None = None
):
    """A ``WEB_START`` record as the ingest route writes it (payload = ``WebStartPayload``)."""
    from storage.records import NewRecord, RecordKind

    payload = (
        payloads(session_id, ts, i) if payloads else start_payload(project_id, session_id, ts, i)
    )
    return NewRecord(
        session_id=session_id,
        project_id=project_id,
        kind=RecordKind.WEB_START,
        received_at_ms=ts,
        payload=payload,
    )


def batch_record(project_id: int, session_id: int, ts: int, seq: int, body: bytes):
    """A ``WEB_BATCH`` record as the ingest route writes it (same batch key shape)."""
    from storage.records import NewRecord, RecordKind

    return NewRecord(
        session_id=session_id,
        project_id=project_id,
        kind=RecordKind.WEB_BATCH,
        received_at_ms=ts,
        payload=body,
        batch_key=f"0_{seq}#bench{seq}",
    )


async def _append(db: Path, records: Iterable, chunk: int, synchronous: str) -> int:
    from storage.log import EventLog

    # Not FULL: generating test data needs no power-cut durability; same code path.
    event_log = EventLog(db, synchronous=synchronous, max_batch_records=chunk, queue_size=8)
    n = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(event_log.run)
        buf = []
        for rec in records:
            buf.append(rec)
            if len(buf) >= chunk:
                await event_log.append_many(buf)
                n += len(buf)
                buf = []
        if buf:
            await event_log.append_many(buf)
            n += len(buf)
        nursery.cancel_scope.cancel()
    return n


def append_records(
    db: Path, records: Iterable, chunk: int = 500, synchronous: str = "NORMAL"
) -> int:
    """Append records through ``EventLog.append_many`` (one transaction per chunk).

    ``synchronous="OFF"`` for a large data set: still the log's own writer and transactions,
    without an fsync per group (the bench never pulls the power).
    """
    return trio.run(_append, db, records, chunk, synchronous)


def build_message_log(
    db: Path, project_id: int, min_messages: int, body_size: int = 16384, sessions: int = 100
) -> LogStats:
    """Sessions with interleaved batches until the log holds >= ``min_messages`` messages."""
    from engine.ids import FlakeIdGenerator

    tails = [batches.make_batch(body_size, seed=5000 + i) for i in range(8)]
    per_batch = sum(t.messages for t in tails) / len(tails)
    rounds = -(-min_messages // int(per_batch * sessions))
    ids = FlakeIdGenerator(shard=7)
    sids = [ids.next_id(BASE_TS + i) for i in range(sessions)]
    counted = {"messages": 0, "bytes": 0}

    def records() -> Iterator:
        ts = BASE_TS
        for i, sid in enumerate(sids):
            yield start_record(project_id, sid, ts, i)
            ts += 7
        first_index = [0] * sessions
        for r in range(rounds):
            for i, sid in enumerate(sids):
                tail = tails[(i + r) % len(tails)]
                body = batches.encode_header(0, first_index[i], ts) + tail.tail
                first_index[i] += tail.messages
                counted["messages"] += tail.messages
                counted["bytes"] += len(body)
                yield batch_record(project_id, sid, ts, r + 1, body)
                ts += 13  # within the inactivity timeout: the sessions stay live

    t0 = time.perf_counter()
    n = append_records(db, records(), chunk=200)
    return LogStats(
        records=n,
        messages=counted["messages"],
        body_bytes=counted["bytes"],
        seconds=time.perf_counter() - t0,
        sample_bodies=[batches.encode_header(0, 0, BASE_TS) + t.tail for t in tails],
    )


@attrs.frozen
class RebuildRun:
    wall_s: float
    own_s: float | None  # the duration the command reports itself (no interpreter start-up)
    records: int
    events: int | None
    output: str
    peak_rss: int = 0  # the command's largest RSS, sampled every 50 ms


def _number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None


def run_rebuild(db: Path) -> RebuildRun:
    """``replayd rebuild --db`` as a subprocess, timed, its RSS sampled (its summary parsed)."""
    import subprocess
    import threading

    t0 = time.perf_counter()
    child = subprocess.Popen(
        [common.PY, "-m", "api.cli", "rebuild", "--db", str(db)],
        cwd=common.ROOT,
        env=common.child_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak = [0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], common.tree_rss(child.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = child.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise
    wall = time.perf_counter() - t0
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"replayd rebuild failed ({child.returncode}):\n{stderr[-3000:]}")
    records = _number(r"(\d+) records", stdout)
    events = _number(r"(\d+) events", stdout)
    return RebuildRun(
        wall_s=wall,
        own_s=_number(r" in ([\d.]+) s", stdout),
        records=int(records or 0),
        events=int(events) if events is not None else None,
        output=stdout[-500:],
        peak_rss=peak[0],
    )


def net_seconds(run: RebuildRun, empty_wall_s: float) -> float:
    """The command's wall time less its fixed cost (start-up, opening, migrations), measured as
    the same command's wall time on an empty log.

    Its own summary line has a 0.1 s resolution, too coarse for a one-second rebuild; it is the
    fallback when the difference is implausible.
    """
    net = run.wall_s - empty_wall_s
    if net > 0.2 * run.wall_s:
        return net
    return run.own_s or run.wall_s


# -- short sessions --------------------------------------------------------------------------


@attrs.frozen
class ShortSessionsRun:
    """``replayd rebuild`` of a log of short sessions (a start and one ~1 KB batch each)."""

    sessions: int
    records: int
    rebuild: RebuildRun
    empty_wall_s: float
    read_s: float  # the same records read back through LogReader in this process: the floor

    @property
    def seconds(self) -> float:
        return net_seconds(self.rebuild, self.empty_wall_s)

    @property
    def sessions_per_s(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0

    @property
    def read_sessions_per_s(self) -> float:
        return self.sessions / self.read_s if self.read_s else 0.0


def short_session_records(project_id: int, sessions: int) -> Iterator:
    """Sessions of a start record and one small batch, 200 ms apart (about 750 live at a time:
    each ends 150 s of record time after its batch, as on a server)."""
    from engine.ids import FlakeIdGenerator

    tails = [batches.make_batch(1024, seed=7000 + i) for i in range(8)]
    ids = FlakeIdGenerator(shard=5)
    payloads = StartPayloads(project_id)
    ts = BASE_TS
    for i in range(sessions):
        sid = ids.next_id(ts)
        yield start_record(project_id, sid, ts, i, payloads)
        body = batches.encode_header(0, 0, ts + 100) + tails[i % len(tails)].tail
        yield batch_record(project_id, sid, ts + 100, 1, body)
        ts += 200


def read_all(db: Path) -> float:
    """Seconds to read every record of the log through ``LogReader`` in chunks of 10,000."""
    from storage.log import LogReader

    reader = LogReader(db)
    try:
        t0 = time.perf_counter()
        position, head = 0, reader.head()
        while position < head:
            records = reader.read(position, 10_000)
            if not records:
                break
            position = records[-1].position
        return time.perf_counter() - t0
    finally:
        reader.close()


def run_short_sessions(sessions: int, workdir: Path, empty_wall_s: float) -> ShortSessionsRun:
    """Build a log of ``sessions`` short sessions through the log, rebuild it, read it back."""
    db = workdir / "short.db"
    keys = common.create_keys(db)
    t0 = time.perf_counter()
    n = append_records(
        db, short_session_records(keys.project_id, sessions), chunk=5000, synchronous="OFF"
    )
    log(f"rebuild: {sessions:,} short sessions appended in {time.perf_counter() - t0:.1f} s")
    run = run_rebuild(db)
    read_s = min(read_all(db) for _ in range(2))
    log(f"rebuild: short sessions rebuilt in {run.wall_s:.1f} s wall (read back {read_s:.2f} s)")
    return ShortSessionsRun(
        sessions=sessions, records=n, rebuild=run, empty_wall_s=empty_wall_s, read_s=read_s
    )


# -- the eventsourcing library ---------------------------------------------------------------


@attrs.frozen
class EventsourcingRun:
    events: int
    insert_s: float
    replay_s: float

    @property
    def replay_per_s(self) -> float:
        return self.events / self.replay_s if self.replay_s else 0.0


def eventsourcing_replay(n_events: int, workdir: Path, aggregates: int = 100) -> EventsourcingRun:
    """Store ``n_events`` in eventsourcing's SQLite recorder, then replay them all."""
    import os

    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteApplicationRecorder

    class BenchApplication(Application):
        log_section_size = 1000  # pages of 1000 notifications (the default is 10)

    class Session(Aggregate):
        class Clicked(Aggregate.Event):
            label: str
            selector: str
            x: int
            y: int

    db = workdir / "eventsourcing.db"
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        app = BenchApplication()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    # One real event through the library's mapper gives the topic and the stored state; the rest
    # reuse that state with their own originator id and version (the columns the recorder keys on).
    agg = Session()
    agg.trigger_event(
        Session.Clicked, label="add to cart", selector="div.product-card > button", x=4300, y=1200
    )
    template = app.mapper.to_stored_event(agg.collect_events()[-1])
    ids = [uuid.uuid4() for _ in range(aggregates)]
    recorder = app.recorder
    assert isinstance(recorder, SQLiteApplicationRecorder)

    def insert(events: list[StoredEvent]) -> None:
        # The library's bulk path (its aggregate recorder's executemany) into the application
        # recorder's table: same rows and notification ids as insert_events, without the per-row
        # lastrowid round trip this preparation does not need. Only the replay is measured.
        with recorder.datastore.transaction(commit=True) as cursor:
            SQLiteAggregateRecorder._insert_events(recorder, cursor, events)

    t0 = time.perf_counter()
    chunk: list[StoredEvent] = []
    for k in range(n_events):
        chunk.append(
            StoredEvent(
                originator_id=ids[k % aggregates],
                originator_version=k // aggregates + 1,
                topic=template.topic,
                state=template.state,
            )
        )
        if len(chunk) == 10_000:
            insert(chunk)
            chunk = []
    if chunk:
        insert(chunk)
    insert_s = time.perf_counter() - t0

    # Replay: read the notification log page by page, map back to domain events, fold.
    counts: dict[uuid.UUID, int] = {}
    t0 = time.perf_counter()
    start = 1
    seen = 0
    while True:
        page = app.notification_log.select(start=start, limit=1000)
        if not page:
            break
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            counts[event.originator_id] = counts.get(event.originator_id, 0) + 1
        seen += len(page)
        start = page[-1].id + 1
    replay_s = time.perf_counter() - t0
    app.close()
    if seen != n_events:
        raise RuntimeError(f"eventsourcing replayed {seen} events, expected {n_events}")
    return EventsourcingRun(events=n_events, insert_s=insert_s, replay_s=replay_s)


# -- the section -------------------------------------------------------------------------------


@attrs.frozen
class RebuildResult:
    log: LogStats
    rebuild: RebuildRun
    ceiling: engine.DecodeCeiling
    eventsourcing: EventsourcingRun
    empty_wall_s: float  # the same command on a database with an empty log: its fixed cost
    short: ShortSessionsRun | None = None

    @property
    def seconds(self) -> float:
        return net_seconds(self.rebuild, self.empty_wall_s)

    @property
    def msgs_per_s(self) -> float:
        return self.log.messages / self.seconds if self.seconds else 0.0

    @property
    def wall_msgs_per_s(self) -> float:
        return self.log.messages / self.rebuild.wall_s if self.rebuild.wall_s else 0.0


def run(
    min_messages: int = 1_000_000, es_events: int | None = None, short_sessions: int = 200_000
) -> RebuildResult:
    """Build the logs (long sessions, short sessions), rebuild them, measure the references."""
    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "rebuild.db"
        keys = common.create_keys(db)
        log(f"rebuild: writing a log of >= {min_messages:,} messages through EventLog.append_many")
        stats = build_message_log(db, keys.project_id, min_messages)
        log(
            f"rebuild: {stats.records:,} records, {stats.messages:,} messages, "
            f"{stats.body_bytes / 1e6:.0f} MB in {stats.seconds:.1f} s; running replayd rebuild"
        )
        empty = Path(tmp) / "empty.db"
        common.create_keys(empty)
        empty_wall = min(run_rebuild(empty).wall_s for _ in range(2))
        rb = run_rebuild(db)
        log(
            f"rebuild: {rb.wall_s:.2f} s wall, {empty_wall:.2f} s for an empty log "
            f"({rb.own_s} s reported); decode ceiling"
        )
        if profile.PROFILE_DIR is not None:  # a second, profiled rebuild (the figure is the first)
            out = profile.PROFILE_DIR / "rebuild.collapsed"
            profile.record_command(
                [common.PY, "-m", "api.cli", "rebuild", "--db", str(db)],
                out,
                cwd=common.ROOT,
                env=common.child_env(),
                capture_output=True,
            )
            print(profile.summarize(out), file=sys.stderr, flush=True)
        ceiling = engine.decode_ceiling(stats.sample_bodies, seconds=3.0)
        n_es = es_events or stats.messages
        log(f"rebuild: eventsourcing with {n_es:,} events")
        es = eventsourcing_replay(n_es, Path(tmp))
        log(
            f"rebuild: eventsourcing replay {es.replay_per_s:,.0f} events/s "
            f"(insert {es.insert_s:.1f} s)"
        )
        short = (
            run_short_sessions(short_sessions, Path(tmp), empty_wall) if short_sessions else None
        )
        return RebuildResult(
            log=stats,
            rebuild=rb,
            ceiling=ceiling,
            eventsourcing=es,
            empty_wall_s=empty_wall,
            short=short,
        )
