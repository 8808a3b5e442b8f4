"""The server-side sanitizer of replayed DOM (engine.replay.sanitize): cases and properties."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from engine.replay.sanitize import (
    BLOCKED_CSS_URL,
    CSS_URL,
    HOSTILE_CSS,
    URL_ATTRIBUTES,
    clean_attribute,
    clean_css,
    clean_srcset,
    clean_url,
    css_as_parsed,
    dropped_tag,
    url_scheme,
)

BASE = "https://shop.test/a/page.html"
OWN = "http://replayd.test:8080"
SCRIPT_SCHEME = re.compile(r"(javascript|vbscript|livescript)\s*:", re.IGNORECASE)

# Pieces an attacker splices together: schemes, ignored characters, escapes, comments.
PIECES = st.sampled_from(
    [
        "javascript:", "JaVaScRiPt:", "java\tscript:", "java\nscript:", "vbscript:", " \x01",
        "data:text/html,", "data:image/png;base64,AA", "http://", "https://x.test/", "//evil.test",
        "expression(", "expr/**/ession(", "\\65xpression(", "-moz-binding:", "behavior:",
        "url(", ")", "'", '"', "\\", "@import ", ";", "{", "}", "/*", "*/", "alert(1)", "#x",
        "/api/v1/projects", OWN + "/api/v1/x", "javas\\63 ript:", "\\6a avascript:",
    ]
)  # fmt: skip
HOSTILE_TEXT = st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=12).map("".join)


def test_dropped_tags_any_case() -> None:
    for tag in ("script", "SCRIPT", "Meta", "base", "OBJECT", "embed", "frameset", "foreignObject"):
        assert dropped_tag(tag)
    for tag in ("div", "IFRAME", "svg", "style", "link", "a"):
        assert not dropped_tag(tag)


def test_urls_are_made_absolute_and_only_http_survives() -> None:
    assert clean_url("img/x.png", BASE) == "https://shop.test/a/img/x.png"
    assert clean_url("/x.png", BASE) == "https://shop.test/x.png"
    assert clean_url("//cdn.test/x.png", BASE) == "https://cdn.test/x.png"
    assert clean_url("", BASE) == "" and clean_url("#top", BASE) == "#top"
    for bad in ("javascript:alert(1)", " java\tscript:x", "\x01vbscript:x", "blob:https://a/b",
                "file:///etc/passwd", "data:text/html,<script>x</script>"):  # fmt: skip
        assert clean_url(bad, BASE) is None, bad
    assert clean_url("data:image/png;base64,AA", BASE, media=True) == "data:image/png;base64,AA"
    assert clean_url("data:image/png;base64,AA", BASE) is None  # not as a link
    assert clean_url("x.png", "about:blank") is None  # no http base: nothing to resolve against
    assert clean_url(OWN + "/api/v1/projects", BASE, own_origin=OWN) is None
    assert clean_url(OWN + "/ingest/v1/web/i", BASE, own_origin=OWN) is None
    assert clean_url(OWN + "/shop/logo.png", BASE, own_origin=OWN) == OWN + "/shop/logo.png"


def test_srcset_item_by_item() -> None:
    assert clean_srcset("a.png 1x, javascript:x 2x, /b.png 3x", BASE) == (
        "https://shop.test/a/a.png 1x, https://shop.test/b.png 3x"
    )
    assert clean_srcset("javascript:x 2x", BASE) is None


def test_attributes() -> None:
    assert clean_attribute("img", "onerror", "x()", BASE) is None
    assert clean_attribute("body", "ONLOAD", "x()", BASE) is None
    assert clean_attribute("iframe", "srcdoc", "<b>", BASE) is None
    assert clean_attribute("iframe", "src", "https://a.test/", BASE) is None
    assert clean_attribute("button", "formaction", "https://a.test/", BASE) is None
    assert clean_attribute("meta", "http-equiv", "refresh", BASE) is None
    assert clean_attribute("div", "bad name", "x", BASE) is None
    assert clean_attribute("link", "rel", "stylesheet", BASE) == "stylesheet"
    assert clean_attribute("link", "rel", "import", BASE) is None
    assert clean_attribute("link", "rel", "preload", BASE) is None
    assert clean_attribute("a", "href", "next.html", BASE) == "https://shop.test/a/next.html"
    assert (
        clean_attribute("img", "src", "data:image/gif;base64,R0", BASE)
        == "data:image/gif;base64,R0"
    )
    assert clean_attribute("use", "href", "_$OPENREPLAY_SPRITE$_<svg>", BASE) is None
    assert clean_attribute("set", "to", "javascript:x", BASE) is None
    assert clean_attribute("animate", "attributeName", "href", BASE) is None
    assert clean_attribute("div", "style", "color:red", BASE) == "color:red"
    assert clean_attribute("div", "title", "<b>hi</b>", BASE) == "<b>hi</b>"  # text, for the UI


def test_css() -> None:
    assert (
        clean_css("a{background:url(i.png)}", BASE)
        == 'a{background:url("https://shop.test/a/i.png")}'
    )
    assert clean_css("@import 'x.css';", BASE) == '@import url("https://shop.test/a/x.css");'
    assert clean_css("a{b:url(javascript:x)}", BASE) == "a{b:" + BLOCKED_CSS_URL + "}"
    assert clean_css("a{b:url(" + OWN + "/api/v1/x)}", BASE, own_origin=OWN) == (
        "a{b:" + BLOCKED_CSS_URL + "}"
    )
    for hostile in ("a{width:expression(alert(1))}", "a{width:\\65xpression(1)}",
                    "a{-moz-binding:url(x.xml)}", "a{behavior:url(x.htc)}",
                    "a{width:expr/**/ession(1)}"):  # fmt: skip
        assert not HOSTILE_CSS.search(css_as_parsed(clean_css(hostile, BASE))), hostile


@given(HOSTILE_TEXT, st.sampled_from(sorted(URL_ATTRIBUTES)), st.sampled_from(["a", "img", "svg"]))
def test_no_url_attribute_keeps_a_script_scheme(value: str, name: str, tag: str) -> None:
    out = clean_attribute(tag, name, value, BASE, own_origin=OWN)
    if out is None or out == "" or out.startswith("#"):
        return
    assert url_scheme(out) in ("http", "https", "data")
    assert not SCRIPT_SCHEME.search(re.sub(r"[\t\n\r]", "", out))
    if url_scheme(out) == "data":
        assert out[5:].lower().startswith(("image/", "audio/", "video/", "font/", "application/"))
    assert not out.lower().startswith(OWN + "/api/")


@given(HOSTILE_TEXT)
def test_no_css_keeps_a_hostile_construct(text: str) -> None:
    out = clean_css(text, BASE, own_origin=OWN)
    assert not HOSTILE_CSS.search(out)
    assert not HOSTILE_CSS.search(css_as_parsed(out))
    for match in CSS_URL.finditer(out):  # what the browser would load
        loaded = next(g for g in match.groups() if g is not None)
        assert not loaded.lower().startswith((OWN + "/api/").lower())
        assert loaded == "about:invalid" or url_scheme(loaded) in ("http", "https", "data", None)


@given(st.text(max_size=20), HOSTILE_TEXT)
def test_no_attribute_is_a_handler_or_frame_document(name: str, value: str) -> None:
    for candidate in (name, "on" + name, "ON" + name, "srcdoc", "formaction"):
        out = clean_attribute("iframe", candidate, value, BASE)
        if out is not None:
            lowered = candidate.lower()
            assert not lowered.startswith("on") and lowered not in ("srcdoc", "formaction", "src")
