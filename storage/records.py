"""The records of the append-only log (the contract between the log and everything that reads it)."""

from __future__ import annotations

import enum

import attrs


class RecordKind(enum.IntEnum):
    """What a record's payload is. Stored as an integer; never renumber a member."""

    WEB_START = 1  # payload: JSON of the accepted start request plus what the server decided
    WEB_BATCH = 2  # payload: one raw (gunzipped) tracker batch, as received
    WEB_ASSETS = 3  # payload: the assets part of a batch (DataType assets, or visual after split)
    MOBILE_START = 10
    MOBILE_BATCH = 11
    MOBILE_LATE = 12
    V3_EVENT = 20
    # Only advances the engine's log clock (session_id 0, project_id 0, empty payload): appended
    # every ~10 s while sessions are live, so inactive sessions end without new traffic and a
    # replay of the log ends them at exactly the same positions.
    CLOCK_TICK = 30


@attrs.frozen(slots=True)
class NewRecord:
    """A record handed to the log for appending (no position yet).

    ``batch_key`` identifies an upload within its session (e.g. ``"0_1"`` = page 0, batch 1); a
    second append with the same (session_id, kind, batch_key) is a retry and is stored once.
    ``None`` means "never deduplicate" (start records, for instance).
    """

    session_id: int
    project_id: int
    kind: RecordKind
    received_at_ms: int
    payload: bytes
    batch_key: str | None = None


@attrs.frozen(slots=True)
class LogRecord:
    """A committed record with its global, gap-free position (1, 2, 3, ...)."""

    position: int
    session_id: int
    project_id: int
    kind: RecordKind
    received_at_ms: int
    payload: bytes
    batch_key: str | None = None


@attrs.frozen(slots=True)
class AppendResult:
    """What an append promises once it returns: the record is committed at ``position``.

    ``duplicate`` is true when the record was a retry of one already stored (same session, kind and
    batch key): nothing new was written and ``position`` is the original record's.
    """

    position: int
    duplicate: bool = False
