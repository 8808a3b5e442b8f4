"""Which assets a recording references by URL, and CSS with those URLs rewritten (sans-IO).

The tracker sends the URL-bearing parts of the DOM as four messages (PROTOCOL.md 4.6, the
"assets" stream of protocol 2, mixed into the one stream of protocol 1):
``SetNodeAttributeURLBased`` (60: ``src``/``href``/``srcset`` values, ``style`` CSS),
``SetCSSDataURLBased`` (61: a ``<style>`` text), ``AdoptedSSReplaceURLBased`` (71) and
``AdoptedSSInsertRuleURLBased`` (73: constructed stylesheets). Each carries the ``BaseURL`` its
relative URLs resolve against. :func:`batch_references` walks a batch and returns the absolute
http(s) URLs they name; :func:`css_references` does the same for CSS (``url(...)``,
``@import "..."``, ``@font-face`` sources are ``url(...)`` too).

:func:`rewrite_css` replaces each reference of a CSS text with what a resolver says (the cached
path ``/assets/<sha256>``, else the absolute URL): the fetcher rewrites cached stylesheets with
it so that they work offline, and :func:`plain_message` turns one of the four messages into its
plain form (12, 15, 72, 74) with the URLs resolved, which is how a replay stream can point a
recording at the cache (the original's sink did the same, REPLAY.md 1.4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import urldefrag, urljoin, urlsplit

from engine.codec.primitives import CodecError
from engine.codec.web import iter_messages
from engine.codec.web_messages import (
    AdoptedSSInsertRule,
    AdoptedSSInsertRuleURLBased,
    AdoptedSSReplace,
    AdoptedSSReplaceURLBased,
    SetCSSData,
    SetCSSDataURLBased,
    SetNodeAttribute,
    SetNodeAttributeURLBased,
)

URL_BASED = (
    SetNodeAttributeURLBased,
    SetCSSDataURLBased,
    AdoptedSSReplaceURLBased,
    AdoptedSSInsertRuleURLBased,
)
URL_BASED_TYPES: frozenset[int] = frozenset(cls.TYPE_ID for cls in URL_BASED)
URL_ATTRIBUTES = frozenset({"src", "href"})
MAX_REFERENCES_PER_BATCH = 1_000  # a hostile batch naming a million URLs adds no more than this

Resolver = Callable[[str], str | None]

# url(x), url('x'), url("x"); @import 'x' / "x" (an @import url(x) is caught by the first).
_CSS_REFERENCE = re.compile(
    r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^'")\s]*))\s*\)|@import\s+(?:"([^"]*)"|'([^']*)')""",
    re.IGNORECASE,
)


def absolute_url(value: str, base_url: str) -> str | None:
    """``value`` made absolute against ``base_url`` if it names an http(s) resource, else None.

    ``''``, ``#fragment`` (SVG references), ``data:``, ``blob:``, ``javascript:`` and the like
    name nothing to fetch. The fragment is dropped: it does not change the bytes.
    """
    value = value.strip()
    if not value or value.startswith("#"):
        return None
    try:
        joined = urljoin(base_url, value) if base_url else value
        url, _ = urldefrag(joined)
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def _reference_spans(css: str) -> Iterable[tuple[int, int, str, bool]]:
    """(start, end, raw URL, is an @import) of each reference in ``css``."""
    for match in _CSS_REFERENCE.finditer(css):
        groups = match.groups()
        raw = next((g for g in groups if g is not None), "")
        yield (
            match.start(),
            match.end(),
            raw,
            match.group(4) is not None or match.group(5) is not None,
        )


def css_references(css: str, base_url: str) -> list[str]:
    """The absolute URLs a CSS text references, in order of appearance, each once."""
    found: dict[str, None] = {}
    for _, _, raw, _ in _reference_spans(css):
        url = absolute_url(raw, base_url)
        if url is not None:
            found.setdefault(url)
    return list(found)


def rewrite_css(css: str, base_url: str, resolve: Resolver) -> str:
    """``css`` with every reference absolute, and replaced by ``resolve(url)`` when it says one.

    A replacement is quoted (``url("/assets/...")``); references that name nothing fetchable
    (``data:``, ``#id``) are left exactly as they were.
    """
    pieces: list[str] = []
    last = 0
    for start, end, raw, is_import in _reference_spans(css):
        url = absolute_url(raw, base_url)
        if url is None:
            continue
        target = resolve(url) or url
        quoted = '"' + target.replace("\\", "\\\\").replace('"', '\\"') + '"'
        pieces.append(css[last:start])
        pieces.append(f"@import {quoted}" if is_import else f"url({quoted})")
        last = end
    pieces.append(css[last:])
    return "".join(pieces)


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` value (``a.png 1x, b.png 2x``), as written."""
    return [part.split()[0] for part in value.split(",") if part.split()]


def _rewrite_srcset(value: str, base_url: str, resolve: Resolver) -> str:
    parts = []
    for part in value.split(","):
        words = part.split()
        if not words:
            continue
        url = absolute_url(words[0], base_url)
        if url is not None:
            words[0] = resolve(url) or url
        parts.append(" ".join(words))
    return ", ".join(parts)


AnyUrlBased = (
    SetNodeAttributeURLBased | SetCSSDataURLBased | AdoptedSSReplaceURLBased
    | AdoptedSSInsertRuleURLBased
)  # fmt: skip


def message_references(msg: AnyUrlBased) -> list[str]:
    """The absolute URLs one URL-based message references."""
    if isinstance(msg, SetNodeAttributeURLBased):
        name = msg.name.lower()
        if name in URL_ATTRIBUTES:
            url = absolute_url(msg.value, msg.base_url)
            return [] if url is None else [url]
        if name == "srcset":
            urls = (absolute_url(raw, msg.base_url) for raw in srcset_urls(msg.value))
            return [url for url in urls if url is not None]
        if name == "style":
            return css_references(msg.value, msg.base_url)
        return []
    if isinstance(msg, SetCSSDataURLBased):
        return css_references(msg.data, msg.base_url)
    if isinstance(msg, AdoptedSSReplaceURLBased):
        return css_references(msg.text, msg.base_url)
    return css_references(msg.rule, msg.base_url)


def batch_references(payload: bytes) -> list[str]:
    """The absolute URLs the URL-based messages of one web batch reference, each once.

    A batch the codec refuses yields what was read before the damage (the engine parks such a
    record; the cache simply takes what it can). At most ``MAX_REFERENCES_PER_BATCH``.
    """
    found: dict[str, None] = {}
    try:
        for _, msg in iter_messages(payload, URL_BASED_TYPES):
            if isinstance(msg, URL_BASED):
                for url in message_references(msg):
                    found.setdefault(url)
                    if len(found) >= MAX_REFERENCES_PER_BATCH:
                        return list(found)
    except CodecError:
        pass
    return list(found)


def plain_message(
    msg: AnyUrlBased, resolve: Resolver
) -> SetNodeAttribute | SetCSSData | AdoptedSSReplace | AdoptedSSInsertRule:
    """The plain message a URL-based one stands for, its URLs absolute and resolved.

    For a replay stream that points the recording at the asset cache: ``resolve`` is the cache
    lookup (``storage.assets.AssetStore.path_of`` bound to the session's project).
    """
    if isinstance(msg, SetNodeAttributeURLBased):
        name = msg.name.lower()
        value = msg.value
        if name in URL_ATTRIBUTES:
            url = absolute_url(value, msg.base_url)
            value = value if url is None else (resolve(url) or url)
        elif name == "srcset":
            value = _rewrite_srcset(value, msg.base_url, resolve)
        elif name == "style":
            value = rewrite_css(value, msg.base_url, resolve)
        return SetNodeAttribute(id=msg.id, name=msg.name, value=value)
    if isinstance(msg, SetCSSDataURLBased):
        return SetCSSData(id=msg.id, data=rewrite_css(msg.data, msg.base_url, resolve))
    if isinstance(msg, AdoptedSSReplaceURLBased):
        return AdoptedSSReplace(
            sheet_id=msg.sheet_id, text=rewrite_css(msg.text, msg.base_url, resolve)
        )
    return AdoptedSSInsertRule(
        sheet_id=msg.sheet_id, rule=rewrite_css(msg.rule, msg.base_url, resolve), index=msg.index
    )
