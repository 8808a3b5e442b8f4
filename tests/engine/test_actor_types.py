"""Actor type registry: routing by kind, refused double claims, a toy type beside the web one."""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Hashable, Sequence
from pathlib import Path

import attrs
import pytest
import trio

from engine.actor import SessionHistory
from engine.actor_types import (
    DEFAULT_REGISTRY,
    MOBILE_ACTOR_TYPE,
    V3_ACTOR_TYPE,
    WEB_ACTOR_TYPE,
    ActorRegistry,
    ActorState,
    ActorType,
    session_key_of,
)
from engine.events import DomainEvent, SessionEnded
from engine.supervisor import ResumePoint, Supervisor, history_from_reader, resume_point
from storage.log import EventLog, LogReader
from storage.records import LogRecord, NewRecord, RecordKind
from tests.engine.builders import (
    T0,
    CollectingSink,
    MemoryLog,
    SessionScript,
    clock_tick,
    commit,
)

TIMEOUT = 150_000
TOY_TIMEOUT = 1_000


@attrs.frozen(slots=True, kw_only=True)
class ClientSeen(DomainEvent):
    client: str


@attrs.frozen(slots=True, kw_only=True)
class ClientEnded(DomainEvent):
    client: str
    records: int  # records folded over every incarnation: replayed history counts


class ClientState:
    """A toy state: counts its client's records and says so when it ends."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.records = 0
        self.last_record_ms = 0
        self.messages_walked = 0

    def apply_record(self, record: LogRecord, out: list[DomainEvent] | None) -> bool:
        self.records += 1
        self.last_record_ms = max(self.last_record_ms, record.received_at_ms)
        if out is not None and self.records == 1:
            out.append(self._event(ClientSeen, record.position, record.received_at_ms))
        return True

    def end(self, position: int, out: list[DomainEvent] | None) -> None:
        if out is not None:
            out.append(
                ClientEnded(
                    position=position,
                    session_id=0,
                    project_id=0,
                    timestamp=self.last_record_ms,
                    client=self.client,
                    records=self.records,
                )
            )

    def _event(self, cls: type[ClientSeen], position: int, t: int) -> ClientSeen:
        return cls(position=position, session_id=0, project_id=0, timestamp=t, client=self.client)


def _client_of(record: LogRecord) -> Hashable:
    client = session_key_of(record)
    assert isinstance(client, str) and 8 <= len(client) <= 20
    return client


def _new_client_state(key: Hashable, record: LogRecord | None) -> ActorState:
    assert isinstance(key, str)
    return ClientState(key)


TOY = ActorType(
    name="toy",
    kinds={RecordKind.V3_EVENT},
    key_of=_client_of,
    new_state=_new_client_state,
    inactivity_timeout_ms=TOY_TIMEOUT,
    keyed=True,
)


def toy_record(client: str, received_at: int) -> NewRecord:
    """A record of the keyed session ``client``: named by the log's session key, not by id."""
    return NewRecord(
        session_id=0,
        project_id=0,
        kind=RecordKind.V3_EVENT,
        received_at_ms=received_at,
        payload=json.dumps({"n": received_at}).encode(),
        session_key=client,
    )


async def run(records: list[LogRecord], registry: ActorRegistry) -> CollectingSink:
    log = MemoryLog(records)
    sink = CollectingSink()
    supervisor = Supervisor(history=history_from_reader(log), sink=sink, registry=registry)
    await supervisor.run_until(log, log.head(), chunk_size=2)
    return sink


def mixed_log() -> list[LogRecord]:
    web = SessionScript(1)
    records = [web.start(received_at=T0)]
    web.visit("http://a/")
    records += [
        toy_record("client-aaaa", T0 + 10),
        web.batch(received_at=T0 + 20),
        toy_record("client-bbbbbbbb", T0 + 30),
        toy_record("client-aaaa", T0 + 40),
        # 2 s later: both toy clients are over their 1 s timeout, the web session is not.
        toy_record("client-aaaa", T0 + 2_040),
        toy_record("client-bbbbbbbb", T0 + TIMEOUT + 1_000),  # ends the web session, re-activates b
    ]
    return commit(records)


def test_a_kind_claimed_twice_is_refused() -> None:
    registry = ActorRegistry([WEB_ACTOR_TYPE])
    thief = attrs.evolve(TOY, name="thief", kinds={RecordKind.WEB_BATCH})
    with pytest.raises(ValueError, match="already belongs to 'web'"):
        registry.register(thief)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(attrs.evolve(TOY, name="web"))
    assert registry.type_for(RecordKind.WEB_BATCH) is WEB_ACTOR_TYPE
    assert registry.type_for(RecordKind.V3_EVENT) is None
    registry.register(TOY)
    assert registry.type_for(RecordKind.V3_EVENT) is TOY
    assert list(DEFAULT_REGISTRY) == [WEB_ACTOR_TYPE, MOBILE_ACTOR_TYPE, V3_ACTOR_TYPE]


async def test_records_route_by_kind_and_each_type_ends_on_its_own_timeout() -> None:
    records = mixed_log()
    sink = await run(records, ActorRegistry([WEB_ACTOR_TYPE, TOY]))
    web_only = await run([r for r in records if r.kind != RecordKind.V3_EVENT], DEFAULT_REGISTRY)
    toy = [e for e in sink.events if isinstance(e, (ClientSeen, ClientEnded))]
    assert [(type(e).__name__, e.client, e.position) for e in toy] == [
        ("ClientSeen", "client-aaaa", 2),
        ("ClientSeen", "client-bbbbbbbb", 4),
        # At record 6 both are over the toy timeout; b's deadline is the earlier one.
        ("ClientEnded", "client-bbbbbbbb", 6),
        ("ClientEnded", "client-aaaa", 6),
        # a was re-activated by record 6 (a replayed history emits no ClientSeen) and ends at 7.
        ("ClientEnded", "client-aaaa", 7),
    ]
    ends = [e.records for e in toy if isinstance(e, ClientEnded)]
    assert ends == [1, 2, 3]  # the re-activated a folded its history first
    web = [e for e in sink.events if not isinstance(e, (ClientSeen, ClientEnded))]
    # The web session sees exactly the events it sees alone, except that the toy records
    # move the clock too: its end comes at the record that pushed the clock past its timeout.
    assert [type(e) for e in web] == [type(e) for e in web_only.events] + [SessionEnded]
    assert web[-1].position == 7


async def test_a_record_of_an_unregistered_kind_only_moves_the_clock() -> None:
    records = mixed_log()
    sink = await run(records, ActorRegistry([WEB_ACTOR_TYPE, MOBILE_ACTOR_TYPE]))
    assert not [e for e in sink.events if isinstance(e, (ClientSeen, ClientEnded))]
    ended = [e for e in sink.events if isinstance(e, SessionEnded)]
    assert [(e.session_id, e.position) for e in ended] == [(1, 7)]
    assert sink.checkpoints[-1] == 7


class ToyTable:
    """A toy projection: its events as rows, with the checkpoint in the same transaction.

    Reopened on the same file it continues from its checkpoint, like the projections do.
    """

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        with self.conn:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS toy (position INT, client TEXT, what TEXT, records INT)"
            )
            self.conn.execute("CREATE TABLE IF NOT EXISTS checkpoint (upto INT)")
            if self.conn.execute("SELECT count(*) FROM checkpoint").fetchone() == (0,):
                self.conn.execute("INSERT INTO checkpoint VALUES (0)")
        self.upto = int(self.conn.execute("SELECT upto FROM checkpoint").fetchone()[0])
        self.changed = trio.Event()

    async def sink(self, events: list[DomainEvent], upto_position: int) -> None:
        with self.conn:
            for e in events:
                row: tuple[int, str, str, int | None]
                if isinstance(e, ClientSeen):
                    row = (e.position, e.client, "seen", None)
                elif isinstance(e, ClientEnded):
                    row = (e.position, e.client, "ended", e.records)
                else:
                    continue
                self.conn.execute("INSERT INTO toy VALUES (?, ?, ?, ?)", row)
            self.conn.execute("UPDATE checkpoint SET upto = ?", (upto_position,))
        self.upto = upto_position
        self.changed.set()
        self.changed = trio.Event()

    def rows(self) -> list[tuple[object, ...]]:
        return self.conn.execute("SELECT * FROM toy ORDER BY rowid").fetchall()


TOY_RECORDS = [
    toy_record("client-aaaa", T0),
    toy_record("client-bbbbbbbb", T0 + 10),
    toy_record("client-aaaa", T0 + 500),
    toy_record("client-aaaa", T0 + 2_000),  # ends b (and a, before re-activating it)
    toy_record("client-bbbbbbbb", T0 + 2_100),  # b again, with its history
    clock_tick(T0 + 10_000),  # ends both
]
TOY_ROWS = [
    (1, "client-aaaa", "seen", None),
    (2, "client-bbbbbbbb", "seen", None),
    (4, "client-bbbbbbbb", "ended", 1),
    (4, "client-aaaa", "ended", 2),
    (6, "client-aaaa", "ended", 3),
    (6, "client-bbbbbbbb", "ended", 2),
]


async def project_live(
    path: Path, table: ToyTable, registry: ActorRegistry, records: Sequence[NewRecord]
) -> ResumePoint | None:
    """Run a log and a supervisor (resumed from the table's checkpoint, as a restarted server
    is), append ``records``, wait until the table has them, stop; return the resume point."""
    log = EventLog(path)
    after = table.upto
    async with (
        contextlib.aclosing(log.tail(after, batch_size=2)) as tail,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(log.run)  # creates the log, so a reader can open it
        with LogReader(path) as reader:
            resume = await resume_point(reader, after, TIMEOUT, registry) if after else None
            supervisor = Supervisor(
                history=history_from_reader(reader), sink=table.sink, registry=registry
            )
            await nursery.start(functools.partial(supervisor.run, tail, resume=resume))
            last = [(await log.append(record)).position for record in records][-1]
            with trio.fail_after(30):  # a guard against a hang, not a measurement
                while table.upto < last:
                    await table.changed.wait()
            nursery.cancel_scope.cancel()
    return resume


@pytest.mark.parametrize("restart_after", [None, 3])
async def test_a_toy_type_projects_live_from_a_sqlite_log_and_rebuilds_the_same_rows(
    tmp_path: Path, restart_after: int | None
) -> None:
    registry = ActorRegistry([WEB_ACTOR_TYPE, TOY])
    path = tmp_path / "log.db"
    live = ToyTable(tmp_path / "live.db")
    if restart_after is None:
        assert await project_live(path, live, registry, TOY_RECORDS) is None
    else:
        # Stop while both keyed sessions are live; a restart re-activates them from the log,
        # by key: a's history (2 records) counts when the next record ends it.
        await project_live(path, live, registry, TOY_RECORDS[:restart_after])
        live.conn.close()
        live = ToyTable(tmp_path / "live.db")
        resumed = await project_live(path, live, registry, TOY_RECORDS[restart_after:])
        assert resumed == ResumePoint(
            position=3,
            clock_ms=T0 + 500,
            live_actors=(("toy", ("client-aaaa", "client-bbbbbbbb")),),
        )
    with LogReader(path) as reader:
        # The key is a column of the log: each keyed session reads as itself.
        assert [r.position for r in reader.read_keyed_session("client-aaaa")] == [1, 3, 4]
        assert {r.session_key for r in reader.read(0, 10)} == {"client-aaaa", "client-bbbbbbbb", ""}

    rebuilt = ToyTable(tmp_path / "rebuilt.db")
    with LogReader(path) as reader, LogReader(path) as history:
        fresh = Supervisor(
            history=history_from_reader(history), sink=rebuilt.sink, registry=registry
        )
        await fresh.run_until(reader, reader.head(), chunk_size=3)
    assert live.rows() == TOY_ROWS
    assert rebuilt.rows() == live.rows()
    assert rebuilt.conn.execute("SELECT upto FROM checkpoint").fetchone() == (len(TOY_RECORDS),)


async def test_a_keyed_type_needs_a_history_that_reads_by_key() -> None:
    log = MemoryLog([])
    registry = ActorRegistry([WEB_ACTOR_TYPE, TOY])
    with pytest.raises(ValueError, match="'toy' reads its history by session key"):
        Supervisor(history=log_history(log), sink=CollectingSink(), registry=registry)
    # A supervisor without keyed types takes any session history, as before.
    Supervisor(
        history=log_history(log),
        sink=CollectingSink(),
        registry=ActorRegistry([WEB_ACTOR_TYPE, MOBILE_ACTOR_TYPE]),
    )


def log_history(log: MemoryLog) -> SessionHistory:
    """A plain session-id history (not a :class:`ReaderHistory`)."""

    async def history(session_id: int, before: int) -> Sequence[LogRecord]:
        return log.read_session(session_id, before)

    return history


async def test_resume_point_knows_the_live_actors_of_every_type() -> None:
    # A second id-named type beside the web one (the mobile kinds), resumed by session id too.
    mobile = ActorType(
        name="mobile",
        kinds={RecordKind.MOBILE_BATCH},
        key_of=lambda record: record.session_id,
        new_state=_new_client_state,
        inactivity_timeout_ms=5_000,
    )
    registry = ActorRegistry([WEB_ACTOR_TYPE, TOY, mobile])
    mobile_record = attrs.evolve(
        toy_record("x" * 8, T0 + TIMEOUT + 2_000), session_id=9, session_key=""
    )
    records = mixed_log() + commit(
        [attrs.evolve(mobile_record, kind=RecordKind.MOBILE_BATCH)], first_position=8
    )
    log = MemoryLog(records)
    # At 5 the clock is T0 + 40: both clients are live (1 s), and the web session (150 s).
    assert await resume_point(log, 5, TIMEOUT, registry) == ResumePoint(
        position=5,
        clock_ms=T0 + 40,
        live_sessions=(1,),
        live_actors=(("toy", ("client-aaaa", "client-bbbbbbbb")),),
    )
    # At 6 (T0 + 2 040) only a is within the toy timeout.
    assert (await resume_point(log, 6, TIMEOUT, registry)).live_actors == (
        ("toy", ("client-aaaa",)),
    )
    # At 8 the web session is over: b (its record 7 is 1 s old) and the mobile session are live.
    assert await resume_point(log, 8, TIMEOUT, registry) == ResumePoint(
        position=8,
        clock_ms=T0 + TIMEOUT + 2_000,
        live_sessions=(),
        live_actors=(("toy", ("client-bbbbbbbb",)), ("mobile", (9,))),
    )
    # A registry without the toy's kind answers as before (the default one parks its records).
    web_only = ActorRegistry([WEB_ACTOR_TYPE, MOBILE_ACTOR_TYPE])
    assert await resume_point(log, 5, TIMEOUT, web_only) == ResumePoint(
        position=5, clock_ms=T0 + 40, live_sessions=(1,)
    )
