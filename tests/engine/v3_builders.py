"""Records of v3 sessions as ``/3/events/update`` and ``/3/events/delete`` append them."""

from __future__ import annotations

import json
from typing import Any

from engine.v3_protocol import Entity, V3Event, V3Record, session_id_of, session_key_of
from storage.records import NewRecord, RecordKind

PROJECT = 1
AID = 7


def session_key(aid: int, user: str, session: str) -> str:
    """The actor's key: ``"aid:user:session"`` (session ``""`` for point events)."""
    return session_key_of(aid, user, session)


def v3_event(
    action: str,
    type_: str,
    timestamp: int,
    entities: dict[str, Any] | None = None,
    category: str = "ACTIVITY",
) -> V3Event:
    """One event (its session is the record's; entities in the given order)."""
    pairs = tuple(Entity(k, v) for k, v in (entities or {}).items())
    return V3Event(action, type_, category, timestamp, "", pairs)


def v3_record(
    user: str,
    session: str,
    events: list[V3Event],
    *,
    received_at: int,
    aid: int = AID,
    project_id: int = PROJECT,
) -> NewRecord:
    """The ``V3_EVENT`` record of one request's events of one (app, user, session)."""
    payload = V3Record(aid, user, session, tuple(events))
    return NewRecord(
        session_id=session_id_of(payload.session_key),
        project_id=project_id,
        kind=RecordKind.V3_EVENT,
        received_at_ms=received_at,
        payload=payload.to_bytes(),
        session_key=payload.session_key,
    )


def v3_delete(
    user: str,
    session: str,
    event_id: int,
    *,
    received_at: int,
    aid: int = AID,
    project_id: int = PROJECT,
) -> NewRecord:
    """The ``V3_DELETE`` record of ``/3/events/delete`` on the deleted event's session key."""
    key = session_key(aid, user, session)
    return NewRecord(
        session_id=session_id_of(key),
        project_id=project_id,
        kind=RecordKind.V3_DELETE,
        received_at_ms=received_at,
        payload=json.dumps({"aid": aid, "user": user, "id": event_id}).encode(),
        session_key=key,
    )
