"""The records of the append-only log: the contract between the log and all that reads it."""

from __future__ import annotations

import enum
import json

import attrs


class RecordKind(enum.IntEnum):
    """What a record's payload is. Stored as an integer; never renumber a member."""

    WEB_START = 1  # payload: JSON of the accepted start request plus what the server decided
    WEB_BATCH = 2  # payload: one raw (gunzipped) tracker batch, as received
    WEB_ASSETS = 3  # payload: the assets part of a batch (DataType assets, or visual after split)
    MOBILE_START = 10
    MOBILE_BATCH = 11
    MOBILE_LATE = 12
    V3_EVENT = 20  # payload: JSON {aid, user, session, events} of one v3 session (V3.md)
    V3_DELETE = 21  # payload: JSON {aid, user, id}: POST /3/events/delete of one event
    # Only advances the engine's log clock (session_id 0, project_id 0, empty payload): appended
    # every ~10 s while sessions are live, so inactive sessions end without new traffic and a
    # replay of the log ends them at exactly the same positions.
    CLOCK_TICK = 30
    # The data lifecycle erased records (user deletion, retention): written by
    # ``EventLog.erase`` in the transaction that deleted them (session_id 0, project_id 0,
    # payload: :class:`Erasure` as JSON). The gaps it leaves in positions are explained by it.
    # Sessions' actors never see it; it only advances the log clock, like a tick.
    ERASURE = 40


@attrs.frozen(slots=True)
class NewRecord:
    """A record handed to the log for appending (no position yet).

    ``batch_key`` identifies an upload within its session (e.g. ``"0_1"`` = page 0, batch 1); a
    second append with the same (session_id, session_key, kind, batch_key) is a retry and is
    stored once. ``None`` means "never deduplicate" (start records, for instance).

    ``session_key`` names a session that a number cannot: a v3 session is keyed by an app, a user
    and a client string (V3.md), and its actor type reads its history by this key. Empty (every
    web record) means the session is named by ``session_id`` alone.
    """

    session_id: int
    project_id: int
    kind: RecordKind
    received_at_ms: int
    payload: bytes
    batch_key: str | None = None
    session_key: str = ""


@attrs.frozen(slots=True)
class LogRecord:
    """A committed record with its global position: strictly increasing in commit order, never
    reused; a gap only where the data lifecycle erased records (see :class:`Erasure`).

    The other fields are the appended :class:`NewRecord`'s (``session_key`` empty: keyed by
    ``session_id`` only)."""

    position: int
    session_id: int
    project_id: int
    kind: RecordKind
    received_at_ms: int
    payload: bytes
    batch_key: str | None = None
    session_key: str = ""


@attrs.frozen(slots=True)
class AppendResult:
    """What an append promises once it returns: the record is committed at ``position``.

    ``duplicate`` is true when the record was a retry of one already stored (same session id and
    key, kind and batch key): nothing new was written and ``position`` is the original record's.
    """

    position: int
    duplicate: bool = False


@attrs.frozen(slots=True, kw_only=True)
class Erasure:
    """What one erasure removed from the log: the payload of its ``ERASURE`` record.

    ``positions`` are the records deleted (sorted), ``sessions`` the sessions they belonged to
    (sorted, distinct), ``reason`` why (e.g. ``"user-deletion"``, ``"retention"``).
    """

    reason: str
    positions: tuple[int, ...]
    sessions: tuple[int, ...]

    def to_bytes(self) -> bytes:
        """The record payload: compact JSON."""
        body = {"reason": self.reason, "positions": self.positions, "sessions": self.sessions}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Erasure:
        """Parse a payload written by :meth:`to_bytes` (``ValueError`` if it is not one)."""
        body = json.loads(payload)
        try:  # not an object: indexing it by a name raises TypeError too
            return cls(
                reason=str(body["reason"]),
                positions=tuple(int(p) for p in body["positions"]),
                sessions=tuple(int(s) for s in body["sessions"]),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not an erasure payload: {error}") from error


@attrs.frozen(slots=True)
class ErasureResult:
    """What :meth:`EventLog.erase` did: the records it deleted and where it recorded that."""

    position: int  # of the ERASURE record
    erasure: Erasure
