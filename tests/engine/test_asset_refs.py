"""Asset references of a recording and CSS rewriting (engine.asset_refs)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.asset_refs import (
    absolute_url,
    batch_references,
    css_references,
    plain_message,
    rewrite_css,
)
from engine.codec.web import encode_batch
from engine.codec.web_messages import (
    AdoptedSSInsertRule,
    AdoptedSSInsertRuleURLBased,
    AdoptedSSReplace,
    AdoptedSSReplaceURLBased,
    BatchMetadata,
    SetCSSData,
    SetCSSDataURLBased,
    SetNodeAttribute,
    SetNodeAttributeURLBased,
    Timestamp,
)

BASE = "https://shop.test/css/main.css"
CACHED = {
    "https://shop.test/css/font.woff2": "/assets/" + "a" * 64,
    "https://shop.test/img/bg.png": "/assets/" + "b" * 64,
}


def test_css_references_are_absolute_and_each_once() -> None:
    css = (
        '@import "base.css"; @import url(theme.css);'
        "@font-face{font-family:X;src:url('font.woff2') format('woff2'),url(font.woff2)}"
        'body{background:url( "../img/bg.png" )} .m{mask:url(#m)}'
        " .d{background:url(data:image/png;base64,AA)}"
        " .x{background:url(https://cdn.test/x.png#frag)}"
    )
    assert css_references(css, BASE) == [
        "https://shop.test/css/base.css",
        "https://shop.test/css/theme.css",
        "https://shop.test/css/font.woff2",
        "https://shop.test/img/bg.png",
        "https://cdn.test/x.png",
    ]


def test_rewrite_points_at_the_cache_and_leaves_the_rest_absolute() -> None:
    css = "@font-face{src:url(font.woff2)} a{b:url('/img/bg.png')} c{d:url(x.png)} e{f:url(#id)}"
    out = rewrite_css(css, BASE, CACHED.get)
    assert out == (
        f'@font-face{{src:url("{CACHED["https://shop.test/css/font.woff2"]}")}}'
        f' a{{b:url("{CACHED["https://shop.test/img/bg.png"]}")}}'
        ' c{d:url("https://shop.test/css/x.png")} e{f:url(#id)}'
    )


def test_absolute_url_skips_what_names_nothing_to_fetch() -> None:
    for value in (
        "",
        "#x",
        "data:text/css,a",
        "blob:https://a/1",
        "javascript:alert(1)",
        "about:blank",
    ):
        assert absolute_url(value, BASE) is None
    assert absolute_url("/a.css?x=1#y", BASE) == "https://shop.test/a.css?x=1"


def test_a_batch_yields_the_urls_of_its_four_url_based_messages() -> None:
    batch = encode_batch(
        [
            BatchMetadata(1, 0, 0, 1, "https://shop.test/"),
            Timestamp(1),
            SetNodeAttributeURLBased(3, "href", "/css/main.css", "https://shop.test/p/"),
            SetNodeAttributeURLBased(4, "src", "logo.png", "https://shop.test/p/"),
            SetNodeAttributeURLBased(5, "srcset", "a.png 1x, b.png 2x", "https://shop.test/"),
            SetNodeAttributeURLBased(6, "style", "background:url(s.png)", "https://shop.test/"),
            SetNodeAttributeURLBased(7, "title", "https://not.an.asset/", "https://shop.test/"),
            SetCSSDataURLBased(8, "a{b:url(inline.png)}", "https://shop.test/"),
            AdoptedSSReplaceURLBased(1, "@import 'adopted.css';", "https://shop.test/"),
            AdoptedSSInsertRuleURLBased(1, "x{y:url(rule.png)}", 0, "https://shop.test/"),
            SetNodeAttributeURLBased(3, "href", "/css/main.css", "https://shop.test/p/"),
        ]
    )
    assert batch_references(batch) == [
        "https://shop.test/css/main.css",
        "https://shop.test/p/logo.png",
        "https://shop.test/a.png",
        "https://shop.test/b.png",
        "https://shop.test/s.png",
        "https://shop.test/inline.png",
        "https://shop.test/adopted.css",
        "https://shop.test/rule.png",
    ]


def test_a_damaged_batch_gives_what_was_read_before_the_damage() -> None:
    batch = encode_batch(
        [
            BatchMetadata(1, 0, 0, 1, ""),
            SetNodeAttributeURLBased(3, "href", "https://a.test/x.css", ""),
        ]
    )
    assert batch_references(batch + b"\x3c\xff\xff") == ["https://a.test/x.css"]
    assert batch_references(b"\xff\xff\xff\xff") == []


def test_plain_messages_carry_the_cached_paths() -> None:
    resolve = {"https://shop.test/css/main.css": "/assets/" + "c" * 64, **CACHED}.get
    assert plain_message(
        SetNodeAttributeURLBased(3, "href", "main.css", "https://shop.test/css/"), resolve
    ) == SetNodeAttribute(3, "href", "/assets/" + "c" * 64)
    assert plain_message(
        SetNodeAttributeURLBased(3, "href", "other.css", "https://shop.test/css/"), resolve
    ) == SetNodeAttribute(3, "href", "https://shop.test/css/other.css")
    assert plain_message(
        SetNodeAttributeURLBased(4, "srcset", "../img/bg.png 2x", BASE), resolve
    ) == SetNodeAttribute(4, "srcset", "/assets/" + "b" * 64 + " 2x")
    assert plain_message(SetCSSDataURLBased(5, "a{b:url(font.woff2)}", BASE), resolve) == (
        SetCSSData(5, 'a{b:url("/assets/' + "a" * 64 + '")}')
    )
    assert plain_message(AdoptedSSReplaceURLBased(1, "", BASE), resolve) == AdoptedSSReplace(1, "")
    assert plain_message(AdoptedSSInsertRuleURLBased(1, "a{}", 2, BASE), resolve) == (
        AdoptedSSInsertRule(1, "a{}", 2)
    )


_CSS_TEXT = st.lists(
    st.one_of(
        st.sampled_from(["a{", "}", ";", " ", "color:red", "@media x{", "url(", ")", "'", '"']),
        st.builds(lambda p: f"url({p})", st.sampled_from(["x.png", "'y.css'", '"/z.woff"', "#m"])),
        st.text(max_size=8),
    ),
    max_size=30,
).map("".join)


@given(_CSS_TEXT)
def test_rewriting_twice_changes_nothing_more_and_keeps_the_references(css: str) -> None:
    once = rewrite_css(css, BASE, lambda url: None)
    assert rewrite_css(once, BASE, lambda url: None) == once
    assert css_references(once, BASE) == css_references(css, BASE)
