"""Replay benchmark (issue 13): the replay stream of a long session and the player's seeks.

One web session of ``minutes`` (30) minutes with ``dom_messages`` (200,000) DOM messages (elements
made, texts set, attributes changed, nodes removed, a batch every 5 s), built with our encoder and
appended through ``EventLog.append_many``, projected by ``replayd rebuild``. Measured:

* ``GET /api/v1/{key}/sessions/{id}/replay`` (uncompressed): the time to the first line (the
  header: the stream's first pass over every record is before it) and to the end of the stream,
  next to the time to read the same records from the log (``EventLog.read_session_page``, the
  route's page size) in the same run.
* The dashboard's player in Chromium (``/projects/{key}/sessions/{id}``, signed in): the
  ``window.replayd.seek`` promise from the start to the end (every item applied, the reference)
  and then back to 1 s after the start (a backward seek rebuilds from the page's document).
  Needs Playwright (the ``test`` extra) and Debian's chromium; without them the row says so.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import trio
from benchlib import batches, common, rebuild
from benchlib.common import log

from engine.codec import web
from engine.codec import web_messages as m

BATCH_EVERY_MS = 5_000
LIVE_NODES = 2_000  # nodes kept in the page; older ones are removed as new ones come
VIEWER_EMAIL = "bench@example.test"
CHROMIUM = os.environ.get("REPLAYD_E2E_CHROMIUM", "/usr/bin/chromium")
PAGE_RECORDS = 64  # api.public_v1_replay's page size


@attrs.frozen
class ReplaySettings:
    minutes: int = 30
    dom_messages: int = 200_000


@attrs.frozen
class ReplayResult:
    minutes: int
    dom_messages: int
    records: int
    log_read_s: float  # the reference: every record of the session read from the log
    first_line_s: float
    stream_s: float
    stream_bytes: int
    stream_lines: int
    seek_forward_ms: float | None  # start -> end in the player
    seek_backward_ms: float | None  # end -> 1 s in the player
    player_note: str = ""


def _dom_messages(count: int, first_id: int) -> Iterator[m.WebMessage]:
    """``count`` DOM changes: a list item with a text, its class, later its removal."""
    node = first_id
    made = 0
    while made < count:
        yield m.CreateElementNode(node, 2, node % 50, "LI", False)
        yield m.CreateTextNode(node + 1, node, 0)
        yield m.SetNodeData(node + 1, f"row {node}")
        yield m.SetNodeAttribute(node, "class", f"row r{node % 7}")
        made += 4
        if node - first_id >= 2 * LIVE_NODES:
            yield m.RemoveNode(node - 2 * LIVE_NODES)
            made += 1
        node += 2


def session_records(project_id: int, session_id: int, s: ReplaySettings, ts: int) -> Iterator:
    """The start, a first batch with the document, then one batch every 5 s of DOM changes."""
    yield rebuild.start_record(project_id, session_id, ts, 0)
    batches_n = s.minutes * 60_000 // BATCH_EVERY_MS
    per_batch = max(1, s.dom_messages // batches_n)
    changes = _dom_messages(s.dom_messages, 100)
    for seq in range(batches_n):
        at = ts + seq * BATCH_EVERY_MS
        msgs: list[m.WebMessage] = [
            m.BatchMetadata(1, 0, seq * 10_000, at, batches.PAGE_URL),
            m.Timestamp(at),
            m.TabData(batches.TAB_ID),
        ]
        if seq == 0:
            msgs += [
                m.SetPageLocation(batches.PAGE_URL, "", at, "Bench"),
                m.SetViewportSize(1280, 800),
                m.CreateDocument(),
                m.CreateElementNode(1, 0, 0, "HEAD", False),
                m.CreateElementNode(2, 0, 1, "BODY", False),
            ]
        for i in range(per_batch):
            if i % 100 == 0:
                msgs.append(m.Timestamp(at + i * BATCH_EVERY_MS // per_batch))
            msg = next(changes, None)
            if msg is None:
                break
            msgs.append(msg)
        yield rebuild.batch_record(project_id, session_id, at, seq + 1, web.encode_batch(msgs))


async def _read_session(db: Path, session_id: int) -> tuple[int, float]:
    from storage.log import EventLog

    event_log = EventLog(db)
    records = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(event_log.run)
        t0 = time.perf_counter()
        after = 0
        while page := await event_log.read_session_page(
            session_id, after=after, limit=PAGE_RECORDS
        ):
            records += len(page)
            after = page[-1].position
        seconds = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return records, seconds


def _stream(port: int, path: str, api_key: str) -> tuple[float, float, int, int]:
    """(s to the first line, s to the end, bytes, lines) of one uncompressed replay stream."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": api_key})
        answer = conn.getresponse()
        if answer.status != 200:
            raise RuntimeError(f"replay: HTTP {answer.status} {answer.read()[:200]!r}")
        first = answer.readline()
        first_s = time.perf_counter() - t0
        json.loads(first)  # the header line parses alone
        size, lines = len(first), 1
        while line := answer.readline():
            size += len(line)
            lines += 1
        return first_s, time.perf_counter() - t0, size, lines
    finally:
        conn.close()


def _player_seeks(port: int, project_key: str, session_id: int, password: str) -> tuple:
    """(forward ms, backward ms, note) measured by the page's own clock."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, None, "Playwright is not installed (the `test` extra)"
    if not Path(CHROMIUM).exists():
        return None, None, f"no Chromium at {CHROMIUM}"
    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context()
            answer = context.request.post(
                f"{base}/auth/login",
                data=json.dumps({"email": VIEWER_EMAIL, "password": password}),
                headers={"Content-Type": "application/json"},
            )
            if answer.status != 200:
                raise RuntimeError(f"login: HTTP {answer.status} {answer.text()[:200]}")
            page = context.new_page()
            page.goto(f"{base}/projects/{project_key}/sessions/{session_id}")
            page.wait_for_function("() => window.replayd !== undefined", timeout=60_000)
            page.evaluate("window.replayd.seek(0)")  # resolves once the whole stream is in
            timed = """async (ms) => {
                const t0 = performance.now();
                await window.replayd.seek(ms);
                return performance.now() - t0;
            }"""
            end = page.evaluate("window.replayd.state().duration")
            forward = float(page.evaluate(timed, end))
            backward = float(page.evaluate(timed, 1000))
        finally:
            browser.close()
    return forward, backward, ""


def run(s: ReplaySettings) -> ReplayResult:
    from engine.ids import FlakeIdGenerator

    with tempfile.TemporaryDirectory(prefix="replayd-bench-") as tmp:
        db = Path(tmp) / "replay.db"
        keys = common.create_keys(db)
        password = common.replayd("user", "create", VIEWER_EMAIL, "--db", str(db))[-1].strip()
        ts = int(time.time() * 1000) - 86_400_000
        sid = FlakeIdGenerator(shard=13).next_id(ts)
        rebuild.append_records(db, session_records(keys.project_id, sid, s, ts), chunk=50)
        rebuild.run_rebuild(db)
        records, read_s = trio.run(_read_session, db, sid)
        log(f"replay: {records:,} records of the session read from the log in {read_s:.2f} s")
        path = f"/api/v1/{keys.project_key}/sessions/{sid}/replay"
        with common.replayd_server(db) as (_child, port):
            _stream(port, path, keys.api_key)  # warm-up (page cache, imports)
            first_s, stream_s, size, lines = _stream(port, path, keys.api_key)
            log(f"replay: first line {first_s:.2f} s, end {stream_s:.2f} s, {lines:,} lines")
            forward, backward, note = _player_seeks(port, keys.project_key, sid, password)
    return ReplayResult(
        minutes=s.minutes,
        dom_messages=s.dom_messages,
        records=records,
        log_read_s=read_s,
        first_line_s=first_s,
        stream_s=stream_s,
        stream_bytes=size,
        stream_lines=lines,
        seek_forward_ms=forward,
        seek_backward_ms=backward,
        player_note=note,
    )
