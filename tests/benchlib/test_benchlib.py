"""Tests of the benchmark harness's own logic (scripts/benchlib): HTTP framing of the load
generator, the encoder-made batches, the statistics and the report table, and one short run of
the load generator against the real ceiling server. No timing is asserted (figures belong in
``scripts/bench``)."""

from __future__ import annotations

import random
import sys
from itertools import pairwise
from pathlib import Path

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from benchlib import batches, common, hostile, ingest, memory, report, stalls, starts
from benchlib.loadgen import (
    HTTPError,
    LoadGenerator,
    LoadResult,
    LoadSpec,
    parse_response,
    request_bytes,
    start_body,
)

from engine.codec import web
from engine.codec import web_messages as m

# -- HTTP framing ------------------------------------------------------------------------------


def _response(body: bytes, chunked: bool = False, status: int = 200) -> bytes:
    if not chunked:
        return (
            f"HTTP/1.1 {status} \r\ncontent-type: text/plain\r\ncontent-length: {len(body)}"
            "\r\nserver: hypercorn-h11\r\n\r\n"
        ).encode() + body
    parts = b"".join(
        f"{len(body[i : i + 5]):x}\r\n".encode() + body[i : i + 5] + b"\r\n"
        for i in range(0, len(body), 5)
    )
    return (
        (f"HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        + parts
        + b"0\r\n\r\n"
    )


@given(body=st.binary(max_size=300), chunked=st.booleans(), cut=st.integers(min_value=0))
def test_parse_response_needs_the_whole_response_and_consumes_exactly_it(body, chunked, cut):
    raw = _response(body, chunked) + b"HTTP/1.1 204"  # the start of a pipelined next response
    whole = len(raw) - len(b"HTTP/1.1 204")
    cut = cut % whole
    assert parse_response(bytearray(raw[:cut])) is None
    status, got, used = parse_response(bytearray(raw))
    assert (status, got, used) == (200, body, whole)


def test_parse_response_reads_the_status_and_an_empty_body():
    assert parse_response(bytearray(b"HTTP/1.1 401 \r\ncontent-length: 0\r\n\r\n")) == (
        401,
        b"",
        36,
    )
    assert parse_response(bytearray(b"HTTP/1.1 503 \r\nretry-after: 1\r\n\r\n"))[0] == 503


def test_parse_response_refuses_what_is_not_http():
    with pytest.raises(HTTPError):
        parse_response(bytearray(b"SSH-2.0-OpenSSH\r\n\r\n"))


def test_requests_are_valid_http11_for_a_real_parser():
    body = start_body("key123", "user-1")
    raw = request_bytes(
        "POST", "/v1/web/start", "127.0.0.1:8080", [("Content-Type", "application/json")], body
    )
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    req = conn.next_event()
    assert isinstance(req, h11.Request)
    assert req.method == b"POST" and req.target == b"/v1/web/start"
    assert dict(req.headers)[b"content-length"] == str(len(body)).encode()
    data = conn.next_event()
    assert isinstance(data, h11.Data) and data.data == body
    assert isinstance(conn.next_event(), h11.EndOfMessage)


# -- batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1024, 16384, 65536])
def test_batches_have_the_asked_size_and_decode_with_our_codec(size):
    batch = batches.make_batch(size, seed=3)
    body = batches.encode_header(0, 4242, 1_795_418_019_299) + batch.tail
    assert size - 200 < len(body) <= size + 8  # the header grows by a byte or two with first_index
    decoded = web.decode_batch(body)
    assert len(decoded) == batch.messages
    assert isinstance(decoded[0], m.BatchMetadata) and decoded[0].first_index == 4242
    kinds = {type(msg) for msg in decoded}
    assert {m.Timestamp, m.TabData, m.CreateElementNode, m.MouseMove} <= kinds
    dom = sum(
        isinstance(
            msg,
            (
                m.CreateElementNode,
                m.CreateTextNode,
                m.SetNodeData,
                m.SetNodeAttribute,
                m.SetNodeAttributeDictGlobal,
                m.StringDictGlobal,
                m.RemoveNode,
            ),
        )
        for msg in decoded
    )
    assert dom > len(decoded) // 3  # mostly DOM, like the real tracker


def test_big_batches_carry_a_few_session_events():
    decoded = web.decode_batch(batches.encode_header(0, 0, 1) + batches.make_batch(65536, 1).tail)
    clicks = [msg for msg in decoded if isinstance(msg, m.MouseClick)]
    assert 0 < len(clicks) < len(decoded) // 50
    assert all(c.label for c in clicks)  # the tracker never sends an empty label
    assert any(isinstance(msg, m.InputChange) for msg in decoded)
    assert any(isinstance(msg, m.SetPageLocation) for msg in decoded)


def test_batches_differ_per_seed_and_repeat_per_seed():
    assert batches.make_batch(4096, seed=1) == batches.make_batch(4096, seed=1)
    assert batches.make_batch(4096, seed=1).tail != batches.make_batch(4096, seed=2).tail


def test_query_and_live_batches_hold_what_the_queries_look_for():
    events = web.decode_batch(batches.session_events_batch(7, 1_795_418_019_299, clicks=10))
    assert sum(isinstance(x, m.MouseClick) for x in events) == 10
    assert sum(isinstance(x, m.InputChange) for x in events) == 2
    live = web.decode_batch(batches.live_batch(12, 1_795_418_019_299, "user-1-12"))
    assert m.UserID(id="user-1-12") in live
    assert any(
        isinstance(x, m.SetPageLocation) and x.document_title.startswith("Item 12 ") for x in live
    )


# -- statistics and report ---------------------------------------------------------------------


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert common.percentile(values, 50) == 50
    assert common.percentile(values, 99) == 99
    assert common.percentile(values, 100) == 100
    assert common.percentile([3.0], 99) == 3.0
    assert common.percentile([], 50) == 0.0


def test_table_has_one_line_per_row_and_escapes_pipes():
    rows = [
        report.Row("Ingest", "a|b", "1 req/s", "ceiling: 2 req/s", "0.50x", ">= 0.90x", "MISS"),
        report.Row("Engine", "lag", "3 records"),
    ]
    lines = report.table(rows).splitlines()
    assert len(lines) == 4
    assert "a\\|b" in lines[2] and "**MISS**" in lines[2]
    assert lines[3].count(" | ") == len(report.HEADER) - 1


def test_rates_and_ratios_read_well():
    assert report.rate(1_234_567) == "1.23M/s"
    assert report.rate(45_600) == "46k/s"
    assert report.rate(1_500) == "1.5k/s"
    assert report.ratio(9, 10) == "0.90x"
    assert report.ratio(1, 0) == "n/a"


# -- the load generator against the real ceiling server ----------------------------------------


def test_load_generator_runs_trackers_against_the_ceiling_server():
    with common.ceiling_server() as (_child, port):
        gen = LoadGenerator(
            LoadSpec(
                port=port, project_key="k", trackers=3, body_size=2048, warmup_s=0.1, duration_s=0.5
            )
        )
        try:
            gen.start_sessions()
            result = gen.run()
        finally:
            gen.close()
    assert result.errors == {}
    assert result.requests > 0 and len(result.lat_us) == result.requests
    assert result.body_bytes > result.requests * 1500
    assert result.sessions == ["4117431117823344641"] * 3  # the ceiling's fixed answer


@pytest.mark.parametrize("mode", ["starts", "mobile-starts"])
def test_load_generator_posts_starts_back_to_back(mode):
    with common.ceiling_server() as (_child, port):
        gen = LoadGenerator(
            LoadSpec(
                port=port, project_key="k", trackers=2, warmup_s=0.1, duration_s=0.4, mode=mode
            )
        )
        try:
            gen.trackers = [gen._connect(i) for i in range(2)]
            result = gen.run()
        finally:
            gen.close()
    assert result.errors == {}
    assert result.requests > 2 and len(result.lat_us) == result.requests


# -- verdicts ----------------------------------------------------------------------------------


def _run(req: int, cpu: float = 0.05, lat_ms: float = 10.0, errors=None) -> common.LoadRun:
    result = LoadResult(
        requests=req * 5,
        body_bytes=req * 5 * 1024,
        messages=req * 5 * 50,
        errors=errors or {},
        window_s=5.0,
        cpu_s=cpu * 5,
        lat_us=[int(lat_ms * 1000)] * req * 5,
        sessions=[],
    )
    return common.LoadRun(results=[result], window_s=5.0, server_cpu_s=5.0)


def test_ingest_verdict_is_the_ratio_to_the_ceiling_per_size():
    cases = [
        ingest.IngestCase(1024, ceiling=_run(1000), replayd=_run(950), engine=None),
        ingest.IngestCase(65536, ceiling=_run(600), replayd=_run(300), engine=None),
    ]
    rows = report.ingest_rows(cases, trackers=32)
    assert [(r.ratio, r.result) for r in rows[:2]] == [("0.95x", "PASS"), ("0.50x", "MISS")]
    assert rows[2].measure == "load generator is not the bottleneck" and rows[2].result == "PASS"


def test_ingest_errors_or_a_busy_generator_do_not_pass():
    cases = [
        ingest.IngestCase(
            1024, ceiling=_run(1000), replayd=_run(990, errors={"503": 3}), engine=None
        )
    ]
    assert report.ingest_rows(cases, trackers=8)[0].result == "MISS"
    # replayd faster than the ceiling means the generator could not load the ceiling: suspect
    cases = [ingest.IngestCase(1024, ceiling=_run(500, cpu=0.9), replayd=_run(600), engine=None)]
    assert report.ingest_rows(cases, trackers=8)[-1].result == "CHECK"


def test_memory_verdicts_need_the_live_sessions_to_be_listed():
    base = dict(
        idle_rss=60_000_000,
        live_wanted=10_000,
        live_started=10_000,
        caught_up=True,
        floor_rss=45_000_000,
    )
    ok, missing, over = (
        memory.MemoryResult(live_rss=200_000_000, live_listed=10_000, **base),
        memory.MemoryResult(live_rss=200_000_000, live_listed=-1, **base),
        memory.MemoryResult(live_rss=310_000_000, live_listed=10_000, **base),
    )
    assert [r.result for r in report.memory_rows(ok)] == ["PASS", "PASS"]
    assert report.memory_rows(missing)[1].result == "CHECK"
    assert report.memory_rows(over)[1].result == "MISS"


def test_hostile_verdict_compares_the_attack_with_ordinary_bursts():
    def result(attacked_ms: float) -> hostile.HostileResult:
        return hostile.HostileResult(
            idle_ms=[3.0] * 98 + [8.0] * 2,
            ordinary_ms=[4.0] * 98 + [20.0] * 2,  # p99 (nearest rank) = 20
            attacked_ms=[4.0] * 98 + [attacked_ms] * 2,
            hostile_starts=80,
            hostile_statuses={"200": 80},
        )

    (row,) = report.hostile_rows(result(40.0))
    assert (row.ratio, row.result) == ("2.00x (p99)", "PASS")
    assert report.hostile_rows(result(41.0))[0].result == "MISS"
    assert "200: 80" in row.replayd


def test_hostile_agents_are_distinct_sized_and_start_like_chrome():
    rng = random.Random(1)
    agents = {hostile.hostile_agent(rng, 60_000) for _ in range(8)}
    assert len(agents) == 8
    assert all(len(a) == 60_000 and a.startswith(hostile.CHROME_UA) for a in agents)


# -- loop stalls -------------------------------------------------------------------------------


def test_stall_probe_counts_only_slow_probes_above_the_median() -> None:
    probe = stalls.Probe([1.0, 1.0, 2.0, 9.0, 41.0, 1.0, 1.0], seconds=2.0)
    assert (probe.p50, probe.max) == (1.0, 41.0)
    assert probe.stalled_ms_per_s == (41.0 - 1.0) / 2.0  # 9 ms is under STALL_MS: noise
    assert "max 41.0 ms" in probe.describe()


def test_big_session_records_hold_the_clicks_asked_for_with_distinct_message_ids() -> None:
    records = list(stalls._big_session_records(1, 77, 450, 1_700_000_000_000))
    assert records[0].kind.name == "WEB_START"
    starts: list[int] = []
    clicks = 0
    for record in records[1:]:
        messages = web.decode_batch(record.payload)
        meta = messages[0]
        assert isinstance(meta, m.BatchMetadata)
        starts.append(meta.first_index)
        clicks += sum(isinstance(x, m.MouseClick) for x in messages)
    assert clicks == 450 and len(records) == 1 + 3
    # Each batch's messages fit before the next batch's first index: no message id is shared.
    assert starts == sorted(starts) and min(b - a for a, b in pairwise(starts)) > 2 * 200 + 3


def test_start_verdict_is_the_ratio_to_the_fixed_answer_start():
    cases = [
        starts.StartCase("starts", ceiling=_run(800), replayd=_run(660)),
        starts.StartCase("mobile-starts", ceiling=_run(800), replayd=_run(600)),
    ]
    rows = report.start_rows(cases, trackers=32)
    assert [(r.ratio, r.result) for r in rows] == [("0.82x", "PASS"), ("0.75x", "MISS")]
    assert "/v1/mobile/start" in rows[1].measure


def _metric(name: str, value: float, **labels: str):
    return (name, tuple(sorted(labels.items()))), value


def test_statements_per_request_are_deltas_of_the_servers_counters():
    stmt, req = "replayd_sqlite_statements_total", "replayd_http_requests_total"
    before = dict(
        [
            _metric(req, 10, route="/v1/web/i", method="POST", status="200"),
            _metric(stmt, 100, connection="log writer", statement="INSERT"),
        ]
    )
    after = dict(
        [
            _metric(req, 110, route="/v1/web/i", method="POST", status="200"),
            _metric(req, 5, route="/v1/web/start", method="POST", status="200"),
            _metric(stmt, 200, connection="log writer", statement="INSERT"),
            _metric(stmt, 25, connection="log writer", statement="COMMIT"),
            _metric(stmt, 300, connection="projector", statement="INSERT"),
        ]
    )
    counts = starts._statements_between(before, after, "/v1/web/i")
    assert counts.requests == 100
    assert counts.per_connection == {"log writer": 1.25}
    assert counts.besides_append() == 0
    assert counts.engine == {"projector": 3.0}
    row = report.statement_rows([counts])[0]
    assert row.result == "PASS" and "log writer COMMIT 0.25" in row.replayd
    counts = starts._statements_between(
        before, {**after, **dict([_metric(stmt, 50, connection="catalog", statement="SELECT")])},
        "/v1/web/i",
    )  # fmt: skip
    assert counts.besides_append() == 0.5
    assert report.statement_rows([counts])[0].result == "MISS"


def test_metrics_lines_parse_into_named_labelled_samples():
    text = (
        "# HELP x y\n"
        'replayd_sqlite_statements_total{connection="log writer",statement="BEGIN"} 4.0\n'
        "process_open_fds 12.0\n"
    )
    assert starts.parse_metrics(text) == {
        (
            "replayd_sqlite_statements_total",
            (("connection", "log writer"), ("statement", "BEGIN")),
        ): 4.0
    }
