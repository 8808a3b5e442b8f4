"""Realistic tracker batches for the benchmarks, made by our own encoder (``engine.codec.web``).

A batch looks like what tracker 19 sends in protocol 1 (PROTOCOL.md 5.3): ``BatchMetadata``, then
main-thread chunks that each start with ``Timestamp`` + ``TabData``, mostly DOM mutations
(element/text nodes, text data, attributes through the string dictionary), mouse moves, and a few
clicks, input changes and one page location, the things the engine turns into session events.

The loader needs a fresh ``BatchMetadata.FirstIndex`` per upload (a retry is recognised by its
batch key), so a batch is kept as an encoded *tail* (everything after the header) and the header
is encoded again for each upload by :func:`encode_header`: cheap, and still our encoder's bytes.
"""

from __future__ import annotations

import random

import attrs

from engine.codec import mobile_messages as mobile
from engine.codec import web
from engine.codec import web_messages as m

PAGE_URL = "https://shop.example.com/catalog/shoes?page=2"
TAB_ID = "e18efc31aa0f"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)

_TAGS = ("div", "span", "a", "li", "p", "button", "img", "section", "ul", "h2", "input", "label")
_WORDS = (
    "add to cart",
    "free shipping",
    "new arrivals",
    "size guide",
    "running shoe",
    "leather",
    "in stock",
    "only 3 left",
    "customer reviews",
    "compare",
    "wishlist",
    "checkout",
    "sale",
    "limited edition",
    "trail",
    "waterproof",
    "sneakers",
    "details",
    "color: black",
    "EUR 89.90",
)
_CLASSES = (
    "product-card",
    "btn btn-primary",
    "grid__item col-3",
    "price price--sale",
    "badge",
    "nav-link active",
    "thumbnail lazy",
    "rating-stars",
    "hidden-xs",
    "flex items-center gap-2",
)


@attrs.frozen(slots=True)
class EncodedBatch:
    """One batch as bytes: ``tail`` follows a header built by :func:`encode_header`.

    ``messages`` counts every message of a whole upload (header messages included), which is what
    the engine decodes per upload; ``header_messages`` of them are in the header.
    """

    tail: bytes
    messages: int
    header_messages: int = 1


def encode_header(page_no: int, first_index: int, timestamp: int, url: str = PAGE_URL) -> bytes:
    """Encode the ``BatchMetadata`` that opens an upload (no size prefix, PROTOCOL.md 5.2)."""
    return web.encode_batch(
        [
            m.BatchMetadata(
                version=1,
                page_no=page_no,
                first_index=first_index,
                timestamp=timestamp,
                location=url,
            )
        ]
    )


def _chunk_head(ts: int) -> list[m.WebMessage]:
    return [m.Timestamp(timestamp=ts), m.TabData(tab_id=TAB_ID)]


def _message_stream(rng: random.Random, start_ts: int, node_base: int, with_location: bool):
    """Yield an endless, tracker-like stream of messages (the DOM keeps growing)."""
    ts = start_ts
    next_id = node_base
    dict_key = 950_000_000_000_000 + node_base * 8
    if with_location:
        yield from _chunk_head(ts)
        yield m.SetPageLocation(
            url=PAGE_URL,
            referrer="https://www.example.org/",
            navigation_start=ts - 900,
            document_title="Shoes - Example Shop",
        )
        yield m.SetViewportSize(width=1280, height=800)
    n = 0
    while True:
        # one main-thread chunk per ~30 ms tick: Timestamp + TabData, then what happened
        ts += rng.randint(20, 40)
        yield from _chunk_head(ts)
        for _ in range(rng.randint(15, 40)):
            n += 1
            roll = rng.random()
            parent = max(node_base, next_id - rng.randint(1, 30))
            if roll < 0.30:
                yield m.CreateElementNode(
                    id=next_id,
                    parent_id=parent,
                    index=rng.randint(0, 8),
                    tag=rng.choice(_TAGS),
                    svg=False,
                )
                next_id += 1
            elif roll < 0.45:
                yield m.CreateTextNode(id=next_id, parent_id=parent, index=rng.randint(0, 4))
                next_id += 1
                yield m.SetNodeData(id=next_id - 1, data=" ".join(rng.sample(_WORDS, 2)))
            elif roll < 0.55:
                dict_key += 2
                yield m.StringDictGlobal(key=dict_key, value="class")
                yield m.StringDictGlobal(key=dict_key + 1, value=rng.choice(_CLASSES))
                yield m.SetNodeAttributeDictGlobal(id=parent, name=dict_key, value=dict_key + 1)
            elif roll < 0.65:
                yield m.SetNodeAttribute(
                    id=parent, name="data-testid", value=f"item-{rng.randint(0, 9999)}"
                )
            elif roll < 0.72:
                yield m.RemoveNode(id=parent)
            elif roll < 0.95:
                yield m.MouseMove(x=rng.randint(0, 1279), y=rng.randint(0, 799))
            else:
                yield m.SetViewportScroll(x=0, y=rng.randint(0, 4000))
            if n % 97 == 0:
                # a click (becomes a CLICK row); the tracker guarantees a non-empty label
                yield m.MouseClick(
                    id=parent,
                    hesitation_time=rng.randint(50, 2000),
                    label=rng.choice(_WORDS),
                    selector="div.product-card > button",
                    normalized_x=rng.randint(0, 10000),
                    normalized_y=rng.randint(0, 10000),
                )
            if n % 331 == 0:
                yield m.SetInputValue(id=parent, value="", mask=rng.randint(1, 12))
                yield m.InputChange(
                    id=parent,
                    value="",
                    value_masked=True,
                    label="search",
                    hesitation_time=rng.randint(10, 900),
                    input_duration=rng.randint(100, 5000),
                )


def make_batch(
    size: int, seed: int, start_ts: int = 1_795_418_019_299, with_location: bool = True
) -> EncodedBatch:
    """Build a batch whose whole upload (header for first_index 0 included) is ~``size`` bytes.

    Deterministic for a given ``seed``; different seeds give different node ids and texts.
    """
    rng = random.Random(seed)
    stream = _message_stream(
        rng, start_ts, node_base=10 + (seed % 1000) * 100_000, with_location=with_location
    )
    budget = size - len(encode_header(0, 0, start_ts))
    msgs: list[m.WebMessage] = []
    used = 0
    # every message is framed on its own, so the batch size is the sum of the framed sizes
    for msg in stream:
        framed = len(web.encode_message(msg))
        if used + framed > budget:
            break
        msgs.append(msg)
        used += framed
    whole = web.encode_batch([_meta0(start_ts), *msgs])
    header = encode_header(0, 0, start_ts)
    return EncodedBatch(tail=whole[len(header) :], messages=len(msgs) + 1)


def _meta0(ts: int) -> m.BatchMetadata:
    return m.BatchMetadata(version=1, page_no=0, first_index=0, timestamp=ts, location=PAGE_URL)


def session_events_batch(seed: int, start_ts: int, clicks: int = 20) -> bytes:
    """A small whole batch rich in session events (a location, clicks, inputs) for query benchmarks.

    Message times start at ``start_ts`` and grow by 0.2-3 s per click.
    """
    rng = random.Random(seed)
    msgs: list[m.WebMessage] = [
        _meta0(start_ts),
        *_chunk_head(start_ts),
        m.SetPageLocation(
            url=PAGE_URL,
            referrer="",
            navigation_start=start_ts - 500,
            document_title="Shoes - Example Shop",
        ),
    ]
    ts = start_ts
    for i in range(clicks):
        ts += rng.randint(200, 3000)
        msgs += _chunk_head(ts)
        msgs.append(
            m.MouseClick(
                id=100 + i,
                hesitation_time=rng.randint(50, 2000),
                label=rng.choice(_WORDS),
                selector="div.product-card > button",
                normalized_x=rng.randint(0, 10000),
                normalized_y=rng.randint(0, 10000),
            )
        )
        if i % 5 == 4:
            msgs.append(
                m.InputChange(
                    id=200 + i,
                    value="",
                    value_masked=True,
                    label="search",
                    hesitation_time=100,
                    input_duration=900,
                )
            )
    return web.encode_batch(msgs)


CHECKOUT_URL = "https://shop.example.com/checkout"


def checkout_batch(seed: int, ts: int) -> bytes:
    """A later batch of a :func:`session_events_batch` session: a visit of the checkout page at
    ``ts`` (after its clicks: a click-then-location sequence to search) and, for one session in
    ten, a ``TypeError``."""
    msgs: list[m.WebMessage] = [
        m.BatchMetadata(version=1, page_no=0, first_index=500, timestamp=ts, location=PAGE_URL),
        *_chunk_head(ts),
        m.SetPageLocation(url=CHECKOUT_URL, referrer="", navigation_start=0, document_title="Pay"),
    ]
    if seed % 10 == 0:
        msgs.append(m.JSException("TypeError", "x is undefined", "[]", "{}"))
    return web.encode_batch(msgs)


def live_batch(seed: int, start_ts: int, user_id: str) -> bytes:
    """A first batch of a live session: location, user id, metadata, a click (Assist-searchable)."""
    rng = random.Random(seed)
    msgs: list[m.WebMessage] = [
        _meta0(start_ts),
        *_chunk_head(start_ts),
        m.UserID(id=user_id),
        m.Metadata(key="plan", value=rng.choice(("free", "pro", "enterprise"))),
        m.SetPageLocation(
            url=f"{PAGE_URL}&item={seed}",
            referrer="",
            navigation_start=start_ts - 400,
            document_title=f"Item {seed} - Example Shop",
        ),
        m.SetViewportSize(width=1280, height=800),
        m.MouseClick(
            id=12,
            hesitation_time=300,
            label=rng.choice(_WORDS),
            selector="div.product-card > button",
            normalized_x=4300,
            normalized_y=1200,
        ),
    ]
    return web.encode_batch(msgs)


def mobile_batch(platform: str, target_bytes: int = 200_000, seed: int = 7) -> bytes:
    """An SDK batch (``engine.codec.mobile_messages``) shaped like a busy app's: a BatchMeta, then
    performance samples and logs, taps, swipes, inputs, views and a few network calls, encoded as
    ``platform`` ("ios" or "android") does."""
    rng = random.Random(seed)
    now = 1_795_418_019_299
    msgs: list[mobile.MobileMessage] = [mobile.MobileBatchMeta(now + 5_000, 1_200)]
    screens = ["Home", "Cart", "Checkout", "Product", "Search"]
    size = 0
    while size < target_bytes:
        now += rng.randint(1, 60)
        roll = rng.random()
        msg: mobile.MobileMessage
        if roll < 0.40:
            name = rng.choice(["fps", "mainThreadCPU", "memoryUsage", "batteryLevel"])
            msg = mobile.MobilePerformanceEvent(now, name, rng.randint(0, 300_000_000))
        elif roll < 0.60:
            msg = mobile.MobileLog(
                now, "info", f"loaded {rng.choice(screens)} in {rng.randint(1, 900)} ms"
            )
        elif roll < 0.75:
            msg = mobile.MobileClickEvent(
                now, rng.choice(["Add", "Buy", "Back"]), rng.randint(0, 430), rng.randint(0, 930)
            )
        elif roll < 0.82:
            msg = mobile.MobileSwipeEvent(
                now, "Swipe", rng.randint(0, 430), rng.randint(0, 930), "up"
            )
        elif roll < 0.88:
            msg = mobile.MobileInputEvent(now, "***", True, "email")
        elif roll < 0.94:
            msg = mobile.MobileViewComponentEvent(
                now, rng.choice(screens), "Banner", rng.random() < 0.5
            )
        else:
            msg = mobile.MobileNetworkCall(
                now, "request", "GET", f"https://api.example.com/items/{rng.randint(1, 999)}",
                '{"headers":{"accept":"application/json"},"body":""}',
                '{"headers":{"content-type":"application/json"},"body":"{\\"ok\\":true}"}',
                rng.choice([200, 200, 200, 404, 500]), rng.randint(5, 900),
                status_int32=platform == "android",
            )  # fmt: skip
        size += len(mobile.encode_message(msg, platform=platform))
        msgs.append(msg)
    return mobile.encode_batch(msgs, platform=platform)
