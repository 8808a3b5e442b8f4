"""``replayd serve --workers N``: N ingest processes and one engine process on one log.

One process on 2 cores is held by one GIL; with ``--workers`` the HTTP ingest and the engine stop
competing for it. The processes (the log, a SQLite file, is the only channel between them)::

    replayd serve --workers N     the parent = the ENGINE process: binds the listening socket,
    |                             runs the engine supervisor, the projector (holding the
    |                             projections' lock) and the clock ticker, following the log with
    |                             storage.log.poll_tail; serves no HTTP itself
    +-- python -m runtime.worker  N INGEST processes: Hypercorn on the inherited socket
                                  (``fd://N`` bind), every route, each with its own EventLog
                                  writer + group commit; the public API reads the projections
                                  read-only; never the engine, never the projections' lock

Why the engine is the parent rather than a dedicated child: the parent has to outlive every child
anyway (it supervises them), the projector's lock then names the process an operator sees, and a
failure of the engine or of any child ends the same nursery tree.

The socket is bound once, by the parent, and passed with ``pass_fds``: every child accepts on the
same kernel queue, so the port (also port 0) is known before any child starts and no child can
bind a different one. Each child also gets one end of a socket pair: it writes ``ready`` once it
accepts, and it shuts down gracefully when the pair reaches end-of-file (the parent is gone, even
after a SIGKILL: no orphan keeps serving).

Lifecycle: children run in their own session, so a terminal's Ctrl-C reaches only the parent,
which forwards SIGTERM to every child (they finish in-flight requests within
``graceful_timeout``), waits for them with a bound, then kills what is left; a second signal kills
them at once. A child that exits on its own brings the whole server down with
:class:`WorkerFailed` (``replayd serve`` then exits with status 1): no half-running server.

This module is the parent's side; :mod:`runtime.worker` is the ingest process's. A child builds
the same HTTP host as a single process would (every surface of the :class:`Assembly` it is told
the name of), so ``--workers`` serves every registered surface.

Ingest process ``i`` generates session ids with shard ``config.shard + i``, so ids never collide.
First-start bootstrap (default project, API key, snippet) happens once, in the parent's CLI.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys

import attrs
import trio
from hypercorn.utils import repr_socket_addr

from runtime.assembly import Assembly, ProcessSettings
from runtime.context import Listening, ServiceContext, hypercorn_config

logger = logging.getLogger(__name__)

READY = b"ready\n"
# A child imports the web stack, opens SQLite and warms the User-Agent parser; on a busy 2-core
# machine that takes seconds, never a minute.
START_TIMEOUT_S = 60.0
# On top of graceful_timeout: a child stops its services and its log writer after Hypercorn.
STOP_MARGIN_S = 5.0


class WorkerFailed(RuntimeError):
    """An ingest process exited without being asked to, or never got ready."""

    def __init__(self, index: int, pid: int, message: str) -> None:
        super().__init__(f"ingest process {index} (pid {pid}) {message}")
        self.index = index
        self.pid = pid


def find_worker_failure(error: BaseException) -> WorkerFailed | None:
    """The :class:`WorkerFailed` inside ``error`` (trio wraps task errors in exception groups)."""
    if isinstance(error, WorkerFailed):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = find_worker_failure(inner)
            if found is not None:
                return found
    return None


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def child_config(config: ProcessSettings, index: int) -> ProcessSettings:
    """The configuration of ingest process ``index``: its own shard, no workers of its own."""
    # attrs.evolve, spelled out: the settings' class is the caller's (mypy cannot see it is attrs).
    fields = attrs.asdict(config) | {"workers": 0, "shard": config.shard + index}
    return type(config)(**fields)


def child_command(
    config: ProcessSettings,
    assembly: Assembly,
    index: int,
    listen_fd: int,
    control_fd: int,
    log_level: str,
) -> list[str]:
    """The command line of ingest process ``index`` (same interpreter, same installed code)."""
    return [
        sys.executable,
        "-m",
        "runtime.worker",
        "--assembly",
        assembly.name,
        "--index",
        str(index),
        "--listen-fd",
        str(listen_fd),
        "--control-fd",
        str(control_fd),
        "--log-level",
        log_level,
        "--config",
        json.dumps(attrs.asdict(child_config(config, index))),
    ]


@attrs.define(eq=False)
class _Pool:
    """The ingest processes of one ``serve --workers`` run (see the module docstring)."""

    config: ProcessSettings
    assembly: Assembly
    listen_fd: int
    hard: trio.Event  # a second signal: kill without grace
    stop_requested: trio.Event = attrs.field(factory=trio.Event)

    @property
    def grace_s(self) -> float:
        return self.config.graceful_timeout + STOP_MARGIN_S

    async def supervise(self, index: int, *, task_status: trio.TaskStatus[int]) -> None:
        """Run ingest process ``index``; report its pid once it accepts; raise if it dies."""
        parent_end, child_end = socket.socketpair()
        control = trio.socket.from_stdlib_socket(parent_end)
        try:
            level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
            try:
                process = await trio.lowlevel.open_process(
                    child_command(
                        self.config,
                        self.assembly,
                        index,
                        self.listen_fd,
                        child_end.fileno(),
                        level,
                    ),
                    pass_fds=(self.listen_fd, child_end.fileno()),
                    # Own session: a terminal's Ctrl-C reaches the parent only, which forwards it.
                    start_new_session=True,
                )
            finally:
                child_end.close()  # the child holds its end; EOF on ours then means it is gone
            try:
                ready = b""
                with trio.move_on_after(START_TIMEOUT_S) as start_scope:
                    while len(ready) < len(READY):
                        chunk = await control.recv(len(READY) - len(ready))
                        if not chunk:
                            break  # the child exited before it got ready
                        ready += chunk
                if start_scope.cancelled_caught:
                    raise WorkerFailed(
                        index, process.pid, f"did not get ready within {START_TIMEOUT_S:g} s"
                    )
                if ready != READY:
                    code = await process.wait()
                    raise WorkerFailed(
                        index, process.pid, f"failed to start ({_describe_exit(code)})"
                    )
                logger.info("ingest process %d (pid %d) ready", index, process.pid)
                task_status.started(process.pid)
                await self._watch(index, process)
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop(process)
        finally:
            control.close()

    async def _watch(self, index: int, process: trio.Process) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward_stop, process)
            code = await process.wait()
            nursery.cancel_scope.cancel()
        if not self.stop_requested.is_set():
            raise WorkerFailed(index, process.pid, f"exited unexpectedly ({_describe_exit(code)})")
        if code != 0:
            logger.warning("ingest process %d stopped with %s", index, _describe_exit(code))

    async def _forward_stop(self, process: trio.Process) -> None:
        await self.stop_requested.wait()
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.grace_s):
            await self.hard.wait()
        if process.returncode is None:
            logger.warning("ingest process (pid %d) did not stop in time: killing it", process.pid)
            process.kill()

    async def _stop(self, process: trio.Process) -> None:
        """Make sure the process is gone (cancellation, a sibling's failure, a hard stop)."""
        if process.returncode is None and not self.hard.is_set():
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(self.grace_s):
                await process.wait()
        if process.returncode is None:
            process.kill()
        await process.wait()


def _bind(config: ProcessSettings) -> tuple[socket.socket, str]:
    """The listening socket for ``config`` (inheritable, as Hypercorn would bind it) and its URL."""
    hc = hypercorn_config(config)
    sockets = hc.create_sockets()
    (sock,) = sockets.insecure_sockets
    try:
        sock.listen(hc.backlog)
        url = f"http://{repr_socket_addr(sock.family, sock.getsockname())}"
    except BaseException:
        sock.close()
        raise
    return sock, url


async def run_pool(
    ctx: ServiceContext,
    assembly: Assembly,
    shutdown: trio.Event,
    hard: trio.Event,
    *,
    task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The engine process's front: bind, start ``config.workers`` ingest processes, supervise.

    Reports :class:`Listening` once every ingest process accepts; returns once ``shutdown`` is
    set and every one of them exited; raises :class:`WorkerFailed` if one dies on its own.
    """
    config = ctx.config
    sock, url = _bind(config)
    try:
        pool = _Pool(config=config, assembly=assembly, listen_fd=sock.fileno(), hard=hard)
        async with trio.open_nursery() as nursery:
            pids: dict[int, int] = {}

            async def start(index: int) -> None:
                pids[index] = await nursery.start(pool.supervise, index)

            async with trio.open_nursery() as starting:  # in parallel: each takes a second or so
                for index in range(config.workers):
                    starting.start_soon(start, index)
            # The children hold the socket now. Closing ours means it closes with the last child,
            # so connections made during the shutdown are refused rather than left waiting.
            sock.close()
            task_status.started(
                Listening(binds=[url], worker_pids=tuple(pids[i] for i in sorted(pids)))
            )
            await shutdown.wait()
            logger.info("stopping %d ingest processes", config.workers)
            pool.stop_requested.set()
    finally:
        sock.close()
