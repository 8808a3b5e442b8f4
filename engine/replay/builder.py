"""Timed web messages -> replay items: dictionaries resolved, URLs absolute, hostile parts removed.

A :class:`ReplayBuilder` is fed a session's timed messages in log order (in pages; it keeps only
per-page state: each node's tag, the dropped nodes, the string dictionary) and returns the items
the player applies, each a small dict (its JSON is one line of the stream, see
:mod:`api.public_v1_replay`). Every item has ``t`` (ms since the session's start), ``tab`` and
``k`` (its kind); the other keys are the kind's fields:

=========  ================================================  ===================================
``k``      fields                                            from
=========  ================================================  ===================================
doc        (none): a new page; node 0 is its ``<html>``      CreateDocument
el         id, p (parent), i (index), tag, svg               CreateElementNode
text       id, p, i                                          CreateTextNode
move       id, p, i                                          MoveNode
rm         id                                                RemoveNode
attr       id, n, v                                          SetNodeAttribute*, dictionaries
rmattr     id, n                                             RemoveNodeAttribute
data       id, v (text, or the CSS of a style's text)        SetNodeData, SetCSSData*
input      id, v, mask                                       SetInputValue
checked    id, v                                             SetInputChecked
scroll     id, x, y                                          SetNodeScroll
vscroll    x, y                                              SetViewportScroll
vsize      w, h                                              SetViewportSize
frame      frame (host element id), id (its document/root)   CreateIFrameDocument
ss         op (replace|insert|delete|add|remove), sheet,     AdoptedSS*
           v (CSS), i (rule index), id (owner)
mouse      x, y                                              MouseMove
click      id, x, y (hundredths of % of the page), label     MouseClick
loc        url, title                                        SetPageLocation
focus      id                                                SetNodeFocus
vis        hidden                                            SetPageVisibility
tabchange  id (the tab made active)                          TabChange
=========  ================================================  ===================================

Safety (REPLAY.md 5.4): a dropped tag (:func:`engine.replay.sanitize.dropped_tag`) is never
created, and nothing about it or its subtree is sent later; attributes, URLs and CSS go through
the sanitizer; a page holds at most :data:`MAX_NODES` nodes (a gigantic forged tree is a denial of
service on the viewer), the dictionary :data:`MAX_DICT_CHARS` characters and a text node
:data:`MAX_TEXT_CHARS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from engine.codec import web_messages as wm
from engine.replay import sanitize
from engine.replay.walk import TimedMessage

MAX_NODES = 500_000
MAX_DICT_CHARS = 64_000_000
MAX_TEXT_CHARS = 1_000_000  # one text node's data (longer is cut: a forged megabyte string)
_TEXT = "#text"
_ROOT = "#root"  # a document or shadow root made by CreateIFrameDocument
Item = dict[str, Any]


@attrs.define
class _Page:
    """What one tab's current page needs for sanitising: node tags and the dropped nodes."""

    tags: dict[int, str] = attrs.field(factory=lambda: {0: "html"})
    dropped: set[int] = attrs.field(factory=set)
    url: str = ""


@attrs.define
class _Tab:
    page: _Page = attrs.field(factory=_Page)
    dictionary: dict[int, str] = attrs.field(factory=dict)
    dictionary_chars: int = 0


class ReplayBuilder:
    """Builds replay items; ``own_origin`` (e.g. ``http://replayd.example``) is where replayd
    itself answers, so that a replayed URL to its API is dropped."""

    def __init__(self, started_at: int, *, own_origin: str | None = None) -> None:
        self.started_at = started_at
        self.own_origin = own_origin
        self._tabs: dict[str, _Tab] = {}
        self.dropped_messages = 0

    def items(self, messages: Iterable[TimedMessage]) -> list[Item]:
        """The items of ``messages`` (those that replay nothing, or nothing safe, left out)."""
        out: list[Item] = []
        handlers = _HANDLERS
        for timed in messages:
            handler = handlers.get(type(timed.message))
            if handler is None:
                continue
            tab = self._tabs.get(timed.tab)
            if tab is None:
                tab = self._tabs[timed.tab] = _Tab()
            if timed.batch_url and not tab.page.url:
                tab.page.url = timed.batch_url
            fields = handler(self, tab, timed.message)
            if fields is None:
                self.dropped_messages += 1
                continue
            fields["t"] = max(0, timed.time - self.started_at)
            fields["tab"] = timed.tab
            out.append(fields)
        return out

    # -- helpers -----------------------------------------------------------------------------

    def _known(self, page: _Page, node_id: int) -> bool:
        return node_id in page.tags and node_id not in page.dropped

    def _attribute(self, tab: _Tab, node_id: int, name: str, value: str, base: str) -> Item | None:
        page = tab.page
        tag = page.tags.get(node_id)
        if tag is None or node_id in page.dropped or tag in (_TEXT, _ROOT):
            return None
        clean = sanitize.clean_attribute(
            tag, name, value, base or page.url, own_origin=self.own_origin
        )
        if clean is None:
            return None
        return {"k": "attr", "id": node_id, "n": name, "v": clean}

    def _css(self, tab: _Tab, text: str, base: str) -> str:
        return sanitize.clean_css(text, base or tab.page.url, own_origin=self.own_origin)

    def _sheet(self, op: str, sheet: int, **fields: Any) -> Item:
        return {"k": "ss", "op": op, "sheet": sheet, **fields}

    # -- handlers (tab, message) -> fields or None -------------------------------------------

    def _document(self, tab: _Tab, msg: wm.CreateDocument) -> Item:
        tab.page = _Page(url=tab.page.url)
        return {"k": "doc"}

    def _create(self, page: _Page, node_id: int, parent: int, tag: str) -> bool:
        """Record a new node; False when it must not be sent (dropped, or over the cap)."""
        if node_id in page.tags and node_id not in page.dropped:
            return False  # a duplicate id: the first node stays
        if parent in page.dropped or parent not in page.tags or len(page.tags) >= MAX_NODES:
            page.dropped.add(node_id)
            page.tags[node_id] = tag
            return False
        page.dropped.discard(node_id)
        page.tags[node_id] = tag
        if tag not in (_TEXT, _ROOT) and sanitize.dropped_tag(tag):
            page.dropped.add(node_id)
            return False
        return True

    def _element(self, tab: _Tab, msg: wm.CreateElementNode) -> Item | None:
        if not self._create(tab.page, msg.id, msg.parent_id, msg.tag.lower()):
            return None
        return {"k": "el", "id": msg.id, "p": msg.parent_id, "i": msg.index, "tag": msg.tag,
                "svg": msg.svg}  # fmt: skip

    def _text(self, tab: _Tab, msg: wm.CreateTextNode) -> Item | None:
        if not self._create(tab.page, msg.id, msg.parent_id, _TEXT):
            return None
        return {"k": "text", "id": msg.id, "p": msg.parent_id, "i": msg.index}

    def _frame(self, tab: _Tab, msg: wm.CreateIFrameDocument) -> Item | None:
        page = tab.page
        if not self._known(page, msg.frame_id) or page.tags[msg.frame_id] in (_TEXT, _ROOT):
            return None
        page.tags[msg.id] = _ROOT
        page.dropped.discard(msg.id)
        return {"k": "frame", "frame": msg.frame_id, "id": msg.id}

    def _move(self, tab: _Tab, msg: wm.MoveNode) -> Item | None:
        page = tab.page
        if not self._known(page, msg.id) or not self._known(page, msg.parent_id):
            return None
        return {"k": "move", "id": msg.id, "p": msg.parent_id, "i": msg.index}

    def _remove(self, tab: _Tab, msg: wm.RemoveNode) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        # Its subtree is not announced: ids of the subtree are simply never used again.
        return {"k": "rm", "id": msg.id}

    def _set_attribute(self, tab: _Tab, msg: wm.SetNodeAttribute) -> Item | None:
        return self._attribute(tab, msg.id, msg.name, msg.value, "")

    def _set_attribute_url(self, tab: _Tab, msg: wm.SetNodeAttributeURLBased) -> Item | None:
        return self._attribute(tab, msg.id, msg.name, msg.value, msg.base_url)

    def _set_attribute_dict(self, tab: _Tab, msg: wm.SetNodeAttributeDict) -> Item | None:
        return self._attribute(tab, msg.id, msg.name, msg.value, "")

    def _set_attribute_dict_global(
        self, tab: _Tab, msg: wm.SetNodeAttributeDictGlobal
    ) -> Item | None:
        name = tab.dictionary.get(msg.name)
        value = tab.dictionary.get(msg.value)
        if name is None or value is None:
            return None  # an unknown key: nothing to set (REPLAY.md 1.5)
        return self._attribute(tab, msg.id, name, value, "")

    def _dictionary_entry(self, tab: _Tab, msg: wm.StringDictGlobal) -> None:
        if msg.key not in tab.dictionary:
            if tab.dictionary_chars + len(msg.value) > MAX_DICT_CHARS:
                return None
            tab.dictionary_chars += len(msg.value)
        tab.dictionary[msg.key] = msg.value
        return None

    def _remove_attribute(self, tab: _Tab, msg: wm.RemoveNodeAttribute) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "rmattr", "id": msg.id, "n": msg.name}

    def _node_data(self, tab: _Tab, msg: wm.SetNodeData) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "data", "id": msg.id, "v": msg.data[:MAX_TEXT_CHARS]}

    def _css_data(self, tab: _Tab, msg: wm.SetCSSData) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "data", "id": msg.id, "v": self._css(tab, msg.data, "")}

    def _css_data_url(self, tab: _Tab, msg: wm.SetCSSDataURLBased) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "data", "id": msg.id, "v": self._css(tab, msg.data, msg.base_url)}

    def _input(self, tab: _Tab, msg: wm.SetInputValue) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "input", "id": msg.id, "v": msg.value, "mask": msg.mask}

    def _checked(self, tab: _Tab, msg: wm.SetInputChecked) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "checked", "id": msg.id, "v": msg.checked}

    def _node_scroll(self, tab: _Tab, msg: wm.SetNodeScroll) -> Item | None:
        if not self._known(tab.page, msg.id):
            return None
        return {"k": "scroll", "id": msg.id, "x": msg.x, "y": msg.y}

    def _focus(self, tab: _Tab, msg: wm.SetNodeFocus) -> Item | None:
        return {"k": "focus", "id": msg.id}

    def _viewport_scroll(self, tab: _Tab, msg: wm.SetViewportScroll) -> Item:
        return {"k": "vscroll", "x": msg.x, "y": msg.y}

    def _viewport_size(self, tab: _Tab, msg: wm.SetViewportSize) -> Item:
        return {"k": "vsize", "w": msg.width, "h": msg.height}

    def _mouse(self, tab: _Tab, msg: wm.MouseMove) -> Item:
        return {"k": "mouse", "x": msg.x, "y": msg.y}

    def _click(self, tab: _Tab, msg: wm.MouseClick) -> Item:
        return {"k": "click", "id": msg.id, "x": msg.normalized_x, "y": msg.normalized_y,
                "label": msg.label}  # fmt: skip

    def _location(self, tab: _Tab, msg: wm.SetPageLocation) -> Item:
        tab.page.url = msg.url
        return {"k": "loc", "url": msg.url, "title": msg.document_title}

    def _location_old(self, tab: _Tab, msg: wm.SetPageLocationDeprecated) -> Item:
        tab.page.url = msg.url
        return {"k": "loc", "url": msg.url, "title": ""}

    def _visibility(self, tab: _Tab, msg: wm.SetPageVisibility) -> Item:
        return {"k": "vis", "hidden": msg.hidden}

    def _tab_change(self, tab: _Tab, msg: wm.TabChange) -> Item:
        return {"k": "tabchange", "id": msg.tab_id}

    def _ss_replace(self, tab: _Tab, msg: wm.AdoptedSSReplace) -> Item:
        return self._sheet("replace", msg.sheet_id, v=self._css(tab, msg.text, ""))

    def _ss_replace_url(self, tab: _Tab, msg: wm.AdoptedSSReplaceURLBased) -> Item:
        return self._sheet("replace", msg.sheet_id, v=self._css(tab, msg.text, msg.base_url))

    def _ss_insert(self, tab: _Tab, msg: wm.AdoptedSSInsertRule) -> Item:
        return self._sheet("insert", msg.sheet_id, v=self._css(tab, msg.rule, ""), i=msg.index)

    def _ss_insert_url(self, tab: _Tab, msg: wm.AdoptedSSInsertRuleURLBased) -> Item:
        rule = self._css(tab, msg.rule, msg.base_url)
        return self._sheet("insert", msg.sheet_id, v=rule, i=msg.index)

    def _ss_delete(self, tab: _Tab, msg: wm.AdoptedSSDeleteRule) -> Item:
        return self._sheet("delete", msg.sheet_id, i=msg.index)

    def _ss_add(self, tab: _Tab, msg: wm.AdoptedSSAddOwner) -> Item | None:
        if msg.id not in (0,) and not self._known(tab.page, msg.id):
            return None
        return self._sheet("add", msg.sheet_id, id=msg.id)

    def _ss_remove(self, tab: _Tab, msg: wm.AdoptedSSRemoveOwner) -> Item:
        return self._sheet("remove", msg.sheet_id, id=msg.id)


_HANDLERS: dict[type[Any], Callable[[ReplayBuilder, _Tab, Any], Item | None]] = {
    wm.CreateDocument: ReplayBuilder._document,
    wm.CreateElementNode: ReplayBuilder._element,
    wm.CreateTextNode: ReplayBuilder._text,
    wm.CreateIFrameDocument: ReplayBuilder._frame,
    wm.MoveNode: ReplayBuilder._move,
    wm.RemoveNode: ReplayBuilder._remove,
    wm.SetNodeAttribute: ReplayBuilder._set_attribute,
    wm.SetNodeAttributeURLBased: ReplayBuilder._set_attribute_url,
    wm.SetNodeAttributeDict: ReplayBuilder._set_attribute_dict,
    wm.SetNodeAttributeDictGlobal: ReplayBuilder._set_attribute_dict_global,
    wm.StringDictGlobal: ReplayBuilder._dictionary_entry,
    wm.RemoveNodeAttribute: ReplayBuilder._remove_attribute,
    wm.SetNodeData: ReplayBuilder._node_data,
    wm.SetCSSData: ReplayBuilder._css_data,
    wm.SetCSSDataURLBased: ReplayBuilder._css_data_url,
    wm.SetInputValue: ReplayBuilder._input,
    wm.SetInputChecked: ReplayBuilder._checked,
    wm.SetNodeScroll: ReplayBuilder._node_scroll,
    wm.SetNodeFocus: ReplayBuilder._focus,
    wm.SetViewportScroll: ReplayBuilder._viewport_scroll,
    wm.SetViewportSize: ReplayBuilder._viewport_size,
    wm.MouseMove: ReplayBuilder._mouse,
    wm.MouseClick: ReplayBuilder._click,
    wm.SetPageLocation: ReplayBuilder._location,
    wm.SetPageLocationDeprecated: ReplayBuilder._location_old,
    wm.SetPageVisibility: ReplayBuilder._visibility,
    wm.TabChange: ReplayBuilder._tab_change,
    wm.AdoptedSSReplace: ReplayBuilder._ss_replace,
    wm.AdoptedSSReplaceURLBased: ReplayBuilder._ss_replace_url,
    wm.AdoptedSSInsertRule: ReplayBuilder._ss_insert,
    wm.AdoptedSSInsertRuleURLBased: ReplayBuilder._ss_insert_url,
    wm.AdoptedSSDeleteRule: ReplayBuilder._ss_delete,
    wm.AdoptedSSAddOwner: ReplayBuilder._ss_add,
    wm.AdoptedSSRemoveOwner: ReplayBuilder._ss_remove,
}
