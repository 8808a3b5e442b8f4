"""Shared plumbing of the benchmark driver: child processes, servers, the load generator, stats.

Every process started here is a child of the driver, bound to 127.0.0.1, and stopped by its pid
(SIGINT, then SIGKILL after a grace period) when its ``with`` block ends. psutil (bench extra) is
imported where it is used, so the pure helpers import without it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import attrs
from benchlib.loadgen import LoadResult, LoadSpec

ROOT = Path(__file__).resolve().parents[2]  # the repository
SCRIPTS = ROOT / "scripts"
PY = sys.executable


def child_env() -> dict[str, str]:
    """Environment for children: they import ``benchlib`` and the project from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SCRIPTS), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def log(msg: str) -> None:
    """Progress on stderr (stdout is kept for the table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (racy in theory; fine for one driver)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (``p`` in 0..100); 0 for an empty sequence."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return float(ordered[rank - 1])


class Child:
    """A child process whose stdout lines are collected by a thread (so its pipe never fills)."""

    def __init__(self, args: Sequence[str], *, name: str, stdin: bool = False):
        self.name = name
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=child_env(),
            text=True,
            bufsize=1,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_line(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """Wait for a stdout line (from index ``start``) matching ``pattern``; raise if it dies."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    found = rx.search(line)
                    if found:
                        return found
                seen = len(self.lines)
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited ({self.proc.returncode}):\n"
                        + "\n".join(self.lines[-30:])
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.name}: no line matching {pattern!r} in {timeout} s:\n"
                        + "\n".join(self.lines[-30:])
                    )
                self._cond.wait(min(left, 0.5))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, grace: float = 15.0) -> None:
        """SIGINT (graceful), then SIGKILL after ``grace`` seconds; children of it too."""
        if self.proc.poll() is None:
            kids = process_tree(self.pid)[1:]
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for kid in kids:  # a --workers server's processes exit with their parent
                _reap(kid)
        self._reader.join(2)


def _reap(kid) -> None:
    """Wait briefly for ``kid`` (a psutil process) to exit, else kill it; gone already is fine."""
    import psutil  # there are kids only with psutil (process_tree)

    try:
        kid.wait(2)
    except psutil.Error:  # psutil.TimeoutExpired or the process is gone
        with suppress(psutil.Error):
            kid.kill()


def process_tree(pid: int) -> list:
    """The process and its descendants (``serve --workers`` runs several); psutil objects.

    Empty without psutil (the bench extra), which only the measuring functions need.
    """
    try:
        import psutil
    except ImportError:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    """Resident set size of a process tree, bytes."""
    import psutil

    total = 0
    for p in process_tree(pid):
        with suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds used so far by a process tree."""
    import psutil

    total = 0.0
    for p in process_tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


# -- replayd ---------------------------------------------------------------------------------


def replayd(*args: str, timeout: float = 600) -> list[str]:
    """Run a ``replayd`` command to completion; return its stdout lines (raise on failure)."""
    done = subprocess.run(
        [PY, "-m", "api.cli", *args],
        cwd=ROOT,
        env=child_env(),
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"replayd {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout.splitlines()


@attrs.frozen
class Keys:
    """A project key (trackers) and an organization API key (public API) of one database."""

    project_key: str
    api_key: str
    project_id: int


def create_keys(db: Path) -> Keys:
    """Create a project and an API key in ``db`` through the CLI."""
    out = replayd("project", "create", "bench", "--db", str(db), "--create")
    found = re.search(r"created project (\d+)", "\n".join(out))
    api_key = replayd("api-key", "create", "--db", str(db))[-1].strip()
    return Keys(out[-1].strip(), api_key, int(found.group(1)) if found else 1)


@contextmanager
def replayd_server(
    db: Path, *, workers: int | None = None, extra: Sequence[str] = ()
) -> Iterator[tuple[Child, int]]:
    """Run ``replayd serve`` on a free port of 127.0.0.1; yield (child, port)."""
    port = free_port()
    args = [
        PY,
        "-m",
        "api.cli",
        "serve",
        "--db",
        str(db),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
        *extra,
    ]
    if workers:
        args += ["--workers", str(workers)]
    child = Child(args, name="replayd serve")
    try:
        child.wait_line(r"replayd serving", timeout=60)
        yield child, port
    finally:
        child.stop()


@contextmanager
def ceiling_server() -> Iterator[tuple[Child, int]]:
    """Run the empty quart-trio handler (the framework ceiling); yield (child, port)."""
    port = free_port()
    child = Child([PY, "-m", "benchlib.ceiling_server", "--port", str(port)], name="ceiling")
    try:
        child.wait_line(r"^READY", timeout=60)
        yield child, port
    finally:
        child.stop()


def supports_workers() -> bool:
    """Whether this replayd has ``serve --workers`` (the split ingest/engine mode of issue 5)."""
    done = subprocess.run(
        [PY, "-m", "api.cli", "serve", "--help"],
        cwd=ROOT,
        env=child_env(),
        text=True,
        capture_output=True,
        timeout=60,
    )
    return "--workers" in done.stdout


# -- load generator ----------------------------------------------------------------------------


@attrs.frozen
class LoadRun:
    """The merged result of the generator processes of one run, plus the server's CPU use."""

    results: list[LoadResult]
    window_s: float
    server_cpu_s: float  # CPU seconds of the server tree during the window

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.results)

    @property
    def req_per_s(self) -> float:
        return self.requests / self.window_s

    @property
    def mb_per_s(self) -> float:
        return sum(r.body_bytes for r in self.results) / self.window_s / 1e6

    @property
    def msgs_per_s(self) -> float:
        return sum(r.messages for r in self.results) / self.window_s

    @property
    def latencies_ms(self) -> list[float]:
        return [us / 1000 for r in self.results for us in r.lat_us]

    @property
    def errors(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for r in self.results:
            for k, v in r.errors.items():
                merged[k] = merged.get(k, 0) + v
        return merged

    @property
    def loadgen_cpu(self) -> float:
        """Generator CPU use in cores (1.0 = one core busy all the window)."""
        return sum(r.cpu_s for r in self.results) / self.window_s

    @property
    def server_cpu(self) -> float:
        return self.server_cpu_s / self.window_s

    @property
    def sessions(self) -> list[str]:
        return [s for r in self.results for s in r.sessions]


def run_load(
    spec: LoadSpec,
    procs: int,
    server_pid: int,
    on_window: Callable[[float, float], None] | None = None,
) -> LoadRun:
    """Run ``procs`` generator processes (trackers split between them) against one server.

    ``on_window(start_monotonic, end_monotonic)`` is called (in this thread) while the load runs,
    for samplers that watch the server during the timed window; it must return by the window end.
    """
    gens = []
    per = [spec.trackers // procs + (1 if i < spec.trackers % procs else 0) for i in range(procs)]
    try:
        for i, n in enumerate(per):
            g = Child([PY, "-m", "benchlib.loadgen"], name=f"loadgen-{i}", stdin=True)
            g.send(
                json.dumps(attrs.asdict(attrs.evolve(spec, trackers=n, seed=spec.seed * 100 + i)))
            )
            gens.append(g)
        for g in gens:
            g.wait_line(r"^READY$", timeout=120)
        for g in gens:
            g.send("GO")
        t0 = time.monotonic()
        w_start, w_end = t0 + spec.warmup_s, t0 + spec.warmup_s + spec.duration_s
        time.sleep(max(0.0, w_start - time.monotonic()))
        cpu0 = tree_cpu(server_pid)
        if on_window is not None:
            on_window(w_start, w_end)
        time.sleep(max(0.0, w_end - time.monotonic()))
        cpu1 = tree_cpu(server_pid)
        results = []
        for g in gens:
            line = g.wait_line(r"^\{", timeout=spec.duration_s + 120)
            results.append(LoadResult(**json.loads(line.string)))
        return LoadRun(results=results, window_s=spec.duration_s, server_cpu_s=cpu1 - cpu0)
    finally:
        for g in gens:
            g.stop(grace=5)


def run_sessions(spec: LoadSpec, procs: int) -> LoadRun:
    """Start ``spec.sessions`` live sessions with ``procs`` generators (``sessions`` mode)."""
    gens = []
    per = [spec.sessions // procs + (1 if i < spec.sessions % procs else 0) for i in range(procs)]
    try:
        for i, n in enumerate(per):
            g = Child([PY, "-m", "benchlib.loadgen"], name=f"loadgen-{i}", stdin=True)
            g.send(
                json.dumps(
                    attrs.asdict(
                        attrs.evolve(
                            spec,
                            sessions=n,
                            trackers=max(1, spec.trackers // procs),
                            seed=spec.seed * 100 + i,
                        )
                    )
                )
            )
            gens.append(g)
        for g in gens:
            g.wait_line(r"^READY$", timeout=120)
        t0 = time.monotonic()
        for g in gens:
            g.send("GO")
        results = [
            LoadResult(**json.loads(g.wait_line(r"^\{", timeout=spec.duration_s + 60).string))
            for g in gens
        ]
        return LoadRun(results=results, window_s=time.monotonic() - t0, server_cpu_s=0.0)
    finally:
        for g in gens:
            g.stop(grace=5)
