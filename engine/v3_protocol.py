"""The version 3 generic events API on the wire (V3.md), without I/O.

What ``/3/*`` (``api.v3``) needs decided from bytes: Java ``URLEncoder`` encoding and the signature
``h`` (V3.md 3), parsing and validating ``data`` of ``events/update`` into :class:`V3Event` s
against the :class:`TypeRegistry` (V3.md 5, 9.3), and the ``V3_EVENT`` record payload
(:class:`V3Record`) that the v3 session actor reads back.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import urllib.parse
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import attrs

ACTIONS = ("START", "UPDATE", "END")
CATEGORIES = ("ENVIRONMENT", "BIOLOGICAL", "ACTIVITY")
SESSION_MIN_CHARS = 8
SESSION_MAX_CHARS = 20
MAX_EVENTS_PER_REQUEST = 1000  # the event id is position * 1000 + index: never more
NONCE_CHARS = 55  # what the published client sends; the server accepts any non-empty nonce
MAX_TYPE_CHARS = 64
MAX_ENTITY_KEY_CHARS = 128


class V3Error(Exception):
    """A request the v3 API refuses: its HTTP status, stable ``code`` and human ``reason``
    (V3.md 9.2); ``index`` names the bad event of a batch."""

    def __init__(self, status: int, code: str, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.index = index

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"APIVersion":3,"result":0,"reason","code"[,"index"]}``."""
        out: dict[str, Any] = {"APIVersion": 3, "result": 0}
        out.update(reason=self.reason, code=self.code)
        if self.index is not None:
            out["index"] = self.index
        return out


def java_urlencode(value: str) -> str:
    """``java.net.URLEncoder.encode(value, "UTF-8")``: ``A-Za-z0-9 . - * _`` kept, space as ``+``,
    everything else (``~`` included, unlike ``quote_plus``) as upper-case ``%XX`` of UTF-8."""
    return urllib.parse.quote_plus(value, safe="*", encoding="utf-8").replace("~", "%7E")


def sha1_hex(text: str) -> str:
    """Lower-case hex SHA-1 of the UTF-8 text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def signature(
    data: str, aid: int | str, user: str, nonce: str, app_secret: str, password_sha1: str
) -> str:
    """``h`` as the published client computes it (V3.md 3):
    ``sha1(urlenc(data) + aid + urlenc(user) + urlenc(nonce) + secret + sha1hex(password))``."""
    return sha1_hex(
        java_urlencode(data)
        + str(aid)
        + java_urlencode(user)
        + java_urlencode(nonce)
        + app_secret
        + password_sha1
    )


def session_id_of(session_key: str) -> int:
    """The log's ``session_id`` of a v3 session key ``"{aid}:{user}:{session}"``: blake2b (8
    bytes) with the top bit cleared, a positive 63-bit integer; never 0 (0 is the clock's)."""
    digest = hashlib.blake2b(session_key.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF
    return value or 1


def session_key_of(aid: int, user: str, session: str) -> str:
    """The record's ``session_key``: one actor per (app, user, session)."""
    return f"{aid}:{user}:{session}"


# -- the type registry -------------------------------------------------------------------------


@attrs.frozen(slots=True)
class TypeSpec:
    """One event type ("minor category"): its major category and entity keys (V3.md 5)."""

    name: str
    category: str
    required: tuple[str, ...] = ()
    recommended: tuple[str, ...] = ()


BUILTIN_TYPES: tuple[TypeSpec, ...] = (
    TypeSpec("POSITION", "ENVIRONMENT", ("lng", "lat"), ("room", "address", "city", "country")),
    TypeSpec("APPSTART", "ACTIVITY", ("app", "package")),
    TypeSpec("SCREEN", "ACTIVITY", ("screen_on",)),
    TypeSpec("INTENT", "ACTIVITY", ("intent",), ("mode",)),
    TypeSpec("NETWORK", "ENVIRONMENT", ("type",), ("ssid", "bssid")),
    # Tracking-Time sent PICTURE with free-form keys (id, image, date, ...): the documented
    # required entity would refuse a real client, so it is only recommended.
    TypeSpec("PICTURE", "ACTIVITY", (), ("picture_base64_enc",)),
    TypeSpec("NOISELEVEL", "ENVIRONMENT", ("noise_level_db",)),
    TypeSpec("CALENDAREVENT", "ACTIVITY", ("title", "begin", "end"), ("description",)),
    # The page's excerpt is cut off at "thumbnail_...": nothing is required we cannot name.
    TypeSpec("VIDEO", "ACTIVITY"),
    # Seen in real clients (StudyMe, the v4 JS client) without documented entities.
    TypeSpec("ANNOUNCEMENT", "ACTIVITY"),
    TypeSpec("RELEVANCE", "ACTIVITY"),
    TypeSpec("PROFILE", "ACTIVITY"),
    TypeSpec("LECTURE", "ACTIVITY"),
)


class RegistryError(ValueError):
    """The registry's configuration file is not valid (raised at startup, never per request)."""


@attrs.frozen(slots=True)
class TypeRegistry:
    """Event types by name: the built-ins plus those of a configuration file."""

    types: Mapping[str, TypeSpec]

    @classmethod
    def of(cls, specs: Iterable[TypeSpec]) -> TypeRegistry:
        """A registry of these specs (a later one replaces an earlier of the same name)."""
        return cls({s.name: s for s in specs})

    def get(self, name: str) -> TypeSpec | None:
        """The spec of ``name``, or ``None`` for an unknown type."""
        return self.types.get(name)


def builtin_registry() -> TypeRegistry:
    """The registry of V3.md 5 and the types seen in real clients."""
    return TypeRegistry.of(BUILTIN_TYPES)


def _str_tuple(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RegistryError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def parse_registry_config(config: object) -> tuple[TypeSpec, ...]:
    """The types of a parsed configuration: ``{"types": {NAME: {"category", "required",
    "recommended"}}}`` (the same shape in JSON or TOML ``[types.NAME]`` tables)."""
    if not isinstance(config, dict) or not isinstance(config.get("types"), dict):
        raise RegistryError('expected a "types" table')
    specs = []
    for name, body in config["types"].items():
        if not name or len(name) > MAX_TYPE_CHARS or not isinstance(body, dict):
            raise RegistryError(f"type {name!r}: expected a table with a category")
        category = body.get("category")
        if category not in CATEGORIES:
            raise RegistryError(f"type {name}: category must be one of {', '.join(CATEGORIES)}")
        unknown = set(body) - {"category", "required", "recommended"}
        if unknown:
            raise RegistryError(f"type {name}: unknown field(s) {', '.join(sorted(unknown))}")
        specs.append(
            TypeSpec(
                name,
                category,
                _str_tuple(body.get("required", []), f"type {name}.required"),
                _str_tuple(body.get("recommended", []), f"type {name}.recommended"),
            )
        )
    return tuple(specs)


def load_registry(path: str | PathLike[str] | None) -> TypeRegistry:
    """The built-ins plus the types of the file at ``path`` (``.toml`` read as TOML, anything
    else as JSON); a type of the file replaces a built-in of the same name."""
    if path is None:
        return builtin_registry()
    raw = Path(path).read_bytes()
    try:
        config = (
            tomllib.loads(raw.decode("utf-8")) if str(path).endswith(".toml") else json.loads(raw)
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    return TypeRegistry.of(BUILTIN_TYPES + parse_registry_config(config))


# -- events and the record payload -------------------------------------------------------------


@attrs.frozen(slots=True)
class Entity:
    """One ``{key, value}``: the value any JSON value (``None`` = JSON null)."""

    key: str
    value: Any


@attrs.frozen(slots=True)
class V3Event:
    """One validated event of ``events/update``; ``category`` is the registry's."""

    action: str
    type: str
    category: str
    timestamp: int
    session: str
    entities: tuple[Entity, ...]

    def to_json(self) -> dict[str, Any]:
        """The record payload's event (no session: the record carries it)."""
        return {
            "action": self.action,
            "type": self.type,
            "category": self.category,
            "timestamp": self.timestamp,
            "entities": [{"key": e.key, "value": e.value} for e in self.entities],
        }


@attrs.frozen(slots=True)
class V3Record:
    """The payload of one ``V3_EVENT`` record: one (app, user, session)'s events of one request,
    in request order."""

    aid: int
    user: str
    session: str
    events: tuple[V3Event, ...]

    @property
    def session_key(self) -> str:
        """``"{aid}:{user}:{session}"``."""
        return session_key_of(self.aid, self.user, self.session)

    def to_bytes(self) -> bytes:
        """Compact JSON ``{"aid","user","session","events":[...]}``."""
        body = {
            "aid": self.aid,
            "user": self.user,
            "session": self.session,
            "events": [e.to_json() for e in self.events],
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, payload: bytes) -> V3Record:
        """The record written by :meth:`to_bytes`."""
        body = json.loads(payload)
        session = body["session"]
        return cls(
            aid=body["aid"],
            user=body["user"],
            session=session,
            events=tuple(
                V3Event(
                    action=e["action"],
                    type=e["type"],
                    category=e["category"],
                    timestamp=e["timestamp"],
                    session=session,
                    entities=tuple(Entity(x["key"], x["value"]) for x in e["entities"]),
                )
                for e in body["events"]
            ),
        )


def group_records(aid: int, user: str, events: Iterable[V3Event]) -> list[V3Record]:
    """One record per session of the request, in order of each session's first event; events
    keep request order within their record."""
    by_session: dict[str, list[V3Event]] = {}
    for event in events:
        by_session.setdefault(event.session, []).append(event)
    return [V3Record(aid, user, s, tuple(evs)) for s, evs in by_session.items()]


def _bad(index: int, code: str, reason: str) -> V3Error:
    return V3Error(400, code, f"Wrong data: event {index}: {reason}", index)


def _entities(raw: object, index: int) -> tuple[Entity, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _bad(index, "invalid_entities", "entities must be an array of {key, value}")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            raise _bad(index, "invalid_entities", "each entity needs a non-empty string key")
        if len(item["key"]) > MAX_ENTITY_KEY_CHARS:
            raise _bad(index, "invalid_entities", f"entity key over {MAX_ENTITY_KEY_CHARS} chars")
        out.append(Entity(item["key"], item.get("value")))
    return tuple(out)


def parse_event(raw: object, index: int, registry: TypeRegistry) -> V3Event:
    """One event of the ``data`` array, validated (V3.md 4, 9.2), or :class:`V3Error` naming
    ``index``."""
    if not isinstance(raw, dict):
        raise _bad(index, "invalid_event", "an event must be a JSON object")
    action = raw.get("action")
    if action not in ACTIONS:
        raise _bad(index, "invalid_action", "action must be START, UPDATE or END")
    type_name = raw.get("type")
    spec = registry.get(type_name) if isinstance(type_name, str) else None
    if spec is None:
        raise _bad(index, "unknown_type", f"unknown type {type_name!r}")
    timestamp = raw.get("timestamp")
    # A Java int; StudyMe sent milliseconds cast to int, so no range is checked beyond a sign.
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise _bad(index, "invalid_timestamp", "timestamp must be unix seconds (an integer)")
    session = raw.get("session", "")
    if session is None:
        session = ""
    if not isinstance(session, str) or (
        session and not SESSION_MIN_CHARS <= len(session) <= SESSION_MAX_CHARS
    ):
        raise _bad(
            index,
            "invalid_session",
            f"session must be {SESSION_MIN_CHARS}-{SESSION_MAX_CHARS} characters",
        )
    if action == "END" and not session:
        raise _bad(index, "invalid_session", "an END needs the session of its START")
    entities = _entities(raw.get("entities"), index)
    keys = {e.key for e in entities}
    missing = [k for k in spec.required if k not in keys]
    if missing:
        raise _bad(
            index,
            "missing_required_entity",
            f"type {spec.name} requires entit{'y' if len(missing) == 1 else 'ies'} "
            + ", ".join(missing),
        )
    return V3Event(action, spec.name, spec.category, timestamp, session, entities)


def parse_json(data: str) -> Any:
    """``data`` as JSON, or a 400 ``invalid_json``."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise V3Error(400, "invalid_json", f"Wrong data: invalid JSON ({exc})") from exc


def parse_events(data: str, registry: TypeRegistry) -> tuple[V3Event, ...]:
    """The events of ``events/update``'s ``data``: a JSON array of at most
    :data:`MAX_EVENTS_PER_REQUEST` valid events; the first bad one rejects them all."""
    raw = parse_json(data)
    if not isinstance(raw, list):
        raise V3Error(400, "invalid_data", "Wrong data: data must be a JSON array of events")
    if len(raw) > MAX_EVENTS_PER_REQUEST:
        raise V3Error(
            413,
            "too_many_events",
            f"Wrong data: at most {MAX_EVENTS_PER_REQUEST} events a request ({len(raw)} sent)",
        )
    return tuple(parse_event(item, i, registry) for i, item in enumerate(raw))


def event_id(position: int, index: int) -> int:
    """An event's server id: its record's log position and its index in the record."""
    return position * MAX_EVENTS_PER_REQUEST + index


def split_event_id(value: int) -> tuple[int, int]:
    """``(position, index)`` of an event id."""
    return divmod(value, MAX_EVENTS_PER_REQUEST)
