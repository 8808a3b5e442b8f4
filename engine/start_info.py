"""What a session start says about the client and the tracker: the one field table.

:class:`StartInfo` is the value every carrier of the start facts shares: the start record's
payload (``engine.start_payload``) and the sessions row extend it, ``SessionStarted`` and the
live session hold one. Each field also declares, in its attrs ``metadata`` (:class:`StartField`),
how the public answers name it, so a new start fact (e.g. a mobile device field) is one entry
here: the payload, the event, the sessions row, the live object and the public JSON follow it
(the sessions table needs a new ALTER step, which a test demands).

A module of its own, apart from ``engine.client_info``: ``engine.events`` needs this table, and
must not drag in the User-Agent parser, the IP data and trio with it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import attrs

_METADATA_KEY = "replayd.start_field"


@attrs.frozen(slots=True)
class StartField:
    """How the public answers show one start fact.

    ``json``: its key in a session object (API.md 2.5, the public v1 sessions of a user);
    ``live``: its key in the Assist live session object (API.md 4), None when Assist does not
    show it; ``user_sessions``: listed by ``GET /v1/{projectKey}/users/{userId}/sessions``.
    """

    json: str
    live: str | None = None
    user_sessions: bool = False


def _shown(
    json: str, *, live: bool | str = False, user_sessions: bool = False
) -> dict[str, StartField]:
    """A field's metadata; ``live=True`` shows it to Assist under its ``json`` key."""
    live_key = json if live is True else (live or None)
    return {_METADATA_KEY: StartField(json, live_key, user_sessions)}


@attrs.frozen(slots=True, kw_only=True)
class StartInfo:
    """The start facts. The order is the start record's JSON order (old logs: never reorder).

    In a sessions row and a live session ``user_id`` is the current user id (``setUserID``
    changes it later); everywhere else it is the one the start request carried.
    """

    user_uuid: str = attrs.field(
        default="", metadata=_shown("userUuid", live="userUUID", user_sessions=True)
    )
    user_id: str | None = attrs.field(
        default=None, metadata=_shown("userId", live="userID", user_sessions=True)
    )
    rev_id: str = attrs.field(default="", metadata=_shown("revId", live="revID"))
    tracker_version: str = attrs.field(default="", metadata=_shown("trackerVersion", live=True))
    is_snippet: bool = attrs.field(default=False, metadata=_shown("isSnippet", live=True))
    user_agent: str = attrs.field(default="", metadata=_shown("userAgent"))
    user_os: str = attrs.field(default="", metadata=_shown("userOs", live=True, user_sessions=True))
    user_os_version: str = attrs.field(default="", metadata=_shown("userOsVersion"))
    user_browser: str = attrs.field(
        default="", metadata=_shown("userBrowser", live=True, user_sessions=True)
    )
    user_browser_version: str = attrs.field(
        default="", metadata=_shown("userBrowserVersion", live=True)
    )
    user_device: str = attrs.field(
        default="", metadata=_shown("userDevice", live=True, user_sessions=True)
    )
    user_device_type: str = attrs.field(default="", metadata=_shown("userDeviceType", live=True))
    user_country: str = attrs.field(
        default="", metadata=_shown("userCountry", live=True, user_sessions=True)
    )
    user_city: str = attrs.field(default="", metadata=_shown("userCity", live=True))
    user_state: str = attrs.field(default="", metadata=_shown("userState", live=True))
    timezone: str = attrs.field(default="", metadata=_shown("timezone"))
    screen_width: int = attrs.field(default=0, metadata=_shown("screenWidth"))
    screen_height: int = attrs.field(default=0, metadata=_shown("screenHeight"))
    referrer: str = attrs.field(default="", metadata=_shown("referrer"))
    # API.md 2.5's names for them (the PostgreSQL columns of the reference backend).
    device_memory: int = attrs.field(default=0, metadata=_shown("userDeviceMemorySize"))
    js_heap_size_limit: int = attrs.field(default=0, metadata=_shown("userDeviceHeapSize"))
    platform: str = attrs.field(default="web", metadata=_shown("platform"))

    def start_info(self) -> StartInfo:
        """The start facts alone: a plain :class:`StartInfo` of a record or row extending it."""
        if type(self) is StartInfo:
            return self
        return StartInfo(**dict(zip(START_FIELDS, _values(self), strict=True)))


def start_field(field: attrs.Attribute[Any]) -> StartField:
    """The :class:`StartField` a field of :class:`StartInfo` declares."""
    meta = field.metadata.get(_METADATA_KEY)
    if not isinstance(meta, StartField):
        raise TypeError(f"StartInfo.{field.name} declares no StartField (use _shown)")
    return meta


START_FIELDS: tuple[str, ...] = tuple(f.name for f in attrs.fields(StartInfo))
"""Names of the start facts, in :class:`StartInfo` order (also the sessions table's columns)."""
_values: Callable[[StartInfo], tuple[Any, ...]] = operator.attrgetter(*START_FIELDS)


def _keys(view: Callable[[StartField], str | None]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pairs = [(f.name, view(start_field(f))) for f in attrs.fields(StartInfo)]
    shown = [(name, key) for name, key in pairs if key is not None]
    return tuple(name for name, _ in shown), tuple(key for _, key in shown)


class StartView:
    """The start facts one public answer shows, under its keys, in :class:`StartInfo` order."""

    __slots__ = ("_get", "keys", "names")

    def __init__(self, view: Callable[[StartField], str | None]) -> None:
        self.names, self.keys = _keys(view)
        self._get: Callable[[StartInfo], Any] = operator.attrgetter(*self.names)

    def json(self, start: StartInfo) -> dict[str, Any]:
        """The shown facts of ``start`` by their public keys."""
        values = self._get(start)
        if len(self.names) == 1:  # attrgetter of one name answers the value, not a tuple
            values = (values,)
        return dict(zip(self.keys, values, strict=True))


LIVE_VIEW = StartView(lambda f: f.live)
"""The start facts in the Assist live session object."""
USER_SESSIONS_VIEW = StartView(lambda f: f.json if f.user_sessions else None)
"""The start facts in public v1's sessions of a user."""
SESSION_VIEW = StartView(lambda f: f.json)
"""Every start fact, in the session object of API.md 2.5."""
