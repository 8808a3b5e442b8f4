"""An ingest process of ``replayd serve --workers N``: ``python -m runtime.worker ...``.

Started by the engine process (:mod:`runtime.pool`, which documents the whole arrangement), never
by hand. It serves HTTP on the socket its parent bound, with the host of the assembly it is named
(``--assembly module:attribute``), until its parent tells it to stop or is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from collections.abc import Sequence
from typing import Any

import trio

from runtime.assembly import Assembly, ProcessRole, ProcessSettings, load_assembly
from runtime.logs import configure_logging
from runtime.pool import READY
from runtime.process import serve_process

logger = logging.getLogger(__name__)


async def _watch_parent(control: trio.socket.SocketType, shutdown: trio.Event) -> None:
    try:
        while await control.recv(64):
            pass
    except OSError:
        pass
    if not shutdown.is_set():
        logger.warning("the parent process is gone: shutting down")
        shutdown.set()


async def run_ingest_process(
    config: ProcessSettings, assembly: Assembly, listen_fd: int, control_fd: int
) -> None:
    """The body of one ingest process: serve HTTP on ``listen_fd`` until told to stop."""
    control = trio.socket.from_stdlib_socket(socket.socket(fileno=control_fd))
    shutdown = trio.Event()
    try:
        async with trio.open_nursery() as nursery:

            async def server(*, task_status: trio.TaskStatus[Any]) -> None:
                await serve_process(
                    config,
                    assembly=assembly,
                    role=ProcessRole.INGEST,
                    listen_fd=listen_fd,
                    shutdown_event=shutdown,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # stopped: nothing left to watch

            await nursery.start(server)
            await control.send(READY)
            nursery.start_soon(_watch_parent, control, shutdown)
    finally:
        control.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of an ingest process (started by :func:`runtime.pool.run_pool`, not by hand)."""
    parser = argparse.ArgumentParser(prog="python -m runtime.worker")
    parser.add_argument("--assembly", required=True, help="module:attribute of the Assembly")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--config", required=True, help="the settings as JSON")
    args = parser.parse_args(argv)
    assembly = load_assembly(args.assembly)
    config = assembly.config_type(**json.loads(args.config))
    configure_logging(args.log_level.upper(), config.log_format, process=f"ingest-{args.index}")
    trio.run(run_ingest_process, config, assembly, args.listen_fd, args.control_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
