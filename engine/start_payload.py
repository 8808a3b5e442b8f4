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

from engine.events import clamp_int64, repair_text


@attrs.frozen(slots=True, kw_only=True)
class WebStartPayload:
    session_id: int
    project_id: int
    start_timestamp: int  # ms, server clock (the timestamp inside the flake id, minus bufferDiff)
    delay: int  # server ms - client ms at start; the tracker adds it to its Timestamp messages
    continued: bool = False  # true when the tracker presented a valid token of this session
    user_uuid: str = ""
    user_id: str | None = None
    rev_id: str = ""
    tracker_version: str = ""
    is_snippet: bool = False
    user_agent: str = ""
    user_os: str = ""
    user_os_version: str = ""
    user_browser: str = ""
    user_browser_version: str = ""
    user_device: str = ""
    user_device_type: str = ""
    user_country: str = ""
    user_city: str = ""
    user_state: str = ""
    timezone: str = ""
    screen_width: int = 0
    screen_height: int = 0
    referrer: str = ""
    device_memory: int = 0
    js_heap_size_limit: int = 0
    platform: str = "web"

    def to_bytes(self) -> bytes:
        """Serialize to compact UTF-8 JSON."""
        return json.dumps(attrs.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "WebStartPayload":
        """Parse a payload written by ``to_bytes`` (ignoring keys this version does not know)."""
        raw = json.loads(data)
        return cls(**{k: _repaired(v) for k, v in raw.items() if k in _KNOWN})


def _repaired(value: Any) -> Any:
    """A JSON value made storable: strings without lone surrogates, integers within int64."""
    if type(value) is str:
        return repair_text(value)
    if type(value) is int:  # not bool: True is an int too, and stays a bool
        return clamp_int64(value)
    return value


_KNOWN = frozenset(f.name for f in attrs.fields(WebStartPayload))
