"""The payload of a WEB_START log record: what the start request said plus what the server decided.

The API builds it on ``/v1/web/start`` and appends it; the session actor turns it into
``SessionStarted``. JSON on the wire of the log so that it stays readable and forward-compatible
(unknown keys are ignored on read, missing ones take their defaults).

Reading repairs what an older server let into the log (DESIGN.md invariant 8: such a record must
neither stop the engine nor poison the projections): lone surrogates in strings become U+FFFD and
integers are clamped to SQLite's INTEGER range.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from engine.events import INT64_MAX, INT64_MIN, clamp_int64, repair_text
from engine.start_info import START_FIELDS, StartInfo


@attrs.frozen(slots=True, kw_only=True)
class WebStartPayload(StartInfo):
    """The server's decisions about a start, plus the start facts (:class:`StartInfo`)."""

    session_id: int
    project_id: int
    start_timestamp: int  # ms, server clock (the timestamp inside the flake id, minus bufferDiff)
    delay: int  # server ms - client ms at start; the tracker adds it to its Timestamp messages
    continued: bool = False  # true when the tracker presented a valid token of this session

    def to_bytes(self) -> bytes:
        """Serialize to compact UTF-8 JSON."""
        # Head first, then the start facts: the key order every server so far has written.
        raw = {name: getattr(self, name) for name in _JSON_ORDER}
        return json.dumps(raw, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> WebStartPayload:
        """Parse a payload written by ``to_bytes`` (ignoring keys this version does not know).

        Raises ``ValueError`` (the actor parks the record) for a payload that is not a JSON object
        or whose known fields have a JSON type no server writes: such a value would otherwise
        reach the engine's arithmetic or SQLite.

        The last payload parsed is remembered: the engine reads a start record's payload twice
        (is it a fresh session? then the state's start), and a rebuild does that for every one
        of a million sessions. The result is frozen, so sharing it is safe.
        """
        global _last_parsed
        last = _last_parsed
        if last is not None and last[0] == data:
            return last[1]
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("start payload is not a JSON object")
        shape = (tuple(raw), tuple(map(type, raw.values())))
        int_fields = _KNOWN_SHAPES.get(shape)
        if (
            int_fields is not None
            and data.isascii()
            and b"\\u" not in data  # ASCII without escapes: no lone surrogate in any string
            and all(INT64_MIN <= raw[name] <= INT64_MAX for name in int_fields)
        ):
            # The keys and value types of payloads this server writes, seen before and checked
            # then: nothing to check or repair field by field.
            parsed = cls(**raw)
        else:
            fields: dict[str, Any] = {}
            for name, value in raw.items():
                allowed = _FIELD_TYPES.get(name)
                if allowed is not None:
                    fields[name] = _checked(name, value, allowed)
            parsed = cls(**fields)
            if len(fields) == len(raw) and len(_KNOWN_SHAPES) < _MAX_SHAPES:
                _KNOWN_SHAPES[shape] = tuple(n for n, v in fields.items() if type(v) is int)
        _last_parsed = (bytes(data), parsed)
        return parsed


def _checked(name: str, value: Any, allowed: tuple[type, ...]) -> Any:
    """A field's JSON value checked against its type and made storable: strings without lone
    surrogates, integers within int64."""
    kind = type(value)
    # type() rather than isinstance: a JSON true is a bool, never an int field's value.
    if kind not in allowed:
        raise ValueError(f"start payload field {name!r} is a {kind.__name__}")
    if kind is str:
        # ASCII text holds no surrogate: skip the encode attempt for the common case.
        return value if value.isascii() else repair_text(value)
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else clamp_int64(value)
    return value


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "str | None": (str, type(None)),
}
# Field name -> the JSON value types it accepts (annotations are strings: postponed evaluation).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    f.name: _JSON_TYPES[str(f.type)] for f in attrs.fields(WebStartPayload)
}
_JSON_ORDER: tuple[str, ...] = (
    *(f.name for f in attrs.fields(WebStartPayload) if f.name not in START_FIELDS),
    *START_FIELDS,
)
_last_parsed: tuple[bytes, WebStartPayload] | None = None
"""The last payload ``from_bytes`` parsed, with its result (one entry: a start is read twice in a
row, then never again)."""
_KNOWN_SHAPES: dict[tuple[tuple[str, ...], tuple[type, ...]], tuple[str, ...]] = {}
"""(keys, value types) of payloads parsed field by field without an unknown key or a bad type,
to their integer fields (still range-checked); a few shapes only (optional fields missing or
null), bounded so that hostile variety cannot grow it."""
_MAX_SHAPES = 64
