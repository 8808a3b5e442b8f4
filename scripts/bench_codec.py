"""Benchmark of the tracker codecs (engine/codec/web.py, mobile_messages.py): messages per second.

Decodes the real captured web batches (tests/fixtures/web-basic/) and a synthetic, realistic web
batch (mostly DOM messages, some clicks, inputs, locations, network) repeatedly and prints
messages/s for

  (a) full decode        decode_batch(data)
  (b) frame walk only    iter_frames(data)
  (c) engine's case      iter_messages(data, wanted=<small set of analytics types>)

then, in the same run, a synthetic mobile SDK batch (iOS and Android encodings: performance
samples, taps, swipes, inputs, views, logs, network calls) for (a) and (b) of the mobile codec;
the mobile session actor decodes whole batches, so (a) is its case.

Rates are per core, in CPU time (best of 5 rounds). Usage:
python scripts/bench_codec.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import batches

from engine.codec import mobile_messages as mobile
from engine.codec import web
from engine.codec.web import (
    BatchMetadata,
    ConsoleLog,
    CreateElementNode,
    CreateTextNode,
    CustomEvent,
    InputChange,
    MouseClick,
    MouseMove,
    NetworkRequest,
    PerformanceTrack,
    RemoveNode,
    SetInputValue,
    SetNodeAttribute,
    SetNodeAttributeDictGlobal,
    SetNodeData,
    SetPageLocation,
    SetViewportScroll,
    StringDictGlobal,
    TabData,
    Timestamp,
    WebMessage,
)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "web-basic"

# Types a session actor needs to build sessions, events and issues: times, tabs, pages, the
# analytics messages. Everything else (DOM, mouse moves, devtools) is only stored for replay.
ENGINE_WANTED = frozenset(
    {0, 5, 23, 24, 27, 28, 29, 30, 55, 64, 68, 78, 112, 117, 118, 122, 124, 125}
)


def synthetic_batch(target_bytes: int = 200_000, seed: int = 7) -> bytes:
    """A batch shaped like a busy page: a DOM snapshot and mutations, mouse moves, a few events."""
    rng = random.Random(seed)
    now = 1_795_418_019_299
    msgs: list[WebMessage] = [
        BatchMetadata(1, 0, 0, now, "https://shop.example.com/"),
        Timestamp(now),
        TabData("e18efc31aa0f"),
    ]
    words = ["product", "price", "cart", "checkout", "item", "menu", "search", "footer", "about"]
    size = 0
    node = 10
    key = 950_000_000_000_000
    while size < target_bytes:
        now += rng.randint(1, 40)
        chunk: list[WebMessage] = [Timestamp(now), TabData("e18efc31aa0f")]
        roll = rng.random()
        if roll < 0.70:  # DOM mutations: the bulk of real traffic
            for _ in range(rng.randint(5, 30)):
                node += 1
                parent = rng.randint(1, node - 1)
                chunk.append(CreateElementNode(node, parent, rng.randint(0, 20), "div", False))
                key += 1
                chunk.append(StringDictGlobal(key, "class"))
                key += 1
                chunk.append(StringDictGlobal(key, f"{rng.choice(words)}-{rng.randint(0, 999)}"))
                chunk.append(SetNodeAttributeDictGlobal(node, key - 1, key))
                node += 1
                chunk.append(CreateTextNode(node, node - 1, 0))
                chunk.append(SetNodeData(node, " ".join(rng.choices(words, k=rng.randint(1, 8)))))
                if rng.random() < 0.2:
                    chunk.append(RemoveNode(rng.randint(1, node)))
                if rng.random() < 0.1:
                    chunk.append(SetNodeAttribute(node - 1, "style", "display: none"))
        elif roll < 0.90:
            for _ in range(rng.randint(1, 10)):
                chunk.append(MouseMove(rng.randint(0, 1280), rng.randint(0, 4000)))
            if rng.random() < 0.3:
                chunk.append(SetViewportScroll(0, rng.randint(0, 3000)))
        elif roll < 0.95:
            target = rng.randint(1, node)
            chunk.append(
                MouseClick(
                    target,
                    rng.randint(0, 3000),
                    "Add to cart",
                    "#add",
                    rng.randint(0, 10000),
                    rng.randint(0, 10000),
                )
            )
            if rng.random() < 0.5:
                chunk.append(SetInputValue(target, "", rng.randint(0, 20)))
                chunk.append(InputChange(target, "", True, "#qty", rng.randint(0, 500), 800))
        elif roll < 0.98:
            chunk.append(
                NetworkRequest(
                    "fetch",
                    "GET",
                    "https://shop.example.com/api/cart?x=1",
                    '{"headers":{},"body":{}}',
                    '{"headers":{},"body":"ok"}',
                    200,
                    now - 30,
                    25,
                    120,
                )
            )
            chunk.append(ConsoleLog("log", "cart updated"))
            chunk.append(CustomEvent("add_to_cart", '{"sku":"A-1"}'))
            chunk.append(PerformanceTrack(60, 60, 8_000_000, 6_000_000))
        else:
            chunk.append(
                SetPageLocation(
                    f"https://shop.example.com/p/{rng.randint(1, 99)}",
                    "https://shop.example.com/",
                    0,
                    "Shop",
                )
            )
        size += sum(len(web.encode_message(m)) for m in chunk)
        msgs.extend(chunk)
    return web.encode_batch(msgs)


def rate(fn: Callable[[bytes], int], data: bytes, seconds: float, rounds: int = 5) -> float:
    """Best messages/s of ``fn`` (returns how many messages it handled) over ``rounds`` rounds.

    Measured in CPU time of this process (``time.process_time``) and best-of rather than mean:
    on a shared machine other processes steal wall time, and noise only ever slows a round down.
    """
    fn(data)  # warm-up
    best = 0.0
    for _ in range(rounds):
        handled = 0
        start = time.process_time()
        deadline = start + seconds / rounds
        while True:
            handled += fn(data)
            now = time.process_time()
            if now >= deadline:
                break
        best = max(best, handled / (now - start))
    return best


def full_decode(data: bytes) -> int:
    return len(web.decode_batch(data))


def frame_walk(data: bytes) -> int:
    count = 0
    for _ in web.iter_frames(data):
        count += 1
    return count


def engine_case(data: bytes) -> int:
    # Every message walked (decoded or skipped) counts: that is the engine's throughput unit.
    for _ in web.iter_messages(data, ENGINE_WANTED):
        pass
    return _total(data)


_TOTALS: dict[bytes, int] = {}  # messages per input (bytes cache their hash: cheap lookups)


def _total(data: bytes) -> int:
    if data not in _TOTALS:
        _TOTALS[data] = sum(1 for _ in web.iter_frames(data))
    return _TOTALS[data]


def mobile_full_decode(data: bytes) -> int:
    return len(mobile.decode_batch(data).messages)


def mobile_android_decode(data: bytes) -> int:
    return len(mobile.decode_batch(data, platform="android").messages)


def mobile_frame_walk(data: bytes) -> int:
    count = 0
    for _ in mobile.iter_frames(data):
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="CPU time per measurement (split in rounds)"
    )
    args = parser.parse_args()
    inputs = {
        "fixture batch-001": (FIXTURES / "batch-001.bin").read_bytes(),
        "fixture batch-002": (FIXTURES / "batch-002.bin").read_bytes(),
        "synthetic": synthetic_batch(),
    }
    for name, data in inputs.items():
        total = _total(data)
        wanted = sum(1 for _ in web.iter_messages(data, ENGINE_WANTED))
        print(f"{name}: {len(data)} bytes, {total} messages ({wanted} in the engine's wanted set)")
        for label, fn in (
            ("(a) full decode", full_decode),
            ("(b) iter_frames walk", frame_walk),
            ("(c) iter_messages wanted", engine_case),
        ):
            print(f"  {label:28s} {rate(fn, data, args.seconds):>12,.0f} messages/s")
    for platform, decode in (("ios", mobile_full_decode), ("android", mobile_android_decode)):
        data = batches.mobile_batch(platform)
        total = mobile_frame_walk(data)
        print(f"mobile synthetic ({platform}): {len(data)} bytes, {total} messages")
        for label, fn in (("(a) full decode", decode), ("(b) iter_frames walk", mobile_frame_walk)):
            print(f"  {label:28s} {rate(fn, data, args.seconds):>12,.0f} messages/s")


if __name__ == "__main__":
    main()
