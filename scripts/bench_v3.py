"""Ingest rate of the v3 events API next to web batch ingest, in the same run, on one server.

One ``replayd serve`` (a fresh database), then for ``--duration`` seconds each, ``--clients``
concurrent clients send:

  (a) ``POST /3/events/update``: 100 events a request (UPDATE SCREEN, one session a client),
      signed as the published Java client signs (a new nonce each time);
  (b) ``POST /v1/web/i``: batches of 100 clicks (one started session a client).

Prints requests/s and events/s of each, with the ratio. About 30 s with the defaults.
Usage: python scripts/bench_v3.py [--duration 8] [--clients 8] [--events 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import string
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio
from benchlib.common import ROOT, create_keys, replayd, replayd_server

sys.path.insert(0, str(ROOT))  # the tests' batch builders and the Java-rules signer

from tests.api.conftest import make_batch, start_body
from tests.api.test_v3 import url_encoder

_NONCE = string.digits + string.ascii_lowercase


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def signed_form(aid: int, secret: str, user: str, password: str, data: str) -> bytes:
    nonce = "".join(secrets.choice(_NONCE) for _ in range(55))
    h = _sha1(
        url_encoder(data)
        + str(aid)
        + url_encoder(user)
        + url_encoder(nonce)
        + secret
        + _sha1(password)
    )
    fields = [("nonce", nonce), ("aid", str(aid)), ("user", user), ("data", data), ("h", h)]
    return "&".join(f"{k}={url_encoder(v)}" for k, v in fields).encode()


async def _timed(
    duration: float, clients: int, setup: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]
) -> tuple[int, float]:
    """Run ``clients`` loops of their one request for ``duration`` s; (requests, seconds)."""
    count = 0
    senders = [await setup(i) for i in range(clients)]
    start = time.perf_counter()
    deadline = start + duration

    async def loop(send: Callable[[], Awaitable[None]]) -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            await send()
            count += 1

    async with trio.open_nursery() as nursery:
        for send in senders:
            nursery.start_soon(loop, send)
    return count, time.perf_counter() - start


async def bench(port: int, project_key: str, aid: int, secret: str, args: argparse.Namespace):
    base = f"http://127.0.0.1:{port}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        registered = await http.post(
            "/3/user/new",
            data={"aid": str(aid), "data": json.dumps({"name": "bench", "pass": "pw"})},
        )
        assert registered.json()["result"] == 1, registered.text

        async def v3_client(i: int) -> Callable[[], Awaitable[None]]:
            session = f"bench{i:015d}"
            events = [
                {"action": "UPDATE", "type": "SCREEN", "timestamp": 1_370_000_000 + n,
                 "session": session, "entities": [{"key": "screen_on", "value": n % 2 == 0}]}
                for n in range(args.events)
            ]  # fmt: skip
            data = json.dumps(events)

            async def send() -> None:
                body = signed_form(aid, secret, "bench", "pw", data)
                r = await http.post("/3/events/update", content=body, headers=form)
                if r.status_code != 200:
                    raise RuntimeError(f"events/update answered {r.status_code}: {r.text}")

            return send

        async def web_client(i: int) -> Callable[[], Awaitable[None]]:
            started = await http.post("/v1/web/start", json=start_body(project_key))
            token = started.json()["token"]
            headers = {"Authorization": f"Bearer {token}", "DataType": "player"}
            seq = 0

            async def send() -> None:
                nonlocal seq
                seq += 1
                body = make_batch(0, seq * args.events, args.events)
                r = await http.post(
                    "/v1/web/i", content=body, headers=headers, params={"batch": f"0_{seq}_1_kno"}
                )
                if r.status_code != 200:
                    raise RuntimeError(f"/v1/web/i answered {r.status_code}: {r.text}")

            return send

        v3 = await _timed(args.duration, args.clients, v3_client)
        web = await _timed(args.duration, args.clients, web_client)
    print(f"{'case':<34} {'requests/s':>11} {'events/s':>10}")
    rates = {}
    for name, (n, secs) in (
        (f"v3 events/update ({args.events} events)", v3),
        (f"web /v1/web/i ({args.events} clicks)", web),
    ):
        rates[name] = n / secs * args.events
        print(f"{name:<34} {n / secs:>11.0f} {rates[name]:>10.0f}")
    v3_rate, web_rate = rates.values()
    print(f"v3 / web events/s: {v3_rate / web_rate:.2f} ({args.clients} clients, same server)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=8.0, help="seconds per case")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--events", type=int, default=100, help="events per request")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="replayd-bench-v3-") as tmp:
        db = Path(tmp) / "bench.db"
        keys = create_keys(db)
        key = keys.project_key
        out = replayd("v3", "app", "create", "bench", "--project", key, "--db", str(db))
        match = re.fullmatch(r"(\d+) ([0-9a-z]{50})", out[-1])
        assert match, out
        with replayd_server(db, extra=["--no-access-log"]) as (_child, port):
            trio.run(bench, port, keys.project_key, int(match[1]), match[2], args)


if __name__ == "__main__":
    main()
