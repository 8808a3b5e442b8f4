"""Recordings for the replay tests, made with our encoder: a small page, a long one, a hostile one.

Each function adds messages to a :class:`tests.engine.builders.SessionScript` (which stamps times
and frames batches as the tracker does); the hostile one holds every attack REPLAY.md 5.4 lists
and the canary names the end-to-end test looks for.
"""

from __future__ import annotations

from engine.codec import web_messages as wm
from tests.engine.builders import SessionScript

# The global a hostile recording tries to set, and the console text it tries to print.
CANARY = "__replaydPwned"
CANARY_TEXT = "replayd-canary-ran"
HOSTILE_JS = f"window.top.{CANARY}=1;console.log('{CANARY_TEXT}')"


def small_page(script: SessionScript, url: str = "https://shop.test/cart") -> None:
    """A document with a heading, a list of two rows, an input and a checkbox."""
    script.add(wm.SetPageLocation(url, "", 1, "Cart"))
    script.add(wm.SetViewportSize(1024, 700))
    script.add(wm.CreateDocument())
    script.add(wm.CreateElementNode(1, 0, 0, "HEAD", False))
    script.add(wm.CreateElementNode(2, 0, 1, "BODY", False))
    script.add(wm.CreateElementNode(3, 2, 0, "H1", False))
    script.add(wm.CreateTextNode(4, 3, 0))
    script.add(wm.SetNodeData(4, "Cart"))
    script.add(wm.StringDictGlobal(900, "class"))
    script.add(wm.StringDictGlobal(901, "rows"))
    script.add(wm.CreateElementNode(5, 2, 1, "UL", False))
    script.add(wm.SetNodeAttributeDictGlobal(5, 900, 901))
    for n in range(2):
        script.add(wm.CreateElementNode(10 + 2 * n, 5, n, "LI", False))
        script.add(wm.CreateTextNode(11 + 2 * n, 10 + 2 * n, 0))
        script.add(wm.SetNodeData(11 + 2 * n, f"row {n}"))
    script.add(wm.CreateElementNode(6, 2, 2, "INPUT", False))
    script.add(wm.SetNodeAttribute(6, "type", "checkbox"))
    script.add(wm.SetNodeAttributeURLBased(1, "style", "background:url(img/bg.png)", url))


def hostile_page(script: SessionScript, api_url: str) -> None:
    """Every attack of REPLAY.md 5.4 in one page; ``api_url`` is a replayd API URL to lure."""
    page = "https://evil.test/page"
    html_label = '<img src=x onerror="' + HOSTILE_JS + '">'
    script.add(wm.SetPageLocation(page, "", 1, "<script>" + HOSTILE_JS + "</script>Title"))
    script.add(wm.SetViewportSize(800, 600))
    script.add(wm.CreateDocument())
    script.add(wm.CreateElementNode(1, 0, 0, "HEAD", False))
    script.add(wm.CreateElementNode(2, 0, 1, "BODY", False))
    script.add(wm.SetNodeAttribute(2, "onload", HOSTILE_JS))
    # A script element with its text, and one in SVG.
    script.add(wm.CreateElementNode(3, 2, 0, "SCRIPT", False))
    script.add(wm.CreateTextNode(4, 3, 0))
    script.add(wm.SetNodeData(4, HOSTILE_JS))
    script.add(wm.CreateElementNode(5, 2, 1, "svg", True))
    script.add(wm.CreateElementNode(6, 5, 0, "script", True))
    script.add(wm.CreateTextNode(7, 6, 0))
    script.add(wm.SetNodeData(7, HOSTILE_JS))
    script.add(wm.CreateElementNode(8, 5, 1, "a", True))
    script.add(wm.SetNodeAttribute(8, "xlink:href", "javascript:" + HOSTILE_JS))
    script.add(wm.CreateElementNode(9, 5, 2, "set", True))
    script.add(wm.SetNodeAttribute(9, "attributeName", "href"))
    script.add(wm.SetNodeAttribute(9, "to", "javascript:" + HOSTILE_JS))
    script.add(wm.CreateElementNode(20, 5, 3, "foreignObject", True))
    # on* handlers that would fire at once.
    script.add(wm.CreateElementNode(10, 2, 2, "IMG", False))
    script.add(wm.SetNodeAttribute(10, "src", "data:,x"))
    script.add(wm.SetNodeAttribute(10, "onerror", HOSTILE_JS))
    script.add(wm.CreateElementNode(11, 2, 3, "A", False))
    script.add(wm.SetNodeAttribute(11, "href", " java\tscript:" + HOSTILE_JS))
    script.add(wm.CreateTextNode(12, 11, 0))
    script.add(wm.SetNodeData(12, html_label))
    script.add(wm.CreateElementNode(13, 2, 4, "IFRAME", False))
    script.add(wm.SetNodeAttribute(13, "srcdoc", f"<script>{HOSTILE_JS}</script>"))
    script.add(wm.SetNodeAttribute(13, "src", "javascript:" + HOSTILE_JS))
    script.add(wm.CreateElementNode(14, 1, 0, "META", False))
    script.add(wm.SetNodeAttribute(14, "http-equiv", "refresh"))
    script.add(wm.CreateElementNode(15, 1, 1, "STYLE", False))
    script.add(wm.CreateTextNode(16, 15, 0))
    script.add(wm.SetCSSData(16, "body{width:expression(alert(1));background:url(javascript:x)}"))
    script.add(wm.CreateElementNode(17, 2, 5, "DIV", False))
    script.add(wm.SetNodeAttribute(17, "style", "background-image:url(" + api_url + ")"))
    script.add(wm.CreateElementNode(18, 2, 6, "IMG", False))
    script.add(wm.SetNodeAttributeURLBased(18, "src", api_url, page))
    script.add(wm.CreateElementNode(19, 2, 7, "FORM", False))
    script.add(wm.SetNodeAttribute(19, "action", "javascript:" + HOSTILE_JS))
    script.add(wm.CreateElementNode(21, 2, 8, "OBJECT", False))
    document = "data:text/html,<script>" + HOSTILE_JS + "</script>"
    script.add(wm.SetNodeAttribute(21, "data", document))
    script.add(wm.CreateElementNode(22, 2, 9, "EMBED", False))
    script.add(wm.CreateElementNode(23, 1, 2, "BASE", False))
    script.add(wm.SetNodeAttribute(23, "href", "javascript:" + HOSTILE_JS))
    script.add(wm.CreateElementNode(24, 1, 3, "LINK", False))
    script.add(wm.SetNodeAttribute(24, "rel", "import"))
    script.add(wm.SetNodeAttributeURLBased(24, "href", api_url, page))
    script.add(wm.AdoptedSSReplace(1, "@import url(" + api_url + "); p{color:red}"))
    script.add(wm.AdoptedSSAddOwner(1, 0))
    # Recorded strings with HTML where the UI shows them.
    script.add(wm.MouseClick(11, 0, html_label, "#x", 100, 100))
    script.add(wm.JSException("Error", html_label, "[]", "{}"))
    script.add(wm.ConsoleLog("error", html_label))
    script.add(wm.CustomEvent(html_label, "{}"))
