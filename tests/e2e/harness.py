"""Machinery of the end-to-end test against the real OpenReplay tracker in headless Chromium.

What lives here (the pytest fixtures wrapping it are in ``conftest.py``):
* the tracker bundle (built with ``npm ci`` + ``npm run build`` in this folder when missing);
* ``SiteServer``: a tiny static server for the test site on its own port (so that the tracker's
  requests to replayd are cross-origin and the CORS preflights really happen);
* ``ReplaydServer``: a real ``replayd serve`` subprocess on a free port, with its CLI for the
  project key and the API key;
* ``BrowserRun``: a fresh Chromium profile driven by Playwright's sync API, recording every
  request the page and the tracker's worker make (for assertions and the summary table).

The tests are plain (sync) functions: Playwright's sync API runs its own loop and must not be
called from inside ``trio.run``. Nothing here ever skips: a missing browser, npm or replayd is a
failure.
"""

from __future__ import annotations

import gzip
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import pytest

from api.config import default_projections_path

E2E_DIR = Path(__file__).resolve().parent
SITE_DIR = E2E_DIR / "site"
BUNDLE = SITE_DIR / "tracker.bundle.js"
# Debian's Chromium (CI installs it with apt); never a downloaded browser.
CHROMIUM = os.environ.get("REPLAYD_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set to a folder to dump every batch the tracker uploads (gunzipped) as .bin files; that is how
# tests/fixtures/real-tracker/ was made.
CAPTURE_DIR_ENV = "REPLAYD_E2E_CAPTURE_DIR"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(fetch: Callable[[], Any], timeout: float = 8.0, interval: float = 0.1) -> Any:
    """Call ``fetch`` until it returns something truthy (projection lag); return the last value.

    Bounded: after ``timeout`` seconds the last (falsy) value is returned and the caller's
    assertion fails with it.
    """
    deadline = time.monotonic() + timeout
    value = fetch()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = fetch()
    return value


# -- the tracker bundle --------------------------------------------------------------------------


def build_bundle() -> Path:
    """Build ``site/tracker.bundle.js`` from the pinned npm packages unless it already exists."""
    if BUNDLE.exists():
        return BUNDLE
    npm = shutil.which("npm")
    assert npm, "npm is needed to build the tracker bundle (apt-get install npm)"
    for args in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        proc = subprocess.run(
            [npm, *args], cwd=E2E_DIR, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"npm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    assert BUNDLE.exists(), "npm run build did not produce site/tracker.bundle.js"
    return BUNDLE


# -- the test site -------------------------------------------------------------------------------


class SiteServer:
    """Serves ``site/`` plus a per-run ``/config.js`` and ``files``; any unknown path is a 404."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.hits: list[tuple[str, int]] = []
        # Paths served from memory, which a test may change while the site runs: path ->
        # (content type, body). The asset cache test restyles the page this way.
        self.files: dict[str, tuple[str, bytes]] = {}
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(SITE_DIR), **kwargs)

            def do_GET(self) -> None:  # http.server names its handlers do_<METHOD>
                path = urlsplit(self.path).path
                if path in site.files:
                    site.hits.append((path, 200))
                    self._reply(200, *site.files[path])
                elif path == "/config.js":
                    body = f"window.E2E_CONFIG = {json.dumps(site.config)};\n".encode()
                    self._reply(200, "application/javascript", body)
                elif path == "/" or (SITE_DIR / path.lstrip("/")).is_file():
                    site.hits.append((path, 200))
                    super().do_GET()
                else:
                    # The page's failing fetch lands here: a real 404 for the tracker to record.
                    site.hits.append((path, 404))
                    self._reply(404, "application/json", b'{"error":"not found"}')

            def _reply(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def end_headers(self) -> None:
                # Reloads must refetch the pages (same session test relies on a real reload).
                # typeshed leaves out http.server's (private) buffer of the headers sent so far.
                sent = self._headers_buffer  # type: ignore[attr-defined]
                if not any(h.startswith(b"Cache-Control") for h in sent):
                    self.send_header("Cache-Control", "no-store")
                super().end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output for the summary table

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"  # bound to loopback above

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> SiteServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# -- replayd as a subprocess ---------------------------------------------------------------------


def replayd_command() -> list[str]:
    """The ``replayd`` console script next to the running interpreter (the venv's)."""
    script = Path(sys.executable).parent / "replayd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from api.cli import main; main()"]


class ReplaydServer:
    """A real ``replayd serve`` process on 127.0.0.1 with its own database in ``workdir``."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.db = workdir / "replayd.db"  # the log and the catalog
        # The projections' own file, where ``serve`` puts it by default (next to the log).
        self.projections_db = Path(default_projections_path(self.db))
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.log_path = workdir / "replayd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.project_key = ""
        self.api_key = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ingest_point(self) -> str:
        # The tracker appends /v1/web/...; replayd serves the ingest under /ingest like the
        # self-hosted OpenReplay deployment.
        return self.base_url + "/ingest"

    def cli(self, *args: str) -> str:
        """Run a ``replayd`` subcommand against this database; return its last stdout line."""
        proc = subprocess.run(
            [*replayd_command(), *args, "--db", str(self.db)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        assert proc.returncode == 0, (
            f"replayd {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        )
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        assert lines, f"replayd {' '.join(args)} printed nothing"
        return lines[-1]

    def setup(self, project_name: str = "e2e-shop") -> ReplaydServer:
        """Create the project and the organisation API key (before the server starts)."""
        self.project_key = self.cli("project", "create", project_name, "--create")
        self.api_key = self.cli("api-key", "create")
        return self

    def start(self, timeout: float = 30.0) -> ReplaydServer:
        cmd = [
            *replayd_command(),
            "serve",
            "--db",
            str(self.db),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"replayd serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"replayd serve did not listen within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, n: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def api(self) -> httpx.Client:
        """A client for the public API, authenticated with the organisation API key."""
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": self.api_key}, timeout=10.0
        )


# -- the browser ---------------------------------------------------------------------------------


@attrs.define
class SeenRequest:
    """One request the browser made, as Playwright reported it."""

    method: str
    url: str
    resource_type: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    response_body: bytes = b""  # kept only for /v1/web/start (the session id and token)
    failure: str | None = None
    request_header_bytes: int = 0
    request_body_bytes: int = 0
    response_header_bytes: int = 0
    response_body_bytes: int = 0

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @property
    def route(self) -> str:
        """Method and path without the query (the summary table's key)."""
        return f"{self.method} {urlsplit(self.url).path}"

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def decoded_body(self) -> bytes:
        """The body as the server sees it after undoing ``Content-Encoding: gzip``."""
        if self.body[:2] == b"\x1f\x8b":
            return gzip.decompress(self.body)
        return self.body


class RequestLog:
    """Collects every request of a browser context (pages and the tracker's web worker)."""

    def __init__(self) -> None:
        self._pending: list[Any] = []
        self.requests: list[SeenRequest] = []
        # The Playwright request behind each entry, kept alive so that its id() stays unique.
        self._sources: list[Any] = []
        self.start_bodies: dict[int, bytes] = {}  # id(Playwright request) -> /v1/web/start answer

    def attach(self, context: Any) -> None:
        def on_request(request: Any) -> None:
            self._pending.append(request)

        context.on("request", on_request)

    def collect(self) -> list[SeenRequest]:
        """Turn what was seen so far into ``SeenRequest`` rows (call after the scenario)."""
        for req in self._pending:
            self.requests.append(self._convert(req))
            self._sources.append(req)
        self._pending.clear()
        # A start's answer may arrive after its request was first collected.
        for seen, source in zip(self.requests, self._sources, strict=True):
            if not seen.response_body and id(source) in self.start_bodies:
                seen.response_body = self.start_bodies[id(source)]
        return self.requests

    @staticmethod
    def _convert(req: Any) -> SeenRequest:
        body = req.post_data_buffer or b""
        seen = SeenRequest(
            method=req.method,
            url=req.url,
            resource_type=req.resource_type,
            headers={k.lower(): v for k, v in req.headers.items()},
            body=body,
            request_body_bytes=len(body),
            failure=req.failure,
        )
        try:
            seen.headers = {k.lower(): v for k, v in req.all_headers().items()}
            sizes = req.sizes()
            seen.request_header_bytes = sizes["requestHeadersSize"]
            seen.request_body_bytes = sizes["requestBodySize"] or len(body)
            seen.response_header_bytes = sizes["responseHeadersSize"]
            seen.response_body_bytes = sizes["responseBodySize"]
            response = req.response()
            seen.status = response.status if response else None
        except Exception as exc:  # noqa: BLE001 - unload-time requests may have no response info
            seen.failure = seen.failure or f"{type(exc).__name__}: {exc}"
        return seen

    def to(self, origin: str) -> list[SeenRequest]:
        return [r for r in self.collect() if r.origin == origin]

    def batches(self, origin: str) -> list[SeenRequest]:
        return [r for r in self.to(origin) if r.method == "POST" and "/v1/web/i" in r.url]

    def starts(self, origin: str) -> list[SeenRequest]:
        return [
            r for r in self.to(origin) if r.method == "POST" and r.url.endswith("/v1/web/start")
        ]

    def summary(self, title: str, names: dict[str, str] | None = None) -> str:
        """A table of requests by (host, method, path): count, header bytes, body bytes, statuses.

        ``names`` maps an origin (``http://127.0.0.1:PORT``) to a short name for the host column.
        """
        names = names or {}
        rows: dict[tuple[str, str], list[SeenRequest]] = {}
        for r in self.collect():
            host = "blob (worker)" if r.url.startswith("blob:") else names.get(r.origin, r.origin)
            route = "GET <worker script>" if r.url.startswith("blob:") else r.route
            rows.setdefault((host, route), []).append(r)
        lines = [
            f"== {title}: requests made by the page and the tracker ==",
            f"{'host':<16} {'method path':<34} {'n':>3} {'req hdr B':>10} {'req body B':>11}"
            f" {'resp body B':>12}  statuses",
        ]
        for (host, route), reqs in sorted(rows.items()):
            statuses = sorted({str(r.status) if r.status is not None else "-" for r in reqs})
            lines.append(
                f"{host:<16} {route:<34} {len(reqs):>3}"
                f" {sum(r.request_header_bytes for r in reqs):>10}"
                f" {sum(r.request_body_bytes for r in reqs):>11}"
                f" {sum(max(r.response_body_bytes, 0) for r in reqs):>12}  {','.join(statuses)}"
            )
        for r in self.requests:
            if r.method == "POST" and "/v1/web/i" in r.url:
                lines.append(
                    f"  upload {urlsplit(r.url).query:<28}"
                    f" DataType={r.headers.get('datatype', '-')}"
                    f" encoding={r.headers.get('content-encoding', '-')} wire={len(r.body)} B"
                    f" decoded={len(r.decoded_body())} B status={r.status}"
                )
        gz = [r for r in self.requests if r.headers.get("content-encoding") == "gzip"]
        lines.append(
            f"gzip-encoded uploads: {len(gz)} ({sum(len(r.body) for r in gz)} B on the wire,"
            f" {sum(len(r.decoded_body()) for r in gz)} B decoded)"
        )
        return "\n".join(lines)


class BrowserRun:
    """Chromium with a fresh profile, one page, and the log of every request it made."""

    def __init__(self, playwright: Any, profile_dir: Path) -> None:
        try:
            self.context = playwright.chromium.launch_persistent_context(
                str(profile_dir),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
        except Exception as exc:  # noqa: BLE001 - the browser must start: fail loudly, never skip
            pytest.fail(f"Chromium ({CHROMIUM}) did not start: {exc}")
        self.requests = RequestLog()
        self.requests.attach(self.context)
        self.uploads_started = 0  # batch uploads the browser sent
        self.uploads_done = 0  # batch uploads that got an answer (or failed)
        self.context.on("request", self._on_request)
        self.context.on("requestfinished", self._on_done)
        self.context.on("requestfailed", self._on_done)
        self.page_errors: list[str] = []
        self.console: list[str] = []
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))

    def wait_tracker_started(self, timeout_ms: int = 15_000) -> dict[str, Any]:
        """Wait for the page's ``tracker.start()`` promise and return its result object."""
        self.page.wait_for_function("window.trackerStartResult !== undefined", timeout=timeout_ms)
        result = self.page.evaluate("window.trackerStartResult")
        assert result and result.get("success"), f"tracker.start() failed: {result}; {self.console}"
        return result

    def _on_request(self, request: Any) -> None:
        if request.method == "POST" and "/v1/web/i" in request.url:
            self.uploads_started += 1

    def _on_done(self, request: Any) -> None:
        if request.method == "POST" and "/v1/web/i" in request.url:
            self.uploads_done += 1
        elif request.url.endswith("/v1/web/start"):
            # Read the answer now: after a navigation the browser no longer has the body.
            response = request.response()
            if response is not None:
                self.requests.start_bodies[id(request)] = response.body()

    def wait_for_uploads(self, count: int, timeout_ms: int = 10_000) -> None:
        """Wait (bounded) until ``count`` batch uploads in total have finished."""
        waited = 0
        while self.uploads_done < count and waited < timeout_ms:
            # Waiting inside Playwright lets its event loop deliver the request events.
            self.page.wait_for_timeout(50)
            waited += 50
        assert self.uploads_done >= count, (
            f"expected {count} finished batch uploads, saw {self.uploads_done}:\n"
            + self.requests.summary("so far")
        )

    def flush(self) -> None:
        """``tracker.forceFlushBatch()`` and wait until that upload got its answer.

        Counted from the uploads already sent, not those answered: a batch still in flight when
        the flush is asked for must not be taken for the flushed one (the tracker sends the flushed
        batch after it).
        """
        before = self.uploads_started
        self.page.evaluate("window.tracker.forceFlushBatch()")
        self.wait_for_uploads(before + 1)

    def close(self) -> None:
        self.context.close()


def capture_dir() -> Path | None:
    value = os.environ.get(CAPTURE_DIR_ENV)
    return Path(value) if value else None
