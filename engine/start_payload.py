"""The payload of a WEB_START log record: what the start request said plus what the server decided.

The API builds it on ``/v1/web/start`` and appends it; the session actor turns it into
``SessionStarted``. JSON on the wire of the log so that it stays readable and forward-compatible
(unknown keys are ignored on read, missing ones take their defaults).
"""

from __future__ import annotations

import json

import attrs


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
        known = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
