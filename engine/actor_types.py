"""Actor types: which record kinds an actor owns, how a record names its actor, what state it folds.

The supervisor routes by this registry instead of a hard-wired set of web kinds, so another kind
of actor (a v3 client, a mobile session) can be added without touching the scheduling. A record
whose kind no type owns only moves the log clock, as before.

The web type is today's session actor: keyed by the record's ``session_id``, folding a
:class:`~engine.session_state.WebSessionState`, fresh (no history to read) on a ``WEB_START`` that
does not continue an earlier session. The mobile type is the same shape over the MOBILE_* kinds,
folding a :class:`~engine.mobile_session.MobileSessionState`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Protocol

import attrs

from engine.events import DomainEvent
from engine.mobile_session import MOBILE_SESSION_KINDS, MobileSessionState
from engine.session_state import SESSION_KINDS, WebSessionState
from engine.start_payload import WebStartPayload
from engine.v3_session import V3_KINDS, V3SessionState
from storage.records import LogRecord, RecordKind

__all__ = [
    "DEFAULT_REGISTRY",
    "MOBILE_ACTOR_TYPE",
    "V3_ACTOR_TYPE",
    "WEB_ACTOR_TYPE",
    "ActorRegistry",
    "ActorState",
    "ActorType",
    "session_key_of",
]


class ActorState(Protocol):
    """What an actor folds: records in log order, then ends; ``out=None`` suppresses emission."""

    last_record_ms: int
    messages_walked: int

    def apply_record(self, record: LogRecord, out: list[DomainEvent] | None) -> bool: ...

    def end(self, position: int, out: list[DomainEvent] | None) -> None: ...


def _never_fresh(record: LogRecord) -> bool:
    return False


def _kind_set(kinds: Iterable[int]) -> frozenset[int]:
    return frozenset(kinds)  # a typed converter: mypy cannot infer frozenset's parameter


@attrs.frozen(slots=True, kw_only=True)
class ActorType:
    """One kind of actor: the record kinds it owns, its key, its state and its inactivity timeout.

    ``new_state(key, record)`` gets the record that activates the actor, or ``None`` when a
    restart re-activates it from the resume point. ``is_fresh(record)`` says the record starts a
    brand-new actor, so there is no history to read. ``inactivity_timeout_ms=None`` takes the
    supervisor's timeout.

    ``keyed`` says which column of the log names the actor, and so how its history is read and
    how a restart finds it live: ``False`` by ``session_id`` (the web type: ``key_of`` returns
    it), ``True`` by ``session_key`` (a v3 session: ``key_of`` is :func:`session_key_of`).
    """

    name: str
    kinds: frozenset[int] = attrs.field(converter=_kind_set)
    key_of: Callable[[LogRecord], Hashable]
    new_state: Callable[[Hashable, LogRecord | None], ActorState]
    is_fresh: Callable[[LogRecord], bool] = _never_fresh
    inactivity_timeout_ms: int | None = None
    keyed: bool = False

    def timeout_ms(self, default_ms: int) -> int:
        """This type's inactivity timeout, ``default_ms`` (the supervisor's) unless it has one."""
        return default_ms if self.inactivity_timeout_ms is None else self.inactivity_timeout_ms


class ActorRegistry:
    """Record kind -> :class:`ActorType`; a kind belongs to one type at most."""

    __slots__ = ("_by_kind", "_types")

    def __init__(self, types: Iterable[ActorType] = ()) -> None:
        self._types: list[ActorType] = []
        self._by_kind: dict[int, ActorType] = {}
        for actor_type in types:
            self.register(actor_type)

    def register(self, actor_type: ActorType) -> None:
        """Add ``actor_type``; refuse it (ValueError) if one of its kinds or its name is taken."""
        if any(t.name == actor_type.name for t in self._types):
            raise ValueError(f"actor type {actor_type.name!r} is already registered")
        for kind in actor_type.kinds:
            owner = self._by_kind.get(kind)
            if owner is not None:
                # Two owners would make routing depend on registration order.
                raise ValueError(f"record kind {kind} already belongs to {owner.name!r}")
        for kind in actor_type.kinds:
            self._by_kind[kind] = actor_type
        self._types.append(actor_type)

    def type_for(self, kind: int) -> ActorType | None:
        """The type owning records of ``kind``, or ``None`` (the record only moves the clock)."""
        return self._by_kind.get(kind)

    def timeouts_ms(self, default_ms: int) -> list[int]:
        """Each type's inactivity timeout in registry order (``default_ms`` unless it has one).

        ValueError when one is negative: the schedulers (supervisor, rebuild fold) check it once.
        """
        timeouts = [t.timeout_ms(default_ms) for t in self._types]
        if min(timeouts, default=0) < 0:
            raise ValueError("an actor type's inactivity timeout must be >= 0")
        return timeouts

    def __iter__(self) -> Iterator[ActorType]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


def _session_id_of(record: LogRecord) -> Hashable:
    return record.session_id


def session_key_of(record: LogRecord) -> Hashable:
    """The key of a keyed type's actor: the record's ``session_key``."""
    return record.session_key


def _new_web_state(key: Hashable, record: LogRecord | None) -> ActorState:
    assert isinstance(key, int)
    return WebSessionState(key, record.project_id if record is not None else 0)


def _new_mobile_state(key: Hashable, record: LogRecord | None) -> ActorState:
    assert isinstance(key, int)
    return MobileSessionState(key, record.project_id if record is not None else 0)


def _fresh_on(start_kind: RecordKind) -> Callable[[LogRecord], bool]:
    """``is_fresh`` of a type whose sessions begin with a start record of ``start_kind``."""

    def starts_new_session(record: LogRecord) -> bool:
        """True for the start record of a brand-new session: no history to read for it."""
        if record.kind != start_kind:
            return False
        try:
            return not WebStartPayload.from_bytes(record.payload).continued
        except Exception:  # noqa: BLE001 - the actor parks a bad payload; here read the history
            return False

    return starts_new_session


WEB_ACTOR_TYPE = ActorType(
    name="web",
    kinds=SESSION_KINDS,
    key_of=_session_id_of,
    new_state=_new_web_state,
    is_fresh=_fresh_on(RecordKind.WEB_START),
)
"""The web session actor (PROTOCOL.md): WEB_START / WEB_BATCH / WEB_ASSETS by session id."""

MOBILE_ACTOR_TYPE = ActorType(
    name="mobile",
    kinds=MOBILE_SESSION_KINDS,
    key_of=_session_id_of,
    new_state=_new_mobile_state,
    is_fresh=_fresh_on(RecordKind.MOBILE_START),
)
"""The mobile session actor (MOBILE.md): MOBILE_START / MOBILE_BATCH / MOBILE_LATE by session id,
ended after the supervisor's inactivity timeout as a web session is (MOBILE.md 5.5: 150 s)."""


def _new_v3_state(key: Hashable, record: LogRecord | None) -> ActorState:
    assert isinstance(key, str)
    if record is None:  # a restart's re-activation: the replayed history sets the ids
        return V3SessionState(key)
    return V3SessionState(key, record.session_id, record.project_id)


V3_ACTOR_TYPE = ActorType(
    name="v3",
    kinds=V3_KINDS,
    key_of=session_key_of,
    new_state=_new_v3_state,
    keyed=True,
)
"""The v3 session actor (V3.md): V3_EVENT / V3_DELETE by ``"aid:user:session"`` session key. Its
end only frees memory (no heuristics), so the supervisor's timeout is as good as any."""

DEFAULT_REGISTRY = ActorRegistry([WEB_ACTOR_TYPE, MOBILE_ACTOR_TYPE, V3_ACTOR_TYPE])
"""The registry the engine runs with: the web, mobile and v3 types."""
