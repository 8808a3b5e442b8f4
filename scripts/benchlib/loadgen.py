"""Load generator: N simulated web trackers on keep-alive HTTP/1.1 raw sockets, in its own process.

Each tracker does what the real one does on the wire: ``POST /v1/web/start`` once, then uploads
batches to ``/v1/web/i`` with ``Authorization: Bearer``, ``DataType: player``, one batch in flight,
on one keep-alive connection. Everything runs in one ``selectors`` (epoll) loop of non-blocking
sockets: no HTTP library, no framework, so a request costs the generator a few tens of
microseconds and the server under test is the bottleneck (the driver checks this by comparing the
ceiling server's figures with replayd's and by reporting the generator's own CPU use).

Protocol with the driver (``python -m benchlib.loadgen``): one JSON line on stdin (a
:class:`LoadSpec`), ``READY`` on stdout once every tracker has a session, then ``GO`` on stdin
starts the timed run; the result is one JSON line on stdout (:class:`LoadResult`). Bounded: the run
stops after ``warmup_s + duration_s`` or ``max_requests``, whichever comes first.
"""

from __future__ import annotations

import array
import json
import selectors
import socket
import sys
import time

import attrs


@attrs.define(kw_only=True)
class LoadSpec:
    """What one generator process does."""

    host: str = "127.0.0.1"
    port: int
    prefix: str = ""  # ingest path prefix, e.g. "/ingest"
    project_key: str
    trackers: int = 32
    body_size: int = 1024
    warmup_s: float = 1.0
    duration_s: float = 5.0
    max_requests: int = 2_000_000
    seed: int = 0  # distinguishes generator processes (user ids, batch contents)
    # "batches": start once per tracker, then upload (the ingest benchmark);
    # "starts" / "mobile-starts": each tracker posts new-session starts back to back on its
    # connection (web: the tracker's body; mobile: the SDK's), measured like the uploads;
    # "sessions": each tracker starts ``sessions / trackers`` sessions one after the other, each
    # with one first batch, and leaves them live (the live-session benchmarks)
    mode: str = "batches"
    sessions: int = 0


@attrs.define(kw_only=True)
class LoadResult:
    """What one generator process measured inside the timed window (warm-up excluded)."""

    requests: int  # acknowledged (2xx) uploads completed inside the window
    body_bytes: int  # their body bytes
    messages: int  # tracker messages in them
    errors: dict[str, int]  # non-2xx statuses and connection errors, by name
    window_s: float
    cpu_s: float  # the generator's own CPU time during the window
    lat_us: list[int]  # latency of each acknowledged upload, microseconds
    sessions: list[str]  # session ids handed out by /v1/web/start


class HTTPError(Exception):
    """The server answered something this client cannot parse."""


def parse_response(buf: bytearray) -> tuple[int, bytes, int] | None:
    """Parse one HTTP/1.1 response at the start of ``buf``.

    Returns ``(status, body, consumed_bytes)``, or ``None`` if more bytes are needed. Handles
    ``Content-Length`` and ``Transfer-Encoding: chunked`` (no trailers); no body otherwise.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    if not head.startswith(b"http/1."):
        raise HTTPError(f"not an HTTP/1.x response: {bytes(buf[:40])!r}")
    try:
        status = int(head[9:12])
    except ValueError as exc:
        raise HTTPError(f"bad status line: {bytes(buf[:40])!r}") from exc
    start = end + 4
    i = head.find(b"\ncontent-length:")
    if i >= 0:
        j = head.find(b"\r", i + 16)
        length = int(head[i + 16 : j if j >= 0 else len(head)])
        if len(buf) < start + length:
            return None
        return status, bytes(buf[start : start + length]), start + length
    if b"\ntransfer-encoding: chunked" in head:
        body = bytearray()
        pos = start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                if len(buf) < pos + 2:
                    return None
                return status, bytes(body), pos + 2
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos : pos + size]
            pos += size + 2
    return status, b"", start


def request_bytes(
    method: str, path: str, host: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """Serialize a request head (and body) the way a browser's fetch would send it."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# Headers a Chrome tab sends with the tracker's fetch (same for the ceiling and for replayd).
_BROWSER_HEADERS = [
    ("User-Agent", ""),  # filled from batches.USER_AGENT
    ("Accept", "*/*"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Origin", "https://shop.example.com"),
    ("Referer", "https://shop.example.com/"),
    ("Sec-Fetch-Mode", "cors"),
    ("Sec-Fetch-Site", "cross-site"),
]


def mobile_start_body(project_key: str, user_id: str) -> bytes:
    """The JSON of a first ``/v1/mobile/start`` of the iOS SDK (MOBILE.md 2.2)."""
    return json.dumps(
        {
            "projectKey": project_key,
            "trackerVersion": "1.0.15",
            "revID": "rev-1",
            "userUUID": "",
            "userOSVersion": "17.4",
            "userDevice": "iPhone15,2",
            "userDeviceType": "mobile",
            "timestamp": int(time.time() * 1000),
            "timezone": "UTC+01:00",
            "deviceMemory": 6144,
            "doNotRecord": False,
            "platform": "ios",
            "width": 393,
            "height": 852,
            "userID": user_id,
        },
        separators=(",", ":"),
    ).encode()


def start_body(project_key: str, user_id: str) -> bytes:
    """The JSON of a first ``/v1/web/start`` (PROTOCOL.md 3.1, field order of the tracker)."""
    return json.dumps(
        {
            "userUUID": None,
            "projectKey": project_key,
            "revID": "rev-1",
            "trackerVersion": "19.0.1",
            "isSnippet": False,
            "timestamp": int(time.time() * 1000),
            "doNotRecord": False,
            "bufferDiff": 0,
            "userID": user_id,
            "deviceMemory": 8192,
            "jsHeapSizeLimit": 4395630592,
            "timezone": "UTC+01:00",
            "assistOnly": False,
            "width": 1280,
            "height": 800,
            "referrer": "https://www.example.org/",
        },
        separators=(",", ":"),
    ).encode()


class _Tracker:
    """One simulated tracker: a socket, its parser buffer and where it is in its session."""

    __slots__ = (
        "busy",
        "first_index",
        "idx",
        "inbuf",
        "out",
        "sent_ns",
        "seq",
        "session_id",
        "sock",
        "token",
    )

    def __init__(self, idx: int, sock: socket.socket):
        self.idx = idx
        self.sock = sock
        self.inbuf = bytearray()
        self.out: memoryview | None = None
        self.token = ""
        self.session_id = ""
        self.seq = 0
        self.first_index = 0
        self.sent_ns = 0
        self.busy = False


class LoadGenerator:
    """Drives ``spec.trackers`` trackers against one server; see the module docstring."""

    def __init__(self, spec: LoadSpec):
        from benchlib import batches  # imported here: the encoder is only needed in this process

        self.spec = spec
        self.batches = batches
        self.sel = selectors.DefaultSelector()
        self.hostport = f"{spec.host}:{spec.port}"
        ua = batches.USER_AGENT
        self.headers = [(k, ua if k == "User-Agent" else v) for k, v in _BROWSER_HEADERS]
        self.trackers: list[_Tracker] = []
        # one tail per tracker (distinct DOM per page), encoded once
        self.tails: list[bytes] = []
        self.msgs_per_batch: list[int] = []

    # -- sockets -------------------------------------------------------------------------------

    def _connect(self, idx: int) -> _Tracker:
        sock = socket.create_connection((self.spec.host, self.spec.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        t = _Tracker(idx, sock)
        self.sel.register(sock, selectors.EVENT_READ, t)
        return t

    def _send(self, t: _Tracker, data: bytes) -> None:
        t.busy = True
        t.sent_ns = time.perf_counter_ns()
        try:
            n = t.sock.send(data)
        except BlockingIOError:
            n = 0
        if n < len(data):
            t.out = memoryview(data)[n:]
            self.sel.modify(t.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, t)

    def _flush(self, t: _Tracker) -> None:
        assert t.out is not None
        try:
            n = t.sock.send(t.out)
        except BlockingIOError:
            return
        t.out = t.out[n:]
        if not len(t.out):
            t.out = None
            self.sel.modify(t.sock, selectors.EVENT_READ, t)

    def _batch_request(self, t: _Tracker) -> bytes:
        t.seq += 1
        header = self.batches.encode_header(0, t.first_index, int(time.time() * 1000))
        tail = self.tails[t.idx]
        body = header + tail
        t.first_index += self.msgs_per_batch[t.idx]
        path = f"{self.spec.prefix}/v1/web/i?batch=0_{t.seq}_{len(body)}_kno"
        return request_bytes(
            "POST",
            path,
            self.hostport,
            [("Authorization", f"Bearer {t.token}"), ("DataType", "player"), *self.headers],
            body,
        )

    # -- phases --------------------------------------------------------------------------------

    def _start_request(self, t: _Tracker) -> bytes:
        """A new session's start (no token), of the web tracker or of the mobile SDK."""
        spec = self.spec
        mobile = spec.mode == "mobile-starts"
        body = (mobile_start_body if mobile else start_body)(
            spec.project_key, f"user-{spec.seed}-{t.idx}"
        )
        return request_bytes(
            "POST",
            f"{spec.prefix}/v1/{'mobile' if mobile else 'web'}/start",
            self.hostport,
            [("Content-Type", "application/json"), *self.headers],
            body,
        )

    def _reconnect(self, t: _Tracker) -> None:
        """Replace a connection the server closed (idle keep-alive timeout, or an error)."""
        self.sel.unregister(t.sock)
        t.sock.close()
        fresh = self._connect(t.idx)
        t.sock, t.inbuf, t.out = fresh.sock, bytearray(), None
        self.sel.modify(t.sock, selectors.EVENT_READ, t)

    def _pump(self, on_response, on_closed, timeout: float = 0.05) -> None:
        for key, mask in self.sel.select(timeout):
            t: _Tracker = key.data
            if mask & selectors.EVENT_WRITE and t.out is not None:
                try:
                    self._flush(t)
                except OSError:
                    self._reconnect(t)
                    on_closed(t)
                    continue
            if mask & selectors.EVENT_READ:
                try:
                    data = t.sock.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._reconnect(t)
                    on_closed(t)
                    continue
                t.inbuf += data
                while True:
                    parsed = parse_response(t.inbuf)
                    if parsed is None:
                        break
                    status, body, used = parsed
                    del t.inbuf[:used]
                    t.busy = False
                    on_response(t, status, body)

    def start_sessions(self) -> None:
        """Open one connection per tracker and start a session on each (not timed)."""
        spec = self.spec
        for i in range(spec.trackers):  # encode first: an idle connection would time out
            batch = self.batches.make_batch(spec.body_size, seed=spec.seed * 10_000 + i)
            self.tails.append(batch.tail)
            self.msgs_per_batch.append(batch.messages)
        self.trackers = [self._connect(i) for i in range(spec.trackers)]
        pending = set(range(spec.trackers))

        def on_start(t: _Tracker, status: int, body: bytes) -> None:
            if status != 200:
                raise HTTPError(f"/v1/web/start answered {status}: {body[:200]!r}")
            answer = json.loads(body)
            t.token, t.session_id = answer["token"], str(answer["sessionID"])
            pending.discard(t.idx)

        def send_start(t: _Tracker) -> None:
            self._send(
                t,
                request_bytes(
                    "POST",
                    f"{spec.prefix}/v1/web/start",
                    self.hostport,
                    [("Content-Type", "application/json"), *self.headers],
                    start_body(spec.project_key, f"user-{spec.seed}-{t.idx}"),
                ),
            )

        def on_closed(t: _Tracker) -> None:
            if t.idx in pending:
                send_start(t)

        for t in self.trackers:
            send_start(t)
        deadline = time.monotonic() + 60
        while pending:
            if time.monotonic() > deadline:
                raise HTTPError(f"{len(pending)} sessions did not start within 60 s")
            self._pump(on_start, on_closed)

    def run(self) -> LoadResult:
        """Upload batches, one in flight per tracker, for warm-up + duration; measure the window."""
        spec = self.spec
        lat = array.array("I")
        errors: dict[str, int] = {}
        counters = {"requests": 0, "bytes": 0, "messages": 0, "sent": 0}
        now = time.perf_counter_ns()
        win_start = now + int(spec.warmup_s * 1e9)
        win_end = win_start + int(spec.duration_s * 1e9)
        cpu = {"start": 0.0, "end": 0.0}
        body_len = {t.idx: 0 for t in self.trackers}

        def send_next(t: _Tracker) -> None:
            if counters["sent"] >= spec.max_requests:
                return
            req = self._batch_request(t) if spec.mode == "batches" else self._start_request(t)
            body_len[t.idx] = len(req) - req.find(b"\r\n\r\n") - 4
            counters["sent"] += 1
            self._send(t, req)

        def on_batch(t: _Tracker, status: int, body: bytes) -> None:
            done = time.perf_counter_ns()
            if win_start <= t.sent_ns and done <= win_end:
                if 200 <= status < 300:
                    counters["requests"] += 1
                    counters["bytes"] += body_len[t.idx]
                    if self.msgs_per_batch:  # none for starts
                        counters["messages"] += self.msgs_per_batch[t.idx]
                    lat.append((done - t.sent_ns) // 1000)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
            if status == 401:
                raise HTTPError("token rejected (401) during the run")
            if done < win_end:
                send_next(t)

        def on_closed(t: _Tracker) -> None:
            # an idle close before the first upload is normal; mid-request it is an error
            if t.busy:
                if t.sent_ns >= win_start:
                    errors["closed"] = errors.get("closed", 0) + 1
                t.busy = False
            if time.perf_counter_ns() < win_end:
                send_next(t)

        # connections that idled out while waiting for GO are replaced before the first upload
        for key, _mask in self.sel.select(0):
            t = key.data
            try:
                alive = t.sock.recv(1, socket.MSG_PEEK) != b""
            except (BlockingIOError, InterruptedError):
                alive = True
            except OSError:
                alive = False
            if not alive:
                self._reconnect(t)
        for t in self.trackers:
            send_next(t)
        cpu_marked = False
        while True:
            now = time.perf_counter_ns()
            if not cpu_marked and now >= win_start:
                cpu["start"], cpu_marked = time.process_time(), True
            if now >= win_end and not any(t.busy for t in self.trackers):
                break
            if now >= win_end + 30_000_000_000:
                errors["unfinished"] = sum(t.busy for t in self.trackers)
                break
            self._pump(on_batch, on_closed)
        cpu["end"] = time.process_time()
        return LoadResult(
            requests=counters["requests"],
            body_bytes=counters["bytes"],
            messages=counters["messages"],
            errors=errors,
            window_s=spec.duration_s,
            cpu_s=cpu["end"] - cpu["start"],
            lat_us=list(lat),
            sessions=[t.session_id for t in self.trackers],
        )

    def run_sessions(self) -> LoadResult:
        """Start ``spec.sessions`` sessions, each with one first batch (user id, metadata, page)."""
        spec = self.spec
        lat = array.array("I")
        errors: dict[str, int] = {}
        started: list[str] = []
        state = {"launched": 0, "done": 0}
        t_begin, cpu0 = time.perf_counter_ns(), time.process_time()

        def send_start(t: _Tracker) -> None:
            if state["launched"] >= spec.sessions:
                return
            state["launched"] += 1
            t.token = ""
            self._send(
                t,
                request_bytes(
                    "POST",
                    f"{spec.prefix}/v1/web/start",
                    self.hostport,
                    [("Content-Type", "application/json"), *self.headers],
                    start_body(spec.project_key, f"user-{spec.seed}-{state['launched']}"),
                ),
            )

        def on_response(t: _Tracker, status: int, body: bytes) -> None:
            lat.append((time.perf_counter_ns() - t.sent_ns) // 1000)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
                send_start(t)
                return
            if not t.token:  # the start answered: send the session's first batch
                answer = json.loads(body)
                t.token, t.session_id = answer["token"], str(answer["sessionID"])
                n = len(started)
                started.append(t.session_id)
                payload = self.batches.live_batch(
                    n, int(time.time() * 1000), user_id=f"user-{spec.seed}-{n}"
                )
                self._send(
                    t,
                    request_bytes(
                        "POST",
                        f"{spec.prefix}/v1/web/i?batch=0_1_{len(payload)}_kno",
                        self.hostport,
                        [
                            ("Authorization", f"Bearer {t.token}"),
                            ("DataType", "player"),
                            *self.headers,
                        ],
                        payload,
                    ),
                )
            else:
                state["done"] += 1
                send_start(t)

        def on_closed(t: _Tracker) -> None:
            if t.busy:
                errors["closed"] = errors.get("closed", 0) + 1
                t.busy = False
            send_start(t)

        for t in self.trackers:
            send_start(t)
        deadline = time.monotonic() + spec.duration_s
        while any(t.busy for t in self.trackers):
            if time.monotonic() > deadline:
                errors["unfinished"] = sum(t.busy for t in self.trackers)
                break
            self._pump(on_response, on_closed)
        window = (time.perf_counter_ns() - t_begin) / 1e9
        return LoadResult(
            requests=len(lat),
            body_bytes=0,
            messages=0,
            errors=errors,
            window_s=window,
            cpu_s=time.process_time() - cpu0,
            lat_us=list(lat),
            sessions=started,
        )

    def close(self) -> None:
        for t in self.trackers:
            self.sel.unregister(t.sock)
            t.sock.close()
        self.sel.close()


def main() -> None:
    """Entry point of the generator process (see the module docstring for the protocol)."""
    spec = LoadSpec(**json.loads(sys.stdin.readline()))
    gen = LoadGenerator(spec)
    try:
        if spec.mode == "sessions":
            gen.trackers = [gen._connect(i) for i in range(spec.trackers)]
            print("READY", flush=True)
            if sys.stdin.readline().strip() != "GO":
                return
            result = gen.run_sessions()
        elif spec.mode in ("starts", "mobile-starts"):
            gen.trackers = [gen._connect(i) for i in range(spec.trackers)]
            print("READY", flush=True)
            if sys.stdin.readline().strip() != "GO":
                return
            result = gen.run()
        else:
            gen.start_sessions()
            print("READY", flush=True)
            if sys.stdin.readline().strip() != "GO":
                return
            result = gen.run()
    finally:
        gen.close()
    print(json.dumps(attrs.asdict(result)), flush=True)


if __name__ == "__main__":
    main()
