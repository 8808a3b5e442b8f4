"""Message classes of the OpenReplay web tracker protocol (PROTOCOL.md section 6), one per type id.

Every row of the message table has a class here, including deprecated and backend-only types, named
as in the table, with its fields in wire order as snake_case attributes. Class-level constants:

* ``TYPE_ID``: the wire type id;
* ``WIRE``: the primitive kind of each field, in order ("uint", "int", "string", "boolean"), from
  which ``engine.codec.web`` builds the decoders and encoders (keep it in sync with the fields).

Types with an unknown id decode to :class:`UnknownMessage`. The docstring of each class says who
emits it (tracker 19.0.1) and which protocol-2 stream carries it. Pure data: no I/O, no logic.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

__all__ = [
    "MESSAGE_CLASSES",
    "AdoptedSSAddOwner",
    "AdoptedSSDeleteRule",
    "AdoptedSSInsertRule",
    "AdoptedSSInsertRuleURLBased",
    "AdoptedSSRemoveOwner",
    "AdoptedSSReplace",
    "AdoptedSSReplaceURLBased",
    "AssetCache",
    "BatchMetadata",
    "CanvasNode",
    "CleanSession",
    "ConnectionInformation",
    "ConsoleLog",
    "CreateDocument",
    "CreateElementNode",
    "CreateIFrameDocument",
    "CreateTextNode",
    "CustomEvent",
    "CustomIssue",
    "GraphQL",
    "GraphQLDeprecated",
    "Incident",
    "InputChange",
    "InputEvent",
    "IssueEvent",
    "JSException",
    "LoadFontFace",
    "LongAnimationTask",
    "Metadata",
    "MobX",
    "MouseClick",
    "MouseClickDeprecated",
    "MouseMove",
    "MouseThrashing",
    "MoveNode",
    "NetworkRequest",
    "NetworkRequestDeprecated",
    "NgRx",
    "NodeAnimationResult",
    "OTable",
    "PageEvent",
    "PageEventDeprecated",
    "PageLoadTiming",
    "PageRenderTiming",
    "PerformanceTrack",
    "PerformanceTrackAggr",
    "Profiler",
    "Redux",
    "ReduxDeprecated",
    "RemoveNode",
    "RemoveNodeAttribute",
    "ResourceTiming",
    "ResourceTimingDeprecated",
    "ResourceTimingDeprecatedDeprecated",
    "SelectionChange",
    "SessionEnd",
    "SessionSearch",
    "SessionStart",
    "SetCSSData",
    "SetCSSDataURLBased",
    "SetInputChecked",
    "SetInputTarget",
    "SetInputValue",
    "SetNodeAttribute",
    "SetNodeAttributeDict",
    "SetNodeAttributeDictDeprecated",
    "SetNodeAttributeDictGlobal",
    "SetNodeAttributeURLBased",
    "SetNodeData",
    "SetNodeFocus",
    "SetNodeScroll",
    "SetNodeSlot",
    "SetPageLocation",
    "SetPageLocationDeprecated",
    "SetPageVisibility",
    "SetViewportScroll",
    "SetViewportSize",
    "StateAction",
    "StringDict",
    "StringDictDeprecated",
    "StringDictGlobal",
    "TabChange",
    "TabData",
    "TagTrigger",
    "TechnicalInfo",
    "Timestamp",
    "UnbindNodes",
    "UnknownMessage",
    "UserAnonymousID",
    "UserID",
    "Vuex",
    "WSChannel",
    "WebMessage",
    "WebVitals",
    "Zustand",
]


class WebMessage:
    """Common base of the web message classes (for type hints and ``isinstance``)."""

    __slots__ = ()
    TYPE_ID: ClassVar[int]
    WIRE: ClassVar[tuple[str, ...]]
    # Every subclass is an attrs class: declaring so lets ``attrs.fields(cls)`` type-check.
    __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]


@attrs.frozen(slots=True)
class UnknownMessage:
    """A message whose type id we do not know, kept as its raw body (skipped by its size)."""

    type_id: int
    body: bytes


@attrs.frozen(slots=True)
class Timestamp(WebMessage):
    """0: core tracker; also auto-inserted by the batch writer. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 0
    WIRE: ClassVar[tuple[str, ...]] = ("uint",)
    timestamp: int


@attrs.frozen(slots=True)
class SessionStart(WebMessage):
    """1: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 1
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "string",
        "string",
        "string",
        "string",
        "string",
        "string",
        "string",
        "string",
        "string",
        "string",
        "uint",
        "uint",
        "string",
        "string",
    )
    timestamp: int
    project_id: int
    tracker_version: str
    rev_id: str
    user_uuid: str
    user_agent: str
    user_os: str
    user_os_version: str
    user_browser: str
    user_browser_version: str
    user_device: str
    user_device_type: str
    user_device_memory_size: int
    user_device_heap_size: int
    user_country: str
    user_id: str


@attrs.frozen(slots=True)
class CleanSession(WebMessage):
    """3: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 3
    WIRE: ClassVar[tuple[str, ...]] = ("uint",)
    timestamp: int


@attrs.frozen(slots=True)
class SetPageLocationDeprecated(WebMessage):
    """4: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 4
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "uint")
    url: str
    referrer: str
    navigation_start: int


@attrs.frozen(slots=True)
class SetViewportSize(WebMessage):
    """5: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 5
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    width: int
    height: int


@attrs.frozen(slots=True)
class SetViewportScroll(WebMessage):
    """6: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 6
    WIRE: ClassVar[tuple[str, ...]] = ("int", "int")
    x: int
    y: int


@attrs.frozen(slots=True)
class CreateDocument(WebMessage):
    """7: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 7
    WIRE: ClassVar[tuple[str, ...]] = ()


@attrs.frozen(slots=True)
class CreateElementNode(WebMessage):
    """8: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 8
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint", "string", "boolean")
    id: int
    parent_id: int
    index: int
    tag: str
    svg: bool


@attrs.frozen(slots=True)
class CreateTextNode(WebMessage):
    """9: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 9
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint")
    id: int
    parent_id: int
    index: int


@attrs.frozen(slots=True)
class MoveNode(WebMessage):
    """10: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 10
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint")
    id: int
    parent_id: int
    index: int


@attrs.frozen(slots=True)
class RemoveNode(WebMessage):
    """11: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 11
    WIRE: ClassVar[tuple[str, ...]] = ("uint",)
    id: int


@attrs.frozen(slots=True)
class SetNodeAttribute(WebMessage):
    """12: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 12
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "string")
    id: int
    name: str
    value: str


@attrs.frozen(slots=True)
class RemoveNodeAttribute(WebMessage):
    """13: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 13
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    id: int
    name: str


@attrs.frozen(slots=True)
class SetNodeData(WebMessage):
    """14: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 14
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    id: int
    data: str


@attrs.frozen(slots=True)
class SetCSSData(WebMessage):
    """15: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 15
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    id: int
    data: str


@attrs.frozen(slots=True)
class SetNodeScroll(WebMessage):
    """16: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 16
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "int", "int")
    id: int
    x: int
    y: int


@attrs.frozen(slots=True)
class SetInputTarget(WebMessage):
    """17: deprecated, tracker 19 core never emits it. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 17
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    id: int
    label: str


@attrs.frozen(slots=True)
class SetInputValue(WebMessage):
    """18: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 18
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "int")
    id: int
    value: str
    mask: int


@attrs.frozen(slots=True)
class SetInputChecked(WebMessage):
    """19: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 19
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "boolean")
    id: int
    checked: bool


@attrs.frozen(slots=True)
class MouseMove(WebMessage):
    """20: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 20
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    x: int
    y: int


@attrs.frozen(slots=True)
class NetworkRequestDeprecated(WebMessage):
    """21: deprecated, tracker 19 core never emits it. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 21
    WIRE: ClassVar[tuple[str, ...]] = (
        "string",
        "string",
        "string",
        "string",
        "string",
        "uint",
        "uint",
        "uint",
    )
    type: str
    method: str
    url: str
    request: str
    response: str
    status: int
    timestamp: int
    duration: int


@attrs.frozen(slots=True)
class ConsoleLog(WebMessage):
    """22: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 22
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    level: str
    value: str


@attrs.frozen(slots=True)
class PageLoadTiming(WebMessage):
    """23: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 23
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
    )
    request_start: int
    response_start: int
    response_end: int
    dom_content_loaded_event_start: int
    dom_content_loaded_event_end: int
    load_event_start: int
    load_event_end: int
    first_paint: int
    first_contentful_paint: int


@attrs.frozen(slots=True)
class PageRenderTiming(WebMessage):
    """24: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 24
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint")
    speed_index: int
    visually_complete: int
    time_to_interactive: int


@attrs.frozen(slots=True)
class CustomEvent(WebMessage):
    """27: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 27
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    name: str
    payload: str


@attrs.frozen(slots=True)
class UserID(WebMessage):
    """28: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 28
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    id: str


@attrs.frozen(slots=True)
class UserAnonymousID(WebMessage):
    """29: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 29
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    id: str


@attrs.frozen(slots=True)
class Metadata(WebMessage):
    """30: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 30
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    key: str
    value: str


@attrs.frozen(slots=True)
class PageEventDeprecated(WebMessage):
    """31: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 31
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "string",
        "string",
        "boolean",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
    )
    message_id: int
    timestamp: int
    url: str
    referrer: str
    loaded: bool
    request_start: int
    response_start: int
    response_end: int
    dom_content_loaded_event_start: int
    dom_content_loaded_event_end: int
    load_event_start: int
    load_event_end: int
    first_paint: int
    first_contentful_paint: int
    speed_index: int
    visually_complete: int
    time_to_interactive: int


@attrs.frozen(slots=True)
class InputEvent(WebMessage):
    """32: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 32
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "string", "boolean", "string")
    message_id: int
    timestamp: int
    value: str
    value_masked: bool
    label: str


@attrs.frozen(slots=True)
class PageEvent(WebMessage):
    """33: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 33
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "string",
        "string",
        "boolean",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "string",
    )
    message_id: int
    timestamp: int
    url: str
    referrer: str
    loaded: bool
    request_start: int
    response_start: int
    response_end: int
    dom_content_loaded_event_start: int
    dom_content_loaded_event_end: int
    load_event_start: int
    load_event_end: int
    first_paint: int
    first_contentful_paint: int
    speed_index: int
    visually_complete: int
    time_to_interactive: int
    web_vitals: str


@attrs.frozen(slots=True)
class StringDictGlobal(WebMessage):
    """34: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 34
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    key: int
    value: str


@attrs.frozen(slots=True)
class SetNodeAttributeDictGlobal(WebMessage):
    """35: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 35
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint")
    id: int
    name: int
    value: int


@attrs.frozen(slots=True)
class NodeAnimationResult(WebMessage):
    """36: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 36
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    id: int
    styles: str


@attrs.frozen(slots=True)
class Profiler(WebMessage):
    """40: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 40
    WIRE: ClassVar[tuple[str, ...]] = ("string", "uint", "string", "string")
    name: str
    duration: int
    args: str
    result: str


@attrs.frozen(slots=True)
class OTable(WebMessage):
    """41: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 41
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    key: str
    value: str


@attrs.frozen(slots=True)
class StateAction(WebMessage):
    """42: tracker plugins only. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 42
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    type: str


@attrs.frozen(slots=True)
class StringDict(WebMessage):
    """43: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 43
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    key: str
    value: str


@attrs.frozen(slots=True)
class ReduxDeprecated(WebMessage):
    """44: deprecated, tracker 19 core never emits it. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 44
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "uint")
    action: str
    state: str
    duration: int


@attrs.frozen(slots=True)
class Vuex(WebMessage):
    """45: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 45
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    mutation: str
    state: str


@attrs.frozen(slots=True)
class MobX(WebMessage):
    """46: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 46
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    type: str
    payload: str


@attrs.frozen(slots=True)
class NgRx(WebMessage):
    """47: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 47
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "uint")
    action: str
    state: str
    duration: int


@attrs.frozen(slots=True)
class GraphQLDeprecated(WebMessage):
    """48: deprecated, tracker 19 core never emits it. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 48
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string", "string", "int")
    operation_kind: str
    operation_name: str
    variables: str
    response: str
    duration: int


@attrs.frozen(slots=True)
class PerformanceTrack(WebMessage):
    """49: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 49
    WIRE: ClassVar[tuple[str, ...]] = ("int", "int", "uint", "uint")
    frames: int
    ticks: int
    total_js_heap_size: int
    used_js_heap_size: int


@attrs.frozen(slots=True)
class StringDictDeprecated(WebMessage):
    """50: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 50
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    key: int
    value: str


@attrs.frozen(slots=True)
class SetNodeAttributeDictDeprecated(WebMessage):
    """51: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 51
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint")
    id: int
    name_key: int
    value_key: int


@attrs.frozen(slots=True)
class SetNodeAttributeDict(WebMessage):
    """52: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 52
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "string")
    id: int
    name: str
    value: str


@attrs.frozen(slots=True)
class ResourceTimingDeprecatedDeprecated(WebMessage):
    """53: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 53
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "string",
        "string",
    )
    timestamp: int
    duration: int
    ttfb: int
    header_size: int
    encoded_body_size: int
    decoded_body_size: int
    url: str
    initiator: str


@attrs.frozen(slots=True)
class ConnectionInformation(WebMessage):
    """54: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 54
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    downlink: int
    type: str


@attrs.frozen(slots=True)
class SetPageVisibility(WebMessage):
    """55: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 55
    WIRE: ClassVar[tuple[str, ...]] = ("boolean",)
    hidden: bool


@attrs.frozen(slots=True)
class PerformanceTrackAggr(WebMessage):
    """56: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 56
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
    )
    timestamp_start: int
    timestamp_end: int
    min_fps: int
    avg_fps: int
    max_fps: int
    min_cpu: int
    avg_cpu: int
    max_cpu: int
    min_total_js_heap_size: int
    avg_total_js_heap_size: int
    max_total_js_heap_size: int
    min_used_js_heap_size: int
    avg_used_js_heap_size: int
    max_used_js_heap_size: int


@attrs.frozen(slots=True)
class LoadFontFace(WebMessage):
    """57: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 57
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "string", "string")
    parent_id: int
    family: str
    source: str
    descriptors: str


@attrs.frozen(slots=True)
class SetNodeFocus(WebMessage):
    """58: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 58
    WIRE: ClassVar[tuple[str, ...]] = ("int",)
    id: int


@attrs.frozen(slots=True)
class SetNodeAttributeURLBased(WebMessage):
    """60: core tracker. Stream: assets (v3)."""

    TYPE_ID: ClassVar[int] = 60
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "string", "string")
    id: int
    name: str
    value: str
    base_url: str


@attrs.frozen(slots=True)
class SetCSSDataURLBased(WebMessage):
    """61: core tracker. Stream: assets (v3)."""

    TYPE_ID: ClassVar[int] = 61
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "string")
    id: int
    data: str
    base_url: str


@attrs.frozen(slots=True)
class TechnicalInfo(WebMessage):
    """63: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 63
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    type: str
    value: str


@attrs.frozen(slots=True)
class CustomIssue(WebMessage):
    """64: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 64
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    name: str
    payload: str


@attrs.frozen(slots=True)
class SetNodeSlot(WebMessage):
    """65: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 65
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    id: int
    slot_id: int


@attrs.frozen(slots=True)
class AssetCache(WebMessage):
    """66: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 66
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    url: str


@attrs.frozen(slots=True)
class MouseClick(WebMessage):
    """68: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 68
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "string", "string", "uint", "uint")
    id: int
    hesitation_time: int
    label: str
    selector: str
    normalized_x: int
    normalized_y: int


@attrs.frozen(slots=True)
class MouseClickDeprecated(WebMessage):
    """69: deprecated, tracker 19 core never emits it. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 69
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "string", "string")
    id: int
    hesitation_time: int
    label: str
    selector: str


@attrs.frozen(slots=True)
class CreateIFrameDocument(WebMessage):
    """70: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 70
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    frame_id: int
    id: int


@attrs.frozen(slots=True)
class AdoptedSSReplaceURLBased(WebMessage):
    """71: core tracker. Stream: assets (v3)."""

    TYPE_ID: ClassVar[int] = 71
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "string")
    sheet_id: int
    text: str
    base_url: str


@attrs.frozen(slots=True)
class AdoptedSSReplace(WebMessage):
    """72: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 72
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    sheet_id: int
    text: str


@attrs.frozen(slots=True)
class AdoptedSSInsertRuleURLBased(WebMessage):
    """73: core tracker. Stream: assets (v3)."""

    TYPE_ID: ClassVar[int] = 73
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "uint", "string")
    sheet_id: int
    rule: str
    index: int
    base_url: str


@attrs.frozen(slots=True)
class AdoptedSSInsertRule(WebMessage):
    """74: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 74
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "uint")
    sheet_id: int
    rule: str
    index: int


@attrs.frozen(slots=True)
class AdoptedSSDeleteRule(WebMessage):
    """75: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 75
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    sheet_id: int
    index: int


@attrs.frozen(slots=True)
class AdoptedSSAddOwner(WebMessage):
    """76: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 76
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    sheet_id: int
    id: int


@attrs.frozen(slots=True)
class AdoptedSSRemoveOwner(WebMessage):
    """77: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 77
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    sheet_id: int
    id: int


@attrs.frozen(slots=True)
class JSException(WebMessage):
    """78: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 78
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string", "string")
    name: str
    message: str
    payload: str
    metadata: str


@attrs.frozen(slots=True)
class Zustand(WebMessage):
    """79: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 79
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    mutation: str
    state: str


@attrs.frozen(slots=True)
class BatchMetadata(WebMessage):
    """81: web worker (batch writer). Header of every batch, written without a size prefix."""

    TYPE_ID: ClassVar[int] = 81
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "uint", "int", "string")
    version: int
    page_no: int
    first_index: int
    timestamp: int
    location: str


@attrs.frozen(slots=True)
class NetworkRequest(WebMessage):
    """83: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 83
    WIRE: ClassVar[tuple[str, ...]] = (
        "string",
        "string",
        "string",
        "string",
        "string",
        "uint",
        "uint",
        "uint",
        "uint",
    )
    type: str
    method: str
    url: str
    request: str
    response: str
    status: int
    timestamp: int
    duration: int
    transferred_body_size: int


@attrs.frozen(slots=True)
class WSChannel(WebMessage):
    """84: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 84
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string", "uint", "string", "string")
    ch_type: str
    channel_name: str
    data: str
    timestamp: int
    dir: str
    message_type: str


@attrs.frozen(slots=True)
class ResourceTiming(WebMessage):
    """85: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 85
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "string",
        "string",
        "uint",
        "boolean",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
    )
    timestamp: int
    duration: int
    ttfb: int
    header_size: int
    encoded_body_size: int
    decoded_body_size: int
    url: str
    initiator: str
    transferred_size: int
    cached: bool
    queueing: int
    dns_lookup: int
    initial_connection: int
    ssl: int
    content_download: int
    total: int
    stalled: int


@attrs.frozen(slots=True)
class Incident(WebMessage):
    """87: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 87
    WIRE: ClassVar[tuple[str, ...]] = ("string", "int", "int")
    label: str
    start_time: int
    end_time: int


@attrs.frozen(slots=True)
class LongAnimationTask(WebMessage):
    """89: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 89
    WIRE: ClassVar[tuple[str, ...]] = ("string", "int", "int", "int", "int", "string")
    name: str
    duration: int
    blocking_duration: int
    first_ui_event_timestamp: int
    start_time: int
    scripts: str


@attrs.frozen(slots=True)
class InputChange(WebMessage):
    """112: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 112
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string", "boolean", "string", "int", "int")
    id: int
    value: str
    value_masked: bool
    label: str
    hesitation_time: int
    input_duration: int


@attrs.frozen(slots=True)
class SelectionChange(WebMessage):
    """113: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 113
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint", "string")
    selection_start: int
    selection_end: int
    selection: str


@attrs.frozen(slots=True)
class MouseThrashing(WebMessage):
    """114: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 114
    WIRE: ClassVar[tuple[str, ...]] = ("uint",)
    timestamp: int


@attrs.frozen(slots=True)
class UnbindNodes(WebMessage):
    """115: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 115
    WIRE: ClassVar[tuple[str, ...]] = ("uint",)
    total_removed_percent: int


@attrs.frozen(slots=True)
class ResourceTimingDeprecated(WebMessage):
    """116: deprecated, tracker 19 core never emits it. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 116
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "uint",
        "string",
        "string",
        "uint",
        "boolean",
    )
    timestamp: int
    duration: int
    ttfb: int
    header_size: int
    encoded_body_size: int
    decoded_body_size: int
    url: str
    initiator: str
    transferred_size: int
    cached: bool


@attrs.frozen(slots=True)
class TabChange(WebMessage):
    """117: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 117
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    tab_id: str


@attrs.frozen(slots=True)
class TabData(WebMessage):
    """118: core tracker; also auto-inserted by the batch writer. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 118
    WIRE: ClassVar[tuple[str, ...]] = ("string",)
    tab_id: str


@attrs.frozen(slots=True)
class CanvasNode(WebMessage):
    """119: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 119
    WIRE: ClassVar[tuple[str, ...]] = ("string", "uint")
    node_id: str
    timestamp: int


@attrs.frozen(slots=True)
class TagTrigger(WebMessage):
    """120: core tracker. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 120
    WIRE: ClassVar[tuple[str, ...]] = ("int",)
    tag_id: int


@attrs.frozen(slots=True)
class Redux(WebMessage):
    """121: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 121
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "uint", "uint")
    action: str
    state: str
    duration: int
    action_time: int


@attrs.frozen(slots=True)
class SetPageLocation(WebMessage):
    """122: core tracker. Stream: player (v2)."""

    TYPE_ID: ClassVar[int] = 122
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "uint", "string")
    url: str
    referrer: str
    navigation_start: int
    document_title: str


@attrs.frozen(slots=True)
class GraphQL(WebMessage):
    """123: tracker plugins only. Stream: devtools (v4)."""

    TYPE_ID: ClassVar[int] = 123
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string", "string", "string", "uint")
    operation_kind: str
    operation_name: str
    variables: str
    response: str
    duration: int


@attrs.frozen(slots=True)
class WebVitals(WebMessage):
    """124: core tracker. Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 124
    WIRE: ClassVar[tuple[str, ...]] = ("string", "string")
    name: str
    value: str


@attrs.frozen(slots=True)
class IssueEvent(WebMessage):
    """125: web worker (batch writer / tracker heuristics). Stream: analytics (v5)."""

    TYPE_ID: ClassVar[int] = 125
    WIRE: ClassVar[tuple[str, ...]] = (
        "uint",
        "uint",
        "string",
        "string",
        "string",
        "string",
        "string",
    )
    message_id: int
    timestamp: int
    type: str
    context_string: str
    context: str
    payload: str
    url: str


@attrs.frozen(slots=True)
class SessionEnd(WebMessage):
    """126: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 126
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "string")
    timestamp: int
    encryption_key: str


@attrs.frozen(slots=True)
class SessionSearch(WebMessage):
    """127: backend-only, never sent by the tracker."""

    TYPE_ID: ClassVar[int] = 127
    WIRE: ClassVar[tuple[str, ...]] = ("uint", "uint")
    timestamp: int
    partition: int


MESSAGE_CLASSES: dict[int, type[WebMessage]] = {
    cls.TYPE_ID: cls
    for cls in (
        Timestamp,
        SessionStart,
        CleanSession,
        SetPageLocationDeprecated,
        SetViewportSize,
        SetViewportScroll,
        CreateDocument,
        CreateElementNode,
        CreateTextNode,
        MoveNode,
        RemoveNode,
        SetNodeAttribute,
        RemoveNodeAttribute,
        SetNodeData,
        SetCSSData,
        SetNodeScroll,
        SetInputTarget,
        SetInputValue,
        SetInputChecked,
        MouseMove,
        NetworkRequestDeprecated,
        ConsoleLog,
        PageLoadTiming,
        PageRenderTiming,
        CustomEvent,
        UserID,
        UserAnonymousID,
        Metadata,
        PageEventDeprecated,
        InputEvent,
        PageEvent,
        StringDictGlobal,
        SetNodeAttributeDictGlobal,
        NodeAnimationResult,
        Profiler,
        OTable,
        StateAction,
        StringDict,
        ReduxDeprecated,
        Vuex,
        MobX,
        NgRx,
        GraphQLDeprecated,
        PerformanceTrack,
        StringDictDeprecated,
        SetNodeAttributeDictDeprecated,
        SetNodeAttributeDict,
        ResourceTimingDeprecatedDeprecated,
        ConnectionInformation,
        SetPageVisibility,
        PerformanceTrackAggr,
        LoadFontFace,
        SetNodeFocus,
        SetNodeAttributeURLBased,
        SetCSSDataURLBased,
        TechnicalInfo,
        CustomIssue,
        SetNodeSlot,
        AssetCache,
        MouseClick,
        MouseClickDeprecated,
        CreateIFrameDocument,
        AdoptedSSReplaceURLBased,
        AdoptedSSReplace,
        AdoptedSSInsertRuleURLBased,
        AdoptedSSInsertRule,
        AdoptedSSDeleteRule,
        AdoptedSSAddOwner,
        AdoptedSSRemoveOwner,
        JSException,
        Zustand,
        BatchMetadata,
        NetworkRequest,
        WSChannel,
        ResourceTiming,
        Incident,
        LongAnimationTask,
        InputChange,
        SelectionChange,
        MouseThrashing,
        UnbindNodes,
        ResourceTimingDeprecated,
        TabChange,
        TabData,
        CanvasNode,
        TagTrigger,
        Redux,
        SetPageLocation,
        GraphQL,
        WebVitals,
        IssueEvent,
        SessionEnd,
        SessionSearch,
    )
}
"""Every known web message class by wire type id."""
