"""The framework ceiling: an EMPTY quart-trio POST handler on Hypercorn, one process.

It answers the same routes the load generator calls on replayd (``/v1/web/start`` and
``/v1/mobile/start`` with a fixed, tracker-valid JSON answer, ``/v1/web/i`` with an empty 200) and
does nothing else: it reads the
body (replayd must, and Hypercorn receives it either way) and throws it away. Whatever replayd
achieves is measured against what this achieves on the same machine, in the same run.

Run: ``python -m benchlib.ceiling_server --port P``; prints ``READY <port>`` once listening and
stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

_START_ANSWER = {
    "token": "bench.token.not-checked",
    "userUUID": "29374deb-28cf-4df5-bac6-be92151294f4",
    "sessionID": "4117431117823344641",
    "projectID": "1",
    "beaconSizeLimit": 1000000,
    "startTimestamp": 1795418019165,
    "delay": 0,
    "timestamp": 0,
}


_MOBILE_START_ANSWER = {
    "token": "bench.token.not-checked",
    "userUUID": "29374deb-28cf-4df5-bac6-be92151294f4",
    "sessionID": "4117431117823344641",
    "projectID": "1",
    "beaconSizeLimit": 1000000,
    "imageQuality": "standard",
    "frameRate": 1,
}


def create_app() -> QuartTrio:
    """The ceiling app: the ingest routes (with and without ``/ingest``) and an empty GET."""
    app = QuartTrio(__name__)

    async def start():
        await request.get_data()
        return _START_ANSWER

    async def mobile_start():
        await request.get_data()
        return _MOBILE_START_ANSWER

    async def batch():
        await request.get_data()
        return "", 200

    async def ping():  # the floor of a JSON GET, for the query latencies
        return {"data": []}

    app.add_url_rule("/api/v1/ping", "ping", ping, methods=["GET"])
    for prefix in ("", "/ingest"):
        app.add_url_rule(f"{prefix}/v1/web/start", f"start{prefix}", start, methods=["POST"])
        app.add_url_rule(f"{prefix}/v1/web/i", f"batch{prefix}", batch, methods=["POST"])
        app.add_url_rule(
            f"{prefix}/v1/mobile/start", f"mobile_start{prefix}", mobile_start, methods=["POST"]
        )
    return app


async def _main(host: str, port: int) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = trio.Event()

    async def until_signal() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(until_signal)
        await nursery.start(
            lambda task_status: serve(
                create_app(), config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        print(f"READY {port}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    trio.run(_main, args.host, args.port)


if __name__ == "__main__":
    main()
