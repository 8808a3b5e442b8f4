"""The records of the append-only log: the contract between the log and all that reads it."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable

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
    # Delete-user jobs (engine.jobs has their payloads; session_id 0, project_id the job's):
    # requested by the API, cancelled by the API, started and finished by the executor
    # (runtime.erasure). Like an erasure they only move the sessions' clock.
    JOB_REQUESTED = 50
    JOB_CANCELLED = 51
    JOB_STARTED = 52
    JOB_FINISHED = 53


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


def position_ranges(positions: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted distinct ``positions`` as runs of consecutive numbers: ``((first, last), ...)``."""
    ranges: list[tuple[int, int]] = []
    for position in sorted(set(positions)):
        if ranges and ranges[-1][1] == position - 1:
            ranges[-1] = (ranges[-1][0], position)
        else:
            ranges.append((position, position))
    return tuple(ranges)


@attrs.frozen(slots=True, kw_only=True)
class Erasure:
    """What one erasure removed from the log: the payload of its ``ERASURE`` record.

    ``ranges`` are the positions deleted as runs of consecutive numbers (``(first, last)``,
    inclusive, sorted), ``count`` how many records that is, ``sessions`` the sessions whose
    records (and derived rows) are gone (sorted, distinct, never 0), ``reason`` why
    (``"user-deletion"``, ``"retention"``), ``job`` the delete-user job that asked (0: none).
    Nothing erased (no id, no metadata, no payload byte) is in it.

    Payload shape: ``{"reason", "ranges": [[first, last], ...], "count", "sessions", "job"}``.
    The first shape, ``{"reason", "positions": [...], "sessions"}``, still parses (as ranges).
    """

    reason: str
    ranges: tuple[tuple[int, int], ...]
    count: int
    sessions: tuple[int, ...]
    job: int = 0

    @classmethod
    def of_positions(
        cls, *, reason: str, positions: Iterable[int], sessions: Iterable[int], job: int = 0
    ) -> Erasure:
        """The erasure of these positions (any order, repeats ignored) and sessions."""
        ranges = position_ranges(positions)
        return cls(
            reason=reason,
            ranges=ranges,
            count=sum(last - first + 1 for first, last in ranges),
            sessions=tuple(sorted({s for s in sessions if s != 0})),
            job=job,
        )

    @property
    def positions(self) -> tuple[int, ...]:
        """Every erased position, in order (the ranges expanded)."""
        return tuple(p for first, last in self.ranges for p in range(first, last + 1))

    def to_bytes(self) -> bytes:
        """The record payload: compact JSON."""
        body = {
            "reason": self.reason,
            "ranges": [list(run) for run in self.ranges],
            "count": self.count,
            "sessions": self.sessions,
            "job": self.job,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Erasure:
        """Parse a payload of either shape (``ValueError`` if it is neither)."""
        body = json.loads(payload)
        try:  # not an object: indexing it by a name raises TypeError too
            if "positions" in body:  # the first shape: every position listed
                return cls.of_positions(
                    reason=str(body["reason"]),
                    positions=(int(p) for p in body["positions"]),
                    sessions=(int(s) for s in body["sessions"]),
                )
            ranges = tuple((int(first), int(last)) for first, last in body["ranges"])
            return cls(
                reason=str(body["reason"]),
                ranges=ranges,
                count=int(body["count"]),
                sessions=tuple(int(s) for s in body["sessions"]),
                job=int(body.get("job", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an erasure payload: {error}") from error


@attrs.frozen(slots=True, kw_only=True)
class ErasureRequest:
    """What to erase in one transaction: every record of ``sessions`` (ids of ``project_id``)
    and the records at ``positions`` (a job's own request record, say); ``reason`` and ``job``
    go into the :class:`Erasure`."""

    reason: str
    project_id: int = 0
    sessions: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    job: int = 0


@attrs.frozen(slots=True)
class ErasureResult:
    """What :meth:`EventLog.erase` did: the records it deleted and where it recorded that."""

    position: int  # of the ERASURE record
    erasure: Erasure
