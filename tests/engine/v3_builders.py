"""Records of v3 sessions as ``/3/events/update`` and ``/3/events/delete`` append them.

Written from the shared payload contract (compact JSON ``{aid, user, session, events}`` and
``{aid, user, id}``), so the engine's tests do not depend on the HTTP side.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from storage.records import NewRecord, RecordKind

PROJECT = 1
AID = 7


def session_key(aid: int, user: str, session: str) -> str:
    """The actor's key: ``"aid:user:session"`` (session ``""`` for point events)."""
    return f"{aid}:{user}:{session}"


def session_id_of(key: str) -> int:
    """A positive 63-bit number named by ``key``: blake2b, 8 bytes, top bit cleared, never 0."""
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return (value & ((1 << 63) - 1)) or 1


def v3_event(
    action: str,
    type_: str,
    timestamp: float,
    entities: dict[str, Any] | None = None,
    category: str = "ACTIVITY",
) -> dict[str, Any]:
    """One event as the payload carries it (entities in the given order)."""
    return {
        "action": action,
        "type": type_,
        "category": category,
        "timestamp": timestamp,
        "entities": [{"key": k, "value": v} for k, v in (entities or {}).items()],
    }


def _compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def v3_record(
    user: str,
    session: str,
    events: list[dict[str, Any]],
    *,
    received_at: int,
    aid: int = AID,
    project_id: int = PROJECT,
) -> NewRecord:
    """The ``V3_EVENT`` record of one request's events of one (app, user, session)."""
    key = session_key(aid, user, session)
    body = {"aid": aid, "user": user, "session": session, "events": events}
    return NewRecord(
        session_id=session_id_of(key),
        project_id=project_id,
        kind=RecordKind.V3_EVENT,
        received_at_ms=received_at,
        payload=_compact(body),
        session_key=key,
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
        payload=_compact({"aid": aid, "user": user, "id": event_id}),
        session_key=key,
    )
