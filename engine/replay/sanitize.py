"""The server-side sanitizer of replayed DOM (REPLAY.md 5.4, items 1-6): pure functions.

The recording is attacker-controlled (anyone with the public project key can post batches), so
what the player receives is cut down here, before it leaves the server; the player checks again.

* Elements: :func:`dropped_tag` names the tags never created (script, meta, base, object, embed,
  frames, ...); the builder also drops every later message about them and their subtree.
* Attributes: :func:`clean_attribute` returns the value to send, or None to drop the attribute:
  ``on*``, ``srcdoc``, ``formaction``, ``http-equiv``, iframe ``src``, names that are not attribute
  names, ``<link rel>`` other than stylesheet, sprite payloads; every URL attribute resolved to an
  absolute ``http(s)`` URL (``data:`` only for media), ``srcset`` item by item, ``style`` as CSS.
* URLs: :func:`clean_url` resolves against the page's base and keeps only ``http(s)`` (and media
  ``data:`` where allowed); a URL to one of replayd's own API paths on its own origin is dropped.
* CSS: :func:`clean_css` resolves ``url()`` and ``@import`` and neutralises ``expression(``,
  ``-moz-binding``, ``behavior:`` and script schemes, also when hidden by CSS escapes or comments.
* Caps: :data:`MAX_VALUE_CHARS` (the tracker itself blanks longer attribute values).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

# Tags whose elements are never created (HTML and SVG; compared lower-cased).
DROPPED_TAGS = frozenset(
    {
        "script", "noscript", "meta", "title", "base", "object", "embed", "applet", "frame",
        "frameset", "param", "portal", "foreignobject", "handler", "listener",
    }
)  # fmt: skip
# Attributes dropped whatever their element and value.
DROPPED_ATTRIBUTES = frozenset({"srcdoc", "formaction", "http-equiv", "nonce", "integrity"})
# Attributes whose value is one URL (REPLAY.md 5.4 item 2).
URL_ATTRIBUTES = frozenset(
    {
        "href", "xlink:href", "src", "action", "background", "poster", "data", "cite",
        "longdesc", "ping", "lowsrc", "dynsrc", "manifest", "codebase", "icon", "profile",
    }
)  # fmt: skip
SRCSET_ATTRIBUTES = frozenset({"srcset", "imagesrcset"})
# SVG animation values can set an href at run time: they are checked like URLs.
SVG_ANIMATION_VALUES = frozenset({"to", "from", "values", "by"})
# Media types a ``data:`` URL may carry where media is loaded (never a document or a script).
DATA_MEDIA = ("image/", "audio/", "video/", "font/", "application/font", "application/x-font")
MAX_VALUE_CHARS = 100_000
# Paths of replayd's own API: a replayed asset pointing there would run as the viewer.
OWN_API_PREFIXES = ("/api/", "/v1/", "/v2/", "/3/", "/auth/", "/ingest/")
SPRITE_PREFIX = "_$OPENREPLAY_SPRITE$_"
BLOCKED_CSS_URL = 'url("about:invalid")'

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][-A-Za-z0-9_:.]*")
# What the URL parser strips or ignores (WHATWG URL: C0 controls and space at the ends, tab and
# newlines anywhere), so "java\tscript:" is seen as the scheme it is.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
CSS_URL = re.compile(
    r"""url\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^)"'\s]*))\s*\)""",
    re.IGNORECASE | re.DOTALL,
)
_CSS_IMPORT_STRING = re.compile(
    r"""@import\s+(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""", re.IGNORECASE
)
# The hostile patterns of CSS text (checked on a normalised copy, see css_as_parsed).
HOSTILE_CSS = re.compile(
    r"expression\s*\(|-moz-binding|behavior\s*:|javascript:|vbscript:|livescript:", re.IGNORECASE
)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{1,6})\s?|\\(.)", re.DOTALL)
_SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "livescript"})
_SCRIPT_SCHEME_ANYWHERE = re.compile(r"(?:javascript|vbscript|livescript)\s*:", re.IGNORECASE)


def dropped_tag(tag: str) -> bool:
    """True when an element with this tag must never be created (case-insensitive)."""
    return tag.lower() in DROPPED_TAGS


def _normalised(url: str) -> str:
    return _URL_IGNORED.sub("", url).strip("".join(chr(c) for c in range(0x21)))


def url_scheme(url: str) -> str | None:
    """The scheme a browser would see in ``url`` (lower-cased), None for a relative URL."""
    found = _SCHEME.match(_normalised(url))
    return found.group(1).lower() if found else None


def _own_api(url: str, own_origin: str | None) -> bool:
    if own_origin is None:
        return False
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return origin == own_origin.lower() and (parts.path + "/").startswith(OWN_API_PREFIXES)


def clean_url(
    url: str, base: str, *, own_origin: str | None = None, media: bool = False
) -> str | None:
    """``url`` made absolute against ``base``, or None when it must not be replayed.

    Kept: ``http``/``https`` URLs; ``data:`` URLs of media types when ``media`` (an image source,
    never a link); an empty value or a ``#fragment`` as it is (they load nothing). Dropped: every
    other scheme (``javascript:``, ``vbscript:``, ``blob:``, ``file:``...), a relative URL without
    an ``http(s)`` base, and a URL to replayd's own API paths on ``own_origin``.
    """
    value = _normalised(url)
    if value == "" or value.startswith("#"):
        return value
    if len(value) > MAX_VALUE_CHARS:
        return None
    scheme = url_scheme(value)
    if scheme == "data":
        return value if media and value[5:].lstrip().lower().startswith(DATA_MEDIA) else None
    if scheme is None:
        if url_scheme(base) not in ("http", "https"):
            return None
        try:
            value = urljoin(_normalised(base), value)
        except ValueError:
            return None
        scheme = url_scheme(value)
    if scheme not in ("http", "https") or _SCRIPT_SCHEME_ANYWHERE.search(value):
        return None  # a script scheme even inside an http URL: nothing legitimate needs it
    if _own_api(value, own_origin):
        return None
    return value


def clean_srcset(value: str, base: str, *, own_origin: str | None = None) -> str | None:
    """A ``srcset`` with each candidate's URL cleaned; candidates that fail are left out."""
    kept = []
    for candidate in value.split(","):
        parts = candidate.strip().split(None, 1)
        if not parts:
            continue
        url = clean_url(parts[0], base, own_origin=own_origin, media=True)
        if url:
            kept.append(" ".join([url, *parts[1:]]))
    return ", ".join(kept) if kept else None


def _unescape_css(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        code = int(match.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return match.group(2)


def css_as_parsed(text: str) -> str:
    """What the CSS parser would read: escapes decoded, comments removed, URL-ignored characters
    removed (so ``java\\9script:`` and ``expr/**/ession(`` are seen)."""
    decoded = _CSS_ESCAPE.sub(_unescape_css, _CSS_COMMENT.sub("", text))
    return _URL_IGNORED.sub("", _CSS_COMMENT.sub("", decoded))


def _css_url(match: re.Match[str], base: str, own_origin: str | None) -> str:
    raw = next((g for g in match.groups() if g is not None), "")
    url = clean_url(_CSS_ESCAPE.sub(_unescape_css, raw), base, own_origin=own_origin, media=True)
    if not url:
        return BLOCKED_CSS_URL
    return 'url("' + url.replace("\\", "%5C").replace('"', "%22") + '")'


def clean_css(text: str, base: str, *, own_origin: str | None = None) -> str:
    """CSS text with every ``url()`` and ``@import "..."`` resolved against ``base`` (unsafe ones
    replaced by a URL that loads nothing), and emptied when a hostile construct remains
    (:data:`HOSTILE_CSS` in the text as the CSS parser would read it)."""
    if len(text) > 10 * MAX_VALUE_CHARS:
        return ""
    out = CSS_URL.sub(lambda m: _css_url(m, base, own_origin), text)
    out = _CSS_IMPORT_STRING.sub(lambda m: "@import " + _css_url(m, base, own_origin), out)
    if HOSTILE_CSS.search(out) or HOSTILE_CSS.search(css_as_parsed(out)):
        return "/* replayd: removed unsafe CSS */"
    return out


def _link_rel(value: str) -> str | None:
    tokens = value.lower().split()
    return "stylesheet" if "stylesheet" in tokens and "import" not in tokens else None


def clean_attribute(
    tag: str, name: str, value: str, base: str, *, own_origin: str | None = None
) -> str | None:
    """The value to replay for attribute ``name`` of a ``tag`` element, or None to drop it.

    ``base`` is the URL relative values resolve against (the message's ``baseURL`` or the page's
    URL).
    """
    lname = name.lower()
    ltag = tag.lower()
    if not _ATTRIBUTE_NAME.fullmatch(name) or lname.startswith("on") or lname in DROPPED_ATTRIBUTES:
        return None
    if len(value) > MAX_VALUE_CHARS:
        return None
    if ltag == "iframe" and lname in ("src", "allow", "sandbox", "csp"):
        return None  # the player gives every frame its own sandbox; a frame loads nothing
    if ltag == "link" and lname == "rel":
        return _link_rel(value)
    if lname == "style":
        return clean_css(value, base, own_origin=own_origin)
    if value.startswith(SPRITE_PREFIX):
        return None  # inline SVG sprite markup: never parsed (REPLAY.md 5.3 case E)
    if lname in URL_ATTRIBUTES:
        media = lname in ("src", "poster", "background") and ltag not in ("a", "area", "form")
        return clean_url(value, base, own_origin=own_origin, media=media)
    if lname in SRCSET_ATTRIBUTES:
        return clean_srcset(value, base, own_origin=own_origin)
    if lname in SVG_ANIMATION_VALUES or lname == "attributename":
        view = _normalised(value).lower()
        if any(scheme + ":" in _URL_IGNORED.sub("", view) for scheme in _SCRIPT_SCHEMES):
            return None
        if lname == "attributename" and view.endswith("href"):
            return None  # an animation that rewrites a link target at run time
    return value
